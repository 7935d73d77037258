//! Hostile input from both sides: requests that try to escape the storage root or break the
//! parser, and an upstream that serves bombs and malformed zips.

use std::path::Path;

use crate::fixtures::rawzip::{self, Entry};
use crate::fixtures::{JSON, ModuleVersion, TEXT, Tree, ZIP, artifact_path, standard_tree};
use crate::harness::{
    GoEnv, Modgate, Setup, one_line_problem, raw_request, raw_request_bytes, snapshot, walk,
};
use crate::protocol::assert_no_temp_files;
use crate::upstream::FakeUpstream;

/// What a hostile request must get.
#[derive(Clone, Copy, Debug)]
enum Want {
    /// Any 4xx with a one-line text body.
    ClientError,
    /// Exactly this status, with a one-line text body.
    Status(u16),
    /// Any 4xx (400, 414, 431, …) or the connection closed; never 5xx. For requests HTTP itself
    /// rejects, hyper may answer before modgate sees them, so the body is not checked.
    Rejected,
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").into_bytes()
}

fn request_matrix() -> Vec<(String, Vec<u8>, Want)> {
    use Want::*;
    let mut m: Vec<(String, Vec<u8>, Want)> = Vec::new();
    let mut add = |label: &str, req: Vec<u8>, want: Want| m.push((label.to_string(), req, want));
    // Bad escapes.
    for p in [
        "/github.com/!!x/@v/list",
        "/github.com/%zz/@v/list",
        "/github.com/Azure/x/@v/list",
        "/github.com/x!/@v/list",
        "/github.com/!/@v/list",
        "/example.com/fixture/lib/@v/v1.0.0!.info",
        "/example.com/%C3%A9/@v/list",
    ] {
        add(p, get(p), ClientError);
    }
    add("raw non-ASCII path", b"GET /example.com/\xc3\xa9/@v/list HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".to_vec(), Rejected);
    // Traversal.
    for p in [
        "/../etc/passwd",
        "/../../../../../../etc/passwd/@v/list",
        "/%2e%2e/%2e%2e/etc/passwd/@v/list",
        "/example.com/%2e%2e/%2e%2e/%2e%2e/canary/@v/list",
        "/example.com/x/@v/..%2f..%2fx.zip",
        "/example.com/x/@v/..%2f..%2f..%2f..%2fcanary%2fpwned.info",
        "/example.com%2F..%2F..%2Fpwned/@v/list",
        "/example.com/x%2F..%2F..%2F..%2Fpwned/@v/v1.0.0.info",
        "/example.com/x%5C..%5C..%5Cpwned/@v/list",
        "/example.com/x/@v/v1.0.0%5C..%5C..%5Cpwned.info",
        "/example.com/x%00/@v/list",
        "/example.com/x/@v/v1.0.0.info%00.zip",
        "/example.com/./x/@v/list",
        "/example.com//x/@v/list",
        "/.example.com/x/@v/list",
        "/example.com/x./@v/list",
    ] {
        add(p, get(p), ClientError);
    }
    // Reserved names.
    for p in [
        "/example.com/CON/@v/list",
        "/example.com/!c!o!n/@v/list",
        "/example.com/con/@v/list",
        "/example.com/x/!a!u!x.go/@v/list",
        "/example.com/com1/@v/list",
        "/example.com/nul.txt/@v/list",
        "/example.com/x~1/@v/list",
    ] {
        add(p, get(p), ClientError);
    }
    // Versions: `.mod`/`.zip` only for canonical versions (404), wrong major (404).
    for p in [
        "/example.com/x/@v/v1.2.zip",
        "/example.com/x/@v/v1.2.mod",
        "/example.com/fixture/lib/@v/v1.1.zip",
        "/example.com/fixture/lib/@v/v1.1.0+meta.zip",
        "/example.com/x/@v/v2.0.0.mod",
        "/example.com/fixture/lib/@v/v2.0.0.zip",
        "/example.com/fixture/lib/v2/@v/v1.0.0.mod",
        "/example.com/fixture/lib/@v/master.zip",
    ] {
        add(p, get(p), Status(404));
    }
    for p in [
        "/example.com/x/@v/garbage!.info",
        "/example.com/x/@v/v1.0.0..info",
        "/example.com/x/@v/.info",
    ] {
        add(p, get(p), ClientError);
    }
    // Unknown endpoints.
    for p in [
        "/example.com/fixture/lib/@v/v1.0.0.tar",
        "/example.com/fixture/lib/@v/",
        "/example.com/fixture/lib/@v/list/extra",
        "/example.com/fixture/lib/@w/list",
        "/example.com/fixture/lib/@latest/x",
        "/@v/list",
        "/nothing-here",
    ] {
        add(p, get(p), ClientError);
    }
    let long = format!("/example.com/{}/@v/list", "a".repeat(20_000));
    add("20 KB path", get(&long), Rejected);
    // Methods.
    add(
        "POST",
        b"POST /example.com/fixture/lib/@v/list HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc".to_vec(),
        Status(405),
    );
    add("DELETE", b"DELETE /example.com/fixture/lib/@v/v1.0.0.zip HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".to_vec(), Status(405));
    // Oversized headers.
    let big = format!(
        "GET /example.com/fixture/lib/@v/list HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    add("100 KB header", big.into_bytes(), Rejected);
    let many: String = (0..2000).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many = format!(
        "GET /example.com/fixture/lib/@v/list HTTP/1.1\r\nHost: 127.0.0.1\r\n{many}Connection: close\r\n\r\n"
    );
    add("2000 headers", many.into_bytes(), Rejected);
    m
}

/// Bad escapes, traversal, reserved names, bad versions, unknown endpoints, other methods and
/// oversized headers: a 4xx (never 5xx) with a one-line text body, and nothing is created
/// outside the storage root.
#[test]
fn hostile_requests_get_one_line_4xx_and_touch_nothing() {
    let up = FakeUpstream::start(standard_tree());
    let tmp = tempfile::tempdir().expect("tempdir");
    // Deep enough that any traversal of up to five `..` still lands inside `tmp`, where it shows.
    let deep = tmp.path().join("l1/l2/l3/l4");
    let root = deep.join("storage");
    for canary in [tmp.path().join("l1/canary"), deep.join("canary")] {
        std::fs::create_dir_all(&canary).expect("mkdir canary");
        std::fs::write(canary.join("keep.txt"), "canary\n").expect("write canary");
    }
    std::fs::create_dir_all(&root).expect("mkdir storage");
    let outside_before = outside(tmp.path(), &root);
    let mg = Modgate::start(Setup::new(&root, Some(&up.url())));

    let mut failures = Vec::new();
    for (label, req, want) in request_matrix() {
        let res = raw_request_bytes(mg.addr(), &req);
        match &res {
            Ok(r) => eprintln!(
                "{label}: {} {}",
                r.status,
                String::from_utf8_lossy(&r.body).trim_end()
            ),
            Err(e) => eprintln!("{label}: {e}"),
        }
        let problem = match (want, &res) {
            (Want::Rejected, Err(_)) => None,
            (Want::Rejected, Ok(r)) if (400..500).contains(&r.status) => None,
            (Want::Rejected, Ok(r)) => {
                Some(format!("want 4xx or a closed connection, got {}", r.status))
            }
            (_, Err(e)) => Some(format!("no response: {e}")),
            (_, Ok(r)) => {
                let status_ok = match want {
                    Want::Status(s) => r.status == s,
                    _ => (400..500).contains(&r.status),
                };
                if !status_ok {
                    Some(format!(
                        "want {want:?}, got {} {:?}",
                        r.status,
                        String::from_utf8_lossy(&r.body)
                    ))
                } else if r.header("content-type") != Some("text/plain; charset=utf-8") {
                    Some(format!(
                        "{}: content-type {:?}",
                        r.status,
                        r.header("content-type")
                    ))
                } else {
                    one_line_problem(&r.body).map(|p| format!("{}: {p}", r.status))
                }
            }
        };
        if let Some(p) = problem {
            failures.push(format!("{label}: {p}"));
        }
    }
    // The server is still up and well after all of it.
    let health = raw_request(
        mg.addr(),
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert!(
        health.is_ok_and(|r| r.status == 200),
        "modgate unhealthy after the hostile requests"
    );
    assert!(
        failures.is_empty(),
        "{} hostile requests answered wrongly:\n{}",
        failures.len(),
        failures.join("\n")
    );

    assert_eq!(
        outside(tmp.path(), &root),
        outside_before,
        "files appeared or vanished outside the storage root"
    );
    let stray: Vec<_> = walk(&root)
        .into_iter()
        .filter(|p| {
            ["passwd", "pwned", "canary"]
                .iter()
                .any(|w| p.to_string_lossy().contains(w))
        })
        .collect();
    assert!(stray.is_empty(), "hostile names reached storage: {stray:?}");
    // Nothing the requests named was asked of the upstream either.
    let leaked: Vec<_> = up
        .requests()
        .into_iter()
        .filter(|r| {
            ["passwd", "pwned", "canary", "CON", "com1", "..", "%", "\0"]
                .iter()
                .any(|w| r.contains(w))
        })
        .collect();
    assert!(
        leaked.is_empty(),
        "hostile paths reached the upstream: {leaked:?}"
    );
}

/// Every path under `dir` except the storage root's subtree (with canary contents).
fn outside(dir: &Path, root: &Path) -> Vec<String> {
    let rel_root = root
        .strip_prefix(dir)
        .expect("root inside dir")
        .to_string_lossy()
        .into_owned();
    snapshot(dir)
        .into_iter()
        .filter(|p| p != &rel_root && !p.starts_with(&format!("{rel_root}/")))
        .map(|p| {
            let full = dir.join(&p);
            match std::fs::read(&full) {
                Ok(b) => format!("{p} = {}", String::from_utf8_lossy(&b)),
                Err(_) => p,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// (b) The hostile upstream

struct HostileCase {
    name: &'static str,
    /// `zip`, `mod` or `info`: the artifact that is bad and is requested.
    ext: &'static str,
    body: Vec<u8>,
    /// The 502 body names the problem with one of these words (case-insensitive).
    words: &'static [&'static str],
}

fn module(name: &str) -> String {
    format!("example.com/hostile/{name}")
}

fn hostile_cases() -> Vec<HostileCase> {
    let p = |name: &str| format!("{}@v1.0.0/", module(name));
    let go_mod = |name: &str| format!("module {}\n", module(name)).into_bytes();
    let mut cases = Vec::new();
    let mut zip_case = |name: &'static str, entries: Vec<Entry>, words: &'static [&'static str]| {
        cases.push(HostileCase {
            name,
            ext: "zip",
            body: rawzip::write(&entries),
            words,
        });
    };
    // > 500 MiB uncompressed in ~600 KB, sizes stated honestly …
    zip_case(
        "bomb",
        vec![
            Entry::stored(format!("{}go.mod", p("bomb")), &go_mod("bomb")),
            Entry::zeros(format!("{}zero.bin", p("bomb")), 600 << 20),
        ],
        &["large", "size", "limit", "bomb", "500"],
    );
    // … and the same claiming to be 1000 bytes.
    zip_case(
        "bomb-lying",
        vec![
            Entry::stored(format!("{}go.mod", p("bomb-lying")), &go_mod("bomb-lying")),
            Entry::zeros(format!("{}zero.bin", p("bomb-lying")), 600 << 20).declaring(1000),
        ],
        &[
            "large", "size", "limit", "bomb", "500", "length", "mismatch", "corrupt", "invalid",
        ],
    );
    zip_case(
        "escape",
        vec![
            Entry::stored(format!("{}go.mod", p("escape")), &go_mod("escape")),
            Entry::stored(format!("{}../../x", p("escape")), b"x"),
        ],
        &["path", "invalid", "escape", ".."],
    );
    zip_case(
        "absolute",
        vec![
            Entry::stored(format!("{}go.mod", p("absolute")), &go_mod("absolute")),
            Entry::stored("/etc/x", b"x"),
        ],
        &["path", "prefix", "invalid", "absolute"],
    );
    zip_case(
        "duplicate",
        vec![
            Entry::stored(format!("{}go.mod", p("duplicate")), &go_mod("duplicate")),
            Entry::stored(format!("{}a.go", p("duplicate")), b"package a\n"),
            Entry::stored(format!("{}a.go", p("duplicate")), b"package b\n"),
        ],
        &["duplicate", "multiple", "collision", "collide", "twice"],
    );
    zip_case(
        "case",
        vec![
            Entry::stored(format!("{}go.mod", p("case")), &go_mod("case")),
            Entry::stored(format!("{}A.go", p("case")), b"package a\n"),
            Entry::stored(format!("{}a.go", p("case")), b"package a\n"),
        ],
        &["case", "collision", "collide", "duplicate"],
    );
    zip_case(
        "prefix",
        vec![
            Entry::stored(
                "example.com/other@v1.0.0/go.mod",
                b"module example.com/other\n",
            ),
            Entry::stored("example.com/other@v1.0.0/a.go", b"package a\n"),
        ],
        &["prefix"],
    );
    zip_case(
        "nested",
        vec![
            Entry::stored(format!("{}go.mod", p("nested")), &go_mod("nested")),
            Entry::stored(
                format!("{}sub/go.mod", p("nested")),
                b"module example.com/hostile/nested/sub\n",
            ),
            Entry::stored(format!("{}sub/s.go", p("nested")), b"package sub\n"),
        ],
        &["go.mod", "nested", "submodule", "root"],
    );
    zip_case(
        "backslash",
        vec![
            Entry::stored(format!("{}go.mod", p("backslash")), &go_mod("backslash")),
            Entry::stored(format!("{}a\\..\\b.go", p("backslash")), b"x"),
        ],
        &["path", "invalid", "character", "\\"],
    );
    cases.push(HostileCase {
        name: "not-a-zip",
        ext: "zip",
        body: b"<html>this is not a zip</html>\n".to_vec(),
        words: &["zip", "archive", "invalid", "corrupt"],
    });
    // A .mod over the 16 MiB go.mod limit.
    let mut big = go_mod("bigmod");
    while big.len() <= 16 << 20 {
        big.extend_from_slice(
            b"// padding padding padding padding padding padding padding padding\n",
        );
    }
    cases.push(HostileCase {
        name: "bigmod",
        ext: "mod",
        body: big,
        words: &["large", "size", "limit", "16"],
    });
    // An .info for another version than the one asked for.
    cases.push(HostileCase {
        name: "info-mismatch",
        ext: "info",
        body: b"{\"Version\":\"v9.9.9\",\"Time\":\"2024-01-01T00:00:00Z\"}\n".to_vec(),
        words: &["version", "v9.9.9", "mismatch"],
    });
    cases
}

/// Each bad artifact from the upstream → 502 with a one-line body naming the problem, and
/// nothing of that version (no `.info`/`.mod`/`.zip`, no temp file) is left in storage.
#[test]
fn hostile_upstream_artifacts_are_rejected_and_not_stored() {
    let cases = hostile_cases();
    let mut tree = Tree::new();
    for c in &cases {
        let m = module(c.name);
        tree.add(ModuleVersion::new(
            &m,
            "v1.0.0",
            Some(&format!("module {m}\n")),
            &[("a.go", b"package a\n")],
        ));
    }
    let up = FakeUpstream::start(tree);
    for c in &cases {
        let ct = match c.ext {
            "zip" => ZIP,
            "info" => JSON,
            _ => TEXT,
        };
        up.override_path(
            &artifact_path(&module(c.name), "v1.0.0", c.ext),
            200,
            ct,
            c.body.clone(),
        );
    }
    let storage = tempfile::tempdir().expect("tempdir");
    let root = storage.path().join("data");
    let mg = Modgate::start(Setup::new(&root, Some(&up.url())));

    let mut failures = Vec::new();
    for c in &cases {
        let path = artifact_path(&module(c.name), "v1.0.0", c.ext);
        let r = match raw_request(
            mg.addr(),
            &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
        ) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{}: no response: {e}", c.name));
                continue;
            }
        };
        let body = String::from_utf8_lossy(&r.body).into_owned();
        eprintln!("{}: {} {}", c.name, r.status, body.trim_end());
        if r.status != 502 {
            failures.push(format!(
                "{}: want 502, got {} ({} bytes) {:?}",
                c.name,
                r.status,
                r.body.len(),
                &body[..body.len().min(200)]
            ));
        } else if let Some(p) = one_line_problem(&r.body) {
            failures.push(format!("{}: {p}", c.name));
        } else if !c
            .words
            .iter()
            .any(|w| body.to_lowercase().contains(&w.to_lowercase()))
        {
            failures.push(format!(
                "{}: the message does not name the problem (want one of {:?}): {body:?}",
                c.name, c.words
            ));
        }
        let stored: Vec<_> = walk(&root)
            .into_iter()
            .filter(|p| {
                p.to_string_lossy()
                    .contains(&format!("/hostile/{}/", c.name))
            })
            .collect();
        if !stored.is_empty() {
            failures.push(format!("{}: left in storage: {stored:?}", c.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} hostile artifacts mishandled:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_no_temp_files(&root);

    // What the user sees: the go command fails and shows modgate's one-line reason.
    let go = GoEnv::new(&mg.url());
    let out = go.output(&[
        "mod",
        "download",
        "-json",
        &format!("{}@v1.0.0", module("duplicate")),
    ]);
    let shown =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "go downloaded a zip with duplicate entries: {shown}"
    );
    assert!(shown.contains("502"), "go does not show the 502: {shown}");
}

/// The upstream drops the connection in the middle of a zip: 502 (after the retries), nothing
/// stored; once the upstream is healthy the same request succeeds with the whole zip.
#[test]
fn upstream_dropping_mid_zip_stores_nothing() {
    let tree = standard_tree();
    let up = FakeUpstream::start(tree.clone());
    let zip = artifact_path(crate::fixtures::LIB, "v1.1.0", "zip");
    up.truncate_path(&zip, Some(100));
    let storage = tempfile::tempdir().expect("tempdir");
    let root = storage.path().join("data");
    let mg = Modgate::start(Setup::new(&root, Some(&up.url())));
    let ask = || {
        raw_request(
            mg.addr(),
            &format!("GET {zip} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
        )
        .expect("a response")
    };
    let r = ask();
    assert!(
        r.status == 502 || r.status == 504,
        "{} {:?}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    if let Some(p) = one_line_problem(&r.body) {
        panic!("{p}");
    }
    let stored: Vec<_> = walk(&root)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with("v1.1.0.zip"))
        .collect();
    assert!(stored.is_empty(), "a truncated zip was stored: {stored:?}");
    assert_no_temp_files(&root);

    up.truncate_path(&zip, None);
    let r = ask();
    assert_eq!(r.status, 200);
    assert!(r.body == tree.bytes(&zip), "zip differs after recovery");
}

/// The value of `modgate_upstream_skipped` for the fake upstream (0 when absent).
fn skipped_gauge(mg: &Modgate, up: &FakeUpstream) -> String {
    let metrics = crate::harness::get(mg, "/metrics");
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    let prefix = format!("modgate_upstream_skipped{{upstream=\"{}\"}} ", up.url());
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or("0")
        .to_owned()
}

/// A 503 with `Retry-After: 1` is retried after that second (not after the short backoff); one
/// that asks for longer than modgate waits (10 s) ends the attempts at once, and the upstream
/// is then skipped for the time it asked for.
#[test]
fn retry_after_is_honoured() {
    use crate::fixtures::{LIB, UPPER};
    let up = FakeUpstream::start(standard_tree());
    let storage = tempfile::tempdir().expect("tempdir");
    let mg = Modgate::start(Setup::new(&storage.path().join("data"), Some(&up.url())));
    let info = artifact_path(LIB, "v1.1.0", "info");
    up.fail_next(&info, 1, 503, Some("1"));
    let started = std::time::Instant::now();
    let r = crate::harness::get(&mg, &info);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "retried before the Retry-After: {:?}",
        started.elapsed()
    );
    assert_eq!(up.hits(&info), 2);

    // Two minutes is more than a request waits: refused now, and the upstream left alone.
    let mut setup = mg.setup.clone();
    setup
        .env
        .push(("MODGATE_UPSTREAM__HERMETIC__SKIP_AFTER".into(), "5".into()));
    drop(mg);
    let mg = Modgate::start(setup);
    let upper = artifact_path(UPPER, "v1.0.0", "info");
    up.fail_next(&upper, 1, 429, Some("120"));
    let started = std::time::Instant::now();
    let r = crate::harness::get(&mg, &upper);
    assert!(r.status >= 500, "{}", r.status);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(up.hits(&upper), 1, "retried against its Retry-After");
    assert_eq!(skipped_gauge(&mg, &up), "1");
    let mod_file = artifact_path(UPPER, "v1.0.0", "mod");
    let r = crate::harness::get(&mg, &mod_file);
    assert!(r.status >= 500, "{}", r.status);
    assert_eq!(up.hits(&mod_file), 0, "asked while it asked for time");
}

/// `skip_after` failed fetches in a row: the upstream is skipped (requests fail at once without
/// reaching it, the metric says so) for `skip_for`; the first request after that reaches it
/// again and, answered, ends the pause.
#[test]
fn an_upstream_that_keeps_failing_is_skipped_for_a_while() {
    use crate::fixtures::{LIB, UPPER};
    let up = FakeUpstream::start(standard_tree());
    let storage = tempfile::tempdir().expect("tempdir");
    let mut setup = Setup::new(&storage.path().join("data"), Some(&up.url()));
    setup.upstream_retries = 0;
    for (key, value) in [("SKIP_AFTER", "2"), ("SKIP_FOR", "1s")] {
        setup
            .env
            .push((format!("MODGATE_UPSTREAM__HERMETIC__{key}"), value.into()));
    }
    let mg = Modgate::start(setup);
    let failing = artifact_path(LIB, "v1.1.0", "info");
    up.fail_next(&failing, 100, 503, None);
    for _ in 0..2 {
        assert_eq!(crate::harness::get(&mg, &failing).status, 502);
    }
    assert_eq!(up.hits(&failing), 2);
    assert_eq!(skipped_gauge(&mg, &up), "1");
    // Skipped: even a path that would work fails at once, without a request upstream.
    let healthy = artifact_path(UPPER, "v1.0.0", "info");
    let r = crate::harness::get(&mg, &healthy);
    assert_eq!(r.status, 502);
    let body = String::from_utf8_lossy(&r.body).into_owned();
    assert!(body.contains("not asked again for"), "{body}");
    assert_eq!(up.hits(&healthy), 0);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(crate::harness::get(&mg, &healthy).status, 200);
    assert_eq!(up.hits(&healthy), 1);
    assert_eq!(skipped_gauge(&mg, &up), "0");
}
