//! Checks a module zip fetched from an upstream before it is stored (`zip.CheckZip` and the
//! limits of the Go modules reference, "Module zip files").
//!
//! The rules follow `golang.org/x/mod/zip` `checkZip` (every entry under `module@version/`, clean
//! and valid names, no case-insensitive collisions, no file that is also a directory, `go.mod`
//! only at the root and lowercase, size limits), plus what the go command enforces when it reads
//! the zip (`archive/zip`: actual size equals declared size, CRC-32). Unlike `checkZip`, sizes are
//! enforced on the bytes actually decompressed, not only on the headers, and the `h1:` hash is
//! computed in the same pass, streaming each entry through a fixed buffer.
//!
//! The central directory is read exactly as Go's `archive/zip` reads it (module `archive`), so the
//! entries checked and hashed are the ones the go command will see. Deliberately stricter than
//! the go command, since none of these occur in zips the go command writes:
//! - symbolic links and other irregular Unix modes (Go's package documentation forbids them, but
//!   `checkZip` never looks at modes, and `Unzip` would write a symlink as a regular file);
//! - entries flagged as encrypted, and zips the `zip` crate reads differently from Go (an Info-ZIP
//!   Unicode path field naming another file, a layout the crate refuses): "ambiguous zip";
//! - an entry whose CRC field is 0 but whose data is not empty (Go skips the CRC check then).

pub(crate) mod archive;
#[cfg(test)]
pub(crate) mod testzip;

use std::borrow::Cow;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use self::archive::{Archive, ArchiveError, Entry, METHOD_DEFLATE, METHOD_STORE};
use super::collision::Collisions;
use super::hash::hash1;

/// `zip.MaxZipFile`: the largest module zip, and the largest total uncompressed size (500 MiB).
pub const MAX_ZIP_FILE: u64 = 500 << 20;
/// `zip.MaxGoMod`: the largest go.mod, in a zip or served alone (16 MiB).
pub const MAX_GO_MOD: u64 = 16 << 20;
/// `zip.MaxLICENSE`: the largest root `LICENSE` file in a zip (16 MiB).
pub const MAX_LICENSE: u64 = 16 << 20;

/// The size limits a zip is checked against; [`Limits::GO`] are the go command's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest zip file in bytes.
    pub max_zip_file: u64,
    /// Largest total uncompressed size of the files in bytes.
    pub max_total: u64,
    /// Largest root `go.mod` in bytes.
    pub max_go_mod: u64,
    /// Largest root `LICENSE` in bytes.
    pub max_license: u64,
}

impl Limits {
    /// The limits of `golang.org/x/mod/zip` (`MaxZipFile`, `MaxGoMod`, `MaxLICENSE`).
    pub const GO: Limits = Limits {
        max_zip_file: MAX_ZIP_FILE,
        max_total: MAX_ZIP_FILE,
        max_go_mod: MAX_GO_MOD,
        max_license: MAX_LICENSE,
    };
}

/// What a zip that passed every check looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedZip {
    /// `h1:` hash over the zip's files, as in go.sum.
    pub h1: String,
    /// Number of files.
    pub files: usize,
    /// Total uncompressed size in bytes.
    pub uncompressed_size: u64,
    /// The root `go.mod`, when the zip has one (at most [`MAX_GO_MOD`] bytes).
    pub go_mod: Option<Vec<u8>>,
}

/// Why a zip was rejected: one line naming the file and the rule, or every invalid file and its
/// rule (`path: rule; path: rule`, the first [`MAX_REPORTED`] of them), in `x/mod/zip`'s
/// wording so that what users search for is what the go command says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ZipError(pub String);

/// Invalid files named in one error; the rest are counted.
pub const MAX_REPORTED: usize = 20;

impl ZipError {
    /// Builds the error, keeping it on one line whatever the names hold.
    fn new(message: impl Into<String>) -> Self {
        let message: String = message.into();
        Self(message.replace(['\n', '\r'], " "))
    }

    /// One error for every invalid file (`x/mod/zip.FileErrorList`, on one line).
    pub fn files(invalid: &[(String, String)]) -> Self {
        let mut parts: Vec<String> = invalid
            .iter()
            .take(MAX_REPORTED)
            .map(|(path, rule)| format!("{path}: {rule}"))
            .collect();
        if invalid.len() > MAX_REPORTED {
            parts.push(format!(
                "and {} more invalid files",
                invalid.len() - MAX_REPORTED
            ));
        }
        let joined = parts.join("; ");
        Self::new(if invalid.len() > 1 {
            format!("{} invalid files: {joined}", invalid.len())
        } else {
            joined
        })
    }
}

