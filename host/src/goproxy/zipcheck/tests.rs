use sha2::{Digest as _, Sha256};

use super::testzip::{
    MODULE, PREFIX, RawEntry, VERSION, build, build_prefixed, cached_zips, forge_size, raw_zip, tmp,
};
use super::{
    CheckedZip, Limits, MAX_GO_MOD, ZipError, check_go_mod, check_zip, check_zip_with_limits, clean,
};
use crate::goproxy::collision::fold;
use crate::goproxy::hash::{hash_zip_file, hash1};

const GO_MOD: &[u8] = b"module example.com/m\n";
const VECTOR: &str = "h1:mf3ZgaLi4oSAsMraSF2c/29zuDnyW+GWSJW1ofY+5Bk=";

fn check(zip: &[u8]) -> Result<CheckedZip, ZipError> {
    check_zip(tmp(zip).path(), MODULE, VERSION)
}

fn check_limited(zip: &[u8], limits: Limits) -> Result<CheckedZip, ZipError> {
    check_zip_with_limits(tmp(zip).path(), MODULE, VERSION, &limits)
}

/// Asserts the zip is rejected with a one-line message containing `want`.
#[track_caller]
fn rejected(result: Result<CheckedZip, ZipError>, want: &str) -> String {
    let err = result.expect_err("zip must be rejected").0;
    assert!(
        err.contains(want),
        "error {err:?} does not contain {want:?}"
    );
    assert!(
        !err.contains('\n') && !err.contains('\r'),
        "multi-line error {err:?}"
    );
    err
}

// --- good zips ----------------------------------------------------------------------------

#[test]
fn vector_zip_passes_with_its_hash() {
    let zip = build_prefixed(&[("go.mod", GO_MOD), ("a.go", b"package a\n")]);
    let checked = check(&zip).expect("valid zip");
    assert_eq!(
        checked,
        CheckedZip {
            h1: VECTOR.to_owned(),
            files: 2,
            uncompressed_size: 31,
            go_mod: Some(GO_MOD.to_vec()),
        }
    );
}

#[test]
fn directory_entries_are_allowed_and_hashed() {
    // checkZip ignores (but collision-checks) directory entries, dirhash.HashZip hashes them.
    let zip = build_prefixed(&[
        ("sub/", b""),
        ("sub/a.go", b"package a\n"),
        ("go.mod", GO_MOD),
    ]);
    let checked = check(&zip).expect("valid zip");
    assert_eq!(checked.files, 2);
    assert_eq!(checked.h1, hash_zip_file(tmp(&zip).path()).expect("hash"));
    assert_ne!(checked.h1, VECTOR);
}

#[test]
fn bare_prefix_entry_is_allowed_and_hashed() {
    let mut entries = vec![RawEntry::named(PREFIX.as_bytes(), b"")];
    entries.push(RawEntry::file("go.mod", GO_MOD));
    let zip = raw_zip(&entries);
    let checked = check(&zip).expect("valid zip");
    let empty: [u8; 32] = Sha256::digest(b"").into();
    let want = hash1([
        (PREFIX.to_owned(), empty),
        (format!("{PREFIX}go.mod"), Sha256::digest(GO_MOD).into()),
    ]);
    assert_eq!((checked.h1, checked.files), (want, 1));
}

#[test]
fn empty_zip_is_allowed() {
    // checkZip has no rule requiring a file; the go command accepts an empty module zip.
    let checked = check(&build(&[])).expect("empty zip");
    assert_eq!(
        checked,
        CheckedZip {
            h1: hash1([]),
            files: 0,
            uncompressed_size: 0,
            go_mod: None,
        }
    );
}

#[test]
fn zip_without_go_mod_is_allowed() {
    let checked = check(&build_prefixed(&[("a.go", b"package a\n")])).expect("valid");
    assert_eq!((checked.files, checked.go_mod), (1, None));
}

#[test]
fn data_descriptors_and_unix_regular_modes_are_fine() {
    let mut a = RawEntry::file("a.go", b"package a\n");
    a.descriptor = true;
    a.creator = 3 << 8 | 20;
    a.external_attrs = 0o100_644 << 16;
    let mut m = RawEntry::file("go.mod", GO_MOD);
    m.descriptor = true;
    assert_eq!(check(&raw_zip(&[m, a])).expect("valid").h1, VECTOR);
}

