//! Module paths (`module.CheckPath`), file paths inside zips (`module.CheckFilePath`) and the
//! major-version suffix rules (`module.CheckPathMajor`).
//!
//! A faithful port of `golang.org/x/mod/module/module.go` as vendored in Go 1.26 (the go
//! command's own copy): the three path kinds differ only in which characters an element may
//! hold, whether it may start with a dot or dash, and whether `~digits` suffixes are rejected.

use std::fmt;

use super::{escape, semver};

mod letters;

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
        check_path(path)?;
        // `module.EscapePath`: CheckPath guarantees ASCII without '!', so escaping cannot fail.
        let escaped = escape::escape_string(path).map_err(PathError)?;
        Ok(Self {
            path: path.to_owned(),
            escaped,
        })
    }

    /// Parses a case-escaped module path as it appears in proxy URLs (`github.com/!azure/x`),
    /// applying `module.UnescapePath` (which includes `module.CheckPath`).
    pub fn from_escaped(escaped: &str) -> Result<Self, PathError> {
        let path = escape::unescape_path(escaped)?;
        // A valid unescaping round-trips: `unescape_string` rejects raw uppercase letters, so
        // the only escaped spelling of `path` is the input.
        Ok(Self {
            path,
            escaped: escaped.to_owned(),
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

    /// The major-version suffix (`"/v2"`, `".v1"` for gopkg.in, or `""`), as the second result
    /// of `module.SplitPathVersion`.
    pub fn path_major(&self) -> &str {
        split_path_version(&self.path).map_or("", |(_, major)| major)
    }

    /// The path without its major-version suffix (`example.com/m` for `example.com/m/v2`).
    pub fn prefix(&self) -> &str {
        split_path_version(&self.path).map_or(self.path.as_str(), |(prefix, _)| prefix)
    }

    /// `module.Check` for this path: `version` must be a valid semantic version whose major
    /// version matches the path's suffix (see [`check_path_major`]). The error is x/mod's
    /// `ModuleError` wording: `path@version: invalid version: reason`.
    pub fn check_version(&self, version: &str) -> Result<(), PathError> {
        self.version_problem(version).map_err(|reason| {
            // x/mod's ModuleError prints the version as it is; only control characters are
            // escaped here, so the message stays one line.
            PathError(format!(
                "{}@{}: {reason}",
                self.path,
                escape_controls(version)
            ))
        })
    }

    /// [`ModulePath::check_version`]'s reason alone (`invalid version: should be v0 or v1,
    /// not v2`), for callers that name the module and version themselves.
    pub fn version_problem(&self, version: &str) -> Result<(), String> {
        if !semver::is_valid(version) {
            return Err("invalid version: not a semantic version".into());
        }
        check_path_major_suffix(version, self.path_major())
            .map_err(|reason| format!("invalid version: {reason}"))
    }
}

impl fmt::Display for ModulePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)
    }
}

impl std::str::FromStr for ModulePath {
    type Err = PathError;

    /// Same as [`ModulePath::parse`] (the unescaped form).
    fn from_str(path: &str) -> Result<Self, Self::Err> {
        Self::parse(path)
    }
}

impl AsRef<str> for ModulePath {
    fn as_ref(&self) -> &str {
        &self.path
    }
}

/// `module.pathKind`: which rules a path is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathKind {
    Module,
    Import,
    File,
}

impl PathKind {
    fn noun(self) -> &'static str {
        match self {
            PathKind::Module => "module",
            PathKind::Import => "import",
            PathKind::File => "file",
        }
    }
}

/// `module.CheckPath`: whether `path` is a valid module path. See [`ModulePath::parse`].
pub fn check_path(path: &str) -> Result<(), PathError> {
    check_module_path_reason(path).map_err(|reason| malformed(PathKind::Module, path, &reason))
}

/// `module.CheckImportPath`: like [`check_path`] but for package import paths (no domain rule
/// on the first element, `+` allowed, elements may start with a dot).
pub fn check_import_path(path: &str) -> Result<(), PathError> {
    check_path_kind(path, PathKind::Import)
        .map_err(|reason| malformed(PathKind::Import, path, &reason))
}

