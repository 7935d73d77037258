//! The transparency log: hashes, stored-hash indexes, proofs, and the tree and record texts.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Bytes in a hash.
pub const HASH_SIZE: usize = 32;

/// A record hash or a tree node's hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Hash(pub [u8; HASH_SIZE]);

impl std::fmt::Display for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&base64::engine::general_purpose::STANDARD.encode(self.0))
    }
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hash({self})")
    }
}

impl Hash {
    /// The hash in its base64 form.
    pub fn parse(s: &str) -> Result<Hash, Error> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|_| Error::Malformed("hash"))?;
        let array: [u8; HASH_SIZE] = bytes.try_into().map_err(|_| Error::Malformed("hash"))?;
        Ok(Hash(array))
    }
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("invalid transparency proof")]
    ProofFailed,
    #[error("tlog: invalid inputs in {0}")]
    InvalidInputs(&'static str),
    #[error("tlog: {0}")]
    Read(String),
}

/// Reads stored hashes by their [`stored_hash_index`]; must return one hash per index.
pub trait HashReader {
    fn read_hashes(&mut self, indexes: &[i64]) -> Result<Vec<Hash>, Error>;
}

impl<F: FnMut(&[i64]) -> Result<Vec<Hash>, Error>> HashReader for F {
    fn read_hashes(&mut self, indexes: &[i64]) -> Result<Vec<Hash>, Error> {
        self(indexes)
    }
}

fn read(r: &mut impl HashReader, indexes: &[i64]) -> Result<Vec<Hash>, Error> {
    let hashes = r.read_hashes(indexes)?;
    if hashes.len() != indexes.len() {
        return Err(Error::Read(format!(
            "ReadHashes({} indexes) = {} hashes",
            indexes.len(),
            hashes.len()
        )));
    }
    Ok(hashes)
}

/// `k`, the largest power of two smaller than `n`, and `log2(k)`.
fn maxpow2(n: i64) -> (i64, u32) {
    let mut l = 0;
    while (1i64 << (l + 1)) < n {
        l += 1;
    }
    (1 << l, l)
}

/// SHA-256(0x00 ‖ data): a record's hash.
pub fn record_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    Hash(h.finalize().into())
}

/// SHA-256(0x01 ‖ left ‖ right): an interior node's hash.
pub fn node_hash(left: Hash, right: Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left.0);
    h.update(right.0);
    Hash(h.finalize().into())
}

/// Where the hash at tree coordinates (`level`, `n`) is in the dense storage order (Crosby and
/// Wallach, §3.3).
pub fn stored_hash_index(level: u32, mut n: i64) -> i64 {
    for _ in 0..level {
        n = 2 * n + 1;
    }
    let mut i = 0;
    while n > 0 {
        i += n;
        n >>= 1;
    }
    i + i64::from(level)
}

/// The inverse of [`stored_hash_index`].
pub fn split_stored_hash_index(index: i64) -> (u32, i64) {
    let mut n = index / 2;
    let mut index_n = stored_hash_index(0, n);
    loop {
        let x = index_n + 1 + i64::from((n + 1).trailing_zeros());
        if x > index {
            break;
        }
        n += 1;
        index_n = x;
    }
    let level = u32::try_from(index - index_n).unwrap_or(0);
    (level, n >> level)
}

/// How many hashes a tree of `n` records stores.
pub fn stored_hash_count(n: i64) -> i64 {
    if n == 0 {
        return 0;
    }
    let mut count = stored_hash_index(0, n - 1) + 1;
    let mut i = (n - 1) as u64;
    while i & 1 != 0 {
        count += 1;
        i >>= 1;
    }
    count
}

