//! Fixture modules and the GOPROXY tree that serves them.
//!
//! Everything is built here, in Rust, from file contents: zips with the `zip` crate, `.info`
//! JSON, `list` files. No hash is computed by hand: the go command, run against these trees, is
//! the judge of whether they are right (see `go_client::fixture_tree_is_valid_for_the_go_command`).

use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

pub mod rawzip;

use zip::CompressionMethod;
use zip::write::SimpleFileOptions;

/// Case-escapes a module path or version the way the go command does (`module.EscapePath`):
/// every upper-case letter becomes `!` followed by its lower-case form.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            out.push('!');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The URL path (leading `/`, no proxy prefix) of a versioned artifact: `ext` is `info`, `mod` or `zip`.
pub fn artifact_path(module: &str, version: &str, ext: &str) -> String {
    format!("/{}/@v/{}.{ext}", escape(module), escape(version))
}

/// The URL path of a module's version list.
pub fn list_path(module: &str) -> String {
    format!("/{}/@v/list", escape(module))
}

/// One version of one module, as a proxy serves it.
#[derive(Clone)]
pub struct ModuleVersion {
    pub module: String,
    pub version: String,
    /// RFC 3339 commit time for `.info`.
    pub time: String,
    /// The `.mod` body.
    pub go_mod: Vec<u8>,
    /// The `.zip` body.
    pub zip: Vec<u8>,
    /// Whether the version appears in `@v/list` (tagged versions do, pseudo-versions do not).
    pub listed: bool,
}

impl ModuleVersion {
    /// A module version whose zip holds `go.mod` (when `go_mod` is given) plus `files`. The `.mod`
    /// is that go.mod, or `module <path>\n` for a module without one (GOPROXY.md §1).
    pub fn new(module: &str, version: &str, go_mod: Option<&str>, files: &[(&str, &[u8])]) -> Self {
        let prefix = format!("{module}@{version}/");
        let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
        if let Some(gm) = go_mod {
            entries.push((format!("{prefix}go.mod"), gm.as_bytes().to_vec()));
        }
        for (name, body) in files {
            entries.push((format!("{prefix}{name}"), body.to_vec()));
        }
        let refs: Vec<(&str, &[u8])> = entries
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        Self {
            module: module.to_string(),
            version: version.to_string(),
            time: "2024-03-01T12:00:00Z".to_string(),
            go_mod: go_mod.map_or_else(
                || format!("module {module}\n").into_bytes(),
                |g| g.as_bytes().to_vec(),
            ),
            zip: zip_of(&refs, CompressionMethod::Deflated),
            listed: true,
        }
    }

    pub fn with_time(mut self, time: &str) -> Self {
        self.time = time.to_string();
        self
    }

    pub fn unlisted(mut self) -> Self {
        self.listed = false;
        self
    }

    pub fn info_json(&self) -> Vec<u8> {
        format!(
            "{{\"Version\":\"{}\",\"Time\":\"{}\"}}\n",
            self.version, self.time
        )
        .into_bytes()
    }
}

/// A zip with exactly these entries, in this order, names taken verbatim (so tests can build
/// broken zips too).
pub fn zip_of(entries: &[(&str, &[u8])], method: CompressionMethod) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default()
        .compression_method(method)
        .unix_permissions(0o644);
    for (name, body) in entries {
        w.start_file(*name, opts).expect("zip: start entry");
        w.write_all(body).expect("zip: write entry");
    }
    w.finish().expect("zip: finish").into_inner()
}

/// One file a proxy serves: its content type and bytes.
#[derive(Clone)]
pub struct Artifact {
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

pub const TEXT: &str = "text/plain; charset=utf-8";
pub const JSON: &str = "application/json";
pub const ZIP: &str = "application/zip";

/// A GOPROXY tree: URL path (with leading `/`) → artifact.
#[derive(Clone, Default)]
pub struct Tree {
    pub files: BTreeMap<String, Artifact>,
    /// The versions of each module, in insertion order, to build `list` bodies from.
    versions: BTreeMap<String, Vec<ModuleVersion>>,
}

impl Tree {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, versions: impl IntoIterator<Item = ModuleVersion>) -> Self {
        for v in versions {
            self.add(v);
        }
        self
    }

