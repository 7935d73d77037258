//! Storage behind the plugin seam: a storage plugin whose plans reach past its grants (paths
//! outside `grants.dirs`, symlinks out of them, un-granted hosts, huge inline answers, traps) is
//! refused with a one-line 503 naming it, the server keeps serving every other route, and a
//! version whose commit was refused is not visible and comes in on the next request once the
//! backend behaves.

use std::path::Path;

use crate::fixtures::{LIB, artifact_path, standard_tree};
use crate::harness::{GoEnv, Modgate, Setup, get, one_line_problem, walk};
use crate::upstream::FakeUpstream;

fn test_plugin(name: &str) -> String {
    format!("{}/test-plugins/{name}.wasm", env!("OUT_DIR"))
}

/// A `[storage.hostile-MODE]` on a `[plugins.hostile-MODE]` (the hostile test plugin, its tree
/// under `root/MODE`), serving the modules under `hostile.example/MODE`.
fn hostile_storage(root: &Path, mode: &str, only: Option<&str>) -> String {
    let dir = root.join(mode);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let only = only.map_or(String::new(), |o| format!(", only = {}", q(o)));
    format!(
        r#"
[plugins.hostile-{mode}]
wasm = {wasm}
config = {{ root = {root}, mode = {mode_q}{only} }}
grants = {{ dirs = [{root}] }}
# Generous: the answer checked must be the plugin's, not a timeout on a loaded test machine.
limits = {{ timeout_ms = 10000 }}

[storage.hostile-{mode}]
plugin = "hostile-{mode}"

[[route]]
match = ["hostile.example/{mode}/*"]
storage = "hostile-{mode}"
"#,
        wasm = q(&test_plugin("hostile-storage")),
        root = q(dir.to_str().expect("utf-8")),
        mode_q = q(mode),
    )
}

#[test]
fn a_hostile_storage_plugin_is_refused_with_a_one_line_503_naming_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let upstream = FakeUpstream::start(standard_tree());
    let mut s = Setup::new(&tmp.path().join("local"), Some(&upstream.url()));
    let hostile = tmp.path().join("hostile");
    let modes = [
        "outside", "dotdot", "symlink", "relative", "host", "inline", "trap", "fail",
    ];
    for mode in modes {
        s.extra_toml += &hostile_storage(&hostile, mode, None);
    }
    // `symlink` plans go through `<root>/link`, which leads out of the grant.
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(outside.join("hostile.example/symlink/m/@v")).expect("mkdir");
    std::fs::write(
        outside.join("hostile.example/symlink/m/@v/v1.0.0.info"),
        "{\"Version\":\"v1.0.0\"}",
    )
    .expect("write bait");
    std::os::unix::fs::symlink(&outside, hostile.join("symlink/link")).expect("symlink");
    let mg = Modgate::start(s);

    let expect = [
        ("outside", "outside grants.dirs"),
        ("dotdot", "`..`"),
        ("symlink", "symlink"),
        ("relative", "not absolute"),
        ("host", "not in grants.hosts"),
        ("inline", "inline plan of 1048576 bytes"),
        ("trap", "trapped"),
        ("fail", "the bucket is on fire"),
    ];
    for (mode, reason) in expect {
        for file in ["v1.0.0.info", "v1.0.0.mod", "v1.0.0.zip"] {
            let path = format!("/hostile.example/{mode}/m/@v/{file}");
            let r = get(&mg, &path);
            let body = String::from_utf8_lossy(&r.body).into_owned();
            assert_eq!(r.status, 503, "{path}: {body}");
            assert_eq!(one_line_problem(&r.body), None, "{path}: {body:?}");
            assert!(
                body.contains(&format!("plugin \"hostile-{mode}\"")) && body.contains(reason),
                "{path}: names the plugin and says why ({reason}): {body}"
            );
        }
        // Between the refusals, every other route keeps serving.
        let ok = get(&mg, &artifact_path(LIB, "v1.0.0", "mod"));
        assert_eq!(ok.status, 200, "after {mode}: {:?}", ok.body);
    }
    // A listing of a directory outside the grant is refused too.
    let r = get(&mg, "/hostile.example/outside/m/@v/list");
    assert_eq!(r.status, 503, "{:?}", String::from_utf8_lossy(&r.body));
    // Nothing was written through a refused plan (the bait stayed the only file).
    let written: Vec<_> = walk(&outside).into_iter().filter(|p| p.is_file()).collect();
    assert_eq!(written.len(), 1, "{written:?}");
    // A zip as inline bytes is refused even where small inline answers are fine.
    let s2 = Setup::new(&tmp.path().join("local2"), None);
    let mut s2 = s2;
    s2.extra_toml = hostile_storage(&tmp.path().join("hostile2"), "inline-zip", None);
    drop(mg);
    let mg = Modgate::start(s2);
    let r = get(&mg, "/hostile.example/inline-zip/m/@v/v1.0.0.zip");
    let body = String::from_utf8_lossy(&r.body).into_owned();
    assert!(
        r.status == 503 && body.contains("a zip as inline bytes"),
        "{}: {body}",
        r.status
    );
}

#[test]
fn a_commit_the_backend_refuses_leaves_nothing_and_the_next_request_fills() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let upstream = FakeUpstream::start(standard_tree());
    let hostile = tmp.path().join("hostile");
    // The plugin is honest about everything but where a zip is to be written.
    let storage_for = |mode: &str| {
        let dir = hostile.join("outside");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        format!(
            r#"
[plugins.flaky]
wasm = {wasm}
config = {{ root = {root}, mode = {mode}, only = "zip", op = "put" }}
grants = {{ dirs = [{root}] }}
limits = {{ timeout_ms = 10000 }}

[storage.flaky]
plugin = "flaky"
"#,
            wasm = q(&test_plugin("hostile-storage")),
            root = q(dir.to_str().expect("utf-8")),
            mode = q(mode),
        )
    };
    let setup = |mode: &str| {
        let mut s = Setup::new(&tmp.path().join("local"), Some(&upstream.url()));
        s.extra_toml = storage_for(mode)
            + "\n[[route]]\nmatch = [\"example.com/fixture/*\"]\nstorage = \"flaky\"\nsources = SOURCES\n";
        s
    };
    let mut mg = Modgate::start(setup("outside"));
    let zip = artifact_path(LIB, "v1.0.0", "zip");
    let r = get(&mg, &zip);
    let body = String::from_utf8_lossy(&r.body).into_owned();
    assert!(
        r.status == 503 && body.contains("plugin \"flaky\""),
        "{}: {body}",
        r.status
    );
    let tree = hostile.join("outside");
    let committed: Vec<_> = walk(&tree)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "info" || e == "zip"))
        .collect();
    assert!(committed.is_empty(), "nothing committed: {committed:?}");

    // Fixed backend (a reload builds the store anew): the go command gets the version.
    mg.rewrite_config(setup("behave"));
    mg.restart();
    let go = GoEnv::new(&mg.url());
    let downloaded = go.download(&[format!("{LIB}@v1.0.0")]);
    assert_eq!(downloaded.len(), 1, "{downloaded:?}");
    assert!(
        downloaded[0].get("Error").is_none(),
        "go mod download: {downloaded:?}"
    );
    assert!(
        tree.join("example.com/fixture/lib/@v/v1.0.0.info")
            .is_file()
    );
    assert!(tree.join("example.com/fixture/lib/@v/v1.0.0.zip").is_file());
}
