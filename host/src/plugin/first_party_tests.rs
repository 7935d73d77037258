//! The first-party plugins (`plugins/<name>`, embedded in the binary) loaded through
//! [`PluginSet`] with real configs, as a route would call them. Their logic has native unit tests
//! in their own crates; these check the compiled components and the host wiring (config as JSON,
//! granted secrets).

use std::sync::LazyLock;
use std::time::Duration;

use super::*;

static ENGINE: LazyLock<PluginEngine> = LazyLock::new(|| {
    #[expect(clippy::unwrap_used, reason = "test setup")]
    PluginEngine::new(EngineSettings::default()).unwrap()
});

/// An embedded plugin with `config` (TOML). Debug builds on a loaded 2-core machine can take
/// over 50 ms for a call; these tests are about decisions, not latency.
fn embedded(name: &str, config: &str) -> PluginSpec {
    let mut spec = PluginSpec::new(name, PluginSource::Embedded(name.into()));
    spec.config = match toml::from_str(config) {
        Ok(table) => table,
        Err(e) => panic!("config of {name}: {e}"),
    };
    spec.limits.timeout = Duration::from_secs(5);
    spec
}

fn build(specs: &[PluginSpec]) -> PluginSet {
    match PluginSet::build(specs, &ENGINE) {
        Ok(set) => set,
        Err(e) => panic!("building the plugin set: {e}"),
    }
}

fn sha256_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// A request for `module` (`None`: a sumdb request) with an optional `Authorization` value.
fn request(module: Option<&str>, action: Action, auth: Option<&str>) -> RequestFacts {
    let path = match module {
        Some(m) => format!("/{m}/@v/v1.0.0.info"),
        None => "/sumdb/sum.golang.org/latest".into(),
    };
    let mut headers = vec![
        ("host".to_string(), "modgate.corp".to_string()),
        ("user-agent".into(), "Go-http-client/1.1".into()),
    ];
    if let Some(value) = auth {
        headers.push(("authorization".into(), value.into()));
    }
    RequestFacts {
        method: if action == Action::Publish {
            "PUT"
        } else {
            "GET"
        }
        .into(),
        path,
        module: module.map(str::to_string),
        version: module.map(|_| "v1.0.0".to_string()),
        action,
        headers,
        peer_addr: "127.0.0.1:40000".into(),
        tls_client_identity: None,
    }
}

async fn decide(set: &PluginSet, plugin: &str, req: &RequestFacts) -> Decision {
    match set.authorize(plugin, req).await {
        Ok(d) => d,
        Err(e) => panic!("{plugin}: {e}"),
    }
}

fn allowed(decision: &Decision) -> (&str, &[String]) {
    match decision {
        Decision::Allow(a) => (&a.principal, &a.scopes),
        other => panic!("expected allow, got {other:?}"),
    }
}

fn denied(decision: Decision) -> (u16, String) {
    match decision {
        Decision::Deny(d) => (d.status, d.message),
        other => panic!("expected deny, got {other:?}"),
    }
}

const AUTH_REQUIRED: &str = "authentication required: send a token as a Bearer token or as the password of Basic auth (.netrc or GOAUTH)";

fn auth_token() -> PluginSpec {
    let mut spec = embedded(
        "auth-token",
        &format!(
            r#"
            tokens_secret = "MODGATE_TOKENS"
            [[tokens]]
            name = "ci"
            sha256 = "{}"
            scopes = ["read", "publish"]
            modules = ["corp.example/*", "corp.example/team/..."]
            [[tokens]]
            name = "reader"
            sha256 = "{}"
            scopes = ["read"]
            modules = ["corp.example/*"]
            "#,
            sha256_hex("ci-token"),
            sha256_hex("reader-token"),
        ),
    );
    spec.grants.secrets = vec!["MODGATE_TOKENS".into()];
    spec.secret_values.insert(
        "MODGATE_TOKENS".into(),
        format!(
            r#"[{{"name": "vault", "sha256": "{}", "scopes": ["read"], "modules": ["*"]}}]"#,
            sha256_hex("vault-token")
        ),
    );
    spec
}

