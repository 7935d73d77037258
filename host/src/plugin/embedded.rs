//! What `host/build.rs` embeds: the first-party plugins built from `plugins/` (`EMBEDDED`), the
//! Go SDK's files (`GO_SDK`, for `modgate plugin sdk`), and the test plugins (`test_plugins`,
//! under `cfg(test)` only).

/// The embedded first-party plugin called `name` (`plugin = "auth-token"` in a config).
pub fn lookup(name: &str) -> Option<&'static [u8]> {
    EMBEDDED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, wasm)| *wasm)
}

/// Names of the embedded first-party plugins, for messages.
pub fn names() -> Vec<&'static str> {
    EMBEDDED.iter().map(|(n, _)| *n).collect()
}

// Last: it ends with the `cfg(test)` module of test plugins.
include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