    /// Adds a version: `.info`, `.mod`, `.zip`, and rebuilds the module's `list`.
    pub fn add(&mut self, v: ModuleVersion) {
        let (m, ver) = (v.module.clone(), v.version.clone());
        self.put(&artifact_path(&m, &ver, "info"), JSON, v.info_json());
        self.put(&artifact_path(&m, &ver, "mod"), TEXT, v.go_mod.clone());
        self.put(&artifact_path(&m, &ver, "zip"), ZIP, v.zip.clone());
        let all = self.versions.entry(m.clone()).or_default();
        all.push(v);
        let list: String = all
            .iter()
            .filter(|v| v.listed)
            .map(|v| format!("{}\n", v.version))
            .collect();
        self.put(&list_path(&m), TEXT, list.into_bytes());
    }

    pub fn put(&mut self, path: &str, content_type: &'static str, body: Vec<u8>) {
        self.files
            .insert(path.to_string(), Artifact { content_type, body });
    }

    pub fn get(&self, path: &str) -> Option<&Artifact> {
        self.files.get(path)
    }

    /// The bytes at `path`; panics with the path if the tree does not have it.
    pub fn bytes(&self, path: &str) -> &[u8] {
        &self
            .get(path)
            .unwrap_or_else(|| panic!("fixture tree has no {path}"))
            .body
    }

    /// Every version added, in insertion order.
    pub fn all_versions(&self) -> Vec<&ModuleVersion> {
        self.versions.values().flatten().collect()
    }

    /// Writes the tree to `dir` as a GOPROXY directory (usable as `GOPROXY=file://dir`).
    pub fn write_to(&self, dir: &Path) -> PathBuf {
        for (p, a) in &self.files {
            let dest = dir.join(p.trim_start_matches('/'));
            std::fs::create_dir_all(dest.parent().expect("artifact paths have a parent"))
                .expect("mkdir");
            std::fs::write(&dest, &a.body).expect("write fixture file");
        }
        dir.to_path_buf()
    }
}

pub const LIB: &str = "example.com/fixture/lib";
pub const LIB_V2: &str = "example.com/fixture/lib/v2";
pub const LEGACY: &str = "example.com/fixture/legacy";
pub const UPPER: &str = "example.com/Fixture/Upper";
/// A `gopkg.in` path: its major version is the `.v2` suffix.
pub const GOPKG: &str = "gopkg.in/fixture.v2";
/// A module with no tags at all: only a pseudo-version, found through `@latest`.
pub const UNTAGGED: &str = "example.com/fixture/untagged";
pub const UNTAGGED_PSEUDO: &str = "v0.0.0-20240102030405-abcdefabcdef";
/// A pseudo-version of `LIB` one patch above v1.1.0 (form `vX.Y.(Z+1)-0.yyyymmddhhmmss-rev`).
pub const LIB_PSEUDO: &str = "v1.1.1-0.20240315101112-0123456789ab";

fn lib_go_mod(module: &str, retract: bool) -> String {
    let mut s = format!("module {module}\n\ngo 1.21\n");
    if retract {
        s.push_str("\n// v1.0.1 shipped a broken Version constant.\nretract v1.0.1\n");
    }
    s
}

fn go_file(pkg: &str, version: &str) -> Vec<u8> {
    format!("// Package {pkg} is a test fixture.\npackage {pkg}\n\n// Version is the fixture's version.\nconst Version = \"{version}\"\n").into_bytes()
}

