//! Checksum-database verification (`[gosumdb]`, a route's `sumdb`): versions from upstream
//! proxies are checked against a database before they are stored.
//!
//! The database here is hermetic: a test key signs a log built with `modgate::sumdb::memlog`,
//! and the fake upstreams serve its lookups and hash tiles under `/sumdb/<name>/` as a proxy
//! does. The go command is run with `GOSUMDB` set to the test key, so it checks the same
//! database itself, independently of modgate's code.

use std::path::Path;
use std::time::Duration;

use modgate::sumdb::memlog::MemLog;
use modgate::sumdb::note::Signer;

use crate::fixtures::{ModuleVersion, Tree, artifact_path};
use crate::harness::{GoEnv, Modgate, Setup, get, output_text, snapshot};
use crate::upstream::FakeUpstream;

pub const DB: &str = "sum.test.example";
const MODULE: &str = "example.com/checked/lib";

/// A test checksum database: its signer and the verifier key clients configure.
pub struct TestDb {
    skey: String,
    pub vkey: String,
}

impl TestDb {
    pub fn new() -> Self {
        let (skey, vkey) = Signer::generate(DB).expect("generate a test key");
        TestDb { skey, vkey }
    }

    /// A log of `records` (module, version, zip `h1:`, go.mod `h1:`), in order.
    fn log(&self, records: &[(String, String, String, String)]) -> MemLog {
        let mut log = MemLog::new(Signer::parse(&self.skey).expect("signer"));
        for (m, v, zip, go_mod) in records {
            log.add(m, v, Some(zip), go_mod).expect("log a record");
        }
        log
    }

    /// Serves `records` under `tree`'s `/sumdb/<DB>/` (lookups and the hash tiles a database
    /// publishes), replacing what was there.
    pub fn publish(&self, records: &[(String, String, String, String)], tree: &mut Tree) {
        let log = self.log(records);
        for (path, body) in log.lookups() {
            tree.put(
                &format!("/sumdb/{DB}/{path}"),
                "text/plain; charset=UTF-8",
                body,
            );
        }
        for (path, body) in log.tiles() {
            tree.put(
                &format!("/sumdb/{DB}/{path}"),
                "application/octet-stream",
                body,
            );
        }
        tree.put(
            &format!("/sumdb/{DB}/supported"),
            "text/plain; charset=UTF-8",
            Vec::new(),
        );
        let latest = log.signed_tree().expect("sign").into_bytes();
        tree.put(
            &format!("/sumdb/{DB}/latest"),
            "text/plain; charset=UTF-8",
            latest,
        );
    }

    /// The `[gosumdb]` table of a modgate verifying against this database.
    pub fn config(&self, dir: &Path) -> String {
        format!(
            "\n[gosumdb]\ndb = {}\ndir = {}\n",
            toml::Value::String(self.vkey.clone()),
            toml::Value::String(dir.display().to_string())
        )
    }

    /// A go environment using modgate at `url` and checking against this database.
    pub fn go(&self, url: &str) -> GoEnv {
        GoEnv::new(url)
            .env("GOSUMDB", &self.vkey)
            .env("GONOSUMDB", "")
            .env("GOPRIVATE", "")
    }
}

/// The record of a fixture version, hashed by modgate's `h1:` code (the go command, checking
/// the same database, is the independent judge of these hashes).
pub fn record_of(v: &ModuleVersion) -> (String, String, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let zip = dir.path().join("m.zip");
    std::fs::write(&zip, &v.zip).expect("write zip");
    let zip_h1 = modgate::goproxy::hash::hash_zip_file(&zip).expect("hash zip");
    let mod_h1 = modgate::goproxy::hash::hash_go_mod(&v.go_mod);
    (v.module.clone(), v.version.clone(), zip_h1, mod_h1)
}

fn version(v: &str, body: &str) -> ModuleVersion {
    let go_mod = format!("module {MODULE}\n\ngo 1.21\n");
    let src = format!("package lib\n\nconst Says = {body:?}\n");
    ModuleVersion::new(MODULE, v, Some(&go_mod), &[("lib.go", src.as_bytes())])
        .with_time("2024-01-02T03:04:05Z")
}

fn start(db: &TestDb, storage: &Path, state: &Path, upstream: &str) -> Modgate {
    let mut setup = Setup::new(storage, Some(upstream));
    setup.sumdb = true;
    setup.extra_toml = db.config(state);
    Modgate::start(setup)
}

