//! Spins forever; only the host's deadline stops it.

use modgate_plugin_sdk::{Authorizer, Decision, RequestFacts, export_authorizer};

struct Loop;

impl Authorizer for Loop {
    fn authorize(_: &RequestFacts) -> Decision {
        let mut n = 0u64;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

export_authorizer!(Loop);
