//! Replicas: three `modgate serve` processes with one config over one bucket (versitygw) and
//! one Redis (`redis-server`, started here). A storm of requests for one uncached zip spread
//! over the replicas makes one upstream fetch; a replica killed with SIGKILL in the middle of a
//! go download leaves the others serving and the bucket with no half-committed version; Redis
//! going away degrades to in-process single-flight without failing a request.
//!
//! Without `redis-server` or versitygw the tests say how to install them and skip; under
//! `CI=1` they fail instead (`.ci/run` installs both).

use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::fixtures::{LIB, artifact_path, standard_queries, standard_tree};
use crate::go_client::sums;
use crate::harness::{GoEnv, Modgate, Setup, free_port, get, in_own_session, raw_request};
use crate::s3::{Versitygw, s3_storage};
use crate::upstream::FakeUpstream;

/// A `redis-server` on 127.0.0.1 with nothing persisted, stopped on drop.
pub struct RedisServer {
    child: Option<Child>,
    pub addr: SocketAddr,
}

impl RedisServer {
    pub fn start() -> Option<Self> {
        let found = std::process::Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            let how = "redis-server is not installed: apt-get install -y redis-server";
            assert!(std::env::var_os("CI").is_none(), "{how}");
            eprintln!("skipped: {how}");
            return None;
        }
        let port = free_port();
        let child = in_own_session("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start redis-server");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        crate::harness::wait_for_port(addr, "redis-server");
        Some(RedisServer {
            child: Some(child),
            addr,
        })
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The setup every replica shares: the bucket, the upstream, `[cluster]` on `redis`.
fn replica_setup(gw: &Versitygw, up: &FakeUpstream, redis: SocketAddr) -> Setup {
    let unused = std::env::temp_dir().join("modgate-replica-unused");
    let mut s = Setup::new(&unused, Some(&up.url()));
    s3_storage(&mut s, gw, crate::s3::SECRET_KEY);
    s.extra_toml = format!("\n[cluster]\nredis = \"redis://{redis}\"\nlease_ttl = \"5s\"\n");
    s
}

/// `GET path` from `addr`, status and body.
fn fetch(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let r = raw_request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
    )
    .unwrap_or_else(|e| panic!("GET {path} from {addr}: {e}"));
    (r.status, r.body)
}

#[test]
fn a_storm_over_three_replicas_makes_one_upstream_fetch_and_survives_redis_going_away() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let Some(gw) = Versitygw::start() else { return };
    let tree = standard_tree();
    let up = FakeUpstream::start(tree.clone());
    // Slow enough that every request arrives while the one fill is running.
    up.set_zip_delay(Duration::from_millis(800));
    let setup = replica_setup(&gw, &up, redis.addr);
    let replicas: Vec<Modgate> = (0..3).map(|_| Modgate::start(setup.clone())).collect();
    let addrs: Vec<SocketAddr> = replicas.iter().map(Modgate::addr).collect();

    let zip = artifact_path(LIB, "v1.0.0", "zip");
    let want = tree.bytes(&zip).to_vec();
    let answers: Vec<(u16, Vec<u8>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..200)
            .map(|i| {
                let (addr, zip) = (addrs[i % 3], zip.clone());
                scope.spawn(move || fetch(addr, &zip))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("request thread"))
            .collect()
    });
    for (i, (status, body)) in answers.iter().enumerate() {
        assert_eq!(
            *status,
            200,
            "request {i}: {}",
            String::from_utf8_lossy(body)
        );
        assert!(*body == want, "request {i}: the zip's bytes differ");
    }
    assert_eq!(
        up.hits(&zip),
        1,
        "one upstream fetch of the zip for 200 requests over 3 replicas: {:?}",
        up.requests()
    );
    for ext in ["info", "mod"] {
        let path = artifact_path(LIB, "v1.0.0", ext);
        assert!(up.hits(&path) <= 1, "{path}: {} fetches", up.hits(&path));
    }

    // Redis gone: requests still succeed (each replica fills on its own), said in the log and
    // counted.
    redis.stop();
    up.set_zip_delay(Duration::ZERO);
    let other = artifact_path(LIB, "v1.1.0", "zip");
    let (status, body) = fetch(addrs[1], &other);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(body == tree.bytes(&other), "the zip's bytes");
    let metrics = get(&replicas[1], "/metrics");
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.lines()
            .any(|l| l.starts_with("modgate_cluster_degraded_total ") && !l.ends_with(" 0")),
        "{text}"
    );
    assert!(
        replicas[1].logs().contains("Redis unreachable"),
        "{}",
        replicas[1].logs()
    );
}

#[test]
fn a_replica_killed_mid_download_leaves_the_others_serving_and_no_half_commits() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let Some(gw) = Versitygw::start() else { return };
    let tree = standard_tree();
    let up = FakeUpstream::start(tree.clone());
    // Each zip takes a while, so the kill lands in the middle of the download.
    up.set_zip_delay(Duration::from_millis(150));
    let setup = replica_setup(&gw, &up, redis.addr);
    let mut replicas: Vec<Modgate> = (0..3).map(|_| Modgate::start(setup.clone())).collect();
    let list = replicas
        .iter()
        .map(Modgate::url)
        .collect::<Vec<_>>()
        .join("|");
    let queries = standard_queries();
    let want = sums(&GoEnv::new(&up.url()).download(&queries));
    let go = GoEnv::new(&list);
    let got = std::thread::scope(|scope| {
        let download = scope.spawn(|| go.download(&queries));
        std::thread::sleep(Duration::from_millis(400));
        replicas[0].sigkill();
        download.join().expect("download thread")
    });
    assert_eq!(
        sums(&got),
        want,
        "the download completed through the other replicas"
    );

    // No version whose .info exists without its .mod, .zip and .ziphash.
    let keys = gw.keys();
    for info in keys.iter().filter(|k| k.ends_with(".info")) {
        let stem = info.trim_end_matches(".info");
        for ext in ["mod", "zip", "ziphash"] {
            assert!(
                keys.contains(&format!("{stem}.{ext}")),
                "{info} committed without its .{ext}: {keys:?}"
            );
        }
    }
    // What the killed replica left half-done is filled by the others on the next request.
    let again = GoEnv::new(&replicas[1].url());
    assert_eq!(sums(&again.download(&queries)), want);
}
