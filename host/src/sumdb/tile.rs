//! Tiles: the log's stored hashes in fixed blocks (`tile/H/L/NNN[.p/W]`), as the go command
//! fetches them, and the hashes read back from them.

use super::tlog::{HASH_SIZE, Hash, node_hash, split_stored_hash_index, stored_hash_index};

/// `W` hashes of level `H·L` of the tree, from `N·2^H` on; `L = -1` is a data tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tile {
    /// Height, 1 ≤ H ≤ 30.
    pub h: u32,
    /// Level in the tiling, -1 (data) ≤ L ≤ 63.
    pub l: i32,
    /// Number within the level.
    pub n: i64,
    /// Width, 1 ≤ W ≤ 2^H (2^H: a complete tile).
    pub w: i64,
}

const PATH_BASE: i64 = 1000;

impl Tile {
    /// `tile/H/L/x123/456[.p/W]`.
    pub fn path(&self) -> String {
        let mut n = self.n;
        let mut n_str = format!("{:03}", n % PATH_BASE);
        while n >= PATH_BASE {
            n /= PATH_BASE;
            n_str = format!("x{:03}/{n_str}", n % PATH_BASE);
        }
        let p = if self.w == 1 << self.h {
            String::new()
        } else {
            format!(".p/{}", self.w)
        };
        let l = if self.l == -1 {
            "data".to_string()
        } else {
            self.l.to_string()
        };
        format!("tile/{}/{l}/{n_str}{p}", self.h)
    }

    /// The tile a canonical tile path names; anything else is refused.
    pub fn parse(path: &str) -> Option<Tile> {
        let mut f: Vec<&str> = path.split('/').collect();
        if f.len() < 4 || f[0] != "tile" {
            return None;
        }
        let h: u32 = f[1].parse().ok()?;
        let data = f[2] == "data";
        let l: i32 = if data { 0 } else { f[2].parse().ok()? };
        if !(1..=30).contains(&h) || l < 0 {
            return None;
        }
        let mut w: i64 = 1 << h;
        let last = f.len() - 2;
        let stripped;
        if let Some(base) = f[last].strip_suffix(".p") {
            let ww: i64 = f[last + 1].parse().ok()?;
            if ww <= 0 || ww >= w {
                return None;
            }
            w = ww;
            stripped = base.to_string();
            f[last] = &stripped;
            f.pop();
        }
        let mut n: i64 = 0;
        for s in &f[3..] {
            let nn: i64 = s.strip_prefix('x').unwrap_or(s).parse().ok()?;
            if !(0..PATH_BASE).contains(&nn) {
                return None;
            }
            n = n.checked_mul(PATH_BASE)?.checked_add(nn)?;
        }
        let tile = Tile {
            h,
            l: if data { -1 } else { l },
            n,
            w,
        };
        (tile.path() == path).then_some(tile)
    }
}

/// The tile of height `h` holding stored hash `index`, and the byte range of the hash within
/// the tile's data.
pub fn tile_for_index(h: u32, index: i64) -> (Tile, usize, usize) {
    let (level, mut n) = split_stored_hash_index(index);
    let l = level / h;
    let level = level - l * h;
    let tn = (n << level) >> h;
    n -= (tn << h) >> level;
    let tile = Tile {
        h,
        l: l as i32,
        n: tn,
        w: (n + 1) << level,
    };
    let start = usize::try_from(n << level).unwrap_or(0) * HASH_SIZE;
    let end = usize::try_from((n + 1) << level).unwrap_or(0) * HASH_SIZE;
    (tile, start, end)
}

