//! "Not here": modgate answers 404/410 for what it does not have, so a client's GOPROXY list
//! falls through to the next proxy (GOPROXY.md §1, §8.2).

use crate::fixtures::{LIB, ModuleVersion, Tree, artifact_path, list_path};
use crate::go_client::{Stack, sums};
use crate::harness::{GoEnv, Modgate, Setup, get, one_line_problem, raw_request};
use crate::upstream::FakeUpstream;

const SECOND: &str = "example.com/only/second";

fn second_tree() -> Tree {
    Tree::new().with([ModuleVersion::new(
        SECOND,
        "v1.0.0",
        Some(&format!("module {SECOND}\n\ngo 1.21\n")),
        &[("second.go", b"package second\n")],
    )])
}

/// `GOPROXY=<modgate>,<other>`: a module only the other proxy has is found there, with the same
/// sums as from the other proxy directly; modules modgate has never reach the other proxy.
#[test]
fn go_falls_through_to_the_next_proxy() {
    let s = Stack::standard();
    let other = FakeUpstream::start(second_tree());
    let q = vec![format!("{SECOND}@v1.0.0")];
    let want = sums(&GoEnv::new(&other.url()).download(&q));
    other.reset_hits();

    for sep in [",", "|"] {
        let go = GoEnv::new(&format!("{}{sep}{}", s.mg.url(), other.url()));
        assert_eq!(sums(&go.download(&q)), want, "GOPROXY=modgate{sep}other");
        assert_eq!(
            go.run(&["list", "-m", "-versions", SECOND]),
            format!("{SECOND} v1.0.0\n")
        );
        go.download(&[format!("{LIB}@v1.1.0")]);
    }
    let leaked: Vec<String> = other
        .requests()
        .into_iter()
        .filter(|r| r.contains("fixture"))
        .collect();
    assert!(
        leaked.is_empty(),
        "modgate's own modules fell through to the other proxy: {leaked:?}"
    );

    // Known to neither: the go command reports not found.
    let go = GoEnv::new(&format!("{},{}", s.mg.url(), other.url()));
    let out = go.output(&["mod", "download", "-json", "example.com/nowhere@v1.0.0"]);
    assert!(!out.status.success(), "a module nobody has was downloaded?");
}

/// An offline route (storage only) answers 404 for everything it has not stored, so the client
/// goes on to the next proxy.
#[test]
fn offline_modgate_falls_through() {
    let up = FakeUpstream::start(crate::fixtures::standard_tree());
    let storage = tempfile::tempdir().expect("tempdir");
    let mg = Modgate::start(Setup::new(&storage.path().join("data"), None));
    let q = vec![format!("{LIB}@v1.1.0"), format!("{LIB}@v1.0.0")];
    let want = sums(&GoEnv::new(&up.url()).download(&q));
    let go = GoEnv::new(&format!("{},{}", mg.url(), up.url()));
    assert_eq!(sums(&go.download(&q)), want);
}

