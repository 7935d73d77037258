//! Soak (issue 21), run alone (`#[ignore]`d in the suite: it loads the machine, and other tests'
//! timings would suffer): mixed traffic for `SOAK_SECS` seconds (60 in `.ci/run`, 600 in
//! `bench/soak`; not `MODGATE_…`, which the server takes as config keys) as fast as the
//! clients go on this machine — warm reads on keep-alive connections, cold
//! fills from the upstream, publishes, auth failures, clients that disconnect mid-zip, and a
//! reload every 15 s (alternately SIGHUP with a changed plugin config and `POST /admin/reload`).
//! Not one request that should succeed fails; RSS is flat (the last minute's mean at most 5 %
//! above the second's; in short runs 15 % between windows of seconds) and so are open file
//! descriptors; p99 latency is reported per window (a
//! minute in long runs). And with 10,000 idle keep-alive connections and 1,000 clients that stop
//! reading a zip, new clients and health checks are still answered within 100 ms (p99).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::fixtures::{LIB, ModuleVersion, artifact_path, bulky_version, standard_tree, zip_of};
use crate::harness::{Conn, Modgate, Setup, get, raw_request};
use crate::upstream::{FakeUpstream, Override};

const PUBLISH_TOKEN: &str = "soak-ci-token";
const ADMIN_TOKEN: &str = "soak-admin-token";
const BIG: &str = "example.com/soak/big";
const CORP: &str = "corp.example/soak";

