//! Oracle tests for `goproxy::zipbuild`: zips built from directories against
//! `golang.org/x/mod/zip.CreateFromDir` (the copy vendored in GOROOT, built hermetically), and
//! zips built from git trees against the real go command in direct mode over a local
//! `git daemon` (GOPROXY.md §3).

#![expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use modgate::goproxy::path::ModulePath;
use modgate::goproxy::zipbuild::{self, BuiltZip};

use crate::harness::{GoEnv, free_port, xmod_program};

// ---------------------------------------------------------------------------------------------
// The CreateFromDir oracle

const ORACLE_MAIN: &str = r#"package main

import (
	"archive/zip"
	"encoding/json"
	"os"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"
)

// Usage: oracle DIR MODULE VERSION OUT.zip; prints {"Files":[...],"H1":"..."} or {"Err":"..."}.
func main() {
	dir, mod, vers, out := os.Args[1], os.Args[2], os.Args[3], os.Args[4]
	enc := json.NewEncoder(os.Stdout)
	f, err := os.Create(out)
	if err != nil {
		panic(err)
	}
	if err := modzip.CreateFromDir(f, module.Version{Path: mod, Version: vers}, dir); err != nil {
		enc.Encode(map[string]string{"Err": err.Error()})
		return
	}
	f.Close()
	h1, err := dirhash.HashZip(out, dirhash.Hash1)
	if err != nil {
		panic(err)
	}
	zr, err := zip.OpenReader(out)
	if err != nil {
		panic(err)
	}
	var files []string
	for _, zf := range zr.File {
		files = append(files, zf.Name)
	}
	enc.Encode(map[string]any{"Files": files, "H1": h1})
}
"#;

/// Builds the oracle once per test binary run, from GOROOT's vendored x/mod, offline.
fn oracle() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| xmod_program("zipbuild-oracle", ORACLE_MAIN))
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Zip { files: BTreeSet<String>, h1: String },
    Err(String),
}

fn oracle_zip(dir: &Path, module: &str, version: &str) -> Outcome {
    let out = tempfile::NamedTempFile::new().unwrap();
    let res = Command::new(oracle())
        .arg(dir)
        .arg(module)
        .arg(version)
        .arg(out.path())
        .output()
        .expect("run oracle");
    assert!(
        res.status.success(),
        "oracle: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&res.stdout).expect("oracle JSON");
    if let Some(e) = v.get("Err") {
        return Outcome::Err(e.as_str().unwrap().to_owned());
    }
    Outcome::Zip {
        files: v["Files"]
            .as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default(),
        h1: v["H1"].as_str().unwrap().to_owned(),
    }
}

/// Our zip's file set and hash, after checking that it passes `zipcheck` and that the hash of
/// the written file equals the one reported.
fn our_outcome(
    built: Result<BuiltZip, zipbuild::BuildError>,
    zip: &Path,
    module: &str,
    version: &str,
) -> Outcome {
    let built = match built {
        Ok(b) => b,
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "one-line error: {msg:?}");
            return Outcome::Err(msg);
        }
    };
    let checked = modgate::goproxy::zipcheck::check_zip(zip, module, version)
        .unwrap_or_else(|e| panic!("our zip fails zipcheck: {e}"));
    assert_eq!(checked.h1, built.zip_h1, "hash of the written zip");
    assert_eq!(checked.files, built.files);
    let f = std::fs::File::open(zip).unwrap();
    let mut z = zip::ZipArchive::new(f).unwrap();
    let files = (0..z.len())
        .map(|i| z.by_index(i).unwrap().name().to_owned())
        .collect();
    Outcome::Zip {
        files,
        h1: built.zip_h1,
    }
}

fn ours_from_dir(dir: &Path, module: &str, version: &str) -> (Outcome, Option<BuiltZip>) {
    let m = ModulePath::parse(module).unwrap();
    let tmp = tempfile::NamedTempFile::new().unwrap();
    let mut f = std::fs::File::create(tmp.path()).unwrap();
    let built = zipbuild::zip_from_dir(dir, &m, version, &mut f);
    drop(f);
    let keep = built.as_ref().ok().cloned();
    (our_outcome(built, tmp.path(), module, version), keep)
}

