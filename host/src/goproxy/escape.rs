//! Case-escaping of module paths and versions (`module.EscapePath`/`UnescapePath`,
//! `module.EscapeVersion`/`UnescapeVersion`).
//!
//! Proxy URLs and cache directories must not depend on a case-sensitive file system, so every
//! uppercase ASCII letter is written as `!` plus its lowercase form: `github.com/Azure/x` →
//! `github.com/!azure/x`. Module paths and versions never contain a literal `!`, so the
//! encoding is unambiguous. Port of `golang.org/x/mod/module/module.go` (Go 1.26).

use super::path::{self, PathError, quote};

/// `module.EscapePath`: checks `path` with `module.CheckPath`, then case-escapes it.
pub fn escape_path(path: &str) -> Result<String, PathError> {
    path::check_path(path)?;
    escape_string(path).map_err(PathError)
}

/// `module.EscapeVersion`: a version (canonical or a query such as a branch name) must be a
/// valid file name without `!`; it is then case-escaped (`v1.0.0-RC1` → `v1.0.0-!r!c1`).
pub fn escape_version(v: &str) -> Result<String, PathError> {
    if path::check_version_elem(v).is_err() || v.contains('!') {
        return Err(PathError(format!(
            "version {} invalid: disallowed version string",
            quote(v)
        )));
    }
    escape_string(v).map_err(PathError)
}

/// `module.UnescapePath`: decodes `!x` → `X`, then checks the result with `module.CheckPath`.
/// A raw uppercase letter, `!` not followed by `a`–`z`, a trailing `!` or a non-ASCII character
/// is an error.
pub fn unescape_path(escaped: &str) -> Result<String, PathError> {
    unescape_path_reason(escaped).map_err(|reason| {
        PathError(format!(
            "invalid escaped module path {}: {reason}",
            quote(escaped)
        ))
    })
}

/// [`unescape_path`], returning only the reason on failure (callers add the path).
pub(crate) fn unescape_path_reason(escaped: &str) -> Result<String, String> {
    let path = unescape_string(escaped)?;
    path::check_module_path_reason(&path)?;
    Ok(path)
}

/// `module.UnescapeVersion`: decodes `!x` → `X`; the result must be a valid file name.
pub fn unescape_version(escaped: &str) -> Result<String, PathError> {
    unescape_version_reason(escaped).map_err(|reason| {
        PathError(format!(
            "invalid escaped version {}: {reason}",
            quote(escaped)
        ))
    })
}

/// [`unescape_version`], returning only the reason on failure (callers add the version).
pub(crate) fn unescape_version_reason(escaped: &str) -> Result<String, String> {
    let v = unescape_string(escaped)?;
    path::check_version_elem(&v)?;
    Ok(v)
}