#[tokio::test]
async fn auth_token_accepts_bearer_and_basic_with_any_user() {
    let set = build(&[auth_token()]);
    for auth in [
        "Bearer ci-token".to_string(),
        basic("x", "ci-token"),
        basic("someone-else", "ci-token"),
    ] {
        let req = request(Some("corp.example/app"), Action::Read, Some(&auth));
        let decision = decide(&set, "auth-token", &req).await;
        let (principal, scopes) = allowed(&decision);
        assert_eq!(
            (principal, scopes),
            ("ci", &["read".into(), "publish".into()][..])
        );
    }
    // A token kept in the granted secret.
    let req = request(
        Some("other.example/x"),
        Action::Read,
        Some("Bearer vault-token"),
    );
    assert_eq!(allowed(&decide(&set, "auth-token", &req).await).0, "vault");
}

#[tokio::test]
async fn auth_token_401s_never_tell_whether_a_module_exists() {
    let set = build(&[auth_token()]);
    let missing = request(Some("corp.example/app"), Action::Read, None);
    assert_eq!(
        denied(decide(&set, "auth-token", &missing).await),
        (401, AUTH_REQUIRED.to_string())
    );
    let mut answers = Vec::new();
    for module in ["corp.example/app", "corp.example/no-such-module"] {
        for auth in ["Bearer wrong".to_string(), basic("ci", "wrong")] {
            let req = request(Some(module), Action::Read, Some(&auth));
            answers.push(denied(decide(&set, "auth-token", &req).await));
        }
    }
    assert!(
        answers
            .iter()
            .all(|a| *a == (401, "invalid credentials".to_string())),
        "{answers:?}"
    );
    let malformed = request(Some("corp.example/app"), Action::Read, Some("Basic %%%"));
    assert_eq!(denied(decide(&set, "auth-token", &malformed).await).0, 401);
}

#[tokio::test]
async fn auth_token_403s_outside_its_modules_and_scopes() {
    let set = build(&[auth_token()]);
    let req = request(
        Some("github.com/other/x"),
        Action::Read,
        Some("Bearer ci-token"),
    );
    assert_eq!(
        denied(decide(&set, "auth-token", &req).await),
        (403, "token ci may not read github.com/other/x".to_string())
    );
    let req = request(
        Some("corp.example/app"),
        Action::Publish,
        Some("Bearer reader-token"),
    );
    assert_eq!(
        denied(decide(&set, "auth-token", &req).await),
        (
            403,
            "token reader may not publish corp.example/app".to_string()
        )
    );
    let req = request(
        Some("corp.example/app"),
        Action::Publish,
        Some("Bearer ci-token"),
    );
    assert_eq!(allowed(&decide(&set, "auth-token", &req).await).0, "ci");
    // sumdb: no module, the read scope is enough.
    let req = request(None, Action::Read, Some("Bearer reader-token"));
    assert_eq!(allowed(&decide(&set, "auth-token", &req).await).0, "reader");
}

#[tokio::test]
async fn auth_token_with_a_broken_config_fails_closed_naming_itself() {
    let set = build(&[embedded(
        "auth-token",
        r#"tokens = [{ name = "x", sha256 = "not-hex", scopes = ["read"], modules = ["*"] }]"#,
    )]);
    let req = request(Some("corp.example/app"), Action::Read, Some("Bearer x"));
    let (status, message) = denied(decide(&set, "auth-token", &req).await);
    assert_eq!(status, 500);
    assert!(message.starts_with("auth-token: "), "{message}");
}

