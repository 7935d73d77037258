//! Logs about 4 MiB per call (far past the host's per-call cap), then allows as `loud`.

use modgate_plugin_sdk::{Authorizer, Decision, RequestFacts, export_authorizer, info};

struct Loud;

impl Authorizer for Loud {
    fn authorize(_: &RequestFacts) -> Decision {
        let line = "x".repeat(4096);
        for i in 0..1024 {
            info!("{i} {line}");
        }
        Decision::allow("loud", ["read"])
    }
}

export_authorizer!(Loud);
