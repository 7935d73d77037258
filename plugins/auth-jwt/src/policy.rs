//! The JWT policy: its config, parsed into checked types, and the decision for a request.

use auth_core::{Credential, INVALID_CREDENTIALS, ModulePattern, Scope, credential, decide_grants};
use base64::Engine as _;
use modgate_plugin_sdk::{Decision, RequestFacts};
use serde_json::{Map, Value};

use crate::keys::{Algorithm, Host, Key, Remote, RemoteKeys, SUPPORTED, parse_jwks};

/// The answer without an `Authorization` header (unless `abstain_without_credentials`).
pub const AUTH_REQUIRED: &str = "authentication required: send a JWT as a Bearer token or as the password of Basic auth (.netrc or GOAUTH)";

/// The answer to an `Authorization` header that is neither Bearer nor Basic.
pub const MALFORMED: &str =
    "malformed Authorization header: send `Bearer <jwt>` or Basic auth with the JWT as password";

/// The answer to a token whose signature checks out but whose `exp` has passed.
pub const EXPIRED: &str = "token expired";

/// The answer to a token whose signature checks out but whose `nbf` or `iat` is still ahead.
pub const NOT_YET_VALID: &str = "token not yet valid";

/// Longest token considered: real ones are a few KiB; this bounds the work a stranger can cause.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The plugin's `config` table as written.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Accepted `iss` values.
    pub issuers: Vec<String>,
    /// The `aud` value tokens must carry (as a string or in a list).
    pub audience: String,
    /// Accepted `alg` values; default: every supported one (each key still verifies only its own).
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    /// A granted secret holding the HS256 key.
    #[serde(default)]
    pub hs256_secret: Option<String>,
    /// Public keys: a JWKS as a table, or its JSON text.
    #[serde(default)]
    pub jwks: Option<Value>,
    /// Where the identity provider publishes its JWKS.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Seconds a fetched JWKS is used before asking again.
    #[serde(default = "default_jwks_ttl")]
    pub jwks_ttl_s: u64,
    /// Least seconds between two fetches (after a failure, or for a token's unknown `kid`).
    #[serde(default = "default_refetch")]
    pub jwks_refetch_interval_s: u64,
    /// Seconds a fetched JWKS remains usable while refetching fails.
    #[serde(default = "default_max_stale")]
    pub jwks_max_stale_s: u64,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_s: u64,
    /// The claim naming the caller (logs, 403 messages).
    #[serde(default = "default_principal_claim")]
    pub principal_claim: String,
    /// The claim holding OAuth scopes, as one space-separated string (RFC 8693 §4.2) or a list.
    #[serde(default = "default_scopes_claim")]
    pub scopes_claim: String,
    /// What tokens may do, by their claims.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Abstain (instead of 401) without an `Authorization` header.
    #[serde(default)]
    pub abstain_without_credentials: bool,
}

fn default_jwks_ttl() -> u64 {
    300
}
fn default_refetch() -> u64 {
    30
}
fn default_max_stale() -> u64 {
    86_400
}
fn default_leeway() -> u64 {
    60
}
fn default_principal_claim() -> String {
    "sub".into()
}
fn default_scopes_claim() -> String {
    "scope".into()
}

/// One rule as written: tokens whose `claim` holds `value` (every token, without both) get
/// `scopes` on `modules`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    #[serde(default)]
    pub claim: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
    pub scopes: Vec<Scope>,
    pub modules: Vec<String>,
}

#[derive(Debug)]
struct Rule {
    /// (claim, value); `None`: every valid token.
    when: Option<(String, String)>,
    scopes: Vec<Scope>,
    modules: Vec<ModulePattern>,
}

/// What is wrong with a config; the message names the field.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid auth-jwt config: {}", self.0)
    }
}

/// The parsed policy; build it with [`Policy::new`], ask it with [`Policy::decide`].
#[derive(Debug)]
pub struct Policy {
    issuers: Vec<String>,
    audience: String,
    algorithms: Vec<Algorithm>,
    /// The HS256 secret and the config's JWKS.
    keys: Vec<Key>,
    remote: Option<Remote>,
    leeway: u64,
    principal_claim: String,
    scopes_claim: String,
    rules: Vec<Rule>,
    abstain_without_credentials: bool,
}

/// Why a token was refused: the client's answer, and a line for the operator's log.
struct Refusal {
    decision: Decision,
    reason: String,
}

