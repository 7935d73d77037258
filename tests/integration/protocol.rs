//! The GOPROXY protocol over plain HTTP (GOPROXY.md §1–2), checked response by response against
//! the fake upstream's bytes, plus the on-disk layout of the fs storage.

use std::collections::BTreeSet;

use crate::fixtures::{self, LIB, LIB_PSEUDO, UPPER, artifact_path, list_path};
use crate::go_client::Stack;
use crate::harness::{GoEnv, Setup, raw_request, walk};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("reqwest client")
}

async fn get(c: &reqwest::Client, url: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let r = c
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: body: {e}"))
        .to_vec();
    (status, headers, body)
}

fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn listed(body: &[u8]) -> BTreeSet<String> {
    String::from_utf8_lossy(body)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// `list`, `.info`, `.mod` and `.zip` of every fixture: right status, content type, caching
/// headers, and the upstream's bytes.
#[tokio::test(flavor = "multi_thread")]
async fn every_endpoint_answers_like_the_upstream() {
    let s = Stack::standard();
    let c = client();
    let base = s.mg.url();
    let mut modules = BTreeSet::new();
    for v in s.tree.all_versions() {
        modules.insert(v.module.clone());
        let what = format!("{}@{}", v.module, v.version);

        let (st, h, body) = get(
            &c,
            &format!("{base}{}", artifact_path(&v.module, &v.version, "info")),
        )
        .await;
        assert_eq!(st, 200, "{what}.info: {}", String::from_utf8_lossy(&body));
        assert!(
            header(&h, "content-type").starts_with("application/json"),
            "{what}.info: {h:?}"
        );
        let info: serde_json::Value = serde_json::from_slice(&body).expect(".info is JSON");
        assert_eq!(info["Version"], v.version.as_str(), "{what}.info: {info}");
        assert_eq!(info["Time"], v.time.as_str(), "{what}.info: {info}");
        assert!(
            header(&h, "cache-control").contains("immutable"),
            "{what}.info (canonical): {h:?}"
        );

        let (st, h, body) = get(
            &c,
            &format!("{base}{}", artifact_path(&v.module, &v.version, "mod")),
        )
        .await;
        assert_eq!(st, 200, "{what}.mod");
        assert_eq!(
            header(&h, "content-type"),
            "text/plain; charset=utf-8",
            "{what}.mod"
        );
        assert!(
            body == v.go_mod,
            "{what}.mod: {:?} != {:?}",
            String::from_utf8_lossy(&body),
            String::from_utf8_lossy(&v.go_mod)
        );
        assert!(
            header(&h, "cache-control").contains("immutable"),
            "{what}.mod: {h:?}"
        );

        let (st, h, body) = get(
            &c,
            &format!("{base}{}", artifact_path(&v.module, &v.version, "zip")),
        )
        .await;
        assert_eq!(st, 200, "{what}.zip");
        assert_eq!(header(&h, "content-type"), "application/zip", "{what}.zip");
        assert_eq!(
            header(&h, "content-length"),
            v.zip.len().to_string(),
            "{what}.zip: Content-Length"
        );
        assert!(
            body == v.zip,
            "{what}.zip: {} bytes differ from the upstream's {}",
            body.len(),
            v.zip.len()
        );
        assert!(
            header(&h, "cache-control").contains("immutable"),
            "{what}.zip: {h:?}"
        );
    }
    for m in &modules {
        let (st, h, body) = get(&c, &format!("{base}{}", list_path(m))).await;
        assert_eq!(st, 200, "{m} list");
        assert_eq!(
            header(&h, "content-type"),
            "text/plain; charset=utf-8",
            "{m} list"
        );
        assert!(
            !header(&h, "cache-control").contains("immutable"),
            "{m} list changes, must not be immutable: {h:?}"
        );
        let want = listed(s.tree.bytes(&list_path(m)));
        assert_eq!(listed(&body), want, "{m} list");
        assert!(
            !listed(&body).contains(LIB_PSEUDO),
            "pseudo-versions are never listed"
        );
    }
}

/// The fs storage root is itself a GOPROXY tree: `.info`, `.mod`, `.zip` and the `.ziphash`
/// sidecar holding the go command's own `h1:` hash; no temp files left behind.
#[tokio::test(flavor = "multi_thread")]
async fn storage_root_is_a_goproxy_tree() {
    let s = Stack::standard();
    let c = client();
    for ext in ["info", "mod", "zip"] {
        let (st, _, _) = get(
            &c,
            &format!("{}{}", s.mg.url(), artifact_path(UPPER, "v1.0.0", ext)),
        )
        .await;
        assert_eq!(st, 200, "{UPPER}@v1.0.0.{ext}");
    }
    let dir = s.root().join("example.com/!fixture/!upper/@v");
    let read = |name: &str| {
        std::fs::read(dir.join(name))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
    };
    assert!(
        read("v1.0.0.zip") == s.tree.bytes(&artifact_path(UPPER, "v1.0.0", "zip")),
        "stored zip differs"
    );
    assert!(
        read("v1.0.0.mod") == s.tree.bytes(&artifact_path(UPPER, "v1.0.0", "mod")),
        "stored mod differs"
    );
    let info: serde_json::Value =
        serde_json::from_slice(&read("v1.0.0.info")).expect("stored .info is JSON");
    assert_eq!(info["Version"], "v1.0.0");

    let direct = GoEnv::new(&s.up.url());
    let docs = tokio::task::block_in_place(|| direct.download(&[format!("{UPPER}@v1.0.0")]));
    let ziphash = String::from_utf8(read("v1.0.0.ziphash")).expect("UTF-8 ziphash");
    assert_eq!(
        ziphash.trim_end(),
        docs[0]["Sum"].as_str().expect("Sum"),
        "stored .ziphash is not the go command's h1: hash"
    );
    assert_no_temp_files(&s.root());
}

/// No `.tmp-` file anywhere under `root`.
pub fn assert_no_temp_files(root: &std::path::Path) {
    let temps: Vec<_> = walk(root)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".tmp-"))
        })
        .collect();
    assert!(temps.is_empty(), "temp files left in storage: {temps:?}");
}

