//! The real go command authenticating through the `auth-token` plugin over HTTPS: `.netrc`
//! Basic (the token as password) and `GOAUTH` Bearer succeed; no or wrong credentials get 401,
//! a token scoped to other modules 403 (GOPROXY.md §6).

use sha2::{Digest, Sha256};

use crate::fixtures::{LIB, standard_tree};
use crate::harness::{GoEnv, Modgate, Setup};
use crate::upstream::FakeUpstream;

const TOKEN: &str = "s3cret-token-for-tests";
const OTHER: &str = "token-for-another-team";

fn hex_sha256(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn start(dir: &std::path::Path) -> (Modgate, std::path::PathBuf, FakeUpstream) {
    let (ca, cert, key) = crate::tls::test_pki(dir);
    let up = FakeUpstream::start(standard_tree());
    let mut s = Setup::new(&dir.join("storage"), Some(&up.url()));
    s.tls = Some((cert, key));
    s.extra_toml = format!(
        r#"
[plugins.tokens]
plugin = "auth-token"
config = {{ tokens = [
  {{ name = "dev", sha256 = "{dev}", scopes = ["read"], modules = ["example.com/fixture"] }},
  {{ name = "other-team", sha256 = "{other}", scopes = ["read"], modules = ["corp.example/*"] }},
] }}

[[route]]
match = ["example.com/fixture"]
storage = "local"
sources = SOURCES
auth = ["tokens"]
"#,
        dev = hex_sha256(TOKEN),
        other = hex_sha256(OTHER),
    );
    (Modgate::start(s), ca, up)
}

fn go(mg: &Modgate, ca: &std::path::Path) -> GoEnv {
    GoEnv::new(&mg.url()).env("SSL_CERT_FILE", ca.to_str().expect("utf-8"))
}

fn download_error(go: &GoEnv) -> String {
    let out = go.output(&["mod", "download", "-json", &format!("{LIB}@v1.1.0")]);
    assert!(
        !out.status.success(),
        "downloaded without valid credentials"
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn netrc_basic_and_goauth_bearer_authenticate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mg, ca, _up) = start(dir.path());
    let host = format!("127.0.0.1:{}", mg.port);

    // No credentials: 401 with the plugin's one-line explanation.
    let e = download_error(&go(&mg, &ca));
    assert!(
        e.contains("401") && e.contains("authentication required"),
        "{e}"
    );

    // .netrc: Basic auth with the token as password (GOAUTH defaults to netrc).
    let g = go(&mg, &ca);
    let netrc = dir.path().join("netrc");
    std::fs::write(
        &netrc,
        format!("machine {host} login anyone password {TOKEN}\n"),
    )
    .expect("netrc");
    let g = g.env("NETRC", netrc.to_str().expect("utf-8"));
    let got = g.download(&[format!("{LIB}@v1.1.0")]);
    assert!(
        got[0]["Sum"].as_str().is_some_and(|s| s.starts_with("h1:")),
        "{got:?}"
    );

    // GOAUTH command printing a Bearer header.
    let script = dir.path().join("goauth.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nprintf 'https://{host}\\n\\nAuthorization: Bearer {TOKEN}\\n\\n'\n"),
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

    // A wrong token: 401, the same words whether or not the module exists.
    let netrc_bad = dir.path().join("netrc-bad");
    std::fs::write(
        &netrc_bad,
        format!("machine {host} login x password wrong\n"),
    )
    .expect("netrc");
    let e = download_error(&go(&mg, &ca).env("NETRC", netrc_bad.to_str().expect("utf-8")));
    assert!(
        e.contains("401") && e.contains("invalid credentials"),
        "{e}"
    );

    // A valid token scoped to other modules: 403.
    let netrc_other = dir.path().join("netrc-other");
    std::fs::write(
        &netrc_other,
        format!("machine {host} login x password {OTHER}\n"),
    )
    .expect("netrc");
    let e = download_error(&go(&mg, &ca).env("NETRC", netrc_other.to_str().expect("utf-8")));
    assert!(e.contains("403") && e.contains("may not"), "{e}");
}
