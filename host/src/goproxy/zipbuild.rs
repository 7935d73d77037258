//! Builds module zips exactly as the go command builds them, from a directory
//! ([`zip_from_dir`], `golang.org/x/mod/zip.CreateFromDir`) or from a git tree ([`zip_from_git`],
//! `cmd/go/internal/modfetch` `codeRepo.Zip` over `codehost` `gitRepo.ReadZip`).
//!
//! Both paths list candidate files their own way (module `dir`, module `git`) and then go through
//! one port of `zip.checkFiles` + `zip.Create` ([`check_files`], [`write`]): nested modules,
//! vendored packages (rules depending on the root go.mod's `go` line, module `gomod`), a root
//! `.hg_archival.txt`, symlinks and irregular files are left out; invalid names, case-fold
//! collisions, a file that is also a directory and the size limits fail the whole zip. The zip's
//! *content* (file set, names, bytes, so its `h1:` hash) is the go command's; the container bytes
//! (timestamps, compression) are not meant to be identical.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use modgate::goproxy::{path::ModulePath, zipbuild};
//! let module = ModulePath::parse("example.com/m")?;
//! let mut out = std::fs::File::create("/tmp/m.zip")?;
//! let built = zipbuild::zip_from_dir("./m".as_ref(), &module, "v1.0.0", &mut out)?;
//! println!("{} {}", built.zip_h1, built.mod_h1);
//! # Ok(()) }
//! ```

mod dir;
mod git;
mod gomod;

use std::collections::HashSet;
use std::io::{self, Read, Seek, Write};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::hash::{hash_go_mod, hash1};
use super::path::{ModulePath, check_file_path};
use super::semver;
use super::zipcheck::{MAX_GO_MOD, MAX_LICENSE, MAX_ZIP_FILE};

/// A module zip that was built and written, with what goes into go.sum and the `.mod` artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltZip {
    /// `h1:` hash of the zip's files (`<m> <v> h1:…` in go.sum).
    pub zip_h1: String,
    /// `h1:` hash of [`BuiltZip::go_mod`] (`<m> <v>/go.mod h1:…` in go.sum).
    pub mod_h1: String,
    /// The bytes to serve as `<v>.mod`: the module's go.mod as the go command reads it, or
    /// `module <path>\n` when the module has none (`modfetch.LegacyGoMod`).
    pub go_mod: Vec<u8>,
    /// Number of files in the zip.
    pub files: usize,
    /// Total uncompressed size of the files in bytes.
    pub size: u64,
}

/// Why a zip could not be built. The message is one line naming the file and the rule.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The module path and version do not go together (`module.Check`, canonical form,
    /// `+incompatible` rules). The client's fault.
    #[error("{module}@{version}: {reason}")]
    Version {
        /// Module path.
        module: String,
        /// Version as given.
        version: String,
        /// The rule broken.
        reason: String,
    },
    /// Files break module zip rules (invalid name, collision, go.mod case, size of go.mod or
    /// LICENSE): each file relative to the module root and its rule, all of them, as
    /// `x/mod/zip` reports them. The tree's fault.
    #[error("{}", super::zipcheck::ZipError::files(invalid))]
    Files {
        /// Path and rule of each invalid file, in the order found.
        invalid: Vec<(String, String)>,
    },
    /// The files to zip add up to more than 500 MiB (`zip.MaxZipFile`).
    #[error("module source tree too large (max size is {MAX_ZIP_FILE} bytes)")]
    TooLarge,
    /// The module's subdirectory does not exist at that commit.
    #[error("subdirectory {0:?} not found in the git tree")]
    SubdirNotFound(String),
    /// Reading the repository failed (object missing, corrupt, bad revision).
    #[error("git: {0}")]
    Git(String),
    /// Reading a file or writing the zip failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl BuildError {
    /// One invalid file (the message is made one line by [`super::zipcheck::ZipError::files`]).
    fn file(path: &str, rule: impl Into<String>) -> Self {
        Self::Files {
            invalid: vec![(path.to_owned(), rule.into())],
        }
    }

    fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into().replace(['\n', '\r'], " "),
            source,
        }
    }

    fn git(e: impl std::fmt::Display) -> Self {
        Self::Git(e.to_string().replace(['\n', '\r'], " "))
    }
}

