//! Ported from `golang.org/x/mod/module/pseudo_test.go`, plus cases whose expectations were
//! produced by the Go 1.26 implementation.

#![expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use super::*;

/// `pseudo_test.go` `pseudoTests`: major, older tag, resulting pseudo-version.
const PSEUDO_TESTS: &[(&str, &str, &str)] = &[
    ("", "", "v0.0.0-20060102150405-hash"),
    ("v0", "", "v0.0.0-20060102150405-hash"),
    ("v1", "", "v1.0.0-20060102150405-hash"),
    ("v2", "", "v2.0.0-20060102150405-hash"),
    ("unused", "v0.0.0", "v0.0.1-0.20060102150405-hash"),
    ("unused", "v1.2.3", "v1.2.4-0.20060102150405-hash"),
    (
        "unused",
        "v1.2.99999999999999999",
        "v1.2.100000000000000000-0.20060102150405-hash",
    ),
    ("unused", "v1.2.3-pre", "v1.2.3-pre.0.20060102150405-hash"),
    ("unused", "v1.3.0-pre", "v1.3.0-pre.0.20060102150405-hash"),
    ("unused", "v0.0.0--", "v0.0.0--.0.20060102150405-hash"),
    (
        "unused",
        "v1.0.0+metadata",
        "v1.0.1-0.20060102150405-hash+metadata",
    ),
    (
        "unused",
        "v2.0.0+incompatible",
        "v2.0.1-0.20060102150405-hash+incompatible",
    ),
    (
        "unused",
        "v2.3.0-pre+incompatible",
        "v2.3.0-pre.0.20060102150405-hash+incompatible",
    ),
];

fn pseudo_time() -> Timestamp {
    Timestamp::new(2006, 1, 2, 15, 4, 5).unwrap()
}

#[test]
fn pseudo_version_table() {
    for &(major, older, want) in PSEUDO_TESTS {
        assert_eq!(
            pseudo_version(major, older, pseudo_time(), "hash"),
            want,
            "{major:?} {older:?}"
        );
    }
}

#[test]
fn is_pseudo_version_table() {
    for &(_, older, version) in PSEUDO_TESTS {
        assert!(is_pseudo_version(version), "{version:?}");
        assert!(!is_pseudo_version(older), "{older:?}");
    }
}

#[test]
fn pseudo_version_time_table() {
    for &(_, older, version) in PSEUDO_TESTS {
        assert_eq!(
            pseudo_version_time(version),
            Ok(pseudo_time()),
            "{version:?}"
        );
        assert!(pseudo_version_time(older).is_err(), "{older:?}");
    }
    assert!(pseudo_version_time("---").is_err());
}

#[test]
fn pseudo_version_rev_table() {
    for &(_, older, version) in PSEUDO_TESTS {
        assert_eq!(pseudo_version_rev(version), Ok("hash"), "{version:?}");
        assert!(pseudo_version_rev(older).is_err(), "{older:?}");
    }
}

#[test]
fn pseudo_version_base_table() {
    for &(_, older, version) in PSEUDO_TESTS {
        let want = (!older.is_empty()).then(|| older.to_owned());
        assert_eq!(pseudo_version_base(version), Ok(want), "{version:?}");
    }
}

/// `pseudo_test.go` `TestInvalidPseudoVersionBase`.
#[test]
fn invalid_pseudo_version_base() {
    for v in [
        "v0.0.0",
        "v0.0.0-",                                 // malformed: empty prerelease
        "v0.0.0-0.20060102150405-hash",            // Z+1 == 0
        "v0.1.0-0.20060102150405-hash",            // Z+1 == 0
        "v1.0.0-0.20060102150405-hash",            // Z+1 == 0
        "v0.0.0-20060102150405-hash+incompatible", // "+incompatible without base version
        "v0.0.0-20060102150405-hash+metadata",     // other metadata without base version
    ] {
        assert!(pseudo_version_base(v).is_err(), "{v:?}");
    }
    assert_eq!(
        pseudo_version_base("v1.0.0-0.20060102150405-hash")
            .unwrap_err()
            .to_string(),
        r#"pseudo-version "v1.0.0-0.20060102150405-hash" invalid: version before v1.0.0 would have negative patch number"#
    );
}

