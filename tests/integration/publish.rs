//! `modgate publish`: a private module version built from a directory, served to the real go
//! command with the sums publish printed; and the refusals, which leave storage untouched.

use std::path::Path;
use std::process::{Command, Output};

use crate::harness::{GoEnv, Modgate, Setup, text, walk};

const MODULE: &str = "corp.example/team/lib";

fn config(storage: &Path) -> String {
    format!(
        "[storage.local]\nplugin = \"storage-fs\"\nconfig = {{ root = {} }}\n\n[[route]]\nmatch = [\"corp.example\"]\nstorage = \"local\"\n",
        toml::Value::String(storage.display().to_string())
    )
}

fn publish(cfg: &Path, dir: &Path, module: &str, version: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modgate"))
        .args([
            "publish",
            dir.to_str().expect("utf-8"),
            "--module",
            module,
            "--version",
            version,
        ])
        .arg("--config")
        .arg(cfg)
        .output()
        .expect("run modgate publish")
}

fn write_module(dir: &Path, files: &[(&str, &str)]) {
    for (name, body) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, body).expect("write");
    }
}

/// Every stored file with its bytes, for "nothing changed" assertions.
fn contents(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = walk(root)
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| (p.display().to_string(), std::fs::read(&p).expect("read")))
        .collect();
    v.sort();
    v
}

#[test]
fn published_versions_download_with_the_printed_sums() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let storage = tmp.path().join("storage");
    let cfg = tmp.path().join("modgate.toml");
    std::fs::write(&cfg, config(&storage)).expect("write config");
    let src = tmp.path().join("src");
    write_module(
        &src,
        &[
            ("go.mod", &format!("module {MODULE}\n\ngo 1.22\n")),
            ("lib.go", "package lib\n\nfunc Answer() int { return 42 }\n"),
            ("internal/x/x.go", "package x\n"),
            (".git/HEAD", "ref: refs/heads/main\n"),
            ("nested/go.mod", "module corp.example/team/lib/nested\n"),
            ("nested/n.go", "package nested\n"),
        ],
    );
    let out = publish(&cfg, &src, MODULE, "v1.0.0");
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let zip_line = t
        .lines()
        .find(|l| l.starts_with(&format!("{MODULE} v1.0.0 h1:")))
        .expect("zip sum printed");
    let mod_line = t
        .lines()
        .find(|l| l.starts_with(&format!("{MODULE} v1.0.0/go.mod h1:")))
        .expect("go.mod sum printed");

    let mg = Modgate::start(Setup::new(&storage, None));
    let go = GoEnv::new(&mg.url())
        .env("GONOSUMDB", "corp.example")
        .env("GOFLAGS", "-mod=mod");
    let got = go.download(&[format!("{MODULE}@v1.0.0")]);
    let sum = got[0]["Sum"].as_str().expect("Sum");
    let go_mod_sum = got[0]["GoModSum"].as_str().expect("GoModSum");
    assert_eq!(zip_line, format!("{MODULE} v1.0.0 {sum}"));
    assert_eq!(mod_line, format!("{MODULE} v1.0.0/go.mod {go_mod_sum}"));
    assert_eq!(
        go.run(&["list", "-m", "-versions", MODULE]),
        format!("{MODULE} v1.0.0\n")
    );
    // The zip holds what the go command would pack: no VCS directory, no nested module.
    let zip = std::fs::read(
        go.modcache()
            .join(format!("cache/download/{MODULE}/@v/v1.0.0.zip")),
    )
    .expect("zip");
    let names = String::from_utf8_lossy(&zip);
    assert!(
        names.contains("internal/x/x.go")
            && !names.contains(".git/HEAD")
            && !names.contains("nested/n.go")
    );
}

#[test]
fn refusals_name_the_problem_and_change_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let storage = tmp.path().join("storage");
    let cfg = tmp.path().join("modgate.toml");
    std::fs::write(&cfg, config(&storage)).expect("write config");
    let src = tmp.path().join("src");
    write_module(
        &src,
        &[
            ("go.mod", &format!("module {MODULE}\n")),
            ("a.go", "package lib\n"),
        ],
    );
    assert!(publish(&cfg, &src, MODULE, "v1.2.3").status.success());
    let before = contents(&storage);

    // The same content again: a no-op that says so.
    let again = publish(&cfg, &src, MODULE, "v1.2.3");
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("nothing changed"), "{}", text(&again));
    assert_eq!(contents(&storage), before);

    // Other content under the same version.
    write_module(&src, &[("a.go", "package lib // changed\n")]);
    let other = publish(&cfg, &src, MODULE, "v1.2.3");
    let t = text(&other);
    assert!(!other.status.success(), "{t}");
    assert!(
        t.contains("v1.2.3 is already published with other content"),
        "{t}"
    );
    assert_eq!(
        contents(&storage),
        before,
        "a refused publish changed storage"
    );

    // A version whose major does not fit the path; a non-canonical version.
    for bad in ["v2.0.0", "v1.2"] {
        let o = publish(&cfg, &src, MODULE, bad);
        let t = text(&o);
        assert!(!o.status.success(), "{bad}: {t}");
        assert!(t.contains(bad), "{bad} named: {t}");
        assert_eq!(t.trim().lines().count(), 1, "one line: {t}");
    }

    // A go.mod the go command could not use: it declares another module, or no module at all
    // (64 zero bytes; 16 MiB of zeros, the largest go.mod). The upload endpoint has always
    // refused these; local publish goes through the same checks now.
    for (go_mod, needle) in [
        (
            b"module corp.example/other\n".to_vec(),
            "module declares its path as: corp.example/other but was required as: corp.example/team/lib",
        ),
        (vec![0u8; 64], "go.mod: no module statement"),
        (vec![0u8; 16 << 20], "go.mod: no module statement"),
    ] {
        let bad = tmp.path().join("bad-go-mod");
        std::fs::create_dir_all(&bad).expect("mkdir");
        std::fs::write(bad.join("go.mod"), &go_mod).expect("write go.mod");
        std::fs::write(bad.join("a.go"), "package lib\n").expect("write a.go");
        let o = publish(&cfg, &bad, MODULE, "v1.4.0");
        let t = text(&o);
        assert!(!o.status.success(), "{t}");
        assert!(t.contains(needle), "{t}");
        assert_eq!(t.trim().lines().count(), 1, "one line: {t}");
        assert_eq!(
            contents(&storage),
            before,
            "nothing of v1.4.0 may be stored"
        );
    }

    // A tree that breaks a zip rule: the message names the file.
    write_module(&src, &[("A.go", "package lib\n")]);
    let o = publish(&cfg, &src, MODULE, "v1.3.0");
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("A.go") && t.contains("collision"), "{t}");
    assert_eq!(
        contents(&storage),
        before,
        "nothing of v1.3.0 may be stored"
    );
}
