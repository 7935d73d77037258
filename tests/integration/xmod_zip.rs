//! golang.org/x/mod's own zip test suite, run through modgate's real interfaces.
//!
//! The cases come from x/mod itself: the go command downloads `golang.org/x/mod@XMOD_VERSION`
//! into a module cache shared by the test runs, and its `zip/testdata` is read from there (no
//! copy lives in this repository). Each case goes through the interface a user would use:
//! - directory cases (`create`, `create_from_dir`, `check_dir`): `modgate publish DIR --config`;
//! - zip cases (`unzip`, `check_zip`): `PUT /<module>/@v/<version>.zip` to a running modgate.
//!
//! and must end as x/mod says: an error containing x/mod's message (every invalid file of the
//! `check_*` cases), or success with x/mod's `h1:` hash. Cases with no such interface are listed
//! with the reason and counted. x/mod's size-limit cases, which live in `zip_test.go` as code,
//! are ported as data below. Storage must hold nothing after any refused case.
//!
//! Where the module proxy cannot be reached the test fails when `CI` is set and otherwise
//! skips, saying so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fixtures::rawzip;
use crate::harness::{Modgate, Setup, go_binary, raw_request_bytes, shared_dir, walk};

/// The x/mod release whose test data is run (the version modgate's zip code follows).
const XMOD_VERSION: &str = "v0.43.0";

/// `zip.MaxZipFile`, `zip.MaxGoMod`, `zip.MaxLICENSE`.
const MAX_ZIP_FILE: u64 = 500 << 20;
const MAX_GO_MOD: u64 = 16 << 20;
const MAX_LICENSE: u64 = 16 << 20;

