//! The `crypto` host interface (`plugin-sdk/wit/crypto.wit`): digests, HMACs and the JWS
//! signature checks, computed natively with ring — the library rustls already links, so the
//! binary carries no second crypto stack. Pure-Rust public-key math compiled to wasm costs a
//! plugin milliseconds per signature; here it costs what it costs natively.
//!
//! Keys are resources: a plugin reads a key once ([`PublicKey`], in its instance's table) and
//! verifies with it many times. Reading is also remembered per plugin ([`KeyCache`], shared by
//! its instances), so an instance that reads the same JWK again gets the key without decoding
//! it. The interface computes only: no keys of its own, no I/O; inputs are capped in size.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use ring::{digest, hmac, signature};
use wasmtime::component::Resource;

use super::bindings::crypto::{self, Error, HashAlgorithm, KeyData, SignatureAlgorithm};
use super::host::State;

/// Largest `data`, `message`, HMAC key or signature the interface takes.
pub const MAX_INPUT_BYTES: usize = 1 << 20;
/// Largest key (JWK text or DER).
pub const MAX_KEY_BYTES: usize = 16 * 1024;
/// Keys one plugin instance may hold at once.
pub const MAX_KEYS_PER_INSTANCE: u32 = 256;
/// Keys remembered per plugin, across its instances (the cache starts over when full).
const KEY_CACHE_ENTRIES: usize = 1024;

/// A key held for a plugin instance: what `public-key` handles point at.
pub struct PublicKey(Arc<VerifyKey>);

/// A public key, decoded and checked for one algorithm.
#[derive(Debug)]
pub struct VerifyKey {
    algorithm: SignatureAlgorithm,
    material: Material,
}

#[derive(Debug)]
enum Material {
    /// Modulus and exponent, big-endian, without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// An uncompressed EC point (`04 ‖ x ‖ y`) or an Ed25519 public key.
    Raw(Vec<u8>),
}

impl VerifyKey {
    /// Reads `key` for `algorithm`; the error says why not, in one line.
    pub fn parse(algorithm: SignatureAlgorithm, key: &KeyData) -> Result<Self, String> {
        let material = match key {
            KeyData::Jwk(text) => from_jwk(algorithm, text)?,
            KeyData::SpkiDer(der) => from_spki(algorithm, der)?,
        };
        if let Material::Rsa { n, .. } = &material {
            let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
            if !(2048..=8192).contains(&bits) {
                return Err(format!(
                    "an RSA key of {bits} bits (2048 to 8192 are accepted)"
                ));
            }
        }
        Ok(Self {
            algorithm,
            material,
        })
    }

    /// Whether `sig` is this key's signature of `message`.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        use SignatureAlgorithm as A;
        match &self.material {
            Material::Rsa { n, e } => {
                let params: &signature::RsaParameters = match self.algorithm {
                    A::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    A::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    A::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    A::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
                    A::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
                    A::Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
                    A::Es256 | A::Es384 | A::EdDsa => return false,
                };
                signature::RsaPublicKeyComponents { n, e }
                    .verify(params, message, sig)
                    .is_ok()
            }
            Material::Raw(bytes) => {
                let alg: &dyn signature::VerificationAlgorithm = match self.algorithm {
                    A::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
                    A::Es384 => &signature::ECDSA_P384_SHA384_FIXED,
                    A::EdDsa => &signature::ED25519,
                    _ => return false,
                };
                signature::UnparsedPublicKey::new(alg, bytes)
                    .verify(message, sig)
                    .is_ok()
            }
        }
    }
}

/// The JOSE name of an algorithm (`RS256`, …), for messages.
pub fn jose_name(algorithm: SignatureAlgorithm) -> &'static str {
    use SignatureAlgorithm as A;
    match algorithm {
        A::Rs256 => "RS256",
        A::Rs384 => "RS384",
        A::Rs512 => "RS512",
        A::Ps256 => "PS256",
        A::Ps384 => "PS384",
        A::Ps512 => "PS512",
        A::Es256 => "ES256",
        A::Es384 => "ES384",
        A::EdDsa => "EdDSA",
    }
}

