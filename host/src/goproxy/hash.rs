//! `h1:` hashes (`golang.org/x/mod/sumdb/dirhash.Hash1`), as written in go.sum and served by the
//! checksum database.

use std::io;
use std::path::Path;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use super::zipcheck::archive::{Archive, ArchiveError};

/// `dirhash.Hash1` over already-hashed files: `files` yields each file name with the SHA-256 of
/// its content. The result is `"h1:"` + base64 (standard, padded) of the SHA-256 of the summary
/// `hex(sha256(content)) + "  " + name + "\n"`, one line per file, names sorted bytewise (Go's
/// `sort.Strings`).
///
/// Go's `Hash1` refuses names containing `'\n'` (they would make the summary ambiguous); callers
/// must reject such names before calling this, as [`hash_zip_file`] does.
///
/// ```
/// use sha2::{Digest, Sha256};
/// let h = modgate::goproxy::hash::hash1([("go.mod".to_owned(), Sha256::digest(b"").into())]);
/// assert_eq!(h, "h1:G7mAYYxgmS0lVkHyy2hEOLQCFB0DlQFTMLWggykrydY=");
/// ```
pub fn hash1(files: impl IntoIterator<Item = (String, [u8; 32])>) -> String {
    let mut files: Vec<(String, [u8; 32])> = files.into_iter().collect();
    // Stable sort on the name only, as sort.Strings sorts the names alone.
    files.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut summary = Sha256::new();
    for (name, digest) in &files {
        debug_assert!(
            !name.contains('\n'),
            "dirhash: filenames with newlines are not supported"
        );
        summary.update(hex::encode(digest).as_bytes());
        summary.update(b"  ");
        summary.update(name.as_bytes());
        summary.update(b"\n");
    }
    format!(
        "h1:{}",
        base64::engine::general_purpose::STANDARD.encode(summary.finalize())
    )
}

/// The `h1:` hash of a go.mod file, as written in go.sum (`<m> <v>/go.mod h1:…`): [`hash1`] over
/// the single file named `go.mod` (`modfetch.HashGoMod`).
pub fn hash_go_mod(data: &[u8]) -> String {
    hash1([("go.mod".to_owned(), Sha256::digest(data).into())])
}

/// The `h1:` hash of a module zip on disk (`dirhash.HashZip`): every entry, directories included,
/// under its full name (with the `module@version/` prefix), streamed entry by entry.
///
/// Entries are read as Go's `archive/zip` reads them, so a zip whose entries do not decompress to
/// their declared size or CRC is an error, as it is for the go command. This does not apply the
/// module zip rules or size limits: use [`super::zipcheck::check_zip`] for an untrusted zip (it
/// returns the same hash).
///
/// Errors (`io::ErrorKind::InvalidData`) also for names the go command could never accept: a name
/// containing `'\n'` (Go's `Hash1` refuses it too), a name that is not UTF-8, and a name that
/// occurs twice (Go would hash the last entry twice).
pub fn hash_zip_file(path: &Path) -> io::Result<String> {
    hash_zip(path).map_err(|e| match e {
        ArchiveError::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
    })
}

fn hash_zip(path: &Path) -> Result<String, ArchiveError> {
    let mut archive = Archive::open(path, u64::MAX)?;
    // Names first, so that a duplicate is reported as such before any content is read.
    let mut names = Vec::with_capacity(archive.entries().len());
    let mut seen = std::collections::HashSet::with_capacity(archive.entries().len());
    for entry in archive.entries() {
        let name = String::from_utf8(entry.name.clone())
            .map_err(|_| ArchiveError::entry(entry, "name is not valid UTF-8"))?;
        if name.contains('\n') {
            return Err(ArchiveError::entry(entry, "name contains a newline"));
        }
        if !seen.insert(name.clone()) {
            return Err(ArchiveError::entry(entry, "occurs more than once"));
        }
        names.push(name);
    }
    let mut files = Vec::with_capacity(names.len());
    for (index, name) in names.into_iter().enumerate() {
        let mut sha = Sha256::new();
        archive.read_entry(index, &mut |chunk| {
            sha.update(chunk);
            Ok(())
        })?;
        files.push((name, sha.finalize().into()));
    }
    Ok(hash1(files))
}

#[cfg(test)]
mod tests;
