//! `rate-limit`: charges requests against rate limits and daily byte quotas (per principal,
//! client IP, module, module pattern or everyone) that the host counts, and answers 429 with
//! `Retry-After` once one is exhausted. It sits on a route's auth list before the plugin that
//! decides who the client is, and abstains (or, on an open route, allows reads anonymously).
//! See the README for the config.
//!
//! Which limits apply is plain Rust ([`policy`]), tested natively; this file only reads the
//! config through the host. The answer depends on the module and the action at most, so the
//! host remembers it and later requests are counted without calling the plugin.

pub mod policy;

use std::sync::OnceLock;

use modgate_plugin_sdk::{
    Authorizer, Decision, RequestFacts, config, export_authorizer, limits, memo,
};

struct RateLimit;

/// How long the host may reuse an answer (capped by the plugin's `limits.memo_ttl_ms`): it
/// depends only on the request facts named, and on the config, which only a reload changes.
const MEMO_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

impl Authorizer for RateLimit {
    fn authorize(req: &RequestFacts) -> Decision {
        static RULES: OnceLock<Result<policy::Rules, String>> = OnceLock::new();
        let rules = match RULES.get_or_init(|| {
            let file: policy::RateLimitConfig = config::get().map_err(|e| e.to_string())?;
            policy::Rules::new(file)
        }) {
            Ok(rules) => rules,
            // Fail closed with a 503 naming the problem (the host logs it too).
            Err(problem) => {
                return Decision::Deny(modgate_plugin_sdk::Deny {
                    status: 503,
                    message: format!("rate-limit: invalid config: {problem}"),
                });
            }
        };
        let answer = rules.answer(req.module.as_deref(), req.action);
        if let Err(problem) = limits::apply(&answer.limits) {
            return Decision::Deny(modgate_plugin_sdk::Deny {
                status: 503,
                message: format!("rate-limit: {problem}"),
            });
        }
        memo::remember(&rules.depends_on(), MEMO_TTL);
        answer.decision
    }
}

export_authorizer!(RateLimit);