/// Builds the zip of `module@version` from the directory `dir`, as
/// `golang.org/x/mod/zip.CreateFromDir` does, writing it to `out`.
///
/// `.git`, `.hg`, `.svn` and `.bzr` directories and subdirectories holding a `go.mod` (even a
/// symlinked one, as Go's walk sees it) are skipped; symlinks and other irregular files are left
/// out without a name check (Go's `listFilesInDir` drops them before checking names). A missing
/// go.mod is not added to the zip; [`BuiltZip::go_mod`] is then `module <path>\n`.
pub fn zip_from_dir<W: Write + Seek>(
    dir: &Path,
    module: &ModulePath,
    version: &str,
    out: &mut W,
) -> Result<BuiltZip, BuildError> {
    check_module_version(module, version)?;
    let files = dir::list(dir)?;
    let checked = check_files(files, &mut |_| unreachable_source())?;
    check_incompatible(module, version, checked.has_go_mod)?;
    let go_mod = match checked.root_go_mod() {
        Some(data) => data,
        None => legacy_go_mod(module),
    };
    write(checked, module, version, go_mod, out)
}

/// Builds the zip of `module@version` from the git repository at `repo` (bare or not), at
/// `commit` (a full hex object id, or a reference name such as `refs/tags/v1.0.0`), for the
/// module in `subdir` (`""` for the repository root; no leading or trailing slash needed), as the
/// go command does in direct mode.
///
/// Files are read as `git archive` with `export-subst`/`export-ignore` off: other
/// `.gitattributes` conversions (`eol`, `text`, `ident`, `working-tree-encoding`) are applied,
/// with `core.autocrlf=input` and `core.eol=lf`, from the attributes of the tree itself (plus the
/// repository's `info/attributes`); external filter drivers are never run. Nothing is skipped for
/// being a VCS directory; symlinks are name-checked, then left out. A module in a subdirectory
/// gets the repository root's `LICENSE` (its raw blob) when it has no entry named `LICENSE`.
/// [`BuiltZip::go_mod`] is the raw blob of `<subdir>/go.mod` (no attributes applied, as
/// `git cat-file`), or `module <path>\n` when there is none.
///
/// Choosing `subdir` (including the `/vN` major-version subdirectory) and checking the go.mod
/// module path are the caller's job (`codeRepo.findDir`).
pub fn zip_from_git<W: Write + Seek>(
    repo: &Path,
    commit: &str,
    subdir: &str,
    module: &ModulePath,
    version: &str,
    out: &mut W,
) -> Result<BuiltZip, BuildError> {
    check_module_version(module, version)?;
    let mut tree = git::GitTree::open(repo, commit, subdir)?;
    let files = tree.list()?;
    let raw_go_mod = tree.raw_go_mod()?;
    // canUseIncompatible: a module in a subdirectory has a go.mod by definition.
    let in_subdir = !subdir.trim_matches('/').is_empty();
    check_incompatible(module, version, raw_go_mod.is_some() || in_subdir)?;
    let checked = check_files(files, &mut |id| tree.worktree_blob(id))?;
    let go_mod = raw_go_mod.unwrap_or_else(|| legacy_go_mod(module));
    write(checked, module, version, go_mod, out)
}

/// `modfetch.LegacyGoMod`: a valid module path never needs `modfile.AutoQuote`'s quotes.
fn legacy_go_mod(module: &ModulePath) -> Vec<u8> {
    format!("module {module}\n").into_bytes()
}

/// `zip.Create`'s preamble: a canonical version that fits the module path (`module.Check`).
fn check_module_version(module: &ModulePath, version: &str) -> Result<(), BuildError> {
    let err = |reason: String| BuildError::Version {
        module: module.to_string(),
        version: version.to_owned(),
        reason,
    };
    // module.CanonicalVersion: semver.Canonical, keeping "+incompatible".
    let canonical = semver::canonical_semver(version).map(|c| {
        if semver::build(version) == "+incompatible" {
            c + "+incompatible"
        } else {
            c
        }
    });
    if canonical.as_deref() != Some(version) {
        return Err(err(format!(
            "version {version:?} is not canonical (should be {:?})",
            canonical.unwrap_or_default()
        )));
    }
    module.version_problem(version).map_err(err)?;
    Ok(())
}

/// `codeRepo.convert`'s `+incompatible` rules: only for major v2+ and only without a go.mod.
fn check_incompatible(
    module: &ModulePath,
    version: &str,
    has_go_mod: bool,
) -> Result<(), BuildError> {
    if semver::build(version) != "+incompatible" {
        return Ok(());
    }
    let err = |reason: &str| BuildError::Version {
        module: module.to_string(),
        version: version.to_owned(),
        reason: reason.to_owned(),
    };
    let major = semver::major(version);
    if major == "v0" || major == "v1" {
        return Err(err(&format!(
            "+incompatible suffix not allowed: major version {major} is compatible"
        )));
    }
    if has_go_mod {
        return Err(err(
            "+incompatible suffix not allowed: module contains a go.mod file, so module path must match major version",
        ));
    }
    Ok(())
}

