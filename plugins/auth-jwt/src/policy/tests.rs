use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use jsonwebtoken::{EncodingKey, Header};
use modgate_plugin_sdk::Action;
use serde_json::json;

use super::*;
use jsonwebtoken::Algorithm;

const NOW: u64 = 1_800_000_000;
const HS_KEY: &str = "0123456789abcdef0123456789abcdef-hs256";
const URL: &str = "https://idp.corp.example/jwks.json";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A signing key and its public JWK.
struct Signer {
    alg: Algorithm,
    key: EncodingKey,
    jwk: Value,
}

fn ed25519(seed: u8, kid: &str) -> Signer {
    let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    let der = sk.to_pkcs8_der().map(|d| d.as_bytes().to_vec());
    Signer {
        alg: Algorithm::EdDSA,
        key: EncodingKey::from_ed_der(&der.unwrap_or_default()),
        jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid,
                    "x": b64(sk.verifying_key().as_bytes())}),
    }
}

fn p256(seed: u8, kid: &str) -> Signer {
    use p256::pkcs8::EncodePrivateKey as _;
    let sk = match p256::ecdsa::SigningKey::from_slice(&[seed; 32]) {
        Ok(k) => k,
        Err(e) => panic!("{e}"),
    };
    let der = sk.to_pkcs8_der().map(|d| d.as_bytes().to_vec());
    let point = sk.verifying_key().to_encoded_point(false);
    Signer {
        alg: Algorithm::ES256,
        key: EncodingKey::from_ec_der(&der.unwrap_or_default()),
        jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
                    "x": b64(point.x().map(|x| x.as_slice()).unwrap_or_default()),
                    "y": b64(point.y().map(|y| y.as_slice()).unwrap_or_default())}),
    }
}

fn hs256() -> Signer {
    Signer {
        alg: Algorithm::HS256,
        key: EncodingKey::from_secret(HS_KEY.as_bytes()),
        jwk: Value::Null,
    }
}

fn claims(extra: Value) -> Value {
    let mut c = json!({
        "iss": "https://idp.corp.example", "aud": ["other", "modgate"], "sub": "alice",
        "iat": NOW - 10, "exp": NOW + 600, "groups": ["team-a", "everyone"],
        "scope": "openid modgate:publish",
    });
    if let (Some(c), Value::Object(extra)) = (c.as_object_mut(), extra) {
        c.extend(extra);
    }
    c
}

fn sign(signer: &Signer, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(signer.alg);
    header.kid = kid.map(str::to_string);
    match jsonwebtoken::encode(&header, claims, &signer.key) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    }
}

