//! Case-escaping of module paths and versions (`module.EscapePath`/`UnescapePath`).

use super::path::PathError;

/// `module.EscapeVersion`.
pub fn escape_version(v: &str) -> Result<String, PathError> {
    Ok(v.to_owned()) // STUB
}

/// `module.UnescapeVersion`.
pub fn unescape_version(v: &str) -> Result<String, PathError> {
    Ok(v.to_owned()) // STUB
}