/// What kind of key an algorithm needs.
enum Family {
    Rsa,
    /// The curve's JWK name and its coordinate length.
    Ec(&'static str, usize),
    Ed25519,
}

fn family(algorithm: SignatureAlgorithm) -> Family {
    use SignatureAlgorithm as A;
    match algorithm {
        A::Rs256 | A::Rs384 | A::Rs512 | A::Ps256 | A::Ps384 | A::Ps512 => Family::Rsa,
        A::Es256 => Family::Ec("P-256", 32),
        A::Es384 => Family::Ec("P-384", 48),
        A::EdDsa => Family::Ed25519,
    }
}

fn from_jwk(algorithm: SignatureAlgorithm, text: &str) -> Result<Material, String> {
    let jwk: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| format!("not a JWK: {e}"))?;
    let field = |name: &str| jwk.get(name).and_then(serde_json::Value::as_str);
    let bytes = |name: &str| -> Result<Vec<u8>, String> {
        let value = field(name).ok_or_else(|| format!("the JWK has no `{name}`"))?;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value.trim_end_matches('='))
            .map_err(|e| format!("`{name}` is not base64url: {e}"))
    };
    let name = jose_name(algorithm);
    if let Some(alg) = field("alg")
        && alg != name
    {
        return Err(format!("the JWK's alg is {alg}, not {name}"));
    }
    let kty = field("kty").ok_or("the JWK has no `kty`")?;
    match family(algorithm) {
        Family::Rsa if kty == "RSA" => Ok(Material::Rsa {
            n: strip_zeros(bytes("n")?),
            e: strip_zeros(bytes("e")?),
        }),
        Family::Ec(crv, len) if kty == "EC" && field("crv") == Some(crv) => {
            let (x, y) = (bytes("x")?, bytes("y")?);
            if x.len() != len || y.len() != len {
                return Err(format!("{crv} coordinates are {len} bytes each"));
            }
            Ok(Material::Raw([&[4u8][..], &x, &y].concat()))
        }
        Family::Ed25519 if kty == "OKP" && field("crv") == Some("Ed25519") => {
            let x = bytes("x")?;
            if x.len() != 32 {
                return Err("an Ed25519 key is 32 bytes".into());
            }
            Ok(Material::Raw(x))
        }
        _ => Err(format!(
            "a JWK of kty {kty}{} is not a {name} key",
            field("crv").map(|c| format!(" ({c})")).unwrap_or_default()
        )),
    }
}

/// A big-endian integer without its leading zero bytes (JWKs and DER may carry them; ring
/// does not take them).
fn strip_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let zeros = v.iter().take_while(|&&b| b == 0).count();
    v.drain(..zeros);
    v
}

// DER object identifiers (content bytes).
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_RSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

fn from_spki(algorithm: SignatureAlgorithm, der: &[u8]) -> Result<Material, String> {
    let bad = || "not a DER SubjectPublicKeyInfo".to_string();
    let (spki, rest) = der_take(der, 0x30).ok_or_else(bad)?;
    if !rest.is_empty() {
        return Err(bad());
    }
    let (alg_id, rest) = der_take(spki, 0x30).ok_or_else(bad)?;
    let (bits, rest) = der_take(rest, 0x03).ok_or_else(bad)?;
    if !rest.is_empty() {
        return Err(bad());
    }
    let (oid, params) = der_take(alg_id, 0x06).ok_or_else(bad)?;
    let key = match bits.split_first() {
        Some((0, key)) => key,
        _ => return Err(bad()),
    };
    let name = jose_name(algorithm);
    match family(algorithm) {
        Family::Rsa
            if oid == OID_RSA
                || (oid == OID_RSA_PSS && matches!(name, "PS256" | "PS384" | "PS512")) =>
        {
            let (seq, rest) = der_take(key, 0x30).ok_or("not an RSA public key")?;
            let (n, seq) = der_take(seq, 0x02).ok_or("not an RSA public key")?;
            let (e, seq) = der_take(seq, 0x02).ok_or("not an RSA public key")?;
            if !rest.is_empty() || !seq.is_empty() {
                return Err("not an RSA public key".into());
            }
            Ok(Material::Rsa {
                n: strip_zeros(n.to_vec()),
                e: strip_zeros(e.to_vec()),
            })
        }
        Family::Ec(crv, len) if oid == OID_EC => {
            let (curve, _) = der_take(params, 0x06).ok_or_else(bad)?;
            let want = if len == 32 { OID_P256 } else { OID_P384 };
            if curve != want {
                return Err(format!("not a {crv} key"));
            }
            if key.len() != 1 + 2 * len || key[0] != 4 {
                return Err(format!("not an uncompressed {crv} point"));
            }
            Ok(Material::Raw(key.to_vec()))
        }
        Family::Ed25519 if oid == OID_ED25519 && key.len() == 32 => Ok(Material::Raw(key.to_vec())),
        _ => Err(format!("the key's algorithm does not fit {name}")),
    }
}

