//! Parsing a GOPROXY request path into a typed request.
//!
//! The Go modules reference ("GOPROXY protocol") defines the endpoints; the go command builds
//! the URLs with `module.EscapePath`/`EscapeVersion` and `url.PathEscape`
//! (`cmd/go/internal/modfetch/proxy.go`). Parsing is strict because the result names storage
//! keys: a request either becomes a [`ProxyRequest`] whose module path and version passed
//! every `golang.org/x/mod/module` check, or a 400/404 with a one-line reason.
//!
//! Steps, in order:
//! 1. percent-decode each `/`-separated segment exactly once (`+` stays `+`); a malformed escape,
//!    an escape decoding to `/`, `\`, NUL or another control character, a raw control or
//!    non-ASCII byte, and any segment made only of dots (`.`, `..`, raw or escaped) → 400;
//! 2. route on the first segment starting with `@` (module path elements never contain `@`),
//!    or on a leading `sumdb` segment (never a module path: it has no dot);
//! 3. case-unescape and check the module path (`module.UnescapePath`) → 400 if invalid;
//! 4. unescape the version (`module.UnescapeVersion`) → 400 if invalid; `.mod`/`.zip` (and
//!    canonical `.info`) need a canonical version matching the path's major version → 404.

use std::borrow::Cow;

use super::path::{ModulePath, quote};
use super::{escape, semver};

/// Longest raw request path accepted (bytes); longer → 400.
pub const MAX_RAW_PATH_LEN: usize = 4096;
/// Longest module path accepted (bytes, escaped form); longer → 400. Go sets no limit, but no
/// real module path comes close.
pub const MAX_MODULE_PATH_LEN: usize = 1024;
/// Longest version accepted (bytes, escaped form); longer → 400.
pub const MAX_VERSION_LEN: usize = 512;

/// What a `.info` request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InfoQuery {
    /// A canonical version (`v1.2.3`, a pseudo-version, `v2.0.0+incompatible`): immutable answer.
    Canonical(String),
    /// Anything else the go command may ask a proxy to resolve (branch, commit hash, `v1.2`).
    Query(String),
}

impl InfoQuery {
    /// The version or query string, whichever kind it is.
    pub fn as_str(&self) -> &str {
        match self {
            InfoQuery::Canonical(v) | InfoQuery::Query(v) => v,
        }
    }
}

/// A parsed GOPROXY request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProxyRequest {
    /// `/<m>/@v/list`
    List { module: ModulePath },
    /// `/<m>/@v/<v>.info`
    Info {
        module: ModulePath,
        version: InfoQuery,
    },
    /// `/<m>/@v/<v>.mod` (canonical versions only)
    Mod { module: ModulePath, version: String },
    /// `/<m>/@v/<v>.zip` (canonical versions only)
    Zip { module: ModulePath, version: String },
    /// `/<m>/@latest`
    Latest { module: ModulePath },
    /// `/sumdb/<name>/<rest>`: `name` is host-like (`sum.golang.org`); `rest` is the
    /// percent-decoded remainder (`supported`, `lookup/<m>@<v>`, `tile/8/0/001`), made of
    /// non-empty segments of ASCII letters, digits and `-._~!@+` only, so it can be appended to
    /// an upstream URL as is.
    Sumdb { name: String, rest: String },
}

impl ProxyRequest {
    /// The module the request is about (`None` for checksum database requests).
    pub fn module(&self) -> Option<&ModulePath> {
        match self {
            ProxyRequest::List { module }
            | ProxyRequest::Info { module, .. }
            | ProxyRequest::Mod { module, .. }
            | ProxyRequest::Zip { module, .. }
            | ProxyRequest::Latest { module } => Some(module),
            ProxyRequest::Sumdb { .. } => None,
        }
    }
}

