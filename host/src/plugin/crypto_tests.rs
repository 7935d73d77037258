//! The `crypto` interface against the published JWS test vectors: RFC 7515 appendices A.1
//! (HS256), A.2 (RS256), A.3 (ES256) and RFC 8037 A.4 (EdDSA), with keys as JWKs and as DER.

#![expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use base64::Engine as _;

use super::*;

/// The RFC 7515 payload (A.1–A.3): `{"iss":"joe",…}` with CRLFs.
pub(crate) const PAYLOAD: &str = "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";

pub(crate) const RSA_N: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
pub(crate) const RS256_SIG: &str = "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";

pub(crate) const EC_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
pub(crate) const EC_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
pub(crate) const ES256_SIG: &str =
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
const ED_INPUT: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
const ED_SIG: &str =
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

const HS_KEY: &str =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
const HS_HEADER: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9";
const HS256_SIG: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

fn jwk(algorithm: SignatureAlgorithm, text: &str) -> Result<VerifyKey, String> {
    VerifyKey::parse(algorithm, &KeyData::Jwk(text.to_owned()))
}

/// DER: one element of type `tag` around `content`.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn spki(alg_id: &[u8], key: &[u8]) -> Vec<u8> {
    let bits = [&[0u8][..], key].concat();
    der(0x30, &[der(0x30, alg_id), der(0x03, &bits)].concat())
}

