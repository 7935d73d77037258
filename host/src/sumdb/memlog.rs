//! A checksum database held in memory: records appended, stored hashes kept, the tree signed,
//! lookups and hash tiles answered as a database serves them (x/mod `sumdb.TestServer`). Tests
//! build hermetic databases with it; it is the model modgate's own database follows on disk.

use std::collections::HashMap;

use super::note::{NoteError, Signer};
use super::tile::{Tile, new_tiles, tile_indexes};
use super::tlog::{
    self, Hash, Tree, format_record, format_tree, record_hash, stored_hash_index,
    stored_hashes_for_record_hash, tree_hash,
};
use crate::goproxy::escape::{escape_path, escape_version};

/// Tile height served (the go command reads height 8).
pub const TILE_HEIGHT: u32 = 8;

/// An append-only log of records with a signer.
pub struct MemLog {
    signer: Signer,
    records: Vec<Vec<u8>>,
    hashes: Vec<Hash>,
    /// `module version` → record id.
    ids: HashMap<String, i64>,
}

impl MemLog {
    pub fn new(signer: Signer) -> Self {
        MemLog {
            signer,
            records: Vec::new(),
            hashes: Vec::new(),
            ids: HashMap::new(),
        }
    }

    /// Appends a record (`text` ends in `\n`, no blank lines) and returns its id.
    pub fn append(&mut self, text: &[u8]) -> Result<i64, tlog::Error> {
        format_record(0, text)?;
        let n = self.records.len() as i64;
        let hashes = &self.hashes;
        let stored = stored_hashes_for_record_hash(n, record_hash(text), &mut |ix: &[i64]| {
            ix.iter()
                .map(|&i| {
                    usize::try_from(i)
                        .ok()
                        .and_then(|i| hashes.get(i))
                        .copied()
                        .ok_or_else(|| tlog::Error::Read(format!("no stored hash {i}")))
                })
                .collect()
        })?;
        debug_assert_eq!(self.hashes.len() as i64, stored_hash_index(0, n));
        self.hashes.extend(stored);
        self.records.push(text.to_vec());
        Ok(n)
    }

    /// Appends the go.sum lines of `module@version`: `M V h1:…` (when the version has a zip
    /// hash) and `M V/go.mod h1:…`. A version already logged is refused.
    pub fn add(
        &mut self,
        module: &str,
        version: &str,
        zip: Option<&str>,
        go_mod: &str,
    ) -> Result<i64, String> {
        let key = format!("{module} {version}");
        if self.ids.contains_key(&key) {
            return Err(format!("{module}@{version} is already logged"));
        }
        let mut text = String::new();
        if let Some(h) = zip {
            text.push_str(&format!("{module} {version} {h}\n"));
        }
        text.push_str(&format!("{module} {version}/go.mod {go_mod}\n"));
        let id = self.append(text.as_bytes()).map_err(|e| e.to_string())?;
        self.ids.insert(key, id);
        Ok(id)
    }

    pub fn len(&self) -> i64 {
        self.records.len() as i64
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The current tree.
    pub fn tree(&self) -> Tree {
        let n = self.len();
        let hash = tree_hash(n, &mut |ix: &[i64]| {
            Ok(ix.iter().map(|&i| self.hashes[i as usize]).collect())
        })
        .unwrap_or_default();
        Tree { n, hash }
    }

    /// The current tree's signed note (`/latest`).
    pub fn signed_tree(&self) -> Result<String, NoteError> {
        self.signer.sign(&format_tree(self.tree()))
    }

    /// The answer to `lookup/M@V` (unescaped forms), when the version is logged.
    pub fn lookup(&self, module: &str, version: &str) -> Option<Vec<u8>> {
        self.lookup_id(*self.ids.get(&format!("{module} {version}"))?)
    }

    /// The answer to a lookup of record `id`: the record, then the signed current tree.
    pub fn lookup_id(&self, id: i64) -> Option<Vec<u8>> {
        let mut out = format_record(id, self.records.get(usize::try_from(id).ok()?)?).ok()?;
        out.extend_from_slice(self.signed_tree().ok()?.as_bytes());
        Some(out)
    }

    /// A hash tile's data (of any height), when the tree holds it.
    pub fn tile(&self, t: Tile) -> Option<Vec<u8>> {
        if t.l < 0 {
            return None;
        }
        let ix = tile_indexes(t);
        let mut data = Vec::with_capacity(ix.len() * tlog::HASH_SIZE);
        for i in ix {
            data.extend_from_slice(&self.hashes.get(usize::try_from(i).ok()?)?.0);
        }
        Some(data)
    }

    /// Every hash tile of the current tree, by path: what a database publishes (its full
    /// tiles, and the partial tiles at the current width only).
    pub fn tiles(&self) -> Vec<(String, Vec<u8>)> {
        new_tiles(TILE_HEIGHT, 0, self.len())
            .into_iter()
            .filter_map(|t| Some((t.path(), self.tile(t)?)))
            .collect()
    }

    /// Every `lookup/…` answer, by path under `/sumdb/<name>/` (escaped as the go command asks).
    pub fn lookups(&self) -> Vec<(String, Vec<u8>)> {
        self.ids
            .keys()
            .filter_map(|k| {
                let (m, v) = k.split_once(' ')?;
                let path = format!(
                    "lookup/{}@{}",
                    escape_path(m).ok()?,
                    escape_version(v).ok()?
                );
                Some((path, self.lookup(m, v)?))
            })
            .collect()
    }
}
