//! Checks `Authorization: Bearer <message>.<signature>` (the signature base64url, after the
//! last dot) with the host's `crypto` interface and the key in its config: `{"alg": "ES256",
//! "jwk": "<JSON text>"}`, `{"alg": …, "der": "<base64 SubjectPublicKeyInfo>"}` or `{"alg":
//! "HS256", "secret": "<base64url>"}`; `"hold": N` first reads the key N more times and keeps
//! the handles (the host's cap). Allows `valid`, denies 401 `invalid`, or 500 with the error.

use modgate_plugin_sdk::crypto::{self, Algorithm, Hash, Key};
use modgate_plugin_sdk::{Authorizer, Decision, RequestFacts, config, export_authorizer};

#[derive(serde::Deserialize)]
struct Probe {
    alg: String,
    #[serde(default)]
    jwk: Option<String>,
    #[serde(default)]
    der: Option<String>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    hold: u32,
}

struct CryptoProbe;

fn b64(text: &str, alphabet: &base64::engine::GeneralPurpose) -> Result<Vec<u8>, Decision> {
    use base64::Engine as _;
    alphabet
        .decode(text)
        .map_err(|e| Decision::deny(500, format!("base64: {e}")))
}

fn check(probe: &Probe, token: &str) -> Result<bool, Decision> {
    let fail = |e: crypto::Error| Decision::deny(500, format!("{e:?}"));
    let (message, signature) = token
        .rsplit_once('.')
        .ok_or_else(|| Decision::deny(400, "no signature"))?;
    let signature = b64(signature, &base64::engine::general_purpose::URL_SAFE_NO_PAD)?;
    if probe.alg == "HS256" {
        let secret = b64(
            probe.secret.as_deref().unwrap_or_default(),
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        )?;
        return crypto::hmac_verify(Hash::Sha256, &secret, message.as_bytes(), &signature)
            .map_err(fail);
    }
    let alg = Algorithm::from_jose(&probe.alg)
        .ok_or_else(|| Decision::deny(500, format!("alg {}", probe.alg)))?;
    let read = || match (&probe.jwk, &probe.der) {
        (Some(jwk), _) => Key::from_jwk(alg, jwk),
        (None, Some(der)) => {
            let der = b64(der, &base64::engine::general_purpose::STANDARD).unwrap_or_default();
            Key::from_spki_der(alg, &der)
        }
        (None, None) => Err(crypto::Error::InvalidKey("no key in the config".into())),
    };
    let mut held = Vec::new();
    for _ in 0..probe.hold {
        held.push(read().map_err(fail)?);
    }
    let key = read().map_err(fail)?;
    if key.algorithm() != alg {
        return Err(Decision::deny(500, "the key forgot its algorithm"));
    }
    crypto::verify(&key, message.as_bytes(), &signature).map_err(fail)
}

impl Authorizer for CryptoProbe {
    fn authorize(req: &RequestFacts) -> Decision {
        let probe: Probe = match config::get() {
            Ok(p) => p,
            Err(e) => return Decision::deny(500, e.to_string()),
        };
        let Some(token) = req.bearer_token() else {
            return Decision::deny(400, "no bearer token");
        };
        match check(&probe, token) {
            Ok(true) => Decision::allow("valid", Vec::<String>::new()),
            Ok(false) => Decision::deny(401, "invalid"),
            Err(refusal) => refusal,
        }
    }
}

export_authorizer!(CryptoProbe);
