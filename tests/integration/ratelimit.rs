//! Rate limits and byte quotas (the embedded `rate-limit` plugin on a route's auth list, the
//! counters in the host): the go command sees a one-line 429, `Retry-After` says when to come
//! back, remembered answers are counted without calling the plugin, counters survive a reload,
//! a principal's daily byte quota leaves other principals alone, and replicas share their
//! counters through Redis (and count on their own when it goes away).

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::fixtures::{LIB, artifact_path, standard_tree};
use crate::harness::{GoEnv, Modgate, Setup, get, metric, one_line_problem, raw_request};
use crate::replicas::RedisServer;
use crate::upstream::FakeUpstream;

/// A route open to reads, with `limits` (a TOML list of `rate-limit` limits) on it.
fn open_route_with(storage: &std::path::Path, upstream: &str, limits: &str) -> Setup {
    let mut s = Setup::new(storage, Some(upstream));
    s.extra_toml = format!(
        "\n[plugins.limits]\nplugin = \"rate-limit\"\nconfig = {{ decision = \"allow\", limits = {limits} }}\n"
    );
    s.catch_all_extra = "auth = [\"limits\"]".into();
    s
}

fn get_with(mg: &Modgate, path: &str, header: &str) -> crate::harness::RawResponse {
    raw_request(
        mg.addr(),
        &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{header}\r\nConnection: close\r\n\r\n"),
    )
    .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

#[test]
fn the_go_command_gets_a_one_line_429_and_remembered_answers_are_still_counted() {
    let up = FakeUpstream::start(standard_tree());
    let storage = tempfile::tempdir().expect("tempdir");
    let mut setup = open_route_with(
        storage.path(),
        &up.url(),
        r#"[ { name = "per-ip", per = "ip", requests_per_second = 0.01, burst = 6 } ]"#,
    );
    // One worker thread: the memo is per thread, so the plugin is asked exactly once.
    setup
        .env
        .push(("MODGATE_SERVER__WORKERS".into(), "1".into()));
    let mg = Modgate::start(setup);
    let info = artifact_path(LIB, "v1.1.0", "info");

    // A burst of 6, refilled one request every 100 s: exactly six get through.
    let statuses: Vec<u16> = (0..8).map(|_| get(&mg, &info).status).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 429, 429]);
    let refused = get(&mg, &info);
    assert_eq!(refused.status, 429);
    let retry: u64 = refused
        .header("retry-after")
        .expect("a Retry-After header")
        .parse()
        .expect("whole seconds");
    assert!((90..=100).contains(&retry), "Retry-After: {retry}");
    assert_eq!(one_line_problem(&refused.body), None);
    assert_eq!(
        String::from_utf8_lossy(&refused.body),
        format!(
            "rate limit per-ip exceeded for ip 127.0.0.1 (0.01 requests/s, burst 6); retry in {retry}s\n"
        )
    );

    // The plugin answered once; every later request was counted from the remembered answer.
    assert_eq!(
        metric(
            &mg,
            "modgate_plugin_calls_total{plugin=\"limits\",outcome=\"ok\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &mg,
            "modgate_rate_limited_total{limit=\"per-ip\",kind=\"requests\"}"
        ),
        3.0
    );

    // The go command shows the reason, and no download happened.
    let go = GoEnv::new(&mg.url());
    let out = go.output(&["mod", "download", "-json", &format!("{LIB}@v1.0.0")]);
    assert!(!out.status.success());
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("429 Too Many Requests"), "{said}");
    assert!(
        said.contains("rate limit per-ip exceeded for ip 127.0.0.1"),
        "{said}"
    );
    assert!(
        !go.modcache()
            .join("cache/download")
            .join(LIB)
            .join("@v/v1.0.0.zip")
            .exists()
    );

    // A reload keeps the counters (a reload must not reset everyone's limits).
    mg.signal("HUP");
    mg.wait_for_log("configuration reloaded", 1, Duration::from_secs(20));
    assert_eq!(get(&mg, &info).status, 429);
    // Health and metrics are not behind the route's limits.
    assert_eq!(get(&mg, "/healthz").status, 200);
}

