//! The plugin's own `config` table from the modgate TOML file.
//!
//! ```toml
//! [plugins.corp-auth]
//! wasm = "corp_auth.wasm"
//! config = { issuer = "https://idp.corp.example", leeway_s = 30 }
//! ```
//!
//! ```no_run
//! #[derive(serde::Deserialize)]
//! struct Settings { issuer: String, #[serde(default)] leeway_s: u64 }
//!
//! let settings: Settings = modgate_plugin_sdk::config::get().expect("valid config");
//! ```

use serde::de::DeserializeOwned;

/// The config table as a JSON object (`{}` when the TOML has none).
///
/// ```no_run
/// let raw: String = modgate_plugin_sdk::config::json();
/// ```
pub fn json() -> String {
    crate::bindings::config::get_json()
}

/// The config table deserialized into `T` (any `serde::Deserialize` type).
///
/// ```no_run
/// let table: serde_json::Map<String, serde_json::Value> = modgate_plugin_sdk::config::get()?;
/// # Ok::<(), modgate_plugin_sdk::config::ConfigError>(())
/// ```
pub fn get<T: DeserializeOwned>() -> Result<T, ConfigError> {
    serde_json::from_str(&json()).map_err(ConfigError)
}

/// The config table does not fit the type asked for; the message names the field.
///
/// ```no_run
/// if let Err(e) = modgate_plugin_sdk::config::get::<u32>() {
///     modgate_plugin_sdk::error!("{e}");
/// }
/// ```
#[derive(Debug)]
pub struct ConfigError(serde_json::Error);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid plugin config: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}
