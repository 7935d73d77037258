//! The public checksum database as modgate reaches it through its upstream proxies
//! (`<proxy>/sumdb/<name>/…`): versions fetched from a proxy are checked against its records
//! before they are stored, and clients' own checksum-database traffic is served from the same
//! cache.
//!
//! Only lookups and hash tiles are read, as the go command reads them (some proxies refuse data
//! tiles). Every answer is checked as x/mod's `sumdb.Client` checks it ([`check_lookup`]): the
//! signed tree note with the database's key, the record's inclusion proven from tiles, and the
//! tree against the newest one seen, which is kept on disk (`<dir>/<name>/latest`) so a fork or
//! a log that shrank is detected across restarts too. Such misbehavior halts admission: a mark
//! (`<dir>/<name>/security-error`, naming both trees) stops every later verification until an
//! operator has looked and removed it.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::client::{CheckError, TileReader, check_lookup, merge, tiles_for};
use super::note::{self, Verifier};
use super::tile::Tile;
use super::tlog::{Tree, parse_tree, stored_hash_index};
use crate::upstream::FetchError;
use crate::upstream::singleflight::SingleFlight;

/// The go command's default database and its published verifier key (`cmd/go/internal/modfetch/key.go`).
pub const DEFAULT_DB: &str = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";

/// Tile height the go command reads.
const TILE_HEIGHT: u32 = 8;
/// Memory kept for tiles (full tiles never change; partial ones are named by their width).
const TILE_CACHE_BYTES: u64 = 64 << 20;
/// Verified records kept (a record never changes).
const VERIFIED_ENTRIES: usize = 200_000;
/// How long a raw lookup answer is reused for clients (it carries a signed tree that ages).
const LOOKUP_TTL: Duration = Duration::from_secs(600);
/// Rounds of "check, fetch the tiles the check missed" before giving up.
const MAX_ROUNDS: usize = 8;
/// How often the database's `latest` tree may be fetched (when a lookup shows a newer tree).
const LATEST_EVERY: Duration = Duration::from_secs(10);
/// The mark left when the database misbehaved.
pub const HALT_FILE: &str = "security-error";

/// Fetches `<proxy>/sumdb/<name>/<rest>` through a route's sources.
pub trait Source: Send + Sync {
    fn get<'a>(&'a self, rest: &'a str) -> BoxFuture<'a, Result<Bytes, FetchError>>;
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// `[gosumdb]`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The database's name (`sum.golang.org`).
    pub name: String,
    /// Its verifier key, as GOSUMDB writes it (`name+hash+key`).
    pub key: String,
    /// Where the newest verified tree and the misbehavior mark are kept.
    pub dir: PathBuf,
}

/// Why a version could not be verified.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VerifyError {
    /// The database has no record of the version (its answer to the lookup).
    #[error("not in checksum database {db}: {reason}")]
    NotFound { db: String, reason: String },
    /// The database could not be reached through the upstream.
    #[error("checksum database {db}: {error}")]
    Fetch { db: String, error: FetchError },
    /// An answer failed its checks (bad signature, a record that is not in the tree, …).
    #[error("checksum database {db}: {reason}")]
    Invalid { db: String, reason: String },
    /// The database misbehaved (now or earlier): nothing new is admitted.
    #[error("{0}")]
    Halted(String),
}

/// The verified lines of one module version: `M V h1:…` and `M V/go.mod h1:…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub zip: Option<String>,
    pub go_mod: Option<String>,
}

impl Record {
    fn from_lines(lines: &[String]) -> Self {
        // `M V h1:…` is the zip's line, `M V/go.mod h1:…` the go.mod's.
        let hash = |go_mod: bool| {
            lines.iter().find_map(|l| {
                let mut f = l.split(' ');
                let (_, v, h) = (f.next()?, f.next()?, f.next()?);
                (v.ends_with("/go.mod") == go_mod).then(|| h.to_owned())
            })
        };
        Record {
            zip: hash(false),
            go_mod: hash(true),
        }
    }
}

struct State {
    /// The newest tree proven consistent with every tree seen, and its signed note.
    newest: Option<(Tree, Bytes)>,
    /// Why admission is halted.
    halted: Option<String>,
}

impl From<tokio::task::JoinError> for VerifyError {
    fn from(e: tokio::task::JoinError) -> Self {
        VerifyError::Invalid {
            db: String::new(),
            reason: format!("the check stopped: {e}"),
        }
    }
}