#[test]
fn inc_dec_decimal() {
    for (input, want) in [
        ("0", "1"),
        ("1", "2"),
        ("99", "100"),
        ("100", "101"),
        ("101", "102"),
    ] {
        assert_eq!(inc_decimal(input), want);
    }
    for (input, want) in [
        ("", ""),
        ("0", ""),
        ("00", ""),
        ("1", "0"),
        ("2", "1"),
        ("99", "98"),
        ("100", "99"),
        ("101", "100"),
    ] {
        assert_eq!(dec_decimal(input), want, "dec_decimal({input:?})");
    }
}

#[test]
fn is_pseudo_version_edge_cases() {
    // Cross-checked against Go 1.26 module.IsPseudoVersion.
    for (v, want) in [
        ("v0.0.0-20191109021931-daa7c04131f5", true),
        ("v1.2.4-0.20191109021931-daa7c04131f5", true),
        ("v1.2.4-0.20191109021931-daa7c04131f5+incompatible", true),
        ("v1.2.3-pre.0.20191109021931-daa7c04131f5", true),
        ("v1.2.3-a.b.0.20191109021931-daa7c04131f5", true),
        ("v1.2.3-0.0.20191109021931-daa7c04131f5", true),
        ("v2.0.0-20191109021931-daa7c04131f5", true),
        ("v1.0.0-20191109021931-daa7c04131f5", true),
        ("v1.1.0-20191109021931-daa7c04131f5", false), // form 1 needs .0.0
        ("v0.0.0-2019110902193-daa7c04131f5", false),  // 13 digits
        ("v0.0.0-201911090219310-daa7c04131f5", false), // 15 digits
        ("v0.0.0-20191109021931-", false),
        ("v0.0.0-20191109021931", false),
        ("v0.0.0-20191109021931-daa7c04131f5.x", false),
        ("v1.2.4-1.20191109021931-daa7c04131f5", false), // prerelease must end in 0.
        ("v1.2.4-00.20191109021931-daa7c04131f5", false), // leading zero: not semver
        ("v1.2.4-pre0.20191109021931-daa7c04131f5", false),
        ("v1.2.3-0.20191109021931-daa7c04131f5+", false),
        ("v1.2.3-0.20191109021931-daa7c04131f5+a..b", false),
        ("v1.2.3-0.99999999999999-daa7c04131f5", true), // syntax only; the time is invalid
        ("v1.2-0.20191109021931-daa7c04131f5", false),
        ("1.2.4-0.20191109021931-daa7c04131f5", false),
        ("", false),
    ] {
        assert_eq!(is_pseudo_version(v), want, "is_pseudo_version({v:?})");
    }
}

#[test]
fn pseudo_version_time_validates_calendar() {
    // Go's time.Parse rejects impossible dates; pseudo-versions keep the syntax regardless.
    for (v, ok) in [
        ("v0.0.0-20200229000000-abcdefabcdef", true),
        ("v0.0.0-20190229000000-abcdefabcdef", false),
        ("v0.0.0-21000229000000-abcdefabcdef", false),
        ("v0.0.0-20000229000000-abcdefabcdef", true),
        ("v0.0.0-20191301000000-abcdefabcdef", false),
        ("v0.0.0-20190001000000-abcdefabcdef", false),
        ("v0.0.0-20190100000000-abcdefabcdef", false),
        ("v0.0.0-20190431000000-abcdefabcdef", false),
        ("v0.0.0-20190101240000-abcdefabcdef", false),
        ("v0.0.0-20190101006000-abcdefabcdef", false),
        ("v0.0.0-20190101000060-abcdefabcdef", false),
        ("v0.0.0-20190101235959-abcdefabcdef", true),
        ("v0.0.0-00000101000000-abcdefabcdef", true),
        ("v0.0.0-99991231235959-abcdefabcdef", true),
    ] {
        assert_eq!(
            pseudo_version_time(v).is_ok(),
            ok,
            "pseudo_version_time({v:?})"
        );
    }
    let err = pseudo_version_time("v0.0.0-20190229000000-abcdefabcdef").unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"pseudo-version "v0.0.0-20190229000000-abcdefabcdef" invalid: malformed time "20190229000000""#
    );
}