#[test]
fn limits_are_inclusive() {
    let zip = build_prefixed(&[("go.mod", GO_MOD), ("LICENSE", b"MIT\n")]);
    let exact = Limits {
        max_zip_file: zip.len() as u64,
        max_total: (GO_MOD.len() + 4) as u64,
        max_go_mod: GO_MOD.len() as u64,
        max_license: 4,
    };
    check_limited(&zip, exact).expect("every limit met exactly");
}

// --- names --------------------------------------------------------------------------------

#[test]
fn wrong_module_prefix() {
    let zip = build(&[("example.com/other@v1.0.0/a.go", b"package a\n")]);
    let err = rejected(
        check(&zip),
        "path does not have prefix \"example.com/m@v1.0.0/\"",
    );
    assert!(err.starts_with("example.com/other@v1.0.0/a.go: "), "{err}");
}

#[test]
fn other_version_prefix() {
    let zip = build(&[("example.com/m@v1.0.1/a.go", b"package a\n")]);
    rejected(check(&zip), "does not have prefix");
}

#[test]
fn prefix_without_slash_and_prefix_lookalikes() {
    rejected(
        check(&build(&[("example.com/m@v1.0.0", b"x")])),
        "does not have prefix",
    );
    rejected(
        check(&build(&[("example.com/m@v1.0.0.go", b"x")])),
        "does not have prefix",
    );
    rejected(check(&build(&[("a.go", b"x")])), "does not have prefix");
}

#[test]
fn dot_dot_escapes() {
    let zip = raw_zip(&[RawEntry::file("../x", b"x")]);
    let err = rejected(check(&zip), "example.com/m@v1.0.0/../x: ");
    assert!(err.contains("\"..\""), "{err}");
    rejected(
        check(&raw_zip(&[RawEntry::file("a/../../x", b"x")])),
        "file path is not clean",
    );
    rejected(
        check(&raw_zip(&[RawEntry::file("a/..", b"x")])),
        "file path is not clean",
    );
    // On Windows `..\x` escapes too; it is refused for its backslash first.
    rejected(
        check(&raw_zip(&[RawEntry::file("..\\x", b"x")])),
        "invalid char '\\\\'",
    );
}

#[test]
fn absolute_names() {
    rejected(
        check(&raw_zip(&[RawEntry::named(b"/etc/passwd", b"x")])),
        "does not have prefix",
    );
    rejected(
        check(&raw_zip(&[RawEntry::file("/etc/passwd", b"x")])),
        "malformed file path \"/etc/passwd\"",
    );
}

#[test]
fn unclean_names() {
    for name in ["a//b", "./a", "a/./b", "a/"] {
        // "a/" with content is a directory by name; make it a file name that is unclean instead.
        let name = if name == "a/" { "a/b/." } else { name };
        rejected(check(&raw_zip(&[RawEntry::file(name, b"x")])), "not clean");
    }
    // An entry "prefix//" is a directory whose name is empty after the slash: Clean("") is ".".
    rejected(check(&raw_zip(&[RawEntry::file("/", b"")])), "not clean");
}

#[test]
fn backslashes_and_control_characters() {
    rejected(
        check(&raw_zip(&[RawEntry::file("a\\b.go", b"x")])),
        "invalid char '\\\\'",
    );
    let err = rejected(
        check(&raw_zip(&[RawEntry::file("a\nb.go", b"x")])),
        "malformed file path",
    );
    assert!(err.contains("a\\nb.go"), "{err}");
}

#[test]
fn non_utf8_names() {
    let mut name = PREFIX.as_bytes().to_vec();
    name.extend_from_slice(b"\xff.go");
    rejected(
        check(&raw_zip(&[RawEntry::named(&name, b"x")])),
        "invalid UTF-8",
    );
}

#[test]
fn duplicate_names() {
    let zip = raw_zip(&[RawEntry::file("a.go", b"1"), RawEntry::file("a.go", b"2")]);
    let err = rejected(check(&zip), "multiple entries for file");
    assert_eq!(
        err,
        "example.com/m@v1.0.0/a.go: multiple entries for file \"a.go\""
    );
}

#[test]
fn duplicate_directory_entries_are_fine_for_go_but_ambiguous_for_the_decoder() {
    // checkZip accepts a directory listed twice. The zip crate collapses equal names, but
    // directories are never decompressed, so this still passes.
    let zip = raw_zip(&[
        RawEntry::file("d/", b""),
        RawEntry::file("d/", b""),
        RawEntry::file("d/a.go", b"package a\n"),
    ]);
    assert_eq!(check(&zip).expect("valid").files, 1);
}