/// A stored artifact is served from storage: asking again does not reach the upstream.
#[tokio::test(flavor = "multi_thread")]
async fn second_request_is_served_from_storage() {
    let s = Stack::standard();
    let c = client();
    for ext in ["info", "mod", "zip"] {
        let path = artifact_path(LIB, "v1.1.0", ext);
        for _ in 0..3 {
            let (st, _, _) = get(&c, &format!("{}{path}", s.mg.url())).await;
            assert_eq!(st, 200, "{path}");
        }
        assert_eq!(
            s.up.hits(&path),
            1,
            "{path} fetched from upstream more than once: {:?}",
            s.up.requests()
        );
    }
}

/// `!` may arrive percent-encoded (`%21`): both spellings name the same module (GOPROXY.md §8.3).
#[test]
fn percent_encoded_escapes_name_the_same_module() {
    let s = Stack::standard();
    let ask = |path: &str| {
        let r = raw_request(
            s.mg.addr(),
            &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
        )
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        (r.status, r.body)
    };
    let plain = ask("/example.com/!fixture/!upper/@v/list");
    assert_eq!(plain.0, 200);
    assert_eq!(ask("/example.com/%21fixture/%21upper/@v/list"), plain);
    let zip = ask("/example.com/%21fixture/%21upper/@v/v1.0.0.zip");
    assert_eq!(zip.0, 200);
    assert!(
        zip.1 == s.tree.bytes(&artifact_path(UPPER, "v1.0.0", "zip")),
        "zip via %21 differs"
    );
    // `+` is not a space.
    let (st, body) = ask("/example.com/fixture/legacy/@v/v2.0.0%2Bincompatible.info");
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
}

