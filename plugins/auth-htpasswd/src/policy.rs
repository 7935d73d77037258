//! The htpasswd policy: its config, parsed into checked types, and the decision for a request.

use std::collections::BTreeMap;

use auth_core::{Credential, INVALID_CREDENTIALS, ModulePattern, Scope, credential, decide_known};
use modgate_plugin_sdk::{Decision, RequestFacts};

/// The answer without an `Authorization` header (unless `abstain_without_credentials`).
pub const AUTH_REQUIRED: &str =
    "authentication required: send a user name and password with Basic auth (.netrc or GOAUTH)";

/// The answer to anything but well-formed Basic auth (Bearer included).
pub const BASIC_ONLY: &str = "unsupported Authorization header: send a user name and password with Basic auth (.netrc or GOAUTH)";

/// The plugin's `config` table as written.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HtpasswdConfig {
    /// htpasswd text (`user:$2y$…` lines, made with `htpasswd -B`).
    #[serde(default)]
    pub users: Option<String>,
    /// A granted secret holding more htpasswd text.
    #[serde(default)]
    pub users_secret: Option<String>,
    /// Module patterns per user; when the table is present, users missing from it reach no
    /// module. Absent: every user reaches every module.
    #[serde(default)]
    pub access: Option<BTreeMap<String, Vec<String>>>,
    /// Scopes per user; users missing from it get `["read"]`.
    #[serde(default)]
    pub scopes: BTreeMap<String, Vec<Scope>>,
    /// Abstain (instead of 401) without an `Authorization` header.
    #[serde(default)]
    pub abstain_without_credentials: bool,
}

/// Where verified passwords are remembered, keyed by a digest of user, password and hash:
/// bcrypt is slow on purpose (cost 10 is ~50 ms natively, more in wasm), and a go command
/// makes many requests in a row.
pub trait VerifiedCache {
    /// Whether `key` was verified recently.
    fn contains(&mut self, key: &str) -> bool;
    /// Remember `key` as verified.
    fn insert(&mut self, key: &str);
}

#[derive(Debug)]
struct User {
    name: String,
    hash: String,
    scopes: Vec<Scope>,
    /// `None`: every module.
    modules: Option<Vec<ModulePattern>>,
}

/// The parsed policy; build it with [`Policy::new`], ask it with [`Policy::decide`].
#[derive(Debug)]
pub struct Policy {
    users: Vec<User>,
    abstain_without_credentials: bool,
}

/// What is wrong with a config; the message names the user or line.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid auth-htpasswd config: {}", self.0)
    }
}

impl Policy {
    /// Check `config` and the htpasswd text of its `users_secret`, if any.
    pub fn new(config: HtpasswdConfig, secret: Option<&str>) -> Result<Policy, ConfigError> {
        let mut users: Vec<User> = Vec::new();
        let sources = [("users", config.users.as_deref()), ("users_secret", secret)];
        for (source, text) in sources {
            for (number, line) in text.unwrap_or_default().lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let error =
                    |what: &str| ConfigError(format!("{source} line {}: {what}", number + 1));
                let (name, hash) = line
                    .split_once(':')
                    .ok_or_else(|| error("expected user:hash"))?;
                if !["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)) {
                    return Err(error(&format!(
                        "user {name:?}: only bcrypt hashes ($2y$, made by `htpasswd -B`) are supported"
                    )));
                }
                if users.iter().any(|u| u.name == name) {
                    return Err(error(&format!("user {name:?} listed twice")));
                }
                let modules = match &config.access {
                    None => None,
                    Some(access) => Some(
                        access
                            .get(name)
                            .map(Vec::as_slice)
                            .unwrap_or_default()
                            .iter()
                            .map(|p| ModulePattern::parse(p))
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(|e| ConfigError(format!("access.{name}: {e}")))?,
                    ),
                };
                users.push(User {
                    name: name.to_string(),
                    hash: hash.to_string(),
                    scopes: config
                        .scopes
                        .get(name)
                        .cloned()
                        .unwrap_or(vec![Scope::Read]),
                    modules,
                });
            }
        }
        for name in config
            .access
            .iter()
            .flat_map(|a| a.keys())
            .chain(config.scopes.keys())
        {
            if !users.iter().any(|u| &u.name == name) {
                return Err(ConfigError(format!(
                    "{name:?} has access or scopes but no password"
                )));
            }
        }
        Ok(Policy {
            users,
            abstain_without_credentials: config.abstain_without_credentials,
        })
    }

    /// The decision for `req`.
    pub fn decide(&self, req: &RequestFacts, cache: &mut dyn VerifiedCache) -> Decision {
        let (name, password) = match credential(req) {
            Ok(Some(Credential::Basic { user, password })) => (user, password),
            Ok(None) if self.abstain_without_credentials => return Decision::Abstain,
            Ok(None) => return Decision::unauthorized(AUTH_REQUIRED),
            Ok(Some(Credential::Bearer(_))) | Err(_) => return Decision::unauthorized(BASIC_ONLY),
        };
        let Some(user) = self.users.iter().find(|u| u.name == name) else {
            // Spend the same time as for a known user, so timing does not tell who exists.
            if let Some(any) = self.users.first() {
                let _ = bcrypt::verify(&password, &any.hash);
            }
            return Decision::unauthorized(INVALID_CREDENTIALS);
        };
        let key = cache_key(user, &password);
        let verified = key.as_ref().is_some_and(|k| cache.contains(k))
            || (bcrypt::verify(&password, &user.hash).unwrap_or(false) && {
                if let Some(k) = &key {
                    cache.insert(k);
                }
                true
            });
        if !verified {
            return Decision::unauthorized(INVALID_CREDENTIALS);
        }
        decide_known(
            &format!("user {}", user.name),
            &user.name,
            &user.scopes,
            user.modules.as_deref(),
            req,
        )
    }
}

/// A digest of user, password and the stored hash: a changed hash (new password) misses.
/// `None` (nothing remembered) past the host's digest input cap.
fn cache_key(user: &User, password: &str) -> Option<String> {
    let mut input = Vec::new();
    for part in [user.name.as_str(), password, user.hash.as_str()] {
        input.extend_from_slice(&part.len().to_le_bytes());
        input.extend_from_slice(part.as_bytes());
    }
    let digest: String = auth_core::sha256(&input)?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(format!("verified:{digest}"))
}

#[cfg(test)]
mod tests;