/// Why a request path was refused. `BadRequest` → 400, `NotFound` → 404.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The path is malformed: bad escaping, traversal, an invalid module path (400).
    #[error("{0}")]
    BadRequest(String),
    /// The path is well-formed but names nothing a proxy can serve: an unknown endpoint, a
    /// non-canonical version for `.mod`/`.zip`, a version whose major does not fit (404).
    #[error("{0}")]
    NotFound(String),
}

impl RequestError {
    /// The HTTP status code this error maps to.
    pub fn status(&self) -> u16 {
        match self {
            RequestError::BadRequest(_) => 400,
            RequestError::NotFound(_) => 404,
        }
    }
}

fn bad(msg: impl Into<String>) -> RequestError {
    RequestError::BadRequest(msg.into())
}

fn not_found(msg: impl Into<String>) -> RequestError {
    RequestError::NotFound(msg.into())
}

/// Quotes `s` for an error message (control characters escaped) and shortens it, so an error
/// body stays one short line.
fn show(s: &str) -> String {
    const MAX: usize = 96;
    if s.len() <= MAX {
        return quote(s);
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", quote(&s[..end]))
}

/// Parses the raw (still percent-encoded) path of a request URI, e.g. `/github.com/%21azure/x/@v/list`.
///
/// Pass only the path (`uri.path()`), without the query string.
pub fn parse(raw_path: &str) -> Result<ProxyRequest, RequestError> {
    if raw_path.len() > MAX_RAW_PATH_LEN {
        return Err(bad(format!(
            "request path too long (over {MAX_RAW_PATH_LEN} bytes)"
        )));
    }
    let Some(raw) = raw_path.strip_prefix('/') else {
        return Err(bad("request path must start with \"/\""));
    };
    let segs = raw
        .split('/')
        .map(decode_segment)
        .collect::<Result<Vec<_>, _>>()?;

    if segs.first().is_some_and(|s| s == "sumdb") {
        return parse_sumdb(&segs[1..]);
    }

    let Some(at) = segs.iter().position(|s| s.starts_with('@')) else {
        return Err(not_found(
            "not a module proxy path: expected /<module>/@v/list, /<module>/@v/<version>.info, \
             .mod, .zip or /<module>/@latest",
        ));
    };
    let endpoint = &*segs[at];
    let tail = &segs[at + 1..];
    // Check the endpoint's shape before the module path: an unknown endpoint is a 404 whatever
    // the module path looks like.
    let file = match (endpoint, tail) {
        ("@latest", []) => None,
        ("@v", [file]) => Some(&**file),
        ("@latest", _) | ("@v", _) => {
            return Err(not_found(format!("unknown path after {endpoint}")));
        }
        _ => return Err(not_found(format!("unknown endpoint {}", show(endpoint)))),
    };

    let module = parse_module(raw, &segs[..at])?;
    let Some(file) = file else {
        return Ok(ProxyRequest::Latest { module });
    };
    if file == "list" {
        return Ok(ProxyRequest::List { module });
    }
    let (escaped_version, kind) = [
        (".info", FileKind::Info),
        (".mod", FileKind::Mod),
        (".zip", FileKind::Zip),
    ]
    .into_iter()
    .find_map(|(suffix, kind)| file.strip_suffix(suffix).map(|v| (v, kind)))
    .ok_or_else(|| {
        not_found(format!(
            "unknown file {} under @v (want list, <version>.info, <version>.mod or <version>.zip)",
            show(file)
        ))
    })?;
    let version = parse_version(escaped_version)?;
    let canonical = semver::is_canonical(&version);
    match kind {
        FileKind::Info if !canonical => Ok(ProxyRequest::Info {
            module,
            version: InfoQuery::Query(version),
        }),
        FileKind::Info => {
            check_version_fits(&module, &version)?;
            Ok(ProxyRequest::Info {
                module,
                version: InfoQuery::Canonical(version),
            })
        }
        FileKind::Mod | FileKind::Zip => {
            if !canonical {
                let ext = if kind == FileKind::Mod {
                    ".mod"
                } else {
                    ".zip"
                };
                // x/mod's wording (`zip.Create`), then why it matters here.
                let should_be = semver::canonical(&version)
                    .map(|c| format!(" (should be {})", quote(&c)))
                    .unwrap_or_default();
                return Err(not_found(format!(
                    "version {} is not canonical{should_be}: {ext} files exist only for canonical versions",
                    show(&version)
                )));
            }
            check_version_fits(&module, &version)?;
            Ok(if kind == FileKind::Mod {
                ProxyRequest::Mod { module, version }
            } else {
                ProxyRequest::Zip { module, version }
            })
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Info,
    Mod,
    Zip,
}

/// Percent-decodes one segment exactly once, refusing what could smuggle a separator,
/// a control character or a traversal into later stages. Borrows when nothing is escaped.
fn decode_segment(raw: &str) -> Result<Cow<'_, str>, RequestError> {
    let b = raw.as_bytes();
    // Allocated at the first escape: most segments have none and are returned as they came.
    let mut decoded: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            let hex = match (
                b.get(i + 1).and_then(hex_val),
                b.get(i + 2).and_then(hex_val),
            ) {
                (Some(hi), Some(lo)) => Some(hi << 4 | lo),
                _ => None,
            };
            let Some(d) = hex else {
                let shown: String = raw[i..].chars().take(3).collect();
                return Err(bad(format!(
                    "malformed percent-escape {} in request path",
                    show(&shown)
                )));
            };
            if d == b'/' || d == b'\\' || d.is_ascii_control() {
                return Err(bad(format!(
                    "percent-escape \"%{:02X}\" decodes to a forbidden character (path separator or control character)",
                    d
                )));
            }
            // Non-ASCII bytes pass to the path checks, which refuse them in x/mod's words
            // (`invalid char 'é'`; `invalid UTF-8` below).
            decoded
                .get_or_insert_with(|| {
                    let mut out = Vec::with_capacity(b.len());
                    out.extend_from_slice(&b[..i]);
                    out
                })
                .push(d);
            i += 3;
            continue;
        }
        if c.is_ascii_control() {
            return Err(bad("request path contains a control character"));
        }
        if !c.is_ascii() {
            return Err(bad("request path contains a non-ASCII character"));
        }
        if c == b'\\' {
            return Err(bad("request path contains a backslash"));
        }
        if let Some(out) = &mut decoded {
            out.push(c);
        }
        i += 1;
    }
    let segment = decoded.as_deref().unwrap_or(b);
    if !segment.is_empty() && segment.iter().all(|&c| c == b'.') {
        return Err(bad("request path contains a \".\" or \"..\" segment"));
    }
    match decoded {
        None => Ok(Cow::Borrowed(raw)),
        Some(out) => String::from_utf8(out).map(Cow::Owned).map_err(|e| {
            // Shortened like `show`: the error body stays one short line.
            const MAX: usize = 96;
            let bytes = e.as_bytes();
            let mut quoted = super::path::quote_bytes(&bytes[..bytes.len().min(MAX)]);
            if bytes.len() > MAX {
                quoted.push_str("...");
            }
            bad(format!("malformed module path {quoted}: invalid UTF-8"))
        }),
    }
}

