//! Verification keys: JWKs (inline in the config or fetched from a JWKS URL), the HS256 secret,
//! and the JWKS URL's copy in the host's `kv` cache.

use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

/// What the policy needs from the host: the `kv` cache, outbound HTTP and the log. The plugin
/// implements it with the SDK's host interfaces; unit tests with maps and counters.
pub trait Host {
    /// The `kv` value under `key`.
    fn kv_get(&mut self, key: &str) -> Option<Vec<u8>>;
    /// Store `value` under `key` for `ttl`.
    fn kv_set(&mut self, key: &str, value: &[u8], ttl: Duration);
    /// `GET url`: the body of a 200 answer, or what went wrong.
    fn fetch(&mut self, url: &str) -> Result<Vec<u8>, String>;
    /// A line for the operator (the server log), at warn level.
    fn warn(&mut self, message: &str);
    /// A line for the operator at debug level (why a token was refused).
    fn debug(&mut self, message: &str);
}

/// A key that verifies exactly one algorithm: the algorithm comes from the key's type and curve,
/// never from the token, so an RSA public key can never be used as an HS256 secret.
pub struct Key {
    /// The JWK's `kid`; `None` for the HS256 secret and JWKs without one.
    pub kid: Option<String>,
    /// The one algorithm this key verifies.
    pub alg: Algorithm,
    /// The key material.
    pub key: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} key {:?}", self.alg, self.kid)
    }
}

/// The algorithms this plugin verifies, by their JOSE names (RFC 7518 §3.1, RFC 8037 §3.1).
pub const SUPPORTED: [(&str, Algorithm); 4] = [
    ("HS256", Algorithm::HS256),
    ("RS256", Algorithm::RS256),
    ("ES256", Algorithm::ES256),
    ("EdDSA", Algorithm::EdDSA),
];

/// The key in one JWK: RSA → RS256, EC P-256 → ES256, OKP Ed25519 → EdDSA, and `oct` → HS256
/// only when `symmetric` (a JWKS in the config or from a URL is public: a symmetric key there
/// would let anyone who can read it mint tokens). A JWK's own `alg`, when present, must agree;
/// keys marked `"use": "enc"` are not signature keys.
pub fn from_jwk(value: &serde_json::Value, symmetric: bool) -> Result<Key, String> {
    let jwk: Jwk = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    let alg = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            // RFC 7518 §3.3: 2048 bits or larger.
            let modulus = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(rsa.n.trim_end_matches('='))
                .map_err(|e| format!("n: {e}"))?;
            let bits = modulus
                .iter()
                .position(|&b| b != 0)
                .map_or(0, |i| (modulus.len() - i) * 8);
            if bits < 2048 {
                return Err(format!("RSA key of {bits} bits: 2048 or more are required"));
            }
            Algorithm::RS256
        }
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        AlgorithmParameters::OctetKey(_) if symmetric => Algorithm::HS256,
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric (`oct`) keys are refused here: use hs256_secret".into());
        }
        _ => return Err("unsupported key type or curve (RSA, EC P-256, OKP Ed25519)".into()),
    };
    let agrees = match jwk.common.key_algorithm {
        None => true,
        Some(KeyAlgorithm::RS256) => alg == Algorithm::RS256,
        Some(KeyAlgorithm::ES256) => alg == Algorithm::ES256,
        Some(KeyAlgorithm::EdDSA) => alg == Algorithm::EdDSA,
        Some(KeyAlgorithm::HS256) => alg == Algorithm::HS256,
        Some(_) => false,
    };
    if !agrees {
        return Err(format!(
            "its alg is not {alg:?} (supported: HS256, RS256, ES256, EdDSA)"
        ));
    }
    if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return Err("not a signature key (`use` is not `sig`)".into());
    }
    if alg != Algorithm::HS256
        && let Some(private) = ["d", "p", "q", "dp", "dq", "qi"]
            .into_iter()
            .find(|f| value.get(f).is_some())
    {
        return Err(format!(
            "holds private key material ({private:?}): publish only the public key"
        ));
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
    Ok(Key {
        kid: jwk.common.key_id,
        alg,
        key,
    })
}

/// The keys of a JWKS document (`{"keys": [...]}`), as a list of (index, key or why not).
pub fn parse_jwks(
    jwks: &serde_json::Value,
    symmetric: bool,
) -> Result<Vec<Result<Key, String>>, String> {
    let keys = jwks
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or("not a JWKS: expected an object with a `keys` list")?;
    Ok(keys.iter().map(|k| from_jwk(k, symmetric)).collect())
}

