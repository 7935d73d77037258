//! `auth-jwt`: JSON Web Tokens sent as `Authorization: Bearer <jwt>` (`GOAUTH`) or as the password
//! of Basic auth (`.netrc`), verified with HS256, RS256, ES256 or EdDSA keys from a granted
//! secret, the config, or a JWKS URL (fetched through the host, cached in `kv`); claims map to
//! scopes and module patterns. See the README for the config.
//!
//! The decision is plain Rust ([`policy`], [`keys`]), tested natively; this file fetches the
//! config and the HS256 secret and gives the policy the host's `kv`, `http`, log and clock.

pub mod keys;
pub mod policy;

use std::time::{Duration, SystemTime};

use modgate_plugin_sdk::{
    Authorizer, Decision, RequestFacts, config, export_authorizer, http, kv, memo, secrets,
};
use policy::{JwtConfig, Policy};

struct AuthJwt;

impl Authorizer for AuthJwt {
    fn authorize(req: &RequestFacts) -> Decision {
        // The config and the secret are fixed for an instance's life (a reload builds new
        // instances), so a reused instance parses them (and inline JWKS keys) once.
        static POLICY: std::sync::OnceLock<Result<Policy, String>> = std::sync::OnceLock::new();
        match POLICY.get_or_init(load) {
            // WASI clocks are the host's: this is modgate's wall clock.
            Ok(policy) => {
                let (decision, valid_for) = policy.decide_for(req, &mut SdkHost, unix_now());
                // A verified token's answer holds until it expires, for requests with the same
                // token, module and action: the host may reuse it (capped by the plugin's
                // `limits.memo_ttl_ms`; a key removed from the JWKS stops being honoured once
                // that cap or the token's expiry passes).
                // A refusal is remembered briefly: replaying a token with a bad signature then
                // costs a lookup, not a signature check.
                let on = memo::DependsOn::nothing()
                    .header("authorization")
                    .module()
                    .action();
                match valid_for {
                    Some(secs) => memo::remember(&on, Duration::from_secs(secs)),
                    None => memo::remember_refusal(&decision, &on),
                }
                decision
            }
            Err(problem) => {
                modgate_plugin_sdk::error!("{problem}");
                // Fail closed; the details are for the operator, not the client.
                Decision::deny(500, "auth-jwt: invalid plugin config (see the server log)")
            }
        }
    }
}

/// The policy from the `config` table and the HS256 secret.
fn load() -> Result<Policy, String> {
    let config: JwtConfig = config::get().map_err(|e| e.to_string())?;
    let secret = match &config.hs256_secret {
        Some(name) => Some(secrets::get(name).map_err(|e| {
            format!("hs256_secret {name:?}: {e:?} (grant it in `grants.secrets` and set it)")
        })?),
        None => None,
    };
    Policy::new(config, secret.as_deref()).map_err(|e| e.to_string())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The host's interfaces, as the policy sees them.
struct SdkHost;

impl keys::Host for SdkHost {
    fn kv_get(&mut self, key: &str) -> Option<Vec<u8>> {
        kv::get(key)
    }

    fn kv_set(&mut self, key: &str, value: &[u8], ttl: Duration) {
        kv::set(key, value, Some(ttl));
    }

    fn fetch(&mut self, url: &str) -> Result<Vec<u8>, String> {
        let response = http::send(&http::Request {
            method: "GET".into(),
            url: url.into(),
            headers: vec![("accept".into(), "application/json".into())],
            body: Vec::new(),
        })
        .map_err(|e| match e {
            http::Error::NotGranted(authority) => {
                format!("{authority} is not in the plugin's grants.hosts")
            }
            http::Error::Timeout => {
                "timed out (raise the plugin's limits.timeout_ms for JWKS fetches)".into()
            }
            http::Error::InvalidRequest(why) | http::Error::Failed(why) => why,
        })?;
        if response.status != 200 {
            return Err(format!("HTTP {}", response.status));
        }
        Ok(response.body)
    }

    fn warn(&mut self, message: &str) {
        modgate_plugin_sdk::warn!("{message}");
    }

    fn debug(&mut self, message: &str) {
        modgate_plugin_sdk::debug!("{message}");
    }
}

export_authorizer!(AuthJwt);
