//! Secrets granted to this plugin in TOML (`grants = { secrets = ["CORP_JWT_KEY"] }`).
//!
//! ```no_run
//! let key = modgate_plugin_sdk::secrets::get("CORP_JWT_KEY")?;
//! # Ok::<(), modgate_plugin_sdk::secrets::Error>(())
//! ```

pub use crate::bindings::secrets::Error;

/// The secret `name`, if granted and set on the host.
///
/// ```no_run
/// use modgate_plugin_sdk::secrets::{self, Error};
/// match secrets::get("API_TOKEN") {
///     Ok(token) => { /* use it */ }
///     Err(Error::NotGranted) => modgate_plugin_sdk::error!("add API_TOKEN to grants.secrets"),
///     Err(Error::NotFound) => modgate_plugin_sdk::error!("API_TOKEN is not set"),
/// }
/// ```
pub fn get(name: &str) -> Result<String, Error> {
    crate::bindings::secrets::get(name)
}