/// `config` (JSON) with the test's issuer and audience and the rules below.
fn policy(extra: Value, hs_key: Option<&str>) -> Policy {
    let mut config = json!({
        "issuers": ["https://idp.corp.example"],
        "audience": "modgate",
        "rules": [
            {"claim": "groups", "value": "team-a", "scopes": ["read", "publish"],
             "modules": ["corp.example/team-a"]},
            {"scopes": ["read"], "modules": ["corp.example/*"]},
            {"claim": "scope", "value": "modgate:admin", "scopes": ["admin"], "modules": ["*"]},
        ],
    });
    if let (Some(c), Value::Object(extra)) = (config.as_object_mut(), extra) {
        c.extend(extra);
    }
    let config: JwtConfig = match serde_json::from_value(config) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    match Policy::new(config, hs_key) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// The host: a `kv` with TTLs on the test's clock, a JWKS server with a fetch counter.
#[derive(Default)]
struct FakeHost {
    now: u64,
    kv: HashMap<String, (Vec<u8>, u64)>,
    jwks: Option<Value>,
    fetches: usize,
    logs: Vec<String>,
}

impl Host for FakeHost {
    fn kv_get(&mut self, key: &str) -> Option<Vec<u8>> {
        match self.kv.get(key) {
            Some((value, expiry)) if *expiry > self.now => Some(value.clone()),
            _ => None,
        }
    }
    fn kv_set(&mut self, key: &str, value: &[u8], ttl: Duration) {
        self.kv
            .insert(key.into(), (value.to_vec(), self.now + ttl.as_secs()));
    }
    fn fetch(&mut self, url: &str) -> Result<Vec<u8>, String> {
        assert_eq!(url, URL);
        self.fetches += 1;
        match &self.jwks {
            Some(jwks) => Ok(jwks.to_string().into_bytes()),
            None => Err("connection refused".into()),
        }
    }
    fn warn(&mut self, message: &str) {
        self.logs.push(format!("WARN {message}"));
    }
    fn debug(&mut self, message: &str) {
        self.logs.push(format!("DEBUG {message}"));
    }
}

fn host() -> FakeHost {
    FakeHost {
        now: NOW,
        ..FakeHost::default()
    }
}

fn request(module: Option<&str>, action: Action, auth: Option<&str>) -> RequestFacts {
    let mut req = RequestFacts::example();
    req.module = module.map(str::to_string);
    req.action = action;
    if let Some(value) = auth {
        req.headers.push(("authorization".into(), value.into()));
    }
    req
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn decide(p: &Policy, h: &mut FakeHost, module: &str, action: Action, token: &str) -> Decision {
    let now = h.now;
    p.decide(&request(Some(module), action, Some(&bearer(token))), h, now)
}

fn deny(decision: Decision) -> (u16, String) {
    match decision {
        Decision::Deny(d) => (d.status, d.message),
        other => panic!("expected deny, got {other:?}"),
    }
}

fn invalid() -> (u16, String) {
    (401, INVALID_CREDENTIALS.to_string())
}

#[test]
fn every_algorithm_verifies_bearer_and_basic() {
    let (ed, ec) = (ed25519(1, "ed"), p256(2, "ec"));
    let p = policy(json!({"jwks": {"keys": [ed.jwk, ec.jwk]}}), Some(HS_KEY));
    let mut h = host();
    for (signer, kid) in [(&ed, Some("ed")), (&ec, Some("ec")), (&hs256(), None)] {
        let token = sign(signer, kid, &claims(json!({})));
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("x:{token}"))
        );
        for auth in [bearer(&token), basic] {
            let d = p.decide(
                &request(Some("corp.example/team-a"), Action::Publish, Some(&auth)),
                &mut h,
                NOW,
            );
            assert!(
                matches!(&d, Decision::Allow(a) if a.principal == "alice" && a.scopes == ["read", "publish"]),
                "{:?}: {d:?}",
                signer.alg
            );
        }
    }
    // The JWKS text pasted as a string works as well as a table.
    let p = policy(
        json!({"jwks": json!({"keys": [ed25519(1, "ed").jwk]}).to_string()}),
        None,
    );
    let token = sign(&ed25519(1, "ed"), Some("ed"), &claims(json!({})));
    let d = decide(&p, &mut h, "corp.example/x", Action::Read, &token);
    assert!(matches!(d, Decision::Allow(_)), "{d:?}");
}

