use super::*;
use modgate_plugin_sdk::Action;
use std::collections::HashSet;

#[derive(Default)]
struct MemoryCache(HashSet<String>);

impl VerifiedCache for MemoryCache {
    fn contains(&mut self, key: &str) -> bool {
        self.0.contains(key)
    }
    fn insert(&mut self, key: &str) {
        self.0.insert(key.to_string());
    }
}

fn hash(password: &str) -> String {
    match bcrypt::hash(password, 4) {
        Ok(h) => h,
        Err(e) => panic!("{e}"),
    }
}

fn policy(extra: &str) -> Policy {
    // `htpasswd -B` writes `$2y$`; the bcrypt crate writes `$2b$`: both verify.
    let alice = hash("alice-pw").replacen("$2b$", "$2y$", 1);
    let users = format!("# team\nalice:{alice}\n\nbob:{}\n", hash("bob-pw"));
    let json = format!(
        r#"{{ "users": {}, "scopes": {{ "bob": ["read", "publish"] }} {extra} }}"#,
        serde_json::Value::from(users)
    );
    let config: HtpasswdConfig = match serde_json::from_str(&json) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    match Policy::new(config, None) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn request(module: &str, action: Action, auth: Option<(&str, &str)>) -> RequestFacts {
    use base64::Engine as _;
    let mut req = RequestFacts::example();
    req.module = Some(module.into());
    req.action = action;
    if let Some((user, password)) = auth {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        req.headers
            .push(("authorization".into(), format!("Basic {encoded}")));
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
fn bcrypt_users_sign_in_and_are_cached() {
    let p = policy("");
    let mut cache = MemoryCache::default();
    let d = p.decide(
        &request("corp.example/x", Action::Read, Some(("alice", "alice-pw"))),
        &mut cache,
    );
    assert!(
        matches!(&d, Decision::Allow(a) if a.principal == "alice" && a.scopes == ["read"]),
        "{d:?}"
    );
    assert_eq!(cache.0.len(), 1);
    let d = p.decide(
        &request("corp.example/x", Action::Publish, Some(("bob", "bob-pw"))),
        &mut cache,
    );
    assert!(
        matches!(&d, Decision::Allow(a) if a.principal == "bob"),
        "{d:?}"
    );
    assert_eq!(
        deny(p.decide(
            &request(
                "corp.example/x",
                Action::Publish,
                Some(("alice", "alice-pw"))
            ),
            &mut cache
        )),
        (403, "user alice may not publish corp.example/x".to_string())
    );
}

#[test]
fn wrong_passwords_and_unknown_users_look_the_same() {
    let p = policy("");
    let mut cache = MemoryCache::default();
    let wrong = deny(p.decide(
        &request("corp.example/x", Action::Read, Some(("alice", "nope"))),
        &mut cache,
    ));
    let nobody = deny(p.decide(
        &request("corp.example/y", Action::Read, Some(("carol", "x"))),
        &mut cache,
    ));
    assert_eq!(wrong, (401, INVALID_CREDENTIALS.to_string()));
    assert_eq!(wrong, nobody);
    assert!(cache.0.is_empty());
    assert_eq!(
        deny(p.decide(&request("corp.example/x", Action::Read, None), &mut cache)),
        (401, AUTH_REQUIRED.to_string())
    );
    let mut bearer = request("corp.example/x", Action::Read, None);
    bearer
        .headers
        .push(("authorization".into(), "Bearer t".into()));
    assert_eq!(
        deny(p.decide(&bearer, &mut cache)),
        (401, BASIC_ONLY.to_string())
    );
}

#[test]
fn access_limits_modules_per_user() {
    let p = policy(r#", "access": { "alice": ["corp.example/*"] }"#);
    let mut cache = MemoryCache::default();
    assert!(matches!(
        p.decide(
            &request("corp.example/x", Action::Read, Some(("alice", "alice-pw"))),
            &mut cache
        ),
        Decision::Allow(_)
    ));
    assert_eq!(
        deny(p.decide(
            &request("github.com/x/y", Action::Read, Some(("alice", "alice-pw"))),
            &mut cache
        )),
        (403, "user alice may not read github.com/x/y".to_string())
    );
    // bob is not in `access`: no module.
    assert_eq!(
        deny(p.decide(
            &request("corp.example/x", Action::Read, Some(("bob", "bob-pw"))),
            &mut cache
        ))
        .0,
        403
    );
}

#[test]
fn non_bcrypt_entries_are_refused() {
    let config = HtpasswdConfig {
        users: Some("carol:$apr1$abc$def\n".into()),
        users_secret: None,
        access: None,
        scopes: BTreeMap::new(),
        abstain_without_credentials: false,
    };
    let problem = Policy::new(config, None).err().map(|e| e.to_string());
    assert!(
        problem
            .as_deref()
            .is_some_and(|p| p.contains("users line 1: user \"carol\": only bcrypt")),
        "{problem:?}"
    );
}
