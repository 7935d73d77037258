//! Upstream policies (`[[route]] policies`): the embedded `policy-cooldown` and `policy-filter`
//! judge versions not yet stored, with the real go command as the client.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::fixtures::{JSON, ModuleVersion, Tree, artifact_path};
use crate::harness::{GoEnv, Modgate, Setup, get, output_text, raw_request};
use crate::upstream::FakeUpstream;

const LIB: &str = "example.com/policy/lib";
const OWN: &str = "corp.example/own";
const BROKEN: &str = "example.com/broken/mod";

/// `SystemTime` as RFC 3339 (UTC, whole seconds).
fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).expect("after 1970").as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn version(module: &str, v: &str, time: &str) -> ModuleVersion {
    let go_mod = format!("module {module}\n\ngo 1.21\n");
    let src = format!("package lib\n\nconst V = {v:?}\n");
    ModuleVersion::new(module, v, Some(&go_mod), &[("lib.go", src.as_bytes())]).with_time(time)
}

fn tree() -> Tree {
    let yesterday = rfc3339(SystemTime::now() - Duration::from_secs(86_400 + 60));
    let fresh = version(LIB, "v1.2.0", &yesterday);
    let mut tree = Tree::new().with([
        version(LIB, "v1.0.0", "2024-01-01T00:00:00Z"),
        version(LIB, "v1.1.0", "2024-06-01T00:00:00Z"),
        fresh.clone(),
        version(LIB, "v1.3.0-rc.1", "2024-07-01T00:00:00Z"),
        version(OWN, "v1.0.0", &rfc3339(SystemTime::now())),
        version(BROKEN, "v1.0.0", "2024-01-01T00:00:00Z"),
    ]);
    // The upstream's `@latest` is the newest release, which is too young.
    tree.put(&format!("/{LIB}/@latest"), JSON, fresh.info_json());
    tree
}

const PLUGINS: &str = r#"
[plugins.cooldown]
plugin = "policy-cooldown"
config = { min_age = "7d", exempt = ["corp.example"] }

[plugins.corp-filter]
plugin = "policy-filter"
config = { rules = [ { modules = "example.com/policy/lib", versions = "v1.1.0", action = "deny", reason = "CVE-2099-0001, use v1.1.1 or later" } ] }

[plugins.broken]
plugin = "policy-filter"
config = { rules = "not a list" }

[[route]]
match = ["example.com/broken"]
storage = "local"
sources = SOURCES
policies = ["broken"]
"#;

fn start(up: &FakeUpstream, storage: &std::path::Path) -> Modgate {
    let mut setup = Setup::new(storage, Some(&up.url()));
    setup.extra_toml = PLUGINS.into();
    setup.catch_all_extra = "policies = [\"cooldown\", \"corp-filter\"]".into();
    Modgate::start(setup)
}

#[test]
fn policies_leave_out_what_they_deny_and_the_go_command_shows_why() {
    let up = FakeUpstream::start(tree());
    let base = tempfile::tempdir().expect("tempdir");
    let mg = start(&up, base.path());
    let go = GoEnv::new(&mg.url());

    // `list` leaves out the denied and the too young; `@latest` is the newest admitted.
    let versions = go.run(&["list", "-m", "-versions", LIB]);
    assert_eq!(
        versions.trim(),
        format!("{LIB} v1.0.0 v1.3.0-rc.1"),
        "{versions}"
    );
    let latest = get(&mg, &format!("/{LIB}/@latest"));
    assert_eq!(latest.status, 200);
    assert!(
        String::from_utf8_lossy(&latest.body).contains("\"v1.0.0\""),
        "{}",
        String::from_utf8_lossy(&latest.body)
    );
    go.run(&["get", &format!("{LIB}@latest")]);
    assert!(go.read_work("go.mod").contains(&format!("{LIB} v1.0.0")));

    // Asked by name, each refusal says why; nothing of them is fetched.
    let out = go.output(&["get", &format!("{LIB}@v1.2.0")]);
    let t = output_text(&out);
    assert!(!out.status.success());
    assert!(
        t.contains("403 Forbidden")
            && t.contains(&format!(
                "{LIB}@v1.2.0 is 1 day old; this proxy admits versions after 7 days"
            )),
        "{t}"
    );
    let out = go.output(&["get", &format!("{LIB}@v1.1.0")]);
    let t = output_text(&out);
    assert!(
        !out.status.success() && t.contains("CVE-2099-0001, use v1.1.1 or later"),
        "{t}"
    );
    for v in ["v1.1.0", "v1.2.0"] {
        assert_eq!(up.hits(&artifact_path(LIB, v, "zip")), 0, "{v} zip fetched");
        assert_eq!(up.hits(&artifact_path(LIB, v, "mod")), 0, "{v} mod fetched");
    }

    // Exempt modules come in however young.
    go.run(&["get", &format!("{OWN}@v1.0.0")]);

    // A policy that fails refuses, naming itself; other routes keep serving.
    let r = get(&mg, &artifact_path(BROKEN, "v1.0.0", "info"));
    let body = String::from_utf8_lossy(&r.body).into_owned();
    assert_eq!(r.status, 503, "{body}");
    assert!(body.contains("broken"), "{body}");
    assert_eq!(get(&mg, &artifact_path(LIB, "v1.0.0", "mod")).status, 200);
}