/// Writes `files` (path → content; content `"->target"` makes a symlink) under a new tempdir.
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (path, content) in files {
        let p = d.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        if let Some(target) = content.strip_prefix("->") {
            std::os::unix::fs::symlink(target, &p).unwrap();
        } else {
            std::fs::write(&p, content).unwrap();
        }
    }
    d
}

/// The rich fixture: every omission rule, with the root go.mod's `go` line as given.
fn rich_tree(go_line: &str) -> tempfile::TempDir {
    let go_mod = format!("module example.com/m\n\n{go_line}\n");
    tree(&[
        ("go.mod", go_mod.as_str()),
        ("a.go", "package a\n"),
        ("LICENSE", "license\n"),
        ("sub/go.mod", "module example.com/m/sub\n"),
        ("sub/x.go", "package sub\n"),
        ("linkmod/go.mod", "->../go.mod"),
        ("linkmod/y.go", "package linkmod\n"),
        ("upper/GO.MOD", "module example.com/m/upper\n"),
        ("upper/u.go", "package upper\n"),
        (".git/config", "[core]\n"),
        (".hg/store", "x"),
        ("pkg/.svn/entries", "x"),
        (".bzr/x", "x"),
        ("vendor/modules.txt", "# example.com/p v1.0.0\n"),
        ("vendor/example.com/p/p.go", "package p\n"),
        ("vendor/top.go", "package vendor\n"),
        ("pkg/vendor/vendor.go", "package vendor\n"),
        ("pkg/vendor/foo/foo.go", "package foo\n"),
        ("pkg/p.go", "package pkg\n"),
        ("abcdefghij/vendor/x.go", "package x\n"),
        (".hg_archival.txt", "repo: x\n"),
        ("sub2/.hg_archival.txt", "kept\n"),
        ("ln.go", "->a.go"),
        ("bad:link", "->a.go"),
        ("dangling", "->nowhere"),
        ("a b/c+d@e,f=g~h.go", "package ab\n"),
        ("üñí/ßx.go", "package u\n"),
        ("-dash/.dot", "dot\n"),
        ("Upper.go", "package a\n"),
        ("empty.txt", ""),
    ])
}

fn assert_same_as_create_from_dir(dir: &Path, module: &str, version: &str) -> Outcome {
    let want = oracle_zip(dir, module, version);
    let (got, _) = ours_from_dir(dir, module, version);
    match (&want, &got) {
        (Outcome::Zip { .. }, _) => assert_eq!(got, want, "zip of {}", dir.display()),
        (Outcome::Err(w), Outcome::Err(_)) => {
            eprintln!("both refuse {}: go: {w} / modgate: {got:?}", dir.display());
        }
        (Outcome::Err(w), Outcome::Zip { .. }) => {
            panic!("CreateFromDir refuses ({w}) but modgate built {got:?}")
        }
    }
    got
}

#[test]
fn zip_from_dir_matches_create_from_dir() {
    for go_line in [
        "go 1.21",
        "go 1.23.4",
        "go 1.24",
        "go 1.24rc1",
        "go 1.25.0\n\ntoolchain go1.25.1",
        "go 1.24 // new rules",
        "go 1.24\ngo 1.24",
        "go v1.24-lax",
        "",
    ] {
        let d = rich_tree(go_line);
        let got = assert_same_as_create_from_dir(d.path(), "example.com/m", "v1.2.3");
        assert!(matches!(got, Outcome::Zip { .. }), "{go_line:?}: {got:?}");
    }
    // A symlinked root go.mod: listFilesInDir reads it (new vendor rules) though checkFiles
    // does not.
    let d = tree(&[
        ("real.mod", "module example.com/m\n\ngo 1.24\n"),
        ("go.mod", "->real.mod"),
        ("vendor/modules.txt", "x\n"),
        ("pkg/vendor/vendor.go", "package vendor\n"),
        ("a.go", "package a\n"),
    ]);
    assert_same_as_create_from_dir(d.path(), "example.com/m", "v1.0.0");
    // No go.mod, +incompatible, and a major-version path.
    let d = tree(&[("a.go", "package a\n"), ("vendor/modules.txt", "x\n")]);
    let got = assert_same_as_create_from_dir(d.path(), "example.com/m", "v2.0.0+incompatible");
    assert!(matches!(got, Outcome::Zip { .. }));
    let (_, built) = ours_from_dir(d.path(), "example.com/m", "v2.0.0+incompatible");
    assert_eq!(built.unwrap().go_mod, b"module example.com/m\n");
    let d = tree(&[
        ("go.mod", "module example.com/m/v3\n"),
        ("a.go", "package a\n"),
    ]);
    assert_same_as_create_from_dir(d.path(), "example.com/m/v3", "v3.1.0");
}