#[test]
fn times_are_checked_with_leeway() {
    let p = policy(json!({}), Some(HS_KEY));
    let mut h = host();
    let m = "corp.example/x";
    let expired = sign(&hs256(), None, &claims(json!({"exp": NOW - 61})));
    assert_eq!(
        deny(decide(&p, &mut h, m, Action::Read, &expired)),
        (401, EXPIRED.into())
    );
    // Within the default leeway of 60 s.
    let just = sign(&hs256(), None, &claims(json!({"exp": NOW - 59})));
    assert!(matches!(
        decide(&p, &mut h, m, Action::Read, &just),
        Decision::Allow(_)
    ));
    for field in ["nbf", "iat"] {
        let early = sign(&hs256(), None, &claims(json!({field: NOW + 120})));
        assert_eq!(
            deny(decide(&p, &mut h, m, Action::Read, &early)),
            (401, NOT_YET_VALID.into()),
            "{field}"
        );
        let nearly = sign(&hs256(), None, &claims(json!({field: NOW + 30})));
        assert!(matches!(
            decide(&p, &mut h, m, Action::Read, &nearly),
            Decision::Allow(_)
        ));
    }
    let mut no_exp = claims(json!({}));
    no_exp.as_object_mut().map(|c| c.remove("exp"));
    let no_exp = sign(&hs256(), None, &no_exp);
    assert_eq!(
        deny(decide(&p, &mut h, m, Action::Read, &no_exp)),
        invalid()
    );
    let strict = policy(json!({"leeway_s": 0}), Some(HS_KEY));
    assert_eq!(
        deny(decide(&strict, &mut h, m, Action::Read, &just)),
        (401, EXPIRED.into())
    );
}

#[test]
fn issuer_audience_and_principal_are_required() {
    let p = policy(json!({}), Some(HS_KEY));
    let mut h = host();
    for extra in [
        json!({"iss": "https://evil.example"}),
        json!({"iss": null}),
        json!({"aud": "other"}),
        json!({"aud": ["a", "b"]}),
        json!({"aud": null}),
        json!({"sub": null}),
        json!({"sub": "two\nlines"}),
    ] {
        let token = sign(&hs256(), None, &claims(extra.clone()));
        assert_eq!(
            deny(decide(&p, &mut h, "corp.example/x", Action::Read, &token)),
            invalid(),
            "{extra}"
        );
    }
    let token = sign(&hs256(), None, &claims(json!({"aud": "modgate"})));
    assert!(matches!(
        decide(&p, &mut h, "corp.example/x", Action::Read, &token),
        Decision::Allow(_)
    ));
    // Another claim as principal.
    let p = policy(json!({"principal_claim": "email"}), Some(HS_KEY));
    let token = sign(&hs256(), None, &claims(json!({"email": "a@corp.example"})));
    let d = decide(&p, &mut h, "corp.example/x", Action::Read, &token);
    assert!(
        matches!(&d, Decision::Allow(a) if a.principal == "a@corp.example"),
        "{d:?}"
    );
}

#[test]
fn forged_tokens_are_401_whatever_the_module() {
    let ed = ed25519(1, "ed");
    let ec = p256(2, "ec");
    let p = policy(
        json!({"jwks": {"keys": [ed.jwk.clone(), ec.jwk.clone()]}, "algorithms": ["ES256", "EdDSA"]}),
        None,
    );
    let mut h = host();
    let good = sign(&ed, Some("ed"), &claims(json!({})));
    let parts: Vec<&str> = good.split('.').collect();
    let admin = b64(claims(json!({"sub": "root"})).to_string().as_bytes());
    let none_header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    // HS256 with the public key's bytes as the secret (alg confusion).
    let public_as_secret = EncodingKey::from_secret(ec.jwk.to_string().as_bytes());
    let mut forged = vec![
        format!("{}.{admin}.{}", parts[0], parts[2]),
        format!("{none_header}.{}.", parts[1]),
        format!("{none_header}.{}", parts[1]),
        sign(&ed25519(9, "ed"), Some("ed"), &claims(json!({}))),
        sign(&ed, Some("unknown-kid"), &claims(json!({}))),
        "not-a-jwt".into(),
        "a.b.c".into(),
    ];
    for (alg, kid) in [(Algorithm::HS256, "ec"), (Algorithm::HS256, "ed")] {
        let mut header = Header::new(alg);
        header.kid = Some(kid.into());
        if let Ok(t) = jsonwebtoken::encode(&header, &claims(json!({})), &public_as_secret) {
            forged.push(t);
        }
    }
    // An ES256 token claiming the Ed25519 key's kid.
    forged.push(sign(&ec, Some("ed"), &claims(json!({}))));
    for token in &forged {
        for module in ["corp.example/team-a", "corp.example/no-such-module"] {
            assert_eq!(
                deny(decide(&p, &mut h, module, Action::Read, token)),
                invalid(),
                "{token}"
            );
        }
    }
    // An expired forgery is not "expired": the signature is checked first.
    let expired_forgery = sign(&ed25519(9, "ed"), Some("ed"), &claims(json!({"exp": 1})));
    assert_eq!(
        deny(decide(
            &p,
            &mut h,
            "corp.example/x",
            Action::Read,
            &expired_forgery
        )),
        invalid()
    );
    // HS256 is not among `algorithms` here, even with a secret it would be refused.
    assert!(
        h.logs.iter().any(|l| l.contains("alg HS256 not allowed")),
        "{:?}",
        h.logs
    );
}

