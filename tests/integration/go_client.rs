//! The go command through modgate in front of the fake upstream: the same answers, sums and
//! bytes as the go command gets from the upstream directly.

use std::collections::BTreeMap;

use tempfile::TempDir;

use crate::fixtures::{
    self, GOPKG, LEGACY, LIB, LIB_PSEUDO, LIB_V2, UNTAGGED, UNTAGGED_PSEUDO, UPPER,
    standard_queries, standard_tree,
};
use crate::harness::{GoEnv, Modgate, Setup};
use crate::upstream::FakeUpstream;

/// The harness itself: the go command accepts the fixture tree served by the fake upstream, and
/// what lands in its cache is exactly what the tree holds.
#[test]
fn fixture_tree_is_valid_for_the_go_command() {
    let tree = standard_tree();
    let up = FakeUpstream::start(tree.clone());
    let go = GoEnv::new(&up.url());
    let docs = go.download(&standard_queries());
    assert_eq!(docs.len(), standard_queries().len());
    for d in &docs {
        let sum = d["Sum"].as_str().unwrap_or_default();
        assert!(sum.starts_with("h1:"), "no zip hash for {d}");
    }
    assert_cache_matches_tree(&go, &tree);

    let out = go.run(&["list", "-m", "-versions", LIB, UPPER]);
    assert_eq!(
        out,
        format!("{LIB} v1.0.0 v1.1.0 v1.2.0-pre.1\n{UPPER} v1.0.0\n"),
        "retracted v1.0.1 hidden, pre-release listed"
    );
    assert!(
        up.hits("/example.com/!fixture/!upper/@v/list") >= 1,
        "requests: {:?}",
        up.requests()
    );

    // The same tree as a directory (GOPROXY=file://…) gives the same sums.
    let dir = tempfile::tempdir().expect("tempdir");
    tree.write_to(dir.path());
    let from_files = GoEnv::new(&format!("file://{}", dir.path().display()));
    assert_eq!(sums(&from_files.download(&standard_queries())), sums(&docs));
}

/// An upstream with the standard fixtures and a modgate in front of it.
pub struct Stack {
    pub tree: fixtures::Tree,
    pub up: FakeUpstream,
    pub mg: Modgate,
    pub storage: TempDir,
}

impl Stack {
    pub fn new(tree: fixtures::Tree) -> Self {
        Self::with_setup(tree, |_| {})
    }

    /// Like [`new`](Self::new), with changes to modgate's setup.
    pub fn with_setup(tree: fixtures::Tree, change: impl FnOnce(&mut Setup)) -> Self {
        let up = FakeUpstream::start(tree.clone());
        let storage = tempfile::Builder::new()
            .prefix("modgate-storage-")
            .tempdir()
            .expect("tempdir");
        let mut setup = Setup::new(&storage.path().join("data"), Some(&up.url()));
        change(&mut setup);
        let mg = Modgate::start(setup);
        Self {
            tree,
            up,
            mg,
            storage,
        }
    }

    pub fn standard() -> Self {
        Self::new(standard_tree())
    }

    pub fn root(&self) -> std::path::PathBuf {
        self.storage.path().join("data")
    }
}

/// `go mod download -json` of every fixture through modgate: the same `Sum`/`GoModSum` as
/// against the upstream directly, and the download caches are byte-identical.
#[test]
fn go_mod_download_through_modgate_matches_the_upstream() {
    let s = Stack::standard();
    let direct = GoEnv::new(&s.up.url());
    let via = GoEnv::new(&s.mg.url());
    let queries = standard_queries();
    let want = sums(&direct.download(&queries));
    let got = sums(&via.download(&queries));
    assert_eq!(
        got, want,
        "go.sum lines through modgate differ from the upstream's"
    );
    assert_same_cache(&via, &direct);
    assert_cache_matches_tree(&via, &s.tree);
}

/// `go list -m -versions` (retractions applied by the client from the served go.mod, the
/// upper-case module path escaped on the wire) gives the same answers through modgate.
#[test]
fn go_list_versions_through_modgate_matches_the_upstream() {
    let s = Stack::standard();
    let direct = GoEnv::new(&s.up.url());
    let via = GoEnv::new(&s.mg.url());
    for args in [
        vec!["list", "-m", "-versions", LIB, LIB_V2, LEGACY, UPPER],
        vec!["list", "-m", "-retracted", "-versions", LIB],
        vec!["list", "-m", &format!("{LIB}@latest")],
        vec!["list", "-m", &format!("{LIB}@master")],
        vec!["list", "-m", &format!("{UNTAGGED}@latest")],
        vec!["list", "-m", "-versions", GOPKG],
    ] {
        let want = direct.run(&args);
        assert_eq!(
            via.run(&args),
            want,
            "go {} differs through modgate",
            args.join(" ")
        );
    }
    let out = via.run(&["list", "-m", "-versions", LIB, LIB_V2, LEGACY, UPPER]);
    assert_eq!(
        out,
        format!(
            "{LIB} v1.0.0 v1.1.0 v1.2.0-pre.1\n{LIB_V2} v2.0.0\n{LEGACY} v2.0.0+incompatible\n{UPPER} v1.0.0\n"
        )
    );
    assert_eq!(
        via.run(&["list", "-m", &format!("{LIB}@master")]),
        format!("{LIB} v1.1.0\n"),
        "branch query"
    );
    assert_eq!(
        via.run(&["list", "-m", &format!("{UNTAGGED}@latest")]),
        format!("{UNTAGGED} {UNTAGGED_PSEUDO}\n"),
        "@latest of a module without tags"
    );
    let out = via.run(&["list", "-m", "-retracted", "-versions", LIB]);
    assert_eq!(out, format!("{LIB} v1.0.0 v1.0.1 v1.1.0 v1.2.0-pre.1\n"));

    // A user who asks for the retracted version gets it, with the author's warning.
    let got = via.output(&["get", &format!("{LIB}@v1.0.1")]);
    let stderr = String::from_utf8_lossy(&got.stderr);
    assert!(got.status.success(), "go get {LIB}@v1.0.1 failed: {stderr}");
    assert!(
        stderr.contains("retracted"),
        "no retraction warning from go get: {stderr}"
    );
}

