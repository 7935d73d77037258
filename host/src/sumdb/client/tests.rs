//! A checksum database built in memory with this module's own log and keys, checked the way the
//! go command checks one: lookups at every size, known trees older and newer than the answer,
//! a fork, a log that lost records, tampered records and tiles.

use super::*;
use crate::sumdb::memlog::MemLog;
use crate::sumdb::note::Signer;

/// A database in memory.
struct Db {
    log: MemLog,
    signer: Signer,
}

impl Db {
    fn new(skey: &str) -> Self {
        Db {
            log: MemLog::new(Signer::parse(skey).expect("signer")),
            signer: Signer::parse(skey).expect("signer"),
        }
    }

    fn add(&mut self, text: &str) -> i64 {
        self.log.append(text.as_bytes()).expect("append")
    }

    fn tree(&self) -> Tree {
        self.log.tree()
    }

    /// The answer to a lookup of record `id`: the record, then the signed current tree.
    fn lookup(&self, id: i64) -> Vec<u8> {
        self.log.lookup_id(id).expect("a logged record")
    }

    fn tiles(&self, height: u32) -> Tiles<'_> {
        Tiles {
            db: self,
            height,
            tamper: None,
            read: Vec::new(),
        }
    }
}

/// Tiles served from a database, optionally with one byte flipped in one tile.
struct Tiles<'a> {
    db: &'a Db,
    height: u32,
    tamper: Option<Tile>,
    read: Vec<Tile>,
}

impl TileReader for Tiles<'_> {
    fn height(&self) -> u32 {
        self.height
    }

    fn read_tiles(&mut self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, String> {
        self.read.extend_from_slice(tiles);
        tiles
            .iter()
            .map(|t| {
                let mut data = self
                    .db
                    .log
                    .tile(*t)
                    .ok_or_else(|| format!("no tile {}", t.path()))?;
                if self.tamper == Some(*t) {
                    data[0] ^= 1;
                }
                Ok(data)
            })
            .collect()
    }
}

const SKEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";

const M7: (&str, &str) = ("example.com/m7", "v1.0.0");
const M12: (&str, &str) = ("example.com/m12", "v1.0.0");
const M52: (&str, &str) = ("example.com/m52", "v1.0.0");

fn record(i: i64) -> String {
    format!("example.com/m{i} v1.0.0 h1:AAAA{i}=\nexample.com/m{i} v1.0.0/go.mod h1:BBBB{i}=\n")
}

#[test]
fn lookups_check_at_every_size_and_every_known_tree() {
    let mut db = Db::new(SKEY);
    let key = db.signer.verifier();
    let mut trees = Vec::new();
    for i in 0..40 {
        db.add(&record(i));
        trees.push(db.tree());
    }
    for height in [2, 8] {
        for id in 0..40 {
            let answer = db.lookup(id);
            // Nothing known yet, an older tree known, the same tree known.
            for known in [None, Some(trees[id as usize]), Some(db.tree())] {
                let mv = (format!("example.com/m{id}"), "v1.0.0");
                let got = check_lookup(&key, known, (&mv.0, mv.1), &answer, &mut db.tiles(height))
                    .unwrap_or_else(|e| panic!("h{height} id {id} known {known:?}: {e}"));
                assert_eq!(got.id, id);
                assert_eq!(got.text, record(id).into_bytes());
                assert_eq!(got.newest, db.tree());
            }
        }
    }
}

#[test]
fn an_older_answer_is_checked_against_the_newer_tree_known() {
    let mut db = Db::new(SKEY);
    let key = db.signer.verifier();
    for i in 0..10 {
        db.add(&record(i));
    }
    let old_answer = db.lookup(3);
    for i in 10..30 {
        db.add(&record(i));
    }
    let newest = db.tree();
    let got = check_lookup(
        &key,
        Some(newest),
        ("example.com/m3", "v1.0.0"),
        &old_answer,
        &mut db.tiles(2),
    )
    .expect("check");
    assert_eq!(got.lines.len(), 2);
    // A genuine record of another module is not an answer about this one.
    let e = check_lookup(
        &key,
        Some(newest),
        ("example.com/m4", "v1.0.0"),
        &old_answer,
        &mut db.tiles(2),
    )
    .expect_err("another module's record");
    assert!(e.to_string().contains("something else"), "{e}");
    assert_eq!(got.newest, newest, "the newer tree stays the newest known");
    assert_eq!(got.newest_note, None);
}

#[test]
fn a_fork_or_a_shrunk_log_is_a_security_error_naming_both_trees() {
    let mut honest = Db::new(SKEY);
    let key = honest.signer.verifier();
    for i in 0..20 {
        honest.add(&record(i));
    }
    let seen = honest.tree();
    // The same signer, another history: record 5 differs.
    let mut fork = Db::new(SKEY);
    for i in 0..25 {
        fork.add(&if i == 5 { record(99) } else { record(i) });
    }
    let e = check_lookup(&key, Some(seen), M7, &fork.lookup(7), &mut fork.tiles(2))
        .expect_err("a fork");
    match &e {
        CheckError::Security {
            older_n, newer_n, ..
        } => assert_eq!((*older_n, *newer_n), (20, 25)),
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains(&seen.hash.to_string()), "{e}");
    // A log wiped and rebuilt smaller, with other records: not a prefix of what was seen.
    let mut wiped = Db::new(SKEY);
    for i in 0..8 {
        wiped.add(&record(i + 50));
    }
    let e = check_lookup(
        &key,
        Some(seen),
        M52,
        &wiped.lookup(2),
        &mut honest.tiles(2),
    )
    .expect_err("shrunk");
    assert!(matches!(e, CheckError::Security { .. }), "{e}");
}

#[test]
fn tampered_records_signatures_and_tiles_are_refused() {
    let mut db = Db::new(SKEY);
    let key = db.signer.verifier();
    for i in 0..30 {
        db.add(&record(i));
    }
    let answer = db.lookup(12);
    // Another record's text under this id.
    let text = String::from_utf8(answer.clone()).expect("utf-8");
    let swapped = text.replacen("h1:AAAA12=", "h1:AAAA13=", 1);
    let e =
        check_lookup(&key, None, M12, swapped.as_bytes(), &mut db.tiles(2)).expect_err("swapped");
    assert!(e.to_string().contains("cannot authenticate"), "{e}");
    // The tree note signed by someone else.
    let (_, other_vkey) = Signer::generate("PeterNeumann").expect("key");
    let other = Verifier::parse(&other_vkey).expect("verifier");
    assert!(matches!(
        check_lookup(&other, None, M12, &answer, &mut db.tiles(2)),
        Err(CheckError::Invalid(_))
    ));
    // A tile with a flipped bit, wherever it sits.
    let mut refused = 0;
    for tamper in crate::sumdb::tile::new_tiles(2, 0, 30) {
        let mut tiles = db.tiles(2);
        tiles.tamper = Some(tamper);
        match check_lookup(&key, None, M12, &answer, &mut tiles) {
            Err(CheckError::Tiles(_)) | Err(CheckError::Invalid(_)) => refused += 1,
            Ok(_) => assert!(
                !tiles.read.contains(&tamper),
                "{} was read and accepted",
                tamper.path()
            ),
            Err(e) => panic!("{e}"),
        }
    }
    assert!(refused > 0);
}
