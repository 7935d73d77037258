//! Access logs (tracing) and Prometheus metrics.

use std::time::Duration;

/// Process-wide metrics, rendered at `/metrics`.
#[derive(Default)]
pub struct Metrics {}

impl Metrics {
    pub fn new() -> Self {
        Self {}
    }
    /// One finished request: endpoint kind (`list`, `info`, `mod`, `zip`, `latest`, `sumdb`, `ops`, `invalid`).
    pub fn observe_request(&self, _endpoint: &'static str, _status: u16, _elapsed: Duration) {}
    /// A storage lookup for `kind` (`info`, `mod`, `zip`, `list`, `latest`) hit or missed.
    pub fn cache_lookup(&self, _kind: &'static str, _hit: bool) {}
    /// One upstream request finished with `outcome` (`ok`, `not_found`, `error`, `timeout`).
    pub fn upstream_fetch(&self, _outcome: &'static str, _elapsed: Duration) {}
    /// An upstream artifact failed validation and was not stored.
    pub fn upstream_rejected(&self) {}
    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        String::new()
    }
}

/// The GOPROXY endpoint a response answered (`list`, `info`, `mod`, `zip`, `latest`, `sumdb`,
/// `ops`, `invalid`), set by the handler as a response extension for logs and metrics.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint(pub &'static str);
