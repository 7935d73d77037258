//! Module paths (`module.CheckPath`), file paths inside zips (`module.CheckFilePath`) and the
//! major-version suffix rules (`module.CheckPathMajor`).

use std::fmt;

/// A validated module path, kept both unescaped (`github.com/Azure/x`) and case-escaped
/// (`github.com/!azure/x`, the form used in proxy URLs and storage keys).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModulePath {
    path: String,
    escaped: String,
}

/// Why a module path or file path is invalid; the message is one line for an error body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PathError(pub String);

impl ModulePath {
    /// Parses an unescaped module path, applying `module.CheckPath`.
    pub fn parse(path: &str) -> Result<Self, PathError> {
        // STUB: replaced by the real module.CheckPath port.
        Ok(Self {
            path: path.to_owned(),
            escaped: path.to_owned(),
        })
    }
    /// The unescaped path, as written in go.mod.
    pub fn as_str(&self) -> &str {
        &self.path
    }
    /// The case-escaped path used in proxy URLs and storage keys.
    pub fn escaped(&self) -> &str {
        &self.escaped
    }
}

impl fmt::Display for ModulePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)
    }
}

/// `module.CheckFilePath`: a file path that may appear in a module zip (below the prefix).
pub fn check_file_path(_path: &str) -> Result<(), PathError> {
    // STUB: replaced by the real port.
    Ok(())
}