/// `module.CheckFilePath`: a file path that may appear in a module zip (below the prefix).
pub fn check_file_path(path: &str) -> Result<(), PathError> {
    check_path_kind(path, PathKind::File).map_err(|reason| malformed(PathKind::File, path, &reason))
}

/// `module.InvalidPathError.Error`.
fn malformed(kind: PathKind, path: &str, reason: &str) -> PathError {
    PathError(format!(
        "malformed {} path {}: {reason}",
        kind.noun(),
        quote(path)
    ))
}

/// The body of `module.CheckPath`, returning only the reason (callers add the path).
pub(crate) fn check_module_path_reason(path: &str) -> Result<(), String> {
    check_path_kind(path, PathKind::Module)?;
    let first = path.find('/').map_or(path, |i| &path[..i]);
    if first.is_empty() {
        return Err("leading slash".into());
    }
    if !first.contains('.') {
        return Err("missing dot in first path element".into());
    }
    if path.starts_with('-') {
        return Err("leading dash in first path element".into());
    }
    if let Some(r) = first.chars().find(|&r| !first_path_ok(r)) {
        return Err(format!(
            "invalid char {} in first path element",
            quote_rune(r)
        ));
    }
    if split_path_version(path).is_none() {
        return Err("invalid version".into());
    }
    Ok(())
}

/// `module.checkPath`.
fn check_path_kind(path: &str, kind: PathKind) -> Result<(), String> {
    // (Go first rejects invalid UTF-8; a Rust `&str` is always valid.)
    if path.is_empty() {
        return Err("empty string".into());
    }
    if path.starts_with('-') && kind != PathKind::File {
        return Err("leading dash".into());
    }
    if path.contains("//") {
        return Err("double slash".into());
    }
    if path.ends_with('/') {
        return Err("trailing slash".into());
    }
    path.split('/').try_for_each(|elem| check_elem(elem, kind))
}

/// `module.checkElem` for a version string, which must be a valid file name
/// (used by `module.EscapeVersion`/`UnescapeVersion`).
pub(crate) fn check_version_elem(v: &str) -> Result<(), String> {
    check_elem(v, PathKind::File)
}

/// Reserved file names on Windows, matched case-insensitively against the part of an element
/// before its first dot (`module.badWindowsNames`).
const BAD_WINDOWS_NAMES: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// `module.checkElem`.
fn check_elem(elem: &str, kind: PathKind) -> Result<(), String> {
    if elem.is_empty() {
        return Err("empty path element".into());
    }
    if elem.bytes().all(|b| b == b'.') {
        return Err(format!("invalid path element {}", quote(elem)));
    }
    if elem.starts_with('.') && kind == PathKind::Module {
        return Err("leading dot in path element".into());
    }
    if elem.ends_with('.') {
        return Err("trailing dot in path element".into());
    }
    let char_ok = match kind {
        PathKind::Module => mod_path_ok,
        PathKind::Import => import_path_ok,
        PathKind::File => file_name_ok,
    };
    if let Some(r) = elem.chars().find(|&r| !char_ok(r)) {
        return Err(format!("invalid char {}", quote_rune(r)));
    }

    // Windows disallows a bunch of path elements, sadly.
    let short = elem.find('.').map_or(elem, |i| &elem[..i]);
    // Go uses strings.EqualFold; no non-ASCII rune simple-folds to a letter of these names
    // (only K and S have such partners), so ASCII case-insensitivity is exact here.
    if BAD_WINDOWS_NAMES
        .iter()
        .any(|bad| bad.eq_ignore_ascii_case(short))
    {
        return Err(format!(
            "{} disallowed as path element component on Windows",
            quote(short)
        ));
    }

    if kind == PathKind::File {
        // Windows short names (`PROGRA~1`) only matter for import paths.
        return Ok(());
    }
    // Reject path components that look like Windows short-names: a tilde and digits at the end.
    if let Some(tilde) = short.rfind('~')
        && tilde < short.len() - 1
        && short[tilde + 1..].bytes().all(|b| b.is_ascii_digit())
    {
        return Err("trailing tilde and digits in path element".into());
    }
    Ok(())
}