impl Refusal {
    fn invalid(reason: impl Into<String>) -> Self {
        Refusal {
            decision: Decision::unauthorized(INVALID_CREDENTIALS),
            reason: reason.into(),
        }
    }
}

impl Policy {
    /// Check `config`; `hs256_key` is the value of its `hs256_secret`, if any.
    pub fn new(config: JwtConfig, hs256_key: Option<&str>) -> Result<Policy, ConfigError> {
        let error = |field: &str, what: String| ConfigError(format!("{field}: {what}"));
        if config.issuers.is_empty() || config.issuers.iter().any(String::is_empty) {
            return Err(error("issuers", "list the accepted `iss` values".into()));
        }
        if config.audience.is_empty() {
            return Err(error("audience", "must not be empty".into()));
        }
        let algorithms = match &config.algorithms {
            None => SUPPORTED.iter().map(|(_, a)| *a).collect(),
            Some(names) => names
                .iter()
                .map(|name| {
                    Algorithm::from_name(name).ok_or_else(|| {
                        error(
                            "algorithms",
                            format!("{name:?} is not supported (HS256, RS256, ES256, EdDSA)"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        if algorithms.is_empty() {
            return Err(error("algorithms", "must not be empty".into()));
        }
        let mut keys = Vec::new();
        if let Some(secret) = hs256_key {
            // RFC 7518 §3.2: a key at least as long as the hash output.
            if secret.len() < 32 {
                return Err(error(
                    "hs256_secret",
                    "the key must be at least 32 bytes".into(),
                ));
            }
            if !algorithms.contains(&Algorithm::HS256) {
                return Err(error(
                    "hs256_secret",
                    "set, but `algorithms` leaves out HS256".into(),
                ));
            }
            keys.push(Key::hs256(secret.as_bytes()));
        }
        if let Some(jwks) = &config.jwks {
            let parsed = match jwks {
                Value::String(text) => serde_json::from_str(text)
                    .map_err(|e| error("jwks", format!("not JSON: {e}")))?,
                other => other.clone(),
            };
            for (i, key) in parse_jwks(&parsed, false)
                .map_err(|e| error("jwks", e))?
                .into_iter()
                .enumerate()
            {
                keys.push(key.map_err(|e| error(&format!("jwks key {i}"), e))?);
            }
        }
        let remote = match config.jwks_url {
            Some(url) => {
                if !url_is_safe(&url) {
                    return Err(error(
                        "jwks_url",
                        format!(
                            "{url:?}: use https:// (http:// only to 127.0.0.1, [::1] or localhost)"
                        ),
                    ));
                }
                Some(Remote {
                    url,
                    ttl: config.jwks_ttl_s,
                    refetch_interval: config.jwks_refetch_interval_s,
                    max_stale: config.jwks_max_stale_s.max(config.jwks_ttl_s),
                })
            }
            None => None,
        };
        if keys.is_empty() && remote.is_none() {
            return Err(ConfigError(
                "no keys: set hs256_secret, jwks or jwks_url".into(),
            ));
        }
        let mut rules = Vec::with_capacity(config.rules.len());
        for (i, rule) in config.rules.into_iter().enumerate() {
            let error = |what: String| ConfigError(format!("rules[{i}]: {what}"));
            let when = match (rule.claim, rule.value) {
                (Some(claim), Some(value)) => Some((claim, value)),
                (None, None) => None,
                _ => return Err(error("set both claim and value, or neither".into())),
            };
            let modules = rule
                .modules
                .iter()
                .map(|p| ModulePattern::parse(p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| error(e.to_string()))?;
            if rule.scopes.is_empty() || modules.is_empty() {
                return Err(error("scopes and modules must not be empty".into()));
            }
            rules.push(Rule {
                when,
                scopes: rule.scopes,
                modules,
            });
        }
        Ok(Policy {
            issuers: config.issuers,
            audience: config.audience,
            algorithms,
            keys,
            remote,
            leeway: config.leeway_s,
            principal_claim: config.principal_claim,
            scopes_claim: config.scopes_claim,
            rules,
            abstain_without_credentials: config.abstain_without_credentials,
        })
    }

    /// The decision for `req` at `now` (seconds since the Unix epoch, the host's wall clock).
    pub fn decide(&self, req: &RequestFacts, host: &mut dyn Host, now: u64) -> Decision {
        self.decide_for(req, host, now).0
    }

    /// [`Policy::decide`], and for how many seconds the answer stays true for requests with the
    /// same credentials, module and action: until the token's `exp` (leeway not counted) once
    /// its signature, issuer, audience and times check out; `None` for refusals before that,
    /// which a refetched key set or the passing of `nbf` could change.
    pub fn decide_for(
        &self,
        req: &RequestFacts,
        host: &mut dyn Host,
        now: u64,
    ) -> (Decision, Option<u64>) {
        let token = match credential(req) {
            Ok(Some(Credential::Bearer(token))) => token,
            // Any user name: `.netrc` needs one, the JWT is the password.
            Ok(Some(Credential::Basic { password, .. })) => password,
            Ok(None) if self.abstain_without_credentials => return (Decision::Abstain, None),
            Ok(None) => return (Decision::unauthorized(AUTH_REQUIRED), None),
            Err(_) => return (Decision::unauthorized(MALFORMED), None),
        };
        match self.verify(&token, host, now) {
            Ok((principal, claims)) => {
                let valid_for = claims
                    .get("exp")
                    .and_then(Value::as_f64)
                    .map(|exp| (exp - now as f64).floor())
                    .filter(|secs| *secs >= 1.0)
                    // Whole seconds, far below u64::MAX: the cast cannot truncate.
                    .map(|secs| secs as u64);
                let grants = self
                    .rules
                    .iter()
                    .filter(|rule| match &rule.when {
                        None => true,
                        Some((claim, value)) => {
                            holds(&claims, claim, value, *claim == self.scopes_claim)
                        }
                    })
                    .map(|rule| (&rule.scopes[..], Some(&rule.modules[..])));
                let decision =
                    decide_grants(&format!("token for {principal}"), &principal, grants, req);
                (decision, valid_for)
            }
            Err(refusal) => {
                host.debug(&format!("token refused: {}", refusal.reason));
                (refusal.decision, None)
            }
        }
    }

    /// The principal and claims of a token whose signature, issuer, audience and times check
    /// out.
    fn verify(
        &self,
        token: &str,
        host: &mut dyn Host,
        now: u64,
    ) -> Result<(String, Map<String, Value>), Refusal> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Refusal::invalid("longer than 16 KiB"));
        }
        // `alg: none` and unknown algorithms do not parse.
        let token = Token::parse(token).map_err(Refusal::invalid)?;
        let header = &token.header;
        if !self.algorithms.contains(&header.alg) {
            return Err(Refusal::invalid(format!(
                "alg {:?} not allowed",
                header.alg
            )));
        }
        let kid = header.kid.as_deref();
        let mut remote_keys = std::rc::Rc::new(Vec::new());
        let mut unavailable;
        let mut refreshed = false;
        loop {
            unavailable = None;
            if let Some(remote) = &self.remote {
                match remote.keys(host, now, refreshed) {
                    RemoteKeys::Keys(keys) => remote_keys = keys,
                    RemoteKeys::Unavailable(why) => unavailable = Some((remote, why)),
                }
            }
            let candidates: Vec<&Key> = self
                .keys
                .iter()
                .chain(remote_keys.iter())
                .filter(|key| key.alg == header.alg)
                // The HS256 secret has no kid and serves tokens with any.
                .filter(|key| kid.is_none() || key.kid.is_none() || key.kid.as_deref() == kid)
                .collect();
            if candidates.is_empty() {
                if let Some((remote, why)) = &unavailable {
                    return Err(Refusal {
                        decision: Decision::deny(
                            503,
                            format!(
                                "auth-jwt: cannot verify tokens: JWKS {} unavailable (see the server log)",
                                remote.url
                            ),
                        ),
                        reason: format!("JWKS {}: {why}", remote.url),
                    });
                }
                // A key the copy lacks, maybe just rotated in: fetch once more (rate-limited).
                if self.remote.is_some() && !refreshed {
                    refreshed = true;
                    continue;
                }
                return Err(Refusal::invalid(format!(
                    "no {:?} key with kid {kid:?}",
                    header.alg
                )));
            }
            if candidates
                .iter()
                .any(|key| key.verify(token.signing_input.as_bytes(), &token.signature))
            {
                let claims = token.claims().map_err(Refusal::invalid)?;
                return self.check_claims(claims, now);
            }
            return Err(Refusal::invalid("signature: invalid"));
        }
    }

    fn check_claims(
        &self,
        claims: Map<String, Value>,
        now: u64,
    ) -> Result<(String, Map<String, Value>), Refusal> {
        let time = |name: &str| -> Result<Option<f64>, Refusal> {
            match claims.get(name) {
                None => Ok(None),
                Some(v) => v
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| Refusal::invalid(format!("{name} is not a number"))),
            }
        };
        // Seconds as f64: exact for any date before the year 285 million.
        let (now, leeway) = (now as f64, self.leeway as f64);
        let exp = time("exp")?.ok_or_else(|| Refusal::invalid("no exp"))?;
        if exp + leeway <= now {
            return Err(Refusal {
                decision: Decision::unauthorized(EXPIRED),
                reason: format!("expired at {exp}"),
            });
        }
        for name in ["nbf", "iat"] {
            if let Some(t) = time(name)?
                && t > now + leeway
            {
                return Err(Refusal {
                    decision: Decision::unauthorized(NOT_YET_VALID),
                    reason: format!("{name} {t} is in the future"),
                });
            }
        }
        match claims.get("iss").and_then(Value::as_str) {
            Some(iss) if self.issuers.iter().any(|i| i == iss) => {}
            other => return Err(Refusal::invalid(format!("iss {other:?} not accepted"))),
        }
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => *aud == self.audience,
            Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(&self.audience)),
            _ => false,
        };
        if !audience_ok {
            return Err(Refusal::invalid(format!(
                "aud does not contain {:?}",
                self.audience
            )));
        }
        let principal = match claims.get(&self.principal_claim).and_then(Value::as_str) {
            // It goes into 403 messages and logs: one printable line.
            Some(p) if !p.is_empty() && p.len() <= 256 && !p.contains(char::is_control) => {
                p.to_string()
            }
            _ => {
                return Err(Refusal::invalid(format!(
                    "no usable {:?} claim",
                    self.principal_claim
                )));
            }
        };
        Ok((principal, claims))
    }
}

/// Whether `claims[name]` holds `value`: equal to it, or a list containing it, or (for the
/// scopes claim) a space-separated string with it among its words.
fn holds(claims: &Map<String, Value>, name: &str, value: &str, space_separated: bool) -> bool {
    match claims.get(name) {
        Some(Value::String(s)) => {
            s == value || (space_separated && s.split(' ').any(|word| word == value))
        }
        Some(Value::Array(items)) => items.iter().any(|item| item.as_str() == Some(value)),
        _ => false,
    }
}

/// `https://…`, or `http://` to this machine (tests, a sidecar): a JWKS over plain HTTP from
/// elsewhere could be swapped in transit for the attacker's keys.
fn url_is_safe(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return false;
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => host,
        _ => authority,
    };
    matches!(host, "127.0.0.1" | "[::1]" | "localhost")
}

/// A compact JWS (`header.payload.signature`), split and decoded as far as verifying needs.
struct Token<'a> {
    header: Header,
    /// `header.payload`, what the signature covers.
    signing_input: &'a str,
    payload: &'a str,
    signature: Vec<u8>,
}