/// A candidate file, as listed by a source, before `checkFiles`.
#[derive(Debug, Clone)]
struct Candidate {
    /// Slash-separated path relative to the module root (lossy if not UTF-8).
    path: String,
    /// The path was not valid UTF-8 (Go's `CheckFilePath` rejects it).
    utf8: bool,
    kind: Kind,
    content: Content,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Regular,
    Symlink,
}

/// Where a candidate's bytes come from.
#[derive(Debug, Clone)]
enum Content {
    /// A file on disk with its size from `lstat`.
    Disk { path: std::path::PathBuf, size: u64 },
    /// A git blob, converted to its worktree form on demand.
    Blob(gix::ObjectId),
    /// Bytes in memory.
    Data(Vec<u8>),
    /// No content (symlinks and irregular files, never read).
    None,
}

/// Resolves a git blob to its converted bytes.
type BlobReader<'a> = dyn FnMut(gix::ObjectId) -> Result<Vec<u8>, BuildError> + 'a;

fn unreachable_source() -> Result<Vec<u8>, BuildError> {
    Err(BuildError::Git(
        "no git blobs in a directory listing".into(),
    ))
}

/// The outcome of `checkFiles`: the valid files in order, their contents resolved where needed.
struct Checked {
    valid: Vec<Valid>,
    /// A regular `go.mod` was among the candidates at the root (`+incompatible` rule).
    has_go_mod: bool,
}

struct Valid {
    path: String,
    size: u64,
    content: Content,
}

impl Checked {
    /// The root go.mod in the zip, if any.
    fn root_go_mod(&self) -> Option<Vec<u8>> {
        let file = self.valid.iter().find(|f| f.path == "go.mod")?;
        match &file.content {
            Content::Data(data) => Some(data.clone()),
            Content::Disk { path, .. } => std::fs::read(path).ok(),
            Content::Blob(_) | Content::None => None,
        }
    }
}

/// Reads a candidate's bytes in full (go.mod for its `go` line, git blobs for their size).
fn read_content(content: &Content, blobs: &mut BlobReader<'_>) -> Result<Vec<u8>, BuildError> {
    match content {
        Content::Disk { path, .. } => std::fs::read(path)
            .map_err(|e| BuildError::io(format!("reading {}", path.display()), e)),
        Content::Blob(id) => blobs(*id),
        Content::Data(data) => Ok(data.clone()),
        Content::None => Ok(Vec::new()),
    }
}

/// `zip.checkFiles`, returning the first invalid file as the error (Go lists them all).
///
/// Git blobs are converted here, in file order, for their worktree size; the converted bytes
/// are kept for writing (at most 500 MiB, the limit being checked as they accumulate).
fn check_files(files: Vec<Candidate>, blobs: &mut BlobReader<'_>) -> Result<Checked, BuildError> {
    // Directories holding a regular go.mod (any case), and the root go.mod's `go` line.
    let mut have_go_mod: HashSet<String> = HashSet::new();
    let mut vers = gomod::GoVersion::None;
    let mut has_go_mod = false;
    for f in &files {
        let (dir, base) = split(&f.path);
        if base.eq_ignore_ascii_case("go.mod") && f.kind == Kind::Regular {
            have_go_mod.insert(dir.to_owned());
            if base == "go.mod" && dir.is_empty() {
                has_go_mod = true;
                // Go ignores a read error here (the old vendor rules then apply).
                if let Ok(data) = read_content(&f.content, blobs) {
                    vers = gomod::go_version(&data);
                }
            }
        }
    }
    let in_submodule = |p: &str| {
        let mut p = p;
        loop {
            let (dir, _) = split(p);
            if dir.is_empty() {
                return false;
            }
            if have_go_mod.contains(dir) {
                return true;
            }
            p = &dir[..dir.len() - 1];
        }
    };

    // Every invalid file, once each (a file may break several rules; Go reports the first).
    let mut invalid: Vec<(String, String)> = Vec::new();
    let mut seen_error: HashSet<String> = HashSet::new();
    let mut fail = |path: &str, rule: String| {
        if seen_error.insert(path.to_owned()) {
            invalid.push((path.to_owned(), rule));
        }
    };
    let mut collisions = super::collision::Collisions::default();
    let mut remaining = MAX_ZIP_FILE;
    let mut valid = Vec::new();
    for f in files {
        let p = f.path.as_str();
        if !is_clean(p) {
            fail(p, "file path is not clean".into());
            continue;
        }
        if p.starts_with('/') {
            fail(p, "file path is not relative".into());
            continue;
        }
        if gomod::is_vendored_package(p, vers) || in_submodule(p) || p == ".hg_archival.txt" {
            continue;
        }
        if !f.utf8 {
            fail(p, "malformed file path: invalid UTF-8".into());
            continue;
        }
        if let Err(e) = check_file_path(p) {
            fail(p, e.0);
            continue;
        }
        if p.to_lowercase() == "go.mod" && p != "go.mod" {
            fail(p, "go.mod files must have lowercase names".into());
            continue;
        }
        if let Err(collision) = collisions.check(p, false) {
            fail(p, collision.go_message());
            continue;
        }
        if f.kind != Kind::Regular {
            continue;
        }
        let (size, content) = match f.content {
            Content::Disk { size, path } => (size, Content::Disk { path, size }),
            Content::Blob(id) => {
                let data = blobs(id)?;
                (data.len() as u64, Content::Data(data))
            }
            Content::Data(data) => (data.len() as u64, Content::Data(data)),
            Content::None => (0, Content::None),
        };
        // Go records the size error and goes on, but reports it before any invalid file.
        if size > remaining {
            return Err(BuildError::TooLarge);
        }
        remaining -= size;
        if p == "go.mod" && size > MAX_GO_MOD {
            fail(
                p,
                format!("go.mod file too large (max size is {MAX_GO_MOD} bytes)"),
            );
            continue;
        }
        if p == "LICENSE" && size > MAX_LICENSE {
            fail(
                p,
                format!("LICENSE file too large (max size is {MAX_LICENSE} bytes)"),
            );
            continue;
        }
        valid.push(Valid {
            path: f.path,
            size,
            content,
        });
    }
    if invalid.is_empty() {
        Ok(Checked { valid, has_go_mod })
    } else {
        Err(BuildError::Files { invalid })
    }
}

