//! Signed notes (golang.org/x/mod `sumdb/note`): the text a checksum database signs (a tree
//! head) followed by a blank line and `— <name> <base64(key hash ‖ Ed25519 signature)>` lines.
//! Ed25519 comes from `ring`, the crypto library rustls already links.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use sha2::{Digest, Sha256};

const ALG_ED25519: u8 = 1;

/// Why a key or a note was refused, in x/mod's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("malformed verifier id")]
    VerifierId,
    #[error("unknown verifier algorithm")]
    VerifierAlg,
    #[error("invalid verifier hash")]
    VerifierHash,
    #[error("malformed note")]
    Malformed,
    #[error("note has no verifiable signatures")]
    Unverified,
    #[error("invalid signature for key {name}+{hash:08x}")]
    InvalidSignature { name: String, hash: u32 },
}

/// `SHA-256(name ‖ "\n" ‖ key)[:4]`, big-endian.
fn key_hash(name: &str, key: &[u8]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update(key);
    let sum = h.finalize();
    u32::from_be_bytes([sum[0], sum[1], sum[2], sum[3]])
}

fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(char::is_whitespace) && !name.contains('+')
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// A public key that checks a database's signatures: `name+hhhhhhhh+base64(0x01 ‖ key)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    pub name: String,
    pub hash: u32,
    key: [u8; 32],
}

impl Verifier {
    pub fn parse(vkey: &str) -> Result<Verifier, NoteError> {
        let (name, rest) = vkey.split_once('+').unwrap_or((vkey, ""));
        let (hash16, key64) = rest.split_once('+').unwrap_or((rest, ""));
        let hash = u32::from_str_radix(hash16, 16).ok();
        let key = b64().decode(key64).ok();
        let (Some(hash), Some(key)) = (hash, key) else {
            return Err(NoteError::VerifierId);
        };
        if hash16.len() != 8 || !is_valid_name(name) || key.is_empty() {
            return Err(NoteError::VerifierId);
        }
        if hash != key_hash(name, &key) {
            return Err(NoteError::VerifierHash);
        }
        if key[0] != ALG_ED25519 {
            return Err(NoteError::VerifierAlg);
        }
        let key: [u8; 32] = key[1..].try_into().map_err(|_| NoteError::VerifierId)?;
        Ok(Verifier {
            name: name.to_owned(),
            hash,
            key,
        })
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &self.key)
            .verify(msg, sig)
            .is_ok()
    }

    /// The key as configured: `name+hhhhhhhh+base64`.
    pub fn encode(&self) -> String {
        let mut key = vec![ALG_ED25519];
        key.extend_from_slice(&self.key);
        format!("{}+{:08x}+{}", self.name, self.hash, b64().encode(key))
    }
}

/// A private key that signs: `PRIVATE+KEY+name+hhhhhhhh+base64(0x01 ‖ seed)`.
pub struct Signer {
    pub name: String,
    pub hash: u32,
    pair: ring::signature::Ed25519KeyPair,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        write!(f, "Signer({}+{:08x})", self.name, self.hash)
    }
}