/// A JWKS URL and how its copy in `kv` is kept.
#[derive(Debug)]
pub struct Remote {
    pub url: String,
    /// How long a fetched JWKS is used without asking again.
    pub ttl: u64,
    /// Least time between two fetches (after a failure, or for an unknown `kid`).
    pub refetch_interval: u64,
    /// How long a fetched JWKS stays usable when refetching fails.
    pub max_stale: u64,
}

/// The remote keys as far as they could be had.
pub enum RemoteKeys {
    /// Fetched now or recently.
    Keys(Vec<Key>),
    /// No JWKS fetched, and none to fall back on: why.
    Unavailable(String),
}

impl Remote {
    fn cache_key(&self) -> String {
        format!("jwks:{}", self.url)
    }

    fn attempt_key(&self) -> String {
        format!("jwks-attempt:{}", self.url)
    }

    /// The keys: the `kv` copy while it is younger than `ttl` (unless `refresh`: a token named
    /// a key the copy lacks), else a fresh fetch. At most one fetch per `refetch_interval`, so
    /// a flood of tokens with made-up `kid`s cannot hammer the identity provider; when a fetch
    /// fails or is not allowed yet, the copy (up to `max_stale` old) is used.
    pub fn keys(&self, host: &mut dyn Host, now: u64, refresh: bool) -> RemoteKeys {
        let cached = host.kv_get(&self.cache_key()).and_then(|bytes| {
            let (stamp, body) = bytes.split_first_chunk::<8>()?;
            Some((u64::from_le_bytes(*stamp), body.to_vec()))
        });
        let fresh = cached
            .as_ref()
            .is_some_and(|(fetched, _)| now < fetched.saturating_add(self.ttl));
        if fresh
            && !refresh
            && let Some((_, body)) = &cached
        {
            return RemoteKeys::Keys(self.usable(host, body));
        }
        let may_fetch = host.kv_get(&self.attempt_key()).is_none();
        if may_fetch {
            host.kv_set(
                &self.attempt_key(),
                b"1",
                Duration::from_secs(self.refetch_interval),
            );
            match self.fetch(host) {
                Ok(body) => {
                    let mut entry = now.to_le_bytes().to_vec();
                    entry.extend_from_slice(&body);
                    host.kv_set(
                        &self.cache_key(),
                        &entry,
                        Duration::from_secs(self.max_stale),
                    );
                    return RemoteKeys::Keys(self.usable(host, &body));
                }
                Err(problem) => {
                    let fallback = if cached.is_some() {
                        "using the copy fetched before"
                    } else {
                        "no copy to fall back on"
                    };
                    host.warn(&format!("JWKS {}: {problem}; {fallback}", self.url));
                    if cached.is_none() {
                        return RemoteKeys::Unavailable(problem);
                    }
                }
            }
        }
        match cached {
            Some((_, body)) => RemoteKeys::Keys(self.usable(host, &body)),
            None => RemoteKeys::Unavailable(format!(
                "the last fetch failed less than {} s ago",
                self.refetch_interval
            )),
        }
    }

    /// The JWKS body, checked to be a JWKS before it is cached.
    fn fetch(&self, host: &mut dyn Host) -> Result<Vec<u8>, String> {
        let body = host.fetch(&self.url)?;
        let json: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))?;
        parse_jwks(&json, false)?;
        Ok(body)
    }

    /// The keys of a JWKS this plugin can use; others (encryption keys, other curves) are
    /// skipped, as identity providers publish many kinds.
    fn usable(&self, host: &mut dyn Host, body: &[u8]) -> Vec<Key> {
        let parsed = serde_json::from_slice(body)
            .map_err(|e| e.to_string())
            .and_then(|json| parse_jwks(&json, false));
        match parsed {
            Ok(keys) => keys
                .into_iter()
                .enumerate()
                .filter_map(|(i, key)| {
                    key.map_err(|e| host.debug(&format!("JWKS {} key {i}: {e}", self.url)))
                        .ok()
                })
                .collect(),
            Err(e) => {
                host.warn(&format!("JWKS {}: cached copy unreadable: {e}", self.url));
                Vec::new()
            }
        }
    }
}
