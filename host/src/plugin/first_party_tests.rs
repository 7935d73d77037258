//! The first-party plugins (`plugins/<name>`, embedded in the binary) loaded through
//! [`PluginSet`] with real configs, as a route would call them. Their logic has native unit tests
//! in their own crates; these check the compiled components and the host wiring (config as JSON,
//! granted secrets).

use std::sync::LazyLock;
use std::time::Duration;

use super::*;

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

/// Times `call` (2000 times, after 200 warm-up calls) and prints p50, p99 and max.
pub(super) async fn print_latency<F: Future>(label: &str, mut call: impl FnMut() -> F) {
    const N: usize = 2000;
    // A new plugin set's calls take up to twice as long for their first few thousand (measured:
    // ES256 through auth-jwt ~180 µs for ~4000 calls, then ~75 µs): warm up for a second.
    let warm = std::time::Instant::now();
    while warm.elapsed() < std::time::Duration::from_secs(1) {
        call().await;
    }
    let mut samples = Vec::with_capacity(N);
    for _ in 0..N {
        let started = std::time::Instant::now();
        call().await;
        samples.push(started.elapsed());
    }
    samples.sort();
    println!(
        "{label}: p50 {:?}, p99 {:?}, max {:?} over {N} calls",
        samples[N / 2],
        samples[N * 99 / 100],
        samples[N - 1]
    );
}