/// `module.firstPathOK`: the first element is an LDH domain name, lower case only.
fn first_path_ok(r: char) -> bool {
    r == '-' || r == '.' || r.is_ascii_digit() || r.is_ascii_lowercase()
}

/// `module.modPathOK`: ASCII letters, digits and `-._~`.
fn mod_path_ok(r: char) -> bool {
    r.is_ascii_alphanumeric() || matches!(r, '-' | '.' | '_' | '~')
}

/// `module.importPathOK`: [`mod_path_ok`] plus `+`.
fn import_path_ok(r: char) -> bool {
    mod_path_ok(r) || r == '+'
}

/// `module.fileNameOK`: ASCII letters, digits, space and `!#$%&()+,-.=@[]^_{}~`, and any
/// Unicode letter (`unicode.IsLetter`).
fn file_name_ok(r: char) -> bool {
    if r.is_ascii() {
        return r.is_ascii_alphanumeric() || "!#$%&()+,-.=@[]^_{}~ ".contains(r);
    }
    is_go_letter(r)
}

/// Go's `unicode.IsLetter` for non-ASCII runes (see [`letters`]).
fn is_go_letter(r: char) -> bool {
    let r = u32::from(r);
    letters::LETTERS
        .binary_search_by(|&(lo, hi)| {
            if hi < r {
                std::cmp::Ordering::Less
            } else if lo > r {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// `module.SplitPathVersion`: splits `example.com/m/v2` into `("example.com/m", "/v2")` and
/// `gopkg.in/yaml.v2` into `("gopkg.in/yaml", ".v2")`; a path without a suffix gives
/// `(path, "")`. `None` when the last element looks like a malformed suffix (`/v0`, `/v1`,
/// `/v2.0`, `/v02`, or a gopkg.in path not ending in `.vN`), i.e. Go's `ok == false`.
pub fn split_path_version(path: &str) -> Option<(&str, &str)> {
    if path.starts_with("gopkg.in/") {
        return split_gopkg_in(path);
    }
    let b = path.as_bytes();
    let mut i = b.len();
    let mut dot = false;
    while i > 0 && (b[i - 1].is_ascii_digit() || b[i - 1] == b'.') {
        dot |= b[i - 1] == b'.';
        i -= 1;
    }
    if i <= 1 || i == b.len() || b[i - 1] != b'v' || b[i - 2] != b'/' {
        return Some((path, ""));
    }
    let (prefix, path_major) = path.split_at(i - 2);
    let pm = path_major.as_bytes();
    if dot || pm.len() <= 2 || pm[2] == b'0' || path_major == "/v1" {
        return None;
    }
    Some((prefix, path_major))
}

/// `module.splitGopkgIn`: gopkg.in paths must end in `.vN` (optionally `-unstable`), any N
/// including 0 but without leading zeros.
fn split_gopkg_in(path: &str) -> Option<(&str, &str)> {
    if !path.starts_with("gopkg.in/") {
        return None;
    }
    let b = path.as_bytes();
    let mut i = b.len();
    if path.ends_with("-unstable") {
        i -= "-unstable".len();
    }
    while i > 0 && b[i - 1].is_ascii_digit() {
        i -= 1;
    }
    if i <= 1 || b[i - 1] != b'v' || b[i - 2] != b'.' {
        return None;
    }
    let (prefix, path_major) = path.split_at(i - 2);
    let pm = path_major.as_bytes();
    if pm.len() <= 2 || (pm[2] == b'0' && path_major != ".v0") {
        return None;
    }
    Some((prefix, path_major))
}

/// `module.MatchPathMajor`: whether semantic version `v` fits the major-version suffix
/// `path_major` (`""`, `"/v2"`, `".v1"`, `".v1-unstable"`) — note: the *suffix*, not the path.
pub fn match_path_major(v: &str, path_major: &str) -> bool {
    check_path_major_suffix(v, path_major).is_ok()
}

/// `module.CheckPathMajor`, taking the module path rather than its suffix: `v2.0.0` needs a
/// `/v2` path (or `+incompatible` on a path without suffix), `v0`/`v1` need a path without
/// suffix, `gopkg.in/x.vN` needs major `vN` (with the historical `v0.0.0-…` pseudo-versions
/// allowed for `.v1`).
pub fn check_path_major(version: &str, module: &ModulePath) -> Result<(), PathError> {
    check_path_major_suffix(version, module.path_major())
        .map_err(|reason| PathError(format!("version {} invalid: {reason}", quote(version))))
}

/// The body of `module.CheckPathMajor`: the reason a version does not fit (`should be …`).
fn check_path_major_suffix(v: &str, path_major: &str) -> Result<(), String> {
    let mut path_major = path_major;
    if path_major.starts_with(".v") {
        path_major = path_major.strip_suffix("-unstable").unwrap_or(path_major);
    }
    if v.starts_with("v0.0.0-") && path_major == ".v1" {
        // Allow old bug in pseudo-versions that generated v0.0.0- pseudoversion for gopkg .v1.
        return Ok(());
    }
    let m = semver::major(v);
    let want = if path_major.is_empty() {
        if m == "v0" || m == "v1" || semver::build(v) == "+incompatible" {
            return Ok(());
        }
        "v0 or v1"
    } else if path_major.starts_with('/') || path_major.starts_with('.') {
        if m == &path_major[1..] {
            return Ok(());
        }
        &path_major[1..]
    } else {
        path_major
    };
    Err(format!("should be {want}, not {m}"))
}

/// Quotes bytes that are not UTF-8 like Go's `%q`: valid runs escaped as Rust escapes them,
/// each invalid byte as `\xNN` (`"\xff"`), for x/mod's `invalid UTF-8` messages.
pub fn quote_bytes(bytes: &[u8]) -> String {
    let mut quoted = String::from("\"");
    for chunk in bytes.utf8_chunks() {
        quoted.extend(chunk.valid().escape_debug());
        for b in chunk.invalid() {
            quoted.push_str(&format!("\\x{b:02x}"));
        }
    }
    quoted.push('"');
    quoted
}

/// `text` with its control characters escaped as `char::escape_default` writes them (`\n`,
/// `\u{0}`) and everything else as it is: names and versions shown as x/mod shows them, kept
/// on one line.
pub fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Quotes a string like Go's `%q` (`strconv.Quote`), for one-line error messages: quotes,
/// backslashes and every character Go does not print (`strconv.IsPrint`: controls, format
/// characters, separators other than the ASCII space, private use, unassigned) are escaped, so
/// a message never carries raw control bytes or invisible characters.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for r in s.chars() {
        push_escaped(&mut out, r, '"');
    }
    out.push('"');
    out
}

/// Quotes a rune like Go's `%q` (`'x'`), with the escaping of [`quote`].
pub(crate) fn quote_rune(r: char) -> String {
    let mut out = String::from("'");
    push_escaped(&mut out, r, '\'');
    out.push('\'');
    out
}

/// `strconv.IsPrint` for non-ASCII: letters, marks, numbers, punctuation and symbols (Unicode
/// 15.0.0, as Go's tables).
fn is_print(r: char) -> bool {
    use unicode_general_category::GeneralCategory as G;
    !matches!(
        unicode_general_category::get_general_category(r),
        G::Control
            | G::Format
            | G::LineSeparator
            | G::ParagraphSeparator
            | G::SpaceSeparator
            | G::PrivateUse
            | G::Surrogate
            | G::Unassigned
    )
}

fn push_escaped(out: &mut String, r: char, quote: char) {
    use std::fmt::Write as _;
    match r {
        '\\' => out.push_str("\\\\"),
        _ if r == quote => {
            out.push('\\');
            out.push(r);
        }
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        ' '..='~' => out.push(r),
        _ if r.is_ascii() => {
            let _ = write!(out, "\\x{:02x}", u32::from(r));
        }
        _ if is_print(r) => out.push(r),
        _ if u32::from(r) < 0x10000 => {
            let _ = write!(out, "\\u{:04x}", u32::from(r));
        }
        _ => {
            let _ = write!(out, "\\U{:08x}", u32::from(r));
        }
    }
}

#[cfg(test)]
mod tests;
