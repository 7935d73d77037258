//! Transparency to the go command: the same commands run twice, straight at a hermetic upstream
//! and through modgate in front of it, must end the same way (exit status, stdout, the
//! decisions go prints, go.mod and go.sum).
//!
//! Upstream flavours, each a [`FakeUpstream`] over the same fixture modules:
//! - **public**: `list` without pseudo-versions, `@latest` answered (the newest pseudo-version
//!   of an untagged module), 404 or 410 `not found: …` for unknown modules;
//! - **filtering**: `@latest` always 404, pseudo-versions in `list`, 403 `not available` for
//!   path prefixes of modules and for one version, 400 for a host it will not serve;
//! - lists of the two with `,` and `|`, one of them down.
//!
//! Each flavour is one test with one modgate, so its storage fills as the commands run, as a
//! real cache does; a fresh go environment (module cache, scratch module) runs each sequence.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;

use crate::fixtures::{JSON, ModuleVersion, TEXT, Tree, escape};
use crate::harness::{GoEnv, Modgate, RawResponse, Setup, free_port, get};
use crate::upstream::{FakeUpstream, Override};

const TAGGED: &str = "example.com/tx/tagged";
const UNTAGGED: &str = "example.com/tx/untagged";
const INCOMPAT: &str = "example.com/tx/incompat";
const RETRACT: &str = "example.com/tx/retract";
const PRE: &str = "example.com/tx/pre";
const MAJOR: &str = "example.com/tx/major";
const MAJOR_V2: &str = "example.com/tx/major/v2";
const OUTER: &str = "example.com/tx/outer";
/// A module inside [`OUTER`]'s path, with a package deep inside it.
const INNER: &str = "example.com/tx/outer/inner";
const DEEP_PACKAGE: &str = "example.com/tx/outer/inner/pkg/deep";
/// Known to no upstream: the public flavour answers 410 for it.
const MISSING: &str = "example.com/tx/missing";
/// A host the filtering flavour will not serve (400).
const BLOCKED: &str = "blocked.example/m";
/// The version of [`TAGGED`] the filtering flavour refuses (403).
const REFUSED_VERSION: &str = "v1.0.1";

const UNTAGGED_OLD: &str = "v0.0.0-20240101000000-aaaaaaaaaaaa";
const UNTAGGED_NEW: &str = "v0.0.0-20240601000000-bbbbbbbbbbbb";
/// Published upstream while a test runs.
const UNTAGGED_NEWER: &str = "v0.0.0-20241201000000-cccccccccccc";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flavour {
    Public,
    Filtering,
}

fn go_mod(module: &str, extra: &str) -> String {
    format!("module {module}\n\ngo 1.21\n{extra}")
}

fn package(module: &str, version: &str) -> Vec<u8> {
    let name = module
        .rsplit('/')
        .find(|e| !(e.starts_with('v') && e[1..].bytes().all(|b| b.is_ascii_digit())))
        .unwrap_or("p");
    format!("package {name}\n\nconst Version = \"{version}\"\n").into_bytes()
}

/// One version: a root package, a go.mod (unless `+incompatible`), a time.
fn version(module: &str, version: &str, time: &str, extra_go_mod: &str) -> ModuleVersion {
    let file = format!("{}.go", module.rsplit('/').next().unwrap_or("p"));
    let body = package(module, version);
    let gm = go_mod(module, extra_go_mod);
    let has_go_mod = !version.ends_with("+incompatible");
    ModuleVersion::new(
        module,
        version,
        has_go_mod.then_some(gm.as_str()),
        &[(file.as_str(), body.as_slice())],
    )
    .with_time(time)
}

