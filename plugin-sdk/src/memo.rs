//! Let modgate reuse an answer for later requests that agree on what it depended on.
//!
//! Every request that reaches a plugin costs a call into its sandbox (a few microseconds). When
//! an answer is a pure function of a few request facts (a token's decision depends on the
//! `Authorization` header, the module and the action; a tenant router's on the `Host` header),
//! say so with [`remember`] and modgate gives the same answer to requests that agree on those
//! facts without calling the plugin, until the time-to-live ends, the plugin's
//! `limits.memo_ttl_ms` cap is reached or the configuration is reloaded.
//!
//! ```no_run
//! use std::time::Duration;
//! use modgate_plugin_sdk::{memo, Authorizer, Decision, RequestFacts};
//!
//! struct Tokens;
//!
//! impl Authorizer for Tokens {
//!     fn authorize(req: &RequestFacts) -> Decision {
//!         let decision = match req.bearer_token() {
//!             Some("s3cret") => Decision::allow("ci", ["read"]),
//!             _ => Decision::unauthorized("invalid credentials"),
//!         };
//!         // The answer depends on the Authorization header and nothing else.
//!         memo::remember(
//!             &memo::DependsOn::nothing().header("authorization"),
//!             Duration::from_secs(60),
//!         );
//!         decision
//!     }
//! }
//! ```
//!
//! Do not remember answers that depend on anything not named: the time (a token's expiry: use
//! a time-to-live that ends before it), `kv` or `http` state, a random draw, the client's port.
//!
//! Refusals are worth remembering too, briefly, when reaching them was expensive (a bcrypt
//! hash, a public-key signature): a client that replays one bad password or token then costs a
//! lookup, not a verification. [`remember_refusal`] does it for [`REFUSAL_TTL`]:
//!
//! ```no_run
//! use modgate_plugin_sdk::{memo, Decision, RequestFacts};
//! # fn verify_slowly(_: &RequestFacts) -> Decision { Decision::unauthorized("bad password") }
//! fn authorize(req: &RequestFacts) -> Decision {
//!     let decision = verify_slowly(req);
//!     let on = memo::DependsOn::nothing().header("authorization").module().action();
//!     match &decision {
//!         Decision::Allow(_) => memo::remember(&on, std::time::Duration::from_secs(60)),
//!         _ => memo::remember_refusal(&decision, &on),
//!     }
//!     decision
//! }
//! ```

use std::time::Duration;

use crate::Decision;

pub use crate::bindings::memo::DependsOn;

/// How long [`remember_refusal`] keeps a refusal: long enough that replaying a bad credential
/// costs nothing, short enough that a refusal a changed world would lift (a key added to a key
/// set, a token's `nbf` passing) is not held for long.
pub const REFUSAL_TTL: Duration = Duration::from_secs(10);

impl DependsOn {
    /// Depends on no request fact: the same answer for every request (until the time-to-live
    /// ends). Add facts with the builder methods.
    ///
    /// ```
    /// use modgate_plugin_sdk::memo::DependsOn;
    /// let on = DependsOn::nothing().header("Authorization").module().action();
    /// assert_eq!(on.headers, ["authorization"]);
    /// assert!(on.module && on.action && !on.path);
    /// ```
    pub fn nothing() -> Self {
        DependsOn {
            method: false,
            path: false,
            module: false,
            version: false,
            action: false,
            peer_ip: false,
            tls_client_identity: false,
            headers: Vec::new(),
        }
    }

    /// And on the HTTP method.
    #[must_use]
    pub fn method(mut self) -> Self {
        self.method = true;
        self
    }

    /// And on the request path (which names the module, the version and the artifact).
    #[must_use]
    pub fn path(mut self) -> Self {
        self.path = true;
        self
    }

    /// And on the module path.
    #[must_use]
    pub fn module(mut self) -> Self {
        self.module = true;
        self
    }

    /// And on the version.
    #[must_use]
    pub fn version(mut self) -> Self {
        self.version = true;
        self
    }

    /// And on the action (read, publish, admin).
    #[must_use]
    pub fn action(mut self) -> Self {
        self.action = true;
        self
    }

    /// And on the client's IP address (not its port).
    #[must_use]
    pub fn peer_ip(mut self) -> Self {
        self.peer_ip = true;
        self
    }

    /// And on the TLS client identity.
    #[must_use]
    pub fn tls_client_identity(mut self) -> Self {
        self.tls_client_identity = true;
        self
    }

    /// And on every value of header `name` (case-insensitive).
    #[must_use]
    pub fn header(mut self, name: &str) -> Self {
        let name = name.to_ascii_lowercase();
        if !self.headers.contains(&name) {
            self.headers.push(name);
        }
        self
    }
}

/// Tell modgate that the answer this call returns depends only on `depends_on` (and the
/// plugin's config and secrets), so it may be given again, without calling the plugin, for up
/// to `ttl` (capped by the plugin's `limits.memo_ttl_ms`). Call it during `authorize` or
/// `route`; the last call counts; a call that fails is never remembered.
pub fn remember(depends_on: &DependsOn, ttl: Duration) {
    let ttl_ms = u32::try_from(ttl.as_millis()).unwrap_or(u32::MAX);
    crate::bindings::memo::remember(depends_on, ttl_ms);
}

/// Remember `decision` for [`REFUSAL_TTL`] if it is a refusal with a 4xx status (the client's
/// credentials or request are wrong); does nothing for allows, abstentions and 5xx refusals (the
/// plugin could not decide: a broken config, an unreachable key server). See the module docs.
pub fn remember_refusal(decision: &Decision, depends_on: &DependsOn) {
    if let Decision::Deny(deny) = decision
        && (400..500).contains(&deny.status)
    {
        remember(depends_on, REFUSAL_TTL);
    }
}