#[test]
fn zip_from_dir_refuses_what_create_from_dir_refuses() {
    // (files, version, words the error must hold)
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("a.go", "x"), ("A.go", "y")],
            "v1.0.0",
            "case-insensitive",
        ),
        (
            vec![("d/a.go", "x"), ("D/b.go", "y")],
            "v1.0.0",
            "case-insensitive",
        ),
        (vec![("bad:name.go", "x")], "v1.0.0", "malformed file path"),
        (vec![("con.txt", "x")], "v1.0.0", "malformed file path"),
        (vec![("x/aux/a.go", "x")], "v1.0.0", "malformed file path"),
        (
            vec![("GO.MOD", "module example.com/m\n")],
            "v1.0.0",
            "lowercase",
        ),
        (vec![("a.go", "x")], "v2.0.0", "v0 or v1"),
        (vec![("a.go", "x")], "v1.0", "not canonical"),
    ];
    for (files, version, rule) in cases {
        let d = tree(&files);
        let got = assert_same_as_create_from_dir(d.path(), "example.com/m", version);
        match got {
            Outcome::Err(msg) => assert!(msg.contains(rule), "{files:?}: {msg}"),
            other => panic!("{files:?} built {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The go command over git daemon

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("GIT_AUTHOR_DATE", "2024-01-02T03:04:05Z")
        .env("GIT_COMMITTER_DATE", "2024-01-02T03:04:05Z")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub(crate) struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The go command in direct mode against the `git daemon` on `port`: module paths cannot hold
/// a port, so the go command probes https://, http:// and git:// on the default ports, and git
/// rewrites all three for `127.0.0.1/<repo>.git` to the daemon's free port.
pub(crate) fn direct_env(port: u16) -> GoEnv {
    let env = GoEnv::new("direct")
        .env("GOINSECURE", "127.0.0.1")
        .env("GOPRIVATE", "127.0.0.1")
        .env("GIT_CONFIG_NOSYSTEM", "1");
    let home = env.modcache().parent().unwrap().join("home");
    std::fs::write(
        home.join(".gitconfig"),
        format!(
            "[url \"git://127.0.0.1:{port}/\"]\n\tinsteadOf = https://127.0.0.1/\n\tinsteadOf = http://127.0.0.1/\n\tinsteadOf = git://127.0.0.1/\n"
        ),
    )
    .unwrap();
    env
}

pub(crate) fn git_daemon(base: &Path) -> (Daemon, u16) {
    let port = free_port();
    let child = Command::new("git")
        .args([
            "daemon",
            "--export-all",
            "--listen=127.0.0.1",
            "--reuseaddr",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", base.display()))
        .arg(base)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start git daemon");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "git daemon did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Daemon(child), port)
}

/// Writes files into the work tree (`"->target"` makes a symlink).
pub(crate) fn write_files(root: &Path, files: &[(&str, &[u8])]) {
    for (path, content) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        if let Some(target) = content.strip_prefix(b"->") {
            std::os::unix::fs::symlink(std::str::from_utf8(target).unwrap(), &p).unwrap();
        } else {
            std::fs::write(&p, content).unwrap();
        }
    }
}

#[test]
fn zip_from_git_matches_the_go_command() {
    let base = tempfile::tempdir().unwrap();
    let work = base.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["config", "core.autocrlf", "false"]);
    git(&work, &["config", "core.symlinks", "true"]);
    write_files(
        &work,
        &[
            ("go.mod", b"module 127.0.0.1/repo.git\n\ngo 1.21\n"),
            ("LICENSE", b"root license\n"),
            ("a.go", b"package a\n\nvar V = \"$Format:%H$\"\n"),
            ("crlf.txt", b"one\ntwo\r\nthree\n"),
            ("auto.txt", b"x\ny\n"),
            ("bin.dat", b"a\x00b\nc\n"),
            ("id.txt", b"$Id$\n"),
            ("ignored.txt", b"export-ignore is off\n"),
            (
                ".gitattributes",
                b"a.go export-subst\nignored.txt export-ignore\ncrlf.txt eol=crlf\nauto.txt text=auto eol=crlf\nbin.dat eol=crlf\nid.txt ident\nsub/*.go eol=crlf\n",
            ),
            ("vendor/modules.txt", b"# x\n"),
            ("vendor/example.com/p/p.go", b"package p\n"),
            ("pkg/vendor/vendor.go", b"package vendor\n"),
            ("nested/go.mod", b"module 127.0.0.1/repo.git/nested\n"),
            ("nested/n.go", b"package nested\n"),
            ("linkmod/go.mod", b"->../go.mod"),
            ("linkmod/l.go", b"package linkmod\n"),
            ("ln.go", b"->a.go"),
            (".hg/keep", b"vcs dirs are not skipped from git\n"),
            ("a b/c+d@e,f=g~h.go", b"package ab\n"),
            ("üñí/ßx.go", b"package u\n"),
            // sub: a module in a subdirectory, without LICENSE of its own.
            ("sub/go.mod", b"module 127.0.0.1/repo.git/sub\n\ngo 1.24\n"),
            ("sub/s.go", b"package sub\n"),
            ("sub/vendor/modules.txt", b"# y\n"),
            // sub2: with a symlinked LICENSE, which suppresses the root's.
            ("sub2/go.mod", b"module 127.0.0.1/repo.git/sub2\n"),
            ("sub2/LICENSE", b"->../LICENSE"),
            ("sub2/t.go", b"package sub2\n"),
        ],
    );
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "one"]);
    git(&work, &["tag", "v1.0.0"]);
    git(&work, &["tag", "sub/v1.0.0"]);
    git(&work, &["tag", "sub2/v0.1.0"]);
    // An untagged commit: a pseudo-version.
    write_files(&work, &[("a.go", b"package a\n\n// two\n")]);
    git(&work, &["commit", "-q", "-am", "two"]);
    let untagged = git(&work, &["rev-parse", "HEAD"]);
    // +incompatible: a v2 tag at a commit without go.mod.
    std::fs::remove_file(work.join("go.mod")).unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "no go.mod"]);
    git(&work, &["tag", "v2.0.0"]);
    // A symlink with an invalid name: name-checked before it is dropped, so no zip.
    git(&work, &["checkout", "-q", "HEAD~1", "--", "go.mod"]);
    write_files(&work, &[("bad:link", b"->a.go")]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "bad link"]);
    git(&work, &["tag", "v1.0.2"]);

    let srv = base.path().join("srv");
    std::fs::create_dir_all(&srv).unwrap();
    git(
        base.path(),
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            srv.join("repo.git").to_str().unwrap(),
        ],
    );
    let bare = srv.join("repo.git");
    let (_daemon, port) = git_daemon(&srv);
    let env = direct_env(port);
    let root_mod = "127.0.0.1/repo.git".to_owned();
    let cases: Vec<(String, &str, &str, &str)> = vec![
        (root_mod.clone(), "v1.0.0", "refs/tags/v1.0.0", ""),
        (
            format!("{root_mod}/sub"),
            "v1.0.0",
            "refs/tags/sub/v1.0.0",
            "sub",
        ),
        (
            format!("{root_mod}/sub2"),
            "v0.1.0",
            "refs/tags/sub2/v0.1.0",
            "sub2",
        ),
        (
            root_mod.clone(),
            "v2.0.0+incompatible",
            "refs/tags/v2.0.0",
            "",
        ),
    ];
    let queries: Vec<String> = cases
        .iter()
        .map(|(m, v, _, _)| format!("{m}@{v}"))
        .collect();
    let mut queries = queries;
    queries.push(format!("{root_mod}@{untagged}"));
    let docs = env.download(&queries);
    let mut all = cases.clone();
    let pseudo = docs.last().unwrap()["Version"].as_str().unwrap().to_owned();
    all.push((root_mod.clone(), pseudo.as_str(), untagged.as_str(), ""));
    for ((module, version, rev, subdir), doc) in all.iter().zip(&docs) {
        let m = ModulePath::parse(module).unwrap();
        let tmp = tempfile::NamedTempFile::new().unwrap();
        let mut f = std::fs::File::create(tmp.path()).unwrap();
        let built = zipbuild::zip_from_git(&bare, rev, subdir, &m, version, &mut f)
            .unwrap_or_else(|e| panic!("{module}@{version}: {e}"));
        drop(f);
        let checked = modgate::goproxy::zipcheck::check_zip(tmp.path(), module, version)
            .unwrap_or_else(|e| panic!("our zip fails zipcheck: {e}"));
        assert_eq!(checked.h1, built.zip_h1);
        let their_zip = Path::new(doc["Zip"].as_str().unwrap());
        assert_eq!(
            built.zip_h1,
            doc["Sum"].as_str().unwrap(),
            "{module}@{version} zip; files that differ: {:?}",
            differing_files(tmp.path(), their_zip)
        );
        assert_eq!(
            built.mod_h1,
            doc["GoModSum"].as_str().unwrap(),
            "{module}@{version} go.mod"
        );
        let go_mod = std::fs::read(doc["GoMod"].as_str().unwrap()).unwrap();
        assert_eq!(built.go_mod, go_mod, "{module}@{version} .mod bytes");
        // Same file set as the go command's zip.
        let theirs = zip_names(Path::new(doc["Zip"].as_str().unwrap()));
        assert_eq!(zip_names(tmp.path()), theirs, "{module}@{version} files");
    }
    assert_both_refuse_bad_link(&env, &bare, &root_mod);
}

