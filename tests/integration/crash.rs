//! SIGKILL in the middle of many fills, then restart on the same storage: nothing half-stored is
//! ever visible or served (DESIGN.md: temp + rename, `.info` last as the commit marker).

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::fixtures::{ModuleVersion, Tree, artifact_path, bulky_version};
use crate::go_client::{assert_cache_matches_tree, assert_same_cache, sums};
use crate::harness::{GoEnv, Modgate, Setup, walk};
use crate::upstream::FakeUpstream;

const MODULES: usize = 30;

fn crash_versions() -> Vec<ModuleVersion> {
    (0..MODULES)
        .map(|i| {
            // 1 MiB … 5 MiB of incompressible content.
            let size = (1 << 20) + i * (4 << 20) / (MODULES - 1);
            bulky_version(
                &format!("example.com/crash/m{i:02}"),
                "v1.0.0",
                size,
                i as u64 + 1,
            )
        })
        .collect()
}

/// On disk: every final-named `.zip`/`.mod` is complete (the upstream's bytes), and every
/// `.info` (the commit marker) has its `.mod` and `.zip` beside it.
fn assert_storage_consistent(root: &Path, tree: &Tree) -> usize {
    let mut committed = 0;
    for f in walk(root) {
        let rel = f
            .strip_prefix(root)
            .expect("under root")
            .to_string_lossy()
            .into_owned();
        let name = f
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        if name.starts_with(".tmp-") {
            continue; // an abandoned temp file is harmless as long as it is never served
        }
        if let Some(stem) = rel.strip_suffix(".info") {
            for ext in ["mod", "zip"] {
                assert!(
                    root.join(format!("{stem}.{ext}")).is_file(),
                    "{rel} is committed but {stem}.{ext} is missing"
                );
            }
            committed += 1;
        }
        if rel.ends_with(".zip") || rel.ends_with(".mod") {
            let got = std::fs::read(&f).expect("read stored file");
            let want = tree.bytes(&format!("/{rel}"));
            assert!(
                got == want,
                "{rel} on disk is {} bytes, the upstream's {} bytes (truncated or corrupt)",
                got.len(),
                want.len()
            );
        }
    }
    committed
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_fill_leaves_no_partial_version() {
    let versions = crash_versions();
    let tree = Tree::new().with(versions.clone());
    let up = FakeUpstream::start(tree.clone());
    // ~4 MiB/s per response: the fills take 0.25–1.25 s each.
    up.set_zip_rate(Some(4 << 20));
    let storage = tempfile::tempdir().expect("tempdir");
    let root = storage.path().join("data");
    let mut mg = tokio::task::block_in_place(|| Modgate::start(Setup::new(&root, Some(&up.url()))));

    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let mut requests = Vec::new();
    for v in &versions {
        for ext in ["zip", "mod", "info"] {
            let (c, url) = (
                client.clone(),
                format!("{}{}", mg.url(), artifact_path(&v.module, &v.version, ext)),
            );
            requests.push(tokio::spawn(async move {
                let _ = async { c.get(&url).send().await?.bytes().await }.await;
            }));
        }
    }
    // Kill once every zip fill has started upstream and the first are done, the rest mid-way.
    let zip_paths: Vec<String> = versions
        .iter()
        .map(|v| artifact_path(&v.module, &v.version, "zip"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while zip_paths.iter().any(|p| up.hits(p) == 0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = zip_paths.iter().filter(|p| up.hits(p) > 0).count();
    tokio::time::sleep(Duration::from_millis(600)).await;
    mg.sigkill();
    join_all(requests).await;
    assert!(
        started > 0,
        "no zip fill reached the upstream before the kill"
    );

    let committed = assert_storage_consistent(&root, &tree);
    let temps = walk(&root)
        .iter()
        .filter(|p| p.to_string_lossy().contains("/.tmp-"))
        .count();
    eprintln!(
        "at the kill: {started}/{MODULES} zip fills started, {committed} versions committed, {temps} temp files left"
    );
    assert!(
        committed < MODULES,
        "every fill finished before the kill: the test did not interrupt anything"
    );

    // Restart on the same storage and fetch everything with the go command.
    up.set_zip_rate(None);
    tokio::task::block_in_place(|| {
        mg.restart();
        let queries: Vec<String> = versions
            .iter()
            .map(|v| format!("{}@{}", v.module, v.version))
            .collect();
        let via = GoEnv::new(&mg.url());
        let direct = GoEnv::new(&up.url());
        assert_eq!(
            sums(&via.download(&queries)),
            sums(&direct.download(&queries)),
            "go.sum lines after the crash"
        );
        assert_same_cache(&via, &direct);
        assert_cache_matches_tree(&via, &tree);
    });
    let committed = assert_storage_consistent(&root, &tree);
    assert_eq!(
        committed, MODULES,
        "after the refetch every version is committed"
    );
}