/// One DER element of type `tag` at the start of `input`: its content and what follows it.
fn der_take(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// Keys read per plugin, shared by its instances: reading the same key again is a lookup.
#[derive(Default)]
pub struct KeyCache(Mutex<HashMap<[u8; 32], Arc<VerifyKey>>>);

impl KeyCache {
    fn get_or_parse(
        &self,
        algorithm: SignatureAlgorithm,
        key: &KeyData,
    ) -> Result<Arc<VerifyKey>, String> {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(jose_name(algorithm).as_bytes());
        match key {
            KeyData::Jwk(text) => {
                ctx.update(b"\0jwk\0");
                ctx.update(text.as_bytes());
            }
            KeyData::SpkiDer(der) => {
                ctx.update(b"\0der\0");
                ctx.update(der);
            }
        }
        let mut id = [0u8; 32];
        id.copy_from_slice(ctx.finish().as_ref());
        let mut keys = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = keys.get(&id) {
            return Ok(Arc::clone(k));
        }
        let parsed = Arc::new(VerifyKey::parse(algorithm, key)?);
        if keys.len() >= KEY_CACHE_ENTRIES {
            keys.clear();
        }
        keys.insert(id, Arc::clone(&parsed));
        Ok(parsed)
    }
}

fn too_large(len: usize, max: usize) -> Option<Error> {
    (len > max).then(|| Error::TooLarge(u32::try_from(max).unwrap_or(u32::MAX)))
}

fn hmac_key(algorithm: HashAlgorithm, key: &[u8]) -> hmac::Key {
    let alg = match algorithm {
        HashAlgorithm::Sha256 => hmac::HMAC_SHA256,
        HashAlgorithm::Sha384 => hmac::HMAC_SHA384,
        HashAlgorithm::Sha512 => hmac::HMAC_SHA512,
    };
    hmac::Key::new(alg, key)
}

impl crypto::Host for State {
    fn digest(
        &mut self,
        algorithm: HashAlgorithm,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<Vec<u8>, Error>> {
        if let Some(e) = too_large(data.len(), MAX_INPUT_BYTES) {
            return Ok(Err(e));
        }
        let alg = match algorithm {
            HashAlgorithm::Sha256 => &digest::SHA256,
            HashAlgorithm::Sha384 => &digest::SHA384,
            HashAlgorithm::Sha512 => &digest::SHA512,
        };
        Ok(Ok(digest::digest(alg, &data).as_ref().to_vec()))
    }

    fn hmac(
        &mut self,
        algorithm: HashAlgorithm,
        key: Vec<u8>,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<Vec<u8>, Error>> {
        if let Some(e) = too_large(key.len().max(data.len()), MAX_INPUT_BYTES) {
            return Ok(Err(e));
        }
        Ok(Ok(hmac::sign(&hmac_key(algorithm, &key), &data)
            .as_ref()
            .to_vec()))
    }

    fn hmac_verify(
        &mut self,
        algorithm: HashAlgorithm,
        key: Vec<u8>,
        data: Vec<u8>,
        tag: Vec<u8>,
    ) -> wasmtime::Result<Result<bool, Error>> {
        if let Some(e) = too_large(key.len().max(data.len()).max(tag.len()), MAX_INPUT_BYTES) {
            return Ok(Err(e));
        }
        Ok(Ok(
            hmac::verify(&hmac_key(algorithm, &key), &data, &tag).is_ok()
        ))
    }
}

impl crypto::HostPublicKey for State {
    fn parse(
        &mut self,
        algorithm: SignatureAlgorithm,
        key: KeyData,
    ) -> wasmtime::Result<Result<Resource<PublicKey>, Error>> {
        let len = match &key {
            KeyData::Jwk(text) => text.len(),
            KeyData::SpkiDer(der) => der.len(),
        };
        if let Some(e) = too_large(len, MAX_KEY_BYTES) {
            return Ok(Err(e));
        }
        if self.crypto_keys >= MAX_KEYS_PER_INSTANCE {
            return Ok(Err(Error::TooManyKeys(MAX_KEYS_PER_INSTANCE)));
        }
        let parsed = match self.shared.keys.get_or_parse(algorithm, &key) {
            Ok(k) => k,
            Err(why) => return Ok(Err(Error::InvalidKey(why))),
        };
        let handle = self.table.push(PublicKey(parsed))?;
        self.crypto_keys += 1;
        Ok(Ok(handle))
    }

    fn algorithm(&mut self, key: Resource<PublicKey>) -> wasmtime::Result<SignatureAlgorithm> {
        Ok(self.table.get(&key)?.0.algorithm)
    }

    fn verify(
        &mut self,
        key: Resource<PublicKey>,
        message: Vec<u8>,
        signature: Vec<u8>,
    ) -> wasmtime::Result<Result<bool, Error>> {
        if let Some(e) = too_large(message.len().max(signature.len()), MAX_INPUT_BYTES) {
            return Ok(Err(e));
        }
        Ok(Ok(self.table.get(&key)?.0.verify(&message, &signature)))
    }

    fn drop(&mut self, key: Resource<PublicKey>) -> wasmtime::Result<()> {
        self.table.delete(key)?;
        self.crypto_keys = self.crypto_keys.saturating_sub(1);
        Ok(())
    }
}

#[cfg(test)]
#[path = "crypto_tests.rs"]
pub(crate) mod tests;
