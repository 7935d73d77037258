//! Charge a request against rate limits and byte quotas that modgate counts.
//!
//! During [`crate::Authorizer::authorize`], name the limits the request counts against with
//! [`apply`]: a token bucket of requests per second (with a burst), a quota of response bytes
//! per UTC day, or both, per subject — the principal the route's auth allowed, the client's IP
//! address, the module, or a key of your own. modgate keeps the counters (shared by every
//! replica through `[cluster]` Redis when configured) and answers `429 Too Many Requests` with
//! `Retry-After` once one is exhausted, whatever the plugins decided.
//!
//! The limits travel with the answer: when the plugin also [`crate::memo::remember`]s it, later
//! requests are counted without calling the plugin at all. A limit plugin that only counts
//! abstains, so the route's next auth plugin decides who the client is:
//!
//! ```no_run
//! use std::time::Duration;
//! use modgate_plugin_sdk::{limits, memo, Authorizer, Decision, RequestFacts};
//!
//! struct PerClient;
//!
//! impl Authorizer for PerClient {
//!     fn authorize(_req: &RequestFacts) -> Decision {
//!         limits::apply(&[
//!             limits::Limit::requests("per-ip", limits::Subject::PeerIp, 20.0).burst(40),
//!             limits::Limit::bytes("per-user-bytes", limits::Subject::Principal, 10 << 30),
//!         ])
//!         .expect("valid limits");
//!         // The same limits for every request: remember the answer for a minute.
//!         memo::remember(&memo::DependsOn::nothing(), Duration::from_secs(60));
//!         Decision::Abstain
//!     }
//! }
//! ```

pub use crate::bindings::limits::{Limit, Subject};

impl Limit {
    /// A token bucket of `per_second` sustained requests (burst: one second's worth).
    pub fn requests(name: &str, subject: Subject, per_second: f64) -> Self {
        Limit {
            name: name.to_string(),
            subject,
            requests_per_second: Some(per_second),
            burst: None,
            bytes_per_day: None,
        }
    }

    /// A quota of `bytes` of response bodies per UTC day.
    pub fn bytes(name: &str, subject: Subject, bytes: u64) -> Self {
        Limit {
            name: name.to_string(),
            subject,
            requests_per_second: None,
            burst: None,
            bytes_per_day: Some(bytes),
        }
    }

    /// Requests allowed at once above the sustained rate.
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst);
        self
    }

    /// Adds a daily byte quota to a request limit.
    pub fn and_bytes(mut self, bytes: u64) -> Self {
        self.bytes_per_day = Some(bytes);
        self
    }
}

/// Charge this request (and every request given this answer again through `memo`) against
/// `limits` (at most 16). The last call during a call counts. An invalid limit (a name outside
/// `[A-Za-z0-9._-]`, a rate outside 0.001–1,000,000/s) is refused with the reason, and then no
/// limit of the list applies.
pub fn apply(limits: &[Limit]) -> Result<(), String> {
    crate::bindings::limits::apply(limits)
}