/// The invalid entries found so far, as `x/mod/zip.checkZip` collects them.
#[derive(Default)]
struct Invalid(Vec<(String, String)>);

impl Invalid {
    /// Records `entry`'s broken rule, its name as x/mod shows it but with control characters
    /// escaped (`\n`), so the error stays one line that still names the entry exactly.
    fn add(&mut self, entry: &Entry, rule: impl std::fmt::Display) {
        let name = super::path::escape_controls(&entry.name_lossy());
        self.0.push((name, rule.to_string()));
    }
}

impl From<ArchiveError> for ZipError {
    fn from(e: ArchiveError) -> Self {
        Self::new(e.to_string())
    }
}

/// Checks the zip at `path` for `module@version` (unescaped path, canonical version) with the go
/// command's limits ([`Limits::GO`]); on success returns its `h1:` hash, file count and size.
///
/// The caller has already validated `module` and `version` (`module.Check`); they only form the
/// required `module@version/` prefix here.
pub fn check_zip(path: &Path, module: &str, version: &str) -> Result<CheckedZip, ZipError> {
    check_zip_with_limits(path, module, version, &Limits::GO)
}

/// [`check_zip`] with explicit size limits.
pub fn check_zip_with_limits(
    path: &Path,
    module: &str,
    version: &str,
    limits: &Limits,
) -> Result<CheckedZip, ZipError> {
    // zip.checkZip: the file size first, before parsing anything.
    let mut archive = Archive::open(path, limits.max_zip_file)?;
    let prefix = format!("{module}@{version}/");

    // Pass 1: names, collisions, kinds and declared sizes, from the central directory alone.
    // Every invalid entry is reported, as `checkZip` does; a size over the limits ends the check.
    let mut collisions = Collisions::default();
    let mut names = Vec::with_capacity(archive.entries().len());
    let mut invalid = Invalid::default();
    let mut declared_total = 0u64;
    let mut files = 0usize;
    for entry in archive.entries() {
        if !entry.name.starts_with(prefix.as_bytes()) {
            invalid.add(entry, format_args!("path does not have prefix {prefix:?}"));
            continue;
        }
        let Ok(full) = std::str::from_utf8(&entry.name) else {
            invalid.add(entry, "malformed file path: invalid UTF-8");
            continue;
        };
        // The prefix is a whole UTF-8 prefix of full, so this slice is on a char boundary.
        let rel = full.get(prefix.len()..).unwrap_or_default();
        names.push(full.to_owned());
        match check_entry(entry, rel, limits, &mut collisions, &mut declared_total) {
            Ok(is_file) => files += usize::from(is_file),
            Err(Fault::Entry(rule)) => invalid.add(entry, rule),
            Err(Fault::Zip(e)) => return Err(e),
        }
    }
    if !invalid.0.is_empty() {
        return Err(ZipError::files(&invalid.0));
    }

    // Pass 2: stream every entry (directories too: dirhash.HashZip hashes them as empty files),
    // counting the bytes actually produced.
    let mut hashed = Vec::with_capacity(names.len());
    let mut total = 0u64;
    let mut go_mod = None;
    for (index, name) in names.into_iter().enumerate() {
        let mut sha = Sha256::new();
        let max_total = limits.max_total;
        let rel = name.get(prefix.len()..).unwrap_or_default();
        let mut keep = (rel == "go.mod").then(Vec::new);
        let mut sink = |chunk: &[u8]| {
            total = total.saturating_add(chunk.len() as u64);
            if total > max_total {
                return Err(ArchiveError::Refused(total_too_large(max_total).0));
            }
            sha.update(chunk);
            if let Some(k) = keep.as_mut()
                && (k.len() as u64) < limits.max_go_mod
            {
                k.extend_from_slice(chunk);
            }
            Ok(())
        };
        let size = archive.read_entry(index, &mut sink)?;
        if let Some(limit) = root_file_limit(rel, limits)
            && size > limit
        {
            return Err(ZipError::new(format!(
                "{name}: {rel} file too large (max size is {limit} bytes)"
            )));
        }
        if keep.is_some() {
            go_mod = keep;
        }
        hashed.push((name, sha.finalize().into()));
    }
    Ok(CheckedZip {
        h1: hash1(hashed),
        files,
        uncompressed_size: total,
        go_mod,
    })
}

/// Why one entry fails: a rule of its own (reported with the others), or the whole zip.
enum Fault {
    Entry(String),
    Zip(ZipError),
}

