//! The zip checker (`goproxy::zipcheck`) on arbitrary bytes: what an upstream or a publisher may
//! send as a module zip. No panic, no hang, no allocation beyond libFuzzer's cap (`-rss_limit_mb`,
//! `-malloc_limit_mb` in fuzz/run); an error is one line; a zip that passes hashes to the same
//! `h1:` as the go.sum hasher (`hash::hash_zip_file`) computes on its own.
#![no_main]

use std::io::Write;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use modgate::goproxy::hash::hash_zip_file;
use modgate::goproxy::zipcheck::{Limits, check_zip_with_limits};

/// Small limits so that size checks trip at fuzzing scale, not only at 500 MiB.
pub const LIMITS: Limits = Limits {
    max_zip_file: 1 << 20,
    max_total: 4 << 20,
    max_go_mod: 64 << 10,
    max_license: 64 << 10,
};

fn scratch() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary directory"))
        .path()
}

fuzz_target!(|data: &[u8]| {
    let path = scratch().join("m.zip");
    let mut f = std::fs::File::create(&path).expect("create the scratch zip");
    f.write_all(data).expect("write the scratch zip");
    drop(f);
    match check_zip_with_limits(&path, "example.com/m", "v1.0.0", &LIMITS) {
        Ok(checked) => {
            assert!(checked.uncompressed_size <= LIMITS.max_total);
            let h1 = hash_zip_file(&path).expect("a checked zip hashes");
            assert_eq!(checked.h1, h1);
        }
        Err(e) => {
            let message = e.to_string();
            assert!(
                !message.is_empty() && !message.contains(['\n', '\r']),
                "{message:?}"
            );
        }
    }
});
