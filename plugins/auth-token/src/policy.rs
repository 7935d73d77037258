//! The token policy: its config, parsed into checked types, and the decision for a request.

use auth_core::{Credential, INVALID_CREDENTIALS, ModulePattern, Scope, credential, decide_known};
use modgate_plugin_sdk::{Decision, RequestFacts};
use subtle::ConstantTimeEq;

/// The answer without an `Authorization` header (unless `abstain_without_credentials`).
pub const AUTH_REQUIRED: &str = "authentication required: send a token as a Bearer token or as the password of Basic auth (.netrc or GOAUTH)";

/// The answer to an `Authorization` header that is neither Bearer nor Basic.
pub const MALFORMED: &str = "malformed Authorization header: send `Bearer <token>` or Basic auth with the token as password";

/// The plugin's `config` table as written.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Tokens listed in the config file.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// A granted secret whose value is a JSON list of more tokens (same fields).
    #[serde(default)]
    pub tokens_secret: Option<String>,
    /// Abstain (instead of 401) on requests without an `Authorization` header, so a later
    /// plugin on the route can decide them.
    #[serde(default)]
    pub abstain_without_credentials: bool,
}

/// One token as written.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Shown as the principal in logs and in 403 messages.
    pub name: String,
    /// Lower- or upper-case hex of sha256(token): `printf %s "$TOKEN" | sha256sum`.
    pub sha256: String,
    /// `read`, `publish`, `admin`.
    pub scopes: Vec<Scope>,
    /// GOPRIVATE-style patterns of the modules the token may touch (`["*"]`: all).
    pub modules: Vec<String>,
}

/// A checked token.
#[derive(Debug)]
struct Token {
    name: String,
    digest: [u8; 32],
    scopes: Vec<Scope>,
    modules: Vec<ModulePattern>,
}

/// The parsed policy; build it with [`Policy::new`], ask it with [`Policy::decide`].
#[derive(Debug)]
pub struct Policy {
    tokens: Vec<Token>,
    abstain_without_credentials: bool,
}

/// What is wrong with a config; the message names the token and field.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid auth-token config: {}", self.0)
    }
}

impl Policy {
    /// Check `config` and the value of its `tokens_secret` (a JSON list of tokens), if any.
    pub fn new(config: PolicyConfig, secret: Option<&str>) -> Result<Policy, ConfigError> {
        let mut written = config.tokens;
        if let Some(json) = secret {
            let more: Vec<TokenConfig> = serde_json::from_str(json)
                .map_err(|e| ConfigError(format!("tokens_secret: {e}")))?;
            written.extend(more);
        }
        let mut tokens: Vec<Token> = Vec::with_capacity(written.len());
        for t in written {
            let error = |what: String| ConfigError(format!("token {:?}: {what}", t.name));
            if t.name.is_empty() || t.name.len() > 128 || t.name.contains(char::is_control) {
                return Err(error("name must be 1 to 128 printable characters".into()));
            }
            if tokens.iter().any(|other| other.name == t.name) {
                return Err(error("listed twice".into()));
            }
            let digest = hex_digest(&t.sha256)
                .ok_or_else(|| error("sha256 must be 64 hex digits".into()))?;
            let modules = t
                .modules
                .iter()
                .map(|p| ModulePattern::parse(p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| error(e.to_string()))?;
            tokens.push(Token {
                name: t.name,
                digest,
                scopes: t.scopes,
                modules,
            });
        }
        Ok(Policy {
            tokens,
            abstain_without_credentials: config.abstain_without_credentials,
        })
    }

    /// The decision for `req`.
    pub fn decide(&self, req: &RequestFacts) -> Decision {
        let presented = match credential(req) {
            Ok(Some(Credential::Bearer(token))) => token,
            // Any user name: `.netrc` needs one, the token is the password.
            Ok(Some(Credential::Basic { password, .. })) => password,
            Ok(None) if self.abstain_without_credentials => return Decision::Abstain,
            Ok(None) => return Decision::unauthorized(AUTH_REQUIRED),
            Err(_) => return Decision::unauthorized(MALFORMED),
        };
        match self.find(&presented) {
            Some(token) => decide_known(
                &format!("token {}", token.name),
                &token.name,
                &token.scopes,
                Some(&token.modules),
                req,
            ),
            None => Decision::unauthorized(INVALID_CREDENTIALS),
        }
    }

    /// The token whose digest is sha256(`presented`). Every digest is compared in constant time
    /// and the loop does not stop early, so timing tells nothing about which bytes or which
    /// entry matched.
    fn find(&self, presented: &str) -> Option<&Token> {
        let digest = auth_core::sha256(presented.as_bytes())?;
        let mut found = None;
        for token in &self.tokens {
            if bool::from(token.digest.ct_eq(&digest)) {
                found = Some(token);
            }
        }
        found
    }
}

fn hex_digest(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let high = char::from(pair[0]).to_digit(16)?;
        let low = char::from(pair[1]).to_digit(16)?;
        out[i] = u8::try_from(high * 16 + low).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests;
