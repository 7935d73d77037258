//! Oracle tests for `modgate::gitsource`: versions, `.info` answers (tags, branches, full and
//! short hashes, `@latest`), go.mod bytes and zip `h1:` hashes against the real go command in
//! direct mode over a local `git daemon` (GOPROXY.md §3), plus incremental fetching.

#![expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use modgate::gitsource::{GitError, GitSource, RepoMapping};
use modgate::goproxy::path::ModulePath;

use crate::zipbuild::{git_daemon, write_files};

/// Runs git in `dir` with a fixed identity and the given commit date (any offset: the
/// pseudo-version uses UTC).
pub(crate) fn git_at(dir: &Path, date: &str, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("GIT_AUTHOR_DATE", date)
        .env("GIT_COMMITTER_DATE", date)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    git_at(dir, "2024-01-02T03:04:05Z", args)
}

pub(crate) fn commit(dir: &Path, date: &str, files: &[(&str, &[u8])], msg: &str) -> String {
    write_files(dir, files);
    git_at(dir, date, &["add", "-A"]);
    git_at(dir, date, &["commit", "-q", "-m", msg]);
    git(dir, &["rev-parse", "HEAD"])
}

pub(crate) const ROOT: &str = "127.0.0.1/repo.git";

/// The main repository: root module with v1 tags, a pre-release and commits after it, a v2.0.0
/// tag without go.mod, a `/v2` module in `v2/`, a `sub` module with prefixed tags, a branch.
/// Returns (work dir, hashes by name).
pub(crate) fn make_main_repo(work: &Path) -> std::collections::BTreeMap<&'static str, String> {
    let mut h = std::collections::BTreeMap::new();
    std::fs::create_dir_all(work).unwrap();
    git(work, &["init", "-q", "-b", "main"]);
    git(work, &["config", "core.autocrlf", "false"]);
    let gomod = format!("module {ROOT}\n\ngo 1.21\n");
    let c1 = commit(
        work,
        "2024-01-02T03:04:05+0200",
        &[
            ("go.mod", gomod.as_bytes()),
            ("LICENSE", b"license\n"),
            ("a.go", b"package a\n"),
        ],
        "one",
    );
    git(work, &["tag", "v1.0.0"]);
    h.insert("c1", c1);
    let c2 = commit(
        work,
        "2024-02-03T04:05:06Z",
        &[("a.go", b"package a\n// 2\n")],
        "two",
    );
    git(work, &["tag", "-a", "-m", "annotated", "v1.1.0"]);
    h.insert("c2", c2);
    // A branch off v1.1.0 with an untagged commit.
    git(work, &["checkout", "-q", "-b", "feature"]);
    let f1 = commit(
        work,
        "2024-02-10T10:00:00-0500",
        &[("f.go", b"package a\n// f\n")],
        "feature",
    );
    h.insert("f1", f1);
    git(work, &["checkout", "-q", "main"]);
    let c3 = commit(
        work,
        "2024-03-04T05:06:07Z",
        &[("a.go", b"package a\n// 3\n")],
        "three",
    );
    git(work, &["tag", "v1.2.0-pre.1"]);
    h.insert("c3", c3);
    // After the pre-release: a pseudo-version of form vX.Y.Z-pre.0.….
    let c4 = commit(
        work,
        "2024-04-05T06:07:08+0900",
        &[("a.go", b"package a\n// 4\n")],
        "four",
    );
    h.insert("c4", c4);
    // A module in a subdirectory, with prefixed tags.
    let c5 = commit(
        work,
        "2024-05-06T07:08:09Z",
        &[
            ("sub/go.mod", format!("module {ROOT}/sub\n").as_bytes()),
            ("sub/s.go", b"package sub\n"),
        ],
        "sub",
    );
    git(work, &["tag", "sub/v0.1.0"]);
    h.insert("c5", c5);
    // The /v2 module in a v2/ directory.
    let c6 = commit(
        work,
        "2024-06-07T08:09:10Z",
        &[
            (
                "v2/go.mod",
                format!("module {ROOT}/v2\n\ngo 1.22\n").as_bytes(),
            ),
            ("v2/b.go", b"package b\n"),
        ],
        "v2",
    );
    git(work, &["tag", "v2.1.0"]);
    h.insert("c6", c6);
    // Untagged head of main.
    let c7 = commit(
        work,
        "2024-07-08T09:10:11Z",
        &[("sub/t.go", b"package sub\n// 7\n")],
        "seven",
    );
    h.insert("c7", c7);
    // v2.0.0 on a side branch whose root has no go.mod: +incompatible.
    git(work, &["checkout", "-q", "-b", "nomod", "v1.0.0"]);
    git(work, &["rm", "-q", "go.mod"]);
    let n1 = commit(
        work,
        "2024-01-20T00:00:00Z",
        &[("n.go", b"package a\n// n\n")],
        "no go.mod",
    );
    git(work, &["tag", "v2.0.0"]);
    h.insert("n1", n1);
    git(work, &["checkout", "-q", "main"]);
    h
}