#[test]
fn missing_and_malformed_headers() {
    let p = policy(json!({}), Some(HS_KEY));
    let mut h = host();
    assert_eq!(
        deny(p.decide(
            &request(Some("corp.example/x"), Action::Read, None),
            &mut h,
            NOW
        )),
        (401, AUTH_REQUIRED.into())
    );
    assert_eq!(
        deny(p.decide(
            &request(Some("corp.example/x"), Action::Read, Some("Token x")),
            &mut h,
            NOW
        )),
        (401, MALFORMED.into())
    );
    let p = policy(json!({"abstain_without_credentials": true}), Some(HS_KEY));
    assert!(matches!(
        p.decide(
            &request(Some("corp.example/x"), Action::Read, None),
            &mut h,
            NOW
        ),
        Decision::Abstain
    ));
}

#[test]
fn rules_map_claims_to_scopes_and_modules() {
    let p = policy(json!({}), Some(HS_KEY));
    let mut h = host();
    let bob = sign(
        &hs256(),
        None,
        &claims(json!({"sub": "bob", "groups": "team-b", "scope": "openid modgate:admin"})),
    );
    // Every token reads corp.example/*; only team-a publishes corp.example/team-a.
    let d = decide(&p, &mut h, "corp.example/team-a", Action::Read, &bob);
    assert!(
        matches!(&d, Decision::Allow(a) if a.principal == "bob"),
        "{d:?}"
    );
    assert_eq!(
        deny(decide(
            &p,
            &mut h,
            "corp.example/team-a",
            Action::Publish,
            &bob
        )),
        (
            403,
            "token for bob may not publish corp.example/team-a".into()
        )
    );
    // The scope claim is split on spaces; admin on every module.
    let d = p.decide(
        &request(None, Action::Admin, Some(&bearer(&bob))),
        &mut h,
        NOW,
    );
    assert!(
        matches!(&d, Decision::Allow(a) if a.scopes.contains(&"admin".to_string())),
        "{d:?}"
    );
    let alice = sign(&hs256(), None, &claims(json!({})));
    assert_eq!(
        deny(decide(&p, &mut h, "github.com/x/y", Action::Read, &alice)),
        (403, "token for alice may not read github.com/x/y".into())
    );
    // Only the scopes claim is split: a group named "team-a x" is not "team-a".
    let spaced = sign(&hs256(), None, &claims(json!({"groups": "team-a x"})));
    assert_eq!(
        deny(decide(
            &p,
            &mut h,
            "corp.example/team-a",
            Action::Publish,
            &spaced
        ))
        .0,
        403
    );
    let listed = sign(&hs256(), None, &claims(json!({"scope": ["modgate:admin"]})));
    let d = p.decide(
        &request(None, Action::Admin, Some(&bearer(&listed))),
        &mut h,
        NOW,
    );
    assert!(matches!(d, Decision::Allow(_)), "{d:?}");
}