const MAIN_GO: &str = r#"package main

import (
	"fmt"

	"example.com/Fixture/Upper"
	"example.com/fixture/legacy"
	"example.com/fixture/lib"
	libv2 "example.com/fixture/lib/v2"
)

func main() {
	fmt.Println(lib.Version, libv2.Version, legacy.Version, upper.Version)
}
"#;

/// `go get` in a scratch module writes the same go.mod and go.sum through modgate as against
/// the upstream, and the program built from the fetched code runs.
#[test]
fn go_get_through_modgate_writes_the_same_go_sum() {
    let s = Stack::standard();
    let envs = [GoEnv::new(&s.up.url()), GoEnv::new(&s.mg.url())];
    let mut results = Vec::new();
    for go in &envs {
        std::fs::write(go.work().join("main.go"), MAIN_GO).expect("write main.go");
        go.run(&[
            "get",
            &format!("{LIB}@v1.1.0"),
            &format!("{LIB_V2}@v2.0.0"),
            &format!("{LEGACY}@v2.0.0+incompatible"),
            &format!("{UPPER}@v1.0.0"),
        ]);
        let printed = go.run(&["run", "."]);
        assert_eq!(
            printed, "v1.1.0 v2.0.0 v2.0.0 v1.0.0\n",
            "GOPROXY={}",
            go.goproxy
        );
        let first = (go.read_work("go.mod"), go.read_work("go.sum"));

        // A pseudo-version (not in the list) and then @latest (v1.1.0: releases beat the
        // pre-release, and the client reads the retractions from the latest go.mod).
        go.run(&["get", &format!("{LIB}@{LIB_PSEUDO}")]);
        assert_eq!(
            go.run(&["run", "."]),
            format!("{LIB_PSEUDO} v2.0.0 v2.0.0 v1.0.0\n")
        );
        go.run(&["get", &format!("{LIB}@latest")]);
        assert!(
            go.read_work("go.mod").contains(&format!("{LIB} v1.1.0")),
            "{}",
            go.read_work("go.mod")
        );
        results.push((first, go.read_work("go.sum")));
    }
    let (direct, via) = (&results[0], &results[1]);
    assert_eq!(
        via.0.0, direct.0.0,
        "go.mod written through modgate differs"
    );
    assert_eq!(
        via.0.1, direct.0.1,
        "go.sum written through modgate differs"
    );
    assert_eq!(
        via.1, direct.1,
        "go.sum after the pseudo-version and @latest differs"
    );
    assert!(
        via.0.1.contains(&format!("{UPPER} v1.0.0 h1:")),
        "go.sum: {}",
        via.0.1
    );
    assert_same_cache(&envs[1], &envs[0]);
}

/// (Path, Version, Sum, GoModSum) of each `go mod download -json` object.
pub fn sums(docs: &[serde_json::Value]) -> Vec<[String; 4]> {
    let mut v: Vec<[String; 4]> = docs
        .iter()
        .map(|d| {
            ["Path", "Version", "Sum", "GoModSum"]
                .map(|k| d[k].as_str().unwrap_or_default().to_string())
        })
        .collect();
    v.sort();
    v
}

/// The two go environments' download caches hold the same files with the same bytes.
pub fn assert_same_cache(got: &GoEnv, want: &GoEnv) {
    let (g, w) = (got.download_cache(), want.download_cache());
    let keys = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&g), keys(&w), "different files in the download caches");
    for (rel, bytes) in &g {
        assert!(
            bytes == &w[rel],
            "{rel} differs: through modgate {} bytes {:?}…, direct {} bytes {:?}…",
            bytes.len(),
            String::from_utf8_lossy(&bytes[..bytes.len().min(80)]),
            w[rel].len(),
            String::from_utf8_lossy(&w[rel][..w[rel].len().min(80)]),
        );
    }
}

/// Every `.mod` and `.zip` in the go command's download cache equals the fixture's bytes.
pub fn assert_cache_matches_tree(go: &GoEnv, tree: &fixtures::Tree) {
    let cache = go.download_cache();
    let mut checked = 0;
    for (rel, bytes) in &cache {
        if rel.ends_with(".mod") || rel.ends_with(".zip") {
            let want = tree.bytes(&format!("/{rel}"));
            assert!(
                bytes.as_slice() == want,
                "{rel}: cached bytes differ from the upstream's ({} vs {} bytes)",
                bytes.len(),
                want.len()
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "nothing in the download cache");
}
