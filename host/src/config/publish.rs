//! The upload endpoint's settings: `[publish]` and a route's `uploads`.

use serde::{Deserialize, Serialize};

/// `[publish]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishFile {
    /// Largest upload body in bytes (a module zip); larger uploads get 413.
    pub max_upload_bytes: u64,
}

impl Default for PublishFile {
    fn default() -> Self {
        Self {
            // The go command's own limit on a module zip (`MaxZipFile`).
            max_upload_bytes: crate::goproxy::zipcheck::MAX_ZIP_FILE,
        }
    }
}

/// `[[route]] uploads`: who may upload module versions into the route's storage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Uploads {
    /// Callers the route's `auth` plugins allow with action `publish`; a route without `auth`
    /// refuses every upload (403).
    #[default]
    Auth,
    /// Anyone who can reach the server (a development or CI-internal setup).
    Open,
    /// Never (405).
    Off,
}
