//! A route's download modes (`download = "sync" | "async" | "redirect" | "none"`), with the go
//! command as the client.

use std::time::{Duration, Instant};

use crate::fixtures::{LIB, artifact_path, standard_tree};
use crate::harness::{GoEnv, Modgate, Setup, get};
use crate::upstream::FakeUpstream;

fn start(storage: &std::path::Path, upstream: &str, mode: &str) -> Modgate {
    let mut setup = Setup::new(storage, Some(upstream));
    setup.catch_all_extra = format!("download = \"{mode}\"");
    Modgate::start(setup)
}

/// Waits until modgate serves `path` from storage (its background fill is done).
fn wait_stored(mg: &Modgate, storage: &std::path::Path, version: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let info = storage.join(format!("{LIB}/@v/{version}.info"));
    while !info.is_file() {
        assert!(
            Instant::now() < deadline,
            "the background fill never committed {version}: {}",
            mg.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn async_answers_404_at_once_so_the_go_command_falls_through_and_fills_in_the_background() {
    let tree = standard_tree();
    let up = FakeUpstream::start(tree.clone());
    // The background fill takes a while: the client must not wait for it.
    up.set_zip_delay(Duration::from_millis(1500));
    let storage = tempfile::tempdir().expect("tempdir");
    let mg = start(storage.path(), &up.url(), "async");
    let query = format!("{LIB}@v1.0.0");

    let started = Instant::now();
    let go = GoEnv::new(&format!("{},{}", mg.url(), up.url()));
    go.run(&["mod", "download", &query]);
    let log = mg.logs();
    assert!(
        log.lines()
            .any(|l| l.contains(&artifact_path(LIB, "v1.0.0", "info"))
                && l.contains("\"status\":404")),
        "modgate answered the miss with 404: {log}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1500) + Duration::from_secs(2),
        "the client fell through instead of waiting"
    );
    wait_stored(&mg, storage.path(), "v1.0.0");

    // Later requests are served from storage: modgate alone suffices now.
    up.set_zip_delay(Duration::ZERO);
    let zip_hits = up.hits(&artifact_path(LIB, "v1.0.0", "zip"));
    let go = GoEnv::new(&format!("{},off", mg.url()));
    go.run(&["mod", "download", &query]);
    assert_eq!(up.hits(&artifact_path(LIB, "v1.0.0", "zip")), zip_hits);
    let zip = get(&mg, &artifact_path(LIB, "v1.0.0", "zip"));
    assert_eq!(zip.status, 200);
    assert_eq!(zip.body, tree.bytes(&artifact_path(LIB, "v1.0.0", "zip")));
}

#[test]
fn redirect_sends_a_zip_miss_to_the_upstream_and_serves_it_once_stored() {
    let tree = standard_tree();
    let up = FakeUpstream::start(tree.clone());
    let storage = tempfile::tempdir().expect("tempdir");
    let mg = start(storage.path(), &up.url(), "redirect");
    let query = format!("{LIB}@v1.1.0");
    let zip = artifact_path(LIB, "v1.1.0", "zip");

    let r = get(&mg, &zip);
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some(format!("{}{zip}", up.url()).as_str())
    );
    // The go command follows it and gets the upstream's zip (its go.sum line proves the bytes).
    let go = GoEnv::new(&mg.url());
    let got = go.download(std::slice::from_ref(&query));
    assert!(got[0]["Error"].is_null(), "{got:?}");
    let direct = GoEnv::new(&up.url()).download(std::slice::from_ref(&query));
    assert_eq!(got[0]["Sum"], direct[0]["Sum"]);

    // Filled meanwhile: served by modgate (a directory cannot presign).
    wait_stored(&mg, storage.path(), "v1.1.0");
    let r = get(&mg, &zip);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, tree.bytes(&zip));
}

#[test]
fn none_serves_storage_only() {
    let tree = standard_tree();
    let up = FakeUpstream::start(tree);
    let storage = tempfile::tempdir().expect("tempdir");
    // Filled through a sync route over the same storage first.
    let mg = start(storage.path(), &up.url(), "sync");
    let query = format!("{LIB}@v1.0.0");
    GoEnv::new(&mg.url()).run(&["mod", "download", &query]);
    drop(mg);
    up.reset_hits();

    let mg = start(storage.path(), &up.url(), "none");
    GoEnv::new(&mg.url()).run(&["mod", "download", &query]);
    let out = GoEnv::new(&mg.url()).output(&["mod", "download", &format!("{LIB}@v1.1.0")]);
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert!(
        text.contains("404 Not Found") && text.contains("download = \"none\""),
        "{text}"
    );
    assert!(
        up.requests().is_empty(),
        "nothing fetched: {:?}",
        up.requests()
    );
}