fn stored(storage: &Path, version: &str) -> Vec<String> {
    snapshot(storage)
        .into_iter()
        .filter(|p| p.contains(version) && !p.contains("tmp"))
        .collect()
}

#[test]
fn a_poisoned_upstream_is_refused_naming_both_hashes_and_the_next_upstream_serves() {
    let db = TestDb::new();
    let clean = [version("v1.0.0", "one"), version("v1.1.0", "two")];
    let records: Vec<_> = clean.iter().map(record_of).collect();
    let mut good = Tree::new().with(clean.clone());
    db.publish(&records, &mut good);
    // The poisoned proxy serves other bytes for v1.1.0, and the database's real answers (it
    // cannot forge them).
    let evil = version("v1.1.0", "two, and a backdoor");
    let mut bad = Tree::new().with([clean[0].clone(), evil.clone()]);
    db.publish(&records, &mut bad);
    let good = FakeUpstream::start(good);
    let bad = FakeUpstream::start(bad);
    let base = tempfile::tempdir().expect("tempdir");

    // Only the poisoned proxy: a one-line 502 naming the module and both hashes, nothing stored.
    let storage = base.path().join("a");
    let mg = start(&db, &storage, &base.path().join("state-a"), &bad.url());
    let go = db.go(&mg.url());
    let out = go.output(&["mod", "download", &format!("{MODULE}@v1.1.0")]);
    let t = output_text(&out);
    assert!(!out.status.success(), "{t}");
    let evil_h1 = record_of(&evil).2;
    assert!(
        t.contains("502 Bad Gateway")
            && t.contains(&format!("{MODULE}@v1.1.0"))
            && t.contains(&evil_h1)
            && t.contains(&records[1].2),
        "the go command shows the module and both hashes: {t}"
    );
    let r = get(&mg, &artifact_path(MODULE, "v1.1.0", "zip"));
    assert_eq!(r.status, 502);
    assert!(
        stored(&storage, "v1.1.0")
            .iter()
            .all(|p| !p.ends_with(".zip") && !p.ends_with(".info")),
        "nothing of the poisoned version is stored: {:?}",
        stored(&storage, "v1.1.0")
    );
    // The clean version from the same proxy is verified and stored; the go command's own
    // check against the database (through modgate's /sumdb/) agrees.
    go.run(&["mod", "download", &format!("{MODULE}@v1.0.0")]);
    assert!(
        stored(&storage, "v1.0.0")
            .iter()
            .any(|p| p.ends_with(".zip"))
    );
    let metrics = String::from_utf8_lossy(&get(&mg, "/metrics").body).into_owned();
    assert!(
        // The go command's request and this test's: each refused, nothing kept in between.
        metrics.contains("modgate_sumdb_checks_total{outcome=\"mismatch\"} 2"),
        "{metrics}"
    );
    assert!(good.hits(&artifact_path(MODULE, "v1.1.0", "zip")) == 0);
    drop(mg);

    // The poisoned proxy first, a clean one after it: the clean zip is stored and served.
    let storage = base.path().join("b");
    let list = format!("{},{}", bad.url(), good.url());
    let mg = start(&db, &storage, &base.path().join("state-b"), &list);
    let go = db.go(&mg.url());
    go.run(&["get", &format!("{MODULE}@v1.1.0")]);
    let zip = get(&mg, &artifact_path(MODULE, "v1.1.0", "zip"));
    assert_eq!(zip.status, 200);
    assert_eq!(zip.body, clean[1].zip, "the clean zip is served");
    assert_eq!(good.hits(&artifact_path(MODULE, "v1.1.0", "zip")), 1);
    assert!(go.read_work("go.sum").contains(&records[1].2));
}

