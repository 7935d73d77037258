//! `auth-token`: tokens hashed at rest (sha256), sent as `Authorization: Bearer <token>`
//! (`GOAUTH`) or as the password of Basic auth (`.netrc`), each with scopes and module patterns.
//! See the README for the config.
//!
//! The decision is plain Rust ([`policy`]), tested natively; this file only fetches the config
//! (and the optional secret) through the host and logs what is wrong with them.

pub mod policy;

use std::sync::OnceLock;

use modgate_plugin_sdk::{
    Authorizer, Decision, RequestFacts, config, export_authorizer, memo, secrets,
};
use policy::{Policy, PolicyConfig};

struct AuthToken;

/// How long the host may reuse a decision (capped by the plugin's `limits.memo_ttl_ms`).
const MEMO_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

impl Authorizer for AuthToken {
    fn authorize(req: &RequestFacts) -> Decision {
        // The config and the secret cannot change during an instance's life (a reload builds
        // new instances), so a reused instance parses them once.
        static POLICY: OnceLock<Result<Policy, String>> = OnceLock::new();
        match POLICY.get_or_init(load) {
            Ok(policy) => {
                // The decision is a function of the Authorization header, the module and the
                // action (and the config and secret, which only a reload changes): the host may
                // give it again to requests that agree on those three without asking.
                memo::remember(
                    &memo::DependsOn::nothing()
                        .header("authorization")
                        .module()
                        .action(),
                    MEMO_TTL,
                );
                policy.decide(req)
            }
            Err(problem) => {
                modgate_plugin_sdk::error!("{problem}");
                // Fail closed; the details are for the operator, not the client.
                Decision::deny(
                    500,
                    "auth-token: invalid plugin config (see the server log)",
                )
            }
        }
    }
}

/// The policy from the `config` table plus, when `tokens_secret` names one, the secret's JSON
/// list of tokens.
fn load() -> Result<Policy, String> {
    let config: PolicyConfig = config::get().map_err(|e| e.to_string())?;
    let secret = match &config.tokens_secret {
        Some(name) => Some(secrets::get(name).map_err(|e| {
            format!("tokens_secret {name:?}: {e:?} (grant it in `grants.secrets` and set it)")
        })?),
        None => None,
    };
    Policy::new(config, secret.as_deref()).map_err(|e| e.to_string())
}

export_authorizer!(AuthToken);
