//! Traps (`unreachable`) on every call.

use modgate_plugin_sdk::{Authorizer, Decision, RequestFacts, export_authorizer};

struct Trap;

impl Authorizer for Trap {
    fn authorize(_: &RequestFacts) -> Decision {
        core::arch::wasm32::unreachable()
    }
}

export_authorizer!(Trap);