#[test]
fn a_database_that_forks_across_a_restart_halts_admission_until_an_operator_acts() {
    let db = TestDb::new();
    let vs = [
        version("v1.0.0", "one"),
        version("v1.1.0", "two"),
        version("v1.2.0", "three"),
    ];
    let records: Vec<_> = vs.iter().map(record_of).collect();
    let mut tree = Tree::new().with(vs.clone());
    db.publish(&records[..2], &mut tree);
    let up = FakeUpstream::start(tree);
    let base = tempfile::tempdir().expect("tempdir");
    let storage = base.path().join("storage");
    let state = base.path().join("state");
    let mut mg = start(&db, &storage, &state, &up.url());
    db.go(&mg.url())
        .run(&["mod", "download", &format!("{MODULE}@v1.0.0")]);
    assert!(
        state.join(DB).join("latest").is_file(),
        "the newest tree is kept"
    );

    // While modgate is down, the database rewrites its history: record 0 now says something
    // else, and the log grew.
    let mut forked = records.clone();
    forked[0].3 = records[2].3.clone();
    forked[0].1 = "v0.9.0".into();
    up.with_tree(|t| db.publish(&forked, t));
    mg.restart();

    let r = get(&mg, &artifact_path(MODULE, "v1.2.0", "zip"));
    let body = String::from_utf8_lossy(&r.body).into_owned();
    assert_eq!(r.status, 503, "{body}");
    assert!(
        body.contains("SECURITY ERROR") && body.contains("tree 2"),
        "{body}"
    );
    let mark = state.join(DB).join("security-error");
    assert!(mark.is_file());
    assert!(
        body.contains(&mark.display().to_string()),
        "the answer says what to remove: {body}"
    );
    // Nothing new is admitted, even a version the old log knew; stored versions still serve.
    let r = get(&mg, &artifact_path(MODULE, "v1.1.0", "mod"));
    assert_eq!(r.status, 503);
    assert_eq!(
        get(&mg, &artifact_path(MODULE, "v1.0.0", "zip")).status,
        200
    );
    assert!(stored(&storage, "v1.2.0").is_empty());
    // A restart does not forget it.
    mg.restart();
    assert_eq!(
        get(&mg, &artifact_path(MODULE, "v1.2.0", "zip")).status,
        503
    );

    // The operator checks the database, accepts its new history and removes the mark and the
    // kept tree (docs/config.md, [gosumdb]); then versions are admitted again.
    std::fs::remove_file(&mark).expect("remove the mark");
    std::fs::remove_file(state.join(DB).join("latest")).expect("remove the kept tree");
    mg.restart();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        get(&mg, &artifact_path(MODULE, "v1.2.0", "zip")).status,
        200
    );
}

/// The first proxy of the go command's own GOPROXY setting (the variable, else `go env`), when
/// it is an http(s) URL.
fn real_upstream() -> Option<String> {
    let out = std::process::Command::new(crate::harness::go_binary())
        .args(["env", "GOPROXY"])
        .output()
        .ok()?;
    let value = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    value
        .split([',', '|'])
        .map(str::trim)
        .find(|e| e.starts_with("https://") || e.starts_with("http://"))
        .map(str::to_owned)
}

/// Against the real upstream and the real public database (skipped, saying so, when no
/// GOPROXY upstream is reachable from here): a real module is verified through the upstream's
/// `/sumdb/`, and the go command, checking the same database through modgate, agrees.
#[test]
fn a_real_module_verifies_against_the_public_database_through_the_real_upstream() {
    let Some(upstream) = real_upstream() else {
        eprintln!("skipped: the go command names no http(s) GOPROXY upstream");
        return;
    };
    let base = tempfile::tempdir().expect("tempdir");
    let mut setup = Setup::new(&base.path().join("storage"), Some(&upstream));
    setup.sumdb = true;
    setup.upstream_timeout = "20s".into();
    setup.extra_toml = format!(
        "\n[gosumdb]\ndir = {}\n",
        toml::Value::String(base.path().join("state").display().to_string())
    );
    let mg = Modgate::start(setup);
    let latest = get(&mg, "/sumdb/sum.golang.org/latest");
    if latest.status != 200 {
        eprintln!(
            "skipped: the upstream's checksum database is not reachable ({}): {}",
            latest.status,
            String::from_utf8_lossy(&latest.body)
        );
        return;
    }
    let go = GoEnv::new(&mg.url())
        .env("GOSUMDB", "sum.golang.org")
        .env("GONOSUMDB", "")
        .env("GOPRIVATE", "");
    go.run(&["mod", "download", "github.com/google/uuid@v1.6.0"]);
    let metrics = String::from_utf8_lossy(&get(&mg, "/metrics").body).into_owned();
    assert!(
        metrics.contains("modgate_sumdb_checks_total{outcome=\"ok\"} 2"),
        "the go.mod and the zip were verified: {metrics}"
    );
    let kept = std::fs::read_to_string(base.path().join("state/sum.golang.org/latest"))
        .expect("the newest tree is kept");
    assert!(kept.starts_with("go.sum database tree\n"), "{kept}");
}