/// The header fields the policy reads.
struct Header {
    alg: Algorithm,
    kid: Option<String>,
}

impl<'a> Token<'a> {
    fn parse(token: &'a str) -> Result<Self, String> {
        let (signing_input, signature) = token
            .rsplit_once('.')
            .ok_or("not a JWS: expected header.payload.signature")?;
        let (header, payload) = signing_input
            .split_once('.')
            .filter(|(_, p)| !p.contains('.'))
            .ok_or("not a JWS: expected header.payload.signature")?;
        let header: Map<String, Value> = serde_json::from_slice(&b64url(header, "header")?)
            .map_err(|e| format!("header: {e}"))?;
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or("header: no alg")?;
        let alg = Algorithm::from_name(alg)
            .ok_or_else(|| format!("header: alg {alg:?} is not supported"))?;
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err("header: kid is not a string".into()),
        };
        Ok(Token {
            header: Header { alg, kid },
            signing_input,
            payload,
            signature: b64url(signature, "signature")?,
        })
    }

    /// The payload's claims (read only once the signature holds).
    fn claims(&self) -> Result<Map<String, Value>, String> {
        serde_json::from_slice(&b64url(self.payload, "payload")?)
            .map_err(|e| format!("payload: {e}"))
    }
}

/// base64url without padding, as JWS encodes every part.
fn b64url(part: &str, what: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| format!("{what}: {e}"))
}

#[cfg(test)]
mod tests;
