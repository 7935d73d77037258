//! Outbound HTTP through the host, only to hosts granted in TOML
//! (`grants = { hosts = ["idp.corp.example:443"] }`). The host enforces the plugin's deadline
//! and caps response sizes.
//!
//! ```no_run
//! let resp = modgate_plugin_sdk::http::get("https://idp.corp.example/jwks.json")?;
//! assert_eq!(resp.status, 200);
//! # Ok::<(), modgate_plugin_sdk::http::Error>(())
//! ```

pub use crate::bindings::http::{Error, Request, Response};

/// Send `req` and wait for the whole response.
///
/// ```no_run
/// use modgate_plugin_sdk::http::{send, Request};
/// let resp = send(&Request {
///     method: "POST".into(),
///     url: "https://idp.corp.example/introspect".into(),
///     headers: vec![("content-type".into(), "application/x-www-form-urlencoded".into())],
///     body: b"token=abc".to_vec(),
/// })?;
/// # Ok::<(), modgate_plugin_sdk::http::Error>(())
/// ```
pub fn send(req: &Request) -> Result<Response, Error> {
    crate::bindings::http::send(req)
}

/// `GET url` with no extra headers.
///
/// ```no_run
/// let body = modgate_plugin_sdk::http::get("https://idp.corp.example/jwks.json")?.body;
/// # Ok::<(), modgate_plugin_sdk::http::Error>(())
/// ```
pub fn get(url: &str) -> Result<Response, Error> {
    send(&Request {
        method: "GET".into(),
        url: url.into(),
        headers: Vec::new(),
        body: Vec::new(),
    })
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    ///
    /// ```no_run
    /// let resp = modgate_plugin_sdk::http::get("https://idp.corp.example/jwks.json")?;
    /// let ct = resp.header("content-type");
    /// # Ok::<(), modgate_plugin_sdk::http::Error>(())
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
