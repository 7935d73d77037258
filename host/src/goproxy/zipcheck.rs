//! Checks a module zip fetched from an upstream before it is stored (`zip.CheckZip` and the
//! limits of the Go modules reference, "Module zip files").

use std::path::Path;

/// What a zip that passed every check looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedZip {
    /// `h1:` hash over the zip's files, as in go.sum.
    pub h1: String,
    /// Number of files.
    pub files: usize,
    /// Total uncompressed size in bytes.
    pub uncompressed_size: u64,
}

/// Why a zip was rejected: one line naming the file and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ZipError(pub String);

/// Checks the zip at `path` for `module@version` (unescaped path, canonical version).
pub fn check_zip(_path: &Path, _module: &str, _version: &str) -> Result<CheckedZip, ZipError> {
    Ok(CheckedZip {
        h1: String::new(),
        files: 0,
        uncompressed_size: 0,
    }) // STUB
}

/// Checks a go.mod served by an upstream: at most 16 MiB.
pub fn check_go_mod(_data: &[u8]) -> Result<(), ZipError> {
    Ok(()) // STUB
}
