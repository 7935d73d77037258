//! The command line as an operator meets it: `check-config` verdicts and exit codes, and `serve`
//! refusing a bad config with a message naming the key and the file.

use std::path::Path;
use std::process::{Command, Output};

fn modgate(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modgate"))
        .args(args)
        .current_dir(cwd)
        .env_remove("GOPROXY")
        .output()
        .expect("run modgate")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const GOOD: &str = r#"
[storage.local]
plugin = "storage-fs"
config = { root = "data" }

[upstream.public]
goproxy = "http://127.0.0.1:9/proxy"

[[route]]
match = ["corp.example"]
storage = "local"

[[route]]
match = ["*"]
storage = "local"
sources = ["public"]
"#;

#[test]
fn check_config_accepts_a_good_file_and_summarises_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("modgate.toml");
    std::fs::write(&file, GOOD).expect("write");
    let out = modgate(&["check-config", "modgate.toml"], dir.path());
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("modgate.toml: ok"), "{t}");
    assert!(
        t.contains("http://127.0.0.1:9/proxy"),
        "routes and their upstreams are listed: {t}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "check-config must not create storage"
    );
}

#[test]
fn check_config_names_the_key_and_the_file_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            GOOD.replace(
                "sources = [\"public\"]",
                "sources = [\"public\"]\nsoruces = []",
            ),
            "soruces",
        ),
        (
            GOOD.replace("\"http://127.0.0.1:9/proxy\"", "\"ftp://x\""),
            "upstream.public.goproxy",
        ),
        (
            format!("[server]\nlisten = \"nowhere\"\n{GOOD}"),
            "server.listen",
        ),
        (
            format!("[server]\ntls = {{ cert = \"missing.pem\", key = \"missing.key\" }}\n{GOOD}"),
            "server.tls.cert",
        ),
        (
            "[[route]]\nmatch = [\"*\"]\nstorage = \"nope\"\n".to_owned(),
            "route[0].storage",
        ),
    ];
    for (i, (body, key)) in cases.iter().enumerate() {
        let name = format!("bad{i}.toml");
        std::fs::write(dir.path().join(&name), body).expect("write");
        let out = modgate(&["check-config", &name], dir.path());
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{key}: {t}");
        assert!(
            t.contains(key) && t.contains(&name),
            "{key} and {name} named: {t}"
        );
        assert_eq!(t.trim().lines().count(), 1, "one line: {t}");
    }
    let out = modgate(&["check-config", "absent.toml"], dir.path());
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("absent.toml"), "{t}");
}

#[test]
fn serve_refuses_a_bad_config_without_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("m.toml"), GOOD.replace("match", "mach")).expect("write");
    let out = modgate(&["serve", "--config", "m.toml"], dir.path());
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("m.toml") && t.contains("mach"), "{t}");
}

#[test]
fn the_log_filter_variable_is_not_taken_for_a_config_key() {
    // MODGATE_LOG is the log filter; other MODGATE_* variables override config keys.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("modgate.toml"), GOOD).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_modgate"))
        .args(["check-config", "modgate.toml"])
        .current_dir(dir.path())
        .env_remove("GOPROXY")
        .env("MODGATE_LOG", "debug")
        .env("MODGATE_SERVER__LISTEN", "127.0.0.1:1")
        .output()
        .expect("run modgate");
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("127.0.0.1:1"), "the override still applies: {t}");
}