#[test]
fn case_colliding_names() {
    let zip = build_prefixed(&[("A.go", b"1"), ("a.go", b"2")]);
    let err = rejected(check(&zip), "case-insensitive file name collision");
    assert_eq!(
        err,
        "example.com/m@v1.0.0/a.go: case-insensitive file name collision: \"A.go\" and \"a.go\""
    );
    // Through a parent directory.
    let zip = build_prefixed(&[("Dir/a.go", b"1"), ("dir/b.go", b"2")]);
    rejected(check(&zip), "collision: \"Dir\" and \"dir\"");
    // Beyond ASCII: the Kelvin sign folds with k, final sigma with sigma.
    let zip = build_prefixed(&[("\u{212a}.go", b"1"), ("k.go", b"2")]);
    rejected(check(&zip), "case-insensitive file name collision");
    let zip = build_prefixed(&[("ς.go", b"1"), ("Σ.go", b"2")]);
    rejected(check(&zip), "case-insensitive file name collision");
}

#[test]
fn file_and_directory_collision() {
    let zip = build_prefixed(&[("a", b"1"), ("a/b", b"2")]);
    let err = rejected(check(&zip), "is both a file and a directory");
    assert_eq!(
        err,
        "example.com/m@v1.0.0/a/b: entry \"a\" is both a file and a directory"
    );
    let zip = build_prefixed(&[("a/b", b"2"), ("a", b"1")]);
    rejected(check(&zip), "is both a file and a directory");
    // An explicit directory entry and a file of the same name.
    let zip = raw_zip(&[RawEntry::file("a/", b""), RawEntry::file("a", b"1")]);
    rejected(check(&zip), "is both a file and a directory");
    // And with different case.
    let zip = build_prefixed(&[("A", b"1"), ("a/b", b"2")]);
    rejected(check(&zip), "case-insensitive file name collision");
}

#[test]
fn nested_go_mod() {
    let zip = build_prefixed(&[
        ("go.mod", GO_MOD),
        ("sub/go.mod", b"module example.com/m/sub\n"),
    ]);
    let err = rejected(check(&zip), "go.mod file not in module root directory");
    assert_eq!(
        err,
        "example.com/m@v1.0.0/sub/go.mod: go.mod file not in module root directory"
    );
    rejected(
        check(&build_prefixed(&[("sub/GO.MOD", b"")])),
        "not in module root",
    );
    rejected(
        check(&build_prefixed(&[("Go.Mod", b"")])),
        "go.mod files must have lowercase names",
    );
    // Only the base name "go.mod" matters.
    check(&build_prefixed(&[
        ("sub/go.mod.txt", b""),
        ("go.modx", b""),
    ]))
    .expect("valid");
}

// --- sizes --------------------------------------------------------------------------------

fn small(max_total: u64, max_go_mod: u64, max_license: u64) -> Limits {
    Limits {
        max_zip_file: 1 << 20,
        max_total,
        max_go_mod,
        max_license,
    }
}

#[test]
fn oversize_go_mod_and_license() {
    let zip = build_prefixed(&[("go.mod", GO_MOD)]);
    let err = rejected(
        check_limited(&zip, small(1000, 10, 10)),
        "go.mod file too large",
    );
    assert_eq!(
        err,
        "example.com/m@v1.0.0/go.mod: go.mod file too large (max size is 10 bytes)"
    );
    let zip = build_prefixed(&[("LICENSE", &[b'x'; 11])]);
    rejected(
        check_limited(&zip, small(1000, 10, 10)),
        "LICENSE file too large",
    );
    // Only the root files are capped on their own.
    let zip = build_prefixed(&[("sub/LICENSE", &[b'x'; 11]), ("go.mod.bak", &[b'x'; 50])]);
    check_limited(&zip, small(1000, 10, 10)).expect("not root go.mod/LICENSE");
}

#[test]
fn total_declared_size_over_limit() {
    let zip = build_prefixed(&[("a", &[b'a'; 600]), ("b", &[b'b'; 600])]);
    let err = rejected(
        check_limited(&zip, small(1000, 10, 10)),
        "total uncompressed size",
    );
    assert_eq!(
        err,
        "total uncompressed size of module contents too large (max size is 1000 bytes)"
    );
}

