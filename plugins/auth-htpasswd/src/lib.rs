//! `auth-htpasswd`: users and bcrypt password hashes in htpasswd format, sent with Basic auth
//! (`.netrc`), optionally limited to module patterns per user. See the README for the config.
//!
//! The decision is plain Rust ([`policy`]), tested natively; this file fetches the config (and
//! the optional secret) through the host and keeps verified passwords in the host's `kv` cache.

pub mod policy;

use std::sync::OnceLock;
use std::time::Duration;

use modgate_plugin_sdk::{
    Authorizer, Decision, RequestFacts, config, export_authorizer, kv, memo, secrets,
};
use policy::{HtpasswdConfig, Policy, VerifiedCache};

/// How long a verified (user, password) stays verified without running bcrypt again.
const VERIFIED_TTL: Duration = Duration::from_secs(60);

struct AuthHtpasswd;

impl Authorizer for AuthHtpasswd {
    fn authorize(req: &RequestFacts) -> Decision {
        // Config and secret are fixed for an instance's life (a reload builds new instances).
        static POLICY: OnceLock<Result<Policy, String>> = OnceLock::new();
        match POLICY.get_or_init(load) {
            Ok(policy) => {
                let decision = policy.decide(req, &mut KvCache);
                // The decision depends on the credentials, the module and the action (and the
                // config, which only a reload changes). An allow is remembered as long as a
                // verified password is; a refusal briefly, so that a client replaying a wrong
                // password costs a lookup, not a bcrypt hash.
                let on = memo::DependsOn::nothing()
                    .header("authorization")
                    .module()
                    .action();
                match &decision {
                    Decision::Allow(_) | Decision::Abstain => memo::remember(&on, VERIFIED_TTL),
                    Decision::Deny(_) => memo::remember_refusal(&decision, &on),
                }
                decision
            }
            Err(problem) => {
                modgate_plugin_sdk::error!("{problem}");
                // Fail closed; the details are for the operator, not the client.
                Decision::deny(
                    500,
                    "auth-htpasswd: invalid plugin config (see the server log)",
                )
            }
        }
    }
}

fn load() -> Result<Policy, String> {
    let config: HtpasswdConfig = config::get().map_err(|e| e.to_string())?;
    let secret = match &config.users_secret {
        Some(name) => Some(secrets::get(name).map_err(|e| {
            format!("users_secret {name:?}: {e:?} (grant it in `grants.secrets` and set it)")
        })?),
        None => None,
    };
    Policy::new(config, secret.as_deref()).map_err(|e| e.to_string())
}

/// The plugin's `kv` cache: shared by all its instances (several run at once, and instances are
/// replaced), so a password verified once is not run through bcrypt again by any of them.
struct KvCache;

impl VerifiedCache for KvCache {
    fn contains(&mut self, key: &str) -> bool {
        kv::get(key).is_some()
    }

    fn insert(&mut self, key: &str) {
        kv::set(key, b"1", Some(VERIFIED_TTL));
    }
}

export_authorizer!(AuthHtpasswd);