#[test]
fn a_daily_byte_quota_is_per_principal() {
    let up = FakeUpstream::start(standard_tree());
    let storage = tempfile::tempdir().expect("tempdir");
    let sha = |s: &str| hex::encode(Sha256::digest(s.as_bytes()));
    let mut s = Setup::new(storage.path(), Some(&up.url()));
    s.extra_toml = format!(
        r#"
[plugins.limits]
plugin = "rate-limit"
config = {{ limits = [ {{ name = "daily-bytes", per = "principal", bytes_per_day = "1KB" }} ] }}

[plugins.tokens]
plugin = "auth-token"
config = {{ tokens = [
  {{ name = "alice", sha256 = "{}", scopes = ["read"], modules = ["*"] }},
  {{ name = "bob", sha256 = "{}", scopes = ["read"], modules = ["*"] }},
] }}
"#,
        sha("alice-token"),
        sha("bob-token")
    );
    s.catch_all_extra = "auth = [\"limits\", \"tokens\"]".into();
    let mg = Modgate::start(s);
    let alice = "Authorization: Bearer alice-token";
    let bob = "Authorization: Bearer bob-token";

    // Alice reads until her kilobyte is spent; the request that finds it spent is refused
    // until midnight UTC.
    let zip = artifact_path(LIB, "v1.1.0", "zip");
    let mut served = 0;
    let refused = loop {
        let r = get_with(&mg, &zip, alice);
        if r.status != 200 {
            break r;
        }
        served += r.body.len();
        assert!(served < 100_000, "never refused");
    };
    assert_eq!(refused.status, 429, "{refused:?}");
    assert!(served >= 1000, "refused after {served} bytes");
    assert_eq!(one_line_problem(&refused.body), None);
    let body = String::from_utf8_lossy(&refused.body);
    assert!(
        body.starts_with(
            "rate limit daily-bytes exceeded for principal alice (1000 bytes per day)"
        ),
        "{body}"
    );
    let retry: u64 = refused
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("secs");
    assert!((1..=86_400).contains(&retry), "{retry}");

    // Bob has his own quota; a wrong token is a 401, not charged to anyone.
    assert_eq!(get_with(&mg, &zip, bob).status, 200);
    assert_eq!(
        get_with(&mg, &zip, "Authorization: Bearer wrong").status,
        401
    );
    assert_eq!(
        metric(
            &mg,
            "modgate_rate_limited_total{limit=\"daily-bytes\",kind=\"bytes\"}"
        ),
        1.0
    );
}

#[test]
fn replicas_share_their_counters_through_redis() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let up = FakeUpstream::start(standard_tree());
    let limits = r#"[ { name = "per-ip", per = "ip", requests_per_second = 0.01, burst = 4 } ]"#;
    let cluster = format!("\n[cluster]\nredis = \"redis://{}\"\n", redis.addr);
    let dirs = [
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    ];
    let replicas: Vec<Modgate> = dirs
        .iter()
        .map(|d| {
            let mut s = open_route_with(d.path(), &up.url(), limits);
            s.extra_toml += &cluster;
            Modgate::start(s)
        })
        .collect();
    let info = artifact_path(LIB, "v1.1.0", "info");

    // Alternating between the replicas, four requests in all get through, not four each.
    let statuses: Vec<u16> = (0..6)
        .map(|i| get(&replicas[i % 2], &info).status)
        .collect();
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429]);

    // Without Redis each replica counts on its own (a fresh bucket of 4), says so in its log
    // and metrics, and keeps answering.
    redis.stop();
    let statuses: Vec<u16> = (0..5).map(|_| get(&replicas[0], &info).status).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 429]);
    assert!(metric(&replicas[0], "modgate_cluster_degraded_total ") >= 5.0);
    replicas[0].wait_for_log(
        "counting rate limits in this replica only",
        1,
        Duration::from_secs(5),
    );
}
