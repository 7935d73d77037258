//! The fault matrix, the sandbox and the grants, with the test plugins from `plugins/test/`.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use super::embedded::test_plugins;
use super::*;

/// One engine for the whole test binary: its in-memory component map compiles each test
/// plugin once.
/// Plugin threads at normal priority: these tests are about what calls decide, and share the
/// machine with every other test of the run, where `SCHED_IDLE` threads could starve past a
/// call's deadline (the priority is the isolation test's subject, in `tests/integration`).
static ENGINE: LazyLock<PluginEngine> = LazyLock::new(|| {
    #[expect(clippy::unwrap_used, reason = "test setup")]
    PluginEngine::new(EngineSettings {
        pool_idle_priority: false,
        ..EngineSettings::default()
    })
    .unwrap()
});

fn spec(name: &str, wasm: &'static [u8]) -> PluginSpec {
    PluginSpec::new(name, PluginSource::Bytes(Cow::Borrowed(wasm)))
}

fn build(specs: &[PluginSpec]) -> PluginSet {
    match PluginSet::build(specs, &ENGINE) {
        Ok(set) => set,
        Err(e) => panic!("building the plugin set: {e}"),
    }
}

fn facts() -> RequestFacts {
    RequestFacts {
        method: "GET".into(),
        path: "/example.com/m/@v/v1.0.0.info".into(),
        module: Some("example.com/m".into()),
        version: Some("v1.0.0".into()),
        action: Action::Read,
        headers: vec![("user-agent".into(), "Go-http-client/1.1".into())],
        peer_addr: "127.0.0.1:40000".into(),
        tls_client_identity: None,
    }
}

fn principal(decision: &Decision) -> &str {
    match decision {
        Decision::Allow(allow) => &allow.principal,
        other => panic!("expected allow, got {other:?}"),
    }
}

fn health_of(set: &PluginSet, name: &str) -> Health {
    match set.health().into_iter().find(|(n, _)| n == name) {
        Some((_, health)) => health,
        None => panic!("no plugin {name}"),
    }
}

fn faulty() -> Vec<PluginSpec> {
    /// Debug builds on a loaded 2-core machine (the whole test suite at once) can take over
    /// 50 ms for a call; the tests are about isolation, not latency (see the benchmark).
    fn slack(spec: PluginSpec) -> PluginSpec {
        PluginSpec {
            limits: Limits {
                timeout: Duration::from_secs(2),
                ..Limits::default()
            },
            ..spec
        }
    }
    vec![
        slack(spec("allow-all", test_plugins::ALLOW_ALL)),
        spec("trap", test_plugins::TRAP),
        spec("panic", test_plugins::PANIC),
        spec("loop", test_plugins::LOOP),
        // Must fail by its memory cap, not its deadline (growing 32 MiB takes ~20 ms in debug).
        slack(spec("membomb", test_plugins::MEMBOMB)),
    ]
}

#[tokio::test]
async fn allow_all_allows() -> anyhow::Result<()> {
    let set = build(&[spec("allow-all", test_plugins::ALLOW_ALL)]);
    let decision = set.authorize("allow-all", &facts()).await?;
    assert_eq!(principal(&decision.decision), "test-user");
    assert!(health_of(&set, "allow-all").healthy);
    Ok(())
}