/// The hashes to store, from [`stored_hash_index`]`(0, n)` on, when record `n` with hash `h`
/// is appended (reading up to log₂ n earlier hashes from `r`).
pub fn stored_hashes_for_record_hash(
    n: i64,
    h: Hash,
    r: &mut impl HashReader,
) -> Result<Vec<Hash>, Error> {
    let m = (n + 1).trailing_zeros();
    let indexes: Vec<i64> = (0..m)
        .rev()
        .map(|i| stored_hash_index(i, (n >> i) - 1))
        .collect();
    let old = read(r, &indexes)?;
    let mut hashes = vec![h];
    let mut h = h;
    for i in 0..m as usize {
        h = node_hash(old[m as usize - 1 - i], h);
        hashes.push(h);
    }
    Ok(hashes)
}

/// The hash of the tree of `n` records (all zeros for the empty tree).
pub fn tree_hash(n: i64, r: &mut impl HashReader) -> Result<Hash, Error> {
    if n == 0 {
        return Ok(Hash::default());
    }
    let indexes = sub_tree_index(0, n, Vec::new());
    let hashes = read(r, &indexes)?;
    let (hash, rest) = sub_tree_hash(0, n, &hashes);
    debug_assert!(rest.is_empty());
    Ok(hash)
}

/// The stored-hash indexes of the complete subtrees records `[lo, hi)` are made of, appended
/// to `need` (RFC 6962 §2.1).
pub fn sub_tree_index(mut lo: i64, hi: i64, mut need: Vec<i64>) -> Vec<i64> {
    while lo < hi {
        let (k, level) = maxpow2(hi - lo + 1);
        need.push(stored_hash_index(level, lo >> level));
        lo += k;
    }
    need
}

fn sub_tree_hash(mut lo: i64, hi: i64, hashes: &[Hash]) -> (Hash, &[Hash]) {
    let mut num = 0;
    while lo < hi {
        let (k, _) = maxpow2(hi - lo + 1);
        num += 1;
        lo += k;
    }
    let mut h = hashes[num - 1];
    for i in (0..num - 1).rev() {
        h = node_hash(hashes[i], h);
    }
    (h, &hashes[num..])
}

/// The proof (RFC 6962 audit path) that the tree of `t` records contains record `n`.
pub fn prove_record(t: i64, n: i64, r: &mut impl HashReader) -> Result<Vec<Hash>, Error> {
    if t < 0 || n < 0 || n >= t {
        return Err(Error::InvalidInputs("ProveRecord"));
    }
    let indexes = leaf_proof_index(0, t, n, Vec::new());
    if indexes.is_empty() {
        return Ok(Vec::new());
    }
    let hashes = read(r, &indexes)?;
    let (p, rest) = leaf_proof(0, t, n, &hashes);
    debug_assert!(rest.is_empty());
    Ok(p)
}

fn leaf_proof_index(lo: i64, hi: i64, n: i64, mut need: Vec<i64>) -> Vec<i64> {
    if lo + 1 == hi {
        return need;
    }
    let (k, _) = maxpow2(hi - lo);
    if n < lo + k {
        need = leaf_proof_index(lo, lo + k, n, need);
        sub_tree_index(lo + k, hi, need)
    } else {
        need = sub_tree_index(lo, lo + k, need);
        leaf_proof_index(lo + k, hi, n, need)
    }
}

fn leaf_proof(lo: i64, hi: i64, n: i64, hashes: &[Hash]) -> (Vec<Hash>, &[Hash]) {
    if lo + 1 == hi {
        return (Vec::new(), hashes);
    }
    let (k, _) = maxpow2(hi - lo);
    let (mut p, th, rest) = if n < lo + k {
        let (p, rest) = leaf_proof(lo, lo + k, n, hashes);
        let (th, rest) = sub_tree_hash(lo + k, hi, rest);
        (p, th, rest)
    } else {
        let (th, rest) = sub_tree_hash(lo, lo + k, hashes);
        let (p, rest) = leaf_proof(lo + k, hi, n, rest);
        (p, th, rest)
    };
    p.push(th);
    (p, rest)
}

