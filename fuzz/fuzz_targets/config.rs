//! The TOML config loader (`Config::load_with_env`: figment, then every key resolved and
//! checked) on arbitrary files. No panic; a refused file gets an error that names the file (and
//! the key, where one is at fault), as an operator needs to fix it.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use modgate::config::Config;

fn scratch() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary directory"))
        .path()
}

fuzz_target!(|text: &str| {
    let path = scratch().join("modgate.toml");
    std::fs::write(&path, text).expect("write the scratch config");
    // `${VAR}` references resolve to nothing: the loader must say which key needs the variable.
    if let Err(e) = Config::load_with_env(Some(&path), |_| None) {
        let message = e.to_string();
        assert!(!message.is_empty());
        let file = path.display().to_string();
        for line in message.lines() {
            assert!(
                line.contains(&file),
                "an error line that does not name the file: {line:?}"
            );
        }
    }
});