/// `zip/testdata` of x/mod, downloaded by the go command; `None` (after saying why) where the
/// module proxy cannot be reached outside CI.
fn testdata() -> Option<PathBuf> {
    let modcache = shared_dir("xmod-modcache");
    let scratch = tempfile::tempdir().expect("tempdir");
    let out = Command::new(go_binary())
        .args([
            "mod",
            "download",
            "-json",
            &format!("golang.org/x/mod@{XMOD_VERSION}"),
        ])
        .current_dir(scratch.path())
        .env("GOMODCACHE", &modcache)
        .env("GOFLAGS", "-modcacherw")
        .env("GOTOOLCHAIN", "local")
        .env("GO111MODULE", "on")
        .output()
        .expect("run go mod download");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    match doc["Dir"].as_str() {
        Some(dir) if out.status.success() => Some(Path::new(dir).join("zip/testdata")),
        _ => {
            let why = format!(
                "golang.org/x/mod@{XMOD_VERSION} could not be downloaded through the go command's \
                 GOPROXY, so x/mod's zip suite cannot run: {}{}",
                doc["Error"].as_str().unwrap_or_default(),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("SKIPPED: {why}");
            None
        }
    }
}

/// One txtar case: `key=value` header lines, then `-- name --` files (raw bytes).
struct Case {
    name: String,
    header: BTreeMap<String, Vec<u8>>,
    files: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Case {
    fn parse(name: String, data: &[u8]) -> Self {
        let mut header = BTreeMap::new();
        let mut files: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for line in data.split_inclusive(|&b| b == b'\n') {
            let bare = line.strip_suffix(b"\n").unwrap_or(line);
            if let Some(file) = bare
                .strip_prefix(b"-- ")
                .and_then(|rest| rest.strip_suffix(b" --"))
            {
                files.push((file.to_vec(), Vec::new()));
            } else if let Some((_, body)) = files.last_mut() {
                body.extend_from_slice(line);
            } else {
                // As x/mod reads its headers: `#` starts a comment, spaces around are trimmed.
                let line = bare.split(|&b| b == b'#').next().unwrap_or_default();
                if let Some(eq) = line.iter().position(|&b| b == b'=') {
                    let key = String::from_utf8_lossy(line[..eq].trim_ascii()).into_owned();
                    header.insert(key, line[eq + 1..].trim_ascii().to_vec());
                }
            }
        }
        Case {
            name,
            header,
            files,
        }
    }

    fn get(&self, key: &str) -> Option<String> {
        self.header
            .get(key)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    fn module(&self) -> Vec<u8> {
        self.header
            .get("path")
            .cloned()
            .unwrap_or_else(|| b"example.com/m".to_vec())
    }

    fn version(&self) -> String {
        self.get("version").unwrap_or_else(|| "v1.0.0".into())
    }

    /// The files other than the `want` section.
    fn content(&self) -> impl Iterator<Item = &(Vec<u8>, Vec<u8>)> {
        self.files.iter().filter(|(n, _)| n != b"want")
    }

    /// The `invalid:` lines of a `check_*` case's `want` section, `$work/` dropped.
    fn want_invalid(&self) -> Vec<String> {
        let Some((_, want)) = self.files.iter().find(|(n, _)| n == b"want") else {
            return Vec::new();
        };
        let text = String::from_utf8_lossy(want);
        let mut section = "";
        let mut out = Vec::new();
        for line in text.lines() {
            if line.ends_with(':') && !line.contains(' ') {
                section = line;
            } else if section == "invalid:" && !line.trim().is_empty() {
                out.push(line.replace("$work/", ""));
            }
        }
        out
    }
}

/// What a case expects: an error containing each of these, or success with this hash.
#[derive(Debug)]
enum Expect {
    Errors(Vec<String>),
    Hash(Option<String>),
}

impl Case {
    fn expect(&self) -> Expect {
        if let Some(e) = self.get("wantErr") {
            return Expect::Errors(vec![e]);
        }
        let invalid = self.want_invalid();
        if !invalid.is_empty() {
            return Expect::Errors(invalid);
        }
        Expect::Hash(self.get("hash"))
    }
}

/// How one case ended through modgate: success (and what it printed), or the error text.
fn judge(case: &str, expect: &Expect, ok: bool, text: &str) -> Option<String> {
    match expect {
        Expect::Errors(wants) => {
            let missing: Vec<&String> = wants
                .iter()
                .filter(|w| !text.contains(*w) && !text.contains(&in_walk_order(w)))
                .collect();
            if ok || !missing.is_empty() {
                return Some(format!(
                    "{case}: want an error containing {missing:?}, got ({}) {text}",
                    if ok { "success" } else { "failure" }
                ));
            }
        }
        Expect::Hash(hash) => {
            if !ok || hash.as_ref().is_some_and(|h| !text.contains(h)) {
                return Some(format!("{case}: want success with {hash:?}, got {text}"));
            }
        }
    }
    None
}

/// A collision message with its two names swapped: `zip.Create` names them in the order of its
/// file list, a directory is walked in name order (`create/file_case_conflict` lists `m.go`
/// before `M.GO`; `CreateFromDir` would meet `M.GO` first, as modgate does).
fn in_walk_order(want: &str) -> String {
    let Some(pair) = want.strip_prefix("case-insensitive file name collision: ") else {
        return want.to_owned();
    };
    match pair.split_once(" and ") {
        Some((a, b)) => format!("case-insensitive file name collision: {b} and {a}"),
        None => want.to_owned(),
    }
}

/// A modgate config whose catch-all route takes uploads from anyone, on `storage`.
fn config(storage: &Path) -> String {
    format!(
        "[storage.local]\nplugin = \"storage-fs\"\nconfig = {{ root = {} }}\n\n[[route]]\nmatch = [\"*\"]\nstorage = \"local\"\nuploads = \"open\"\n",
        toml::Value::String(storage.display().to_string())
    )
}

/// Files under `root` (storage must hold none after a refused case).
fn stored(root: &Path) -> Vec<PathBuf> {
    walk(root)
}

/// `modgate publish DIR` of the case's files; `Err` when they cannot be a directory.
fn publish(
    cfg: &Path,
    case: &Case,
    files: &[(Vec<u8>, Vec<u8>)],
) -> Result<(bool, String), String> {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, body) in files {
        let path = dir.path().join(std::ffi::OsStr::from_bytes(name));
        if path.exists() {
            return Err(format!(
                "two files named {:?}: a directory cannot hold them (zip.Create takes a file list)",
                String::from_utf8_lossy(name)
            ));
        }
        let parent = path.parent().expect("parent");
        if parent.is_file() || std::fs::create_dir_all(parent).is_err() {
            return Err(format!(
                "{:?} is both a file and a directory: a directory cannot hold that (zip.Create takes a file list)",
                String::from_utf8_lossy(name)
            ));
        }
        std::fs::write(&path, body).expect("write case file");
    }
    Ok(publish_dir_as(
        cfg,
        dir.path(),
        &case.module(),
        &case.version(),
    ))
}

/// `modgate publish DIR` as `module` (any bytes) at `version`: success and what it printed.
fn publish_dir_as(cfg: &Path, dir: &Path, module: &[u8], version: &str) -> (bool, String) {
    use std::os::unix::ffi::OsStrExt;
    let out = Command::new(env!("CARGO_BIN_EXE_modgate"))
        .arg("publish")
        .arg(dir)
        .arg("--module")
        .arg(std::ffi::OsStr::from_bytes(module))
        .args(["--version", version])
        .arg("--config")
        .arg(cfg)
        .output()
        .expect("run modgate publish");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `PUT` of `zip` as the case's module and version; success and the one-line answer.
fn upload(mg: &Modgate, module: &[u8], version: &str, zip: &[u8]) -> (bool, String) {
    let escaped: String = module
        .iter()
        .map(|&b| match b {
            b'A'..=b'Z' => format!("!{}", b.to_ascii_lowercase() as char),
            0x21..=0x7e => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let mut request = format!(
        "PUT /{escaped}/@v/{version}.zip HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        zip.len()
    )
    .into_bytes();
    request.extend_from_slice(zip);
    let r = raw_request_bytes(mg.addr(), &request).expect("PUT");
    let text = String::from_utf8_lossy(&r.body).trim_end().to_owned();
    (
        (200..300).contains(&r.status),
        format!("{} {text}", r.status),
    )
}

/// The case's files as zip entries, names verbatim (duplicates included).
fn zip_of(files: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let entries: Vec<rawzip::Entry> = files
        .iter()
        .map(|(name, body)| rawzip::Entry::stored(String::from_utf8_lossy(name).into_owned(), body))
        .collect();
    rawzip::write(&entries)
}

/// Runs one case through its interface, on storage of its own: success and what modgate
/// said, or why no interface fits. Storage must be empty after a refusal.
fn run_case(category: &str, case: &Case) -> Result<(bool, String), String> {
    let storage = tempfile::tempdir().expect("tempdir");
    let files: Vec<_> = case.content().cloned().collect();
    let (ok, text) = match category {
        "create" | "create_from_dir" | "check_dir" => {
            let cfg = storage.path().join("modgate.toml");
            std::fs::write(&cfg, config(&storage.path().join("store"))).expect("write config");
            publish(&cfg, case, &files)?
        }
        "unzip" | "check_zip" => {
            let mg = uploading_modgate(&storage.path().join("store"));
            upload(&mg, &case.module(), &case.version(), &zip_of(&files))
        }
        "check_files" => {
            return Err("zip.CheckFiles takes an in-memory file list (VCS directories included); \
                 modgate takes a directory, whose walk leaves them out (check_dir runs the same files)"
                .into());
        }
        other => panic!("x/mod has a new test data directory {other:?}: map it"),
    };
    if !ok {
        let left = stored(&storage.path().join("store"));
        assert!(
            left.is_empty(),
            "{}: a refused case left {left:?}",
            case.name
        );
    }
    Ok((ok, text))
}

#[test]
fn x_mod_zip_suite_passes_through_modgates_interfaces() {
    let Some(root) = testdata() else {
        return;
    };
    let mut passed = 0;
    let mut problems = Vec::new();
    let mut unmapped = Vec::new();
    let mut categories = std::fs::read_dir(&root)
        .expect("zip/testdata")
        .map(|e| e.expect("entry").path())
        .collect::<Vec<_>>();
    categories.sort();
    for dir in categories {
        let category = dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let mut names = std::fs::read_dir(&dir)
            .expect("category")
            .map(|e| e.expect("entry").path())
            .collect::<Vec<_>>();
        names.sort();
        for file in names {
            let name = format!(
                "{category}/{}",
                file.file_name().expect("name").to_string_lossy()
            );
            let case = Case::parse(name.clone(), &std::fs::read(&file).expect("read case"));
            match run_case(&category, &case) {
                Err(why) => unmapped.push(format!("{name}: {why}")),
                Ok((ok, text)) => match judge(&name, &case.expect(), ok, &text) {
                    Some(problem) => problems.push(problem),
                    None => passed += 1,
                },
            }
        }
    }
    let total = passed + problems.len() + unmapped.len();
    eprintln!(
        "x/mod {XMOD_VERSION} zip/testdata: {passed} of {} mapped cases agree; {} of {total} have no modgate interface:\n  {}",
        passed + problems.len(),
        unmapped.len(),
        unmapped.join("\n  ")
    );
    assert!(
        problems.is_empty(),
        "{} x/mod cases disagree:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(
        passed >= 40,
        "only {passed} cases ran: is the test data where it was?"
    );
}

// ---------------------------------------------------------------------------------------------
// x/mod's size-limit and special cases (`zip_test.go`: `sizeLimitTests` with
// `TestCreateSizeLimits` and `TestUnzipSizeLimits`, `TestUnzipSizeLimitsSpecial`,
// `TestCreateFromDirSpecial`), ported as data. x/mod's files are sizes filled with zeros; a
// go.mod here is a module statement padded with newlines to the same size, since modgate (unlike
// `zip.Create`) also requires a published go.mod to declare its module.

/// One of `sizeLimitTests`: files by name and size; the error `Create` and `Unzip` must give
/// (`None`: success).
struct SizeCase {
    desc: &'static str,
    files: &'static [(&'static str, u64)],
    create_err: Option<&'static str>,
    unzip_err: Option<&'static str>,
}

const SIZE_CASES: &[SizeCase] = &[
    SizeCase {
        desc: "one_large",
        files: &[("large.go", MAX_ZIP_FILE)],
        create_err: None,
        unzip_err: None,
    },
    SizeCase {
        desc: "one_too_large",
        files: &[("large.go", MAX_ZIP_FILE + 1)],
        create_err: Some("module source tree too large"),
        unzip_err: Some("total uncompressed size of module contents too large"),
    },
    SizeCase {
        desc: "total_large",
        files: &[("small.go", 10), ("large.go", MAX_ZIP_FILE - 10)],
        create_err: None,
        unzip_err: None,
    },
    SizeCase {
        desc: "total_too_large",
        files: &[("small.go", 10), ("large.go", MAX_ZIP_FILE - 9)],
        create_err: Some("module source tree too large"),
        unzip_err: Some("total uncompressed size of module contents too large"),
    },
    SizeCase {
        desc: "large_gomod",
        files: &[("go.mod", MAX_GO_MOD)],
        create_err: None,
        unzip_err: None,
    },
    SizeCase {
        desc: "too_large_gomod",
        files: &[("go.mod", MAX_GO_MOD + 1)],
        create_err: Some("go.mod file too large"),
        unzip_err: Some("go.mod file too large"),
    },
    SizeCase {
        desc: "large_license",
        files: &[("LICENSE", MAX_LICENSE)],
        create_err: None,
        unzip_err: None,
    },
    SizeCase {
        desc: "too_large_license",
        files: &[("LICENSE", MAX_LICENSE + 1)],
        create_err: Some("LICENSE file too large"),
        unzip_err: Some("LICENSE file too large"),
    },
];

const SIZE_MODULE: &str = "example.com/large";

/// A go.mod of exactly `size` bytes declaring `module`.
fn padded_go_mod(module: &str, size: u64) -> Vec<u8> {
    let mut data = format!("module {module}\n").into_bytes();
    let size = usize::try_from(size).expect("fits");
    assert!(size >= data.len());
    data.resize(size, b'\n');
    data
}

/// `modgate publish` of a directory of zero-filled files (sparse) of the case's sizes.
fn publish_sizes(case: &SizeCase) -> (bool, String, Vec<PathBuf>) {
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    for &(name, size) in case.files {
        if name == "go.mod" {
            std::fs::write(src.join(name), padded_go_mod(SIZE_MODULE, size)).expect("write");
        } else {
            std::fs::File::create(src.join(name))
                .and_then(|f| f.set_len(size))
                .expect("sparse file");
        }
    }
    let storage = work.path().join("store");
    let cfg = work.path().join("modgate.toml");
    std::fs::write(&cfg, config(&storage)).expect("write config");
    let (ok, text) = publish_dir_as(&cfg, &src, SIZE_MODULE.as_bytes(), "v1.0.0");
    (ok, text, stored(&storage))
}

/// A zip of the case's files under `module@v1.0.0/`, zeros deflated by hand (no 500 MiB buffer).
fn zip_of_sizes(case: &SizeCase) -> Vec<u8> {
    let prefix = format!("{SIZE_MODULE}@v1.0.0/");
    let entries: Vec<rawzip::Entry> = case
        .files
        .iter()
        .map(|&(name, size)| {
            if name == "go.mod" {
                rawzip::Entry::stored(format!("{prefix}{name}"), &padded_go_mod(SIZE_MODULE, size))
            } else {
                rawzip::Entry::zeros(format!("{prefix}{name}"), size)
            }
        })
        .collect();
    rawzip::write(&entries)
}

fn uploading_modgate(storage: &Path) -> Modgate {
    let mut setup = Setup::new(storage, None);
    setup.extra_toml =
        "\n[[route]]\nmatch = [\"*\"]\nstorage = \"local\"\nuploads = \"open\"\n".into();
    Modgate::start(setup)
}

#[test]
fn x_mod_size_limits_hold_through_publish_and_upload() {
    let mut problems = Vec::new();
    for case in SIZE_CASES {
        let (ok, text, left) = publish_sizes(case);
        let mut check = |how: &str, want: Option<&str>, ok: bool, text: &str, left: &[PathBuf]| {
            let expect = want.map_or(Expect::Hash(None), |e| Expect::Errors(vec![e.to_owned()]));
            let name = format!("{how} {}", case.desc);
            problems.extend(judge(&name, &expect, ok, text));
            assert!(ok || left.is_empty(), "{name}: refused but left {left:?}");
        };
        check("create", case.create_err, ok, &text, &left);

        let storage = tempfile::tempdir().expect("tempdir");
        let mg = uploading_modgate(storage.path());
        let (ok, text) = upload(&mg, SIZE_MODULE.as_bytes(), "v1.0.0", &zip_of_sizes(case));
        check("unzip", case.unzip_err, ok, &text, &stored(storage.path()));
    }

    // TestUnzipSizeLimitsSpecial.
    let storage = tempfile::tempdir().expect("tempdir");
    let mg = uploading_modgate(storage.path());
    let special: Vec<(&str, Vec<u8>, &str)> = vec![
        // A file of exactly MaxZipFile bytes is read, and is no zip.
        (
            "large_zip",
            vec![0u8; usize::try_from(MAX_ZIP_FILE).expect("fits")],
            "not a valid zip file",
        ),
        // One byte more is refused before it is read.
        (
            "too_large_zip",
            vec![0u8; usize::try_from(MAX_ZIP_FILE + 1).expect("fits")],
            "module zip file is too large",
        ),
        // A go.mod of 0xBAD bytes declared as 0xAC ("not a valid zip file" since Go 1.19).
        (
            "size_is_a_lie",
            rawzip::write(&[rawzip::Entry::stored(
                format!("{SIZE_MODULE}@v1.0.0/go.mod"),
                &[0u8; 0x0BAD],
            )
            .declaring(0xAC)]),
            "not a valid zip file",
        ),
    ];
    for (desc, zip, want) in special {
        let (ok, text) = upload(&mg, SIZE_MODULE.as_bytes(), "v1.0.0", &zip);
        problems.extend(judge(
            &format!("unzip special {desc}"),
            &Expect::Errors(vec![want.to_owned()]),
            ok,
            &text,
        ));
    }
    let left = stored(storage.path());
    assert!(left.is_empty(), "special cases left {left:?}");

    // TestCreateFromDirSpecial: an empty directory and a symlink are left out (the empty
    // module's hash); a directory named vendor is a module root like any other.
    const EMPTY_HASH: &str = "h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
    for (desc, hash) in [
        ("ignore_empty_dir", EMPTY_HASH),
        ("ignore_symlink", EMPTY_HASH),
        (
            "dir_is_vendor",
            "h1:XduFAgX/GaspZa8Jv4pfzoGEzNaU/r88PiCunijw5ok=",
        ),
    ] {
        let work = tempfile::tempdir().expect("tempdir");
        let mut dir = work.path().join("m");
        std::fs::create_dir_all(&dir).expect("mkdir");
        match desc {
            "ignore_empty_dir" => std::fs::create_dir(dir.join("empty")).expect("mkdir"),
            "ignore_symlink" => {
                std::os::unix::fs::symlink(&dir, dir.join("link")).expect("symlink")
            }
            _ => {
                dir = dir.join("vendor");
                std::fs::create_dir(&dir).expect("mkdir");
                std::fs::write(dir.join("go.mod"), "module example.com/m\n\ngo 1.13\n")
                    .expect("write");
            }
        }
        let cfg = work.path().join("modgate.toml");
        std::fs::write(&cfg, config(&work.path().join("store"))).expect("write config");
        let (ok, text) = publish_dir_as(&cfg, &dir, b"example.com/m", "v1.0.0");
        problems.extend(judge(
            &format!("create_from_dir special {desc}"),
            &Expect::Hash(Some(hash.to_owned())),
            ok,
            &text,
        ));
    }
    assert!(
        problems.is_empty(),
        "{} x/mod size cases disagree:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