/// The hash at stored index `index`, from tile `t`'s `data`.
pub fn hash_from_tile(t: Tile, data: &[u8], index: i64) -> Result<Hash, String> {
    if !(1..=30).contains(&t.h) || t.l < 0 || t.l >= 64 || t.w < 1 || t.w > 1 << t.h {
        return Err(format!("invalid tile {}", t.path()));
    }
    if (data.len() as i64) < t.w * HASH_SIZE as i64 {
        return Err(format!(
            "data len {} too short for tile {}",
            data.len(),
            t.path()
        ));
    }
    let (t1, start, end) = tile_for_index(t.h, index);
    if t.l != t1.l || t.n != t1.n || t.w < t1.w {
        return Err(format!(
            "index {index} is in {} not {}",
            t1.path(),
            t.path()
        ));
    }
    Ok(tile_hash(&data[start..end]))
}

/// The hash of a run of a tile's hashes (a power of two of them).
pub fn tile_hash(data: &[u8]) -> Hash {
    if data.len() == HASH_SIZE {
        let mut h = [0u8; HASH_SIZE];
        h.copy_from_slice(data);
        return Hash(h);
    }
    let half = data.len() / 2;
    node_hash(tile_hash(&data[..half]), tile_hash(&data[half..]))
}

/// The tiles of height `h` that change when the tree grows from `old` to `new` records.
pub fn new_tiles(h: u32, old: i64, new: i64) -> Vec<Tile> {
    let mut tiles = Vec::new();
    let mut level = 0u32;
    while (new >> (h * level)) > 0 {
        let old_n = old >> (h * level);
        let new_n = new >> (h * level);
        if old_n != new_n {
            for n in (old_n >> h)..(new_n >> h) {
                tiles.push(Tile {
                    h,
                    l: level as i32,
                    n,
                    w: 1 << h,
                });
            }
            let n = new_n >> h;
            let w = new_n - (n << h);
            if w > 0 {
                tiles.push(Tile {
                    h,
                    l: level as i32,
                    n,
                    w,
                });
            }
        }
        level += 1;
    }
    tiles
}

/// The stored-hash indexes whose hashes make up tile `t` (for serving it from storage).
pub fn tile_indexes(t: Tile) -> Vec<i64> {
    let start = t.n << t.h;
    let level = t.h * u32::try_from(t.l.max(0)).unwrap_or(0);
    (0..t.w)
        .map(|i| stored_hash_index(level, start + i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_paths_are_canonical() {
        // x/mod's tlog_test.go tilePaths.
        let cases = [
            ("tile/4/0/001", Some((4, 0, 1, 16))),
            ("tile/4/0/001.p/5", Some((4, 0, 1, 5))),
            ("tile/3/5/x123/x456/078", Some((3, 5, 123_456_078, 8))),
            ("tile/3/5/x123/x456/078.p/2", Some((3, 5, 123_456_078, 2))),
            ("tile/1/0/x003/x057/500", Some((1, 0, 3_057_500, 2))),
            ("tile/3/5/123/456/078", None),
            ("tile/3/-1/123/456/078", None),
            ("tile/1/data/x003/x057/500", Some((1, -1, 3_057_500, 2))),
        ];
        for (path, want) in cases {
            let got = Tile::parse(path).map(|t| (t.h, t.l, t.n, t.w));
            assert_eq!(got, want, "{path}");
            if let Some((h, l, n, w)) = want {
                assert_eq!(Tile { h, l, n, w }.path(), path);
            }
        }
    }

    #[test]
    fn new_tiles_match_x_mod() {
        // x/mod's tile_test.go TestNewTilesForSize (h = 10) and the notes' NewTiles(8, 0, 300).
        assert_eq!(new_tiles(10, 1023, 1025).len(), 3);
        assert_eq!(new_tiles(10, 1030, 10000).len(), 10);
        assert_eq!(new_tiles(10, 49_516_517, 49_516_586).len(), 3);
        let paths: Vec<String> = new_tiles(8, 0, 300).iter().map(Tile::path).collect();
        assert_eq!(
            paths,
            ["tile/8/0/000", "tile/8/0/001.p/44", "tile/8/1/000.p/1"]
        );
    }
}
