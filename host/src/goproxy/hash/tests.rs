use sha2::{Digest as _, Sha256};

use super::{hash_go_mod, hash_zip_file, hash1};
use crate::goproxy::zipcheck::testzip::{PREFIX, RawEntry, build, build_prefixed, raw_zip, tmp};

const GO_MOD: &[u8] = b"module example.com/m\n";

#[test]
fn go_mod_vectors() {
    // GOPROXY.md §4.
    assert_eq!(
        hash_go_mod(b""),
        "h1:G7mAYYxgmS0lVkHyy2hEOLQCFB0DlQFTMLWggykrydY="
    );
    assert_eq!(
        hash_go_mod(GO_MOD),
        "h1:flS2VctbRrTv+sBE+VKgxx6hlkMGPVz9MGOmzMYFg3k="
    );
}

#[test]
fn zip_vector() {
    // GOPROXY.md §4, in both entry orders: the names are sorted before hashing.
    let want = "h1:mf3ZgaLi4oSAsMraSF2c/29zuDnyW+GWSJW1ofY+5Bk=";
    let zip = build_prefixed(&[("go.mod", GO_MOD), ("a.go", b"package a\n")]);
    assert_eq!(hash_zip_file(tmp(&zip).path()).expect("hash"), want);
    let zip = build_prefixed(&[("a.go", b"package a\n"), ("go.mod", GO_MOD)]);
    assert_eq!(hash_zip_file(tmp(&zip).path()).expect("hash"), want);
}

#[test]
fn hash1_is_the_sorted_summary() {
    let a = Sha256::digest(b"package a\n").into();
    let m = Sha256::digest(GO_MOD).into();
    let summary = format!(
        "{}  {PREFIX}a.go\n{}  {PREFIX}go.mod\n",
        hex::encode(a as [u8; 32]),
        hex::encode(m as [u8; 32])
    );
    use base64::Engine as _;
    let want = format!(
        "h1:{}",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(summary.as_bytes()))
    );
    let got = hash1([(format!("{PREFIX}go.mod"), m), (format!("{PREFIX}a.go"), a)]);
    assert_eq!(got, want);
    assert_eq!(got, "h1:mf3ZgaLi4oSAsMraSF2c/29zuDnyW+GWSJW1ofY+5Bk=");
}

#[test]
fn hash1_sorts_bytewise() {
    // "B" (0x42) < "a" (0x61) < "é" (0xC3 …): byte order, not case-insensitive or char order.
    let d = |s: &str| -> [u8; 32] { Sha256::digest(s.as_bytes()).into() };
    let files = ["é", "a", "B"].map(|n| (n.to_owned(), d(n)));
    let summary: String = ["B", "a", "é"]
        .iter()
        .map(|n| format!("{}  {n}\n", hex::encode(d(n))))
        .collect();
    use base64::Engine as _;
    let want = format!(
        "h1:{}",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(summary.as_bytes()))
    );
    assert_eq!(hash1(files), want);
}

#[test]
fn empty_set_hashes_the_empty_summary() {
    assert_eq!(hash1([]), "h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    let zip = build(&[]);
    assert_eq!(hash_zip_file(tmp(&zip).path()).expect("hash"), hash1([]));
}

#[test]
fn directory_entries_are_hashed_like_go() {
    // dirhash.HashZip hashes every zip entry, directories included (as empty files).
    let zip = build_prefixed(&[("sub/", b""), ("sub/a.go", b"package a\n")]);
    let empty: [u8; 32] = Sha256::digest(b"").into();
    let want = hash1([
        (format!("{PREFIX}sub/"), empty),
        (
            format!("{PREFIX}sub/a.go"),
            Sha256::digest(b"package a\n").into(),
        ),
    ]);
    assert_eq!(hash_zip_file(tmp(&zip).path()).expect("hash"), want);
}

#[test]
fn stored_entries_with_data_descriptors() {
    // Go's zip.Writer streams entries, so real module zips carry data descriptors.
    let mut a = RawEntry::file("a.go", b"package a\n");
    a.descriptor = true;
    let mut m = RawEntry::file("go.mod", GO_MOD);
    m.descriptor = true;
    let zip = raw_zip(&[m, a]);
    assert_eq!(
        hash_zip_file(tmp(&zip).path()).expect("hash"),
        "h1:mf3ZgaLi4oSAsMraSF2c/29zuDnyW+GWSJW1ofY+5Bk="
    );
}

#[test]
fn unreadable_zips_are_errors() {
    let err = hash_zip_file(tmp(b"not a zip at all").path()).expect_err("garbage");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    let err = hash_zip_file(std::path::Path::new("/nonexistent/x.zip")).expect_err("missing");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    let dup = raw_zip(&[RawEntry::file("a.go", b"1"), RawEntry::file("a.go", b"2")]);
    let err = hash_zip_file(tmp(&dup).path()).expect_err("duplicate");
    assert!(err.to_string().contains("more than once"), "{err}");
    let mut bad_crc = RawEntry::file("a.go", b"package a\n");
    bad_crc.crc = Some(1);
    let err = hash_zip_file(tmp(&raw_zip(&[bad_crc])).path()).expect_err("crc");
    assert!(err.to_string().contains("checksum"), "{err}");
}

/// Zips the go command downloaded must hash to their `.ziphash` (skipped when the module cache
/// holds none; fill it with `go mod download golang.org/x/mod@v0.20.0` in any module).
#[test]
fn module_cache_zips_match_their_ziphash() {
    for (zip, ziphash, _, _) in crate::goproxy::zipcheck::testzip::cached_zips(5) {
        let got = hash_zip_file(&zip).expect("hash cached zip");
        assert_eq!(got, ziphash, "{}", zip.display());
    }
}