async fn decide(set: &PluginSet, plugin: &str, req: &RequestFacts) -> Decision {
    match set.authorize(plugin, req).await {
        Ok(d) => Arc::unwrap_or_clone(d).decision,
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

/// The Go port of `auth-token` (`plugins/go/auth-token`, Go SDK), built once per test run: the
/// auth-token tests below run against it and the embedded Rust plugin alike.
static GO_AUTH_TOKEN: LazyLock<Vec<u8>> =
    LazyLock::new(|| super::build::go_component_for_tests("plugins/go/auth-token"));

/// `auth-token` in Rust (embedded) and in Go.
fn auth_token_sources() -> [(&'static str, PluginSource); 2] {
    [
        ("rust", PluginSource::Embedded("auth-token".into())),
        ("go", PluginSource::Bytes(Cow::Owned(GO_AUTH_TOKEN.clone()))),
    ]
}

fn auth_token_from(source: PluginSource) -> PluginSpec {
    PluginSpec {
        source,
        ..auth_token()
    }
}

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
    for (language, source) in auth_token_sources() {
        eprintln!("auth-token ({language})");
        let set = build(&[auth_token_from(source)]);
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
}

#[tokio::test]
async fn auth_token_401s_never_tell_whether_a_module_exists() {
    for (language, source) in auth_token_sources() {
        eprintln!("auth-token ({language})");
        let set = build(&[auth_token_from(source)]);
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
}

#[tokio::test]
async fn auth_token_403s_outside_its_modules_and_scopes() {
    for (language, source) in auth_token_sources() {
        eprintln!("auth-token ({language})");
        let set = build(&[auth_token_from(source)]);
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
}

#[tokio::test]
async fn auth_token_with_a_broken_config_fails_closed_naming_itself() {
    for (language, source) in auth_token_sources() {
        eprintln!("auth-token ({language})");
        let set = build(&[PluginSpec {
            source,
            ..embedded(
                "auth-token",
                r#"tokens = [{ name = "x", sha256 = "not-hex", scopes = ["read"], modules = ["*"] }]"#,
            )
        }]);
        let req = request(Some("corp.example/app"), Action::Read, Some("Bearer x"));
        let (status, message) = denied(decide(&set, "auth-token", &req).await);
        assert_eq!(status, 500);
        assert!(message.starts_with("auth-token: "), "{message}");
    }
}

/// Latency of `auth-token` through [`PluginSet`]: a call into a reused instance (memo off) and
/// a remembered answer (the default; the first request of each credential calls). Run with
/// `cargo test --release -p modgate first_party_tests::bench_auth_token -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "micro-benchmark; prints p50/p99"]
async fn bench_auth_token() {
    let old = old_plugin("auth_token.wasm");
    for memo in [Duration::ZERO, Limits::DEFAULT_MEMO_TTL] {
        let mut sources = vec![
            ("", PluginSource::Embedded("auth-token".into())),
            (
                " [Go]",
                PluginSource::Bytes(Cow::Owned(GO_AUTH_TOKEN.clone())),
            ),
        ];
        if let Some(wasm) = &old {
            sources.push((
                " [old build]",
                PluginSource::Bytes(Cow::Owned(wasm.clone())),
            ));
        }
        let mut sets = Vec::new();
        for (which, source) in sources {
            let mut spec = auth_token_from(source);
            spec.limits = Limits::default();
            spec.limits.memo_ttl = memo;
            sets.push((which, build(&[spec])));
        }
        let mode = if memo.is_zero() {
            "called"
        } else {
            "remembered"
        };
        for (label, auth) in [
            ("bearer ok", "Bearer ci-token".to_string()),
            ("basic ok", basic("x", "ci-token")),
            ("wrong token", "Bearer wrong".to_string()),
        ] {
            let req = request(Some("corp.example/app"), Action::Read, Some(&auth));
            for (which, set) in &sets {
                print_latency(&format!("auth-token {label}, {mode}{which}"), || {
                    decide(set, "auth-token", &req)
                })
                .await;
            }
        }
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

/// Calls plugin `name` has had (remembered answers are not calls).
fn calls(set: &PluginSet, name: &str) -> u64 {
    set.health()
        .into_iter()
        .find(|(n, _)| n == name)
        .map_or(0, |(_, h)| h.calls)
}

/// A client replaying a refused credential costs a lookup, not a bcrypt or signature check:
/// auth-htpasswd and auth-jwt remember 4xx refusals (briefly, `memo::REFUSAL_TTL`); another
/// credential is another call.
#[tokio::test]
async fn expensive_refusals_are_remembered() {
    let mut spec = embedded("auth-htpasswd", "");
    spec.config = toml::from_str(&format!("users = {:?}", format!("{ALICE}\n")))
        .unwrap_or_else(|e| panic!("{e}"));
    let set = build(&[spec]);
    let wrong = request(
        Some("corp.example/app"),
        Action::Read,
        Some(&basic("alice", "wrong")),
    );
    for _ in 0..3 {
        assert_eq!(denied(decide(&set, "auth-htpasswd", &wrong).await).0, 401);
    }
    assert_eq!(
        calls(&set, "auth-htpasswd"),
        1,
        "a replayed refusal is remembered"
    );
    let other = request(
        Some("corp.example/app"),
        Action::Read,
        Some(&basic("alice", "wrong-2")),
    );
    assert_eq!(denied(decide(&set, "auth-htpasswd", &other).await).0, 401);
    assert_eq!(
        calls(&set, "auth-htpasswd"),
        2,
        "another password is another call"
    );

    use jsonwebtoken::Algorithm::ES256;
    let (set, _server) = with_jwks_server(&[&RSA_SIGNER], &[], json!({})).await;
    let forged = Signer::new(ES256, "rsa-1").token("alice", &["team-a"], json!({}));
    for _ in 0..3 {
        assert_eq!(
            denied(read(&set, "corp.example/team-a", &forged).await),
            (401, "invalid credentials".to_string())
        );
    }
    assert_eq!(
        calls(&set, "auth-jwt"),
        1,
        "a replayed forgery is remembered"
    );
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
    assert_eq!(*set.route("router-prefix", &req).await?, None);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// auth-jwt

mod jwt {
    use jsonwebtoken::jwk::Jwk;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use serde_json::{Value, json};

    use super::super::tests::BodyServer;
    use super::*;

    pub const ISSUER: &str = "https://idp.corp.example";
    pub const HS256_KEY: &str = "a-test-only-hs256-key-of-32-bytes-or-more";

    /// A signing key made for the test and its public JWK (with `kid`).
    pub struct Signer {
        pub alg: Algorithm,
        pub kid: String,
        key: EncodingKey,
        pub jwk: Value,
    }

    fn b64(bytes: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    impl Signer {
        /// A fresh key for `alg`: RSA 2048 from the `rsa` crate, P-256 and Ed25519 from ring
        /// (through rcgen), HS256 the fixed test secret.
        pub fn new(alg: Algorithm, kid: &str) -> Signer {
            let (key, jwk) = match alg {
                Algorithm::RS256 => {
                    use rsa::pkcs1::EncodeRsaPrivateKey as _;
                    let der = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
                        .and_then(|k| Ok(k.to_pkcs1_der()?))
                        .unwrap_or_else(|e| panic!("RSA key: {e}"));
                    let key = EncodingKey::from_rsa_der(der.as_bytes());
                    let jwk = Jwk::from_encoding_key(&key, alg)
                        .map_err(|e| e.to_string())
                        .and_then(|jwk| serde_json::to_value(jwk).map_err(|e| e.to_string()))
                        .unwrap_or_else(|e| panic!("RSA JWK: {e}"));
                    (key, jwk)
                }
                Algorithm::ES256 | Algorithm::EdDSA => {
                    let curve = if alg == Algorithm::ES256 {
                        &rcgen::PKCS_ECDSA_P256_SHA256
                    } else {
                        &rcgen::PKCS_ED25519
                    };
                    let pair = rcgen::KeyPair::generate_for(curve)
                        .unwrap_or_else(|e| panic!("{alg:?} key: {e}"));
                    let raw = pair.public_key_raw();
                    if alg == Algorithm::ES256 {
                        // Uncompressed SEC1 point: 0x04 ‖ x ‖ y.
                        let jwk = json!({"kty": "EC", "crv": "P-256",
                            "x": b64(&raw[1..33]), "y": b64(&raw[33..65])});
                        (EncodingKey::from_ec_der(&pair.serialize_der()), jwk)
                    } else {
                        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(raw)});
                        (EncodingKey::from_ed_der(&pair.serialize_der()), jwk)
                    }
                }
                _ => (EncodingKey::from_secret(HS256_KEY.as_bytes()), Value::Null),
            };
            let mut jwk = jwk;
            if let Some(fields) = jwk.as_object_mut() {
                fields.insert("kid".into(), kid.into());
            }
            Signer {
                alg,
                kid: kid.into(),
                key,
                jwk,
            }
        }

        /// A token for `sub` in `groups`, valid for ten minutes, changed by `extra` claims.
        pub fn token(&self, sub: &str, groups: &[&str], extra: Value) -> String {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let mut claims = json!({"iss": ISSUER, "aud": "modgate", "sub": sub,
                "groups": groups, "iat": now, "exp": now + 600});
            if let (Some(c), Value::Object(extra)) = (claims.as_object_mut(), extra) {
                c.extend(extra);
            }
            let mut header = Header::new(self.alg);
            header.kid = (self.alg != Algorithm::HS256).then(|| self.kid.clone());
            jsonwebtoken::encode(&header, &claims, &self.key)
                .unwrap_or_else(|e| panic!("signing: {e}"))
        }
    }

    pub fn jwks(signers: &[&Signer]) -> Vec<u8> {
        json!({"keys": signers.iter().map(|s| &s.jwk).collect::<Vec<_>>()})
            .to_string()
            .into_bytes()
    }

    /// auth-jwt with `config` (JSON) on top of the test issuer, audience and rules: team-a
    /// reads and publishes `corp.example/team-a`, every token reads `corp.example/*`.
    pub fn spec(config: Value) -> PluginSpec {
        let mut table = json!({
            "issuers": [ISSUER],
            "audience": "modgate",
            "rules": [
                {"claim": "groups", "value": "team-a", "scopes": ["read", "publish"],
                 "modules": ["corp.example/team-a"]},
                {"scopes": ["read"], "modules": ["corp.example/*"]},
            ],
        });
        if let (Some(t), Value::Object(config)) = (table.as_object_mut(), config) {
            t.extend(config);
        }
        let mut spec = embedded("auth-jwt", "");
        spec.config = toml::Table::try_from(table).unwrap_or_else(|e| panic!("config: {e}"));
        spec
    }

    /// A JWKS server with `signers`, and auth-jwt fetching from it (granted) and holding the
    /// HS256 secret and `inline` keys in its config.
    pub async fn with_jwks_server(
        served: &[&Signer],
        inline: &[&Signer],
        extra: Value,
    ) -> (PluginSet, BodyServer) {
        with_jwks_server_memo(served, inline, extra, Limits::DEFAULT_MEMO_TTL).await
    }

    /// [`with_jwks_server`] with `limits.memo_ttl` set (zero: every request calls the plugin).
    pub async fn with_jwks_server_memo(
        served: &[&Signer],
        inline: &[&Signer],
        extra: Value,
        memo_ttl: Duration,
    ) -> (PluginSet, BodyServer) {
        with_jwks_server_source(served, inline, extra, memo_ttl, None).await
    }

    /// [`with_jwks_server_memo`] running the component `wasm` instead of the embedded one.
    pub async fn with_jwks_server_source(
        served: &[&Signer],
        inline: &[&Signer],
        extra: Value,
        memo_ttl: Duration,
        wasm: Option<Vec<u8>>,
    ) -> (PluginSet, BodyServer) {
        let server = BodyServer::start(jwks(served))
            .await
            .unwrap_or_else(|e| panic!("JWKS server: {e}"));
        let mut config = json!({
            "jwks_url": format!("http://{}/jwks.json", server.addr),
            "hs256_secret": "JWT_HS256",
            "jwks": {"keys": inline.iter().map(|s| &s.jwk).collect::<Vec<_>>()},
        });
        if let (Some(c), Value::Object(extra)) = (config.as_object_mut(), extra) {
            c.extend(extra);
        }
        let mut spec = spec(config);
        spec.grants.hosts = vec![server.addr.to_string()];
        spec.grants.secrets = vec!["JWT_HS256".into()];
        spec.secret_values
            .insert("JWT_HS256".into(), HS256_KEY.into());
        spec.limits.memo_ttl = memo_ttl;
        if let Some(wasm) = wasm {
            spec.source = PluginSource::Bytes(std::borrow::Cow::Owned(wasm));
        }
        (build(&[spec]), server)
    }

    pub async fn read(set: &PluginSet, module: &str, token: &str) -> Decision {
        let req = request(Some(module), Action::Read, Some(&format!("Bearer {token}")));
        decide(set, "auth-jwt", &req).await
    }

    pub fn hits(server: &BodyServer) -> u64 {
        server.hits.load(Ordering::SeqCst)
    }
}

use jwt::{Signer, hits, read, with_jwks_server, with_jwks_server_memo, with_jwks_server_source};
use serde_json::json;

static RSA_SIGNER: LazyLock<Signer> =
    LazyLock::new(|| Signer::new(jsonwebtoken::Algorithm::RS256, "rsa-1"));

#[tokio::test]
async fn auth_jwt_verifies_each_algorithm_bearer_and_basic() {
    use jsonwebtoken::Algorithm::{ES256, EdDSA, HS256};
    let ec = Signer::new(ES256, "ec-1");
    let ed = Signer::new(EdDSA, "ed-inline");
    let hs = Signer::new(HS256, "");
    let (set, server) = with_jwks_server(&[&RSA_SIGNER, &ec], &[&ed], json!({})).await;
    for signer in [&*RSA_SIGNER, &ec, &ed, &hs] {
        let token = signer.token("alice", &["team-a"], json!({}));
        for auth in [format!("Bearer {token}"), basic("alice", &token)] {
            let req = request(Some("corp.example/team-a"), Action::Publish, Some(&auth));
            let decision = decide(&set, "auth-jwt", &req).await;
            assert_eq!(
                allowed(&decision),
                ("alice", &["read".to_string(), "publish".into()][..]),
                "{:?}",
                signer.alg
            );
        }
    }
    // Eight verifications, one JWKS fetch: the rest came from kv.
    assert_eq!(hits(&server), 1);
}

#[tokio::test]
async fn auth_jwt_refuses_forged_expired_and_misaddressed_tokens() {
    use base64::Engine as _;
    use jsonwebtoken::Algorithm::ES256;
    let ec = Signer::new(ES256, "ec-1");
    let stranger = Signer::new(ES256, "ec-1");
    let (set, _server) = with_jwks_server(&[&RSA_SIGNER, &ec], &[], json!({})).await;
    let good = ec.token("alice", &["team-a"], json!({}));
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let parts: Vec<&str> = good.split('.').collect();
    // HS256 with the RSA public JWK as the secret, under the RSA key's kid (alg confusion).
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("rsa-1".into());
    let confused = jsonwebtoken::encode(
        &header,
        &json!({"iss": jwt::ISSUER, "aud": "modgate", "sub": "mallory", "exp": 4_000_000_000u64}),
        &jsonwebtoken::EncodingKey::from_secret(RSA_SIGNER.jwk.to_string().as_bytes()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let invalid = [
        (
            "wrong issuer",
            ec.token("alice", &[], json!({"iss": "https://evil.example"})),
        ),
        (
            "wrong audience",
            ec.token("alice", &[], json!({"aud": ["other"]})),
        ),
        (
            "alg none",
            format!("{}.{}.", b64(r#"{"alg":"none"}"#), parts[1]),
        ),
        ("alg confusion", confused),
        (
            "unknown kid",
            Signer::new(ES256, "never-published").token("alice", &[], json!({})),
        ),
        (
            "wrong key, known kid",
            stranger.token("alice", &[], json!({})),
        ),
        (
            "tampered payload",
            format!(
                "{}.{}.{}",
                parts[0],
                b64(&json!({"iss": jwt::ISSUER, "aud": "modgate", "sub": "root",
                    "groups": ["team-a"], "exp": 4_000_000_000u64})
                .to_string()),
                parts[2]
            ),
        ),
    ];
    for (case, token) in &invalid {
        for module in ["corp.example/team-a", "corp.example/no-such-module"] {
            assert_eq!(
                denied(read(&set, module, token).await),
                (401, "invalid credentials".to_string()),
                "{case}"
            );
        }
    }
    let expired = ec.token("alice", &[], json!({"exp": 1_000_000_000}));
    assert_eq!(
        denied(read(&set, "corp.example/team-a", &expired).await),
        (401, "token expired".to_string())
    );
    let early = ec.token("alice", &[], json!({"nbf": 4_000_000_000u64}));
    assert_eq!(
        denied(read(&set, "corp.example/team-a", &early).await),
        (401, "token not yet valid".to_string())
    );
    // Valid, but outside what its rules give: 403 naming principal, action and module.
    assert_eq!(
        denied(read(&set, "github.com/other/x", &good).await),
        (
            403,
            "token for alice may not read github.com/other/x".to_string()
        )
    );
    let req = request(
        Some("corp.example/team-b"),
        Action::Publish,
        Some(&format!("Bearer {good}")),
    );
    assert_eq!(
        denied(decide(&set, "auth-jwt", &req).await),
        (
            403,
            "token for alice may not publish corp.example/team-b".to_string()
        )
    );
    let missing = request(Some("corp.example/team-a"), Action::Read, None);
    assert_eq!(denied(decide(&set, "auth-jwt", &missing).await).0, 401);
}

/// RFC 7515's RS256 (A.2) and ES256 (A.3) tokens with the RFC's keys in an inline JWKS: both
/// signatures check out (the host verifies them), so the answer is the claims' — the RFC's
/// `exp` is in 2011 — and a token with one signature byte changed is refused as invalid.
#[tokio::test]
async fn auth_jwt_verifies_the_rfc_7515_tokens() {
    use crate::plugin::crypto::tests::{EC_X, EC_Y, ES256_SIG, PAYLOAD, RS256_SIG, RSA_N};
    let jwks = json!({"keys": [
        {"kty": "RSA", "n": RSA_N, "e": "AQAB"},
        {"kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_Y},
    ]});
    let config = format!(
        "issuers = [\"joe\"]\naudience = \"modgate\"\njwks = {}\n[[rules]]\nscopes = [\"read\"]\nmodules = [\"*\"]\n",
        toml::Value::String(jwks.to_string())
    );
    let set = build(&[embedded("auth-jwt", &config)]);
    for (header, sig) in [
        ("eyJhbGciOiJSUzI1NiJ9", RS256_SIG),
        ("eyJhbGciOiJFUzI1NiJ9", ES256_SIG),
    ] {
        let token = format!("{header}.{PAYLOAD}.{sig}");
        assert_eq!(
            denied(read(&set, "corp.example/x", &token).await),
            (401, "token expired".to_string()),
            "{header}"
        );
        let flipped = if sig.starts_with('A') { "B" } else { "A" };
        let tampered = format!("{header}.{PAYLOAD}.{flipped}{}", &sig[1..]);
        assert_eq!(
            denied(read(&set, "corp.example/x", &tampered).await),
            (401, "invalid credentials".to_string()),
            "{header} tampered"
        );
    }
}

#[tokio::test]
async fn auth_jwt_refetches_the_jwks_for_a_new_kid_at_most_once_per_interval() {
    use jsonwebtoken::Algorithm::ES256;
    let old = Signer::new(ES256, "old");
    let new = Signer::new(ES256, "new");
    let rotated = new.token("alice", &[], json!({}));

    // Default interval (30 s): the first fetch closes the gate; a token with a kid the copy
    // lacks is refused without asking the identity provider again.
    let (set, server) = with_jwks_server(&[&old], &[], json!({})).await;
    assert!(matches!(
        read(&set, "corp.example/x", &old.token("alice", &[], json!({}))).await,
        Decision::Allow(_)
    ));
    *server.body.lock().unwrap_or_else(|e| e.into_inner()) = jwt::jwks(&[&old, &new]);
    for _ in 0..5 {
        assert_eq!(denied(read(&set, "corp.example/x", &rotated).await).0, 401);
    }
    assert_eq!(hits(&server), 1);

    // No interval: the unknown kid makes the plugin fetch again, and the new key works.
    let (set, server) = with_jwks_server(&[&old], &[], json!({"jwks_refetch_interval_s": 0})).await;
    assert!(matches!(
        read(&set, "corp.example/x", &old.token("alice", &[], json!({}))).await,
        Decision::Allow(_)
    ));
    assert_eq!(hits(&server), 1);
    *server.body.lock().unwrap_or_else(|e| e.into_inner()) = jwt::jwks(&[&old, &new]);
    assert!(matches!(
        read(&set, "corp.example/x", &rotated).await,
        Decision::Allow(_)
    ));
    assert_eq!(hits(&server), 2);
}

#[tokio::test]
async fn auth_jwt_fails_closed_when_the_jwks_host_is_not_granted() {
    let ec = Signer::new(jsonwebtoken::Algorithm::ES256, "ec-1");
    let (_, server) = with_jwks_server(&[&ec], &[], json!({})).await;
    let url = format!("http://{}/jwks.json", server.addr);
    let set = build(&[jwt::spec(json!({ "jwks_url": url }))]);
    let token = ec.token("alice", &[], json!({}));
    assert_eq!(
        denied(read(&set, "corp.example/x", &token).await),
        (
            503,
            format!("auth-jwt: cannot verify tokens: JWKS {url} unavailable (see the server log)")
        )
    );
    assert_eq!(hits(&server), 0, "the host never let the request out");
}

/// Per-call latency of `auth-jwt` through [`PluginSet`] per algorithm (fresh instance, config
/// and JWKS parsed, signature verified in the plugin). Run with
/// `cargo test --release -p modgate first_party_tests::bench_auth_jwt -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "micro-benchmark; prints p50/p99"]
async fn bench_auth_jwt() {
    use jsonwebtoken::Algorithm::{ES256, EdDSA, HS256};
    let ec = Signer::new(ES256, "ec-1");
    let ed = Signer::new(EdDSA, "ed-1");
    let hs = Signer::new(HS256, "");
    // Memo off: every request verifies (a repeated token is otherwise a remembered answer).
    // With MODGATE_BENCH_OLD_PLUGINS=<dir holding auth_jwt.wasm>, an older build is measured
    // beside this one, case by case.
    let old = old_plugin("auth_jwt.wasm");
    let mut sets = vec![(
        "",
        with_jwks_server_memo(&[&RSA_SIGNER, &ec], &[&ed], json!({}), Duration::ZERO).await,
    )];
    if let Some(wasm) = old {
        let built = with_jwks_server_source(
            &[&RSA_SIGNER, &ec],
            &[&ed],
            json!({}),
            Duration::ZERO,
            Some(wasm),
        )
        .await;
        sets.push((" [old build]", built));
    }
    for (label, signer) in [
        ("RS256 (JWKS URL, cached)", &*RSA_SIGNER),
        ("ES256 (JWKS URL, cached)", &ec),
        ("EdDSA (inline JWKS)", &ed),
        ("HS256 (secret)", &hs),
        ("bad signature", &Signer::new(ES256, "ec-1")),
        ("EdDSA bad signature", &Signer::new(EdDSA, "ed-1")),
        ("ES256 expired (signature good)", &ec),
    ] {
        let extra = if label.contains("expired") {
            json!({"exp": 1_000_000_000})
        } else {
            json!({})
        };
        let token = signer.token("alice", &["team-a"], extra);
        for (which, (set, _)) in &sets {
            print_latency(&format!("auth-jwt {label}{which}"), || {
                read(set, "corp.example/team-a", &token)
            })
            .await;
        }
    }
    for (which, (_, server)) in &sets {
        println!("JWKS fetches{which}: {}", hits(server));
    }
}

/// An older build of a first-party plugin, for A/B benches: `name` in the directory named by
/// `MODGATE_BENCH_OLD_PLUGINS`, when set.
fn old_plugin(name: &str) -> Option<Vec<u8>> {
    let dir = std::env::var_os("MODGATE_BENCH_OLD_PLUGINS")?;
    let path = std::path::Path::new(&dir).join(name);
    Some(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}
