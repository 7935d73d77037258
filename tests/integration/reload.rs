//! Hot reload on SIGHUP: the new configuration applies to new requests, a broken file keeps the
//! old one, and a request in flight across the reload finishes normally.

use std::time::{Duration, Instant};

use crate::fixtures::{LIB, ModuleVersion, Tree, artifact_path, standard_tree};
use crate::harness::{Modgate, Setup, get, raw_request};
use crate::upstream::FakeUpstream;

#[test]
fn sighup_applies_new_routes_and_refuses_broken_files() {
    let up = FakeUpstream::start(standard_tree());
    let storage = tempfile::tempdir().expect("tempdir");
    let mut mg = Modgate::start(Setup::new(storage.path(), None));
    let info = artifact_path(LIB, "v1.1.0", "info");
    assert_eq!(get(&mg, &info).status, 404, "offline at first");

    // The same listener, now with an upstream.
    mg.rewrite_config(Setup::new(storage.path(), Some(&up.url())));
    mg.signal("HUP");
    mg.wait_for_log("configuration reloaded", 1, Duration::from_secs(10));
    let r = get(&mg, &info);
    assert_eq!(r.status, 200, "the reloaded route fetches upstream");

    // A broken file is refused; the running configuration stays.
    mg.write_raw_config("[server]\nlistne = 1\n");
    mg.signal("HUP");
    mg.wait_for_log("reload refused", 1, Duration::from_secs(10));
    assert!(
        mg.logs().contains("listne"),
        "the refusal names the key: {}",
        mg.logs()
    );
    assert_eq!(get(&mg, &artifact_path(LIB, "v1.0.0", "info")).status, 200);
    assert_eq!(get(&mg, "/healthz").status, 200);
}

/// A pseudo-random, incompressible payload (no rand dependency needed for a test fixture).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn a_download_in_flight_survives_a_reload() {
    const BIG: &str = "example.com/reload/big";
    let payload = noise(768 * 1024, 7);
    let tree = Tree::new().with([ModuleVersion::new(
        BIG,
        "v1.0.0",
        Some(&format!("module {BIG}\n")),
        &[("blob.bin", &payload)],
    )]);
    let up = FakeUpstream::start(tree);
    // About three seconds for the upstream to deliver the zip.
    up.set_zip_rate(Some(256 * 1024));
    let storage = tempfile::tempdir().expect("tempdir");
    let mut mg = Modgate::start(Setup::new(storage.path(), Some(&up.url())));
    let zip = artifact_path(BIG, "v1.0.0", "zip");
    let want = up.with_tree(|t| t.bytes(&zip).to_vec());

    let addr = mg.addr();
    let path = zip.clone();
    let started = Instant::now();
    let download = std::thread::spawn(move || {
        raw_request(
            addr,
            &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
        )
        .expect("download")
    });
    std::thread::sleep(Duration::from_millis(700));
    let mut slower = Setup::new(storage.path(), Some(&up.url()));
    slower.list_ttl = "1s".into();
    mg.rewrite_config(slower);
    mg.signal("HUP");
    mg.wait_for_log("configuration reloaded", 1, Duration::from_secs(10));
    assert!(
        !download.is_finished(),
        "the reload must happen mid-download"
    );

    let r = download.join().expect("download thread");
    assert_eq!(r.status, 200, "{}", mg.logs());
    assert!(r.body == want, "the zip survived the reload byte for byte");
    assert!(
        started.elapsed() > Duration::from_secs(2),
        "the download really was slow"
    );
    assert_eq!(up.hits(&zip), 1);
}
