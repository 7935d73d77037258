use super::*;
use modgate_plugin_sdk::Action;
use sha2::{Digest as _, Sha256};

fn sha256_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn policy(extra: &str) -> Policy {
    let json = format!(
        r#"{{ "tokens": [
            {{ "name": "ci", "sha256": "{}", "scopes": ["read", "publish"],
               "modules": ["corp.example/*"] }},
            {{ "name": "reader", "sha256": "{}", "scopes": ["read"], "modules": ["*"] }}
        ]{extra} }}"#,
        sha256_hex("ci-secret"),
        sha256_hex("reader-secret").to_uppercase(),
    );
    let config: PolicyConfig = match serde_json::from_str(&json) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    match Policy::new(config, None) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
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

fn deny(decision: Decision) -> (u16, String) {
    match decision {
        Decision::Deny(d) => (d.status, d.message),
        other => panic!("expected deny, got {other:?}"),
    }
}

#[test]
fn bearer_and_basic_with_any_user_allow() {
    let p = policy("");
    // base64("anyone:ci-secret")
    for auth in ["Bearer ci-secret", "Basic YW55b25lOmNpLXNlY3JldA=="] {
        let d = p.decide(&request(Some("corp.example/x"), Action::Read, Some(auth)));
        assert!(
            matches!(&d, Decision::Allow(a) if a.principal == "ci" && a.scopes == ["read", "publish"]),
            "{auth}: {d:?}"
        );
    }
}

#[test]
fn missing_malformed_and_wrong_are_401_and_say_nothing_about_modules() {
    let p = policy("");
    assert_eq!(
        deny(p.decide(&request(Some("corp.example/x"), Action::Read, None))),
        (401, AUTH_REQUIRED.to_string())
    );
    assert_eq!(
        deny(p.decide(&request(
            Some("corp.example/x"),
            Action::Read,
            Some("Token x")
        ))),
        (401, MALFORMED.to_string())
    );
    let existing = deny(p.decide(&request(
        Some("corp.example/x"),
        Action::Read,
        Some("Bearer nope"),
    )));
    let absent = deny(p.decide(&request(
        Some("corp.example/does-not-exist"),
        Action::Read,
        Some("Bearer nope"),
    )));
    assert_eq!(existing, (401, "invalid credentials".to_string()));
    assert_eq!(existing, absent);
}

#[test]
fn scopes_and_modules_are_403() {
    let p = policy("");
    assert_eq!(
        deny(p.decide(&request(
            Some("other.example/x"),
            Action::Read,
            Some("Bearer ci-secret")
        ))),
        (403, "token ci may not read other.example/x".to_string())
    );
    assert_eq!(
        deny(p.decide(&request(
            Some("other.example/x"),
            Action::Publish,
            Some("Bearer reader-secret")
        ))),
        (
            403,
            "token reader may not publish other.example/x".to_string()
        )
    );
    // No module (sumdb): the read scope is enough.
    let d = p.decide(&request(None, Action::Read, Some("Bearer ci-secret")));
    assert!(matches!(d, Decision::Allow(_)), "{d:?}");
}

#[test]
fn abstains_without_credentials_only_when_configured() {
    let p = policy(r#", "abstain_without_credentials": true"#);
    assert!(matches!(
        p.decide(&request(Some("corp.example/x"), Action::Read, None)),
        Decision::Abstain
    ));
    assert_eq!(
        deny(p.decide(&request(
            Some("corp.example/x"),
            Action::Read,
            Some("Bearer nope")
        )))
        .0,
        401
    );
}

#[test]
fn tokens_from_the_secret_join_the_file_ones() -> Result<(), ConfigError> {
    let config = PolicyConfig {
        tokens: vec![],
        tokens_secret: Some("MODGATE_TOKENS".into()),
        abstain_without_credentials: false,
    };
    let secret = format!(
        r#"[{{ "name": "vault", "sha256": "{}", "scopes": ["admin"], "modules": ["*"] }}]"#,
        sha256_hex("v")
    );
    let p = Policy::new(config, Some(&secret))?;
    let d = p.decide(&request(None, Action::Admin, Some("Bearer v")));
    assert!(matches!(d, Decision::Allow(a) if a.principal == "vault"));
    Ok(())
}

#[test]
fn bad_configs_name_the_token() {
    for (json, want) in [
        (
            r#"{"tokens": [{"name": "a", "sha256": "00", "scopes": [], "modules": []}]}"#,
            "token \"a\": sha256 must be 64 hex digits",
        ),
        (
            r#"{"tokens": [{"name": "b", "sha256": "", "scopes": ["write"], "modules": []}]}"#,
            "unknown variant",
        ),
        (r#"{"tokenz": []}"#, "unknown field"),
    ] {
        let problem = match serde_json::from_str::<PolicyConfig>(json) {
            Err(e) => e.to_string(),
            Ok(config) => match Policy::new(config, None) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("{json} accepted"),
            },
        };
        assert!(problem.contains(want), "{problem}");
    }
    let zeros = "0".repeat(64);
    let twice = format!(
        r#"{{"tokens": [{{"name": "a", "sha256": "{zeros}", "scopes": [], "modules": ["[x"]}}]}}"#
    );
    let config: Option<PolicyConfig> = serde_json::from_str(&twice).ok();
    let problem = config.map(|c| Policy::new(c, None).err());
    assert!(
        matches!(&problem, Some(Some(ConfigError(m))) if m.contains("unclosed [")),
        "{problem:?}"
    );
}
