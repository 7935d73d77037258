//! Allocates (and touches) 1 MiB blocks until the host's memory cap stops it.

use modgate_plugin_sdk::{Authorizer, Decision, RequestFacts, export_authorizer};

struct MemBomb;

impl Authorizer for MemBomb {
    fn authorize(_: &RequestFacts) -> Decision {
        let mut blocks = Vec::new();
        loop {
            blocks.push(std::hint::black_box(vec![0xa5u8; 1 << 20]));
        }
    }
}

export_authorizer!(MemBomb);
