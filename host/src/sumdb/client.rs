//! Checking a checksum database's answers as the go command does (x/mod `sumdb.Client`): a
//! lookup's signed tree must agree with the newest tree already seen (one must be a prefix of
//! the other, proven from tiles), and the record must be in that tree. Tiles are trusted only
//! once they hash up to a signed tree ([`TileHashReader`]).

use std::collections::HashMap;

use super::note::{self, Verifier};
use super::tile::{Tile, hash_from_tile, tile_for_index, tile_hash};
use super::tlog::{
    self, HashReader, Tree, node_hash, parse_record, parse_tree, record_hash, stored_hash_index,
    tree_hash,
};

/// Where tiles come from (an upstream's `/sumdb/<name>/tile/…`, a cache).
pub trait TileReader {
    /// The tile height (the go command uses 8).
    fn height(&self) -> u32;
    /// The data of each tile, in order (`W` × 32 bytes each).
    fn read_tiles(&mut self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, String>;
    /// Tiles that were just proven to hash up to a signed tree (cache them).
    fn save_tiles(&mut self, tiles: &[Tile], data: &[Vec<u8>]) {
        let _ = (tiles, data);
    }
}

/// Why an answer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// The answer is malformed or its signature does not verify.
    #[error("{0}")]
    Invalid(String),
    /// The database shows two histories: a fork, or a log that shrank. Both heads are named.
    #[error(
        "SECURITY ERROR: checksum database misbehavior: tree {older_n} {older_hash} does not \
         match tree {newer_n} {newer_hash} (a fork, or a log that lost records)"
    )]
    Security {
        older_n: i64,
        older_hash: String,
        newer_n: i64,
        newer_hash: String,
    },
    /// Tiles could not be read, or did not hash up to the signed tree.
    #[error("tiles: {0}")]
    Tiles(String),
}

/// A lookup checked: the record's text (`M V h1:…\nM V/go.mod h1:…\n`), its lines about the
/// module version asked for, and the newest tree now known (to be kept, and checked against
/// every later one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub id: i64,
    pub text: Vec<u8>,
    /// The record's `M V h1:…` and `M V/go.mod h1:…` lines for the module version asked for.
    pub lines: Vec<String>,
    pub newest: Tree,
    /// The signed note of `newest`, when it came with this answer.
    pub newest_note: Option<Vec<u8>>,
}

/// Checks the answer to `lookup/<module>@<version>` signed by `key`, given the newest tree seen
/// before (`known`, `None` the first time). A proven record about another module version is
/// refused.
pub fn check_lookup(
    key: &Verifier,
    known: Option<Tree>,
    (module, version): (&str, &str),
    answer: &[u8],
    tiles: &mut impl TileReader,
) -> Result<Checked, CheckError> {
    let (id, text, signed) =
        parse_record(answer).map_err(|e| CheckError::Invalid(format!("lookup answer: {e}")))?;
    let note = note::open(signed, std::slice::from_ref(key))
        .map_err(|e| CheckError::Invalid(format!("tree note: {e}")))?;
    let tree = parse_tree(note.text.as_bytes())
        .map_err(|e| CheckError::Invalid(format!("tree note: {e}")))?;
    let newest = merge(known, tree, tiles)?;
    if id < 0 || id >= newest.n {
        return Err(CheckError::Invalid(format!(
            "record {id} is not in tree {}",
            newest.n
        )));
    }
    let stored = TileHashReader::new(newest, tiles)
        .read_hashes(&[stored_hash_index(0, id)])
        .map_err(|e| CheckError::Tiles(e.to_string()))?;
    if stored[0] != record_hash(text) {
        return Err(CheckError::Invalid(
            "cannot authenticate record data in server response".into(),
        ));
    }
    let zip_prefix = format!("{module} {version} ");
    let mod_prefix = format!("{module} {version}/go.mod ");
    let lines: Vec<String> = String::from_utf8_lossy(text)
        .lines()
        .filter(|l| l.starts_with(&zip_prefix) || l.starts_with(&mod_prefix))
        .map(str::to_owned)
        .collect();
    if lines.is_empty() {
        return Err(CheckError::Invalid(format!(
            "the record answered for {module}@{version} is about something else"
        )));
    }
    Ok(Checked {
        id,
        text: text.to_vec(),
        lines,
        newest,
        newest_note: (newest == tree).then(|| signed.to_vec()),
    })
}

/// The newer of `known` and `tree`, after proving the older is a prefix of the newer.
pub fn merge(
    known: Option<Tree>,
    tree: Tree,
    tiles: &mut impl TileReader,
) -> Result<Tree, CheckError> {
    let Some(known) = known else {
        return Ok(tree);
    };
    let (older, newer) = if tree.n <= known.n {
        (tree, known)
    } else {
        (known, tree)
    };
    if older.n == 0 {
        return Ok(newer);
    }
    let h = tree_hash(older.n, &mut TileHashReader::new(newer, tiles)).map_err(|e| {
        CheckError::Tiles(format!(
            "checking tree {} against {}: {e}",
            older.n, newer.n
        ))
    })?;
    if h != older.hash {
        return Err(CheckError::Security {
            older_n: older.n,
            older_hash: older.hash.to_string(),
            newer_n: newer.n,
            newer_hash: newer.hash.to_string(),
        });
    }
    Ok(newer)
}

/// Reads stored hashes of `tree` from tiles, after checking that the tiles hash up to the
/// tree's signed hash (x/mod `tlog.TileHashReader`).
pub struct TileHashReader<'a, R> {
    tree: Tree,
    tiles: &'a mut R,
}

impl<'a, R: TileReader> TileHashReader<'a, R> {
    pub fn new(tree: Tree, tiles: &'a mut R) -> Self {
        TileHashReader { tree, tiles }
    }
}

