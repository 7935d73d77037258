//! Auth plugins on routes, with the real binary and real WebAssembly test plugins (built from
//! `plugins/test/` by `host/build.rs`): allowed requests flow, a failing plugin fails only its
//! own route closed with a 503 naming it, and shows as unhealthy in `/readyz`.

use std::time::Duration;

use crate::fixtures::{LIB, artifact_path, standard_tree};
use crate::harness::{GoEnv, Modgate, Setup, get, one_line_problem, raw_request};
use crate::upstream::FakeUpstream;

fn plugin(name: &str) -> String {
    format!("{}/test-plugins/{name}.wasm", env!("OUT_DIR"))
}

fn setup(storage: &std::path::Path, upstream: &str) -> Setup {
    let mut s = Setup::new(storage, Some(upstream));
    s.extra_toml = format!(
        r#"
[plugins.allow]
wasm = "{allow}"

[plugins.trap]
wasm = "{trap}"

[plugins.spin]
wasm = "{spin}"
limits = {{ timeout_ms = 50 }}

[[route]]
match = ["example.com/fixture"]
storage = "local"
sources = SOURCES
auth = ["allow"]

[[route]]
match = ["example.com/trapped"]
storage = "local"
sources = SOURCES
auth = ["trap"]

[[route]]
match = ["example.com/spinning"]
storage = "local"
sources = SOURCES
auth = ["spin"]
"#,
        allow = plugin("allow-all"),
        trap = plugin("trap"),
        spin = plugin("loop"),
    );
    s
}

#[test]
fn failing_plugins_fail_only_their_route_closed() {
    let up = FakeUpstream::start(standard_tree());
    let storage = tempfile::tempdir().expect("tempdir");
    let mg = Modgate::start(setup(storage.path(), &up.url()));

    let ok = get(&mg, &artifact_path(LIB, "v1.1.0", "info"));
    assert_eq!(ok.status, 200, "{}", mg.logs());
    let cc = ok.header("cache-control").unwrap_or_default();
    assert!(
        cc.starts_with("private"),
        "answers behind auth are private: {cc}"
    );

    // Normal traffic keeps flowing while the faulty plugins fail.
    let addr = mg.addr();
    let normal = std::thread::spawn(move || {
        let mut failures = Vec::new();
        for i in 0..200 {
            let v = ["v1.0.0", "v1.1.0"][i % 2];
            let r = raw_request(
                addr,
                &format!(
                    "GET {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                    artifact_path(LIB, v, "mod")
                ),
            );
            match r {
                Ok(r) if r.status == 200 => {}
                Ok(r) => failures.push(r.status),
                Err(_) => failures.push(0),
            }
        }
        failures
    });
    for _ in 0..8 {
        for (path, plugin) in [
            ("/example.com/trapped/x/@v/list", "trap"),
            ("/example.com/spinning/x/@v/list", "spin"),
        ] {
            let r = get(&mg, path);
            assert_eq!(
                r.status,
                503,
                "{path}: {}",
                String::from_utf8_lossy(&r.body)
            );
            let body = String::from_utf8_lossy(&r.body);
            assert!(body.contains(plugin), "the 503 names the plugin: {body}");
            assert_eq!(one_line_problem(&r.body), None, "one line: {body}");
        }
    }
    let failures = normal.join().expect("normal traffic");
    assert!(
        failures.is_empty(),
        "requests on the healthy route failed: {failures:?}"
    );

    let ready = get(&mg, "/readyz");
    assert_eq!(ready.status, 503);
    let text = String::from_utf8_lossy(&ready.body);
    assert!(
        text.contains("trap") && text.contains("spin") && !text.contains("allow"),
        "{text}"
    );
    assert_eq!(get(&mg, "/healthz").status, 200);
}

#[test]
fn the_go_command_downloads_through_an_auth_route() {
    let up = FakeUpstream::start(standard_tree());
    let storage = tempfile::tempdir().expect("tempdir");
    let mg = Modgate::start(setup(storage.path(), &up.url()));
    let go = GoEnv::new(&mg.url());
    let got = go.download(&[format!("{LIB}@v1.1.0")]);
    assert!(
        got[0]["Sum"].as_str().is_some_and(|s| s.starts_with("h1:")),
        "{got:?}"
    );
    let _ = Duration::ZERO;
}
