//! The git source's tag → version mapping (`tagToVersion` of the go command's `codeRepo`): which
//! tags of a repository are versions of the module in a (sub)directory. A mapped version is
//! canonical semver; an exact tag is the prefix plus that version; pseudo-version tags and tags
//! of other directories never map.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modgate::gitsource::tag_to_version;
use modgate::goproxy::{pseudo, semver};

fuzz_target!(|input: (u8, &str, &str)| {
    let (which, dir, tag) = input;
    let prefix = match which % 3 {
        0 => String::new(),
        1 => "sub/".to_owned(),
        _ => format!("{dir}/"),
    };
    let (v, exact) = tag_to_version(&prefix, tag);
    if v.is_empty() {
        assert!(!exact);
        return;
    }
    assert!(
        semver::is_valid(&v) && semver::build(&v).is_empty(),
        "{tag:?} -> {v:?}"
    );
    assert_eq!(semver::canonical_semver(&v).as_deref(), Some(v.as_str()));
    assert!(
        tag.starts_with(&prefix),
        "{tag:?} mapped outside {prefix:?}"
    );
    assert!(!pseudo::is_pseudo_version(tag));
    if exact {
        assert_eq!(format!("{prefix}{v}"), tag);
    }
});