/// `Range` with a strong `ETag` and `If-Range`: how newer clients resume a zip download.
#[tokio::test(flavor = "multi_thread")]
async fn zip_downloads_resume_with_range_and_if_range() {
    let s = Stack::standard();
    let c = client();
    let url = format!("{}{}", s.mg.url(), artifact_path(LIB, "v1.1.0", "zip"));
    let zip = s.tree.bytes(&artifact_path(LIB, "v1.1.0", "zip")).to_vec();
    let full = c.get(&url).send().await.expect("GET zip");
    assert_eq!(full.status(), 200);
    let etag = header(full.headers(), "etag").to_string();
    assert!(
        !etag.is_empty() && !etag.starts_with("W/"),
        "zip needs a strong ETag, got {etag:?}"
    );
    assert_eq!(header(full.headers(), "accept-ranges"), "bytes");

    let r = c
        .get(&url)
        .header("range", "bytes=10-19")
        .send()
        .await
        .expect("GET range");
    assert_eq!(r.status(), 206);
    assert_eq!(
        header(r.headers(), "content-range"),
        format!("bytes 10-19/{}", zip.len())
    );
    assert_eq!(r.bytes().await.expect("body").as_ref(), &zip[10..20]);

    let r = c
        .get(&url)
        .header("range", "bytes=100-")
        .header("if-range", &etag)
        .send()
        .await
        .expect("GET if-range");
    assert_eq!(r.status(), 206, "If-Range with the current ETag resumes");
    assert_eq!(r.bytes().await.expect("body").as_ref(), &zip[100..]);

    let r = c
        .get(&url)
        .header("range", "bytes=100-")
        .header("if-range", "\"stale\"")
        .send()
        .await
        .expect("GET stale");
    assert_eq!(
        r.status(),
        200,
        "If-Range with another ETag gets the whole zip"
    );
    assert_eq!(r.bytes().await.expect("body").as_ref(), zip.as_slice());

    let r = c
        .get(&url)
        .header("range", "bytes=-10")
        .send()
        .await
        .expect("GET suffix");
    assert_eq!(r.status(), 206, "suffix range");
    assert_eq!(
        r.bytes().await.expect("body").as_ref(),
        &zip[zip.len() - 10..]
    );

    let r = c
        .get(&url)
        .header("range", format!("bytes={}-", zip.len()))
        .send()
        .await
        .expect("GET past end");
    assert_eq!(r.status(), 416, "a range past the end");
    assert_eq!(
        header(r.headers(), "content-range"),
        format!("bytes */{}", zip.len())
    );

    let r = c.head(&url).send().await.expect("HEAD zip");
    assert_eq!(r.status(), 200);
    assert_eq!(header(r.headers(), "content-length"), zip.len().to_string());
    assert!(
        r.bytes().await.expect("body").is_empty(),
        "HEAD has no body"
    );
}

/// `/healthz`, `/readyz` and `/metrics` answer 200.
#[tokio::test(flavor = "multi_thread")]
async fn health_readiness_and_metrics() {
    let s = Stack::standard();
    let c = client();
    for path in ["/healthz", "/readyz", "/metrics"] {
        let (st, _, body) = get(&c, &format!("{}{path}", s.mg.url())).await;
        assert_eq!(st, 200, "{path}: {}", String::from_utf8_lossy(&body));
    }
    let (_, _, _) = get(
        &c,
        &format!("{}{}", s.mg.url(), artifact_path(LIB, "v1.0.0", "mod")),
    )
    .await;
    let (_, h, body) = get(&c, &format!("{}/metrics", s.mg.url())).await;
    assert!(
        header(&h, "content-type").starts_with("text/plain")
            || header(&h, "content-type").contains("openmetrics"),
        "{h:?}"
    );
    assert!(
        String::from_utf8_lossy(&body).contains("# TYPE"),
        "not Prometheus text: {}",
        String::from_utf8_lossy(&body)
    );
}

/// Every answer stays byte-identical across a restart, and an offline route (no sources) serves
/// what storage holds with the upstream gone (GOPROXY.md §8.5).
#[tokio::test(flavor = "multi_thread")]
async fn answers_survive_a_restart_offline() {
    let mut s = Stack::standard();
    let c = client();
    let mut paths: Vec<String> = Vec::new();
    for v in s.tree.all_versions() {
        for ext in ["info", "mod", "zip"] {
            paths.push(artifact_path(&v.module, &v.version, ext));
        }
    }
    paths.push(list_path(LIB));
    let mut before = Vec::new();
    for p in &paths {
        let (st, h, body) = get(&c, &format!("{}{p}", s.mg.url())).await;
        assert_eq!(st, 200, "{p}");
        before.push((body, header(&h, "etag").to_string()));
    }
    let root = s.root();
    let up = std::mem::replace(
        &mut s.up,
        crate::upstream::FakeUpstream::start(fixtures::Tree::new()),
    );
    drop(up);
    let mut mg_setup = Setup::new(&root, None);
    mg_setup.list_ttl = "0s".into();
    let mg = &mut s.mg;
    tokio::task::block_in_place(|| mg.restart_with(mg_setup));
    for (p, (want, etag)) in paths.iter().zip(&before) {
        let (st, h, body) = get(&c, &format!("{}{p}", s.mg.url())).await;
        assert_eq!(
            header(&h, "etag"),
            etag,
            "{p}: the ETag changed across the restart (If-Range resumption breaks)"
        );
        assert_eq!(
            st,
            200,
            "{p} after restart, offline: {}",
            String::from_utf8_lossy(&body)
        );
        if p.ends_with("/list") {
            // What the upstream listed, and the pseudo-version stored beside it: storage
            // alone lists every committed version (the go command leaves pseudo-versions out
            // of `-versions`, and derives `@latest` from them when `@latest` is not found).
            let mut stored = listed(want);
            stored.insert(fixtures::LIB_PSEUDO.to_string());
            assert_eq!(
                listed(&body),
                stored,
                "{p} offline lists what storage holds"
            );
        } else {
            assert!(&body == want, "{p} changed across the restart");
        }
    }
    let (st, _, body) = get(
        &c,
        &format!("{}{}", s.mg.url(), artifact_path(LIB, "v1.9.9", "info")),
    )
    .await;
    assert!(
        st == 404 || st == 410,
        "offline, unknown version: {st} {}",
        String::from_utf8_lossy(&body)
    );
}