#[tokio::test]
async fn each_fault_fails_only_its_own_call_with_its_error() {
    let set = build(&faulty());
    for (name, check) in [
        (
            "trap",
            (|e| matches!(e, PluginError::Trap { .. })) as fn(&PluginError) -> bool,
        ),
        ("panic", |e| matches!(e, PluginError::Trap { .. })),
        ("loop", |e| matches!(e, PluginError::Timeout { .. })),
        ("membomb", |e| matches!(e, PluginError::OutOfMemory { .. })),
    ] {
        let started = std::time::Instant::now();
        let error = match set.authorize(name, &facts()).await {
            Ok(d) => panic!("{name}: expected a failure, got {d:?}"),
            Err(e) => e,
        };
        assert!(check(&error), "{name}: unexpected error {error:?}");
        assert_eq!(error.plugin(), Some(name));
        assert!(error.to_string().contains(name), "{error}");
        // Within the 50 ms deadline plus scheduling slack, whatever the fault.
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{name} took {:?}",
            started.elapsed()
        );
        // The neighbour is unaffected.
        let decision = set.authorize("allow-all", &facts()).await;
        assert!(
            matches!(
                decision.as_deref().map(|r| &r.decision),
                Ok(Decision::Allow(_))
            ),
            "{decision:?}"
        );
    }
    let error = set.authorize("nope", &facts()).await.err();
    assert!(matches!(error, Some(PluginError::NotFound(_))), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn well_behaved_calls_see_zero_failures_while_faulty_plugins_run() -> anyhow::Result<()> {
    let set = Arc::new(build(&faulty()));
    let mut faults = Vec::new();
    for name in ["trap", "panic", "loop", "membomb"] {
        let set = set.clone();
        faults.push(tokio::spawn(async move {
            for _ in 0..8 {
                assert!(set.authorize(name, &facts()).await.is_err());
            }
        }));
    }
    let mut good = Vec::new();
    for _ in 0..4 {
        let set = set.clone();
        good.push(tokio::spawn(async move {
            let mut failures = 0;
            for _ in 0..100 {
                if let Err(e) = set.authorize("allow-all", &facts()).await {
                    eprintln!("allow-all failed: {e}");
                    failures += 1;
                }
            }
            failures
        }));
    }
    for task in good {
        assert_eq!(task.await?, 0);
    }
    for task in faults {
        task.await?;
    }
    for name in ["trap", "panic", "loop", "membomb"] {
        let health = health_of(&set, name);
        assert!(!health.healthy, "{name}: {health:?}");
        assert_eq!(health.failures, 8);
    }
    let health = health_of(&set, "allow-all");
    assert!(health.healthy);
    assert_eq!((health.calls, health.failures), (400, 0));
    Ok(())
}

#[tokio::test]
async fn health_flips_after_repeated_failures_and_back_after_a_success() {
    let set = build(&[spec("trap", test_plugins::TRAP)]);
    for i in 1..=UNHEALTHY_AFTER {
        assert!(set.authorize("trap", &facts()).await.is_err());
        assert_eq!(health_of(&set, "trap").healthy, i < UNHEALTHY_AFTER);
    }
    // The trap plugin never succeeds; a success is what resets the count.
    set.by_name("trap").expect("loaded").record(&Ok(()), false);
    let health = health_of(&set, "trap");
    assert!(health.healthy);
    assert_eq!(health.consecutive_failures, 0);
}

#[tokio::test]
async fn a_loud_plugin_is_cut_at_the_log_cap_and_still_answers() -> anyhow::Result<()> {
    // Writing 64 KiB+ of log lines takes longer than the default 50 ms deadline in a debug
    // build on a busy 2-core machine; the cap, not the deadline, is under test here.
    let mut loud = spec("loud", test_plugins::LOUD);
    loud.limits.timeout = std::time::Duration::from_secs(2);
    let set = build(&[loud]);
    let decision = set.authorize("loud", &facts()).await?;
    assert_eq!(principal(&decision.decision), "loud");
    assert_eq!(health_of(&set, "loud").log_truncations, 1);
    Ok(())
}

#[tokio::test]
async fn the_sandbox_grants_nothing_ambient() -> anyhow::Result<()> {
    let set = build(&[spec("sneaky", test_plugins::SNEAKY)]);
    let decision = set.authorize("sneaky", &facts()).await?;
    match &decision.decision {
        Decision::Deny(deny) => assert_eq!(deny.message, "escaped: none"),
        other => panic!("expected the sneaky report, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn routers_route_and_kinds_are_checked() -> anyhow::Result<()> {
    let set = build(&[
        spec("router", test_plugins::ROUTE_BY_HEADER),
        spec("allow-all", test_plugins::ALLOW_ALL),
    ]);
    let mut req = facts();
    assert_eq!(*set.route("router", &req).await?, None);
    req.headers.push(("x-route".into(), "tenant-a".into()));
    assert_eq!(
        set.route("router", &req).await?.as_deref(),
        Some("tenant-a")
    );
    let wrong = set.authorize("router", &req).await.err();
    assert!(
        matches!(wrong, Some(PluginError::WrongKind { .. })),
        "{wrong:?}"
    );
    let wrong = set.route("allow-all", &req).await.err();
    assert_eq!(
        wrong.map(|e| e.to_string()).as_deref(),
        Some("plugin \"allow-all\" is not a router plugin")
    );
    Ok(())
}

#[test]
fn bad_specs_are_refused_naming_the_plugin() {
    let missing = PluginSpec::new("x", PluginSource::Embedded("no-such-plugin".into()));
    let not_wasm = PluginSpec::new("y", PluginSource::Bytes(Cow::Borrowed(b"not wasm")));
    let mut too_big = spec("z", test_plugins::ALLOW_ALL);
    too_big.limits.memory_bytes = usize::MAX;
    for bad in [missing, not_wasm, too_big] {
        let name = bad.name.clone();
        match PluginSet::build(&[bad], &ENGINE) {
            Err(PluginError::Load { plugin, .. }) => assert_eq!(plugin, name),
            other => panic!("{name}: {:?}", other.err()),
        }
    }
}

#[test]
fn outputs_past_the_caps_are_bad_output() {
    let long = "x".repeat(OutputCaps::PRINCIPAL + 1);
    for decision in [
        Decision::Allow(Allow {
            principal: long.clone(),
            scopes: vec![],
        }),
        Decision::Allow(Allow {
            principal: String::new(),
            scopes: vec![],
        }),
        Decision::Allow(Allow {
            principal: "p".into(),
            scopes: vec!["s".into(); OutputCaps::SCOPES + 1],
        }),
        Decision::Deny(Deny {
            status: 200,
            message: "ok".into(),
        }),
        Decision::Deny(Deny {
            status: 403,
            message: "two\nlines".into(),
        }),
    ] {
        assert!(matches!(
            check_decision("p", decision),
            Err(PluginError::BadOutput { .. })
        ));
    }
    assert!(check_decision("p", Decision::Abstain).is_ok());
}

/// A small HTTP/1.1 server on 127.0.0.1 answering every request with `200` and `body` (which
/// the test may change), counting requests: what a plugin's outbound `http` reaches in tests.
pub(super) struct BodyServer {
    pub addr: std::net::SocketAddr,
    pub body: Arc<Mutex<Vec<u8>>>,
    pub hits: Arc<AtomicU64>,
}

impl BodyServer {
    pub async fn start(body: impl Into<Vec<u8>>) -> anyhow::Result<Self> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let server = BodyServer {
            addr: listener.local_addr()?,
            body: Arc::new(Mutex::new(body.into())),
            hits: Arc::default(),
        };
        let (body, hits) = (server.body.clone(), server.hits.clone());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                hits.fetch_add(1, Ordering::SeqCst);
                let body = body.lock().map(|b| b.clone()).unwrap_or_default();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let _ = conn.read(&mut buf).await;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(&[head.as_bytes(), &body].concat()).await;
                });
            }
        });
        Ok(server)
    }
}