impl Signer {
    pub fn parse(skey: &str) -> Result<Signer, NoteError> {
        let mut parts = skey.splitn(5, '+');
        let (Some("PRIVATE"), Some("KEY"), Some(name), Some(hash16), Some(key64)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(NoteError::VerifierId);
        };
        let hash = u32::from_str_radix(hash16, 16).map_err(|_| NoteError::VerifierId)?;
        let key = b64().decode(key64).map_err(|_| NoteError::VerifierId)?;
        if hash16.len() != 8 || !is_valid_name(name) || key.is_empty() {
            return Err(NoteError::VerifierId);
        }
        if key[0] != ALG_ED25519 {
            return Err(NoteError::VerifierAlg);
        }
        if key.len() != 33 {
            return Err(NoteError::VerifierId);
        }
        let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&key[1..])
            .map_err(|_| NoteError::VerifierId)?;
        let mut public = vec![ALG_ED25519];
        public.extend_from_slice(ring::signature::KeyPair::public_key(&pair).as_ref());
        if hash != key_hash(name, &public) {
            return Err(NoteError::VerifierHash);
        }
        Ok(Signer {
            name: name.to_owned(),
            hash,
            pair,
        })
    }

    /// The matching verifier key.
    pub fn verifier(&self) -> Verifier {
        let mut key = [0u8; 32];
        key.copy_from_slice(ring::signature::KeyPair::public_key(&self.pair).as_ref());
        Verifier {
            name: self.name.clone(),
            hash: self.hash,
            key,
        }
    }

    /// A new key pair for database `name`: (signer key, verifier key).
    pub fn generate(name: &str) -> Result<(String, String), String> {
        if !is_valid_name(name) {
            return Err(format!("{name:?} is not a valid key name"));
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| format!("no randomness: {e}"))?;
        let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|e| format!("key: {e}"))?;
        let mut public = vec![ALG_ED25519];
        public.extend_from_slice(ring::signature::KeyPair::public_key(&pair).as_ref());
        let hash = key_hash(name, &public);
        let mut private = vec![ALG_ED25519];
        private.extend_from_slice(&seed);
        Ok((
            format!("PRIVATE+KEY+{name}+{hash:08x}+{}", b64().encode(private)),
            format!("{name}+{hash:08x}+{}", b64().encode(public)),
        ))
    }

    /// `text` (ending in `\n`) signed: the note as served.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        if !text.ends_with('\n') {
            return Err(NoteError::Malformed);
        }
        let sig = self.pair.sign(text.as_bytes());
        let mut raw = self.hash.to_be_bytes().to_vec();
        raw.extend_from_slice(sig.as_ref());
        Ok(format!("{text}\n— {} {}\n", self.name, b64().encode(raw)))
    }
}

/// A signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub name: String,
    pub hash: u32,
    pub base64: String,
}

/// A note opened: its text, the signatures checked, the ones by unknown keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub text: String,
    pub sigs: Vec<Signature>,
    pub unverified: Vec<Signature>,
}

