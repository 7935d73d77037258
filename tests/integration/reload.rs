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

/// Acceptance: while the go command downloads through an auth plugin over HTTPS, the
/// configuration is reloaded over and over (SIGHUP and `POST /admin/reload` in turn), flipping a
/// second token in and out. The go command sees no failure, no request it makes fails, and each
/// reload's decisions apply to the requests after it.
#[test]
fn go_downloads_see_no_failures_while_plugins_reload() {
    use sha2::{Digest, Sha256};

    use crate::fixtures::standard_queries;
    use crate::harness::GoEnv;

    const TOKEN: &str = "token-in-every-config";
    const FLIPPED: &str = "token-in-every-other-config";
    const ADMIN: &str = "admin-token-for-reloads";
    let sha = |t: &str| hex::encode(Sha256::digest(t.as_bytes()));
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = crate::tls::test_pki(dir.path());
    let up = FakeUpstream::start(crate::fixtures::standard_tree());
    // Slow fills, so reloads land while downloads are in flight.
    up.set_zip_delay(Duration::from_millis(300));
    let setup = |flipped: bool| {
        let mut s = Setup::new(&dir.path().join("storage"), Some(&up.url()));
        s.tls = Some((cert.clone(), key.clone()));
        let extra = if flipped {
            format!(
                r#"{{ name = "flipped", sha256 = "{}", scopes = ["read"], modules = ["*"] }},"#,
                sha(FLIPPED)
            )
        } else {
            String::new()
        };
        s.extra_toml = format!(
            r#"
[plugins.tokens]
plugin = "auth-token"
config = {{ tokens = [
  {{ name = "dev", sha256 = "{dev}", scopes = ["read"], modules = ["*"] }},
  {{ name = "ops", sha256 = "{ops}", scopes = ["admin"], modules = ["*"] }},
  {extra}
] }}

[admin]
auth = ["tokens"]

[[route]]
match = ["*"]
storage = "local"
sources = SOURCES
auth = ["tokens"]
"#,
            dev = sha(TOKEN),
            ops = sha(ADMIN),
        );
        s
    };
    let mg = Modgate::start(setup(false));
    let host = format!("127.0.0.1:{}", mg.port);
    let netrc = dir.path().join("netrc");
    std::fs::write(
        &netrc,
        format!("machine {host} login go password {TOKEN}\n"),
    )
    .expect("netrc");
    let curl = |token: &str, method: &str, path: &str| -> u16 {
        let out = std::process::Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", method])
            .arg("--cacert")
            .arg(&ca)
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .arg(format!("{}{path}", mg.url()))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    };
    let probe = artifact_path(LIB, "v1.0.0", "mod");

    let stop = std::sync::atomic::AtomicBool::new(false);
    let reloads = std::thread::scope(|scope| {
        let reloader = scope.spawn(|| {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let flipped = !n.is_multiple_of(2);
                mg.swap_config(&setup(flipped));
                if n.is_multiple_of(3) {
                    mg.signal("HUP");
                    mg.wait_for_log(
                        "configuration reloaded",
                        n as usize,
                        Duration::from_secs(10),
                    );
                } else {
                    assert_eq!(curl(ADMIN, "POST", "/admin/reload"), 200, "reload {n}");
                }
                // The reload is in force for the next request.
                let want = if flipped { 200 } else { 401 };
                assert_eq!(curl(FLIPPED, "GET", &probe), want, "after reload {n}");
                std::thread::sleep(Duration::from_millis(20));
            }
            n
        });
        // Two full downloads into empty client caches: the first fills modgate from the slow
        // upstream, the second is served from storage.
        for round in 0..2 {
            let go = GoEnv::new(&mg.url())
                .env("SSL_CERT_FILE", ca.to_str().expect("utf-8"))
                .env("NETRC", netrc.to_str().expect("utf-8"));
            let got = go.download(&standard_queries());
            assert_eq!(got.len(), standard_queries().len(), "round {round}");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        reloader.join().expect("reloader")
    });
    assert!(
        reloads >= 10,
        "only {reloads} reloads happened during the downloads"
    );

    // Every request the go command made succeeded (curl's probes are the ones expected to get
    // 401).
    let log = ["stdout", "stderr"]
        .map(|s| std::fs::read_to_string(mg.log_path(s)).unwrap_or_default())
        .join("\n");
    let go_requests: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| {
            e["message"] == "request"
                && e["user_agent"]
                    .as_str()
                    .is_some_and(|ua| !ua.starts_with("curl/"))
        })
        .collect();
    assert!(go_requests.len() > 20, "{} go requests", go_requests.len());
    eprintln!(
        "{reloads} reloads during {} requests from the go command",
        go_requests.len()
    );
    let failed: Vec<_> = go_requests
        .iter()
        .filter(|e| e["status"].as_u64() != Some(200))
        .collect();
    assert!(
        failed.is_empty(),
        "go requests that failed during reloads: {failed:?}"
    );
    // The access log names who was allowed: the `.netrc` token's name, on every go request.
    let unnamed: Vec<_> = go_requests
        .iter()
        .filter(|e| e["principal"] != "dev")
        .collect();
    assert!(
        unnamed.is_empty(),
        "go requests without the token's principal in the access log: {unnamed:?}"
    );
}