/// Both the go command and modgate refuse `v1.0.2`, whose tree holds a symlink named `bad:link`.
fn assert_both_refuse_bad_link(env: &GoEnv, bare: &Path, root_mod: &str) {
    let out = env.output(&["mod", "download", "-json", &format!("{root_mod}@v1.0.2")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("bad:link"),
        "the go command accepted bad:link: {text}"
    );
    let m = ModulePath::parse(root_mod).unwrap();
    let mut buf = std::io::Cursor::new(Vec::new());
    let err = zipbuild::zip_from_git(bare, "refs/tags/v1.0.2", "", &m, "v1.0.2", &mut buf)
        .expect_err("modgate accepted bad:link");
    assert!(err.to_string().contains("bad:link"), "{err}");
}

/// Entries whose bytes differ between two zips (or exist in one only), with both contents.
fn differing_files(a: &Path, b: &Path) -> Vec<(String, String, String)> {
    let read = |p: &Path| {
        let mut z = zip::ZipArchive::new(std::fs::File::open(p).unwrap()).unwrap();
        (0..z.len())
            .map(|i| {
                let mut f = z.by_index(i).unwrap();
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut f, &mut data).unwrap();
                (f.name().to_owned(), data)
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let (a, b) = (read(a), read(b));
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    names
        .into_iter()
        .filter(|n| a.get(*n) != b.get(*n))
        .map(|n| {
            let show = |m: &std::collections::BTreeMap<String, Vec<u8>>| {
                m.get(n).map_or("<absent>".into(), |d| {
                    format!("{:?}", String::from_utf8_lossy(d))
                })
            };
            (n.clone(), show(&a), show(&b))
        })
        .collect()
}

fn zip_names(p: &Path) -> BTreeSet<String> {
    let mut z = zip::ZipArchive::new(std::fs::File::open(p).unwrap()).unwrap();
    (0..z.len())
        .map(|i| z.by_index(i).unwrap().name().to_owned())
        .collect()
}