/// The value of an ASCII hex digit.
fn hex_val(c: &u8) -> Option<u8> {
    char::from(*c)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Joins the module path segments (the first ones of `raw`) and applies `module.UnescapePath`.
fn parse_module(raw: &str, segs: &[Cow<'_, str>]) -> Result<ModulePath, RequestError> {
    let escaped = if segs.iter().all(|s| matches!(s, Cow::Borrowed(_))) {
        // Nothing was percent-decoded: the joined path is the start of `raw` as it came.
        let len = segs
            .iter()
            .map(|s| s.len() + 1)
            .sum::<usize>()
            .saturating_sub(1);
        Cow::Borrowed(&raw[..len])
    } else {
        Cow::Owned(segs.join("/"))
    };
    if escaped.is_empty() {
        return Err(bad("missing module path before \"@\""));
    }
    if escaped.len() > MAX_MODULE_PATH_LEN {
        return Err(bad(format!(
            "module path too long (over {MAX_MODULE_PATH_LEN} bytes)"
        )));
    }
    ModulePath::from_escaped(&escaped).map_err(|_| {
        // Re-run the check for the bare reason, so the message names the path only once.
        let reason = escape::unescape_path_reason(&escaped)
            .err()
            .unwrap_or_default();
        bad(format!("invalid module path {}: {reason}", show(&escaped)))
    })
}

/// Applies `module.UnescapeVersion`, plus a few characters refused so a version can never
/// change meaning when it is put back into an upstream URL or a storage key.
fn parse_version(escaped: &str) -> Result<String, RequestError> {
    if escaped.is_empty() {
        return Err(bad("empty version"));
    }
    if escaped.len() > MAX_VERSION_LEN {
        return Err(bad(format!(
            "version too long (over {MAX_VERSION_LEN} bytes)"
        )));
    }
    let version = escape::unescape_version_reason(escaped)
        .map_err(|reason| bad(format!("invalid version {}: {reason}", show(escaped))))?;
    // Go's file-name rules allow these (the go command sends them percent-encoded), but `%`
    // would be decoded again by a careless consumer (`%2e%2e`) and `#`/space/`?` cut or break
    // URLs; no tag needs them. Not a client error, so 404: a `,` GOPROXY list falls through.
    if let Some(c) = version.chars().find(|c| matches!(c, '%' | '#' | ' ' | '?')) {
        return Err(not_found(format!(
            "version {}: character {} is not served by this proxy",
            show(escaped),
            super::path::quote_rune(c)
        )));
    }
    Ok(version)
}

/// A canonical version must fit the module path's major version (`module.CheckPathMajor`), and
/// `+incompatible` is only possible for major ≥ 2 on a path without a major suffix (the go
/// command's rule in `modfetch/coderepo.go`), so anything else names no version: 404.
fn check_version_fits(module: &ModulePath, version: &str) -> Result<(), RequestError> {
    module
        .check_version(version)
        .map_err(|e| not_found(e.to_string()))?;
    if semver::build(version) == "+incompatible" {
        if !module.path_major().is_empty() {
            return Err(not_found(format!(
                "{}: version {}: +incompatible is not allowed on a path with a major version suffix",
                show(module.as_str()),
                show(version)
            )));
        }
        let major = semver::major(version);
        if major == "v0" || major == "v1" {
            return Err(not_found(format!(
                "{}: version {}: +incompatible suffix not allowed: major version {major} is compatible",
                show(module.as_str()),
                show(version)
            )));
        }
    }
    Ok(())
}

/// `/sumdb/<name>/<rest>`; `segs` is what follows `sumdb`.
fn parse_sumdb(segs: &[Cow<'_, str>]) -> Result<ProxyRequest, RequestError> {
    let [name, rest @ ..] = segs else {
        return Err(not_found("missing checksum database name after /sumdb/"));
    };
    if !is_host_like(name) {
        return Err(bad(format!(
            "invalid checksum database name {}",
            show(name)
        )));
    }
    if rest.is_empty() || (rest.len() == 1 && rest[0].is_empty()) {
        return Err(not_found(format!("missing path after /sumdb/{name}/")));
    }
    for seg in rest {
        if seg.is_empty() {
            return Err(bad("empty segment in checksum database path"));
        }
        if let Some(c) = seg
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || "-._~!@+".contains(c)))
        {
            return Err(bad(format!(
                "checksum database path contains character {}",
                super::path::quote_rune(c)
            )));
        }
    }
    Ok(ProxyRequest::Sumdb {
        name: name.to_string(),
        rest: rest.join("/"),
    })
}

/// A lowercase DNS name with an optional `:port`, as checksum database names are
/// (`sum.golang.org`).
fn is_host_like(name: &str) -> bool {
    let (host, port) = match name.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (name, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    !host.is_empty() && host.len() <= 253 && host.split('.').all(label_ok) && port_ok
}

#[cfg(test)]
mod tests;
