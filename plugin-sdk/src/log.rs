//! Logging into modgate's log, tagged with the plugin's name.
//!
//! Output is capped per call by the host (excess is dropped with one "truncated" line), so log
//! what an operator needs, not every step.
//!
//! ```no_run
//! modgate_plugin_sdk::info!("token {} accepted for {}", "ci", "example.com/m");
//! modgate_plugin_sdk::log::write(modgate_plugin_sdk::log::Level::Warn, "key file is stale");
//! ```

pub use crate::bindings::log::Level;

/// Log `message` at `level`.
///
/// ```no_run
/// modgate_plugin_sdk::log::write(modgate_plugin_sdk::log::Level::Info, "hello");
/// ```
pub fn write(level: Level, message: &str) {
    crate::bindings::log::log(level, message);
}

/// Log at error level, `format!` style.
///
/// ```no_run
/// modgate_plugin_sdk::error!("JWKS fetch failed: {}", 503);
/// ```
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Error, &::std::format!($($arg)*)) };
}

/// Log at warn level, `format!` style.
///
/// ```no_run
/// modgate_plugin_sdk::warn!("token {} expires soon", "ci");
/// ```
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Warn, &::std::format!($($arg)*)) };
}

/// Log at info level, `format!` style.
///
/// ```no_run
/// modgate_plugin_sdk::info!("allowed {}", "ci");
/// ```
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Info, &::std::format!($($arg)*)) };
}

/// Log at debug level, `format!` style.
///
/// ```no_run
/// modgate_plugin_sdk::debug!("{} headers", 3);
/// ```
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Debug, &::std::format!($($arg)*)) };
}
