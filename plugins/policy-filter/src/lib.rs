//! `policy-filter`: admit or deny module versions coming in from upstream by module pattern
//! (GOPRIVATE syntax), semver range and pre-release, first matching rule wins, with the reason
//! the go command shows the user. See the README for the config.
//!
//! The verdict is plain Rust ([`policy`]), tested natively; this file only reads the config
//! through the host.

pub mod policy;

use std::sync::OnceLock;

use modgate_plugin_sdk::policy::{Candidate, Policy, Verdict, export_policy};
use modgate_plugin_sdk::{RequestFacts, config, memo};

struct Filter;

/// How long the host may reuse a verdict (capped by the plugin's `limits.memo_ttl_ms`): it
/// depends only on the module and version, and on the config, which only a reload changes.
const MEMO_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

impl Policy for Filter {
    fn judge(_req: &RequestFacts, c: &Candidate) -> Verdict {
        static RULES: OnceLock<Result<policy::Rules, String>> = OnceLock::new();
        match RULES.get_or_init(|| {
            let file: policy::FilterConfig = config::get().map_err(|e| e.to_string())?;
            policy::Rules::new(file)
        }) {
            Ok(rules) => {
                memo::remember(&memo::DependsOn::nothing().module().version(), MEMO_TTL);
                rules.judge(&c.module, &c.version, c.retracted)
            }
            // A config that does not parse traps the call: the host refuses the version with
            // a 503 naming the plugin (fail closed) and logs why.
            Err(problem) => panic!("policy-filter: invalid config: {problem}"),
        }
    }
}

export_policy!(Filter);
