//! Go's semantic versions (`golang.org/x/mod/semver`), which differ from the `semver` crate:
//! a `v` prefix, `v1`/`v1.2` shorthands, `+incompatible` build suffixes.
//!
//! A faithful port of `semver/semver.go` (as vendored in Go 1.26). The accepted syntax is
//! `vMAJOR[.MINOR[.PATCH[-PRERELEASE][+BUILD]]]`: numbers without leading zeros, pre-release and
//! build made of non-empty dot-separated `[0-9A-Za-z-]` identifiers, numeric pre-release
//! identifiers without leading zeros, and the shorthands `vMAJOR`/`vMAJOR.MINOR` only without
//! pre-release or build.

use std::cmp::Ordering;

/// The parts of a valid version, borrowed from the input (`semver.go` `parsed`).
#[derive(Debug, Clone, Copy)]
struct Parsed<'a> {
    major: &'a str,
    minor: &'a str,
    patch: &'a str,
    /// What the shorthand omitted: `".0.0"`, `".0"` or `""`.
    short: &'static str,
    /// `"-pre.1"` including the dash, or `""`.
    prerelease: &'a str,
    /// `"+meta"` including the plus, or `""`.
    build: &'a str,
}

/// `semver.parse`.
fn parse(v: &str) -> Option<Parsed<'_>> {
    let rest = v.strip_prefix('v')?;
    let (major, rest) = parse_int(rest)?;
    if rest.is_empty() {
        return Some(Parsed {
            major,
            minor: "0",
            patch: "0",
            short: ".0.0",
            prerelease: "",
            build: "",
        });
    }
    let (minor, rest) = parse_int(rest.strip_prefix('.')?)?;
    if rest.is_empty() {
        return Some(Parsed {
            major,
            minor,
            patch: "0",
            short: ".0",
            prerelease: "",
            build: "",
        });
    }
    let (patch, mut rest) = parse_int(rest.strip_prefix('.')?)?;
    let mut prerelease = "";
    if rest.starts_with('-') {
        (prerelease, rest) = parse_prerelease(rest)?;
    }
    let mut build = "";
    if rest.starts_with('+') {
        (build, rest) = parse_build(rest)?;
    }
    if !rest.is_empty() {
        return None;
    }
    Some(Parsed {
        major,
        minor,
        patch,
        short: "",
        prerelease,
        build,
    })
}

/// `semver.parseInt`: a decimal number without leading zeros, and the rest.
fn parse_int(v: &str) -> Option<(&str, &str)> {
    let digits = v.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || (v.starts_with('0') && digits != 1) {
        return None;
    }
    Some(v.split_at(digits))
}

/// `semver.parsePrerelease`: `-ident(.ident)*` up to a `+` or the end.
fn parse_prerelease(v: &str) -> Option<(&str, &str)> {
    let b = v.as_bytes();
    if b.first() != Some(&b'-') {
        return None;
    }
    let mut i = 1;
    let mut start = 1;
    while i < b.len() && b[i] != b'+' {
        if !is_ident_char(b[i]) && b[i] != b'.' {
            return None;
        }
        if b[i] == b'.' {
            if start == i || is_bad_num(&v[start..i]) {
                return None;
            }
            start = i + 1;
        }
        i += 1;
    }
    if start == i || is_bad_num(&v[start..i]) {
        return None;
    }
    Some(v.split_at(i))
}

/// `semver.parseBuild`: `+ident(.ident)*` to the end.
fn parse_build(v: &str) -> Option<(&str, &str)> {
    let b = v.as_bytes();
    if b.first() != Some(&b'+') {
        return None;
    }
    let mut i = 1;
    let mut start = 1;
    while i < b.len() {
        if !is_ident_char(b[i]) && b[i] != b'.' {
            return None;
        }
        if b[i] == b'.' {
            if start == i {
                return None;
            }
            start = i + 1;
        }
        i += 1;
    }
    if start == i {
        return None;
    }
    Some(v.split_at(i))
}

/// `semver.isIdentChar`.
fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-'
}

/// `semver.isBadNum`: an all-digit identifier with a leading zero.
fn is_bad_num(v: &str) -> bool {
    v.len() > 1 && v.starts_with('0') && is_num(v)
}

/// `semver.isNum` (true for the empty string, as in Go).
fn is_num(v: &str) -> bool {
    v.bytes().all(|c| c.is_ascii_digit())
}

/// `semver.compareInt`: numbers without leading zeros compare by length, then bytewise.
fn compare_int(x: &str, y: &str) -> Ordering {
    x.len().cmp(&y.len()).then_with(|| x.cmp(y))
}