/// `module.escapeString`: `A` → `!a`. Fails (an internal inconsistency in Go) on `!` or
/// non-ASCII input, which every caller has already ruled out.
pub(crate) fn escape_string(s: &str) -> Result<String, String> {
    if s.bytes().any(|b| b == b'!' || !b.is_ascii()) {
        // x/mod's words exactly: EscapeVersion reaches this with non-ASCII letters.
        return Err("internal error: inconsistency in EscapePath".to_owned());
    }
    let mut out = String::with_capacity(s.len() + s.len() / 4);
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            out.push('!');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// `module.unescapeString`, saying why decoding failed (Go only reports that it did).
fn unescape_string(escaped: &str) -> Result<String, String> {
    let mut out = String::with_capacity(escaped.len());
    let mut bang = false;
    for r in escaped.chars() {
        if !r.is_ascii() {
            return Err(format!("non-ASCII character {}", path::quote_rune(r)));
        }
        if bang {
            bang = false;
            if !r.is_ascii_lowercase() {
                return Err(format!(
                    "'!' followed by {}, not a lowercase letter",
                    path::quote_rune(r)
                ));
            }
            out.push(r.to_ascii_uppercase());
            continue;
        }
        if r == '!' {
            bang = true;
            continue;
        }
        if r.is_ascii_uppercase() {
            return Err(format!(
                "uppercase letter {} must be escaped as \"!{}\"",
                path::quote_rune(r),
                r.to_ascii_lowercase()
            ));
        }
        out.push(r);
    }
    if bang {
        return Err("trailing '!'".into());
    }
    Ok(out)
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    /// Found by tests/integration/xmod_rules.rs: a version with non-ASCII letters passes
    /// checkElem but not escapeString, with x/mod's own words.
    #[test]
    fn escape_version_refuses_non_ascii_in_x_mods_words() {
        assert_eq!(
            escape_version("0\u{e9}x").map_err(|e| e.to_string()),
            Err("internal error: inconsistency in EscapePath".to_owned())
        );
    }

    /// `module_test.go` `escapeTests`.
    #[test]
    fn escape_round_trips() {
        for (path, esc) in [
            ("ascii.com/abcdefghijklmnopqrstuvwxyz.-/~_0123456789", None),
            (
                "github.com/GoogleCloudPlatform/omega",
                Some("github.com/!google!cloud!platform/omega"),
            ),
            (
                "github.com/Azure/azure-sdk-for-go",
                Some("github.com/!azure/azure-sdk-for-go"),
            ),
            (
                "github.com/Sirupsen/logrus",
                Some("github.com/!sirupsen/logrus"),
            ),
        ] {
            let esc = esc.unwrap_or(path);
            assert_eq!(
                escape_path(path).as_deref(),
                Ok(esc),
                "escape_path({path:?})"
            );
            assert_eq!(
                unescape_path(esc).as_deref(),
                Ok(path),
                "unescape_path({esc:?})"
            );
        }
    }

    /// `module_test.go` `badUnescape`.
    #[test]
    fn bad_unescape() {
        for bad in [
            "github.com/GoogleCloudPlatform/omega",
            "github.com/!google!cloud!platform!/omega",
            "github.com/!0google!cloud!platform/omega",
            "github.com/!_google!cloud!platform/omega",
            "github.com/!!google!cloud!platform/omega",
            "",
            "github.com/x!",
            "github.com/é",
            // Decodes fine but is not a module path (uppercase in the first element).
            "!github.com/x",
        ] {
            assert!(
                unescape_path(bad).is_err(),
                "unescape_path({bad:?}) should fail"
            );
        }
    }

    #[test]
    fn unescape_messages_are_helpful() {
        let err = unescape_path("github.com/Azure/x").unwrap_err().0;
        assert_eq!(
            err,
            r#"invalid escaped module path "github.com/Azure/x": uppercase letter 'A' must be escaped as "!a""#
        );
        let err = unescape_path("github.com/x!").unwrap_err().0;
        assert_eq!(
            err,
            r#"invalid escaped module path "github.com/x!": trailing '!'"#
        );
        let err = unescape_path("github.com/a~1").unwrap_err().0;
        assert_eq!(
            err,
            r#"invalid escaped module path "github.com/a~1": trailing tilde and digits in path element"#
        );
    }

    #[test]
    fn versions() {
        for (v, esc) in [
            ("v1.0.0", "v1.0.0"),
            ("v1.0.0-RC1", "v1.0.0-!r!c1"),
            ("master", "master"),
            ("Feature_X", "!feature_!x"),
            ("v2.0.0+incompatible", "v2.0.0+incompatible"),
        ] {
            assert_eq!(
                escape_version(v).as_deref(),
                Ok(esc),
                "escape_version({v:?})"
            );
            assert_eq!(
                unescape_version(esc).as_deref(),
                Ok(v),
                "unescape_version({esc:?})"
            );
        }
        for bad in [
            "", "v1!", "a/b", "..", ".", "x.", "a:b", "a*b", "con", "a\u{0}b", "v1.0.0\n",
        ] {
            assert!(escape_version(bad).is_err(), "escape_version({bad:?})");
        }
        for bad in [
            "", "V1", "v1!", "!", "a/b", "..", "x.", "a?b", "com1.x", "é",
        ] {
            assert!(unescape_version(bad).is_err(), "unescape_version({bad:?})");
        }
        // Versions are file names: a leading dot or `~digits` is fine (Go agrees).
        assert_eq!(unescape_version(".x").as_deref(), Ok(".x"));
        assert_eq!(unescape_version("x~1").as_deref(), Ok("x~1"));
    }
}
