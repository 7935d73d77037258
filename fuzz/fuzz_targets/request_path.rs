//! The request-path parser (`goproxy::request::parse`): every GOPROXY and sumdb path a client
//! can send. No panic; an error is one short line with a 400 or 404; an accepted request names a
//! module path and version that pass x/mod's checks, and its canonical URL parses to the same
//! request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modgate::goproxy::escape::escape_version;
use modgate::goproxy::request::{
    InfoQuery, MAX_MODULE_PATH_LEN, MAX_VERSION_LEN, ProxyRequest, parse,
};
use modgate::goproxy::{path, semver};

fuzz_target!(|data: &[u8]| {
    // hyper hands the parser a `&str` path; non-UTF-8 bytes arrive percent-encoded.
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let request = match parse(raw) {
        Ok(request) => request,
        Err(e) => {
            let message = e.to_string();
            assert!(matches!(e.status(), 400 | 404));
            assert!(!message.is_empty(), "empty error for {raw:?}");
            assert!(
                !message.contains(['\n', '\r']),
                "multi-line error {message:?}"
            );
            // It may name the module path and the version, each within its limit; anything
            // else is shortened.
            let most = MAX_MODULE_PATH_LEN + MAX_VERSION_LEN + 256;
            assert!(
                message.len() <= most,
                "long error ({} bytes)",
                message.len()
            );
            return;
        }
    };
    if let Some(module) = request.module() {
        path::check_path(module.as_str()).expect("an accepted module path passes CheckPath");
    }
    let again = match &request {
        ProxyRequest::List { module } => format!("/{}/@v/list", module.escaped()),
        ProxyRequest::Latest { module } => format!("/{}/@latest", module.escaped()),
        ProxyRequest::Info { module, version } => {
            if let InfoQuery::Canonical(v) = version {
                assert!(semver::is_canonical(v), "canonical .info {v:?}");
            }
            let v = escape_version(version.as_str()).expect("an accepted version escapes");
            format!("/{}/@v/{v}.info", module.escaped())
        }
        ProxyRequest::Mod { module, version } | ProxyRequest::Zip { module, version } => {
            assert!(
                semver::is_canonical(version),
                "canonical .mod/.zip {version:?}"
            );
            module
                .check_version(version)
                .expect("an accepted .mod/.zip version fits its module");
            let ext = if matches!(request, ProxyRequest::Mod { .. }) {
                "mod"
            } else {
                "zip"
            };
            let v = escape_version(version).expect("an accepted version escapes");
            format!("/{}/@v/{v}.{ext}", module.escaped())
        }
        ProxyRequest::Sumdb { name, rest } => {
            assert!(
                rest.split('/').all(|s| !s.is_empty()),
                "empty sumdb segment in {rest:?}"
            );
            format!("/sumdb/{name}/{rest}")
        }
    };
    // The canonical spelling (no percent-escapes) of what was accepted means the same request.
    assert_eq!(parse(&again).as_ref(), Ok(&request), "{raw:?} -> {again:?}");
});
