#![expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use super::coderepo::{is_major, module_path, retract_intervals};
use super::*;

fn source() -> GitSource {
    let mapping = |prefix: &str| RepoMapping {
        module_prefix: prefix.into(),
        url: "/nonexistent".into(),
        credentials: None,
    };
    GitSource::new(
        PathBuf::from("/nonexistent-cache"),
        vec![mapping("corp.example/lib"), mapping("corp.example/lib/big")],
        Duration::from_secs(60),
    )
}

fn locate(path: &str) -> Option<(usize, String, String, String)> {
    let m = ModulePath::parse(path).unwrap();
    source()
        .locate(&m)
        .map(|l| (l.mapping, l.code_dir, l.path_prefix, l.path_major))
}

#[test]
fn locate_follows_new_code_repo() {
    let s = |x: &str| x.to_owned();
    assert_eq!(
        locate("corp.example/lib"),
        Some((0, s(""), s("corp.example/lib"), s("")))
    );
    assert_eq!(
        locate("corp.example/lib/v2"),
        Some((0, s(""), s("corp.example/lib"), s("/v2")))
    );
    assert_eq!(
        locate("corp.example/lib/a/b/v3"),
        Some((0, s("a/b"), s("corp.example/lib/a/b"), s("/v3")))
    );
    // The longest prefix wins.
    assert_eq!(
        locate("corp.example/lib/big/x"),
        Some((1, s("x"), s("corp.example/lib/big/x"), s("")))
    );
    // A path prefix is matched by whole elements only.
    assert_eq!(locate("corp.example/library"), None);
    assert_eq!(locate("corp.example"), None);
}

#[test]
fn module_path_reads_the_module_line_leniently() {
    assert_eq!(module_path(b"module a.example/m\n"), "a.example/m");
    assert_eq!(
        module_path(b"// c\nmodule \"a.example/m/v2\" // x\n\ngo 1.21\n"),
        "a.example/m/v2"
    );
    assert_eq!(module_path(b"module\ta.example/m\r\n"), "a.example/m");
    assert_eq!(module_path(b"modules x\n"), "");
    assert_eq!(module_path(b"go 1.21\n"), "");
}

#[test]
fn is_major_matches_find_dir() {
    assert!(is_major("a.example/m", ""));
    assert!(!is_major("a.example/m/v2", ""));
    assert!(is_major("a.example/m/v2", "/v2"));
    assert!(!is_major("a.example/m", "/v2"));
    assert!(!is_major("a.example/m/v3", "/v2"));
    assert!(!is_major("", ""));
}

#[test]
fn retract_intervals_cover_all_forms() {
    let data = b"module a.example/m\n\nretract v1.0.0 // oops\nretract [v1.1.0, v1.1.5]\nretract (\n\tv1.2.0\n\t\"v1.3.0\"\n\t[v1.4.0,v1.4.9] // range\n)\n// retract v9.0.0\n";
    let s = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(
        retract_intervals(data),
        vec![
            s("v1.0.0", "v1.0.0"),
            s("v1.1.0", "v1.1.5"),
            s("v1.2.0", "v1.2.0"),
            s("v1.3.0", "v1.3.0"),
            s("v1.4.0", "v1.4.9"),
        ]
    );
}

#[test]
fn rev_info_serializes_like_the_go_command() {
    let info = RevInfo {
        version: "v1.0.0".into(),
        time: "2024-01-02T03:04:05Z".into(),
    };
    assert_eq!(
        serde_json::to_string(&info).unwrap(),
        r#"{"Version":"v1.0.0","Time":"2024-01-02T03:04:05Z"}"#
    );
}