#[test]
fn zero_pseudo_versions() {
    assert_eq!(
        zero_pseudo_version(""),
        "v0.0.0-00010101000000-000000000000"
    );
    assert_eq!(
        zero_pseudo_version("v2"),
        "v2.0.0-00010101000000-000000000000"
    );
    assert!(is_zero_pseudo_version("v0.0.0-00010101000000-000000000000"));
    assert!(is_zero_pseudo_version("v3.0.0-00010101000000-000000000000"));
    assert!(!is_zero_pseudo_version(
        "v0.0.0-00010101000000-000000000001"
    ));
    assert!(!is_zero_pseudo_version("v0.0.0"));
}

#[test]
fn timestamps() {
    let t = Timestamp::from_unix(1_554_465_600).unwrap();
    assert_eq!(t.to_string(), "2019-04-05T12:00:00Z");
    assert_eq!(t.pseudo_format(), "20190405120000");
    assert_eq!(t.unix_seconds(), 1_554_465_600);
    assert_eq!(Timestamp::from_system_time(t.to_system_time()), Some(t));
    let epoch = Timestamp::from_unix(0).unwrap();
    assert_eq!(epoch.to_string(), "1970-01-01T00:00:00Z");
    let before = Timestamp::from_unix(-1).unwrap();
    assert_eq!(before.to_string(), "1969-12-31T23:59:59Z");
    let go_zero = Timestamp::new(1, 1, 1, 0, 0, 0).unwrap();
    assert_eq!(go_zero.unix_seconds(), -62_135_596_800);
    assert_eq!(Timestamp::from_unix(-62_135_596_800), Some(go_zero));
    assert_eq!(
        Timestamp::from_unix(253_402_300_799).unwrap().to_string(),
        "9999-12-31T23:59:59Z"
    );
    assert_eq!(Timestamp::from_unix(253_402_300_800), None);
    assert_eq!(Timestamp::from_unix(-62_167_219_201), None); // before year 0
    assert_eq!(
        Timestamp::from_unix(-62_167_219_200).unwrap().to_string(),
        "0000-01-01T00:00:00Z"
    );
    // Every 7th day of years 0000–9999 round-trips (weekday drift covers every day class).
    for day in (-719_528..2_932_897).step_by(7) {
        let t = Timestamp::from_unix(day * 86_400 + 3_723).unwrap();
        assert_eq!(t.unix_seconds(), day * 86_400 + 3_723);
        assert_eq!(Timestamp::parse_pseudo(&t.pseudo_format()), Some(t));
    }
    let pre_epoch = UNIX_EPOCH - Duration::from_millis(1500);
    assert_eq!(
        Timestamp::from_system_time(pre_epoch).unwrap().to_string(),
        "1969-12-31T23:59:58Z"
    );
}

#[test]
fn pseudo_round_trip() {
    let t = Timestamp::new(2019, 11, 9, 2, 19, 31).unwrap();
    for (major, older) in [
        ("v0", ""),
        ("v3", ""),
        ("", "v1.2.3"),
        ("", "v1.2.3-rc.1"),
        ("", "v2.5.9+incompatible"),
    ] {
        let v = pseudo_version(major, older, t, "daa7c04131f5");
        assert!(is_pseudo_version(&v), "{v}");
        assert!(semver::is_valid(&v));
        assert_eq!(pseudo_version_time(&v), Ok(t));
        assert_eq!(pseudo_version_rev(&v), Ok("daa7c04131f5"));
        let want_base = (!older.is_empty()).then(|| older.to_owned());
        assert_eq!(pseudo_version_base(&v), Ok(want_base), "{v}");
        if !older.is_empty() {
            assert_eq!(
                semver::compare(&v, older),
                std::cmp::Ordering::Greater,
                "{v} > {older}"
            );
        }
    }
}