#[test]
fn jwks_url_is_cached_refetched_on_unknown_kid_and_rate_limited() {
    let (k1, k2) = (ed25519(1, "k1"), p256(2, "k2"));
    let p = policy(json!({"jwks_url": URL}), None);
    let mut h = host();
    h.jwks =
        Some(json!({"keys": [k1.jwk, {"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"}]}));
    let t1 = sign(&k1, Some("k1"), &claims(json!({})));
    let m = "corp.example/x";
    for _ in 0..3 {
        assert!(matches!(
            decide(&p, &mut h, m, Action::Read, &t1),
            Decision::Allow(_)
        ));
    }
    assert_eq!(h.fetches, 1, "served from kv");

    // Rotation: k2 appears; a token with its kid triggers one refetch… once the interval passed.
    h.jwks = Some(json!({"keys": [k1.jwk.clone(), k2.jwk.clone()]}));
    let t2 = sign(&k2, Some("k2"), &claims(json!({})));
    assert_eq!(deny(decide(&p, &mut h, m, Action::Read, &t2)), invalid());
    assert_eq!(h.fetches, 1, "refetch within 30 s of the last fetch");
    h.now += 31;
    assert!(matches!(
        decide(&p, &mut h, m, Action::Read, &t2),
        Decision::Allow(_)
    ));
    assert_eq!(h.fetches, 2);

    // A flood of made-up kids: at most one fetch per interval.
    for i in 0..50 {
        let bogus = sign(&k1, Some(&format!("bogus-{i}")), &claims(json!({})));
        assert_eq!(deny(decide(&p, &mut h, m, Action::Read, &bogus)), invalid());
    }
    assert_eq!(h.fetches, 2);

    // TTL over, identity provider down: the copy fetched before keeps working.
    h.now += 301;
    h.jwks = None;
    assert!(matches!(
        decide(&p, &mut h, m, Action::Read, &t2),
        Decision::Allow(_)
    ));
    assert_eq!(h.fetches, 3);
    assert!(
        h.logs
            .iter()
            .any(|l| l.starts_with("WARN") && l.contains("using the copy")),
        "{:?}",
        h.logs
    );
}

#[test]
fn no_keys_at_all_is_503_naming_the_jwks() {
    let p = policy(json!({"jwks_url": URL}), None);
    let mut h = host();
    let token = sign(&ed25519(1, "k1"), Some("k1"), &claims(json!({})));
    let want = (
        503,
        format!("auth-jwt: cannot verify tokens: JWKS {URL} unavailable (see the server log)"),
    );
    assert_eq!(
        deny(decide(&p, &mut h, "corp.example/x", Action::Read, &token)),
        want
    );
    // Again at once: no second fetch (rate-limited), same answer.
    assert_eq!(
        deny(decide(&p, &mut h, "corp.example/x", Action::Read, &token)),
        want
    );
    assert_eq!(h.fetches, 1);
    // Not JSON, or not a JWKS: not cached, same answer.
    h.now += 31;
    h.jwks = Some(json!({"keys": "nope"}));
    assert_eq!(
        deny(decide(&p, &mut h, "corp.example/x", Action::Read, &token)),
        want
    );
    assert!(!h.kv.contains_key(&format!("jwks:{URL}")));
    // No credentials: no fetch, the usual 401.
    let before = h.fetches;
    let d = p.decide(
        &request(Some("corp.example/x"), Action::Read, None),
        &mut h,
        NOW,
    );
    assert_eq!(deny(d).0, 401);
    assert_eq!(h.fetches, before);
}