#[test]
fn zip_file_over_limit() {
    let zip = build_prefixed(&[("a", b"x")]);
    let limits = Limits {
        max_zip_file: zip.len() as u64 - 1,
        ..Limits::GO
    };
    let err = rejected(check_limited(&zip, limits), "module zip file is too large");
    assert!(err.ends_with(&format!(
        "({} bytes; limit is {} bytes)",
        zip.len(),
        zip.len() - 1
    )));
}

#[test]
fn zip_bomb_with_forged_small_size() {
    // 8 MiB of zeros deflate to a few KiB; the headers claim 100 bytes.
    let name = format!("{PREFIX}bomb.txt");
    let mut zip = build(&[(&name, &vec![0u8; 8 << 20])]);
    assert!(zip.len() < 64 << 10);
    forge_size(&mut zip, &name, 100);
    let err = rejected(check(&zip), "not a valid zip file");
    assert_eq!(
        err,
        "not a valid zip file: uncompressed size of file example.com/m@v1.0.0/bomb.txt is larger than declared size (100 bytes)"
    );
    // Also with limits small enough that only the actual byte count could catch it.
    rejected(
        check_limited(&zip, small(1000, 10, 10)),
        "is larger than declared size",
    );
}

#[test]
fn forged_large_size() {
    let name = format!("{PREFIX}a.go");
    let mut zip = build(&[(&name, b"package a\n")]);
    forge_size(&mut zip, &name, 11);
    rejected(
        check(&zip),
        "decompresses to 10 bytes, not its declared size of 11 bytes",
    );
    // Stored data shorter than declared.
    let mut e = RawEntry::file("a.go", b"package a\n");
    e.size = Some(20);
    rejected(check(&raw_zip(&[e])), "not its declared size of 20 bytes");
}

#[test]
fn actual_bytes_count_against_the_total() {
    // Declared sizes within the limit, but one entry inflates beyond its declared size: the
    // stream stops one byte past the declaration, long before the real size.
    let name = format!("{PREFIX}b");
    let mut zip = build(&[
        (&format!("{PREFIX}a"), &[b'a'; 500][..]),
        (&name, &vec![0u8; 1 << 20]),
    ]);
    forge_size(&mut zip, &name, 400);
    rejected(
        check_limited(&zip, small(1000, 10, 10)),
        "is larger than declared size (400 bytes)",
    );
}

// --- kinds, encryption, methods -----------------------------------------------------------

#[test]
fn symlinks_are_rejected() {
    let mut link = RawEntry::file("link", b"/etc/passwd");
    link.creator = 3 << 8 | 20;
    link.external_attrs = 0o120_777 << 16;
    let err = rejected(check(&raw_zip(&[link])), "is a symbolic link");
    assert_eq!(err, "example.com/m@v1.0.0/link: file is a symbolic link");
    // As the zip crate writes them.
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.add_symlink(
        format!("{PREFIX}l"),
        "a.go",
        zip::write::SimpleFileOptions::default(),
    )
    .expect("symlink");
    let zip = w.finish().expect("finish").into_inner();
    rejected(check(&zip), "is a symbolic link");
}

#[test]
fn other_irregular_files_are_rejected() {
    let mut fifo = RawEntry::file("fifo", b"");
    fifo.creator = 3 << 8 | 20;
    fifo.external_attrs = 0o010_644 << 16;
    rejected(check(&raw_zip(&[fifo])), "not a regular file");
    // The mode bits of non-Unix creators are not Unix modes.
    let mut fat = RawEntry::file("fat", b"");
    fat.external_attrs = 0o120_777 << 16;
    check(&raw_zip(&[fat])).expect("FAT creator: no Unix mode");
}

#[test]
fn encrypted_entries_are_rejected() {
    let mut e = RawEntry::file("a.go", b"package a\n");
    e.flags = 1;
    rejected(check(&raw_zip(&[e])), "is encrypted");
}

#[test]
fn unsupported_methods_are_rejected() {
    let mut e = RawEntry::file("a.go", b"package a\n");
    e.method = 12; // bzip2
    rejected(check(&raw_zip(&[e])), "unsupported compression method 12");
}

#[test]
fn directory_entries_with_content_are_rejected() {
    let mut d = RawEntry::file("d/", b"");
    d.size = Some(5);
    rejected(check(&raw_zip(&[d])), "directory entry declares content");
}

// --- corrupt data -------------------------------------------------------------------------

