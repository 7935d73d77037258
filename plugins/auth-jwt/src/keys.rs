//! Verification keys: JWKs (inline in the config or fetched from a JWKS URL), the HS256 secret,
//! and the JWKS URL's copy in the host's `kv` cache.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

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

/// The algorithms this plugin verifies (RFC 7518 §3.1, RFC 8037 §3.1), named as in JOSE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    HS256,
    RS256,
    ES256,
    EdDSA,
}

/// The algorithms this plugin verifies, by their JOSE names.
pub const SUPPORTED: [(&str, Algorithm); 4] = [
    ("HS256", Algorithm::HS256),
    ("RS256", Algorithm::RS256),
    ("ES256", Algorithm::ES256),
    ("EdDSA", Algorithm::EdDSA),
];

impl Algorithm {
    /// The algorithm of a JOSE `alg` name this plugin supports.
    pub fn from_name(name: &str) -> Option<Self> {
        SUPPORTED.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
    }
}

/// A key that verifies exactly one algorithm: the algorithm comes from the key's type and curve,
/// never from the token, so an RSA public key can never be used as an HS256 secret.
pub struct Key {
    /// The JWK's `kid`; `None` for the HS256 secret and JWKs without one.
    pub kid: Option<String>,
    /// The one algorithm this key verifies.
    pub alg: Algorithm,
    verifier: Verifier,
}

/// The key material, where the checks run: in a plugin the host computes them (`crypto`, at
/// native speed, the public key read once and held by the host); natively (the policy's tests)
/// the `jsonwebtoken` crate does.
enum Verifier {
    #[cfg(target_arch = "wasm32")]
    Public(modgate_plugin_sdk::crypto::Key),
    #[cfg(target_arch = "wasm32")]
    Secret(Vec<u8>),
    #[cfg(not(target_arch = "wasm32"))]
    Native(jsonwebtoken::DecodingKey),
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} key {:?}", self.alg, self.kid)
    }
}

impl Key {
    /// The HS256 key `secret`.
    pub fn hs256(secret: &[u8]) -> Self {
        Self {
            kid: None,
            alg: Algorithm::HS256,
            #[cfg(target_arch = "wasm32")]
            verifier: Verifier::Secret(secret.to_vec()),
            #[cfg(not(target_arch = "wasm32"))]
            verifier: Verifier::Native(jsonwebtoken::DecodingKey::from_secret(secret)),
        }
    }

    /// Whether `signature` (decoded) is this key's signature of `signing_input` (the token's
    /// `header.payload`). HMAC tags are compared in constant time.
    pub fn verify(&self, signing_input: &[u8], signature: &[u8]) -> bool {
        match &self.verifier {
            #[cfg(target_arch = "wasm32")]
            Verifier::Public(key) => key.verify(signing_input, signature).unwrap_or(false),
            #[cfg(target_arch = "wasm32")]
            Verifier::Secret(secret) => modgate_plugin_sdk::crypto::hmac_verify(
                modgate_plugin_sdk::crypto::Hash::Sha256,
                secret,
                signing_input,
                signature,
            )
            .unwrap_or(false),
            #[cfg(not(target_arch = "wasm32"))]
            Verifier::Native(key) => {
                let alg = match self.alg {
                    Algorithm::HS256 => jsonwebtoken::Algorithm::HS256,
                    Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
                    Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
                    Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
                };
                let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature);
                jsonwebtoken::crypto::verify(&encoded, signing_input, key, alg).unwrap_or(false)
            }
        }
    }
}