#[test]
fn bad_configs_name_the_field() {
    let base = json!({"issuers": ["i"], "audience": "a", "hs256_secret": "S"});
    for (extra, secret, want) in [
        (json!({"issuers": []}), Some(HS_KEY), "issuers:"),
        (json!({"audience": ""}), Some(HS_KEY), "audience:"),
        (
            json!({"algorithms": ["none"]}),
            Some(HS_KEY),
            "algorithms: \"none\" is not supported",
        ),
        (
            json!({"algorithms": ["RS256"]}),
            Some(HS_KEY),
            "hs256_secret: set, but",
        ),
        (
            json!({}),
            Some("short"),
            "hs256_secret: the key must be at least 32 bytes",
        ),
        (json!({"hs256_secret": null}), None, "no keys"),
        (
            json!({"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}),
            Some(HS_KEY),
            "jwks key 0: symmetric",
        ),
        (
            json!({"jwks": {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AA", "d": "AA"}]}}),
            Some(HS_KEY),
            "private key material",
        ),
        (
            json!({"jwks": {"keys": [{"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}]}}),
            Some(HS_KEY),
            "jwks key 0: unsupported",
        ),
        (json!({"jwks": "{not json"}), Some(HS_KEY), "jwks: not JSON"),
        (
            json!({"jwks": {"keys": [{"kty": "RSA", "n": b64(&[0xff; 128]), "e": "AQAB"}]}}),
            Some(HS_KEY),
            "RSA key of 1024 bits",
        ),
        (
            json!({"jwks": {"kees": []}}),
            Some(HS_KEY),
            "jwks: not a JWKS",
        ),
        (
            json!({"jwks_url": "http://idp.corp.example/jwks"}),
            Some(HS_KEY),
            "jwks_url:",
        ),
        (
            json!({"rules": [{"claim": "groups", "scopes": ["read"], "modules": ["*"]}]}),
            Some(HS_KEY),
            "rules[0]: set both",
        ),
        (
            json!({"rules": [{"scopes": ["read"], "modules": ["[x"]}]}),
            Some(HS_KEY),
            "rules[0]: module pattern",
        ),
        (
            json!({"rules": [{"scopes": [], "modules": ["*"]}]}),
            Some(HS_KEY),
            "rules[0]: scopes and modules",
        ),
    ] {
        let mut config = base.clone();
        if let (Some(c), Value::Object(extra)) = (config.as_object_mut(), extra) {
            c.extend(extra);
        }
        let config: JwtConfig = match serde_json::from_value(config) {
            Ok(c) => c,
            Err(e) => panic!("{want}: {e}"),
        };
        match Policy::new(config, secret) {
            Ok(_) => panic!("accepted; wanted {want}"),
            Err(e) => assert!(e.0.contains(want), "{e} lacks {want:?}"),
        }
    }
    let unknown = serde_json::from_value::<JwtConfig>(
        json!({"issuers": ["i"], "audience": "a", "isuers": []}),
    );
    assert!(unknown.is_err_and(|e| e.to_string().contains("unknown field")));
    for ok in [
        "http://127.0.0.1:8080/jwks",
        "http://localhost/jwks",
        "http://[::1]:9/j",
        "https://idp.corp.example/j",
    ] {
        assert!(url_is_safe(ok), "{ok}");
    }
    for bad in [
        "http://127.0.0.1.evil.example/",
        "http://localhost.evil.example:80/",
        "ftp://x/",
        "http://evil.example/?127.0.0.1",
        "http://localhost:80@evil.example/",
    ] {
        assert!(!url_is_safe(bad), "{bad}");
    }
}

#[test]
fn verified_answers_hold_until_the_token_expires_refusals_are_not_kept() {
    let p = policy(json!({}), Some(HS_KEY));
    let mut h = host();
    let now = h.now;
    let ask = |token: &str| {
        request(
            Some("corp.example/team-a/x"),
            Action::Read,
            Some(&bearer(token)),
        )
    };
    let ok = sign(&hs256(), None, &claims(json!({})));
    let (d, valid_for) = p.decide_for(&ask(&ok), &mut h, now);
    assert!(matches!(d, Decision::Allow(_)), "{d:?}");
    assert_eq!(valid_for, Some(600), "until exp = NOW + 600");
    // A 403 on a verified token holds as long (it depends on the token's claims).
    let (d, valid_for) = p.decide_for(
        &request(
            Some("elsewhere.example/x"),
            Action::Publish,
            Some(&bearer(&ok)),
        ),
        &mut h,
        now,
    );
    assert!(matches!(d, Decision::Deny(_)), "{d:?}");
    assert_eq!(valid_for, Some(600));
    // Within the leeway after exp: allowed, but not for a second longer.
    let just = sign(&hs256(), None, &claims(json!({"exp": NOW - 59})));
    assert_eq!(p.decide_for(&ask(&just), &mut h, now).1, None);
    // Refusals before verification may change (key rotation, nbf): never kept.
    let forged = sign(&p256(9, "nope"), Some("nope"), &claims(json!({})));
    for token in ["not-a-jwt", forged.as_str()] {
        let (d, valid_for) = p.decide_for(&ask(token), &mut h, now);
        assert!(matches!(d, Decision::Deny(_)), "{d:?}");
        assert_eq!(valid_for, None);
    }
}

/// What the policy costs per call natively, signature check included (HS256: a fraction of
/// a microsecond of it): `cargo test --release --manifest-path plugins/Cargo.toml -p auth-jwt
/// -- --ignored --nocapture bench_`.
#[test]
#[ignore = "a measurement, not a check"]
fn bench_decide_natively() {
    let hs = hs256();
    let p = policy(json!({}), Some(HS_KEY));
    let token = sign(&hs, None, &claims(json!({})));
    let req = request(
        Some("corp.example/team-a"),
        Action::Read,
        Some(&format!("Bearer {token}")),
    );
    let mut h = host();
    for _ in 0..1000 {
        p.decide(&req, &mut h, NOW);
    }
    const N: u32 = 20_000;
    let started = std::time::Instant::now();
    for _ in 0..N {
        std::hint::black_box(p.decide(&req, &mut h, NOW));
    }
    println!(
        "auth-jwt HS256 decide, natively: {:?}",
        started.elapsed() / N
    );
    let time = |label: &str, f: &mut dyn FnMut()| {
        let started = std::time::Instant::now();
        for _ in 0..N {
            f();
        }
        println!("  {label}: {:?}", started.elapsed() / N);
    };
    time("credential()", &mut || {
        std::hint::black_box(auth_core::credential(&req).ok());
    });
    time("Token::parse", &mut || {
        std::hint::black_box(Token::parse(&token).ok());
    });
    let t = Token::parse(&token).unwrap_or_else(|e| panic!("{e}"));
    time("claims()", &mut || {
        std::hint::black_box(t.claims().ok());
    });
    let c = t.claims().unwrap_or_else(|e| panic!("{e}"));
    time("check_claims", &mut || {
        std::hint::black_box(p.check_claims(c.clone(), NOW).is_ok());
    });
    time("remote.keys", &mut || {
        if let Some(r) = &p.remote {
            std::hint::black_box(matches!(r.keys(&mut h, NOW, false), RemoteKeys::Keys(_)));
        }
    });
    let key = Key::hs256(HS_KEY.as_bytes());
    time("verify", &mut || {
        std::hint::black_box(key.verify(t.signing_input.as_bytes(), &t.signature));
    });
    time("decide_for whole", &mut || {
        std::hint::black_box(p.decide_for(&req, &mut h, NOW));
    });
    let ed = ed25519(1, "ed");
    let p = policy(json!({"jwks": {"keys": [ed.jwk.clone()]}}), None);
    for (label, extra) in [
        ("valid", json!({})),
        ("expired", json!({"exp": NOW - 3600})),
    ] {
        let token = sign(&ed, Some("ed"), &claims(extra));
        let req = request(
            Some("corp.example/team-a"),
            Action::Read,
            Some(&format!("Bearer {token}")),
        );
        println!("  EdDSA {label}: {:?}", p.decide(&req, &mut h, NOW));
        time(&format!("EdDSA {label} decide"), &mut || {
            std::hint::black_box(p.decide(&req, &mut h, NOW));
        });
    }
}