/// A repository with no go.mod at all: v2+ tags are listed as +incompatible.
fn make_legacy_repo(work: &Path) {
    std::fs::create_dir_all(work).unwrap();
    git(work, &["init", "-q", "-b", "main"]);
    commit(
        work,
        "2023-01-01T00:00:00Z",
        &[("l.go", b"package l\n")],
        "1",
    );
    git(work, &["tag", "v1.0.0"]);
    commit(
        work,
        "2023-02-01T00:00:00Z",
        &[("l.go", b"package l\n// 2\n")],
        "2",
    );
    git(work, &["tag", "v2.0.0"]);
    commit(
        work,
        "2023-03-01T00:00:00Z",
        &[("l.go", b"package l\n// 3\n")],
        "3",
    );
    git(work, &["tag", "v2.1.0"]);
    commit(
        work,
        "2023-04-01T00:00:00Z",
        &[("l.go", b"package l\n// 4\n")],
        "4",
    );
}

/// A repository whose latest release retracts v1.1.0: retracted tags are neither the version
/// of their commit nor a pseudo-version base. Returns (tagged v1.1.0 commit, branch commit).
fn make_retract_repo(work: &Path) -> (String, String) {
    let m = "module 127.0.0.1/retract.git\n";
    std::fs::create_dir_all(work).unwrap();
    git(work, &["init", "-q", "-b", "main"]);
    commit(
        work,
        "2023-05-01T00:00:00Z",
        &[("go.mod", m.as_bytes())],
        "1",
    );
    git(work, &["tag", "v1.0.0"]);
    let c2 = commit(
        work,
        "2023-05-02T00:00:00Z",
        &[("r.go", b"package r\n")],
        "2",
    );
    git(work, &["tag", "v1.1.0"]);
    git(work, &["checkout", "-q", "-b", "dev"]);
    let d1 = commit(
        work,
        "2023-05-03T00:00:00Z",
        &[("d.go", b"package r\n")],
        "dev",
    );
    git(work, &["checkout", "-q", "main"]);
    let retracting = format!("{m}\nretract (\n\tv1.1.0 // broken\n)\n");
    commit(
        work,
        "2023-05-04T00:00:00Z",
        &[("go.mod", retracting.as_bytes())],
        "3",
    );
    git(work, &["tag", "v1.2.0"]);
    (c2, d1)
}

