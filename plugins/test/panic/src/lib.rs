//! Panics on every call (a Rust panic aborts, which the host sees as a trap).

use modgate_plugin_sdk::{Authorizer, Decision, RequestFacts, export_authorizer};

struct Panic;

impl Authorizer for Panic {
    fn authorize(req: &RequestFacts) -> Decision {
        panic!("test-panic refuses {}", req.path)
    }
}

export_authorizer!(Panic);
