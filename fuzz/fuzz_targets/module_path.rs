//! Module, import and file path checks (`module.CheckPath`, `CheckImportPath`, `CheckFilePath`)
//! and case escaping (`module.EscapePath`/`UnescapePath`, `EscapeVersion`/`UnescapeVersion`).
//! No panic; escaping round-trips; a module path is also a valid import path; errors are one
//! line. (tests/integration/fuzz_oracle.rs checks the same functions against x/mod itself.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use modgate::goproxy::escape::{escape_path, escape_version, unescape_path, unescape_version};
use modgate::goproxy::path::{self, ModulePath};

fn one_line(e: impl std::fmt::Display) {
    let message = e.to_string();
    assert!(!message.is_empty());
    assert!(
        !message.contains(['\n', '\r']),
        "multi-line error {message:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match ModulePath::parse(s) {
        Ok(m) => {
            path::check_import_path(s).expect("a module path is an import path");
            assert_eq!(escape_path(s).as_deref(), Ok(m.escaped()));
            assert_eq!(
                unescape_path(m.escaped()).as_deref(),
                Ok(s),
                "round trip of {s:?}"
            );
            let again = ModulePath::from_escaped(m.escaped()).expect("the escaped form parses");
            assert_eq!(again, m);
            assert!(m.as_str().starts_with(m.prefix()));
            assert_eq!(format!("{}{}", m.prefix(), m.path_major()), s);
        }
        Err(e) => {
            one_line(&e);
            assert!(escape_path(s).is_err(), "escaped an invalid path {s:?}");
        }
    }
    if let Err(e) = path::check_import_path(s) {
        one_line(e);
    }
    if let Err(e) = path::check_file_path(s) {
        one_line(e);
    }
    // Any accepted escaped form is the only spelling of its path.
    if let Ok(p) = unescape_path(s) {
        assert_eq!(escape_path(&p).as_deref(), Ok(s), "unescape {s:?} -> {p:?}");
    }
    if let Ok(v) = unescape_version(s) {
        assert_eq!(
            escape_version(&v).as_deref(),
            Ok(s),
            "unescape version {s:?} -> {v:?}"
        );
    }
    if let Ok(e) = escape_version(s) {
        assert_eq!(
            unescape_version(&e).as_deref(),
            Ok(s),
            "escape version {s:?} -> {e:?}"
        );
    }
});
