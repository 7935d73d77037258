//! A small cache shared by all calls of this plugin (and no other plugin).
//!
//! Use it for what is expensive to recompute: a fetched JWKS, a parsed token file. Entries may
//! vanish at any time (TTL, host limits, reload).
//!
//! ```no_run
//! use std::time::Duration;
//! use modgate_plugin_sdk::kv;
//!
//! let jwks = match kv::get("jwks") {
//!     Some(bytes) => bytes,
//!     None => {
//!         let fetched = b"{\"keys\":[]}".to_vec();
//!         kv::set("jwks", &fetched, Some(Duration::from_secs(300)));
//!         fetched
//!     }
//! };
//! ```

use std::time::Duration;

/// The value under `key`, unless missing or expired.
///
/// ```no_run
/// let hit: Option<Vec<u8>> = modgate_plugin_sdk::kv::get("k");
/// ```
pub fn get(key: &str) -> Option<Vec<u8>> {
    crate::bindings::kv::get(key)
}

/// Store `value` under `key`, for `ttl` when given (else until evicted).
///
/// ```no_run
/// modgate_plugin_sdk::kv::set("k", b"v", Some(std::time::Duration::from_secs(60)));
/// ```
pub fn set(key: &str, value: &[u8], ttl: Option<Duration>) {
    let ttl_ms = ttl.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
    crate::bindings::kv::set(key, value, ttl_ms);
}

/// Remove `key`.
///
/// ```no_run
/// modgate_plugin_sdk::kv::delete("k");
/// ```
pub fn delete(key: &str) {
    crate::bindings::kv::delete(key);
}