#[test]
fn crc_mismatch() {
    let mut e = RawEntry::file("a.go", b"package a\n");
    e.crc = Some(0xdead_beef);
    rejected(check(&raw_zip(&[e])), "corrupt data");
    let mut e = RawEntry::file("a.go", b"package a\n");
    e.descriptor = true;
    e.descriptor_crc = Some(0xdead_beef);
    rejected(check(&raw_zip(&[e])), "data descriptor checksum mismatch");
}

#[test]
fn truncated_and_garbage_files() {
    let zip = build_prefixed(&[("go.mod", GO_MOD), ("a.go", b"package a\n")]);
    for cut in [zip.len() / 2, zip.len() - 1, 10] {
        rejected(check(&zip[..cut]), "not a valid zip file");
    }
    rejected(check(b""), "not a valid zip file");
    rejected(check(&[0x42; 5000]), "not a valid zip file");
    // A valid end record whose directory is garbage.
    let mut broken = zip.clone();
    let cd = broken
        .windows(4)
        .position(|w| w == b"PK\x01\x02")
        .expect("central directory");
    broken[cd + 1] = b'X';
    rejected(check(&broken), "not a valid zip file");
}

#[test]
fn local_header_missing() {
    let mut zip = raw_zip(&[RawEntry::file("a.go", b"package a\n")]);
    zip[0] = b'X';
    rejected(check(&zip), "local header signature is missing");
}

#[test]
fn name_shown_differently_to_other_readers_is_ambiguous() {
    // An Info-ZIP Unicode path field (0x7075) renames the entry for readers that honour it (the
    // zip crate does, Go does not): version 1, CRC-32 of the stored name, new name.
    let mut e = RawEntry::file("a.go", b"package a\n");
    let other = format!("{PREFIX}b.go");
    let mut extra = vec![0x75, 0x70];
    extra.extend_from_slice(&((5 + other.len()) as u16).to_le_bytes());
    extra.push(1);
    extra.extend_from_slice(&super::testzip::crc32(&e.name).to_le_bytes());
    extra.extend_from_slice(other.as_bytes());
    e.extra = extra;
    rejected(check(&raw_zip(&[e])), "ambiguous zip");
}

#[test]
fn every_invalid_entry_is_reported_as_x_mod_reports_it() {
    // x/mod's zip/testdata/check_zip/various.txt: the same five invalid entries, its wording.
    let zip = raw_zip(&[
        RawEntry::named(b"noprefix", b""),
        RawEntry::file("valid.go", b""),
        RawEntry::file("not/../clean", b""),
        RawEntry::file("invalid.go'", b""),
        RawEntry::file("GO.MOD", b""),
        RawEntry::file("valid.go", b"duplicate"),
    ]);
    let err = rejected(check(&zip), "5 invalid files: ");
    for want in [
        "noprefix: path does not have prefix \"example.com/m@v1.0.0/\"",
        "example.com/m@v1.0.0/not/../clean: file path is not clean",
        "example.com/m@v1.0.0/invalid.go': malformed file path \"invalid.go'\": invalid char '\\''",
        "example.com/m@v1.0.0/GO.MOD: go.mod files must have lowercase names",
        "example.com/m@v1.0.0/valid.go: multiple entries for file \"valid.go\"",
    ] {
        assert!(err.contains(want), "{err}\nlacks {want}");
    }
}

#[test]
fn errors_stay_on_one_line() {
    let zip = raw_zip(&[RawEntry::named(b"evil\nname", b"x")]);
    let err = rejected(check(&zip), "does not have prefix");
    assert!(err.contains("evil\\nname"), "{err}");
}

// --- helpers ------------------------------------------------------------------------------

#[test]
fn go_mod_size() {
    check_go_mod(&vec![b'x'; MAX_GO_MOD as usize]).expect("at the limit");
    let err = check_go_mod(&vec![b'x'; MAX_GO_MOD as usize + 1]).expect_err("over");
    assert_eq!(
        err.0,
        "go.mod file too large (16777217 bytes; max size is 16777216 bytes)"
    );
    check_go_mod(b"\xff\xfe not utf-8").expect("Go does not require UTF-8");
}

