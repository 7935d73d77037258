//! The real go command authenticating over HTTPS through each first-party auth plugin
//! (`auth-token`, `auth-htpasswd`, `auth-jwt`): `.netrc` Basic and a `GOAUTH` command's header
//! succeed; no or wrong credentials get 401 with a one-line message that is the same whether
//! or not the private module exists; credentials scoped to other modules get 403
//! (GOPROXY.md §6). One scenario ([`check_go_authenticates`]), one test per plugin.

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::fixtures::{LIB, standard_tree};
use crate::harness::{GoEnv, Modgate, Setup};
use crate::upstream::FakeUpstream;

/// What one plugin needs for the scenario.
struct Plugin {
    /// The `[plugins.auth]` table; `UPSTREAM` is replaced by the fake upstream's `host:port`
    /// (it also serves the auth-jwt test's JWKS).
    toml: String,
    /// `.netrc` login and password that may read `example.com/fixture`.
    netrc: (String, String),
    /// The header a `GOAUTH` command prints for the same caller.
    goauth_header: String,
    /// A password (for the same login) that is not the right one.
    wrong_password: String,
    /// `.netrc` login and password that are valid but reach only other modules.
    other_team: (String, String),
}

fn start(dir: &std::path::Path, plugin: &Plugin) -> (Modgate, std::path::PathBuf, FakeUpstream) {
    let (ca, cert, key) = crate::tls::test_pki(dir);
    let mut tree = standard_tree();
    tree.put("/jwks.json", "application/json", jwt::jwks());
    let up = FakeUpstream::start(tree);
    let mut s = Setup::new(&dir.join("storage"), Some(&up.url()));
    s.tls = Some((cert, key));
    let upstream_host = up.url().trim_start_matches("http://").to_string();
    s.extra_toml = format!(
        r#"
[plugins.auth]
{}

[[route]]
match = ["example.com/fixture"]
storage = "local"
sources = SOURCES
auth = ["auth"]
"#,
        plugin.toml.replace("UPSTREAM", &upstream_host),
    );
    (Modgate::start(s), ca, up)
}

fn go(mg: &Modgate, ca: &std::path::Path) -> GoEnv {
    GoEnv::new(&mg.url()).env("SSL_CERT_FILE", ca.to_str().expect("utf-8"))
}

/// The go command's output for a download that must fail.
fn download_error(go: &GoEnv, query: &str) -> String {
    let out = go.output(&["mod", "download", "-json", query]);
    assert!(
        !out.status.success(),
        "downloaded {query} without valid credentials"
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// modgate's answer as the go command reports it (`-json`'s `Error`, after the URL):
/// `401 Unauthorized\n\tserver response: <message>`.
fn answer(output: &str) -> &str {
    let status = output
        .find(": 40")
        .unwrap_or_else(|| panic!("no 4xx answer in {output}"));
    output[status + 2..].split('"').next().unwrap_or_default()
}

fn check_go_authenticates(plugin: &Plugin) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mg, ca, _up) = start(dir.path(), plugin);
    let host = format!("127.0.0.1:{}", mg.port);
    let netrc = |name: &str, (login, password): (&str, &str)| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!("machine {host} login {login} password {password}\n"),
        )
        .expect("netrc");
        go(&mg, &ca).env("NETRC", path.to_str().expect("utf-8"))
    };
    let (login, password) = (plugin.netrc.0.as_str(), plugin.netrc.1.as_str());
    let exists = format!("{LIB}@v1.1.0");
    let absent = format!("{LIB}/no-such-module@v1.0.0");

    // No credentials: 401 with the plugin's one-line explanation, whatever the module.
    let e = download_error(&go(&mg, &ca), &exists);
    assert!(
        e.contains("401") && e.contains("authentication required"),
        "{e}"
    );
    assert_eq!(answer(&e), answer(&download_error(&go(&mg, &ca), &absent)));

    // .netrc: Basic auth (GOAUTH defaults to netrc).
    let got = netrc("netrc", (login, password)).download(std::slice::from_ref(&exists));
    assert!(
        got[0]["Sum"].as_str().is_some_and(|s| s.starts_with("h1:")),
        "{got:?}"
    );

    // A GOAUTH command printing the header.
    let script = dir.path().join("goauth.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf 'https://{host}\\n\\nAuthorization: {}\\n\\n'\n",
            plugin.goauth_header
        ),
    )
    .expect("script");
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .expect("chmod");
    let g = go(&mg, &ca).env("GOAUTH", script.to_str().expect("utf-8"));
    let got = g.download(&[format!("{LIB}@v1.0.0")]);
    assert!(
        got[0]["Sum"].as_str().is_some_and(|s| s.starts_with("h1:")),
        "{got:?}"
    );

    // Wrong credentials: 401, the same answer whether or not the module exists.
    let wrong = netrc("netrc-bad", (login, &plugin.wrong_password));
    let (e, e_absent) = (
        download_error(&wrong, &exists),
        download_error(&wrong, &absent),
    );
    // (`-json` escapes the go command's newline and tab.)
    let one_line = "401 Unauthorized\\n\\tserver response: invalid credentials";
    assert_eq!(answer(&e), one_line, "{e}");
    assert_eq!(answer(&e_absent), one_line, "{e_absent}");

    // Valid credentials scoped to other modules: 403 naming who and what.
    let (other_login, other_password) = &plugin.other_team;
    let e = download_error(
        &netrc("netrc-other", (other_login, other_password)),
        &exists,
    );
    assert!(
        e.contains("403") && e.contains("may not read example.com/fixture"),
        "{e}"
    );
}

