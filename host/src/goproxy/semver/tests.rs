//! Ported from `golang.org/x/mod/semver/semver_test.go`; every expectation was cross-checked
//! against the Go 1.26 implementation.

use super::*;
use std::cmp::Ordering::{Equal, Greater, Less};

/// `semver_test.go` `tests`: input and its `semver.Canonical` form (`""` = invalid), in
/// increasing order of precedence.
const TESTS: &[(&str, &str)] = &[
    ("bad", ""),
    ("v1-alpha.beta.gamma", ""),
    ("v1-pre", ""),
    ("v1+meta", ""),
    ("v1-pre+meta", ""),
    ("v1.2-pre", ""),
    ("v1.2+meta", ""),
    ("v1.2-pre+meta", ""),
    ("v1.0.0-alpha", "v1.0.0-alpha"),
    ("v1.0.0-alpha.1", "v1.0.0-alpha.1"),
    ("v1.0.0-alpha.beta", "v1.0.0-alpha.beta"),
    ("v1.0.0-beta", "v1.0.0-beta"),
    ("v1.0.0-beta.2", "v1.0.0-beta.2"),
    ("v1.0.0-beta.11", "v1.0.0-beta.11"),
    ("v1.0.0-rc.1", "v1.0.0-rc.1"),
    ("v1", "v1.0.0"),
    ("v1.0", "v1.0.0"),
    ("v1.0.0", "v1.0.0"),
    ("v1.2", "v1.2.0"),
    ("v1.2.0", "v1.2.0"),
    ("v1.2.3-456", "v1.2.3-456"),
    ("v1.2.3-456.789", "v1.2.3-456.789"),
    ("v1.2.3-456-789", "v1.2.3-456-789"),
    ("v1.2.3-456a", "v1.2.3-456a"),
    ("v1.2.3-pre", "v1.2.3-pre"),
    ("v1.2.3-pre+meta", "v1.2.3-pre"),
    ("v1.2.3-pre.1", "v1.2.3-pre.1"),
    ("v1.2.3-zzz", "v1.2.3-zzz"),
    ("v1.2.3", "v1.2.3"),
    ("v1.2.3+meta", "v1.2.3"),
    ("v1.2.3+meta-pre", "v1.2.3"),
    ("v1.2.3+meta-pre.sha.256a", "v1.2.3"),
];

#[test]
fn is_valid_table() {
    for &(input, out) in TESTS {
        assert_eq!(is_valid(input), !out.is_empty(), "is_valid({input:?})");
    }
}

#[test]
fn canonical_semver_table() {
    for &(input, out) in TESTS {
        let want = (!out.is_empty()).then(|| out.to_owned());
        assert_eq!(canonical_semver(input), want, "canonical_semver({input:?})");
    }
}

#[test]
fn canonical_keeps_incompatible() {
    // module.CanonicalVersion.
    for (input, want) in [
        ("v2.0.0+incompatible", Some("v2.0.0+incompatible")),
        ("v2.0.0-pre+incompatible", Some("v2.0.0-pre+incompatible")),
        ("v2.0.0+meta", Some("v2.0.0")),
        ("v2.0.0+incompatible.1", Some("v2.0.0")),
        ("v2+incompatible", None),
        ("v1.2", Some("v1.2.0")),
        ("v1.2.3", Some("v1.2.3")),
        ("1.2.3", None),
        ("", None),
    ] {
        assert_eq!(canonical(input).as_deref(), want, "canonical({input:?})");
    }
    assert_eq!(
        canonical_semver("v2.0.0+incompatible").as_deref(),
        Some("v2.0.0")
    );
    for &(input, out) in TESTS {
        let want = (!out.is_empty()).then(|| out.to_owned());
        assert_eq!(canonical(input), want, "canonical({input:?})");
    }
}

#[test]
fn major_table() {
    for &(input, out) in TESTS {
        let want = out.find('.').map_or("", |i| &out[..i]);
        assert_eq!(major(input), want, "major({input:?})");
    }
}

#[test]
fn major_minor_table() {
    for &(input, out) in TESTS {
        let mut want = String::new();
        if !out.is_empty() {
            want = input.to_owned();
            if let Some(i) = want.find('+') {
                want.truncate(i);
            }
            if let Some(i) = want.find('-') {
                want.truncate(i);
            }
            match want.matches('.').count() {
                0 => want.push_str(".0"),
                1 => {}
                _ => {
                    let i = want.rfind('.').unwrap_or(want.len());
                    want.truncate(i);
                }
            }
        }
        assert_eq!(major_minor(input), want, "major_minor({input:?})");
    }
}

#[test]
fn prerelease_table() {
    for &(input, out) in TESTS {
        let want = if out.is_empty() {
            ""
        } else {
            out.find('-').map_or("", |i| &out[i..])
        };
        assert_eq!(prerelease(input), want, "prerelease({input:?})");
    }
}

