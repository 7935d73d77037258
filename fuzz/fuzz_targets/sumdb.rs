//! The checksum-database client (`sumdb::client::check_lookup`): a lookup answer (record and
//! signed tree note) and the hash tiles that prove it, as an upstream database sends them, with
//! bytes flipped or replaced. Also the tile-path, tree-note, record and note parsers on raw text.
//! Soundness: an answer that is accepted carries the record the real log holds under its id.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use modgate::sumdb::client::{TileReader, check_lookup};
use modgate::sumdb::memlog::MemLog;
use modgate::sumdb::note::{self, Signer, Verifier};
use modgate::sumdb::tile::{Tile, hash_from_tile, tile_for_index};
use modgate::sumdb::tlog::{Hash, Tree, parse_record, parse_tree};

/// x/mod's note test key (a public test vector).
const SKEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
/// Tiles of height 2: a handful of records already spans several levels.
const HEIGHT: u32 = 2;
const RECORDS: usize = 11;

struct Logs {
    /// `prefixes[k]`: the log holding the first `k` records.
    prefixes: Vec<MemLog>,
    verifier: Verifier,
}

fn module(i: usize) -> (String, String) {
    (format!("example.com/m{i}"), format!("v1.{i}.0"))
}

fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let signer = || Signer::parse(SKEY).expect("the test key parses");
        let mut prefixes: Vec<MemLog> = (0..=RECORDS).map(|_| MemLog::new(signer())).collect();
        for i in 0..RECORDS {
            let (m, v) = module(i);
            let h = format!("h1:{}=", "A".repeat(43));
            for log in &mut prefixes[i + 1..] {
                log.add(&m, &v, Some(&h), &h).expect("append");
            }
        }
        Logs {
            prefixes,
            verifier: signer().verifier(),
        }
    })
}

struct Tiles<'a> {
    log: &'a MemLog,
    flips: &'a [(u16, u8)],
}

impl TileReader for Tiles<'_> {
    fn height(&self) -> u32 {
        HEIGHT
    }
    fn read_tiles(&mut self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, String> {
        let mut out = Vec::new();
        for (k, t) in tiles.iter().enumerate() {
            let mut data = self.log.tile(*t).ok_or("no such tile")?;
            for &(at, x) in self.flips {
                if usize::from(at >> 8) % tiles.len() == k && !data.is_empty() {
                    let i = usize::from(at & 0xff) % data.len();
                    data[i] ^= x;
                }
            }
            out.push(data);
        }
        Ok(out)
    }
}

#[derive(Arbitrary, Debug)]
enum Answer {
    Real { flips: Vec<(u16, u8)> },
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    record: u8,
    /// Which module the client asked about (another one than the record's, sometimes).
    asked: u8,
    known: Option<u8>,
    answer: Answer,
    tile_flips: Vec<(u16, u8)>,
    text: String,
}

fuzz_target!(|input: Input| {
    let logs = logs();
    let log = &logs.prefixes[RECORDS];
    let id = usize::from(input.record) % RECORDS;
    let (m, v) = module(usize::from(input.asked) % RECORDS);
    let mut answer = match &input.answer {
        Answer::Real { .. } => log.lookup_id(id as i64).expect("a logged record"),
        Answer::Raw(raw) => raw.clone(),
    };
    if let Answer::Real { flips } = &input.answer {
        for &(at, x) in flips {
            let i = usize::from(at) % answer.len();
            answer[i] ^= x;
        }
    }
    let known: Option<Tree> = input
        .known
        .map(|k| logs.prefixes[usize::from(k) % (RECORDS + 1)].tree())
        .filter(|t| t.n > 0);
    let mut tiles = Tiles {
        log,
        flips: &input.tile_flips,
    };
    if let Ok(checked) = check_lookup(&logs.verifier, known, (&m, &v), &answer, &mut tiles) {
        // Soundness: what was accepted is the real record under that id, about the module asked.
        let real = log
            .lookup_id(checked.id)
            .expect("an accepted id is in the log");
        let (_, real_text, _) = parse_record(&real).expect("a real answer parses");
        assert_eq!(checked.text, real_text, "accepted a forged record");
        assert!(
            checked
                .lines
                .iter()
                .all(|l| l.starts_with(&format!("{m} {v}")))
        );
    }

    // The parsers alone, on the same bytes.
    let text = input.text.as_str();
    if let Some(t) = Tile::parse(text) {
        assert_eq!(t.path(), text);
        let data = vec![0u8; 32 * usize::try_from(t.w.min(64)).unwrap_or(0)];
        if (1..=30).contains(&t.h) {
            let (t1, _, _) = tile_for_index(t.h, t.n.min(1 << 20));
            let _ = hash_from_tile(t, &data, t1.n);
        }
    }
    if let Ok(tree) = parse_tree(text.as_bytes()) {
        assert!(tree.n >= 0);
    }
    let _ = Hash::parse(text);
    let _ = parse_record(&answer);
    let _ = note::open(&answer, std::slice::from_ref(&logs.verifier));
    let _ = Verifier::parse(text);
    let _ = Signer::parse(text);
});
