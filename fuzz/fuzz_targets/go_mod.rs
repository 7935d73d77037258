//! What an upstream sends besides zips: `.info`/`@latest` bodies (`fill::check_info`), go.mod
//! files (`zipcheck::check_go_mod`) and the lenient go.mod readers behind git version resolution
//! (the `module` line, `retract` directives). No panic; errors are one line; a checked `.info`
//! names a valid version, the requested one when one was asked for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modgate::gitsource::{go_mod_module_path, retract_intervals};
use modgate::goproxy::semver;
use modgate::goproxy::zipcheck::check_go_mod;
use modgate::handler::check_info;

fuzz_target!(|input: (bool, &str, &[u8])| {
    let (ask, expected, body) = input;
    let expected = ask.then_some(expected);
    match check_info(body, expected) {
        Ok(()) => {
            let info: serde_json::Value = serde_json::from_slice(body).expect("checked JSON");
            let v = info["Version"].as_str().expect("checked Version");
            assert!(semver::is_valid(v));
            if let Some(e) = expected {
                assert_eq!(v, e);
            }
        }
        Err(e) => assert!(!e.is_empty() && !e.contains(['\n', '\r']), "{e:?}"),
    }
    if let Err(e) = check_go_mod(body) {
        assert!(!e.to_string().contains('\n'));
    }
    let module = go_mod_module_path(body);
    assert!(!module.contains('\n'));
    for (lo, hi) in retract_intervals(body) {
        assert!(!lo.contains('\n') && !hi.contains('\n'));
    }
});