#[tokio::test]
async fn grants_decide_what_a_plugin_reaches() -> anyhow::Result<()> {
    let granted = BodyServer::start("hello").await?.addr;
    let other = BodyServer::start("hello").await?.addr;
    let mut echo = spec("echo", test_plugins::ECHO_CONFIG);
    echo.config = toml::from_str(&format!(
        r#"
        secrets = ["GRANTED", "UNGRANTED", "MISSING"]
        http = ["http://{granted}/hello", "http://{other}/hello", "file:///etc/passwd"]
        kv = "v1"
        "#
    ))?;
    echo.grants.secrets = vec!["GRANTED".into(), "MISSING".into()];
    echo.grants.hosts = vec![granted.to_string()];
    echo.secret_values = [("GRANTED", "s3cret"), ("UNGRANTED", "leaked")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // Generous: the first outbound connection may be slow on a loaded machine.
    echo.limits.timeout = Duration::from_secs(2);
    let set = build(&[echo]);

    let Decision::Allow(first) = &set.authorize("echo", &facts()).await?.decision else {
        panic!("echo-config must allow");
    };
    let config: serde_json::Value = serde_json::from_str(&first.principal)?;
    assert_eq!(config["kv"], "v1");
    assert_eq!(
        first.scopes,
        [
            "secret:GRANTED=s3cret".to_string(),
            "secret:UNGRANTED!Error::NotGranted".into(),
            "secret:MISSING!Error::NotFound".into(),
            "http:200:hello".into(),
            format!("http!Error::NotGranted(\"{other}\")"),
            "http!Error::InvalidRequest(\"url: invalid format\")".into(),
            "kv:".into(),
        ]
    );
    // kv persists across calls of the same plugin (fresh instances, shared cache).
    let Decision::Allow(second) = &set.authorize("echo", &facts()).await?.decision else {
        panic!("echo-config must allow");
    };
    assert_eq!(second.scopes.last().map(String::as_str), Some("kv:v1"));
    Ok(())
}

/// Instance strategies through [`PluginSet`], release build: a fresh instance per call
/// (`reuse_calls = 0`) against reused instances (the default), plus the floor: one instance
/// called directly. Run with
/// `cargo test --release -p modgate plugin::tests::bench_instance_strategies -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "micro-benchmark; prints time per call"]
async fn bench_instance_strategies() -> anyhow::Result<()> {
    const N: u32 = 20_000;
    let req = facts();
    let mut fresh_spec = spec("allow-all", test_plugins::ALLOW_ALL);
    fresh_spec.limits.reuse_calls = 0;
    let mut per_call = Vec::new();
    for (label, set) in [
        ("fresh instance per call", build(&[fresh_spec])),
        (
            "reused instances (default)",
            build(&[spec("allow-all", test_plugins::ALLOW_ALL)]),
        ),
    ] {
        for _ in 0..1000 {
            set.authorize("allow-all", &req).await?;
        }
        let started = std::time::Instant::now();
        for _ in 0..N {
            set.authorize("allow-all", &req).await?;
        }
        per_call.push((label, started.elapsed() / N));
    }

    let set = build(&[spec("allow-all", test_plugins::ALLOW_ALL)]);
    let plugin = set.by_name("allow-all").expect("loaded");
    let Some(pre) = &plugin.authorizer else {
        panic!("allow-all is an authorizer")
    };
    let (mut store, _) = set.checkout(plugin, &plugin.idle_authorizers, Instant::now());
    // One long-lived store: push its deadline out of the way.
    store.data_mut().deadline = Instant::now() + Duration::from_secs(3600);
    let wasm_error = |e: wasmtime::Error| anyhow::anyhow!("{e:#}");
    let instance = pre
        .instantiate_async(&mut store)
        .await
        .map_err(wasm_error)?;
    for _ in 0..1000 {
        instance
            .call_authorize(&mut store, &req)
            .await
            .map_err(wasm_error)?;
    }
    let started = std::time::Instant::now();
    for _ in 0..N {
        instance
            .call_authorize(&mut store, &req)
            .await
            .map_err(wasm_error)?;
    }
    per_call.push(("one instance called directly", started.elapsed() / N));
    for (label, time) in per_call {
        println!("{label}: {time:?}/call");
    }
    Ok(())
}

async fn counter_principals(set: &PluginSet, paths: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for path in paths {
        let mut req = facts();
        req.path = (*path).to_string();
        out.push(match set.authorize("counter", &req).await {
            Ok(decision) => principal(&decision.decision).to_string(),
            Err(PluginError::Trap { .. }) => "trap".to_string(),
            Err(e) => panic!("unexpected {e:?}"),
        });
    }
    out
}

#[tokio::test]
async fn instances_are_reused_up_to_reuse_calls_and_never_after_a_failure() {
    let ok = "/example.com/m/@v/list";
    let trap = "/example.com/trap/@v/list";

    let set = build(&[spec("counter", test_plugins::COUNTER)]);
    assert_eq!(
        counter_principals(&set, &[ok, ok, ok, trap, ok, ok]).await,
        ["call-1", "call-2", "call-3", "trap", "call-1", "call-2"],
        "one reused instance; the trapped one is replaced by a fresh one"
    );

    let mut fresh = spec("counter", test_plugins::COUNTER);
    fresh.limits.reuse_calls = 0;
    let set = build(&[fresh]);
    assert_eq!(
        counter_principals(&set, &[ok, ok, ok]).await,
        ["call-1", "call-1", "call-1"],
        "reuse_calls = 0: a fresh instance for every call"
    );

    let mut capped = spec("counter", test_plugins::COUNTER);
    capped.limits.reuse_calls = 2;
    let set = build(&[capped]);
    assert_eq!(
        counter_principals(&set, &[ok, ok, ok, ok, ok]).await,
        ["call-1", "call-2", "call-1", "call-2", "call-1"],
        "an instance serves reuse_calls calls, then a fresh one takes over"
    );
}

/// What the counter plugin answers for `path` in `module` with `Authorization: <auth>`.
async fn counter_memo(set: &PluginSet, module: &str, auth: &str, leaf: &str) -> String {
    let mut req = facts();
    req.module = Some(module.to_string());
    req.path = format!("/{module}/{leaf}");
    req.headers.push(("authorization".into(), auth.into()));
    match set.authorize("counter", &req).await {
        Ok(decision) => principal(&decision.decision).to_string(),
        Err(PluginError::Trap { .. }) => "trap".to_string(),
        Err(e) => panic!("unexpected {e:?}"),
    }
}

#[tokio::test]
async fn remembered_answers_are_reused_only_for_requests_agreeing_on_what_they_depend_on() {
    let metrics = Arc::new(crate::telemetry::Metrics::new());
    let set = build(&[spec("counter", test_plugins::COUNTER)]).with_metrics(metrics.clone());
    let m = "example.com/memo";
    let mut seen = Vec::new();
    for (module, auth, leaf) in [
        (m, "Bearer a", "@v/list"),
        // Same module and credentials, other artifact: not a fact the answer depended on.
        (m, "Bearer a", "@v/v1.0.0.info"),
        (m, "Bearer b", "@v/list"),
        ("example.com/memo/sub", "Bearer a", "@v/list"),
        (m, "Bearer b", "@v/list"),
    ] {
        seen.push(counter_memo(&set, module, auth, leaf).await);
    }
    assert_eq!(
        seen,
        ["call-1", "call-1", "call-2", "call-3", "call-2"],
        "the second and last answers are remembered ones (no call ran)"
    );
    assert_eq!(health_of(&set, "counter").calls, 3);
    assert!(
        metrics
            .render()
            .contains(r#"modgate_plugin_memo_hits_total{plugin="counter"} 2"#),
        "{}",
        metrics.render()
    );

    // A call that fails after asking is not remembered: it is asked (and fails) again.
    let t = "example.com/memo/trap";
    assert_eq!(counter_memo(&set, t, "Bearer a", "@v/list").await, "trap");
    assert_eq!(counter_memo(&set, t, "Bearer a", "@v/list").await, "trap");

    // Plugins that do not ask are asked every time; `memo_ttl = 0` turns the memo off.
    let mut off = spec("counter", test_plugins::COUNTER);
    off.limits.memo_ttl = Duration::ZERO;
    let set = build(&[off]);
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(counter_memo(&set, m, "Bearer a", "@v/list").await);
    }
    assert_eq!(seen, ["call-1", "call-2", "call-3"]);
}

#[tokio::test]
async fn a_reused_instance_gets_a_fresh_deadline_and_log_budget() -> anyhow::Result<()> {
    // The loud plugin logs past the cap on every call: each call, reused instance or not,
    // must start with a full budget and be cut again (not carry the last call's count).
    let mut loud = spec("loud", test_plugins::LOUD);
    loud.limits.timeout = Duration::from_secs(2);
    let set = build(&[loud]);
    for _ in 0..3 {
        set.authorize("loud", &facts()).await?;
    }
    assert_eq!(health_of(&set, "loud").log_truncations, 3);
    // Calls far apart in time still run: the deadline is per call, not per instance.
    let mut slow = spec("counter", test_plugins::COUNTER);
    slow.limits.timeout = Duration::from_millis(200);
    let set = build(&[slow]);
    set.authorize("counter", &facts()).await?;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let decision = set.authorize("counter", &facts()).await?;
    assert_eq!(principal(&decision.decision), "call-2");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_refuses_a_call_instead_of_waiting() -> anyhow::Result<()> {
    let engine = PluginEngine::new(EngineSettings {
        max_instances: 1,
        ..EngineSettings::default()
    })?;
    let mut busy = spec("loop", test_plugins::LOOP);
    busy.limits.timeout = Duration::from_millis(500);
    let mut allow = spec("allow-all", test_plugins::ALLOW_ALL);
    allow.limits.timeout = Duration::from_secs(2);
    let set = Arc::new(PluginSet::build(&[busy, allow], &engine)?);
    let looping = tokio::spawn({
        let set = set.clone();
        async move { set.authorize("loop", &facts()).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = set.authorize("allow-all", &facts()).await.err();
    assert!(
        matches!(refused, Some(PluginError::Busy { .. })),
        "{refused:?}"
    );
    assert!(matches!(looping.await?, Err(PluginError::Timeout { .. })));
    // The slot is free again, once the failed call's store has been dropped on the plugin
    // threads (just after the call's answer).
    let deadline = Instant::now() + Duration::from_secs(2);
    while let Err(e) = set.authorize("allow-all", &facts()).await {
        assert!(Instant::now() < deadline, "the slot stays taken: {e}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

#[test]
fn compiled_code_is_cached_on_disk() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let engine = PluginEngine::new(EngineSettings {
        max_instances: 4,
        cache_dir: Some(dir.path().to_path_buf()),
        ..EngineSettings::default()
    })?;
    PluginSet::build(&[spec("allow-all", test_plugins::ALLOW_ALL)], &engine)?;
    let files = walk(dir.path())?;
    assert!(files > 0, "nothing in the cache directory");
    Ok(())
}

fn walk(dir: &std::path::Path) -> std::io::Result<usize> {
    let mut files = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        files += if entry.file_type()?.is_dir() {
            walk(&entry.path())?
        } else {
            1
        };
    }
    Ok(files)
}

/// A call that runs long gives its thread back: on a single-threaded runtime (like a server
/// worker) a timer task keeps ticking while the looping plugin runs to its deadline on the
/// plugin pool, and the plugin is then started on the pool straight away.
#[tokio::test(flavor = "current_thread")]
async fn a_long_call_leaves_the_request_thread_free() {
    let mut looping = spec("loop", test_plugins::LOOP);
    looping.limits.timeout = Duration::from_millis(200);
    let set = build(&[looping]);
    let ticks = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = tokio::spawn({
        let ticks = ticks.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(2)).await;
                ticks.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let started = Instant::now();
    let result = set.authorize("loop", &facts()).await;
    let took = started.elapsed();
    counter.abort();
    assert!(
        matches!(result, Err(PluginError::Timeout { .. })),
        "{result:?}"
    );
    // 200 ms of guest time at one tick per 2 ms: the timer ran nearly all along (a thread held
    // by the guest would have ticked once or twice).
    let ticked = ticks.load(Ordering::Relaxed);
    assert!(
        ticked >= 40,
        "the thread was held: {ticked} ticks in {took:?}"
    );
    let plugin = set.by_name("loop").expect("loaded");
    assert!(plugin.slow.is_slow(Instant::now()), "marked slow");
}

/// Past `max_concurrent` running and `max_queue` waiting, a call is refused at once with
/// `Overloaded`, which is not a failure of the plugin; a plugin's budget is its own.
#[tokio::test]
async fn past_its_budget_a_call_is_refused_at_once() {
    let mut looping = spec("loop", test_plugins::LOOP);
    looping.limits.timeout = Duration::from_millis(300);
    looping.limits.max_concurrent = 1;
    looping.limits.max_queue = 1;
    let set = Arc::new(build(&[
        looping,
        spec("allow-all", test_plugins::ALLOW_ALL),
    ]));
    let spawn = |set: Arc<PluginSet>| {
        tokio::spawn(async move { set.authorize("loop", &facts()).await.map(|_| ()) })
    };
    let running = spawn(set.clone());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let waiting = spawn(set.clone());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(health_of(&set, "loop").waiting, 1);
    let started = Instant::now();
    let refused = set.authorize("loop", &facts()).await;
    assert!(
        matches!(&refused, Err(PluginError::Overloaded { plugin }) if plugin == "loop"),
        "{refused:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "refused at once"
    );
    // Another plugin is not held up by loop's budget.
    let decision = set
        .authorize("allow-all", &facts())
        .await
        .expect("allow-all");
    assert_eq!(principal(&decision.decision), "test-user");
    for call in [running, waiting] {
        let result = call.await.expect("join");
        assert!(
            matches!(result, Err(PluginError::Timeout { .. })),
            "{result:?}"
        );
    }
    let health = health_of(&set, "loop");
    assert_eq!((health.calls, health.overloaded, health.waiting), (2, 1, 0));
}

/// `plugins/go/test-faults`, built once per test run with the Go SDK.
static GO_FAULTS: LazyLock<Vec<u8>> =
    LazyLock::new(|| super::build::go_component_for_tests("plugins/go/test-faults"));

fn go_faults(timeout: Duration) -> PluginSpec {
    let mut spec = PluginSpec::new(
        "go-faults",
        PluginSource::Bytes(Cow::Owned(GO_FAULTS.clone())),
    );
    spec.limits.timeout = timeout;
    spec.limits.memory_bytes = 64 << 20;
    spec
}

fn fault(name: &str) -> RequestFacts {
    let mut facts = facts();
    facts.headers.push(("x-fault".into(), name.into()));
    facts
}

/// The fault matrix for a Go plugin: a panic is a fail-closed answer (503, the panic logged)
/// and the next call gets a fresh instance; a loop meets the deadline; unbounded allocation
/// meets the memory cap; each fails its own call only, and the plugin serves the next one.
#[tokio::test]
async fn go_plugin_faults_fail_their_own_call_and_the_next_is_served() {
    let set = build(&[go_faults(Duration::from_secs(2))]);
    let count = |facts| {
        let set = &set;
        async move {
            match set
                .authorize("go-faults", &facts)
                .await
                .as_deref()
                .map(|r| &r.decision)
            {
                Ok(Decision::Allow(allow)) => allow.principal.clone(),
                other => panic!("expected allow, got {other:?}"),
            }
        }
    };
    assert_eq!(count(fault("count")).await, "call-1");
    assert_eq!(
        count(fault("count")).await,
        "call-2",
        "the instance is reused"
    );

    let answer = set.authorize("go-faults", &fault("panic")).await;
    match answer.as_deref().map(|r| &r.decision) {
        Ok(Decision::Deny(deny)) => {
            assert_eq!(deny.status, 503);
            assert!(deny.message.contains("panicked"), "{}", deny.message);
        }
        other => panic!("a panic must be a fail-closed answer, got {other:?}"),
    }
    assert_eq!(
        count(fault("count")).await,
        "call-1",
        "a fresh instance after the panic"
    );

    let started = std::time::Instant::now();
    let error = set.authorize("go-faults", &fault("loop")).await.err();
    assert!(
        matches!(error, Some(PluginError::Timeout { .. })),
        "{error:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(count(fault("count")).await, "call-1");

    let error = set.authorize("go-faults", &fault("membomb")).await.err();
    assert!(
        matches!(
            error,
            Some(PluginError::OutOfMemory { .. } | PluginError::Trap { .. })
        ),
        "{error:?}"
    );
    assert_eq!(count(fault("count")).await, "call-1");
    assert!(health_of(&set, "go-faults").healthy);
}

/// The regression test for the Go GC trap (a collection started inside `cabi_realloc` calls the
/// clock, which the component model forbids: `cannot leave component instance`, found after
/// 3,000–10,000 ordinary calls): 100,000 calls on reused instances, each with 16 KiB of
/// headers, a 32 KiB `kv` value read back, an `http` error string and a digest.
#[tokio::test]
async fn go_plugins_take_100k_calls_with_large_headers_and_imports_without_a_trap() {
    let mut spec = go_faults(Duration::from_secs(5));
    spec.limits.reuse_calls = 100_000;
    let set = build(&[spec]);
    let mut facts = fault("imports");
    for i in 0..8 {
        facts
            .headers
            .push((format!("x-large-{i}"), "v".repeat(2048)));
    }
    let total: usize = facts.headers.iter().map(|(_, value)| value.len()).sum();
    let expected = [total.to_string()];
    let facts = Arc::new(facts);
    for call in 0..100_000 {
        match set
            .authorize("go-faults", &*facts)
            .await
            .as_deref()
            .map(|r| &r.decision)
        {
            Ok(Decision::Allow(allow)) if allow.scopes == expected => {}
            other => panic!("call {call}: {other:?}"),
        }
    }
    let health = health_of(&set, "go-faults");
    assert_eq!((health.calls, health.failures), (100_000, 0));
}

/// What a Go plugin's call costs beside a Rust one's: a near-empty handler (the Go test
/// plugin's `count`, the Rust `allow-all`), a fresh instance per call, and the Go handler using
/// the host imports. Run with `cargo test --release -p modgate --lib bench_go_calls --
/// --ignored --nocapture --test-threads=1`.
#[tokio::test]
#[ignore = "micro-benchmark; prints p50/p99"]
async fn bench_go_calls() {
    use super::first_party_tests::print_latency;
    let rust = build(&[spec("allow-all", test_plugins::ALLOW_ALL)]);
    let plain = facts();
    print_latency("allow-all (Rust), reused instance", || {
        rust.authorize("allow-all", &plain)
    })
    .await;
    let go = build(&[go_faults(Duration::from_secs(5))]);
    let count = fault("count");
    print_latency("test-faults count (Go), reused instance", || {
        go.authorize("go-faults", &count)
    })
    .await;
    for one in ["remember", "digest"] {
        let asked = fault(one);
        print_latency(
            &format!("test-faults {one} (Go: count and one import)"),
            || go.authorize("go-faults", &asked),
        )
        .await;
    }
    let imports = fault("imports");
    print_latency("test-faults imports (Go: kv 32 KiB, http, digest)", || {
        go.authorize("go-faults", &imports)
    })
    .await;
    let mut fresh = go_faults(Duration::from_secs(5));
    fresh.limits.reuse_calls = 0;
    let fresh = build(&[fresh]);
    print_latency("test-faults count (Go), fresh instance per call", || {
        fresh.authorize("go-faults", &count)
    })
    .await;
}