/// Checks that `p` proves the tree of `t` records with hash `th` has record `n` with hash `h`.
pub fn check_record(p: &[Hash], t: i64, th: Hash, n: i64, h: Hash) -> Result<(), Error> {
    if t < 0 || n < 0 || n >= t {
        return Err(Error::InvalidInputs("CheckRecord"));
    }
    if run_record_proof(p, 0, t, n, h)? == th {
        Ok(())
    } else {
        Err(Error::ProofFailed)
    }
}

fn run_record_proof(p: &[Hash], lo: i64, hi: i64, n: i64, leaf: Hash) -> Result<Hash, Error> {
    if lo + 1 == hi {
        return if p.is_empty() {
            Ok(leaf)
        } else {
            Err(Error::ProofFailed)
        };
    }
    let Some((last, rest)) = p.split_last() else {
        return Err(Error::ProofFailed);
    };
    let (k, _) = maxpow2(hi - lo);
    if n < lo + k {
        Ok(node_hash(
            run_record_proof(rest, lo, lo + k, n, leaf)?,
            *last,
        ))
    } else {
        Ok(node_hash(
            *last,
            run_record_proof(rest, lo + k, hi, n, leaf)?,
        ))
    }
}

/// The proof (RFC 6962 consistency proof) that the tree of `t` records extends the tree of
/// `n` records.
pub fn prove_tree(t: i64, n: i64, r: &mut impl HashReader) -> Result<Vec<Hash>, Error> {
    if t < 1 || n < 1 || n > t {
        return Err(Error::InvalidInputs("ProveTree"));
    }
    let indexes = tree_proof_index(0, t, n, Vec::new());
    if indexes.is_empty() {
        return Ok(Vec::new());
    }
    let hashes = read(r, &indexes)?;
    let (p, rest) = tree_proof(0, t, n, &hashes);
    debug_assert!(rest.is_empty());
    Ok(p)
}

fn tree_proof_index(lo: i64, hi: i64, n: i64, mut need: Vec<i64>) -> Vec<i64> {
    if n == hi {
        if lo == 0 {
            return need;
        }
        return sub_tree_index(lo, hi, need);
    }
    let (k, _) = maxpow2(hi - lo);
    if n <= lo + k {
        need = tree_proof_index(lo, lo + k, n, need);
        sub_tree_index(lo + k, hi, need)
    } else {
        need = sub_tree_index(lo, lo + k, need);
        tree_proof_index(lo + k, hi, n, need)
    }
}

fn tree_proof(lo: i64, hi: i64, n: i64, hashes: &[Hash]) -> (Vec<Hash>, &[Hash]) {
    if n == hi {
        if lo == 0 {
            return (Vec::new(), hashes);
        }
        let (th, rest) = sub_tree_hash(lo, hi, hashes);
        return (vec![th], rest);
    }
    let (k, _) = maxpow2(hi - lo);
    let (mut p, th, rest) = if n <= lo + k {
        let (p, rest) = tree_proof(lo, lo + k, n, hashes);
        let (th, rest) = sub_tree_hash(lo + k, hi, rest);
        (p, th, rest)
    } else {
        let (th, rest) = sub_tree_hash(lo, lo + k, hashes);
        let (p, rest) = tree_proof(lo + k, hi, n, rest);
        (p, th, rest)
    };
    p.push(th);
    (p, rest)
}

/// Checks that `p` proves the tree of `t` records with hash `th` extends the tree of `n`
/// records with hash `h`.
pub fn check_tree(p: &[Hash], t: i64, th: Hash, n: i64, h: Hash) -> Result<(), Error> {
    if t < 1 || n < 1 || n > t {
        return Err(Error::InvalidInputs("CheckTree"));
    }
    let (h2, th2) = run_tree_proof(p, 0, t, n, h)?;
    if th2 == th && h2 == h {
        Ok(())
    } else {
        Err(Error::ProofFailed)
    }
}

