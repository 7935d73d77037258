//! `auth-jwt`'s token handling, natively: fuzzed headers and payloads, as tokens signed with the
//! plugin's HS256 key or not signed by it (raw, or with a fuzzed signature). A token the key did
//! not sign is never allowed; an allowed one carries the configured issuer and audience and has
//! not expired.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use auth_jwt::keys::Host;
use auth_jwt::policy::{JwtConfig, Policy};
use base64::Engine as _;
use hmac::Mac as _;
use libfuzzer_sys::fuzz_target;
use modgate_plugin_sdk::{Decision, RequestFacts};
use serde_json::{Value, json};

const NOW: u64 = 1_800_000_000;
const HS_KEY: &str = "0123456789abcdef0123456789abcdef-hs256";
const ISSUER: &str = "https://idp.corp.example";

fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        let config: JwtConfig = serde_json::from_value(json!({
            "issuers": [ISSUER],
            "audience": "modgate",
            "jwks": {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "ed",
                               "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]},
            "rules": [
                {"claim": "groups", "value": "team-a", "scopes": ["read", "publish"],
                 "modules": ["corp.example/team-a"]},
                {"scopes": ["read"], "modules": ["corp.example/*"]},
            ],
        }))
        .expect("the config parses");
        Policy::new(config, Some(HS_KEY)).expect("the policy builds")
    })
}

/// No JWKS URL is configured: nothing is fetched; `kv` stays empty.
struct NoHost;

impl Host for NoHost {
    fn kv_get(&mut self, _: &str) -> Option<Vec<u8>> {
        None
    }
    fn kv_set(&mut self, _: &str, _: &[u8], _: Duration) {}
    fn fetch(&mut self, url: &str) -> Result<Vec<u8>, String> {
        panic!("fetched {url} without a jwks_url");
    }
    fn warn(&mut self, _: &str) {}
    fn debug(&mut self, _: &str) {}
}

#[derive(Arbitrary, Debug)]
enum Token {
    /// `b64(header).b64(payload).sig`, signed with the plugin's key when `signature` is `None`.
    Parts {
        header: String,
        payload: String,
        signature: Option<Vec<u8>>,
    },
    Raw(String),
}

#[derive(Arbitrary, Debug)]
struct Input {
    token: Token,
    basic: bool,
    module: String,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fuzz_target!(|input: Input| {
    let (token, signed_by_key, payload) = match &input.token {
        Token::Parts {
            header,
            payload,
            signature,
        } => {
            let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
            let sig = match signature {
                Some(sig) => sig.clone(),
                None => {
                    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(HS_KEY.as_bytes())
                        .expect("any key length");
                    mac.update(input.as_bytes());
                    mac.finalize().into_bytes().to_vec()
                }
            };
            (
                format!("{input}.{}", b64(&sig)),
                signature.is_none(),
                Some(payload),
            )
        }
        Token::Raw(raw) => (raw.clone(), false, None),
    };
    let value = if input.basic {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("x:{token}"));
        format!("Basic {basic}")
    } else {
        format!("Bearer {token}")
    };
    let mut req = RequestFacts::example();
    req.module = Some(if input.module.is_empty() {
        "corp.example/x".into()
    } else {
        input.module
    });
    req.headers.push(("authorization".into(), value));
    let (decision, valid_for) = policy().decide_for(&req, &mut NoHost, NOW);
    if let Decision::Allow(_) = decision {
        assert!(
            signed_by_key,
            "allowed a token the key did not sign: {token:?}"
        );
        let claims: Value = serde_json::from_str(payload.expect("signed parts")).expect("JSON");
        assert_eq!(claims["iss"], ISSUER);
        let aud = &claims["aud"];
        assert!(
            aud == "modgate"
                || aud
                    .as_array()
                    .is_some_and(|a| a.iter().any(|v| v == "modgate"))
        );
        assert!(
            claims["exp"]
                .as_f64()
                .is_some_and(|exp| exp + 60.0 > NOW as f64)
        );
        assert!(valid_for.is_some());
    }
});
