//! Allows every request as `call-N`, N being the number of calls this instance has served, and
//! traps on a path containing `/trap`: the tests of instance reuse read N to see whether a call
//! ran in a fresh instance or a reused one, and that a failed instance is never reused. On a
//! path containing `/memo` it first asks the host to remember its answer for requests with the
//! same `Authorization` header and module (the memo tests read N to see whether a call ran).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use modgate_plugin_sdk::{Authorizer, Decision, RequestFacts, export_authorizer, memo};

static CALLS: AtomicU32 = AtomicU32::new(0);

struct Counter;

impl Authorizer for Counter {
    fn authorize(req: &RequestFacts) -> Decision {
        let n = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
        if req.path.contains("/memo") {
            memo::remember(
                &memo::DependsOn::nothing().header("authorization").module(),
                Duration::from_secs(60),
            );
        }
        assert!(!req.path.contains("/trap"), "asked to trap after {n} calls");
        Decision::allow(format!("call-{n}"), ["read"])
    }
}

export_authorizer!(Counter);