fn soak_secs() -> u64 {
    std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

/// The config: the fixture upstream on the catch-all route, a private route that takes
/// uploads, tokens for it and for `[admin]`. `generation` changes the plugin's config (a
/// reload then builds a new plugin set).
fn soak_setup(storage: &std::path::Path, upstream: &str, generation: u32) -> Setup {
    let sha = |s: &str| hex::encode(Sha256::digest(s.as_bytes()));
    let mut s = Setup::new(storage, Some(upstream));
    s.extra_toml = format!(
        r#"
[plugins.tokens]
plugin = "auth-token"
config = {{ tokens = [
  {{ name = "ci", sha256 = "{ci}", scopes = ["read", "publish"], modules = ["{CORP}"] }},
  {{ name = "ops", sha256 = "{ops}", scopes = ["admin"], modules = ["*"] }},
  {{ name = "generation-{generation}", sha256 = "{unused}", scopes = ["read"], modules = ["{CORP}"] }},
] }}

[admin]
auth = ["tokens"]

[[route]]
match = ["{CORP}"]
storage = "local"
sources = []
auth = ["tokens"]
"#,
        ci = sha(PUBLISH_TOKEN),
        ops = sha(ADMIN_TOKEN),
        unused = sha(&format!("unused-{generation}")),
    );
    s.env
        .push(("MODGATE_SERVER__ACCESS_LOG".into(), "false".into()));
    s
}

/// An upstream with the fixtures, a 4 MiB zip, and `example.com/soak/mN` made up on demand (a
/// cold fill each).
fn soak_upstream() -> FakeUpstream {
    let mut tree = standard_tree();
    tree.add(bulky_version(BIG, "v1.0.0", 4 << 20, 7));
    let up = FakeUpstream::start(tree);
    up.set_fallback(|path| {
        let rest = path.strip_prefix("/example.com/soak/m")?;
        let (n, file) = rest.split_once("/@v/")?;
        let module = format!("example.com/soak/m{n}");
        let v = ModuleVersion::new(
            &module,
            "v1.0.0",
            Some(&format!("module {module}\n\ngo 1.21\n")),
            &[("m.go", format!("package m\n\nconst N = {n}\n").as_bytes())],
        );
        let (content_type, body) = match file {
            "v1.0.0.info" => ("application/json", v.info_json()),
            "v1.0.0.mod" => ("text/plain; charset=utf-8", v.go_mod),
            "v1.0.0.zip" => ("application/zip", v.zip),
            "list" => ("text/plain; charset=utf-8", b"v1.0.0\n".to_vec()),
            _ => return None,
        };
        Some(Override {
            status: 200,
            content_type: content_type.into(),
            body: Bytes::from(body),
        })
    });
    up
}

/// One request's outcome.
struct Done {
    at: Duration,
    latency: Duration,
    /// What went wrong, for a request that should have succeeded and did not.
    failure: Option<String>,
}

/// What one process sample found.
struct Sample {
    at: Duration,
    rss_kb: u64,
    fds: usize,
}

fn sample(pid: u32) -> Option<(u64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((rss_kb, fds))
}

/// A client loop: `step` makes one request on `conn` (reopened after an error) and says what
/// went wrong if it should have succeeded and did not.
fn client(
    addr: SocketAddr,
    start: Instant,
    stop: Arc<AtomicBool>,
    pace: Duration,
    mut step: impl FnMut(&mut Conn, u64) -> Result<(), String> + Send + 'static,
) -> std::thread::JoinHandle<Vec<Done>> {
    std::thread::spawn(move || {
        let mut done = Vec::new();
        let mut conn: Option<Conn> = None;
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            let began = Instant::now();
            let c = match conn.as_mut() {
                Some(c) => c,
                None => match Conn::open(addr, Duration::from_secs(30)) {
                    Ok(c) => conn.insert(c),
                    Err(e) => {
                        done.push(Done {
                            at: start.elapsed(),
                            latency: began.elapsed(),
                            failure: Some(format!("connect: {e}")),
                        });
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                },
            };
            let failure = step(c, i).err();
            if failure.is_some() {
                conn = None;
            }
            done.push(Done {
                at: start.elapsed(),
                latency: began.elapsed(),
                failure,
            });
            i += 1;
            if !pace.is_zero() {
                std::thread::sleep(pace);
            }
        }
        done
    })
}

fn expect(status: u16, want: u16, what: &str) -> Result<(), String> {
    if status == want {
        Ok(())
    } else {
        Err(format!("{what}: {status}, expected {want}"))
    }
}

fn corp_zip(version: &str) -> Vec<u8> {
    let prefix = format!("{CORP}@{version}/");
    zip_of(
        &[
            (
                &format!("{prefix}go.mod"),
                format!("module {CORP}\n\ngo 1.22\n").as_bytes(),
            ),
            (
                &format!("{prefix}soak.go"),
                format!("package soak\n\nconst V = \"{version}\"\n").as_bytes(),
            ),
        ],
        zip::CompressionMethod::Deflated,
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[test]
#[ignore = "a load test, run alone: .ci/run (60 s) and bench/soak (600 s)"]
fn mixed_traffic_with_reloads_fails_nothing_and_stays_flat() {
    let secs = soak_secs();
    // Per minute in long runs; six windows in short ones.
    let window = Duration::from_secs(if secs >= 300 { 60 } else { (secs / 6).max(5) });
    let up = soak_upstream();
    let storage = tempfile::tempdir().expect("tempdir");
    let mg = Arc::new(Modgate::start(soak_setup(storage.path(), &up.url(), 0)));
    let addr = mg.addr();
    let pid = mg.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();

    let mut clients = Vec::new();
    // Warm reads: the fixtures' artifacts, on keep-alive connections.
    for _ in 0..3 {
        let paths = [
            artifact_path(LIB, "v1.1.0", "info"),
            artifact_path(LIB, "v1.1.0", "mod"),
            artifact_path(LIB, "v1.1.0", "zip"),
            artifact_path(LIB, "v1.0.0", "info"),
        ];
        clients.push(client(
            addr,
            start,
            stop.clone(),
            Duration::ZERO,
            move |c, i| {
                let path = &paths[i as usize % paths.len()];
                let r = c.get(path).map_err(|e| format!("GET {path}: {e}"))?;
                expect(r.status, 200, path)
            },
        ));
    }
    // Cold fills: a module never asked for before, each time.
    clients.push(client(addr, start, stop.clone(), Duration::ZERO, |c, i| {
        let path = artifact_path(&format!("example.com/soak/m{i}"), "v1.0.0", "zip");
        let r = c.get(&path).map_err(|e| format!("GET {path}: {e}"))?;
        expect(r.status, 200, &path)
    }));
    // Publishes through the upload endpoint, each then read back.
    clients.push(client(
        addr,
        start,
        stop.clone(),
        Duration::from_millis(20),
        |c, i| {
            let version = format!("v0.0.{i}");
            let path = artifact_path(CORP, &version, "zip");
            let auth = format!("Authorization: Bearer {PUBLISH_TOKEN}");
            let r = c
                .request("PUT", &path, &[&auth], &corp_zip(&version))
                .map_err(|e| format!("PUT {path}: {e}"))?;
            expect(r.status, 201, &format!("PUT {path}"))?;
            let info = artifact_path(CORP, &version, "info");
            let r = c
                .request("GET", &info, &[&auth], b"")
                .map_err(|e| format!("GET {info}: {e}"))?;
            expect(r.status, 200, &info)
        },
    ));
    // Auth failures.
    clients.push(client(addr, start, stop.clone(), Duration::ZERO, |c, _| {
        let path = artifact_path(CORP, "v0.0.0", "info");
        let r = c
            .request("GET", &path, &["Authorization: Bearer not-a-token"], b"")
            .map_err(|e| format!("GET {path}: {e}"))?;
        expect(r.status, 401, "a bad token")
    }));
    // Clients that leave mid-zip: a new connection each, 64 KiB of 4 MiB read, then gone.
    {
        let stop = stop.clone();
        clients.push(std::thread::spawn(move || {
            let mut done = Vec::new();
            let path = artifact_path(BIG, "v1.0.0", "zip");
            while !stop.load(Ordering::Relaxed) {
                let began = Instant::now();
                let result = (|| -> std::io::Result<bool> {
                    let mut s = TcpStream::connect(addr)?;
                    s.set_read_timeout(Some(Duration::from_secs(30)))?;
                    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")?;
                    let mut buf = vec![0; 64 << 10];
                    s.read_exact(&mut buf)?;
                    Ok(buf.starts_with(b"HTTP/1.1 200 "))
                })();
                let failure = match result {
                    Ok(true) => None,
                    Ok(false) => Some("mid-zip client: not a 200".to_string()),
                    Err(e) => Some(format!("mid-zip client: {e}")),
                };
                done.push(Done {
                    at: start.elapsed(),
                    latency: began.elapsed(),
                    failure,
                });
            }
            done
        }));
    }
    // Reloads: every 15 s, SIGHUP with a changed plugin config, then `POST /admin/reload`.
    let reloader = {
        let (stop, mg, upstream, root) = (
            stop.clone(),
            mg.clone(),
            up.url(),
            storage.path().to_owned(),
        );
        std::thread::spawn(move || {
            let mut failures = Vec::new();
            let mut generation = 0;
            let every = Duration::from_secs(
                std::env::var("SOAK_RELOAD_SECS")
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(15),
            );
            let mut next = Instant::now() + every;
            while !stop.load(Ordering::Relaxed) {
                if Instant::now() < next {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                next += every;
                generation += 1;
                if generation % 2 == 1 {
                    mg.swap_config(&soak_setup(&root, &upstream, generation));
                    mg.signal("HUP");
                } else {
                    let r = raw_request(
                        mg.addr(),
                        &format!(
                            "POST /admin/reload HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        ),
                    );
                    match r {
                        Ok(r) if r.status == 200 => {}
                        Ok(r) => failures.push(format!(
                            "POST /admin/reload: {} {}",
                            r.status,
                            String::from_utf8_lossy(&r.body)
                        )),
                        Err(e) => failures.push(format!("POST /admin/reload: {e}")),
                    }
                }
            }
            (generation, failures)
        })
    };

    let mut samples = Vec::new();
    while start.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_secs(1));
        if let Some((rss_kb, fds)) = sample(pid) {
            samples.push(Sample {
                at: start.elapsed(),
                rss_kb,
                fds,
            });
        }
    }
    stop.store(true, Ordering::Relaxed);
    let done: Vec<Done> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("client thread"))
        .collect();
    let (reloads, reload_failures) = reloader.join().expect("reloader");

    // The report, per window.
    let windows = (secs / window.as_secs()).max(1) as usize;
    println!(
        "soak: {secs} s, {} requests ({:.0}/s), {reloads} reloads",
        done.len(),
        done.len() as f64 / secs as f64
    );
    println!("window  requests    p50 ms    p99 ms   RSS MiB  fds max");
    let mut rss = Vec::new();
    let mut fds = Vec::new();
    for w in 0..windows {
        let (from, to) = (window * w as u32, window * (w as u32 + 1));
        let mut latencies: Vec<Duration> = done
            .iter()
            .filter(|d| d.at >= from && d.at < to)
            .map(|d| d.latency)
            .collect();
        latencies.sort();
        let in_window: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.at >= from && s.at < to)
            .collect();
        let mean_rss =
            in_window.iter().map(|s| s.rss_kb).sum::<u64>() / in_window.len().max(1) as u64;
        let max_fds = in_window.iter().map(|s| s.fds).max().unwrap_or(0);
        rss.push(mean_rss);
        fds.push(max_fds);
        println!(
            "{:>6}  {:>8}  {:>8.2}  {:>8.2}  {:>8.1}  {:>7}",
            w + 1,
            latencies.len(),
            percentile(&latencies, 0.5).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3,
            mean_rss as f64 / 1024.0,
            max_fds
        );
    }

    let failures: Vec<&String> = done.iter().filter_map(|d| d.failure.as_ref()).collect();
    assert!(
        failures.is_empty() && reload_failures.is_empty(),
        "{} of {} requests failed (first: {:?}); reloads: {reload_failures:?}",
        failures.len(),
        done.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(reloads >= 2, "only {reloads} reloads in {secs} s");
    assert!(windows >= 3, "too short to compare windows");
    // The issue's bound is for the 10-minute soak (minute 2 against minute 10). A short run's
    // windows are seconds apart, while the allocator's arenas are still growing towards their
    // working size: there the bound only catches a gross leak.
    let bound = if secs >= 300 { 1.05 } else { 1.15 };
    let (second, last) = (rss[1], rss[windows - 1]);
    assert!(
        last as f64 <= second as f64 * bound,
        "RSS grew: {second} kB in window 2, {last} kB in the last ({rss:?})"
    );
    let (second, last) = (fds[1], fds[windows - 1]);
    assert!(
        last <= second + 32,
        "open file descriptors grew: {second} in window 2, {last} in the last ({fds:?})"
    );
}

/// `GET path` on a keep-alive connection, its status (the body is read and dropped). One
/// file descriptor per connection (a `Conn` takes two).
fn get_on(stream: &TcpStream, path: &str) -> std::io::Result<u16> {
    use std::io::BufRead;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut w = stream;
    write!(w, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut reader = std::io::BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut len = 0;
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        if line.trim_end().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    Ok(status)
}

/// This process's open-file limit (the server it starts inherits it).
fn fd_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        })
        .unwrap_or(1024)
}

