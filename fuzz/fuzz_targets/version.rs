//! Semantic versions (`semver.IsValid`, `Canonical`, `Compare`, `Max`, `Sort`), pseudo-versions
//! (`module.IsPseudoVersion` and the parts read from one) and a module path's major-version
//! check. Compare is a total order consistent with equality of canonical forms; canonical forms
//! are fixed points; a pseudo-version's time and revision can be read back.
#![no_main]

use std::cmp::Ordering;

use libfuzzer_sys::fuzz_target;
use modgate::goproxy::path::ModulePath;
use modgate::goproxy::{pseudo, semver};

fuzz_target!(|input: (&str, &str, &str, &str)| {
    let (a, b, c, module) = input;
    for v in [a, b, c] {
        let valid = semver::is_valid(v);
        assert_eq!(valid, semver::canonical(v).is_some());
        assert_eq!(valid, semver::canonical_semver(v).is_some());
        if let Some(canon) = semver::canonical(v) {
            assert!(
                semver::is_canonical(&canon),
                "{v:?} -> {canon:?} is not canonical"
            );
            assert_eq!(semver::canonical(&canon).as_deref(), Some(canon.as_str()));
            assert_eq!(
                semver::compare(v, &canon),
                Ordering::Equal,
                "{v:?} vs {canon:?}"
            );
            assert_eq!(semver::major(v), semver::major(&canon));
        }
        if semver::is_canonical(v) {
            assert_eq!(semver::canonical(v).as_deref(), Some(v));
        }
        assert_eq!(semver::compare(v, v), Ordering::Equal);
        if pseudo::is_pseudo_version(v) {
            // As in x/mod, the form alone makes a pseudo-version: its 14 digits may still not be
            // a time (`PseudoVersionTime` fails then), but what parses reads back.
            if let Ok(t) = pseudo::pseudo_version_time(v) {
                assert!(v.contains(&t.pseudo_format()), "{v:?}: time {t:?}");
            }
            let rev = pseudo::pseudo_version_rev(v).expect("a pseudo-version has a revision");
            assert!(!rev.is_empty() && v.contains(rev));
            let _ = pseudo::pseudo_version_base(v);
        }
    }
    // A total order.
    let ab = semver::compare(a, b);
    assert_eq!(ab, semver::compare(b, a).reverse(), "{a:?} {b:?}");
    if ab.is_le() && semver::compare(b, c).is_le() {
        assert!(semver::compare(a, c).is_le(), "{a:?} <= {b:?} <= {c:?}");
    }
    let max = semver::max(a, b);
    assert!(semver::compare(&max, a).is_ge() && semver::compare(&max, b).is_ge());
    let mut list = [a, b, c];
    semver::sort(&mut list);
    assert!(
        list.windows(2)
            .all(|w| semver::compare_versions(w[0], w[1]).is_le())
    );
    if let Ok(m) = ModulePath::parse(module)
        && let Err(e) = m.check_version(a)
    {
        assert!(!e.to_string().contains('\n'));
    }
});