/// Opens `msg` with the `known` keys: at least one of them must have signed it, and none of
/// them may have signed it wrongly (x/mod's `note.Open`).
pub fn open(msg: &[u8], known: &[Verifier]) -> Result<Note, NoteError> {
    let text_all = std::str::from_utf8(msg).map_err(|_| NoteError::Malformed)?;
    if text_all.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::Malformed);
    }
    let split = text_all.rfind("\n\n").ok_or(NoteError::Malformed)?;
    let (text, mut sigs) = (&text_all[..=split], &text_all[split + 2..]);
    if !sigs.ends_with('\n') {
        return Err(NoteError::Malformed);
    }
    let by_key: BTreeMap<(&str, u32), &Verifier> = known
        .iter()
        .map(|v| ((v.name.as_str(), v.hash), v))
        .collect();
    let mut note = Note {
        text: text.to_owned(),
        sigs: Vec::new(),
        unverified: Vec::new(),
    };
    let mut seen = BTreeSet::new();
    let mut seen_unverified = BTreeSet::new();
    let mut count = 0;
    while let Some(i) = sigs.find('\n') {
        let line = &sigs[..i];
        sigs = &sigs[i + 1..];
        let line = line.strip_prefix("— ").ok_or(NoteError::Malformed)?;
        let (name, sig64) = line.split_once(' ').unwrap_or((line, ""));
        let sig = b64().decode(sig64).map_err(|_| NoteError::Malformed)?;
        if !is_valid_name(name) || sig64.is_empty() || sig.len() < 5 {
            return Err(NoteError::Malformed);
        }
        count += 1;
        if count > 100 {
            return Err(NoteError::Malformed);
        }
        let hash = u32::from_be_bytes([sig[0], sig[1], sig[2], sig[3]]);
        let signature = Signature {
            name: name.to_owned(),
            hash,
            base64: sig64.to_owned(),
        };
        let Some(verifier) = by_key.get(&(name, hash)) else {
            if seen_unverified.insert(line.to_owned()) {
                note.unverified.push(signature);
            }
            continue;
        };
        if !seen.insert((name.to_owned(), hash)) {
            continue;
        }
        if !verifier.verify(text.as_bytes(), &sig[4..]) {
            return Err(NoteError::InvalidSignature {
                name: name.to_owned(),
                hash,
            });
        }
        note.sigs.push(signature);
    }
    if note.sigs.is_empty() {
        return Err(NoteError::Unverified);
    }
    Ok(note)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PETER_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const PETER: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const ENOCH: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
    const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                        then you don't know what your problem is.\n";
    const PETER_SIG: &str = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    const ENOCH_SIG: &str = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

    #[test]
    fn signing_matches_x_mod() {
        let signer = Signer::parse(PETER_SKEY).expect("signer");
        assert_eq!(
            signer.sign(TEXT).expect("sign"),
            format!("{TEXT}\n{PETER_SIG}")
        );
        assert_eq!(signer.verifier().encode(), PETER);
        assert_eq!(signer.sign("abc"), Err(NoteError::Malformed));
    }

    #[test]
    fn opening_matches_x_mod() {
        let peter = Verifier::parse(PETER).expect("peter");
        let enoch = Verifier::parse(ENOCH).expect("enoch");
        let msg = format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}");
        let n = open(msg.as_bytes(), std::slice::from_ref(&peter)).expect("open");
        assert_eq!(n.text, TEXT);
        assert_eq!(n.sigs.len(), 1);
        assert_eq!(n.sigs[0].name, "PeterNeumann");
        assert_eq!(n.unverified.len(), 1);
        assert_eq!(n.unverified[0].hash, 0xaf0c_fe78);
        let both = open(msg.as_bytes(), &[peter.clone(), enoch]).expect("open");
        assert_eq!(both.sigs.len(), 2);
        assert_eq!(open(msg.as_bytes(), &[]), Err(NoteError::Unverified));
        // A signature by a known key over other text is an error, not merely unverified.
        let tampered = msg.replacen("cryptography", "cryptology", 1);
        assert!(matches!(
            open(tampered.as_bytes(), std::slice::from_ref(&peter)),
            Err(NoteError::InvalidSignature { .. })
        ));
        for bad in [
            format!("{TEXT}{PETER_SIG}"),
            format!("{TEXT}\n{}", PETER_SIG.trim_end()),
            format!("{TEXT}\x01\n{PETER_SIG}"),
            format!("{TEXT}\n- PeterNeumann x08g\n"),
            format!("{TEXT}\n{}", PETER_SIG.repeat(101)),
        ] {
            assert!(
                open(bad.as_bytes(), std::slice::from_ref(&peter)).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn keys_are_checked() {
        assert_eq!(
            Verifier::parse(
                "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBIG"
            ),
            Err(NoteError::VerifierId)
        );
        assert!(
            Verifier::parse("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
                .is_err()
        );
        assert!(Verifier::parse("a+b+c74f20a3+ARpc").is_err());
        // The real database's key parses.
        let sum =
            Verifier::parse("sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8")
                .expect("sum.golang.org");
        assert_eq!(sum.name, "sum.golang.org");
        // A head the real database signed (the research notes' capture) opens with its key.
        let head = "go.sum database tree\n72985873\ncD+BM1i9jKC86Tt8wemvuTdHxrQH8FSBGty675jA41c=\n\n\
                    — sum.golang.org Az3grv9y0u8XBb/wfxJBTNwoYR1/Kov4K8X6VTT6Twyydy6KJdBtgPVigK0nKgjWN848br8vLPgZveatOczNnraLRwg=\n";
        let note = open(head.as_bytes(), std::slice::from_ref(&sum)).expect("real head");
        let tree = crate::sumdb::tlog::parse_tree(note.text.as_bytes()).expect("tree");
        assert_eq!(tree.n, 72_985_873);
        // A generated pair signs what its verifier accepts.
        let (skey, vkey) = Signer::generate("sum.corp.example").expect("generate");
        let signer = Signer::parse(&skey).expect("signer");
        let verifier = Verifier::parse(&vkey).expect("verifier");
        let signed = signer
            .sign("go.sum database tree\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n")
            .expect("sign");
        open(signed.as_bytes(), &[verifier]).expect("opens");
    }
}