/// `zip.Create`'s writing half: every valid file under `module@version/`, deflated, in order;
/// the `h1:` hash computed from the bytes written.
fn write<W: Write + Seek>(
    checked: Checked,
    module: &ModulePath,
    version: &str,
    go_mod: Vec<u8>,
    out: &mut W,
) -> Result<BuiltZip, BuildError> {
    let zip_err = |e: zip::result::ZipError| BuildError::io("writing zip", io::Error::other(e));
    let prefix = format!("{module}@{version}/");
    let mut zw = zip::ZipWriter::new(out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644)
        .large_file(false);
    let mut hashes = Vec::with_capacity(checked.valid.len());
    let mut total = 0u64;
    for f in &checked.valid {
        let name = format!("{prefix}{}", f.path);
        zw.start_file(name.as_str(), options).map_err(zip_err)?;
        let mut sha = Sha256::new();
        let written = match &f.content {
            Content::Disk { path, .. } => {
                let file = std::fs::File::open(path)
                    .map_err(|e| BuildError::io(format!("opening {}", path.display()), e))?;
                // Like Go's LimitedReader(size+1): a file that grew since it was listed fails.
                let mut limited = file.take(f.size + 1);
                copy_hashing(&mut limited, &mut zw, &mut sha)
                    .map_err(|e| BuildError::io(format!("reading {}", path.display()), e))?
            }
            Content::Data(data) => copy_hashing(&mut data.as_slice(), &mut zw, &mut sha)
                .map_err(|e| BuildError::io("writing zip", e))?,
            Content::Blob(_) | Content::None => 0,
        };
        if written > f.size {
            return Err(BuildError::file(
                &f.path,
                "file is larger than declared size",
            ));
        }
        total += written;
        hashes.push((name, sha.finalize().into()));
    }
    zw.finish().map_err(zip_err)?;
    Ok(BuiltZip {
        zip_h1: hash1(hashes),
        mod_h1: hash_go_mod(&go_mod),
        go_mod,
        files: checked.valid.len(),
        size: total,
    })
}

fn copy_hashing(src: &mut impl Read, dst: &mut impl Write, sha: &mut Sha256) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let k = match src.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = buf.get(..k).unwrap_or_default();
        sha.update(chunk);
        dst.write_all(chunk)?;
        n += k as u64;
    }
}

/// Go's `path.Split`: the directory with its trailing slash, and the base.
fn split(p: &str) -> (&str, &str) {
    match p.rfind('/') {
        Some(i) => p.split_at(i + 1),
        None => ("", p),
    }
}

/// `p == path.Clean(p)` for a non-absolute path: no empty, `.` or `..` elements.
fn is_clean(p: &str) -> bool {
    if p == "." || p == "/" {
        return true;
    }
    let rel = p.strip_prefix('/').unwrap_or(p);
    !rel.is_empty()
        && rel
            .split('/')
            .all(|e| !e.is_empty() && e != "." && e != "..")
}

#[cfg(test)]
mod tests;