#[test]
fn clean_matches_go_path_clean() {
    // Cases from Go's path/path_test.go.
    for (input, want) in [
        ("", "."),
        ("abc", "abc"),
        ("abc/def", "abc/def"),
        ("a/b/c", "a/b/c"),
        (".", "."),
        ("..", ".."),
        ("../..", "../.."),
        ("../../abc", "../../abc"),
        ("/abc", "/abc"),
        ("/", "/"),
        ("abc/", "abc"),
        ("abc/def/", "abc/def"),
        ("/abc/", "/abc"),
        ("abc//def//ghi", "abc/def/ghi"),
        ("//abc", "/abc"),
        ("abc//", "abc"),
        ("abc/./def", "abc/def"),
        ("/./abc/def", "/abc/def"),
        ("abc/.", "abc"),
        ("abc/def/ghi/../jkl", "abc/def/jkl"),
        ("abc/def/../ghi/../jkl", "abc/jkl"),
        ("abc/def/..", "abc"),
        ("abc/def/../..", "."),
        ("/abc/def/../..", "/"),
        ("abc/def/../../..", ".."),
        ("/abc/def/../../..", "/"),
        ("abc/def/../../../ghi/jkl/../../../mno", "../../mno"),
        ("abc/./../def", "def"),
        ("abc//./../def", "def"),
        ("abc/../../././../def", "../../def"),
    ] {
        assert_eq!(clean(input), want, "Clean({input:?})");
    }
}

#[test]
fn fold_matches_go_equal_fold() {
    let same = |a: &str, b: &str| fold(a) == fold(b);
    assert!(same("Go.Mod", "go.mod"));
    assert!(same("\u{212a}", "k")); // Kelvin sign
    assert!(same("ſ", "S")); // long s
    assert!(same("ς", "Σ") && same("σ", "ς")); // final sigma
    assert!(same("ß", "ẞ")); // sharp s and its capital
    assert!(same("ǅ", "ǆ") && same("ǅ", "Ǆ")); // title case digraph
    assert!(same("Ω", "\u{2126}")); // Ohm sign
    assert!(!same("ı", "i") && !same("İ", "i")); // Turkic folds are not simple folds
    assert!(!same("ß", "ss")); // full folding is not simple folding
    assert_eq!(fold("plain/ascii.go"), "plain/ascii.go");
}

/// Zips the go command downloaded (if any are cached here) pass every check, with the hash the
/// go command recorded.
#[test]
fn module_cache_zips_pass() {
    let cached = cached_zips(5);
    eprintln!("checking {} zips from the module cache", cached.len());
    for (zip, ziphash, module, version) in cached {
        let checked =
            check_zip(&zip, &module, &version).unwrap_or_else(|e| panic!("{}: {e}", zip.display()));
        assert_eq!(checked.h1, ziphash, "{}", zip.display());
        // And the same zip is refused for another version.
        assert!(check_zip(&zip, &module, "v0.0.0-bad").is_err());
    }
}

// --- layouts other writers produce (outcomes checked against Go's CheckZip + HashZip) -----

#[test]
fn zip64_entries() {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().large_file(true);
    for (name, data) in [("go.mod", GO_MOD), ("a.go", &b"package a\n"[..])] {
        w.start_file(format!("{PREFIX}{name}"), options)
            .expect("start");
        std::io::Write::write_all(&mut w, data).expect("write");
    }
    let zip = w.finish().expect("finish").into_inner();
    assert_eq!(check(&zip).expect("zip64 zip").h1, VECTOR);
}

#[test]
fn prepended_data() {
    // Self-extracting archives: the end record's offsets are relative to the zip proper.
    let mut zip = vec![b'#'; 100];
    zip.extend_from_slice(&build_prefixed(&[
        ("go.mod", GO_MOD),
        ("a.go", b"package a\n"),
    ]));
    assert_eq!(check(&zip).expect("base offset").h1, VECTOR);
}

#[test]
fn archive_comment_with_fake_end_record() {
    // Go's archive/zip takes the last end signature whose comment fits the file: here the fake
    // one in the comment, which lists no entries. Go hashes this zip as empty, and so must we
    // (the zip crate alone would see a.go).
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file(
        format!("{PREFIX}a.go"),
        zip::write::SimpleFileOptions::default(),
    )
    .expect("start");
    std::io::Write::write_all(&mut w, b"package a\n").expect("write");
    let mut comment = b"PK\x05\x06".to_vec();
    comment.extend_from_slice(&[0u8; 18]);
    w.set_raw_comment(comment.into_boxed_slice());
    let zip = w.finish().expect("finish").into_inner();
    assert_eq!(
        check(&zip).expect("empty as Go sees it"),
        check(&build(&[])).expect("empty")
    );
}