fn basic(login: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"));
    format!("Basic {encoded}")
}

#[test]
fn go_authenticates_through_auth_token() {
    const TOKEN: &str = "s3cret-token-for-tests";
    const OTHER: &str = "token-for-another-team";
    let sha = |s: &str| hex::encode(Sha256::digest(s.as_bytes()));
    check_go_authenticates(&Plugin {
        toml: format!(
            r#"plugin = "auth-token"
config = {{ tokens = [
  {{ name = "dev", sha256 = "{}", scopes = ["read"], modules = ["example.com/fixture"] }},
  {{ name = "other-team", sha256 = "{}", scopes = ["read"], modules = ["corp.example/*"] }},
] }}"#,
            sha(TOKEN),
            sha(OTHER)
        ),
        netrc: ("anyone".into(), TOKEN.into()),
        goauth_header: format!("Bearer {TOKEN}"),
        wrong_password: "wrong".into(),
        other_team: ("x".into(), OTHER.into()),
    });
}

#[test]
fn go_authenticates_through_auth_htpasswd() {
    // bcrypt cost 4 (tests only), made with libxcrypt; `alice-pw` and `bob-pw`.
    const USERS: &str = "alice:$2y$04$rm/EEpISbdIo9Jm34OjRBuWvQQKM8agwOsKP11vD0abUQJkm01lK6\n\
                         bob:$2b$04$ZYaLOlwH8qRgOJZKufg4T./JH6b9WHHVvt2nmY2E/66FsjMMX1Ueu";
    check_go_authenticates(&Plugin {
        toml: format!(
            r#"plugin = "auth-htpasswd"
limits = {{ timeout_ms = 2000 }}
config = {{ users = "{}", access = {{ alice = ["example.com/fixture"], bob = ["corp.example/*"] }} }}"#,
            USERS.replace('\n', "\\n")
        ),
        netrc: ("alice".into(), "alice-pw".into()),
        goauth_header: basic("alice", "alice-pw"),
        wrong_password: "not-alice-pw".into(),
        other_team: ("bob".into(), "bob-pw".into()),
    });
}

#[test]
fn go_authenticates_through_auth_jwt() {
    let token = jwt::sign(&jwt::KEY, "dev@corp.example", "fixture-devs");
    check_go_authenticates(&Plugin {
        toml: r#"plugin = "auth-jwt"
grants = { hosts = ["UPSTREAM"] }
limits = { timeout_ms = 2000 }
[plugins.auth.config]
issuers = ["https://idp.corp.example"]
audience = "modgate"
jwks_url = "http://UPSTREAM/jwks.json"
rules = [
  { claim = "groups", value = "fixture-devs", scopes = ["read"], modules = ["example.com/fixture"] },
  { claim = "groups", value = "other-team", scopes = ["read"], modules = ["corp.example/*"] },
]"#
        .into(),
        netrc: ("x".into(), token.clone()),
        goauth_header: format!("Bearer {token}"),
        // Same claims, signed by a key the identity provider never published.
        wrong_password: jwt::sign(&jwt::STRANGER, "dev@corp.example", "fixture-devs"),
        other_team: (
            "x".into(),
            jwt::sign(&jwt::KEY, "ops@corp.example", "other-team"),
        ),
    });
}

/// Ed25519 keys made for the test (by ring, through rcgen) and tokens signed with them.
mod jwt {
    use std::sync::LazyLock;

    use base64::Engine as _;

    pub static KEY: LazyLock<rcgen::KeyPair> = LazyLock::new(new_key);
    pub static STRANGER: LazyLock<rcgen::KeyPair> = LazyLock::new(new_key);

    fn new_key() -> rcgen::KeyPair {
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("Ed25519 key")
    }

    /// The JWKS the identity provider publishes: [`KEY`]'s public half.
    pub fn jwks() -> Vec<u8> {
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(KEY.public_key_raw());
        serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": x}]})
            .to_string()
            .into_bytes()
    }

    /// A token for `sub` in `group`, valid for ten minutes, signed by `key` as `kid` `k1`.
    pub fn sign(key: &rcgen::KeyPair, sub: &str, group: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let claims = serde_json::json!({"iss": "https://idp.corp.example", "aud": "modgate",
            "sub": sub, "groups": [group], "iat": now, "exp": now + 600});
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some("k1".into());
        let key = jsonwebtoken::EncodingKey::from_ed_der(&key.serialize_der());
        jsonwebtoken::encode(&header, &claims, &key).expect("sign")
    }
}