/// The checksum database upstream versions are verified against.
pub struct Gosumdb {
    name: String,
    key: Verifier,
    dir: PathBuf,
    state: Mutex<State>,
    /// The size of the tree last written to `latest` (writes happen outside `state`).
    persisted: tokio::sync::Mutex<i64>,
    /// When the database's `latest` was last fetched (one fetch at a time).
    refreshed: tokio::sync::Mutex<Option<Instant>>,
    tiles: quick_cache::sync::Cache<Tile, Bytes, TileWeighter>,
    verified: quick_cache::sync::Cache<String, Record>,
    lookups: Mutex<HashMap<String, (Instant, Bytes)>>,
    flights: SingleFlight<String, Record, VerifyError>,
}

#[derive(Clone)]
struct TileWeighter;

impl quick_cache::Weighter<Tile, Bytes> for TileWeighter {
    fn weight(&self, _: &Tile, value: &Bytes) -> u64 {
        value.len() as u64 + 64
    }
}

impl std::fmt::Debug for Gosumdb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gosumdb").field("name", &self.name).finish()
    }
}

impl Gosumdb {
    /// Opens the database's state under `settings.dir`: the newest tree verified before (its
    /// note must verify with the key: anything else is an error naming the file) and a
    /// misbehavior mark, if one was left.
    pub fn open(settings: &Settings) -> Result<Self, String> {
        let key = Verifier::parse(&settings.key).map_err(|e| format!("key: {e}"))?;
        let dir = settings.dir.join(&settings.name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let latest = dir.join("latest");
        let newest = match std::fs::read(&latest) {
            Ok(data) => {
                let note = note::open(&data, std::slice::from_ref(&key)).map_err(|e| {
                    format!(
                        "{}: not a tree signed by {}: {e}",
                        latest.display(),
                        key.name
                    )
                })?;
                let tree = parse_tree(note.text.as_bytes())
                    .map_err(|e| format!("{}: {e}", latest.display()))?;
                Some((tree, Bytes::from(data)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("{}: {e}", latest.display())),
        };
        let halt = dir.join(HALT_FILE);
        let halted = match std::fs::read_to_string(&halt) {
            Ok(text) => Some(halted_message(&settings.name, text.trim(), &halt)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("{}: {e}", halt.display())),
        };
        let persisted = newest.as_ref().map_or(0, |(t, _)| t.n);
        Ok(Self {
            name: settings.name.clone(),
            key,
            dir,
            state: Mutex::new(State { newest, halted }),
            persisted: tokio::sync::Mutex::new(persisted),
            refreshed: tokio::sync::Mutex::new(None),
            tiles: quick_cache::sync::Cache::with_weighter(
                (TILE_CACHE_BYTES / 8192) as usize,
                TILE_CACHE_BYTES,
                TileWeighter,
            ),
            verified: quick_cache::sync::Cache::new(VERIFIED_ENTRIES),
            lookups: Mutex::default(),
            flights: SingleFlight::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The newest tree verified so far.
    pub fn newest(&self) -> Option<Tree> {
        self.lock().newest.as_ref().map(|(t, _)| *t)
    }

    /// Why admission is halted, if it is.
    pub fn halted(&self) -> Option<String> {
        self.lock().halted.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The database's verified record of `module@version` (escaped forms for the lookup path),
    /// looked up once for all concurrent callers and remembered.
    pub async fn record(
        self: &Arc<Self>,
        module: &str,
        version: &str,
        lookup: String,
        source: Arc<dyn Source>,
    ) -> Result<Record, VerifyError> {
        let key = format!("{module}@{version}");
        if let Some(r) = self.verified.get(&key) {
            return Ok(r);
        }
        if let Some(why) = self.halted() {
            return Err(VerifyError::Halted(why));
        }
        let db = Arc::clone(self);
        let (module, version) = (module.to_owned(), version.to_owned());
        self.flights
            .run(key.clone(), move || async move {
                if let Some(r) = db.verified.get(&key) {
                    return Ok(r);
                }
                let record = db.verify(&module, &version, &lookup, &*source).await?;
                db.verified.insert(key, record.clone());
                Ok(record)
            })
            .await
    }

    async fn verify(
        &self,
        module: &str,
        version: &str,
        lookup: &str,
        source: &dyn Source,
    ) -> Result<Record, VerifyError> {
        let rest = format!("lookup/{lookup}");
        let answer = match self.get_lookup(&rest, source).await {
            Ok(a) => a,
            Err(FetchError::NotFound { reason }) => {
                // An upstream that does not proxy the database at all says so on `supported`.
                if let Err(FetchError::NotFound { .. }) = source.get("supported").await {
                    return Err(VerifyError::Invalid {
                        db: self.name.clone(),
                        reason: "the upstream does not proxy it (its /sumdb/.../supported \
                                 answered 404): use an upstream that does, or set the route's \
                                 sumdb = \"off\""
                            .into(),
                    });
                }
                return Err(VerifyError::NotFound {
                    db: self.name.clone(),
                    reason: reason.unwrap_or_else(|| "not found".into()),
                });
            }
            Err(error) => {
                return Err(VerifyError::Fetch {
                    db: self.name.clone(),
                    error,
                });
            }
        };
        // A lookup signed over a tree newer than any seen: adopt the database's latest tree
        // first, so this and later answers (usually signed over older trees) are proven from
        // the tiles of one tree, the ones the database serves.
        let claimed = claimed(&answer);
        let newer = match (claimed, self.newest()) {
            (Some((_, n)), Some(known)) => n > known.n,
            (_, None) => true,
            (None, _) => false,
        };
        if newer {
            self.refresh_latest(source).await?;
        }
        // The tiles the check will read, fetched at once: the record's path and, for an answer
        // signed over an older tree, what proves that tree a prefix of the newest.
        let fetched = match claimed {
            Some(claimed) => self.prefetch(claimed, source).await,
            None => HashMap::new(),
        };
        let checked = self
            .checked(source, fetched, |known, reader| {
                check_lookup(&self.key, known, (module, version), &answer, reader)
                    .map(|c| (c.newest, c.newest_note.map(Bytes::from), c.lines))
            })
            .await?;
        self.persist().await;
        Ok(Record::from_lines(&checked))
    }

    /// Merges the database's `latest` signed tree, at most once per [`LATEST_EVERY`]; a
    /// database that cannot say (an error other than misbehavior) leaves things as they are.
    async fn refresh_latest(&self, source: &dyn Source) -> Result<(), VerifyError> {
        let mut last = self.refreshed.lock().await;
        if last.is_some_and(|t| t.elapsed() < LATEST_EVERY) {
            return Ok(());
        }
        *last = Some(Instant::now());
        let latest = match source.get("latest").await {
            Ok(body) => body,
            Err(e) => {
                tracing::debug!(db = %self.name, error = %e, "no latest tree; checking lookups as they come");
                return Ok(());
            }
        };
        let tree = match note::open(&latest, std::slice::from_ref(&self.key))
            .map_err(|e| e.to_string())
            .and_then(|n| parse_tree(n.text.as_bytes()).map_err(|e| e.to_string()))
        {
            Ok(tree) => tree,
            Err(e) => {
                tracing::warn!(db = %self.name, error = %e, "the database's latest tree does not verify");
                return Ok(());
            }
        };
        let merged = self
            .checked(source, HashMap::new(), |known, reader| {
                let newest = merge(known, tree, reader)?;
                Ok((newest, (newest == tree).then(|| latest.clone()), ()))
            })
            .await;
        match merged {
            Ok(()) => {
                self.persist().await;
                Ok(())
            }
            Err(e @ VerifyError::Halted(_)) => Err(e),
            Err(e) => {
                tracing::debug!(db = %self.name, error = %e, "latest tree not adopted");
                Ok(())
            }
        }
    }

    /// Runs `check` (given the newest tree known) with the tiles at hand, fetching the ones it
    /// missed and running it again, then installs the newest tree it returns (with its note,
    /// when that came with the answer). Misbehavior halts admission.
    async fn checked<T>(
        &self,
        source: &dyn Source,
        mut fetched: HashMap<Tile, Bytes>,
        check: impl Fn(Option<Tree>, &mut Reader<'_>) -> Result<(Tree, Option<Bytes>, T), CheckError>,
    ) -> Result<T, VerifyError> {
        let invalid = |reason: String| VerifyError::Invalid {
            db: self.name.clone(),
            reason,
        };
        let mut purged = false;
        for _ in 0..MAX_ROUNDS {
            if let Some(why) = self.halted() {
                return Err(VerifyError::Halted(why));
            }
            let known = self.newest();
            let mut reader = Reader {
                db: self,
                fetched: &fetched,
                missing: Vec::new(),
            };
            let result = check(known, &mut reader);
            let missing = reader.missing;
            match result {
                Ok((newest, note, value)) => {
                    if !self.install(known, newest, note) {
                        continue; // another check moved the newest tree meanwhile
                    }
                    return Ok(value);
                }
                Err(e @ CheckError::Security { .. }) => {
                    return Err(VerifyError::Halted(self.halt(&e.to_string()).await));
                }
                Err(_) if !missing.is_empty() => {
                    let got = futures_util::future::join_all(
                        missing.iter().map(|t| self.get_tile(*t, source)),
                    )
                    .await;
                    for (t, data) in missing.into_iter().zip(got) {
                        let data = data.map_err(|e| invalid(format!("tile {}: {e}", t.path())))?;
                        fetched.insert(t, data);
                    }
                }
                Err(CheckError::Tiles(m)) if !purged => {
                    // A cached tile that does not hash up (cached for a client, unchecked):
                    // read every tile afresh once.
                    tracing::debug!(db = %self.name, error = %m, "re-reading checksum database tiles");
                    self.tiles.clear();
                    fetched.clear();
                    purged = true;
                }
                Err(e) => return Err(invalid(e.to_string())),
            }
        }
        Err(invalid(format!(
            "tiles still missing after {MAX_ROUNDS} rounds"
        )))
    }

    /// Fetches, all at once, the tiles not at hand that checking a lookup answer (record `id`,
    /// signed over the tree of `tree_n` records) against the newest tree will read (a failed
    /// fetch is left for the check to retry and report).
    async fn prefetch(
        &self,
        (id, tree_n): (i64, i64),
        source: &dyn Source,
    ) -> HashMap<Tile, Bytes> {
        let newest = self.newest().map_or(tree_n, |t| t.n.max(tree_n));
        if id < 0 || id >= newest {
            return HashMap::new();
        }
        let mut want = tiles_for(TILE_HEIGHT, newest, &[stored_hash_index(0, id)]);
        if tree_n < newest && tree_n > 0 {
            want.extend(tiles_for(
                TILE_HEIGHT,
                newest,
                &super::tlog::sub_tree_index(0, tree_n, Vec::new()),
            ));
        }
        want.sort_by_key(|t| (t.l, t.n, t.w));
        want.dedup();
        want.retain(|t| self.cached_tile(*t).is_none());
        let got =
            futures_util::future::join_all(want.iter().map(|t| self.get_tile(*t, source))).await;
        want.into_iter()
            .zip(got)
            .filter_map(|(t, d)| Some((t, d.ok()?)))
            .collect()
    }

    /// Makes `tree` the newest if the newest is still `known`; false when it moved.
    fn install(&self, known: Option<Tree>, tree: Tree, note: Option<Bytes>) -> bool {
        let mut state = self.lock();
        let current = state.newest.as_ref().map(|(t, _)| *t);
        if current != known {
            return false;
        }
        if current != Some(tree) {
            let Some(note) = note else {
                // The newest tree is the known one: nothing to install.
                return true;
            };
            state.newest = Some((tree, note));
        }
        true
    }

    /// Writes the newest tree to `latest` (temp file and rename), when it grew since the last
    /// write.
    async fn persist(&self) {
        let mut written = self.persisted.lock().await;
        let Some((tree, note)) = self.lock().newest.clone() else {
            return;
        };
        if tree.n <= *written {
            return;
        }
        let path = self.dir.join("latest");
        let tmp = self.dir.join(format!(".latest.{}", std::process::id()));
        let result = async {
            tokio::fs::write(&tmp, &note).await?;
            tokio::fs::rename(&tmp, &path).await
        }
        .await;
        match result {
            Ok(()) => *written = tree.n,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot keep the checksum database's newest tree");
            }
        }
    }

    /// Halts admission after misbehavior `why`: remembered, and marked on disk so a restart
    /// does not forget it. Returns the message every later verification fails with.
    async fn halt(&self, why: &str) -> String {
        let path = self.dir.join(HALT_FILE);
        let message = halted_message(&self.name, why, &path);
        self.lock().halted = Some(message.clone());
        tracing::error!(db = %self.name, error = why, mark = %path.display(),
            "checksum database misbehaved: no new version is admitted until an operator checks it and removes the mark");
        if let Err(e) = tokio::fs::write(&path, format!("{why}\n")).await {
            tracing::error!(path = %path.display(), error = %e, "cannot write the checksum database's misbehavior mark");
        }
        message
    }

    /// A lookup answer, fetched or reused (for `LOOKUP_TTL`).
    async fn get_lookup(&self, rest: &str, source: &dyn Source) -> Result<Bytes, FetchError> {
        if let Some(hit) = self.remembered_lookup(rest) {
            return Ok(hit);
        }
        let body = source.get(rest).await?;
        let mut lookups = self.lookups.lock().unwrap_or_else(|p| p.into_inner());
        if lookups.len() >= 50_000 {
            let now = Instant::now();
            lookups.retain(|_, (t, _)| now.duration_since(*t) < LOOKUP_TTL);
        }
        lookups.insert(rest.to_owned(), (Instant::now(), body.clone()));
        Ok(body)
    }

    fn remembered_lookup(&self, rest: &str) -> Option<Bytes> {
        let lookups = self.lookups.lock().unwrap_or_else(|p| p.into_inner());
        lookups
            .get(rest)
            .filter(|(t, _)| t.elapsed() < LOOKUP_TTL)
            .map(|(_, b)| b.clone())
    }

    /// A tile's data: from the cache (a partial tile may be cut from its full tile), else
    /// fetched; a partial tile the upstream no longer serves is cut from the full one, as the
    /// go command does.
    async fn get_tile(&self, t: Tile, source: &dyn Source) -> Result<Bytes, FetchError> {
        if let Some(hit) = self.cached_tile(t) {
            return Ok(hit);
        }
        match source.get(&t.path()).await {
            Ok(data) => Ok(data),
            Err(FetchError::NotFound { .. }) if t.w < 1 << t.h => {
                let full = Tile { w: 1 << t.h, ..t };
                let data = source.get(&full.path()).await?;
                let want = t.w as usize * super::tlog::HASH_SIZE;
                if data.len() < want {
                    return Err(FetchError::Failed {
                        host: self.name.clone(),
                        message: format!("tile {} is {} bytes", full.path(), data.len()),
                    });
                }
                Ok(data.slice(..want))
            }
            Err(e) => Err(e),
        }
    }

    fn cached_tile(&self, t: Tile) -> Option<Bytes> {
        if let Some(hit) = self.tiles.get(&t) {
            return Some(hit);
        }
        let full = self.tiles.get(&Tile { w: 1 << t.h, ..t })?;
        Some(full.slice(..t.w as usize * super::tlog::HASH_SIZE))
    }

    /// A client's request for `<rest>` under `/sumdb/<name>/`: lookups and tiles come from
    /// the cache the verifier uses, full tiles are kept, everything else is passed through.
    pub async fn serve(&self, rest: &str, source: &dyn Source) -> Result<Bytes, FetchError> {
        if rest.starts_with("lookup/") {
            return self.get_lookup(rest, source).await;
        }
        if let Some(t) = rest.strip_prefix("tile/").and_then(|_| Tile::parse(rest))
            && t.l >= 0
        {
            if let Some(hit) = self.cached_tile(t) {
                return Ok(hit);
            }
            let data = source.get(rest).await?;
            if t.w == 1 << t.h && data.len() == t.w as usize * super::tlog::HASH_SIZE {
                self.tiles.insert(t, data.clone());
            }
            return Ok(data);
        }
        source.get(rest).await
    }
}

/// What a lookup answer claims, unverified: its record id and the size of the tree it is
/// signed over (to decide whether to fetch the latest tree first, and which tiles to fetch).
fn claimed(answer: &[u8]) -> Option<(i64, i64)> {
    let (id, _, signed) = super::tlog::parse_record(answer).ok()?;
    let text = std::str::from_utf8(signed).ok()?;
    let body = &text[..text.find("\n\n")? + 1];
    Some((id, parse_tree(body.as_bytes()).ok()?.n))
}

fn halted_message(name: &str, why: &str, mark: &std::path::Path) -> String {
    format!(
        "checksum database {name} misbehaved ({why}); no new version is admitted until an \
         operator checks it and removes {}",
        mark.display()
    )
}

/// Tiles for one check: this check's downloads, then the cache; the rest is noted as missing.
struct Reader<'a> {
    db: &'a Gosumdb,
    fetched: &'a HashMap<Tile, Bytes>,
    missing: Vec<Tile>,
}

impl TileReader for Reader<'_> {
    fn height(&self) -> u32 {
        TILE_HEIGHT
    }

    fn read_tiles(&mut self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, String> {
        let mut out = Vec::with_capacity(tiles.len());
        for &t in tiles {
            match self
                .fetched
                .get(&t)
                .cloned()
                .or_else(|| self.db.cached_tile(t))
            {
                Some(d) => out.push(d.to_vec()),
                None => self.missing.push(t),
            }
        }
        if self.missing.is_empty() {
            Ok(out)
        } else {
            Err(format!("{} tiles not read yet", self.missing.len()))
        }
    }

    fn save_tiles(&mut self, tiles: &[Tile], data: &[Vec<u8>]) {
        for (t, d) in tiles.iter().zip(data) {
            if self.db.tiles.get(t).is_none() {
                self.db.tiles.insert(*t, Bytes::copy_from_slice(d));
            }
        }
    }
}

#[cfg(test)]
mod tests;
