//! Private modules through the pipeline: the real go command downloads modules that modgate
//! serves from a git source configured in TOML, and modules uploaded with `modgate publish
//! --to` through the authenticated upload endpoint; its go.sum lines equal those of the go
//! command fetching the same repositories directly (`GOPROXY=direct` over a local `git daemon`,
//! GOPROXY.md §3). Then the refusal matrix of the upload endpoint and the CLI, each with its
//! message, leaving storage as it was.

#![expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::gitsource::{ROOT, bare_clone, commit, git, make_main_repo};
use crate::harness::{GoEnv, Modgate, RawResponse, Setup, raw_request_bytes, text, walk};
use crate::zipbuild::git_daemon;

const TOKEN: &str = "ci-token-that-may-publish";
const READER: &str = "laptop-token-read-only";
const PUBLISHED: &str = "127.0.0.1/pub.git";

fn hex_sha256(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// `[plugins.tokens]`: TOKEN may read and publish, READER only read.
fn tokens_plugin(modules: &str) -> String {
    format!(
        r#"
[plugins.tokens]
plugin = "auth-token"
config = {{ tokens = [
  {{ name = "ci", sha256 = "{ci}", scopes = ["read", "publish"], modules = ["{modules}"] }},
  {{ name = "laptop", sha256 = "{reader}", scopes = ["read"], modules = ["{modules}"] }},
] }}
"#,
        ci = hex_sha256(TOKEN),
        reader = hex_sha256(READER),
    )
}

fn modgate_publish(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_modgate"));
    c.arg("publish").args(args).env_remove("MODGATE_TOKEN");
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().expect("run modgate publish")
}

/// Every stored file with its bytes, for "nothing changed" assertions.
fn contents(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = walk(root)
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    v.sort();
    v
}

/// go.sum of the scratch module, sorted.
fn go_sum(env: &GoEnv) -> Vec<String> {
    let mut lines: Vec<String> = env.read_work("go.sum").lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

/// A plain repository for publishing: its tree is the same from git and from a directory.
fn make_pub_repo(work: &Path) {
    std::fs::create_dir_all(work).unwrap();
    git(work, &["init", "-q", "-b", "main"]);
    git(work, &["config", "core.autocrlf", "false"]);
    commit(
        work,
        "2024-03-01T00:00:00Z",
        &[
            (
                "go.mod",
                format!("module {PUBLISHED}\n\ngo 1.22\n").as_bytes(),
            ),
            ("LICENSE", b"private\n"),
            ("p.go", b"package pub\n\nfunc Answer() int { return 42 }\n"),
            ("internal/x/x.go", b"package x\n"),
        ],
        "one",
    );
    git(work, &["tag", "v1.0.0"]);
}

#[test]
fn the_go_command_downloads_from_git_and_from_published_uploads() {
    let base = tempfile::tempdir().unwrap();
    let work = base.path().join("work");
    let h = make_main_repo(&work);
    let pub_work = base.path().join("pubwork");
    make_pub_repo(&pub_work);
    let srv = base.path().join("srv");
    std::fs::create_dir_all(&srv).unwrap();
    bare_clone(base.path(), &work, &srv.join("repo.git"));
    bare_clone(base.path(), &pub_work, &srv.join("pub.git"));
    // A second repository served through an explicit mapping, read in place.
    let mono_work = base.path().join("mono");
    std::fs::create_dir_all(&mono_work).unwrap();
    git(&mono_work, &["init", "-q", "-b", "main"]);
    commit(
        &mono_work,
        "2024-04-01T00:00:00Z",
        &[
            ("LICENSE", b"mono license\n"),
            ("svc/go.mod", b"module 127.0.0.1/mono.git/svc\n\ngo 1.22\n"),
            ("svc/s.go", b"package svc\n"),
        ],
        "svc",
    );
    git(&mono_work, &["tag", "svc/v1.3.0"]);
    // A module whose tree breaks a zip rule: two names equal under case folding.
    commit(
        &mono_work,
        "2024-04-02T00:00:00Z",
        &[
            ("bad/go.mod", b"module 127.0.0.1/mono.git/bad\n"),
            ("bad/A.go", b"package bad\n"),
            ("bad/a.go", b"package bad\n"),
        ],
        "bad",
    );
    git(&mono_work, &["tag", "bad/v0.1.0"]);
    bare_clone(base.path(), &mono_work, &srv.join("mono.git"));
    let (daemon, port) = git_daemon(&srv);

    // modgate over HTTPS (the go command sends credentials only there): the published module
    // behind auth-token, storage only; every other 127.0.0.1 module from git — the template
    // over git:// into a cached clone, mono.git by an explicit mapping to a local path.
    let (ca, cert, key) = crate::tls::test_pki(base.path());
    let storage = base.path().join("storage");
    let mut setup = Setup::new(&storage, None);
    setup.tls = Some((cert, key));
    setup.extra_toml = format!(
        r#"
{plugin}
[git]
cache_dir = {cache}
fetch_ttl = "1h"

[[route]]
match = ["{PUBLISHED}"]
storage = "local"
auth = ["tokens"]

[[route]]
match = ["127.0.0.1"]
storage = "local"
sources = [
  {{ git = "git://127.0.0.1:{port}/{{path}}" }},
  {{ git = {mono}, module = "127.0.0.1/mono.git" }},
]
"#,
        plugin = tokens_plugin(PUBLISHED),
        cache = toml::Value::String(base.path().join("clones").display().to_string()),
        mono = toml::Value::String(srv.join("mono.git").display().to_string()),
    );
    let mg = Modgate::start(setup);
    let ca_path = ca.to_str().unwrap();
    // Git repositories are sources: the start-up line names them, and a server whose routes
    // fetch only from git is not offline.
    // The line can reach the log file a moment after the server answers its health check.
    mg.wait_for_log("modgate listening", 1, Duration::from_secs(10));
    let startup = std::fs::read_to_string(mg.log_path("stdout")).unwrap_or_default();
    let startup = startup
        .lines()
        .find(|l| l.contains("modgate listening"))
        .unwrap_or_default();
    assert!(
        startup.contains(r#""offline":false"#)
            && startup.contains(&format!("git git://127.0.0.1:{port}/{{path}}")),
        "start-up line of a git-only server: {startup}"
    );

    // --- From git. The same commands through modgate and directly; go.sum must agree.
    let direct = crate::zipbuild::direct_env(port);
    let proxied = GoEnv::new(&mg.url()).env("SSL_CERT_FILE", ca_path);
    let sub = format!("{ROOT}/sub");
    let v2 = format!("{ROOT}/v2");
    let svc = "127.0.0.1/mono.git/svc";
    for m in [ROOT, sub.as_str(), v2.as_str(), svc] {
        let versions = |env: &GoEnv| env.run(&["list", "-m", "-versions", m]);
        assert_eq!(versions(&proxied), versions(&direct), "{m} versions");
    }
    let gets = [
        format!("{ROOT}@feature"),
        format!("{ROOT}@{}", h["c4"]),
        format!("{ROOT}@{}", &h["c2"][..9]),
        format!("{sub}@main"),
        format!("{v2}@latest"),
        format!("{svc}@v1.3.0"),
    ];
    for q in &gets {
        proxied.run(&["get", q]);
        direct.run(&["get", q]);
        assert_eq!(go_sum(&proxied), go_sum(&direct), "go.sum after go get {q}");
    }
    let downloads: Vec<String> = [
        "v1.0.0",
        "v1.1.0",
        "v1.2.0-pre.1",
        "v2.0.0+incompatible",
        "main",
    ]
    .iter()
    .map(|v| format!("{ROOT}@{v}"))
    .chain([format!("{sub}@v0.1.0")])
    .collect();
    let ours = proxied.download(&downloads);
    let theirs = direct.download(&downloads);
    for (a, b) in ours.iter().zip(&theirs) {
        for field in ["Path", "Version", "Sum", "GoModSum"] {
            assert_eq!(a[field], b[field], "{field} of {}", b["Version"]);
        }
    }
    // A branch head resolves to the pseudo-version the go command computes, committed to
    // storage like any other version.
    let main_pseudo = ours[4]["Version"].as_str().unwrap().to_owned();
    assert!(main_pseudo.contains(&h["c7"][..12]), "{main_pseudo}");
    let stored = storage.join(format!("{ROOT}/@v/{main_pseudo}"));
    for ext in ["info", "mod", "zip", "ziphash"] {
        assert!(
            Path::new(&format!("{}.{ext}", stored.display())).is_file(),
            "{ext} of {main_pseudo} committed"
        );
    }

    // Unknown modules and versions are 404s (a GOPROXY list falls through), one line each.
    let unknown = proxied.output(&["mod", "download", "127.0.0.1/nosuch.git@v1.0.0"]);
    let t = text(&unknown);
    assert!(!unknown.status.success() && t.contains("404"), "{t}");
    let unknown = proxied.output(&["mod", "download", &format!("{ROOT}@v9.9.9")]);
    let t = text(&unknown);
    assert!(!unknown.status.success() && t.contains("404"), "{t}");

    // A tree that breaks a zip rule: 502 naming the file and the rule; nothing stored.
    let bad = proxied.output(&["mod", "download", "127.0.0.1/mono.git/bad@v0.1.0"]);
    let t = text(&bad);
    assert!(!bad.status.success(), "{t}");
    assert!(
        t.contains("502") && t.contains("a.go") && t.contains("case"),
        "{t}"
    );
    assert!(
        !storage
            .join("127.0.0.1/mono.git/bad/@v/v0.1.0.zip")
            .exists()
            && !storage
                .join("127.0.0.1/mono.git/bad/@v/v0.1.0.info")
                .exists()
    );

    // --- Published: `modgate publish --to` through the upload endpoint, authenticated by the
    // route's auth-token plugin; the go command reads it back with .netrc.
    let checkout = base.path().join("checkout");
    git(
        base.path(),
        &[
            "clone",
            "-q",
            "--branch",
            "v1.0.0",
            pub_work.to_str().unwrap(),
            checkout.to_str().unwrap(),
        ],
    );
    let out = modgate_publish(
        &[
            checkout.to_str().unwrap(),
            "--module",
            PUBLISHED,
            "--version",
            "v1.0.0",
            "--to",
            &mg.url(),
        ],
        &[("MODGATE_TOKEN", TOKEN), ("SSL_CERT_FILE", ca_path)],
    );
    let t = text(&out);
    assert!(out.status.success(), "publish --to: {t}");
    assert!(t.contains("published 127.0.0.1/pub.git@v1.0.0"), "{t}");

    let netrc = base.path().join("netrc");
    std::fs::write(
        &netrc,
        format!("machine 127.0.0.1:{} login ci password {READER}\n", mg.port),
    )
    .unwrap();
    let reader = GoEnv::new(&mg.url())
        .env("SSL_CERT_FILE", ca_path)
        .env("NETRC", netrc.to_str().unwrap());
    let q = format!("{PUBLISHED}@v1.0.0");
    let ours = reader.download(std::slice::from_ref(&q));
    let theirs = direct.download(std::slice::from_ref(&q));
    assert_eq!(ours[0]["Sum"], theirs[0]["Sum"]);
    assert_eq!(ours[0]["GoModSum"], theirs[0]["GoModSum"]);
    // The sums `publish` printed are the go.sum lines.
    assert!(
        t.contains(&format!(
            "{PUBLISHED} v1.0.0 {}",
            theirs[0]["Sum"].as_str().unwrap()
        )),
        "{t}"
    );
    assert_eq!(
        reader.run(&["list", "-m", "-versions", PUBLISHED]).trim(),
        format!("{PUBLISHED} v1.0.0")
    );
    reader.run(&["get", &q]);
    direct.run(&["get", &q]);
    let published_lines = |env: &GoEnv| -> Vec<String> {
        go_sum(env)
            .into_iter()
            .filter(|l| l.starts_with(PUBLISHED))
            .collect()
    };
    assert_eq!(published_lines(&reader), published_lines(&direct));
    assert_eq!(published_lines(&reader).len(), 2);

    // Built versions are storage hits now: with the git server gone, a fresh client still
    // gets them, byte for byte.
    drop(daemon);
    let later = GoEnv::new(&mg.url()).env("SSL_CERT_FILE", ca_path);
    let again = later.download(&[format!("{ROOT}@v1.1.0"), format!("{ROOT}@{main_pseudo}")]);
    assert_eq!(
        again[0]["Sum"],
        theirs_sum(&direct, &format!("{ROOT}@v1.1.0"))
    );
    assert_eq!(
        again[1]["Sum"],
        theirs_sum(&direct, &format!("{ROOT}@{main_pseudo}"))
    );
}

fn theirs_sum(direct: &GoEnv, q: &str) -> serde_json::Value {
    direct.download(&[q.to_owned()])[0]["Sum"].clone()
}

// ---------------------------------------------------------------------------------------------
// Refusals

const LIB: &str = "corp.example/team/lib";

/// One refused upload: what it is, path, token, body, expected status, text the message holds.
type Refusal<'a> = (&'a str, String, Option<&'a str>, Vec<u8>, u16, &'a str);

fn put(mg: &Modgate, path: &str, token: Option<&str>, body: &[u8]) -> RawResponse {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let mut req = format!(
        "PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    raw_request_bytes(mg.addr(), &req).unwrap()
}

fn body_line(r: &RawResponse) -> String {
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert_eq!(text.matches('\n').count(), 1, "one line: {text:?}");
    text
}

fn lib_zip(version: &str, extra: &[(&str, &[u8])]) -> Vec<u8> {
    let prefix = format!("{LIB}@{version}/");
    let go_mod = format!("module {LIB}\n\ngo 1.22\n");
    let mut entries: Vec<(String, Vec<u8>)> = vec![
        (format!("{prefix}go.mod"), go_mod.into_bytes()),
        (format!("{prefix}lib.go"), b"package lib\n".to_vec()),
    ];
    entries.extend(
        extra
            .iter()
            .map(|(n, b)| (format!("{prefix}{n}"), b.to_vec())),
    );
    let refs: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    crate::fixtures::zip_of(&refs, zip::CompressionMethod::Deflated)
}

fn write_tree(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
    for (name, body) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    dir.to_path_buf()
}

#[test]
fn uploads_are_refused_with_a_reason_and_leave_storage_alone() {
    let base = tempfile::tempdir().unwrap();
    let storage = base.path().join("storage");
    let mut setup = Setup::new(&storage, None);
    setup.extra_toml = format!(
        r#"
{plugin}
[publish]
max_upload_bytes = 65536

[[route]]
match = ["corp.example/team"]
storage = "local"
auth = ["tokens"]

[[route]]
match = ["corp.example/open"]
storage = "local"
uploads = "open"

[[route]]
match = ["corp.example/noauth"]
storage = "local"
"#,
        plugin = tokens_plugin("corp.example/team/*"),
    );
    let mg = Modgate::start(setup);
    let zip_path = |v: &str| format!("/{LIB}/@v/{v}.zip");

    // The first upload is created (201) with the go.sum lines; the same bytes again are a 200
    // no-op.
    let good = lib_zip("v1.0.0", &[]);
    let r = put(&mg, &zip_path("v1.0.0"), Some(TOKEN), &good);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let sums = String::from_utf8_lossy(&r.body).into_owned();
    assert!(sums.starts_with(&format!("{LIB} v1.0.0 h1:")), "{sums}");
    assert!(sums.contains(&format!("{LIB} v1.0.0/go.mod h1:")), "{sums}");
    let before = contents(&storage);
    let r = put(&mg, &zip_path("v1.0.0"), Some(TOKEN), &good);
    assert_eq!(r.status, 200);
    assert_eq!(String::from_utf8_lossy(&r.body), sums);

    let bad_name = lib_zip(
        "v1.1.0",
        &[("A.go", b"package lib\n"), ("a.go", b"package lib\n")],
    );
    let big = lib_zip(
        "v1.2.0",
        &[("blob.bin", &crate::fixtures::Noise::new(7).bytes(100_000))],
    );
    let other_module = crate::fixtures::zip_of(
        &[(
            "corp.example/team/other@v1.0.0/go.mod",
            format!("module {LIB}\n").as_bytes(),
        )],
        zip::CompressionMethod::Stored,
    );
    let cases: Vec<Refusal> = vec![
        (
            "no credentials",
            zip_path("v1.1.0"),
            None,
            good.clone(),
            401,
            "authentication required",
        ),
        (
            "read-only token",
            zip_path("v1.1.0"),
            Some(READER),
            good.clone(),
            403,
            "may not publish",
        ),
        (
            "other content under a published version",
            zip_path("v1.0.0"),
            Some(TOKEN),
            lib_zip("v1.0.0", &[("more.go", b"package lib\n")]),
            409,
            "already published with other content",
        ),
        (
            "bad version",
            zip_path("v1.0"),
            Some(TOKEN),
            good.clone(),
            400,
            "is not canonical (should be \"v1.0.0\")",
        ),
        (
            "major mismatch",
            zip_path("v2.0.0"),
            Some(TOKEN),
            lib_zip("v2.0.0", &[]),
            400,
            "should be v0 or v1, not v2",
        ),
        (
            "case-fold collision",
            zip_path("v1.1.0"),
            Some(TOKEN),
            bad_name,
            400,
            "a.go",
        ),
        (
            "wrong prefix",
            zip_path("v1.1.0"),
            Some(TOKEN),
            good.clone(),
            400,
            "does not have prefix",
        ),
        (
            "go.mod of another module",
            "/corp.example/team/other/@v/v1.0.0.zip".into(),
            Some(TOKEN),
            other_module,
            400,
            "module declares its path as: corp.example/team/lib but was required as: corp.example/team/other",
        ),
        (
            "a go.mod of 64 zero bytes",
            zip_path("v1.1.0"),
            Some(TOKEN),
            crate::fixtures::zip_of(
                &[(&format!("{LIB}@v1.1.0/go.mod"), &[0u8; 64])],
                zip::CompressionMethod::Stored,
            ),
            400,
            "go.mod: no module statement",
        ),
        (
            "too large",
            zip_path("v1.2.0"),
            Some(TOKEN),
            big,
            413,
            "max_upload_bytes",
        ),
        (
            "not a zip path",
            format!("/{LIB}/@v/list"),
            Some(TOKEN),
            good.clone(),
            405,
            "uploads go to",
        ),
        (
            "route without auth",
            "/corp.example/noauth/x/@v/v1.0.0.zip".into(),
            Some(TOKEN),
            good.clone(),
            403,
            "need authentication",
        ),
    ];
    for (what, path, token, body, status, needle) in &cases {
        let r = put(&mg, path, *token, body);
        let line = body_line(&r);
        assert_eq!(r.status, *status, "{what}: {line}");
        assert!(line.contains(needle), "{what}: {line}");
    }
    assert_eq!(contents(&storage), before, "refusals changed storage");

    // An open route takes uploads without credentials.
    let open = "corp.example/open/m";
    let z = crate::fixtures::zip_of(
        &[(
            &format!("{open}@v0.1.0/go.mod"),
            format!("module {open}\n").as_bytes(),
        )],
        zip::CompressionMethod::Deflated,
    );
    let r = put(&mg, &format!("/{open}/@v/v0.1.0.zip"), None, &z);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));

    // The CLI: the same refusals, named, with storage unchanged.
    let before = contents(&storage);
    let src = write_tree(
        &base.path().join("src"),
        &[
            ("go.mod", &format!("module {LIB}\n\ngo 1.22\n")),
            ("lib.go", "package lib\n// other\n"),
        ],
    );
    let cli = |dir: &Path, version: &str, token: &str| {
        modgate_publish(
            &[
                dir.to_str().unwrap(),
                "--module",
                LIB,
                "--version",
                version,
                "--to",
                &mg.url(),
                "--token",
                token,
            ],
            &[],
        )
    };
    let collide = write_tree(
        &base.path().join("collide"),
        &[
            ("go.mod", &format!("module {LIB}\n")),
            ("X.go", "package lib\n"),
            ("x.go", "package lib\n"),
        ],
    );
    let cli_cases: Vec<(&str, &Path, &str, &str, &str)> = vec![
        ("other content", &src, "v1.0.0", TOKEN, "409 Conflict"),
        ("bad version", &src, "v1.0", TOKEN, "v1.0"),
        ("major mismatch", &src, "v2.0.0", TOKEN, "v2.0.0"),
        ("rule-breaking tree", &collide, "v1.3.0", TOKEN, "x.go"),
        (
            "insufficient token",
            &src,
            "v1.3.0",
            READER,
            "403 Forbidden",
        ),
        ("unknown token", &src, "v1.3.0", "nope", "401 Unauthorized"),
    ];
    for (what, dir, version, token, needle) in cli_cases {
        let out = cli(dir, version, token);
        let t = text(&out);
        assert!(!out.status.success(), "{what}: succeeded: {t}");
        assert!(t.contains(needle), "{what}: {t}");
        assert_eq!(t.trim().lines().count(), 1, "{what}: one line: {t}");
    }
    assert_eq!(contents(&storage), before, "CLI refusals changed storage");
}
