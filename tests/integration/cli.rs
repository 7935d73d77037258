//! The command line as an operator meets it: `check-config` verdicts and exit codes, and `serve`
//! refusing a bad config with a message naming the key and the file.

use std::path::Path;
use std::process::{Command, Output};

use crate::harness::text;

fn modgate(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modgate"))
        .args(args)
        .current_dir(cwd)
        .env_remove("GOPROXY")
        .output()
        .expect("run modgate")
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

/// `modgate serve` on its embedded defaults, with no `GOPROXY` variable: started with `env`, and
/// what its start-up line said once `/healthz` answers (or it exited).
struct Defaults {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Defaults {
    fn start(env: &[(&str, &str)]) -> Defaults {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = crate::harness::free_port();
        let log = dir.path().join("stdout.log");
        let mut cmd = crate::harness::in_own_session(env!("CARGO_BIN_EXE_modgate"));
        cmd.arg("serve")
            .current_dir(dir.path())
            .env_remove("GOPROXY")
            .env_remove("GOENV")
            .env("MODGATE_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .stdout(std::fs::File::create(&log).expect("log"))
            .stderr(std::process::Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn modgate");
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut d = Defaults {
            child,
            addr,
            log,
            _dir: dir,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while crate::harness::raw_request(
            addr,
            "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .map_or(true, |r| r.status != 200)
        {
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!("modgate exited with {status}: {}", d.startup());
            }
            assert!(std::time::Instant::now() < deadline, "not ready in 30s");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        // The start-up line can reach the log a moment after the health check answers.
        while d.startup().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        d
    }

    fn startup(&self) -> String {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .find(|l| l.contains("modgate listening"))
            .unwrap_or_default()
            .to_owned()
    }
}

impl Drop for Defaults {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn embedded_defaults_cache_through_the_go_commands_proxy() {
    use crate::fixtures::{LIB, artifact_path, standard_tree};
    let up = crate::upstream::FakeUpstream::start(standard_tree());
    // The go command's own setting, as `go env -w GOPROXY=…` writes it (GOENV names the file).
    let goenv = tempfile::NamedTempFile::new().expect("goenv");
    std::fs::write(goenv.path(), format!("GOPROXY={}\n", up.url())).expect("write goenv");
    let go_dir = crate::harness::go_binary();
    let path = format!(
        "{}:/usr/bin:/bin",
        go_dir.parent().expect("go's directory").display()
    );
    let mg = Defaults::start(&[
        ("GOENV", goenv.path().to_str().expect("utf-8")),
        ("PATH", &path),
    ]);
    let info = artifact_path(LIB, "v1.1.0", "info");
    let r = crate::harness::raw_request(
        mg.addr,
        &format!("GET {info} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
    .expect("GET");
    assert_eq!(r.status, 200, "{}", mg.startup());
    assert!(up.hits(&info) >= 1, "fetched from the go command's proxy");
    let line = mg.startup();
    assert!(
        line.contains("go env GOPROXY")
            && line.contains(&up.url())
            && line.contains(r#""offline":false"#),
        "the start-up line says which upstream and why: {line}"
    );
}

#[test]
fn embedded_defaults_without_any_proxy_say_offline_and_why() {
    // No GOPROXY variable and no go command on PATH.
    let empty = tempfile::tempdir().expect("tempdir");
    let mg = Defaults::start(&[("PATH", empty.path().to_str().expect("utf-8"))]);
    let line = mg.startup();
    assert!(
        line.contains(r#""offline":true"#) && line.contains("no go command is on PATH"),
        "{line}"
    );
}

/// `server.plugin_cache`: what the first start compiled (the storage plugin at least) is on disk
/// for the next one, which reads it instead of compiling again (a compiled file rewritten would
/// have a new modification time).
#[test]
fn compiled_plugins_are_kept_on_disk_for_the_next_start() {
    let storage = tempfile::tempdir().expect("tempdir");
    let cache = tempfile::tempdir().expect("tempdir");
    let dir = cache.path().join("compiled");
    let mut setup = crate::harness::Setup::new(storage.path(), None);
    setup.env.push((
        "MODGATE_SERVER__PLUGIN_CACHE".into(),
        dir.to_str().expect("utf-8").into(),
    ));
    let mut mg = crate::harness::Modgate::start(setup);
    // Compiled code, with when it was written (wasmtime keeps usage counts in `.stats` files).
    let compiled = |dir: &Path| {
        crate::harness::walk(dir)
            .into_iter()
            .filter(|f| f.extension().is_none())
            .map(|f| {
                let written = std::fs::metadata(&f).and_then(|m| m.modified());
                (f, written.expect("mtime"))
            })
            .collect::<Vec<_>>()
    };
    // The cache is written just after compiling: wait for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while compiled(&dir).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing compiled in {}: {}",
            dir.display(),
            mg.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let first = compiled(&dir);
    std::thread::sleep(std::time::Duration::from_millis(20));
    mg.restart();
    assert_eq!(crate::harness::get(&mg, "/healthz").status, 200);
    assert_eq!(compiled(&dir), first, "the second start compiled again");
}