#[test]
fn a_policy_can_say_which_upstream_a_version_comes_from() {
    const PLANNED: &str = "example.com/planned/lib";
    let planned = || Tree::new().with([version(PLANNED, "v1.0.0", "2024-01-01T00:00:00Z")]);
    let first = FakeUpstream::start(planned());
    let mirror = FakeUpstream::start(planned());
    let base = tempfile::tempdir().expect("tempdir");
    let mut setup = Setup::new(base.path(), Some(&first.url()));
    setup.extra_toml = format!(
        r#"
[upstream.mirror]
goproxy = "{}"

[plugins.plan]
plugin = "policy-filter"
config = {{ rules = [ {{ modules = "example.com/planned", action = "admit", sources = ["mirror"] }} ] }}

[[route]]
match = ["example.com/planned"]
storage = "local"
sources = ["hermetic", "mirror"]
sumdb = "off"
policies = ["plan"]
"#,
        mirror.url()
    );
    let mg = Modgate::start(setup);
    let go = GoEnv::new(&mg.url());
    go.run(&["mod", "download", &format!("{PLANNED}@v1.0.0")]);
    for ext in ["info", "mod", "zip"] {
        let path = artifact_path(PLANNED, "v1.0.0", ext);
        assert_eq!(first.hits(&path), 0, "{path} from the first upstream");
        assert_eq!(mirror.hits(&path), 1, "{path} from the mirror");
    }
}

#[test]
fn stored_versions_are_not_judged_again() {
    let up = FakeUpstream::start(tree());
    let base = tempfile::tempdir().expect("tempdir");
    // Stored before the policy existed.
    let mut setup = Setup::new(base.path(), Some(&up.url()));
    let mg = Modgate::start(setup.clone());
    assert_eq!(get(&mg, &artifact_path(LIB, "v1.2.0", "zip")).status, 200);
    drop(mg);
    // The admin listing is authorized like any admin endpoint (an auth plugin with the
    // admin scope).
    let admin_token = "policy-admin-token";
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(admin_token));
    setup.extra_toml = format!(
        "{PLUGINS}\n[plugins.admins]\nplugin = \"auth-token\"\nconfig = {{ tokens = [ {{ name = \"ops\", sha256 = \"{digest}\", scopes = [\"admin\"], modules = [\"*\"] }} ] }}\n\n[admin]\nauth = [\"admins\"]\n"
    );
    setup.catch_all_extra = "policies = [\"cooldown\", \"corp-filter\"]".into();
    let mg = Modgate::start(setup);
    // What the new policies would refuse among what is stored: the operator's view.
    let audit = raw_request(
        mg.addr(),
        &format!(
            "GET /admin/policy/{LIB} HTTP/1.1\r\nAuthorization: Bearer {admin_token}\r\nConnection: close\r\n\r\n"
        ),
    )
    .expect("admin request");
    let listing = String::from_utf8_lossy(&audit.body).into_owned();
    assert_eq!(audit.status, 200, "{listing}");
    assert!(
        listing.starts_with("v1.2.0 403 example.com/policy/lib@v1.2.0 is 1 day old;"),
        "{listing}"
    );
    assert_eq!(listing.lines().count(), 1, "{listing}");
    assert_eq!(get(&mg, &artifact_path(LIB, "v1.2.0", "zip")).status, 200);
    assert_eq!(get(&mg, &artifact_path(LIB, "v1.2.0", "info")).status, 200);
    let list = get(&mg, &format!("/{LIB}/@v/list"));
    let list = String::from_utf8_lossy(&list.body).into_owned();
    assert!(
        list.contains("v1.2.0") && !list.contains("v1.1.0"),
        "{list}"
    );
    // A version not stored is judged.
    assert_eq!(get(&mg, &artifact_path(LIB, "v1.1.0", "info")).status, 403);
}