#[test]
fn rfc_7515_and_8037_signatures_verify_from_jwks() {
    use SignatureAlgorithm as A;
    let rs = jwk(
        A::Rs256,
        &format!(r#"{{"kty":"RSA","n":"{RSA_N}","e":"AQAB"}}"#),
    )
    .unwrap();
    let input = format!("eyJhbGciOiJSUzI1NiJ9.{PAYLOAD}");
    assert!(rs.verify(input.as_bytes(), &b64(RS256_SIG)));

    let es = jwk(
        A::Es256,
        &format!(r#"{{"kty":"EC","crv":"P-256","x":"{EC_X}","y":"{EC_Y}"}}"#),
    )
    .unwrap();
    let input = format!("eyJhbGciOiJFUzI1NiJ9.{PAYLOAD}");
    assert!(es.verify(input.as_bytes(), &b64(ES256_SIG)));

    let ed = jwk(
        A::EdDsa,
        &format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{ED_X}","alg":"EdDSA"}}"#),
    )
    .unwrap();
    assert!(ed.verify(ED_INPUT.as_bytes(), &b64(ED_SIG)));

    // Any change to the message or the signature, or a signature of another length, fails.
    for (key, input, sig) in [
        (&rs, format!("eyJhbGciOiJSUzI1NiJ9.{PAYLOAD}"), RS256_SIG),
        (&es, format!("eyJhbGciOiJFUzI1NiJ9.{PAYLOAD}"), ES256_SIG),
        (&ed, ED_INPUT.to_owned(), ED_SIG),
    ] {
        let sig = b64(sig);
        assert!(!key.verify(format!("{input}x").as_bytes(), &sig));
        let mut bad = sig.clone();
        bad[5] ^= 1;
        assert!(!key.verify(input.as_bytes(), &bad));
        assert!(!key.verify(input.as_bytes(), &sig[1..]));
        assert!(!key.verify(input.as_bytes(), b""));
    }
    // The same RSA key for PS256 does not take a PKCS#1 v1.5 signature.
    let ps = jwk(
        A::Ps256,
        &format!(r#"{{"kty":"RSA","n":"{RSA_N}","e":"AQAB"}}"#),
    )
    .unwrap();
    let input = format!("eyJhbGciOiJSUzI1NiJ9.{PAYLOAD}");
    assert!(!ps.verify(input.as_bytes(), &b64(RS256_SIG)));
}

#[test]
fn rfc_7515_hs256() {
    let input = format!("{HS_HEADER}.{PAYLOAD}");
    let key = hmac_key(HashAlgorithm::Sha256, &b64(HS_KEY));
    assert_eq!(
        hmac::sign(&key, input.as_bytes()).as_ref(),
        b64(HS256_SIG).as_slice()
    );
    assert!(hmac::verify(&key, input.as_bytes(), &b64(HS256_SIG)).is_ok());
    assert!(hmac::verify(&key, input.as_bytes(), &b64(HS256_SIG)[1..]).is_err());
}

#[test]
fn der_keys_are_the_same_keys() {
    use SignatureAlgorithm as A;
    let rsa_pub = der(
        0x30,
        &[
            der(0x02, &[&[0u8][..], &b64(RSA_N)].concat()),
            der(0x02, &[1, 0, 1]),
        ]
        .concat(),
    );
    let rsa_alg = [der(0x06, OID_RSA), der(0x05, &[])].concat();
    let rs = VerifyKey::parse(A::Rs256, &KeyData::SpkiDer(spki(&rsa_alg, &rsa_pub))).unwrap();
    let input = format!("eyJhbGciOiJSUzI1NiJ9.{PAYLOAD}");
    assert!(rs.verify(input.as_bytes(), &b64(RS256_SIG)));

    let point = [&[4u8][..], &b64(EC_X), &b64(EC_Y)].concat();
    let ec_alg = [der(0x06, OID_EC), der(0x06, OID_P256)].concat();
    let es = VerifyKey::parse(A::Es256, &KeyData::SpkiDer(spki(&ec_alg, &point))).unwrap();
    let input = format!("eyJhbGciOiJFUzI1NiJ9.{PAYLOAD}");
    assert!(es.verify(input.as_bytes(), &b64(ES256_SIG)));

    let ed_der = spki(&der(0x06, OID_ED25519), &b64(ED_X));
    let ed = VerifyKey::parse(A::EdDsa, &KeyData::SpkiDer(ed_der.clone())).unwrap();
    assert!(ed.verify(ED_INPUT.as_bytes(), &b64(ED_SIG)));

    // A key of one kind is refused for another algorithm, DER or JWK.
    let e = VerifyKey::parse(A::Es256, &KeyData::SpkiDer(ed_der)).unwrap_err();
    assert!(e.contains("does not fit ES256"), "{e}");
    let e = VerifyKey::parse(A::Es384, &KeyData::SpkiDer(spki(&ec_alg, &point))).unwrap_err();
    assert!(
        e.contains("does not fit ES384") || e.contains("P-384"),
        "{e}"
    );
    let e = VerifyKey::parse(A::Rs256, &KeyData::SpkiDer(vec![0x30, 0x03, 1, 2])).unwrap_err();
    assert!(e.contains("SubjectPublicKeyInfo"), "{e}");
}

#[test]
fn jwks_that_do_not_fit_are_refused_with_the_reason() {
    use SignatureAlgorithm as A;
    let cases = [
        (A::Rs256, "not json", "not a JWK"),
        (A::Rs256, r#"{"n":"AQAB","e":"AQAB"}"#, "no `kty`"),
        (
            A::Es256,
            &format!(r#"{{"kty":"RSA","n":"{RSA_N}","e":"AQAB"}}"#),
            "kty RSA is not a ES256 key",
        ),
        (
            A::Es256,
            &format!(r#"{{"kty":"EC","crv":"P-384","x":"{EC_X}","y":"{EC_Y}"}}"#),
            "kty EC (P-384) is not a ES256 key",
        ),
        (
            A::Rs256,
            r#"{"kty":"RSA","n":"AQAB","e":"AQAB"}"#,
            "RSA key of 17 bits",
        ),
        (
            A::Rs256,
            &format!(r#"{{"kty":"RSA","n":"{RSA_N}","e":"AQAB","alg":"RS512"}}"#),
            "alg is RS512, not RS256",
        ),
        (
            A::EdDsa,
            r#"{"kty":"OKP","crv":"Ed25519","x":"AAAA"}"#,
            "32 bytes",
        ),
        (
            A::EdDsa,
            r#"{"kty":"OKP","crv":"Ed25519","x":"!!"}"#,
            "base64url",
        ),
    ];
    for (alg, text, want) in cases {
        let e = jwk(alg, text).unwrap_err();
        assert!(e.contains(want), "{text}: {e}");
    }
}

#[test]
fn a_plugin_reads_a_key_once() {
    use SignatureAlgorithm as A;
    let cache = KeyCache::default();
    let text = format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{ED_X}"}}"#);
    let a = cache
        .get_or_parse(A::EdDsa, &KeyData::Jwk(text.clone()))
        .unwrap();
    let b = cache
        .get_or_parse(A::EdDsa, &KeyData::Jwk(text.clone()))
        .unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    // The same text for another algorithm is another question (and here a refusal).
    assert!(cache.get_or_parse(A::Es256, &KeyData::Jwk(text)).is_err());
}

/// The RFC vectors as `crypto-probe` cases (name, config, token): each public key as a JWK and
/// as DER, and the HS256 secret.
fn probe_cases() -> Vec<(String, String, String)> {
    let std_b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let rsa_der = spki(
        &[der(0x06, OID_RSA), der(0x05, &[])].concat(),
        &der(
            0x30,
            &[
                der(0x02, &[&[0u8][..], &b64(RSA_N)].concat()),
                der(0x02, &[1, 0, 1]),
            ]
            .concat(),
        ),
    );
    let ec_der = spki(
        &[der(0x06, OID_EC), der(0x06, OID_P256)].concat(),
        &[&[4u8][..], &b64(EC_X), &b64(EC_Y)].concat(),
    );
    let ed_der = spki(&der(0x06, OID_ED25519), &b64(ED_X));
    let keys = [
        (
            "RS256",
            format!(r#"{{"kty":"RSA","n":"{RSA_N}","e":"AQAB"}}"#),
            rsa_der,
            format!("eyJhbGciOiJSUzI1NiJ9.{PAYLOAD}.{RS256_SIG}"),
        ),
        (
            "ES256",
            format!(r#"{{"kty":"EC","crv":"P-256","x":"{EC_X}","y":"{EC_Y}"}}"#),
            ec_der,
            format!("eyJhbGciOiJFUzI1NiJ9.{PAYLOAD}.{ES256_SIG}"),
        ),
        (
            "EdDSA",
            format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{ED_X}"}}"#),
            ed_der,
            format!("{ED_INPUT}.{ED_SIG}"),
        ),
    ];
    let mut cases = Vec::new();
    for (alg, jwk, der, token) in keys {
        cases.push((
            format!("{alg}-jwk"),
            format!("alg = {}\njwk = {}", q(alg), q(&jwk)),
            token.clone(),
        ));
        cases.push((
            format!("{alg}-der"),
            format!("alg = {}\nder = {}", q(alg), q(&std_b64(&der))),
            token,
        ));
    }
    cases.push((
        "HS256".into(),
        format!("alg = \"HS256\"\nsecret = {}", q(HS_KEY)),
        format!("{HS_HEADER}.{PAYLOAD}.{HS256_SIG}"),
    ));
    cases
}

/// One `crypto-probe` plugin per case, named as the case.
fn probe_set(cases: &[(String, String, String)]) -> crate::plugin::PluginSet {
    use crate::plugin::{EngineSettings, PluginEngine, PluginSet, PluginSource, PluginSpec};
    static ENGINE: std::sync::LazyLock<PluginEngine> = std::sync::LazyLock::new(|| {
        PluginEngine::new(EngineSettings {
            pool_idle_priority: false,
            ..EngineSettings::default()
        })
        .unwrap()
    });
    let specs: Vec<PluginSpec> = cases
        .iter()
        .map(|(name, config, _)| {
            let mut spec = PluginSpec::new(
                name.as_str(),
                PluginSource::Bytes(std::borrow::Cow::Borrowed(
                    crate::plugin::embedded::test_plugins::CRYPTO_PROBE,
                )),
            );
            spec.config = toml::from_str(config).unwrap();
            spec.limits.timeout = std::time::Duration::from_secs(5);
            spec
        })
        .collect();
    PluginSet::build(&specs, &ENGINE).unwrap()
}

/// A request carrying `token` as its bearer token.
fn probe_request(token: &str) -> crate::plugin::RequestFacts {
    crate::plugin::RequestFacts {
        method: "GET".into(),
        path: "/example.com/m/@v/list".into(),
        module: Some("example.com/m".into()),
        version: None,
        action: crate::plugin::Action::Read,
        headers: vec![("authorization".into(), format!("Bearer {token}"))],
        peer_addr: "127.0.0.1:40000".into(),
        tls_client_identity: None,
    }
}

/// The vectors again, through a plugin (`plugins/test/crypto-probe`) calling the interface from
/// wasm: every key form, the HS256 HMAC, tampering, a key of the wrong kind, and the cap on
/// keys one instance may hold.
#[tokio::test]
async fn the_vectors_verify_through_a_plugin() {
    use crate::plugin::Decision;

    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let mut cases = probe_cases();
    let vectors = cases.len();
    let ed_jwk = format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{ED_X}"}}"#);
    let ed_token = format!("{ED_INPUT}.{ED_SIG}");
    for (name, extra) in [
        ("wrong-kind", "alg = \"ES256\""),
        ("at-cap", "alg = \"EdDSA\"\nhold = 255"),
        ("past-cap", "alg = \"EdDSA\"\nhold = 256"),
    ] {
        cases.push((
            name.to_owned(),
            format!("{extra}\njwk = {}", q(&ed_jwk)),
            ed_token.clone(),
        ));
    }
    let set = probe_set(&cases);
    let ask = |name: &str, token: String| {
        let name = name.to_owned();
        let set = &set;
        async move {
            match &set
                .authorize(&name, &probe_request(&token))
                .await
                .unwrap()
                .decision
            {
                Decision::Allow(a) => (200, a.principal.clone()),
                Decision::Deny(d) => (d.status, d.message.clone()),
                Decision::Abstain => (0, String::new()),
            }
        }
    };
    let valid = (200, "valid".to_string());
    let invalid = (401, "invalid".to_string());
    for (name, _, token) in &cases[..vectors] {
        assert_eq!(ask(name, token.clone()).await, valid, "{name}");
        // Twice: the second reads the key from the plugin's cache.
        assert_eq!(ask(name, token.clone()).await, valid, "{name} again");
        let mut tampered = token.clone();
        tampered.insert(3, 'x');
        assert_eq!(ask(name, tampered).await, invalid, "{name} tampered");
    }
    let (status, message) = ask("wrong-kind", ed_token.clone()).await;
    assert_eq!(status, 500);
    assert!(
        message.contains("InvalidKey") && message.contains("not a ES256 key"),
        "{message}"
    );
    assert_eq!(ask("at-cap", ed_token.clone()).await, valid);
    let (status, message) = ask("past-cap", ed_token.clone()).await;
    assert_eq!((status, message.as_str()), (500, "Error::TooManyKeys(256)"));
    // The held keys went with the call: the instance reads keys again.
    assert_eq!(ask("at-cap", ed_token.clone()).await, valid);
}

/// What the checks cost natively here (`cargo test --release -p modgate --lib -- --ignored
/// --nocapture bench_crypto`): the floor under a plugin's call.
#[test]
#[ignore = "a measurement, not a check"]
fn bench_crypto_native() {
    use SignatureAlgorithm as A;
    let time = |label: &str, f: &dyn Fn() -> bool| {
        const N: u32 = 2000;
        for _ in 0..200 {
            assert!(f());
        }
        let started = std::time::Instant::now();
        for _ in 0..N {
            assert!(f());
        }
        println!("{label}: {:?} per call", started.elapsed() / N);
    };
    let rs = jwk(
        A::Rs256,
        &format!(r#"{{"kty":"RSA","n":"{RSA_N}","e":"AQAB"}}"#),
    )
    .unwrap();
    let rs_input = format!("eyJhbGciOiJSUzI1NiJ9.{PAYLOAD}");
    let rs_sig = b64(RS256_SIG);
    time("RS256 verify", &|| rs.verify(rs_input.as_bytes(), &rs_sig));
    let es = jwk(
        A::Es256,
        &format!(r#"{{"kty":"EC","crv":"P-256","x":"{EC_X}","y":"{EC_Y}"}}"#),
    )
    .unwrap();
    let es_input = format!("eyJhbGciOiJFUzI1NiJ9.{PAYLOAD}");
    let es_sig = b64(ES256_SIG);
    time("ES256 verify", &|| es.verify(es_input.as_bytes(), &es_sig));
    let ed = jwk(
        A::EdDsa,
        &format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{ED_X}"}}"#),
    )
    .unwrap();
    let ed_sig = b64(ED_SIG);
    time("EdDSA verify", &|| ed.verify(ED_INPUT.as_bytes(), &ed_sig));
    let key = hmac_key(HashAlgorithm::Sha256, &b64(HS_KEY));
    let hs_input = format!("{HS_HEADER}.{PAYLOAD}");
    let hs_sig = b64(HS256_SIG);
    time("HS256 verify", &|| {
        hmac::verify(&key, hs_input.as_bytes(), &hs_sig).is_ok()
    });
    let cache = KeyCache::default();
    let text = format!(r#"{{"kty":"RSA","n":"{RSA_N}","e":"AQAB"}}"#);
    time("RS256 key read again (cache)", &|| {
        cache
            .get_or_parse(A::Rs256, &KeyData::Jwk(text.clone()))
            .is_ok()
    });
}

/// The same checks through a plugin call (`crypto-probe`: the key read from the plugin's cache,
/// the token split and the signature decoded in wasm), to set against `bench_crypto_native`
/// and the auth plugins' own benches.
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn bench_crypto_through_a_plugin() {
    let cases: Vec<_> = probe_cases()
        .into_iter()
        .filter(|(name, ..)| !name.ends_with("-der"))
        .collect();
    let set = probe_set(&cases);
    for (name, _, token) in &cases {
        let req = probe_request(token);
        crate::plugin::first_party_tests::print_latency(&format!("crypto-probe {name}"), || {
            set.authorize(name, &req)
        })
        .await;
    }
}