/// The key in one JWK: RSA → RS256, EC P-256 → ES256, OKP Ed25519 → EdDSA, and `oct` → HS256
/// only when `symmetric` (a JWKS in the config or from a URL is public: a symmetric key there
/// would let anyone who can read it mint tokens). A JWK's own `alg`, when present, must agree;
/// keys marked `"use": "enc"` are not signature keys.
pub fn from_jwk(value: &Value, symmetric: bool) -> Result<Key, String> {
    let jwk = value.as_object().ok_or("a JWK is a JSON object")?;
    let field = |name: &str| jwk.get(name).and_then(Value::as_str);
    let b64 = |name: &str| -> Result<Vec<u8>, String> {
        let text = field(name).ok_or_else(|| format!("missing `{name}`"))?;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|e| format!("{name}: {e}"))
    };
    let kty = field("kty").ok_or("missing `kty`")?;
    let alg = match (kty, field("crv")) {
        ("RSA", _) => {
            // RFC 7518 §3.3: 2048 bits or larger.
            let modulus = b64("n")?;
            b64("e")?;
            let bits = modulus
                .iter()
                .position(|&b| b != 0)
                .map_or(0, |i| (modulus.len() - i) * 8);
            if bits < 2048 {
                return Err(format!("RSA key of {bits} bits: 2048 or more are required"));
            }
            Algorithm::RS256
        }
        ("EC", Some("P-256")) => Algorithm::ES256,
        ("OKP", Some("Ed25519")) => Algorithm::EdDSA,
        ("oct", _) if symmetric => Algorithm::HS256,
        ("oct", _) => {
            return Err("symmetric (`oct`) keys are refused here: use hs256_secret".into());
        }
        _ => return Err("unsupported key type or curve (RSA, EC P-256, OKP Ed25519)".into()),
    };
    if let Some(own) = field("alg")
        && Algorithm::from_name(own) != Some(alg)
    {
        return Err(format!(
            "its alg is not {alg:?} (supported: HS256, RS256, ES256, EdDSA)"
        ));
    }
    if matches!(field("use"), Some(u) if u != "sig") {
        return Err("not a signature key (`use` is not `sig`)".into());
    }
    if alg != Algorithm::HS256
        && let Some(private) = ["d", "p", "q", "dp", "dq", "qi"]
            .into_iter()
            .find(|f| jwk.get(*f).is_some())
    {
        return Err(format!(
            "holds private key material ({private:?}): publish only the public key"
        ));
    }
    let kid = field("kid").map(str::to_owned);
    if alg == Algorithm::HS256 {
        return Ok(Key {
            kid,
            ..Key::hs256(&b64("k")?)
        });
    }
    Ok(Key {
        kid,
        alg,
        verifier: verifier(alg, value)?,
    })
}

#[cfg(target_arch = "wasm32")]
fn verifier(alg: Algorithm, jwk: &Value) -> Result<Verifier, String> {
    use modgate_plugin_sdk::crypto;
    let alg = match alg {
        Algorithm::RS256 => crypto::Algorithm::Rs256,
        Algorithm::ES256 => crypto::Algorithm::Es256,
        Algorithm::EdDSA => crypto::Algorithm::EdDsa,
        Algorithm::HS256 => return Err("HS256 keys are secrets".into()),
    };
    crypto::Key::from_jwk(alg, &jwk.to_string())
        .map(Verifier::Public)
        .map_err(|e| match e {
            crypto::Error::InvalidKey(why) => why,
            other => format!("{other:?}"),
        })
}

#[cfg(not(target_arch = "wasm32"))]
fn verifier(_alg: Algorithm, jwk: &Value) -> Result<Verifier, String> {
    let jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(jwk.clone()).map_err(|e| e.to_string())?;
    jsonwebtoken::DecodingKey::from_jwk(&jwk)
        .map(Verifier::Native)
        .map_err(|e| e.to_string())
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
    Keys(Rc<Vec<Key>>),
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
    /// skipped, as identity providers publish many kinds. A body read before (the `kv` copy,
    /// unchanged) gives the keys read then: a JWKS is read once per instance, not per call.
    fn usable(&self, host: &mut dyn Host, body: &[u8]) -> Rc<Vec<Key>> {
        /// Per JWKS URL: the body last read and its keys.
        type Read = HashMap<String, (Vec<u8>, Rc<Vec<Key>>)>;
        thread_local! {
            static READ: RefCell<Read> = RefCell::new(HashMap::new());
        }
        let known = READ.with(|read| {
            read.borrow()
                .get(&self.url)
                .filter(|(seen, _)| seen == body)
                .map(|(_, keys)| Rc::clone(keys))
        });
        if let Some(keys) = known {
            return keys;
        }
        let keys = Rc::new(self.read(host, body));
        READ.with(|read| {
            read.borrow_mut()
                .insert(self.url.clone(), (body.to_vec(), Rc::clone(&keys)))
        });
        keys
    }

    fn read(&self, host: &mut dyn Host, body: &[u8]) -> Vec<Key> {
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