/// `semver.comparePrerelease`, following semver.org §11.
fn compare_prerelease(x: &str, y: &str) -> Ordering {
    if x == y {
        return Ordering::Equal;
    }
    // A version without pre-release sorts after every pre-release of it.
    if x.is_empty() {
        return Ordering::Greater;
    }
    if y.is_empty() {
        return Ordering::Less;
    }
    // Both start with '-'; identifiers are separated by '.'.
    let mut xs = x[1..].split('.');
    let mut ys = y[1..].split('.');
    loop {
        match (xs.next(), ys.next()) {
            (Some(dx), Some(dy)) => {
                if dx == dy {
                    continue;
                }
                let (ix, iy) = (is_num(dx), is_num(dy));
                return match (ix, iy) {
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                    (true, true) => compare_int(dx, dy),
                    (false, false) => dx.cmp(dy),
                };
            }
            // More identifiers sort later when all preceding ones are equal.
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            // Unreachable for x != y, but equal is the honest answer.
            (None, None) => return Ordering::Equal,
        }
    }
}

/// `semver.IsValid`: whether `v` is a valid Go semantic version (`v1`, `v1.2`, `v1.2.3-pre+b`).
pub fn is_valid(v: &str) -> bool {
    parse(v).is_some()
}

/// Whether `v` is its own [`canonical`] form (`v1.2.3`, `v2.0.0+incompatible`; not `v1.2`,
/// `v1.2.3+meta` or an invalid version), without building that form.
pub fn is_canonical(v: &str) -> bool {
    // A shorthand (`v1.2`) never has a build suffix, so `short` and `build` exclude each other.
    parse(v)
        .is_some_and(|p| p.short.is_empty() && (p.build.is_empty() || p.build == "+incompatible"))
}

/// `semver.Canonical`: `v1.2` → `v1.2.0`; build metadata dropped except `+incompatible`.
/// (`module.CanonicalVersion` semantics: keeps `+incompatible`.) `None` if invalid.
pub fn canonical(v: &str) -> Option<String> {
    let p = parse(v)?;
    // module.CanonicalVersion: semver.Canonical, then re-append "+incompatible".
    let mut out = if !p.build.is_empty() {
        v[..v.len() - p.build.len()].to_owned()
    } else {
        format!("{v}{}", p.short)
    };
    if p.build == "+incompatible" {
        out.push_str("+incompatible");
    }
    Some(out)
}

/// `semver.Canonical` exactly: like [`canonical`] but drops every build suffix, including
/// `+incompatible` (`v2.0.0+incompatible` → `v2.0.0`). `None` if invalid.
pub fn canonical_semver(v: &str) -> Option<String> {
    let p = parse(v)?;
    Some(if !p.build.is_empty() {
        v[..v.len() - p.build.len()].to_owned()
    } else {
        format!("{v}{}", p.short)
    })
}

/// `semver.Compare`; invalid versions sort before all valid ones and equal each other.
/// Build metadata is ignored: `v1.0.0+a` equals `v1.0.0+b`.
pub fn compare(a: &str, b: &str) -> Ordering {
    match (parse(a), parse(b)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(pa), Some(pb)) => compare_int(pa.major, pb.major)
            .then_with(|| compare_int(pa.minor, pb.minor))
            .then_with(|| compare_int(pa.patch, pb.patch))
            .then_with(|| compare_prerelease(pa.prerelease, pb.prerelease)),
    }
}

/// `semver.Prerelease`: `"-beta.1"` or `""`.
pub fn prerelease(v: &str) -> &str {
    parse(v).map_or("", |p| p.prerelease)
}

/// `semver.Build`: `"+incompatible"`, `"+meta"` or `""` (also `""` if invalid).
pub fn build(v: &str) -> &str {
    parse(v).map_or("", |p| p.build)
}

/// `semver.Major`: `"v2"`, or `""` if invalid.
pub fn major(v: &str) -> &str {
    parse(v).map_or("", |p| &v[..1 + p.major.len()])
}

/// `semver.MajorMinor`: `"v2.1"` for `v2.1.0` (and `"v2.0"` for the shorthand `v2`), or `""`
/// if invalid.
pub fn major_minor(v: &str) -> String {
    let Some(p) = parse(v) else {
        return String::new();
    };
    let i = 1 + p.major.len();
    let j = i + 1 + p.minor.len();
    if j <= v.len() && v.as_bytes()[i] == b'.' && &v[i + 1..j] == p.minor {
        return v[..j].to_owned();
    }
    format!("{}.{}", &v[..i], p.minor)
}

/// `semver.Max` (deprecated in Go, kept for completeness): the canonical form (as
/// `semver.Canonical`, dropping build metadata) of whichever version is greater; `""` if both
/// are invalid.
pub fn max(a: &str, b: &str) -> String {
    let a = canonical_semver(a).unwrap_or_default();
    let b = canonical_semver(b).unwrap_or_default();
    if compare(&a, &b) == Ordering::Greater {
        a
    } else {
        b
    }
}

/// `semver.Sort`: sorts by [`compare`], breaking ties (equal precedence, e.g. different build
/// metadata, or two invalid strings) bytewise, so the order is total and deterministic.
pub fn sort<S: AsRef<str>>(list: &mut [S]) {
    list.sort_by(|a, b| compare_versions(a.as_ref(), b.as_ref()));
}

/// `semver.compareVersion`: [`compare`], then bytewise; the comparator behind [`sort`].
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    compare(a, b).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests;
