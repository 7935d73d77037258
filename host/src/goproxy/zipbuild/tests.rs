//! Unit tests for each zip rule; the oracle tests are in tests/integration/zipbuild.rs.

#![expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use super::gomod::{GoVersion, go_version, is_vendored_package};
use super::*;

#[test]
fn go_line_is_read_leniently() {
    assert_eq!(go_version(b"module m\n\ngo 1.24\n"), GoVersion::Lang(1, 24));
    assert_eq!(go_version(b"go 1.24rc1 // c\r\n"), GoVersion::Lang(1, 24));
    assert_eq!(go_version(b"go 1.23.4\n"), GoVersion::Lang(1, 23));
    assert_eq!(go_version(b"go v1.25-lax\n"), GoVersion::Lang(1, 25));
    assert_eq!(go_version(b"go 1.24\ngo 1.24\n"), GoVersion::None);
    assert_eq!(go_version(b"go 1.01\n"), GoVersion::None);
    assert_eq!(go_version(b"go (\n 1.24\n)\n"), GoVersion::None);
    assert_eq!(go_version(b"require (\n x v1\n"), GoVersion::None);
    assert_eq!(go_version(b""), GoVersion::None);
}

#[test]
fn vendor_rules_depend_on_the_go_line() {
    let old = GoVersion::Lang(1, 23);
    let new = GoVersion::Lang(1, 24);
    for v in [old, new, GoVersion::None] {
        assert!(is_vendored_package("vendor/example.com/p/p.go", v));
        assert!(!is_vendored_package("vendor/top.go", v));
        assert!(is_vendored_package("pkg/vendor/foo/foo.go", v));
        assert!(!is_vendored_package("pkg/p.go", v));
    }
    assert!(!is_vendored_package("vendor/modules.txt", old));
    assert!(is_vendored_package("vendor/modules.txt", new));
    // The pre-1.24 offset bug.
    assert!(is_vendored_package("pkg/vendor/vendor.go", old));
    assert!(!is_vendored_package("pkg/vendor/vendor.go", new));
    assert!(!is_vendored_package("abcdefghij/vendor/x.go", new));
}

#[test]
fn ident_matches_git() {
    let id = gix::ObjectId::from_hex(b"055c8729cdcc372500a08db659c045e16c4409fb").unwrap();
    let h = "055c8729cdcc372500a08db659c045e16c4409fb";
    assert_eq!(
        git::ident_to_worktree(b"$Id$\n", &id),
        format!("$Id: {h} $\n").into_bytes()
    );
    assert_eq!(
        git::ident_to_worktree(b"a $Id: old $ b", &id),
        format!("a $Id: {h} $ b").into_bytes()
    );
    // Another VCS's id (inner spaces) and a broken line are kept.
    assert_eq!(
        git::ident_to_worktree(b"$Id: a b c $", &id),
        b"$Id: a b c $"
    );
    assert_eq!(git::ident_to_worktree(b"$Id: x\n$", &id), b"$Id: x\n$");
    assert_eq!(git::ident_to_worktree(b"no ids", &id), b"no ids");
}

fn module() -> ModulePath {
    ModulePath::parse("example.com/m").unwrap()
}

#[test]
fn versions_are_checked_before_anything_is_read() {
    let mut out = io::Cursor::new(Vec::new());
    let nowhere = Path::new("/nonexistent/zipbuild");
    for (v, rule) in [
        ("v1.0", "not canonical"),
        ("v2.0.0", "v0 or v1"),
        ("v2.0+incompatible", "not canonical"),
    ] {
        let e = zip_from_dir(nowhere, &module(), v, &mut out).unwrap_err();
        assert!(e.to_string().contains(rule), "{v}: {e}");
    }
}

#[test]
fn incompatible_needs_v2_and_no_go_mod() {
    assert!(check_incompatible(&module(), "v2.0.0+incompatible", false).is_ok());
    let e = check_incompatible(&module(), "v2.0.0+incompatible", true).unwrap_err();
    assert!(e.to_string().contains("contains a go.mod"), "{e}");
    let e = check_incompatible(&module(), "v1.0.0+incompatible", false).unwrap_err();
    assert!(e.to_string().contains("compatible"), "{e}");
}

#[test]
fn dir_zip_synthesizes_only_the_mod_file() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("a.go"), "package a\n").unwrap();
    let mut out = io::Cursor::new(Vec::new());
    let b = zip_from_dir(d.path(), &module(), "v1.0.0", &mut out).unwrap();
    assert_eq!(b.go_mod, b"module example.com/m\n");
    assert_eq!(b.mod_h1, "h1:flS2VctbRrTv+sBE+VKgxx6hlkMGPVz9MGOmzMYFg3k=");
    assert_eq!(b.files, 1);
}

#[test]
fn dir_zip_matches_the_spec_vector() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("go.mod"), "module example.com/m\n").unwrap();
    std::fs::write(d.path().join("a.go"), "package a\n").unwrap();
    let mut out = io::Cursor::new(Vec::new());
    let b = zip_from_dir(d.path(), &module(), "v1.0.0", &mut out).unwrap();
    assert_eq!(b.zip_h1, "h1:mf3ZgaLi4oSAsMraSF2c/29zuDnyW+GWSJW1ofY+5Bk=");
}

#[test]
fn collisions_and_bad_names_fail_with_the_file_named() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("a.go"), "x").unwrap();
    std::fs::write(d.path().join("A.go"), "y").unwrap();
    let mut out = io::Cursor::new(Vec::new());
    let e = zip_from_dir(d.path(), &module(), "v1.0.0", &mut out).unwrap_err();
    assert!(
        e.to_string()
            .contains("case-insensitive file name collision"),
        "{e}"
    );
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("bad:name"), "x").unwrap();
    let e = zip_from_dir(d.path(), &module(), "v1.0.0", &mut out).unwrap_err();
    assert!(
        e.to_string().starts_with("bad:name: malformed file path"),
        "{e}"
    );
}

#[test]
fn every_invalid_file_is_reported_up_to_a_cap() {
    // x/mod lists every invalid file; a user fixing a tree wants them all at once.
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("GO.MOD"), "module example.com/m\n").unwrap();
    std::fs::write(d.path().join("bad'.go"), "x").unwrap();
    std::fs::write(d.path().join("ok.go"), "package ok\n").unwrap();
    let mut out = io::Cursor::new(Vec::new());
    let e = zip_from_dir(d.path(), &module(), "v1.0.0", &mut out)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("2 invalid files: "), "{e}");
    assert!(
        e.contains("GO.MOD: go.mod files must have lowercase names"),
        "{e}"
    );
    assert!(
        e.contains("bad'.go: malformed file path \"bad'.go\": invalid char '\\''"),
        "{e}"
    );
    let d = tempfile::tempdir().unwrap();
    for i in 0..25 {
        std::fs::write(d.path().join(format!("bad{i}:x.go")), "x").unwrap();
    }
    let e = zip_from_dir(d.path(), &module(), "v1.0.0", &mut out)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("25 invalid files: "), "{e}");
    assert_eq!(e.matches("malformed file path").count(), 20, "{e}");
    assert!(e.ends_with("; and 5 more invalid files"), "{e}");
    assert!(!e.contains('\n'), "{e}");
}

#[test]
fn clean_paths() {
    assert!(is_clean("a/b.go"));
    for p in ["a//b", "./a", "a/..", "a/", ""] {
        assert!(!is_clean(p), "{p}");
    }
}