fn run_tree_proof(p: &[Hash], lo: i64, hi: i64, n: i64, old: Hash) -> Result<(Hash, Hash), Error> {
    if n == hi {
        if lo == 0 {
            return if p.is_empty() {
                Ok((old, old))
            } else {
                Err(Error::ProofFailed)
            };
        }
        return match p {
            [h] => Ok((*h, *h)),
            _ => Err(Error::ProofFailed),
        };
    }
    let Some((last, rest)) = p.split_last() else {
        return Err(Error::ProofFailed);
    };
    let (k, _) = maxpow2(hi - lo);
    if n <= lo + k {
        let (oh, th) = run_tree_proof(rest, lo, lo + k, n, old)?;
        Ok((oh, node_hash(th, *last)))
    } else {
        let (oh, th) = run_tree_proof(rest, lo + k, hi, n, old)?;
        Ok((node_hash(*last, oh), node_hash(*last, th)))
    }
}

/// A signed tree's size and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tree {
    pub n: i64,
    pub hash: Hash,
}

const TREE_PREFIX: &str = "go.sum database tree\n";

/// The text a tree note signs: `go.sum database tree\n<N>\n<hash>\n`.
pub fn format_tree(tree: Tree) -> String {
    format!("{TREE_PREFIX}{}\n{}\n", tree.n, tree.hash)
}

/// A tree note's text (extra lines after the hash are ignored; N must be canonical).
pub fn parse_tree(text: &[u8]) -> Result<Tree, Error> {
    let malformed = Error::Malformed("tree note");
    let text = std::str::from_utf8(text).map_err(|_| malformed.clone())?;
    if !text.starts_with(TREE_PREFIX) || text.matches('\n').count() < 3 || text.len() > 1_000_000 {
        return Err(malformed);
    }
    let mut lines = text.splitn(4, '\n');
    let (_, n, hash) = (lines.next(), lines.next(), lines.next());
    let (Some(n), Some(hash)) = (n, hash) else {
        return Err(malformed);
    };
    let parsed: i64 = n.parse().map_err(|_| malformed.clone())?;
    if parsed < 0 || parsed.to_string() != n {
        return Err(malformed);
    }
    let hash = Hash::parse(hash).map_err(|_| malformed)?;
    Ok(Tree { n: parsed, hash })
}

/// Whether `text` may be a record: UTF-8, no control characters but `\n`, no blank line, and
/// ending in `\n`.
fn is_valid_record_text(text: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(text) else {
        return false;
    };
    let mut last = '\0';
    for c in s.chars() {
        if (c < ' ' && c != '\n') || (last == '\n' && c == '\n') {
            return false;
        }
        last = c;
    }
    last == '\n'
}

/// A lookup answer's record: `<id>\n<text>\n`.
pub fn format_record(id: i64, text: &[u8]) -> Result<Vec<u8>, Error> {
    if !is_valid_record_text(text) {
        return Err(Error::Malformed("record data"));
    }
    let mut msg = format!("{id}\n").into_bytes();
    msg.extend_from_slice(text);
    msg.push(b'\n');
    Ok(msg)
}

/// A lookup answer split into the record's id, its text and what follows (the signed note).
pub fn parse_record(msg: &[u8]) -> Result<(i64, &[u8], &[u8]), Error> {
    let malformed = Error::Malformed("record data");
    let i = msg
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(malformed.clone())?;
    let id: i64 = std::str::from_utf8(&msg[..i])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(malformed.clone())?;
    let msg = &msg[i + 1..];
    let j = msg
        .windows(2)
        .position(|w| w == b"\n\n")
        .ok_or(malformed.clone())?;
    let (text, rest) = (&msg[..=j], &msg[j + 2..]);
    if !is_valid_record_text(text) {
        return Err(malformed);
    }
    Ok((id, text, rest))
}

#[cfg(test)]
mod tests;