/// `list` is merged from the upstream with a short TTL: a version published upstream shows up
/// once `list_ttl` has passed.
#[tokio::test(flavor = "multi_thread")]
async fn list_picks_up_new_versions_after_list_ttl() {
    let s = tokio::task::block_in_place(|| {
        Stack::with_setup(fixtures::standard_tree(), |setup| {
            setup.list_ttl = "1s".into()
        })
    });
    let c = client();
    let url = format!("{}{}", s.mg.url(), list_path(LIB));
    let (st, _, body) = get(&c, &url).await;
    assert_eq!(st, 200);
    assert!(!listed(&body).contains("v1.3.0"));
    s.up.with_tree(|t| {
        t.add(fixtures::ModuleVersion::new(
            LIB,
            "v1.3.0",
            Some(&format!("module {LIB}\n")),
            &[("lib.go", b"package lib\n")],
        ))
    });
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (st, _, body) = get(&c, &url).await;
    assert_eq!(st, 200);
    assert!(
        listed(&body).contains("v1.3.0"),
        "new upstream version not listed after list_ttl: {}",
        String::from_utf8_lossy(&body)
    );
}

/// HEAD answers every endpoint like GET, without the body.
#[tokio::test(flavor = "multi_thread")]
async fn head_is_get_without_the_body() {
    let s = tokio::task::block_in_place(Stack::standard);
    let c = client();
    for p in [
        list_path(LIB),
        artifact_path(LIB, "v1.1.0", "info"),
        artifact_path(LIB, "v1.1.0", "mod"),
        artifact_path(LIB, "v1.1.0", "zip"),
        artifact_path(LIB, "v1.9.9", "info"),
    ] {
        let url = format!("{}{p}", s.mg.url());
        let (gs, gh, gb) = get(&c, &url).await;
        let r = c.head(&url).send().await.expect("HEAD");
        assert_eq!(r.status().as_u16(), gs, "HEAD {p}");
        assert_eq!(
            header(r.headers(), "content-type"),
            header(&gh, "content-type"),
            "HEAD {p}"
        );
        assert_eq!(
            header(r.headers(), "content-length"),
            gb.len().to_string(),
            "HEAD {p}"
        );
        assert!(
            r.bytes().await.expect("body").is_empty(),
            "HEAD {p} has a body"
        );
    }
}

/// SIGTERM drains: a download in flight finishes with every byte, then the process exits 0.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_in_flight_downloads_finish() {
    let bulky = fixtures::bulky_version("example.com/fixture/bulky", "v1.0.0", 2 << 20, 99);
    let zip = bulky.zip.clone();
    let mut s = tokio::task::block_in_place(|| Stack::new(fixtures::Tree::new().with([bulky])));
    s.up.set_zip_rate(Some(2 << 20)); // ~1 s for the zip
    let url = format!(
        "{}{}",
        s.mg.url(),
        artifact_path("example.com/fixture/bulky", "v1.0.0", "zip")
    );
    let c = client();
    let download = tokio::spawn(async move {
        let r = c.get(&url).send().await.map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        Ok::<_, String>((status, r.bytes().await.map_err(|e| e.to_string())?))
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    s.mg.signal("TERM");
    let (status, body) = download
        .await
        .expect("task")
        .expect("the in-flight download survives SIGTERM");
    assert_eq!(status, 200);
    assert!(
        body.as_ref() == zip.as_slice(),
        "drained download is {} bytes, want {}",
        body.len(),
        zip.len()
    );
    let mg = &mut s.mg;
    let exit = tokio::task::block_in_place(|| mg.wait_exit(std::time::Duration::from_secs(10)));
    assert!(
        exit.is_some_and(|e| e.success()),
        "exit after SIGTERM: {exit:?}"
    );
}