/// Per-call latency of `auth-token` through [`PluginSet`] (fresh instance per call, config
/// parsed and token hashed in the plugin). Run with
/// `cargo test --release -p modgate first_party_tests::bench_auth_token -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "micro-benchmark; prints p50/p99"]
async fn bench_auth_token() {
    const N: usize = 2000;
    let mut spec = auth_token();
    spec.limits = Limits::default();
    let set = build(&[spec]);
    for (label, auth) in [
        ("bearer ok", "Bearer ci-token".to_string()),
        ("basic ok", basic("x", "ci-token")),
        ("wrong token", "Bearer wrong".to_string()),
    ] {
        let req = request(Some("corp.example/app"), Action::Read, Some(&auth));
        for _ in 0..200 {
            decide(&set, "auth-token", &req).await;
        }
        let mut samples = Vec::with_capacity(N);
        for _ in 0..N {
            let started = std::time::Instant::now();
            decide(&set, "auth-token", &req).await;
            samples.push(started.elapsed());
        }
        samples.sort();
        println!(
            "auth-token {label}: p50 {:?}, p99 {:?}, max {:?} over {N} calls",
            samples[N / 2],
            samples[N * 99 / 100],
            samples[N - 1]
        );
    }
}

/// `alice-pw` at cost 4 (tests only: real entries use `htpasswd -B`, cost 10 or more).
const ALICE: &str = "alice:$2y$04$rm/EEpISbdIo9Jm34OjRBuWvQQKM8agwOsKP11vD0abUQJkm01lK6";

#[tokio::test]
async fn auth_htpasswd_checks_bcrypt_passwords_and_module_access() {
    let mut spec = embedded(
        "auth-htpasswd",
        r#"
        users_secret = "HTPASSWD"
        access = { alice = ["corp.example/*"] }
        "#,
    );
    spec.grants.secrets = vec!["HTPASSWD".into()];
    spec.secret_values
        .insert("HTPASSWD".into(), format!("# team\n{ALICE}\n"));
    let set = build(&[spec]);
    let ok = request(
        Some("corp.example/app"),
        Action::Read,
        Some(&basic("alice", "alice-pw")),
    );
    // Twice: the second call hits the verified cache in kv.
    for _ in 0..2 {
        let decision = decide(&set, "auth-htpasswd", &ok).await;
        assert_eq!(allowed(&decision), ("alice", &["read".to_string()][..]));
    }
    for (module, user, password) in [
        ("corp.example/app", "alice", "wrong"),
        ("corp.example/no-such-module", "mallory", "alice-pw"),
    ] {
        let req = request(Some(module), Action::Read, Some(&basic(user, password)));
        assert_eq!(
            denied(decide(&set, "auth-htpasswd", &req).await),
            (401, "invalid credentials".to_string())
        );
    }
    let elsewhere = request(
        Some("github.com/x/y"),
        Action::Read,
        Some(&basic("alice", "alice-pw")),
    );
    assert_eq!(
        denied(decide(&set, "auth-htpasswd", &elsewhere).await),
        (403, "user alice may not read github.com/x/y".to_string())
    );
    let missing = request(Some("corp.example/app"), Action::Read, None);
    assert_eq!(denied(decide(&set, "auth-htpasswd", &missing).await).0, 401);
}

#[tokio::test]
async fn router_prefix_routes_by_host_then_longest_prefix() -> Result<(), PluginError> {
    let set = build(&[embedded(
        "router-prefix",
        r#"
        by_host = { "tenant-a.modgate.corp" = "tenant-a" }
        by_prefix = { "corp.example" = "corp", "corp.example/team-b" = "tenant-b" }
        "#,
    )]);
    let mut req = request(Some("corp.example/team-b/tool"), Action::Read, None);
    assert_eq!(
        set.route("router-prefix", &req).await?.as_deref(),
        Some("tenant-b")
    );
    req.headers[0].1 = "tenant-a.modgate.corp:443".into();
    assert_eq!(
        set.route("router-prefix", &req).await?.as_deref(),
        Some("tenant-a")
    );
    req.headers[0].1 = "modgate.corp".into();
    req.module = Some("corp.example/app".into());
    assert_eq!(
        set.route("router-prefix", &req).await?.as_deref(),
        Some("corp")
    );
    req.module = Some("github.com/x/y".into());
    assert_eq!(set.route("router-prefix", &req).await?, None);
    Ok(())
}