/// Every fixture version. Pseudo-versions are listed only by the filtering flavour.
fn versions(flavour: Flavour) -> Vec<ModuleVersion> {
    let list_pseudo = |v: ModuleVersion| {
        if flavour == Flavour::Filtering {
            v
        } else {
            v.unlisted()
        }
    };
    let inner_deep = b"package deep\n\nconst Deep = true\n";
    vec![
        version(TAGGED, "v1.0.0", "2024-01-01T00:00:00Z", ""),
        version(TAGGED, "v1.0.1", "2024-01-15T00:00:00Z", ""),
        version(TAGGED, "v1.1.0", "2024-02-01T00:00:00Z", ""),
        version(TAGGED, "v1.2.0-rc.1", "2024-04-01T00:00:00Z", ""),
        list_pseudo(version(
            TAGGED,
            "v1.1.1-0.20240301000000-0123456789ab",
            "2024-03-01T00:00:00Z",
            "",
        )),
        list_pseudo(version(UNTAGGED, UNTAGGED_OLD, "2024-01-01T00:00:00Z", "")),
        list_pseudo(version(UNTAGGED, UNTAGGED_NEW, "2024-06-01T00:00:00Z", "")),
        version(INCOMPAT, "v1.0.0", "2019-01-01T00:00:00Z", ""),
        version(INCOMPAT, "v2.0.0+incompatible", "2019-06-01T00:00:00Z", ""),
        version(RETRACT, "v1.0.0", "2024-01-01T00:00:00Z", ""),
        version(
            RETRACT,
            "v1.1.0",
            "2024-02-01T00:00:00Z",
            "\n// v1.1.0 was tagged by mistake.\nretract v1.1.0\n",
        ),
        version(PRE, "v0.1.0-alpha.1", "2024-01-01T00:00:00Z", ""),
        version(PRE, "v0.2.0-beta.1", "2024-02-01T00:00:00Z", ""),
        version(MAJOR, "v1.0.0", "2023-01-01T00:00:00Z", ""),
        version(MAJOR, "v1.1.0", "2023-06-01T00:00:00Z", ""),
        version(MAJOR_V2, "v2.0.0", "2024-01-01T00:00:00Z", ""),
        version(MAJOR_V2, "v2.1.0", "2024-03-01T00:00:00Z", ""),
        version(OUTER, "v1.0.0", "2024-01-01T00:00:00Z", ""),
        ModuleVersion::new(
            INNER,
            "v1.0.0",
            Some(&go_mod(INNER, "")),
            &[
                ("inner.go", &package(INNER, "v1.0.0")),
                ("pkg/deep/deep.go", inner_deep),
            ],
        )
        .with_time("2024-02-01T00:00:00Z"),
    ]
}

/// What the public flavour answers for `@latest`: the version the go command would pick
/// (releases, then pre-releases, then the newest pseudo-version).
fn public_latest(tree: &mut Tree) {
    let mut by_module: std::collections::BTreeMap<String, Vec<ModuleVersion>> =
        std::collections::BTreeMap::new();
    for v in tree.all_versions() {
        by_module
            .entry(v.module.clone())
            .or_default()
            .push(v.clone());
    }
    for (module, vs) in by_module {
        let rank = |v: &ModuleVersion| {
            let pseudo = v.version.matches('-').count() >= 2 && v.version.len() > 30;
            let pre = v.version.contains('-') && !pseudo;
            (
                u8::from(!pseudo) + u8::from(!pseudo && !pre),
                v.time.clone(),
            )
        };
        let best = vs.iter().max_by_key(|v| rank(v)).expect("versions");
        tree.put(
            &format!("/{}/@latest", escape(&module)),
            JSON,
            best.info_json(),
        );
    }
}

/// The module path in a request path (`…/@v/…` or `…/@latest`), unescaped enough for the
/// fixture (no upper case).
fn module_of(path: &str) -> Option<&str> {
    let path = path.strip_prefix('/')?;
    path.split_once("/@v/")
        .or_else(|| path.split_once("/@latest").map(|(m, _)| (m, "")))
        .map(|(m, _)| m)
}

fn answer(status: u16, text: &str) -> Option<Override> {
    Some(Override {
        status,
        content_type: TEXT.into(),
        body: Bytes::from(format!("{text}\n")),
    })
}

