//! Allows every request as `test-user` with scope `read`: the well-behaved neighbour in the fault
//! tests, and the plugin the micro-benchmark calls.

use modgate_plugin_sdk::{Authorizer, Decision, RequestFacts, export_authorizer};

struct AllowAll;

impl Authorizer for AllowAll {
    fn authorize(_: &RequestFacts) -> Decision {
        Decision::allow("test-user", ["read"])
    }
}

export_authorizer!(AllowAll);
