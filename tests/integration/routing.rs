//! Router plugins choosing routes, and the admin endpoint, with the real binary and real
//! WebAssembly plugins: the embedded `router-prefix` sends each tenant's requests to its own
//! route (own storage, own auth), a router that fails or names an unknown route fails the request
//! closed, and `POST /admin/reload` reloads for admin callers only.

use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::fixtures::{LIB, artifact_path, standard_tree};
use crate::harness::{Modgate, RawResponse, Setup, get, one_line_problem, raw_request};
use crate::upstream::FakeUpstream;

const TENANT_A_TOKEN: &str = "tenant-a-token";
const ADMIN_TOKEN: &str = "admin-token";
const READER_TOKEN: &str = "reader-token";

fn hex_sha256(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn test_plugin(name: &str) -> String {
    format!("{}/test-plugins/{name}.wasm", env!("OUT_DIR"))
}

/// `GET path` with extra header lines (each ending in `\r\n`).
fn get_with(mg: &Modgate, path: &str, headers: &str) -> RawResponse {
    raw_request(
        mg.addr(),
        &format!("GET {path} HTTP/1.1\r\n{headers}Connection: close\r\n\r\n"),
    )
    .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn request(mg: &Modgate, method: &str, path: &str, headers: &str) -> RawResponse {
    raw_request(
        mg.addr(),
        &format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    )
    .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

fn body(r: &RawResponse) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// Two tenants by `Host` header, each with its own storage; tenant A's route needs a token.
/// `corp.example` modules are routed by prefix; `x-route` picks any route (a test router).
fn tenants_setup(root: &Path, upstream: &str) -> Setup {
    let mut s = Setup::new(&root.join("default"), Some(upstream));
    let q = |p: &Path| toml::Value::String(p.display().to_string()).to_string();
    s.extra_toml = format!(
        r#"
[storage.a]
plugin = "storage-fs"
config = {{ root = {a} }}

[storage.b]
plugin = "storage-fs"
config = {{ root = {b} }}

[plugins.tenants]
plugin = "router-prefix"
config = {{ by_host = {{ "a.modgate.test" = "tenant-a", "b.modgate.test" = "tenant-b" }} }}

[plugins.by-header]
wasm = "{by_header}"

[plugins.tokens]
plugin = "auth-token"
config = {{ tokens = [
  {{ name = "tenant-a", sha256 = "{tenant_a}", scopes = ["read"], modules = ["*"] }},
] }}

[[route]]
match = ["example.com/by-header"]
router = "by-header"

[[route]]
match = ["*"]
router = "tenants"

[[route]]
name = "tenant-a"
storage = "a"
sources = SOURCES
auth = ["tokens"]

[[route]]
name = "tenant-b"
storage = "b"
sources = SOURCES
"#,
        a = q(&root.join("a")),
        b = q(&root.join("b")),
        by_header = test_plugin("route-by-header"),
        tenant_a = hex_sha256(TENANT_A_TOKEN),
    );
    s
}

fn stored(root: &Path, path: &str) -> bool {
    root.join(path.trim_start_matches('/')).exists()
}

#[test]
fn a_router_plugin_sends_each_tenant_to_its_own_route() {
    let up = FakeUpstream::start(standard_tree());
    let root = tempfile::tempdir().expect("tempdir");
    let mg = Modgate::start(tenants_setup(root.path(), &up.url()));
    let zip = artifact_path(LIB, "v1.1.0", "zip");

    // Tenant B: open route, stored under b/ only.
    let r = get_with(&mg, &zip, "Host: b.modgate.test:8443\r\n");
    assert_eq!(r.status, 200, "{}", body(&r));
    assert!(stored(&root.path().join("b"), &zip));
    assert!(!stored(&root.path().join("a"), &zip));
    assert!(!stored(&root.path().join("default"), &zip));

    // Tenant A: its route's auth applies (401 without the token), then its own storage.
    let r = get_with(&mg, &zip, "Host: A.modgate.test\r\n");
    assert_eq!(r.status, 401, "{}", body(&r));
    assert!(
        !stored(&root.path().join("a"), &zip),
        "nothing fetched for a 401"
    );
    let r = get_with(
        &mg,
        &zip,
        &format!("Host: a.modgate.test\r\nAuthorization: Bearer {TENANT_A_TOKEN}\r\n"),
    );
    assert_eq!(r.status, 200, "{}", body(&r));
    assert!(stored(&root.path().join("a"), &zip));

    // No tenant: the router declines and the TOML catch-all serves from the default storage.
    let r = get_with(&mg, &zip, "Host: 127.0.0.1\r\n");
    assert_eq!(r.status, 200, "{}", body(&r));
    assert!(stored(&root.path().join("default"), &zip));
}

#[test]
fn a_failing_router_or_an_unknown_route_fails_the_request_closed() {
    let up = FakeUpstream::start(standard_tree());
    let root = tempfile::tempdir().expect("tempdir");
    let mg = Modgate::start(tenants_setup(root.path(), &up.url()));

    let trap = |mg: &Modgate| {
        get_with(
            mg,
            "/example.com/by-header/@v/list",
            "Host: x\r\nX-Route: !trap\r\n",
        )
    };
    let broken = trap(&mg);
    assert_eq!(broken.status, 503, "{}", body(&broken));
    assert_eq!(one_line_problem(&broken.body), None);
    let problem = body(&broken);
    assert!(problem.contains("by-header"), "{problem}");

    let unknown = get_with(
        &mg,
        "/example.com/by-header/@v/list",
        "Host: x\r\nX-Route: tenant-zzz\r\n",
    );
    assert_eq!(unknown.status, 503, "{}", body(&unknown));
    assert_eq!(one_line_problem(&unknown.body), None);
    let problem = body(&unknown);
    assert!(
        problem.contains("by-header") && problem.contains("tenant-zzz"),
        "{problem}"
    );

    // The other routes keep serving, and the failing router shows in /readyz after repeats.
    for _ in 0..5 {
        trap(&mg);
    }
    let ready = get(&mg, "/readyz");
    assert_eq!(ready.status, 503);
    assert!(body(&ready).contains("by-header"), "{}", body(&ready));
    let ok = get_with(
        &mg,
        &artifact_path(LIB, "v1.0.0", "info"),
        "Host: b.modgate.test\r\n",
    );
    assert_eq!(ok.status, 200, "{}", body(&ok));
    let metrics = body(&get(&mg, "/metrics"));
    // Six failed calls: traps (on a loaded machine one may hit its deadline first).
    let failed: u64 = metrics
        .lines()
        .filter(|l| l.starts_with(r#"modgate_plugin_calls_total{plugin="by-header",outcome=""#))
        .filter(|l| !l.contains(r#"outcome="ok""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(failed, 6, "{metrics}");
    assert!(
        metrics.contains(r#"modgate_plugin_calls_total{plugin="by-header",outcome="trap"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"modgate_plugin_healthy{plugin="by-header"} 0"#),
        "{metrics}"
    );
}

fn admin_setup(storage: &Path, upstream: &str, extra_token: Option<&str>) -> Setup {
    let mut s = Setup::new(storage, Some(upstream));
    let extra = extra_token.map_or(String::new(), |t| {
        format!(
            r#"  {{ name = "late", sha256 = "{}", scopes = ["read"], modules = ["*"] }},"#,
            hex_sha256(t)
        )
    });
    s.extra_toml = format!(
        r#"
[plugins.tokens]
plugin = "auth-token"
config = {{ tokens = [
  {{ name = "ops", sha256 = "{admin}", scopes = ["admin"], modules = ["*"] }},
  {{ name = "reader", sha256 = "{reader}", scopes = ["read"], modules = ["*"] }},
{extra}
] }}

[admin]
auth = ["tokens"]

[[route]]
match = ["example.com/fixture"]
storage = "local"
sources = SOURCES
auth = ["tokens"]
"#,
        admin = hex_sha256(ADMIN_TOKEN),
        reader = hex_sha256(READER_TOKEN),
    );
    s
}

#[test]
fn post_admin_reload_reloads_for_admins_only() {
    let up = FakeUpstream::start(standard_tree());
    let storage = tempfile::tempdir().expect("tempdir");
    let mut mg = Modgate::start(admin_setup(storage.path(), &up.url(), None));
    let bearer = |t: &str| format!("Authorization: Bearer {t}\r\n");
    let info = artifact_path(LIB, "v1.1.0", "info");
    const LATE: &str = "token-added-by-the-reload";

    assert_eq!(get_with(&mg, &info, &bearer(LATE)).status, 401);
    mg.rewrite_config(admin_setup(storage.path(), &up.url(), Some(LATE)));

    // Refused without credentials, with a token lacking the admin scope, and with GET.
    let r = request(&mg, "POST", "/admin/reload", "");
    assert_eq!(r.status, 401, "{}", body(&r));
    let r = request(&mg, "POST", "/admin/reload", &bearer(READER_TOKEN));
    assert_eq!(r.status, 403, "{}", body(&r));
    assert!(body(&r).contains("admin"), "{}", body(&r));
    assert_eq!(
        get_with(&mg, &info, &bearer(LATE)).status,
        401,
        "nothing reloaded yet"
    );
    let r = request(&mg, "GET", "/admin/reload", &bearer(ADMIN_TOKEN));
    assert_eq!(r.status, 405, "{}", body(&r));
    assert_eq!(r.header("allow"), Some("POST"));
    let r = request(&mg, "POST", "/admin/nope", &bearer(ADMIN_TOKEN));
    assert_eq!(r.status, 404, "{}", body(&r));

    let r = request(&mg, "POST", "/admin/reload", &bearer(ADMIN_TOKEN));
    assert_eq!(r.status, 200, "{}", body(&r));
    assert!(body(&r).starts_with("reloaded "), "{}", body(&r));
    assert_eq!(get_with(&mg, &info, &bearer(LATE)).status, 200);

    // A broken file: 500 naming the key, and the running configuration stays.
    mg.write_raw_config("[server]\nlistne = 1\n");
    let r = request(&mg, "POST", "/admin/reload", &bearer(ADMIN_TOKEN));
    assert_eq!(r.status, 500, "{}", body(&r));
    assert_eq!(one_line_problem(&r.body), None);
    let problem = body(&r);
    assert!(
        problem.contains("listne") && problem.contains("stays"),
        "{problem}"
    );
    assert_eq!(get_with(&mg, &info, &bearer(LATE)).status, 200);
    std::thread::sleep(Duration::from_millis(10));
    assert_eq!(get(&mg, "/healthz").status, 200);
}

#[test]
fn admin_endpoints_are_off_without_an_admin_table() {
    let up = FakeUpstream::start(standard_tree());
    let storage = tempfile::tempdir().expect("tempdir");
    let mg = Modgate::start(Setup::new(storage.path(), Some(&up.url())));
    let r = request(&mg, "POST", "/admin/reload", "");
    assert_eq!(r.status, 404, "{}", body(&r));
    assert!(body(&r).contains("[admin]"), "{}", body(&r));
}