/// Starts an upstream of `flavour` over the fixture.
fn start(flavour: Flavour) -> FakeUpstream {
    let mut tree = Tree::new().with(versions(flavour));
    if flavour == Flavour::Public {
        public_latest(&mut tree);
    }
    let modules: BTreeSet<String> = tree
        .all_versions()
        .iter()
        .map(|v| v.module.clone())
        .collect();
    let up = FakeUpstream::start(tree);
    match flavour {
        Flavour::Public => up.set_fallback(|path| {
            let module = module_of(path)?;
            if module == MISSING {
                return answer(410, &format!("not found: module {module}: gone"));
            }
            answer(
                404,
                &format!("not found: module {module}: no matching versions"),
            )
        }),
        Flavour::Filtering => {
            for ext in ["info", "mod", "zip"] {
                up.override_path(
                    &format!("/{TAGGED}/@v/{REFUSED_VERSION}.{ext}"),
                    403,
                    TEXT,
                    "This module version is not available.\n",
                );
            }
            up.set_fallback(move |path| {
                let module = module_of(path)?;
                if module.starts_with("blocked.example/") {
                    return answer(400, "Go module host not permitted");
                }
                let is_prefix = modules
                    .iter()
                    .any(|m| m.len() > module.len() && m.starts_with(&format!("{module}/")));
                if is_prefix && !modules.contains(module) {
                    return answer(403, "This module version is not available.");
                }
                None
            });
        }
    }
    up
}

/// How one go command ended, as far as the go command's conclusions go.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    success: bool,
    stdout: String,
    /// The `go: added/upgraded/downgraded/removed …` lines, sorted.
    decisions: Vec<String>,
    go_mod: String,
    go_sum: String,
}

