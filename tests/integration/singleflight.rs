//! One in-flight upstream fetch per artifact: concurrent requests wait for it (DESIGN.md).

use std::time::Duration;

use futures_util::future::join_all;

use crate::fixtures::{LIB, artifact_path};
use crate::go_client::Stack;

/// 100 concurrent requests for one uncached zip, while the upstream takes 500 ms to answer:
/// every one gets the same 200 bytes, and the upstream saw exactly one request for it.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_requests_for_one_zip_fetch_it_once() {
    let s = tokio::task::block_in_place(Stack::standard);
    s.up.set_zip_delay(Duration::from_millis(500));
    let path = artifact_path(LIB, "v1.1.0", "zip");
    let want = s.tree.bytes(&path).to_vec();
    let url = format!("{}{path}", s.mg.url());
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");

    let answers = join_all((0..100).map(|_| {
        let (c, url) = (client.clone(), url.clone());
        tokio::spawn(async move {
            let r = c.get(&url).send().await.map_err(|e| e.to_string())?;
            let status = r.status().as_u16();
            let body = r.bytes().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((status, body))
        })
    }))
    .await;
    let mut bad = Vec::new();
    for (i, a) in answers.into_iter().enumerate() {
        match a.expect("task") {
            Ok((200, body)) if body.as_ref() == want.as_slice() => {}
            Ok((status, body)) => bad.push(format!(
                "#{i}: {status}, {} bytes {:?}",
                body.len(),
                String::from_utf8_lossy(&body[..body.len().min(100)])
            )),
            Err(e) => bad.push(format!("#{i}: {e}")),
        }
    }
    assert!(
        bad.is_empty(),
        "{} of 100 requests did not get the zip:\n{}",
        bad.len(),
        bad.join("\n")
    );
    assert_eq!(
        s.up.hits(&path),
        1,
        "upstream requests: {:?}",
        s.up.requests()
    );
}

/// The same for a mix: 50 requests each for the `.mod` and `.info` of one uncached version,
/// while the upstream takes 300 ms for each.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_requests_for_mod_and_info_fetch_each_once() {
    let s = tokio::task::block_in_place(Stack::standard);
    s.up.set_delay(".mod", Duration::from_millis(300));
    s.up.set_delay(".info", Duration::from_millis(300));
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let paths = [
        artifact_path(LIB, "v1.0.0", "mod"),
        artifact_path(LIB, "v1.0.0", "info"),
    ];
    let answers = join_all((0..100).map(|i| {
        let c = client.clone();
        let url = format!("{}{}", s.mg.url(), paths[i % 2]);
        tokio::spawn(async move {
            let r = c.get(&url).send().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(r.status().as_u16())
        })
    }))
    .await;
    let statuses: Vec<_> = answers.into_iter().map(|a| a.expect("task")).collect();
    assert!(statuses.iter().all(|s| *s == Ok(200)), "{statuses:?}");
    for p in &paths {
        assert_eq!(
            s.up.hits(p),
            1,
            "{p}: upstream requests: {:?}",
            s.up.requests()
        );
    }
}

/// The go command asks `.info`, then `.mod`, then `.zip`: each reaches the upstream once (the
/// fill reuses the `.info` already checked and kept in memory).
#[test]
fn a_cold_download_asks_the_upstream_once_per_artifact() {
    let up = crate::upstream::FakeUpstream::start(crate::fixtures::standard_tree());
    let storage = tempfile::tempdir().expect("tempdir");
    let mg =
        crate::harness::Modgate::start(crate::harness::Setup::new(storage.path(), Some(&up.url())));
    for ext in ["info", "mod", "zip"] {
        let path = crate::fixtures::artifact_path(crate::fixtures::LIB, "v1.1.0", ext);
        let r = crate::harness::raw_request(
            mg.addr(),
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
        .expect("request");
        assert_eq!(r.status, 200, "{path}");
    }
    for ext in ["info", "mod", "zip"] {
        let path = crate::fixtures::artifact_path(crate::fixtures::LIB, "v1.1.0", ext);
        assert_eq!(up.hits(&path), 1, "{path} fetched more than once");
    }
}
