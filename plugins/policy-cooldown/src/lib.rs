//! `policy-cooldown`: versions younger than a minimum age (from their `.info` `Time`) are not
//! admitted yet, except for exempt module patterns. See the README for the config.
//!
//! The verdict is plain Rust ([`policy`]), tested natively; this file reads the config and the
//! clock.

pub mod policy;

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use modgate_plugin_sdk::policy::{Candidate, Policy, Verdict, export_policy};
use modgate_plugin_sdk::{RequestFacts, config, memo};

struct Cooldown;

impl Policy for Cooldown {
    fn judge(req: &RequestFacts, c: &Candidate) -> Verdict {
        Self::judge_all(req, std::slice::from_ref(c))
            .pop()
            .unwrap_or(Verdict::NeedsTime)
    }

    fn judge_all(_req: &RequestFacts, candidates: &[Candidate]) -> Vec<Verdict> {
        static RULES: OnceLock<Result<policy::Cooldown, String>> = OnceLock::new();
        let rules = match RULES.get_or_init(|| {
            let file: policy::CooldownConfig = config::get().map_err(|e| e.to_string())?;
            policy::Cooldown::new(file)
        }) {
            Ok(rules) => rules,
            // Traps the call: the host refuses the versions with a 503 naming the plugin.
            Err(problem) => panic!("policy-cooldown: invalid config: {problem}"),
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let judged: Vec<(Verdict, Option<Duration>)> = candidates
            .iter()
            .map(|c| rules.judge(&c.module, &c.version, c.unix_time(), now))
            .collect();
        // Verdicts stay true until the youngest refused version comes of age (an admitted one
        // only gets older): the host may reuse them per module version until then.
        if judged.iter().all(|(v, _)| !matches!(v, Verdict::NeedsTime)) {
            let ttl = judged
                .iter()
                .filter_map(|(_, until)| *until)
                .min()
                .unwrap_or(Duration::from_secs(24 * 3600));
            memo::remember(&memo::DependsOn::nothing().module().version(), ttl);
        }
        judged.into_iter().map(|(v, _)| v).collect()
    }
}

export_policy!(Cooldown);
