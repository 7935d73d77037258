//! Allows every request as `call-N`, N being the number of calls this instance has served, and
//! traps on a path containing `/trap`: the tests of instance reuse read N to see whether a call
//! ran in a fresh instance or a reused one, and that a failed instance is never reused.

use std::sync::atomic::{AtomicU32, Ordering};

use modgate_plugin_sdk::{Authorizer, Decision, RequestFacts, export_authorizer};

static CALLS: AtomicU32 = AtomicU32::new(0);

struct Counter;

impl Authorizer for Counter {
    fn authorize(req: &RequestFacts) -> Decision {
        let n = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
        assert!(!req.path.contains("/trap"), "asked to trap after {n} calls");
        Decision::allow(format!("call-{n}"), ["read"])
    }
}

export_authorizer!(Counter);