/// Unknown modules, unknown versions and path prefixes that are not modules: 404 or 410 with a
/// one-line `text/plain; charset=utf-8` body, never 200 with an empty list.
#[test]
fn unknown_modules_and_versions_are_not_found() {
    let s = Stack::standard();
    let paths = [
        list_path("example.com/nope"),
        artifact_path("example.com/nope", "v1.0.0", "info"),
        artifact_path("example.com/nope", "v1.0.0", "mod"),
        artifact_path("example.com/nope", "v1.0.0", "zip"),
        "/example.com/nope/@latest".to_string(),
        artifact_path(LIB, "v1.9.9", "info"),
        artifact_path(LIB, "v1.9.9", "mod"),
        artifact_path(LIB, "v1.9.9", "zip"),
        artifact_path(LIB, "main", "info"),
        // A prefix of a module path is not a module.
        list_path("example.com/fixture"),
        artifact_path("example.com/fixture", "v1.0.0", "info"),
    ];
    let mut failures = Vec::new();
    for p in &paths {
        let r = raw_request(
            s.mg.addr(),
            &format!("GET {p} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
        )
        .unwrap_or_else(|e| panic!("GET {p}: {e}"));
        let body = String::from_utf8_lossy(&r.body).into_owned();
        if r.status != 404 && r.status != 410 {
            failures.push(format!("GET {p}: want 404/410, got {} {body:?}", r.status));
            continue;
        }
        if r.header("content-type") != Some("text/plain; charset=utf-8") {
            failures.push(format!(
                "GET {p}: content-type {:?}",
                r.header("content-type")
            ));
        }
        if let Some(problem) = one_line_problem(&r.body) {
            failures.push(format!("GET {p}: {problem}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// "Not found upstream" is remembered for `not_found_ttl`: asking again does not hit the upstream.
#[test]
fn not_found_is_remembered() {
    let s = Stack::standard();
    let p = artifact_path(LIB, "v1.9.9", "info");
    for _ in 0..3 {
        let r = raw_request(
            s.mg.addr(),
            &format!("GET {p} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
        )
        .expect("GET");
        assert!(r.status == 404 || r.status == 410, "{}", r.status);
    }
    assert_eq!(
        s.up.hits(&p),
        1,
        "upstream asked again within not_found_ttl: {:?}",
        s.up.requests()
    );
}

/// modgate's own upstream list follows the go command's rules: `,` goes on after 404/410 only,
/// `|` after any error; a 5xx is retried `retries` times first.
#[test]
fn upstream_list_separators_follow_goproxy_rules() {
    let tree = crate::fixtures::standard_tree();
    let info = artifact_path(LIB, "v1.1.0", "info");
    let zip = artifact_path(LIB, "v1.1.0", "zip");
    let storage = tempfile::tempdir().expect("tempdir");
    let start =
        |name: &str, list: &str| Modgate::start(Setup::new(&storage.path().join(name), Some(list)));

    // `,`: the first has nothing (404), the second serves.
    let (empty, full) = (
        FakeUpstream::start(Tree::new()),
        FakeUpstream::start(tree.clone()),
    );
    let mg = start("comma-404", &format!("{},{}", empty.url(), full.url()));
    let r = get(&mg, &zip);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.body == tree.bytes(&zip), "zip differs");
    assert_eq!(empty.hits(&zip), 1, "{:?}", empty.requests());
    drop(mg);

    // `,`: the first fails (500): no fall-through, 502 after 1 + 2 retries.
    let (broken, full) = (
        FakeUpstream::start(tree.clone()),
        FakeUpstream::start(tree.clone()),
    );
    broken.override_path(&info, 500, "text/plain; charset=utf-8", "boom\n");
    let mg = start("comma-500", &format!("{},{}", broken.url(), full.url()));
    let r = get(&mg, &info);
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    if let Some(p) = one_line_problem(&r.body) {
        panic!("502 body: {p}");
    }
    assert_eq!(
        broken.hits(&info),
        3,
        "one try and two retries: {:?}",
        broken.requests()
    );
    assert_eq!(
        full.hits(&info),
        0,
        "`,` must not fall through on a 500: {:?}",
        full.requests()
    );
    drop(mg);

    // `|`: any error falls through.
    let (broken, full) = (
        FakeUpstream::start(tree.clone()),
        FakeUpstream::start(tree.clone()),
    );
    broken.override_path(&info, 500, "text/plain; charset=utf-8", "boom\n");
    let mg = start("pipe-500", &format!("{}|{}", broken.url(), full.url()));
    let r = get(&mg, &info);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(full.hits(&info), 1, "{:?}", full.requests());
}

/// An upstream slower than `timeout`: 504 with a one-line body, promptly.
#[test]
fn slow_upstream_times_out_with_504() {
    let up = FakeUpstream::start(crate::fixtures::standard_tree());
    up.set_delay(".info", std::time::Duration::from_secs(10));
    let storage = tempfile::tempdir().expect("tempdir");
    let mut setup = Setup::new(&storage.path().join("data"), Some(&up.url()));
    setup.upstream_timeout = "1s".into();
    setup.upstream_retries = 0;
    let mg = Modgate::start(setup);
    let t = std::time::Instant::now();
    let r = get(&mg, &artifact_path(LIB, "v1.1.0", "info"));
    assert_eq!(r.status, 504, "{}", String::from_utf8_lossy(&r.body));
    if let Some(p) = one_line_problem(&r.body) {
        panic!("504 body: {p}");
    }
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
}
