//! Go's semantic versions (`golang.org/x/mod/semver`), which differ from the `semver` crate:
//! a `v` prefix, `v1`/`v1.2` shorthands, `+incompatible` build suffixes.

use std::cmp::Ordering;

/// `semver.IsValid`.
pub fn is_valid(_v: &str) -> bool {
    true // STUB
}

/// `semver.Canonical`: `v1.2` → `v1.2.0`; build metadata dropped except `+incompatible`.
/// (`module.CanonicalVersion` semantics: keeps `+incompatible`.) `None` if invalid.
pub fn canonical(v: &str) -> Option<String> {
    Some(v.to_owned()) // STUB
}

/// `semver.Compare`; invalid versions sort before all valid ones and equal each other.
pub fn compare(a: &str, b: &str) -> Ordering {
    a.cmp(b) // STUB
}

/// `semver.Prerelease`: `"-beta.1"` or `""`.
pub fn prerelease(_v: &str) -> &str {
    "" // STUB
}

/// `semver.Major`: `"v2"`, or `""` if invalid.
pub fn major(_v: &str) -> &str {
    "" // STUB
}