/// The `zip.checkZip` rules for one entry, in its wording; `rel` is its name below the prefix.
/// `Ok(true)` for a file, `Ok(false)` for a directory or the bare prefix.
fn check_entry(
    entry: &Entry,
    rel: &str,
    limits: &Limits,
    collisions: &mut Collisions,
    declared_total: &mut u64,
) -> Result<bool, Fault> {
    let rule = |r: &str| Err(Fault::Entry(r.to_owned()));
    // The bare "module@version/" entry is skipped by checkZip (but still hashed).
    if rel.is_empty() {
        return Ok(false);
    }
    let (rel, is_dir) = match rel.strip_suffix('/') {
        Some(dir) => (dir, true),
        None => (rel, false),
    };
    if clean(rel) != rel {
        return rule("file path is not clean");
    }
    super::path::check_file_path(rel).map_err(|e| Fault::Entry(e.to_string()))?;
    // Defence in depth: path.Clean and module.CheckFilePath above already refuse these, but an
    // escaping name must never depend on a single check.
    if rel.starts_with('/') {
        return rule("file path is not relative");
    }
    if rel.split('/').any(|elem| elem == "..") {
        return rule("file path is not clean");
    }
    if rel.contains(['\\', '\n', '\r', '\0']) {
        return rule("malformed file path: a backslash or a control character");
    }
    collisions
        .check(rel, is_dir)
        .map_err(|c| Fault::Entry(c.go_message()))?;
    if is_dir {
        return Ok(false);
    }

    // Go's package documentation: "Symbolic links and other irregular files are not allowed."
    // (checkZip itself does not look at modes; the go command never writes them.)
    match entry.unix_file_type() {
        Some(0o120_000) => return rule("file is a symbolic link"),
        None | Some(0) | Some(0o100_000) => {}
        Some(_) => return rule("not a regular file"),
    }
    if entry.is_encrypted() {
        return rule("file is encrypted");
    }
    if entry.method != METHOD_STORE && entry.method != METHOD_DEFLATE {
        return Err(Fault::Entry(format!(
            "unsupported compression method {}",
            entry.method
        )));
    }

    // zip.checkZip: a go.mod (any case) only at the root, and then lowercase.
    let base = rel.rsplit('/').next().unwrap_or(rel);
    if base.eq_ignore_ascii_case("go.mod") {
        if base != rel {
            return rule("go.mod file not in module root directory");
        }
        if rel != "go.mod" {
            return rule("go.mod files must have lowercase names");
        }
    }

    let size = entry.uncompressed_size;
    *declared_total = declared_total
        .checked_add(size)
        .filter(|&t| t <= limits.max_total)
        .ok_or_else(|| Fault::Zip(total_too_large(limits.max_total)))?;
    if let Some(limit) = root_file_limit(rel, limits)
        && size > limit
    {
        return Err(Fault::Entry(format!(
            "{rel} file too large (max size is {limit} bytes)"
        )));
    }
    Ok(true)
}

fn total_too_large(limit: u64) -> ZipError {
    ZipError::new(format!(
        "total uncompressed size of module contents too large (max size is {limit} bytes)"
    ))
}

/// The limit for the root files `zip.checkZip` caps on their own.
fn root_file_limit(rel: &str, limits: &Limits) -> Option<u64> {
    match rel {
        "go.mod" => Some(limits.max_go_mod),
        "LICENSE" => Some(limits.max_license),
        _ => None,
    }
}

/// Checks a go.mod served by an upstream: at most 16 MiB (`zip.MaxGoMod`, which
/// `modfetch` also applies to `.mod` downloads). Its content is not otherwise checked: it is
/// served byte for byte, and the go command does not require UTF-8 either.
pub fn check_go_mod(data: &[u8]) -> Result<(), ZipError> {
    if data.len() as u64 > MAX_GO_MOD {
        return Err(ZipError::new(format!(
            "go.mod file too large ({} bytes; max size is {MAX_GO_MOD} bytes)",
            data.len()
        )));
    }
    Ok(())
}

/// Go's `path.Clean` (lexical): drop empty and `.` elements, resolve `..` against a preceding
/// element, keep leading `..` of a relative path; `""` becomes `"."`.
fn clean(p: &str) -> Cow<'_, str> {
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for elem in p.split('/') {
        match elem {
            "" | "." => {}
            ".." => match out.last() {
                Some(&last) if last != ".." => {
                    out.pop();
                }
                _ if rooted => {}
                _ => out.push(".."),
            },
            _ => out.push(elem),
        }
    }
    let joined = out.join("/");
    let cleaned = match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    };
    if cleaned == p {
        Cow::Borrowed(p)
    } else {
        Cow::Owned(cleaned)
    }
}

#[cfg(test)]
mod tests;