/// Tile `t`'s `k`-th parent, cut to the tree of `n` records (`None`: beyond the tree).
fn tile_parent(mut t: Tile, k: u32, n: i64) -> Option<Tile> {
    t.l += k as i32;
    t.n >>= k * t.h;
    t.w = 1 << t.h;
    let max = n >> (t.l as u32 * t.h);
    if (t.n << t.h) + t.w >= max {
        if (t.n << t.h) >= max {
            return None;
        }
        t.w = max - (t.n << t.h);
    }
    Some(t)
}

/// The tiles [`TileHashReader`] reads to give the stored hashes at `indexes` of the tree of `n`
/// records, with tile height `h`: to fetch them all at once before a check.
pub fn tiles_for(h: u32, n: i64, indexes: &[i64]) -> Vec<Tile> {
    plan_tiles(h, n, indexes).map_or_else(|_| Vec::new(), |p| p.tiles)
}

/// Which tiles to read for `indexes` in the tree of `n` records, and where each hash is.
struct TilePlan {
    tiles: Vec<Tile>,
    order: HashMap<Tile, usize>,
    /// The stored hashes making up the tree's hash, and the tile of each.
    stx: Vec<i64>,
    stx_order: Vec<usize>,
    /// The tile of each index asked for.
    index_order: Vec<usize>,
}

fn plan_tiles(h: u32, n: i64, indexes: &[i64]) -> Result<TilePlan, tlog::Error> {
    let err = |m: String| tlog::Error::Read(m);
    let mut order: HashMap<Tile, usize> = HashMap::new();
    let mut tiles: Vec<Tile> = Vec::new();

    // The tiles that make up the signed tree's hash come first.
    let stx = tlog::sub_tree_index(0, n, Vec::new());
    let mut stx_order = Vec::with_capacity(stx.len());
    for &x in &stx {
        let (tile, _, _) = tile_for_index(h, x);
        let tile = tile_parent(tile, 0, n).ok_or_else(|| err("bad tile math".into()))?;
        let j = *order.entry(tile).or_insert_with(|| {
            tiles.push(tile);
            tiles.len() - 1
        });
        stx_order.push(j);
    }
    // Then each index's tile and the parents that vouch for it.
    let mut index_order = Vec::with_capacity(indexes.len());
    for &x in indexes {
        if x >= stored_hash_index(0, n) {
            return Err(err("indexes not in tree".into()));
        }
        let (tile, _, _) = tile_for_index(h, x);
        let mut k = 0;
        let found = loop {
            let p = tile_parent(tile, k, n)
                .ok_or_else(|| err(format!("no tile of tree {n} holds index {x}")))?;
            if let Some(&j) = order.get(&p) {
                break j;
            }
            k += 1;
        };
        if k == 0 {
            index_order.push(found);
            continue;
        }
        let mut own = 0;
        for kk in (0..k).rev() {
            let p = tile_parent(tile, kk, n).ok_or_else(|| err("bad tile math".into()))?;
            if p.w != 1 << p.h {
                return Err(err(format!("bad tile math: {n} {x} {}", p.path())));
            }
            order.insert(p, tiles.len());
            if kk == 0 {
                own = tiles.len();
            }
            tiles.push(p);
        }
        index_order.push(own);
    }
    Ok(TilePlan {
        tiles,
        order,
        stx,
        stx_order,
        index_order,
    })
}

impl<R: TileReader> HashReader for TileHashReader<'_, R> {
    fn read_hashes(&mut self, indexes: &[i64]) -> Result<Vec<tlog::Hash>, tlog::Error> {
        let err = |m: String| tlog::Error::Read(m);
        let n = self.tree.n;
        let TilePlan {
            tiles,
            order,
            stx,
            stx_order,
            index_order,
        } = plan_tiles(self.tiles.height(), n, indexes)?;
        let data = self.tiles.read_tiles(&tiles).map_err(err)?;
        if data.len() != tiles.len() {
            return Err(err(format!(
                "{} tiles read for {} asked",
                data.len(),
                tiles.len()
            )));
        }
        for (tile, d) in tiles.iter().zip(&data) {
            if d.len() as i64 != tile.w * tlog::HASH_SIZE as i64 {
                return Err(err(format!("tile {} has {} bytes", tile.path(), d.len())));
            }
        }
        // The signed tree's hash from the top tiles.
        let last = stx.len() - 1;
        let mut th = hash_from_tile(tiles[stx_order[last]], &data[stx_order[last]], stx[last])
            .map_err(err)?;
        for i in (0..last).rev() {
            let hh =
                hash_from_tile(tiles[stx_order[i]], &data[stx_order[i]], stx[i]).map_err(err)?;
            th = node_hash(hh, th);
        }
        if th != self.tree.hash {
            return Err(err("downloaded inconsistent tile".into()));
        }
        // Every other tile against its parent.
        for i in stx_order.iter().max().map_or(0, |m| m + 1)..tiles.len() {
            let tile = tiles[i];
            let p = tile_parent(tile, 1, n).ok_or_else(|| err("lost a parent tile".into()))?;
            let j = *order
                .get(&p)
                .ok_or_else(|| err(format!("lost the parent of {}", tile.path())))?;
            let want = hash_from_tile(p, &data[j], stored_hash_index(p.l as u32 * p.h, tile.n))
                .map_err(err)?;
            if want != tile_hash(&data[i]) {
                return Err(err("downloaded inconsistent tile".into()));
            }
        }
        self.tiles.save_tiles(&tiles, &data);
        indexes
            .iter()
            .zip(index_order)
            .map(|(&x, j)| hash_from_tile(tiles[j], &data[j], x).map_err(err))
            .collect()
    }
}

#[cfg(test)]
mod tests;