fn run(env: &GoEnv, args: &[&str]) -> (Outcome, String) {
    let out = env.output(args);
    let root = env.work();
    let root = root.parent().expect("the go environment's root");
    let normalize =
        |s: &[u8]| String::from_utf8_lossy(s).replace(root.to_str().expect("utf-8"), "$ROOT");
    let stderr = normalize(&out.stderr);
    let mut decisions: Vec<String> = stderr
        .lines()
        .filter(|l| {
            [
                "go: added ",
                "go: upgraded ",
                "go: downgraded ",
                "go: removed ",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        })
        .map(str::to_owned)
        .collect();
    decisions.sort();
    let outcome = Outcome {
        success: out.status.success(),
        stdout: normalize(&out.stdout),
        decisions,
        go_mod: env.read_work("go.mod"),
        go_sum: env.read_work("go.sum"),
    };
    (outcome, stderr)
}

/// Runs each command of `commands` in order, in a fresh go environment against `direct` and
/// another against `proxied`, and describes every step that ended differently.
fn differences(direct: &str, proxied: &str, commands: &[Vec<String>]) -> Vec<String> {
    let (a, b) = (GoEnv::new(direct), GoEnv::new(proxied));
    let mut problems = Vec::new();
    for cmd in commands {
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let (want, want_err) = run(&a, &args);
        let (got, got_err) = run(&b, &args);
        if want != got {
            problems.push(format!(
                "`go {}`:\n  direct:  {want:?}\n    stderr: {want_err}\n  modgate: {got:?}\n    stderr: {got_err}",
                cmd.join(" ")
            ));
        }
    }
    problems
}

fn go(args: &str) -> Vec<String> {
    args.split_whitespace().map(str::to_owned).collect()
}

/// The command sequence for one module: version queries, then the queries `go get` takes,
/// then everything the scratch module needs.
fn sequence(module: &str, major: &str) -> Vec<Vec<String>> {
    vec![
        go(&format!("list -m -versions {module}")),
        go(&format!("list -m -json {module}@latest")),
        go(&format!("get {module}@{major}")),
        go(&format!("get {module}@patch")),
        go(&format!("get {module}@upgrade")),
        go(&format!("get {module}@latest")),
        go("mod download all"),
    ]
}

/// Every case for one upstream list: a sequence per fixture module, then a package deep in a
/// nested module (path-prefix probing), a module no upstream knows, and a refused host.
fn cases() -> Vec<Vec<Vec<String>>> {
    let mut cases: Vec<Vec<Vec<String>>> = [
        (TAGGED, "v1"),
        (UNTAGGED, "v0"),
        (INCOMPAT, "v2"),
        (RETRACT, "v1"),
        (PRE, "v0"),
        (MAJOR, "v1"),
        (MAJOR_V2, "v2"),
        (OUTER, "v1"),
    ]
    .iter()
    .map(|(m, major)| sequence(m, major))
    .collect();
    cases.push(vec![
        go(&format!("get {DEEP_PACKAGE}@latest")),
        go("mod download all"),
    ]);
    cases.push(vec![
        go(&format!("get {TAGGED}@v1.0.0")),
        go(&format!("get {TAGGED}@{REFUSED_VERSION}")),
    ]);
    cases.push(vec![
        go(&format!("get {MISSING}@latest")),
        go(&format!("list -m -versions {MISSING}")),
    ]);
    cases.push(vec![go(&format!("get {BLOCKED}@latest"))]);
    cases
}

/// modgate in front of `goproxy` (no retries: the go command does not retry either).
fn modgate(goproxy: &str, storage: &Path) -> Modgate {
    let mut setup = Setup::new(storage, Some(goproxy));
    setup.upstream_retries = 0;
    setup.upstream_timeout = "5s".into();
    Modgate::start(setup)
}

fn assert_transparent(goproxy: &str) {
    let storage = tempfile::tempdir().expect("tempdir");
    let mg = modgate(goproxy, storage.path());
    let mut problems = Vec::new();
    for case in cases() {
        problems.extend(differences(goproxy, &mg.url(), &case));
    }
    assert!(
        problems.is_empty(),
        "GOPROXY={goproxy}: {} commands ended differently through modgate:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// An address nothing listens on: connections are refused.
fn down() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

#[test]
fn transparent_in_front_of_a_public_style_proxy() {
    let up = start(Flavour::Public);
    assert_transparent(&up.url());
}

#[test]
fn transparent_in_front_of_a_filtering_proxy() {
    let up = start(Flavour::Filtering);
    assert_transparent(&up.url());
}

#[test]
fn transparent_in_front_of_a_list_of_both() {
    let (public, filtering) = (start(Flavour::Public), start(Flavour::Filtering));
    assert_transparent(&format!("{},{}", filtering.url(), public.url()));
}

#[test]
fn transparent_when_the_first_of_a_pipe_list_is_down() {
    let filtering = start(Flavour::Filtering);
    assert_transparent(&format!("{}|{}", down(), filtering.url()));
}

#[test]
fn transparent_when_the_first_of_a_comma_list_is_down() {
    let public = start(Flavour::Public);
    assert_transparent(&format!("{},{}", down(), public.url()));
}

// ---------------------------------------------------------------------------------------------
// Regressions: one test per problem the harness was built for.

/// An untagged module's `@latest` follows the upstream once a newer commit is published, even
/// though modgate stored an older pseudo-version: from the upstream's `@latest` (public) or,
/// when the upstream has none, from the pseudo-versions in its `list` (filtering).
#[test]
fn cached_pseudo_versions_never_hide_a_newer_upstream_latest() {
    for flavour in [Flavour::Public, Flavour::Filtering] {
        let up = start(flavour);
        let storage = tempfile::tempdir().expect("tempdir");
        let mut setup = Setup::new(storage.path(), Some(&up.url()));
        setup.list_ttl = "1s".into();
        let mg = Modgate::start(setup);
        let latest = |goproxy: &str| {
            let out =
                GoEnv::new(goproxy).run(&["list", "-m", "-json", &format!("{UNTAGGED}@latest")]);
            let doc: serde_json::Value = serde_json::from_str(&out).expect("go list -json");
            doc["Version"].as_str().expect("Version").to_owned()
        };
        GoEnv::new(&mg.url()).run(&["get", &format!("{UNTAGGED}@latest")]);
        assert_eq!(latest(&mg.url()), UNTAGGED_NEW, "{flavour:?}: stored");

        up.with_tree(|tree| {
            let mut v = version(UNTAGGED, UNTAGGED_NEWER, "2024-12-01T00:00:00Z", "");
            if flavour == Flavour::Public {
                v = v.unlisted();
            }
            tree.add(v);
            if flavour == Flavour::Public {
                public_latest(tree);
            }
        });
        std::thread::sleep(Duration::from_millis(1200)); // list_ttl
        assert_eq!(latest(&up.url()), UNTAGGED_NEWER, "{flavour:?}: direct");
        assert_eq!(
            latest(&mg.url()),
            UNTAGGED_NEWER,
            "{flavour:?}: through modgate"
        );
    }
}

fn body(r: &RawResponse) -> String {
    String::from_utf8_lossy(&r.body).trim_end().to_owned()
}

/// 400 and 403 from the upstream reach the client with their status and reason (a 502 would
/// tell the go command something else); 404 and 410 become 404 with the upstream's reason.
#[test]
fn upstream_refusals_and_not_founds_keep_their_status_and_reason() {
    let filtering = start(Flavour::Filtering);
    let storage = tempfile::tempdir().expect("tempdir");
    let mg = Modgate::start(Setup::new(storage.path(), Some(&filtering.url())));
    let r = get(&mg, "/example.com/tx/@v/list");
    assert_eq!(r.status, 403, "{}", body(&r));
    assert_eq!(
        body(&r),
        "example.com/tx/@v/list: This module version is not available."
    );
    let r = get(&mg, &format!("/{TAGGED}/@v/{REFUSED_VERSION}.zip"));
    assert_eq!(r.status, 403, "{}", body(&r));
    let r = get(&mg, &format!("/{BLOCKED}/@latest"));
    assert_eq!(r.status, 400, "{}", body(&r));
    assert_eq!(
        body(&r),
        format!("{BLOCKED}/@latest: Go module host not permitted")
    );
    let r = get(&mg, &format!("/{UNTAGGED}/@latest"));
    assert_eq!(
        r.status,
        404,
        "the filtering upstream has no @latest: {}",
        body(&r)
    );

    let public = start(Flavour::Public);
    let storage = tempfile::tempdir().expect("tempdir");
    let mg = Modgate::start(Setup::new(storage.path(), Some(&public.url())));
    let r = get(&mg, &format!("/{MISSING}/@v/list"));
    assert_eq!(r.status, 404, "410 becomes 404: {}", body(&r));
    assert_eq!(
        body(&r),
        format!("{MISSING}/@v/list: not found: module {MISSING}: gone")
    );
    // The go command's own answer for the deep package, as direct: prefix probing works.
    let env = GoEnv::new(&mg.url());
    env.run(&["get", &format!("{DEEP_PACKAGE}@latest")]);
}

/// Error texts name the file as the client asked for it (`module/@v/file`, escaped), and an
/// upstream by its host only: not its credentials, not its path.
#[test]
fn errors_name_the_path_asked_and_the_upstream_host_only() {
    let up = FakeUpstream::start(Tree::new());
    up.set_fallback(|path| {
        if path.contains("/slow/") {
            return None;
        }
        answer(500, "internal trouble")
    });
    up.set_delay("/slow/@v/list", Duration::from_secs(3));
    let port = up.url().rsplit(':').next().expect("port").to_owned();
    let secret_url = format!("http://deploy:s3cret@127.0.0.1:{port}/internal/mirror");
    let storage = tempfile::tempdir().expect("tempdir");
    let mut setup = Setup::new(storage.path(), Some(&secret_url));
    setup.upstream_retries = 0;
    setup.upstream_timeout = "1s".into();
    let mg = Modgate::start(setup);
    let host = format!("127.0.0.1:{port}");
    for (path, what) in [
        (
            "/example.com/!upper/m/@v/list",
            "example.com/!upper/m/@v/list",
        ),
        (
            "/example.com/m/@v/v1.0.0.info",
            "example.com/m/@v/v1.0.0.info",
        ),
        (
            "/example.com/m/@v/v1.0.0.mod",
            "example.com/m/@v/v1.0.0.mod",
        ),
        (
            "/example.com/m/@v/v1.0.0.zip",
            "example.com/m/@v/v1.0.0.info",
        ),
        ("/example.com/m/@latest", "example.com/m/@latest"),
        (
            "/example.com/m/@v/master.info",
            "example.com/m/@v/master.info",
        ),
    ] {
        let r = get(&mg, path);
        let text = body(&r);
        assert_eq!(r.status, 502, "{path}: {text}");
        assert_eq!(
            text,
            format!(
                "{what}: upstream {host}: answered 500 Internal Server Error: internal trouble"
            ),
            "{path}"
        );
    }
    let r = get(&mg, "/example.com/slow/@v/list");
    assert_eq!(r.status, 504, "{}", body(&r));
    assert_eq!(
        body(&r),
        format!("example.com/slow/@v/list: upstream {host}: timed out after 1s")
    );
    let logs = std::fs::read_to_string(mg.log_path("stdout")).unwrap_or_default();
    assert!(!logs.contains("s3cret"), "credentials in the log: {logs}");
}

/// Stored files are readable as the umask allows (0644 under the usual 022): a static file
/// server running as another user can serve the tree, as the docs say.
#[test]
fn stored_files_follow_the_umask() {
    let up = start(Flavour::Public);
    let storage = tempfile::tempdir().expect("tempdir");
    let mg = Modgate::start(Setup::new(storage.path(), Some(&up.url())));
    let r = get(&mg, &format!("/{TAGGED}/@v/v1.0.0.zip"));
    assert_eq!(r.status, 200);
    let status = std::fs::read_to_string(format!("/proc/{}/status", mg.pid())).expect("status");
    let umask = status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .map(|m| u32::from_str_radix(m.trim(), 8).expect("octal umask"))
        .expect("Umask line");
    let files = crate::harness::walk(storage.path());
    assert!(files.len() >= 4, "{files:?}");
    for f in files {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&f)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o666 & !umask, "{} (umask {umask:03o})", f.display());
    }
}

/// `list` and `@latest` answers are reused for `list_ttl` (and not-founds for
/// `not_found_ttl`): a thousand requests in a second reach the upstream once each.
#[test]
fn list_and_latest_caching_bounds_upstream_traffic() {
    for flavour in [Flavour::Public, Flavour::Filtering] {
        let up = start(flavour);
        let storage = tempfile::tempdir().expect("tempdir");
        let mg = Modgate::start(Setup::new(storage.path(), Some(&up.url())));
        let latest = format!("/{UNTAGGED}/@latest");
        let list = format!("/{UNTAGGED}/@v/list");
        let started = std::time::Instant::now();
        std::thread::scope(|s| {
            for _ in 0..10 {
                s.spawn(|| {
                    for i in 0..100 {
                        let path = if i % 2 == 0 { &latest } else { &list };
                        let r = get(&mg, path);
                        let want = if flavour == Flavour::Filtering && path == &latest {
                            404
                        } else {
                            200
                        };
                        assert_eq!(r.status, want, "{flavour:?} {path}: {}", body(&r));
                    }
                });
            }
        });
        let elapsed = started.elapsed();
        assert_eq!(
            up.hits(&latest),
            1,
            "{flavour:?}: 500 @latest in {elapsed:?}"
        );
        assert_eq!(up.hits(&list), 1, "{flavour:?}: 500 list in {elapsed:?}");
    }
}
