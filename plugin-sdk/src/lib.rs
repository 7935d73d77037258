//! Write [modgate](https://github.com/modgate) policy plugins in Rust.
//!
//! A plugin is a WebAssembly component built for `wasm32-wasip2`. modgate calls it once per
//! request with the [`RequestFacts`] it knows, and the plugin answers: an [`Authorizer`] returns a
//! [`Decision`] (allow, deny or abstain), a [`Router`] returns a route name. A
//! [`storage::Storage`] backend says where a route's artifacts live, with plans the host carries
//! out; a [`policy::Policy`] decides which module versions may come in from upstream. The
//! plugin runs in a
//! sandbox: no files, no network, no environment. What it may reach is granted per plugin in the
//! modgate TOML file and used through this crate's host interfaces: [`mod@log`], [`config`], [`kv`],
//! [`secrets`] and [`http`]; [`memo`] lets modgate reuse an answer instead of asking again;
//! [`crypto`] computes digests, HMACs and signature checks natively in the host; [`limits`]
//! charges a request against rate limits and byte quotas the host counts.
//!
//! A whole plugin:
//!
//! ```no_run
//! use modgate_plugin_sdk::{export_authorizer, Authorizer, Decision, RequestFacts};
//!
//! struct OnlyFriends;
//!
//! impl Authorizer for OnlyFriends {
//!     fn authorize(req: &RequestFacts) -> Decision {
//!         match req.bearer_token() {
//!             Some("friend") => Decision::allow("friend", ["read"]),
//!             Some(_) => Decision::deny(403, "forbidden"),
//!             None => Decision::Abstain,
//!         }
//!     }
//! }
//!
//! export_authorizer!(OnlyFriends);
//! # fn main() {}
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` (crate type `cdylib`) and point
//! `[plugins.NAME] wasm = "…/only_friends.wasm"` at the result. See the README for the full guide.
//!
//! The crate also compiles for the host target, so `cargo test`, `cargo doc` and `clippy` work on
//! plugin code; calling a host interface outside a wasm host panics (`unreachable`).

#![warn(missing_docs)]

pub mod bindings;
pub mod config;
pub mod crypto;
pub mod http;
pub mod kv;
pub mod limits;
pub mod log;
pub mod memo;
pub mod policy;
pub mod secrets;
pub mod storage;
mod types;

pub use bindings::types::{Action, Allow, Decision, Deny, RequestFacts};

/// An authorization plugin: decides whether a request may proceed and on whose behalf.
///
/// Implement it on a unit struct and export it with [`export_authorizer!`]. modgate calls
/// `authorize` once per request. Instances are reused for many calls (several at once, each
/// replaced after `limits.reuse_calls` calls or any failure): a static is fine for what is fixed
/// for the instance's life (the parsed config, in a `OnceLock`), but state that every call must
/// see belongs in [`kv`], and nothing about one request may leak into the answer to another.
///
/// ```no_run
/// use modgate_plugin_sdk::{Authorizer, Decision, RequestFacts};
///
/// struct ReadOnlyForAll;
///
/// impl Authorizer for ReadOnlyForAll {
///     fn authorize(req: &RequestFacts) -> Decision {
///         if req.action == modgate_plugin_sdk::Action::Read {
///             Decision::allow("anonymous", ["read"])
///         } else {
///             Decision::Abstain
///         }
///     }
/// }
/// ```
pub trait Authorizer {
    /// Decide about `req`. The default abstains, leaving the decision to the next plugin on the
    /// route (when every plugin abstains, modgate answers 401).
    fn authorize(req: &RequestFacts) -> Decision {
        let _ = req;
        Decision::Abstain
    }
}

/// A routing plugin: picks the `[[route]]` (by its name) that serves a request.
///
/// ```no_run
/// use modgate_plugin_sdk::{Router, RequestFacts};
///
/// struct ByTenantHeader;
///
/// impl Router for ByTenantHeader {
///     fn route(req: &RequestFacts) -> Option<String> {
///         req.header("x-tenant").map(|t| format!("tenant-{t}"))
///     }
/// }
/// ```
pub trait Router {
    /// The name of the route for `req`, or `None` to let the TOML `[[route]]` patterns decide
    /// (the default).
    fn route(req: &RequestFacts) -> Option<String> {
        let _ = req;
        None
    }
}

/// Exports a type implementing [`Authorizer`] as the plugin's `authorizer` world.
///
/// Use it once per plugin crate, at the top level:
///
/// ```no_run
/// use modgate_plugin_sdk::{export_authorizer, Authorizer};
///
/// struct AbstainAlways;
/// impl Authorizer for AbstainAlways {}
///
/// export_authorizer!(AbstainAlways);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export_authorizer {
    ($ty:ident) => {
        impl $crate::bindings::authorizer::Guest for $ty {
            fn authorize(req: $crate::RequestFacts) -> $crate::Decision {
                <$ty as $crate::Authorizer>::authorize(&req)
            }
        }
        $crate::bindings::authorizer::export!($ty with_types_in $crate::bindings::authorizer);
    };
}

/// Exports a type implementing [`Router`] as the plugin's `router` world.
///
/// ```no_run
/// use modgate_plugin_sdk::{export_router, RequestFacts, Router};
///
/// struct Everything;
/// impl Router for Everything {
///     fn route(_: &RequestFacts) -> Option<String> {
///         Some("default".to_string())
///     }
/// }
///
/// export_router!(Everything);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export_router {
    ($ty:ident) => {
        impl $crate::bindings::router::Guest for $ty {
            fn route(req: $crate::RequestFacts) -> Option<String> {
                <$ty as $crate::Router>::route(&req)
            }
        }
        $crate::bindings::router::export!($ty with_types_in $crate::bindings::router);
    };
}