/// The standard fixture modules (issue item 1): several versions of `LIB` including a
/// pre-release, a retracted version and a pseudo-version, a `/v2` module, a module without
/// go.mod at `v2.0.0+incompatible`, and a module path with upper-case letters.
pub fn standard_versions() -> Vec<ModuleVersion> {
    let lib = |version: &str, retract: bool, time: &str| {
        ModuleVersion::new(
            LIB,
            version,
            Some(&lib_go_mod(LIB, retract)),
            &[
                ("lib.go", &go_file("lib", version)),
                (
                    "internal/helper/helper.go",
                    b"package helper\n\nfunc Answer() int { return 42 }\n",
                ),
                ("README.md", b"# lib\n"),
            ],
        )
        .with_time(time)
    };
    vec![
        lib("v1.0.0", false, "2024-01-01T00:00:00Z"),
        lib("v1.0.1", false, "2024-01-15T00:00:00Z"),
        lib("v1.1.0", true, "2024-02-01T00:00:00Z"),
        lib("v1.2.0-pre.1", true, "2024-04-01T00:00:00Z"),
        lib(LIB_PSEUDO, true, "2024-03-15T10:11:12Z").unlisted(),
        ModuleVersion::new(
            LIB_V2,
            "v2.0.0",
            Some(&lib_go_mod(LIB_V2, false)),
            &[("lib.go", &go_file("lib", "v2.0.0"))],
        )
        .with_time("2024-05-01T00:00:00Z"),
        ModuleVersion::new(
            LEGACY,
            "v2.0.0+incompatible",
            None,
            &[
                ("legacy.go", &go_file("legacy", "v2.0.0")),
                ("LICENSE", b"Public domain.\n"),
            ],
        )
        .with_time("2019-06-01T00:00:00Z"),
        ModuleVersion::new(
            UPPER,
            "v1.0.0",
            Some(&lib_go_mod(UPPER, false)),
            &[("upper.go", &go_file("upper", "v1.0.0"))],
        )
        .with_time("2024-06-01T00:00:00Z"),
        ModuleVersion::new(
            GOPKG,
            "v2.0.0",
            Some(&lib_go_mod(GOPKG, false)),
            &[("fixture.go", &go_file("fixture", "v2.0.0"))],
        )
        .with_time("2024-06-02T00:00:00Z"),
        ModuleVersion::new(
            UNTAGGED,
            UNTAGGED_PSEUDO,
            Some(&lib_go_mod(UNTAGGED, false)),
            &[("untagged.go", &go_file("untagged", UNTAGGED_PSEUDO))],
        )
        .with_time("2024-01-02T03:04:05Z")
        .unlisted(),
    ]
}

/// The standard versions, plus a branch name the upstream resolves: `master.info` → v1.1.0
/// (a non-canonical `.info` query, GOPROXY.md §1).
pub fn standard_tree() -> Tree {
    let mut t = Tree::new().with(standard_versions());
    let v110 = t.bytes(&artifact_path(LIB, "v1.1.0", "info")).to_vec();
    t.put(&artifact_path(LIB, "master", "info"), JSON, v110);
    let untagged = t
        .bytes(&artifact_path(UNTAGGED, UNTAGGED_PSEUDO, "info"))
        .to_vec();
    t.put(&format!("/{}/@latest", escape(UNTAGGED)), JSON, untagged);
    t
}

/// `module@version` for every standard fixture, as the go command takes them.
pub fn standard_queries() -> Vec<String> {
    standard_versions()
        .iter()
        .map(|v| format!("{}@{}", v.module, v.version))
        .collect()
}

/// A small deterministic PRNG (xorshift64*) for incompressible fixture content.
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            out.extend_from_slice(&self.0.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

/// A module version whose zip carries `size` bytes of incompressible content (stored, not
/// deflated), so that moving it takes measurable time.
pub fn bulky_version(module: &str, version: &str, size: usize, seed: u64) -> ModuleVersion {
    let prefix = format!("{module}@{version}/");
    let go_mod = format!("module {module}\n\ngo 1.21\n");
    let pkg = format!("package bulk\n\n// Seed identifies the content.\nconst Seed = {seed}\n");
    let blob = Noise::new(seed).bytes(size);
    let entries: Vec<(String, &[u8])> = vec![
        (format!("{prefix}go.mod"), go_mod.as_bytes()),
        (format!("{prefix}bulk.go"), pkg.as_bytes()),
        (format!("{prefix}testdata/blob.bin"), &blob),
    ];
    let refs: Vec<(&str, &[u8])> = entries.iter().map(|(n, b)| (n.as_str(), *b)).collect();
    let zip = zip_of(&refs, CompressionMethod::Stored);
    ModuleVersion {
        module: module.to_string(),
        version: version.to_string(),
        time: "2024-07-01T00:00:00Z".to_string(),
        go_mod: go_mod.into_bytes(),
        zip,
        listed: true,
    }
}
