//! The zip checker (`goproxy::zipcheck`) on well-formed zips with fuzzed entries: names under and
//! outside the `module@version/` prefix, case collisions, directories, go.mod/LICENSE/vendor
//! rules, stored and deflated entries, then optional byte flips in the archive. A zip that
//! passes has the files and the `h1:` its entries give (computed here from what was written).
#![no_main]

use std::io::{Cursor, Write};
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use modgate::goproxy::hash::hash1;
use modgate::goproxy::zipcheck::{Limits, check_zip_with_limits};
use zip::write::SimpleFileOptions;

const PREFIX: &str = "example.com/m@v1.0.0/";
const LIMITS: Limits = Limits {
    max_zip_file: 1 << 20,
    max_total: 4 << 20,
    max_go_mod: 64 << 10,
    max_license: 64 << 10,
};

/// Names that exercise the rules more often than random bytes would.
const STEMS: &[&str] = &[
    "go.mod",
    "LICENSE",
    "a.go",
    "A.go",
    "sub/go.mod",
    "vendor/modules.txt",
    "vendor/x/y.go",
    "sub/vendor/x.go",
    ".hg_archival.txt",
    "dir/",
    "x/../y.go",
    "./z.go",
    "con.go",
    "a:b.go",
];

#[derive(Arbitrary, Debug)]
enum Name {
    Stem(u8),
    Under(String),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
struct Entry {
    name: Name,
    content: Vec<u8>,
    deflate: bool,
    dir: bool,
}

#[derive(Arbitrary, Debug)]
struct Input {
    entries: Vec<Entry>,
    flips: Vec<(u16, u8)>,
}

fn scratch() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary directory"))
        .path()
}

fuzz_target!(|input: Input| {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let mut written: Vec<(String, Vec<u8>)> = Vec::new();
    for e in input.entries.iter().take(64) {
        let name = match &e.name {
            Name::Stem(i) => format!("{PREFIX}{}", STEMS[usize::from(*i) % STEMS.len()]),
            Name::Under(rest) => format!("{PREFIX}{rest}"),
            Name::Raw(name) => name.clone(),
        };
        let method = if e.deflate {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        let options = SimpleFileOptions::default().compression_method(method);
        if e.dir {
            if zip.add_directory(name.as_str(), options).is_err() {
                return;
            }
            let dir = if name.ends_with('/') {
                name
            } else {
                format!("{name}/")
            };
            written.push((dir, Vec::new()));
        } else {
            if zip.start_file(name.as_str(), options).is_err() {
                return; // the writer refuses duplicates
            }
            zip.write_all(&e.content).expect("write to memory");
            written.push((name, e.content.clone()));
        }
    }
    let mut bytes = zip.finish().expect("finish in memory").into_inner();
    let flipped = !input.flips.is_empty() && !bytes.is_empty();
    for (at, byte) in &input.flips {
        let at = usize::from(*at) % bytes.len().max(1);
        if let Some(b) = bytes.get_mut(at) {
            *b ^= byte;
        }
    }
    let path = scratch().join("m.zip");
    std::fs::write(&path, &bytes).expect("write the scratch zip");
    match check_zip_with_limits(&path, "example.com/m", "v1.0.0", &LIMITS) {
        Ok(checked) if !flipped => {
            // dirhash.HashZip: every entry, directories as empty files.
            let expected = hash1(
                written
                    .iter()
                    .map(|(name, content)| (name.clone(), sha256(content))),
            );
            assert_eq!(checked.h1, expected);
            let files = written
                .iter()
                .filter(|(name, _)| !name.ends_with('/'))
                .count();
            assert_eq!(checked.files, files);
        }
        Ok(_) => {}
        Err(e) => {
            let message = e.to_string();
            assert!(
                !message.is_empty() && !message.contains(['\n', '\r']),
                "{message:?}"
            );
        }
    }
});

fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).into()
}