#[test]
fn build_table() {
    for &(input, out) in TESTS {
        let want = if out.is_empty() {
            ""
        } else {
            input.find('+').map_or("", |i| &input[i..])
        };
        assert_eq!(build(input), want, "build({input:?})");
    }
}

#[test]
fn compare_table() {
    for (i, &(vi, ci)) in TESTS.iter().enumerate() {
        for (j, &(vj, cj)) in TESTS.iter().enumerate() {
            let want = if ci == cj { Equal } else { i.cmp(&j) };
            assert_eq!(compare(vi, vj), want, "compare({vi:?}, {vj:?})");
        }
    }
}

#[test]
fn compare_explicit() {
    for (v, w, want) in [
        ("v1", "v1", Equal),
        ("v2", "v1", Greater),
        ("v1", "v2", Less),
        // Numeric, not bytewise.
        ("v1.19", "v1.2", Greater),
        ("v1.10.0", "v1.9.0", Greater),
        ("v10.0.0", "v9.0.0", Greater),
        ("v1.0.0-beta.11", "v1.0.0-beta.2", Greater),
        ("v1.0.0-alpha", "v1.0.0-alpha.1", Less),
        ("v1.0.0-1", "v1.0.0-a", Less),
        ("v1.0.0-a-b", "v1.0.0-a.b", Greater),
        ("v1.0.0+a", "v1.0.0+b", Equal),
        ("v2.0.0+incompatible", "v2.0.0", Equal),
        ("v0.0.0-20190101000000-abcdefabcdef", "v0.0.0", Less),
        ("v1.2.4-0.20190101000000-abcdefabcdef", "v1.2.3", Greater),
        ("v1.2.4-0.20190101000000-abcdefabcdef", "v1.2.4-pre", Less),
        ("bad", "", Equal),
        ("bad", "v0.0.0", Less),
        ("v99999999999999999999.0.0", "v2.0.0", Greater),
    ] {
        assert_eq!(compare(v, w), want, "compare({v:?}, {w:?})");
        assert_eq!(compare(w, v), want.reverse(), "compare({w:?}, {v:?})");
    }
}

#[test]
fn sort_is_total_and_stable_against_shuffles() {
    let mut versions: Vec<&str> = TESTS.iter().map(|t| t.0).collect();
    versions.reverse();
    versions.rotate_left(7);
    sort(&mut versions);
    for w in versions.windows(2) {
        assert_ne!(
            compare_versions(w[0], w[1]),
            Greater,
            "{:?} before {:?}",
            w[0],
            w[1]
        );
    }
    // Invalid strings first (bytewise among themselves), then by precedence.
    assert_eq!(&versions[..3], &["bad", "v1+meta", "v1-alpha.beta.gamma"]);
    assert_eq!(versions.last(), Some(&"v1.2.3+meta-pre.sha.256a"));
}

#[test]
fn max_table() {
    for (i, &(vi, _)) in TESTS.iter().enumerate() {
        for (j, &(vj, _)) in TESTS.iter().enumerate() {
            let want = canonical_semver(if i < j { vj } else { vi }).unwrap_or_default();
            assert_eq!(max(vi, vj), want, "max({vi:?}, {vj:?})");
        }
    }
}

#[test]
fn leading_zeros_and_garbage() {
    for bad in [
        "v01.0.0",
        "v1.01.0",
        "v1.0.01",
        "v1.0.0-01",
        "v1.0.0-",
        "v1.0.0-a..b",
        "v1.0.0+",
        "v1.0.0+a..b",
        "v1.0.0-a+",
        "V1.0.0",
        "v1.0.0 ",
        " v1.0.0",
        "v1.0.0.0",
        "v",
        "v.1",
        "v1.",
        "v1.0.",
        "v1.0.0-é",
        "v-1",
        "v1.0.0_x",
    ] {
        assert!(!is_valid(bad), "{bad:?} should be invalid");
        assert_eq!(canonical(bad), None);
        assert_eq!(major(bad), "");
        assert_eq!(prerelease(bad), "");
    }
    for good in [
        "v0",
        "v0.0",
        "v0.0.0",
        "v1.0.0-0",
        "v1.0.0-0a",
        "v1.0.0-a.0",
        "v1.0.0+01",
    ] {
        assert!(is_valid(good), "{good:?} should be valid");
    }
}

#[test]
fn shorthands_take_no_build_or_prerelease() {
    // semver.parse: after a short `v1.2` only the end of the string is allowed.
    for v in ["v1.2+foo", "v1+foo", "v1.2-pre", "v1-pre"] {
        assert!(!is_valid(v), "{v}");
        assert_eq!(canonical(v), None, "{v}");
    }
    assert_eq!(canonical("v1.2").as_deref(), Some("v1.2.0"));
    assert_eq!(canonical("v1.2.3+foo").as_deref(), Some("v1.2.3"));
}
