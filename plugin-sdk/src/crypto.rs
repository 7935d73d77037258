//! Digests, HMACs and JWS signature checks computed by the host, natively: the same checks in
//! pure Rust compiled to wasm cost a plugin milliseconds per signature (RSA, ECDSA), here they
//! cost tens of microseconds. Nothing to grant: the interface only computes.
//!
//! Read a key once and keep it (with the parsed config, in a `OnceLock`), then verify with it
//! on every call:
//!
//! ```no_run
//! use modgate_plugin_sdk::crypto::{self, Algorithm, Key};
//!
//! let key = Key::from_jwk(Algorithm::Es256, r#"{"kty":"EC","crv":"P-256","x":"…","y":"…"}"#)?;
//! let (signed, signature) = ("header.payload", b"r||s".as_slice());
//! if crypto::verify(&key, signed.as_bytes(), signature)? {
//!     // the token is genuine
//! }
//! # Ok::<(), crypto::Error>(())
//! ```

pub use crate::bindings::crypto::{Error, HashAlgorithm as Hash, SignatureAlgorithm as Algorithm};
use crate::bindings::crypto::{KeyData, PublicKey};

/// The digest of `data` (at most 1 MiB).
///
/// ```no_run
/// use modgate_plugin_sdk::crypto::{digest, Hash};
/// let d = digest(Hash::Sha256, b"abc")?;
/// assert_eq!(d.len(), 32);
/// # Ok::<(), modgate_plugin_sdk::crypto::Error>(())
/// ```
pub fn digest(algorithm: Hash, data: &[u8]) -> Result<Vec<u8>, Error> {
    crate::bindings::crypto::digest(algorithm, data)
}

/// The SHA-256 digest of `data` (at most 1 MiB; `None` past it).
pub fn sha256(data: &[u8]) -> Option<[u8; 32]> {
    digest(Hash::Sha256, data).ok()?.try_into().ok()
}

/// The HMAC of `data` under `key`.
pub fn hmac(algorithm: Hash, key: &[u8], data: &[u8]) -> Result<Vec<u8>, Error> {
    crate::bindings::crypto::hmac(algorithm, key, data)
}

/// Whether `tag` is the HMAC of `data` under `key`, compared in constant time.
///
/// ```no_run
/// use modgate_plugin_sdk::crypto::{hmac_verify, Hash};
/// let ok = hmac_verify(Hash::Sha256, b"secret", b"header.payload", b"tag")?;
/// # Ok::<(), modgate_plugin_sdk::crypto::Error>(())
/// ```
pub fn hmac_verify(algorithm: Hash, key: &[u8], data: &[u8], tag: &[u8]) -> Result<bool, Error> {
    crate::bindings::crypto::hmac_verify(algorithm, key, data, tag)
}

/// A public key for one [`Algorithm`], read once by the host and kept there while this value
/// lives (a plugin instance may hold a few hundred).
#[derive(Debug)]
pub struct Key(PublicKey);

impl Key {
    /// Reads a JWK (JSON text): `kty` RSA for RS*/PS*, EC P-256/P-384 for ES256/ES384, OKP
    /// Ed25519 for EdDSA; its `alg`, when present, must be `algorithm`.
    pub fn from_jwk(algorithm: Algorithm, jwk: &str) -> Result<Self, Error> {
        PublicKey::parse(algorithm, &KeyData::Jwk(jwk.to_owned())).map(Self)
    }

    /// Reads a DER `SubjectPublicKeyInfo` (a PEM `PUBLIC KEY` block's bytes).
    pub fn from_spki_der(algorithm: Algorithm, der: &[u8]) -> Result<Self, Error> {
        PublicKey::parse(algorithm, &KeyData::SpkiDer(der.to_vec())).map(Self)
    }

    /// The algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.0.algorithm()
    }

    /// Whether `signature` (as JWS encodes it) is this key's signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<bool, Error> {
        self.0.verify(message, signature)
    }
}

/// Whether `signature` is `key`'s signature of `message` ([`Key::verify`]).
pub fn verify(key: &Key, message: &[u8], signature: &[u8]) -> Result<bool, Error> {
    key.verify(message, signature)
}

impl Algorithm {
    /// The algorithm of a JOSE `alg` name (`"RS256"`, `"EdDSA"`, …), if it is one of these.
    pub fn from_jose(name: &str) -> Option<Self> {
        Some(match name {
            "RS256" => Self::Rs256,
            "RS384" => Self::Rs384,
            "RS512" => Self::Rs512,
            "PS256" => Self::Ps256,
            "PS384" => Self::Ps384,
            "PS512" => Self::Ps512,
            "ES256" => Self::Es256,
            "ES384" => Self::Es384,
            "EdDSA" => Self::EdDsa,
            _ => return None,
        })
    }

    /// The JOSE name (`"RS256"`, …).
    pub fn jose_name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
        }
    }
}