pub(crate) fn bare_clone(base: &Path, work: &Path, dst: &Path) {
    git(
        base,
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            dst.to_str().unwrap(),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_source_matches_the_go_command() {
    let base = tempfile::tempdir().unwrap();
    let work = base.path().join("work");
    let h = make_main_repo(&work);
    let legacy_work = base.path().join("legacy");
    make_legacy_repo(&legacy_work);
    let retract_work = base.path().join("retract");
    let (retracted, dev) = make_retract_repo(&retract_work);
    let srv = base.path().join("srv");
    std::fs::create_dir_all(&srv).unwrap();
    bare_clone(base.path(), &work, &srv.join("repo.git"));
    bare_clone(base.path(), &legacy_work, &srv.join("legacy.git"));
    bare_clone(base.path(), &retract_work, &srv.join("retract.git"));
    let (_daemon, port) = git_daemon(&srv);

    let env = crate::zipbuild::direct_env(port);

    let legacy = "127.0.0.1/legacy.git";
    let retract = "127.0.0.1/retract.git";
    let source = GitSource::new(
        base.path().join("cache"),
        vec![
            // Over the network (git://), into a cached bare clone.
            RepoMapping {
                module_prefix: ROOT.into(),
                url: format!("git://127.0.0.1:{port}/repo.git"),
                credentials: None,
            },
            // A local repository, read in place.
            RepoMapping {
                module_prefix: legacy.into(),
                url: format!("file://{}", srv.join("legacy.git").display()),
                credentials: None,
            },
            RepoMapping {
                module_prefix: retract.into(),
                url: srv.join("retract.git").display().to_string(),
                credentials: None,
            },
        ],
        Duration::from_secs(3600),
    );

    // Versions lists (`-retracted`: a proxy lists retracted versions; the client hides them).
    let sub = format!("{ROOT}/sub");
    let v2 = format!("{ROOT}/v2");
    for m in [ROOT, sub.as_str(), v2.as_str(), legacy, retract] {
        let out = env.run(&[
            "list",
            "-m",
            "-json",
            "-versions",
            "-retracted",
            &format!("{m}@latest"),
        ]);
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        let theirs: Vec<String> = doc["Versions"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
        let ours = source.list(&ModulePath::parse(m).unwrap()).await.unwrap();
        assert_eq!(ours, theirs, "{m} versions");
    }

    // Queries: canonical versions, tags, branches, full and short hashes, latest.
    let short = |k: &str| h[k][..7].to_owned();
    let queries: Vec<(String, String)> = vec![
        (ROOT.into(), "v1.0.0".into()),
        (ROOT.into(), "v1.1.0".into()),
        (ROOT.into(), "v1.2.0-pre.1".into()),
        (ROOT.into(), "v2.0.0+incompatible".into()),
        (ROOT.into(), "latest".into()),
        (ROOT.into(), "main".into()),
        (ROOT.into(), "feature".into()),
        (ROOT.into(), h["c7"].clone()),
        (ROOT.into(), short("c7")),
        (ROOT.into(), h["f1"].clone()),
        (ROOT.into(), h["c4"].clone()),
        (ROOT.into(), short("c2")),
        (ROOT.into(), h["c3"].clone()),
        (sub.clone(), "v0.1.0".into()),
        (sub.clone(), "latest".into()),
        (sub.clone(), "main".into()),
        (v2.clone(), "v2.1.0".into()),
        (v2.clone(), "main".into()),
        (v2.clone(), "latest".into()),
        (legacy.into(), "latest".into()),
        (legacy.into(), "v2.1.0+incompatible".into()),
        (legacy.into(), "main".into()),
        (retract.into(), "dev".into()),
        (retract.into(), retracted.clone()),
        (retract.into(), dev.clone()),
    ];
    let args: Vec<String> = queries.iter().map(|(m, q)| format!("{m}@{q}")).collect();
    let docs = env.download(&args);
    assert_eq!(docs.len(), queries.len());
    for ((m, q), doc) in queries.iter().zip(&docs) {
        let module = ModulePath::parse(m).unwrap();
        let want_version = doc["Version"].as_str().unwrap();
        let info = source
            .info(&module, q)
            .await
            .unwrap_or_else(|e| panic!("{m}@{q}: {e}"));
        assert_eq!(info.version, want_version, "{m}@{q} version");
        let their_info: serde_json::Value =
            serde_json::from_slice(&std::fs::read(doc["Info"].as_str().unwrap()).unwrap()).unwrap();
        assert_eq!(
            info.time,
            their_info["Time"].as_str().unwrap(),
            "{m}@{q} time"
        );
        let json: serde_json::Value = serde_json::to_value(&info).unwrap();
        assert_eq!(json["Version"], their_info["Version"]);

        // The canonical version answers the same.
        let again = source.info(&module, want_version).await.unwrap();
        assert_eq!(again, info, "{m}@{want_version} by version");

        let go_mod = source.go_mod(&module, want_version).await.unwrap();
        assert_eq!(
            go_mod,
            std::fs::read(doc["GoMod"].as_str().unwrap()).unwrap(),
            "{m}@{want_version} go.mod bytes"
        );
        let tmp = tempfile::NamedTempFile::new().unwrap();
        let built = source
            .zip(&module, want_version, tmp.reopen().unwrap())
            .await
            .unwrap_or_else(|e| panic!("{m}@{want_version} zip: {e}"));
        assert_eq!(
            built.zip_h1,
            doc["Sum"].as_str().unwrap(),
            "{m}@{want_version} zip h1"
        );
        assert_eq!(
            built.mod_h1,
            doc["GoModSum"].as_str().unwrap(),
            "{m}@{want_version} mod h1"
        );
        let checked = modgate::goproxy::zipcheck::check_zip(tmp.path(), m, want_version).unwrap();
        assert_eq!(checked.h1, built.zip_h1);
    }

    // The retraction mattered: v1.1.0 is an ancestor of `dev` but not its base.
    let r = ModulePath::parse(retract).unwrap();
    let dev_info = source.info(&r, "dev").await.unwrap();
    assert!(
        dev_info.version.starts_with("v1.0.1-0.20230503000000-"),
        "{dev_info:?}"
    );

    // What does not exist is NotFound; a non-canonical .mod request is refused.
    let root = ModulePath::parse(ROOT).unwrap();
    for q in ["v9.9.9", "nosuchbranch", "deadbeef1234"] {
        let e = source.info(&root, q).await.unwrap_err();
        assert!(matches!(e, GitError::NotFound(_)), "{q}: {e:?}");
        assert!(!e.to_string().contains('\n'));
    }
    assert!(matches!(
        source.go_mod(&root, "v1.1").await.unwrap_err(),
        GitError::InvalidVersion(_)
    ));
    // A pseudo-version that names the wrong time is refused.
    let bad = format!("v1.1.1-0.20200101000000-{}", &h["f1"][..12]);
    assert!(source.info(&root, &bad).await.is_err());
    // An unreachable remote is a fetch failure (502), not "not found".
    let dead = GitSource::new(
        base.path().join("cache-dead"),
        vec![RepoMapping {
            module_prefix: ROOT.into(),
            url: format!("git://127.0.0.1:{}/repo.git", crate::harness::free_port()),
            credentials: None,
        }],
        Duration::from_secs(60),
    );
    let e = dead.list(&root).await.unwrap_err();
    assert!(matches!(e, GitError::Fetch(_)), "{e:?}");
    assert!(!e.to_string().contains('\n'), "{e}");
    let unmapped = ModulePath::parse("example.com/other").unwrap();
    assert!(matches!(
        source.list(&unmapped).await.unwrap_err(),
        GitError::NotFound(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_tags_appear_after_the_fetch_ttl() {
    let base = tempfile::tempdir().unwrap();
    let work = base.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    commit(
        &work,
        "2024-01-01T00:00:00Z",
        &[("go.mod", format!("module {ROOT}\n").as_bytes())],
        "1",
    );
    git(&work, &["tag", "v1.0.0"]);
    let srv = base.path().join("srv");
    std::fs::create_dir_all(&srv).unwrap();
    let bare = srv.join("repo.git");
    bare_clone(base.path(), &work, &bare);
    let (_daemon, port) = git_daemon(&srv);
    let ttl = Duration::from_millis(1500);
    let source = GitSource::new(
        base.path().join("cache"),
        vec![RepoMapping {
            module_prefix: ROOT.into(),
            url: format!("git://127.0.0.1:{port}/repo.git"),
            credentials: None,
        }],
        ttl,
    );
    let m = ModulePath::parse(ROOT).unwrap();
    // Concurrent first requests share one fetch (the clone is made once).
    let source = std::sync::Arc::new(source);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (source, m) = (source.clone(), m.clone());
            tokio::spawn(async move { source.list(&m).await.unwrap() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), ["v1.0.0"]);
    }
    assert_eq!(source.fetches(), 1);

    let c2 = commit(
        &work,
        "2024-02-01T00:00:00Z",
        &[("a.go", b"package a\n")],
        "2",
    );
    git(&work, &["tag", "v1.1.0"]);
    git(
        &work,
        &["push", "-q", bare.to_str().unwrap(), "main", "v1.1.0"],
    );
    // Within the TTL the cached clone answers as it was.
    assert_eq!(source.list(&m).await.unwrap(), ["v1.0.0"]);
    assert_eq!(source.fetches(), 1);
    tokio::time::sleep(ttl).await;
    assert_eq!(source.list(&m).await.unwrap(), ["v1.0.0", "v1.1.0"]);
    assert_eq!(source.fetches(), 2);
    let info = source.info(&m, &c2[..12]).await.unwrap();
    assert_eq!(info.version, "v1.1.0");
    assert_eq!(info.time, "2024-02-01T00:00:00Z");
    // A commit pushed later is found by its hash without waiting for the TTL (a miss refetches,
    // at most every MISS_REFETCH).
    let c3 = commit(
        &work,
        "2024-03-01T00:00:00Z",
        &[("b.go", b"package a\n")],
        "3",
    );
    git(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);
    tokio::time::sleep(modgate::gitsource::MISS_REFETCH).await;
    let info = source.info(&m, &c3).await.unwrap();
    assert_eq!(
        info.version,
        format!("v1.1.1-0.20240301000000-{}", &c3[..12])
    );
    // The fetches were incremental into the same clone.
    let clones: Vec<_> = std::fs::read_dir(base.path().join("cache"))
        .unwrap()
        .collect();
    assert_eq!(clones.len(), 1);
}

/// A smart-HTTP git server for tests: `git http-backend` run as CGI per request, one request
/// per connection; with `require_auth`, only for Basic credentials `user:secret`.
fn http_git_server(root: &Path, require_auth: bool) -> u16 {
    git_http_server(root, require_auth, None)
}

/// [`http_git_server`] over TLS with `tls`'s certificate, always asking for `user:secret`.
pub(crate) fn https_git_server(root: &Path, tls: std::sync::Arc<rustls::ServerConfig>) -> u16 {
    git_http_server(root, true, Some(tls))
}

fn git_http_server(
    root: &Path,
    require_auth: bool,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) -> u16 {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let root = root.to_path_buf();
    trait Stream: std::io::Read + std::io::Write {}
    impl<T: std::io::Read + std::io::Write> Stream for T {}
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(tcp) = conn else { return };
            let mut conn: Box<dyn Stream> = match &tls {
                None => Box::new(tcp),
                Some(config) => {
                    let Ok(server) = rustls::ServerConnection::new(config.clone()) else {
                        continue;
                    };
                    Box::new(rustls::StreamOwned::new(server, tcp))
                }
            };
            let mut reader = BufReader::new(&mut conn);
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or("").to_owned();
            let target = parts.next().unwrap_or("").to_owned();
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                let h = h.trim_end().to_owned();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                }
            }
            let header = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let mut body = Vec::new();
            if let Some(n) = header("content-length") {
                body.resize(n.parse().unwrap(), 0);
                reader.read_exact(&mut body).unwrap();
            } else if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
                loop {
                    let mut size = String::new();
                    reader.read_line(&mut size).unwrap();
                    let n = usize::from_str_radix(size.trim(), 16).unwrap();
                    let mut chunk = vec![0; n + 2];
                    reader.read_exact(&mut chunk).unwrap();
                    if n == 0 {
                        break;
                    }
                    body.extend_from_slice(&chunk[..n]);
                }
            }
            use base64::Engine as _;
            let want = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("user:secret")
            );
            drop(reader);
            if require_auth && header("authorization").as_deref() != Some(want.as_str()) {
                let _ = conn.write_all(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                continue;
            }
            let (path, query) = target.split_once('?').unwrap_or((&target, ""));
            let mut cgi = Command::new("git");
            cgi.arg("http-backend")
                .env_clear()
                .env("GIT_PROJECT_ROOT", &root)
                .env("GIT_HTTP_EXPORT_ALL", "1")
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("REQUEST_METHOD", &method)
                .env("PATH_INFO", path)
                .env("QUERY_STRING", query)
                .env("REMOTE_USER", "user")
                .env("REMOTE_ADDR", "127.0.0.1")
                .env("CONTENT_LENGTH", body.len().to_string())
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null());
            for (h, env) in [
                ("content-type", "CONTENT_TYPE"),
                ("git-protocol", "GIT_PROTOCOL"),
                ("content-encoding", "HTTP_CONTENT_ENCODING"),
            ] {
                if let Some(v) = header(h) {
                    cgi.env(env, v);
                }
            }
            let mut child = cgi.spawn().unwrap();
            child.stdin.take().unwrap().write_all(&body).unwrap();
            let out = child.wait_with_output().unwrap();
            let split = out
                .stdout
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|i| (i, 4))
                .or_else(|| {
                    out.stdout
                        .windows(2)
                        .position(|w| w == b"\n\n")
                        .map(|i| (i, 2))
                })
                .unwrap();
            let head = String::from_utf8_lossy(&out.stdout[..split.0]).into_owned();
            let payload = &out.stdout[split.0 + split.1..];
            let mut status = "200 OK".to_owned();
            let mut resp = String::new();
            for h in head.lines() {
                if let Some(s) = h.strip_prefix("Status:") {
                    status = s.trim().to_owned();
                } else {
                    resp.push_str(h.trim_end());
                    resp.push_str("\r\n");
                }
            }
            let _ = conn.write_all(
                format!(
                    "HTTP/1.1 {status}\r\n{resp}Content-Length: {}\r\nConnection: close\r\n\r\n",
                    payload.len()
                )
                .as_bytes(),
            );
            let _ = conn.write_all(payload);
            let _ = conn.flush();
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_remotes_are_fetched_and_credentials_stay_off_plain_http() {
    let base = tempfile::tempdir().unwrap();
    let work = base.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    commit(
        &work,
        "2024-01-01T00:00:00Z",
        &[("go.mod", format!("module {ROOT}\n").as_bytes())],
        "1",
    );
    git(&work, &["tag", "v1.0.0"]);
    let srv = base.path().join("srv");
    std::fs::create_dir_all(&srv).unwrap();
    bare_clone(base.path(), &work, &srv.join("repo.git"));
    let open_port = http_git_server(&srv, false);
    let auth_port = http_git_server(&srv, true);
    let m = ModulePath::parse(ROOT).unwrap();
    let source = |port: u16, credentials, cache: &str| {
        GitSource::new(
            base.path().join(cache),
            vec![RepoMapping {
                module_prefix: ROOT.into(),
                url: format!("http://127.0.0.1:{port}/repo.git"),
                credentials,
            }],
            Duration::from_secs(60),
        )
    };
    // Anonymous smart HTTP.
    let open = source(open_port, None, "cache-open");
    assert_eq!(open.list(&m).await.unwrap(), ["v1.0.0"]);
    assert_eq!(open.info(&m, "main").await.unwrap().version, "v1.0.0");
    // No tags at all: @latest is the pseudo-version of the remote's default branch, which
    // the cached clone records (a bare clone's own HEAD does not follow the remote).
    let notags = base.path().join("notags");
    std::fs::create_dir_all(&notags).unwrap();
    git(&notags, &["init", "-q", "-b", "trunk"]);
    let head = commit(
        &notags,
        "2024-05-05T05:05:05Z",
        &[("n.go", b"package n\n")],
        "1",
    );
    bare_clone(base.path(), &notags, &srv.join("notags.git"));
    let nt = ModulePath::parse("127.0.0.1/notags.git").unwrap();
    let notags_source = GitSource::new(
        base.path().join("cache-notags"),
        vec![RepoMapping {
            module_prefix: nt.to_string(),
            url: format!("http://127.0.0.1:{open_port}/notags.git"),
            credentials: None,
        }],
        Duration::from_secs(60),
    );
    assert!(notags_source.list(&nt).await.unwrap().is_empty());
    let latest = notags_source.latest(&nt).await.unwrap();
    assert_eq!(
        latest.version,
        format!("v0.0.0-20240505050505-{}", &head[..12])
    );
    assert_eq!(notags_source.info(&nt, "latest").await.unwrap(), latest);
    let mod_bytes = notags_source.go_mod(&nt, &latest.version).await.unwrap();
    assert_eq!(mod_bytes, b"module 127.0.0.1/notags.git\n");

    // A server asking for credentials, none configured: a fetch failure; nothing prompts.
    let e = source(auth_port, None, "cache-anon")
        .list(&m)
        .await
        .unwrap_err();
    assert!(matches!(e, GitError::Fetch(_)), "{e:?}");
    // Configured credentials are never sent over plain http (only https), like the go
    // command's .netrc rule.
    let creds = modgate::gitsource::Credentials::Basic {
        username: "user".into(),
        password: "secret".into(),
    };
    let e = source(auth_port, Some(creds), "cache-auth")
        .list(&m)
        .await
        .unwrap_err();
    assert!(matches!(e, GitError::Fetch(_)), "{e:?}");
    assert!(e.to_string().contains("clear text"), "{e}");
    assert!(!e.to_string().contains("secret"), "{e}");
}

/// gopkg.in modules, from a repository laid out like go-yaml's (`v2` and `v3` tags on their own
/// branches, each go.mod naming its `.vN` path): through modgate from a `{module}` URL template
/// (the repository root keeps the `.vN` suffix) and from explicit entries naming each module,
/// the go command gets the versions and hashes it gets in direct mode. The direct reference
/// resolves gopkg.in as the go command always does, by `?go-get=1` — answered here by a fake
/// gopkg.in behind `HTTP_PROXY` (with `GOINSECURE`), pointing at the same `git daemon`.
#[test]
fn gopkg_in_modules_from_a_template_and_from_explicit_entries() {
    use crate::harness::{GoEnv, Modgate, Setup};
    let base = tempfile::tempdir().unwrap();
    let work = base.path().join("yaml");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "v2"]);
    commit(
        &work,
        "2020-05-06T07:08:09Z",
        &[
            ("go.mod", b"module gopkg.in/yaml.v2\n\ngo 1.15\n"),
            (
                "yaml.go",
                b"// Package yaml v2.\npackage yaml\n\nconst V = 2\n",
            ),
            ("LICENSE", b"Apache\n"),
        ],
        "v2",
    );
    git(&work, &["tag", "v2.4.0"]);
    git(&work, &["checkout", "-q", "-b", "v3"]);
    commit(
        &work,
        "2022-05-27T08:09:10Z",
        &[
            ("go.mod", b"module gopkg.in/yaml.v3\n\ngo 1.16\n"),
            (
                "yaml.go",
                b"// Package yaml v3.\npackage yaml\n\nconst V = 3\n",
            ),
        ],
        "v3",
    );
    git(&work, &["tag", "v3.0.1"]);
    commit(
        &work,
        "2023-01-02T03:04:05Z",
        &[("decode.go", b"package yaml\n\nfunc Decode() {}\n")],
        "untagged work on v3",
    );
    let srv = base.path().join("srv");
    std::fs::create_dir_all(srv.join("gopkg.in")).unwrap();
    bare_clone(base.path(), &work, &srv.join("gopkg.in/yaml.v3.git"));
    // One repository serves both, as gopkg.in serves go-yaml's for .v2 and .v3.
    std::os::unix::fs::symlink("yaml.v3.git", srv.join("gopkg.in/yaml.v2.git")).unwrap();
    let (_daemon, port) = git_daemon(&srv);

    // The go command in direct mode: gopkg.in's go-get answer names the daemon's repository.
    let gopkg = crate::upstream::FakeUpstream::start(crate::fixtures::Tree::new());
    gopkg.set_fallback(move |path| {
        let root = format!("gopkg.in{}", path.trim_end_matches('/'));
        Some(crate::upstream::Override {
            status: 200,
            content_type: "text/html; charset=utf-8".into(),
            body: format!(
                "<html><head><meta name=\"go-import\" content=\"{root} git git://127.0.0.1:{port}/gopkg.in/yaml.v3.git\"></head></html>\n"
            )
            .into(),
        })
    });
    let direct = GoEnv::new("direct")
        .env("GOINSECURE", "gopkg.in")
        .env("GOPRIVATE", "gopkg.in")
        .env("HTTP_PROXY", &gopkg.url())
        .env("HTTPS_PROXY", &gopkg.url())
        .env("GIT_CONFIG_NOSYSTEM", "1");

    let sum = |env: &GoEnv, q: &str| {
        let out = env.run(&["mod", "download", "-json", q]);
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        (
            doc["Version"].as_str().unwrap_or_default().to_owned(),
            doc["Sum"].as_str().unwrap_or_default().to_owned(),
            doc["GoModSum"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let queries = [
        "gopkg.in/yaml.v3@v3.0.1",
        "gopkg.in/yaml.v2@v2.4.0",
        "gopkg.in/yaml.v3@v3",
        "gopkg.in/yaml.v3@latest",
    ];
    let theirs: Vec<_> = queries.iter().map(|q| sum(&direct, q)).collect();
    let versions = |env: &GoEnv, m: &str| env.run(&["list", "-m", "-versions", m]);
    let their_versions: Vec<String> = ["gopkg.in/yaml.v3", "gopkg.in/yaml.v2"]
        .iter()
        .map(|m| versions(&direct, m))
        .collect();
    assert_eq!(
        their_versions,
        ["gopkg.in/yaml.v3 v3.0.1\n", "gopkg.in/yaml.v2 v2.4.0\n"],
        "the reference itself"
    );

    let template = format!(r#"{{ git = "git://127.0.0.1:{port}/{{module}}.git" }}"#);
    let explicit = format!(
        r#"{{ git = "git://127.0.0.1:{port}/gopkg.in/yaml.v3.git", module = "gopkg.in/yaml.v3" }},
  {{ git = "git://127.0.0.1:{port}/gopkg.in/yaml.v3.git", module = "gopkg.in/yaml.v2" }}"#
    );
    for (how, sources) in [("template", template), ("explicit entries", explicit)] {
        let storage = base.path().join(format!("storage-{}", how.len()));
        let mut setup = Setup::new(&storage, None);
        setup.extra_toml = format!(
            "\n[git]\ncache_dir = {}\n\n[[route]]\nmatch = [\"gopkg.in\"]\nstorage = \"local\"\nsources = [\n  {sources},\n]\n",
            toml::Value::String(
                base.path()
                    .join(format!("clones-{}", how.len()))
                    .display()
                    .to_string()
            )
        );
        let mg = Modgate::start(setup);
        let proxied = GoEnv::new(&mg.url());
        let ours: Vec<String> = ["gopkg.in/yaml.v3", "gopkg.in/yaml.v2"]
            .iter()
            .map(|m| versions(&proxied, m))
            .collect();
        assert_eq!(ours, their_versions, "{how}: versions");
        for (q, want) in queries.iter().zip(&theirs) {
            assert_eq!(&sum(&proxied, q), want, "{how}: {q}");
        }
    }
}