#[test]
#[ignore = "a load test, run alone: .ci/run and bench/soak"]
fn idle_connections_and_stalled_readers_do_not_slow_new_clients() {
    const STALLED: usize = 1_000;
    // 10,000 idle connections where the open-file limit allows it (each process holds one end
    // of every connection; other tests running beside this one need some too).
    let limit = fd_limit();
    let idle_target = 10_000.min(limit.saturating_sub(STALLED + 4_000));
    assert!(
        idle_target >= 1_000,
        "the open-file limit ({limit}) is too low for this test"
    );
    let up = FakeUpstream::start({
        let mut tree = standard_tree();
        tree.add(bulky_version(BIG, "v1.0.0", 16 << 20, 9));
        tree
    });
    let storage = tempfile::tempdir().expect("tempdir");
    let mut setup = Setup::new(storage.path(), Some(&up.url()));
    setup.env.extend([
        ("MODGATE_SERVER__MAX_CONNECTIONS".into(), "12000".into()),
        ("MODGATE_SERVER__ACCESS_LOG".into(), "false".into()),
    ]);
    let mg = Modgate::start(setup);
    let addr = mg.addr();
    let zip = artifact_path(BIG, "v1.0.0", "zip");
    let info = artifact_path(LIB, "v1.1.0", "info");
    // Fill both first, so the stalled readers read from storage.
    assert_eq!(get(&mg, &zip).status, 200);
    assert_eq!(get(&mg, &info).status, 200);

    // 10,000 keep-alive connections that made one request and now idle.
    let mut idle = Vec::with_capacity(idle_target);
    for _ in 0..idle_target {
        let c = TcpStream::connect(addr).expect("idle connection");
        assert_eq!(get_on(&c, &info).expect("first request"), 200);
        idle.push(c);
    }
    // 1,000 clients that ask for a 16 MiB zip and never read it.
    let mut stalled = Vec::with_capacity(STALLED);
    for _ in 0..STALLED {
        let mut s = TcpStream::connect(addr).expect("stalled connection");
        write!(s, "GET {zip} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").expect("request");
        stalled.push(s);
    }
    std::thread::sleep(Duration::from_secs(1));

    // New clients and health checks, one at a time on new connections.
    let mut latencies = Vec::new();
    for i in 0..400 {
        let path = if i % 2 == 0 {
            "/healthz"
        } else {
            info.as_str()
        };
        let began = Instant::now();
        let r = get(&mg, path);
        latencies.push(began.elapsed());
        assert_eq!(r.status, 200, "{path}");
    }
    latencies.sort();
    let p99 = percentile(&latencies, 0.99);
    println!(
        "{idle_target} idle + {STALLED} stalled: new clients p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        latencies[latencies.len() - 1].as_secs_f64() * 1e3
    );
    assert!(p99 < Duration::from_millis(100), "p99 {p99:?}");
    // The idle connections are still served.
    for c in idle.iter().step_by(1000) {
        assert_eq!(get_on(c, &info).expect("idle connection reused"), 200);
    }
    drop(stalled);
}
