//! Where artifacts live. A [`Backend`] only *plans*: it says where a key is (a file in a granted
//! directory, a URL, or small inline bytes) and the host ([`Store`]) moves the bytes with its own
//! I/O. That is the seam where storage plugins plug in later without ever handling a 500 MB zip.
//!
//! Invariants, kept by [`Store`]:
//! - Every artifact is written to a temporary name beside its final name, fsynced, and renamed:
//!   a reader sees the whole file or nothing.
//! - A version is committed by writing `.info` last, after `.mod`, `.zip` and `.ziphash`; the
//!   storage's version list only counts versions whose `.info` exists.
//! - Versioned artifacts are immutable: an existing final file is never rewritten.

pub mod fs;
pub mod verify;

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use crate::error::Error;
use crate::goproxy::path::ModulePath;

/// Kinds of stored artifacts of one module version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArtifactKind {
    /// `<v>.info`: the commit marker of a version.
    Info,
    /// `<v>.mod`
    Mod,
    /// `<v>.zip`
    Zip,
    /// `<v>.ziphash`: the zip's `h1:` hash, computed when it was checked (as in the go command's cache).
    ZipHash,
}

impl ArtifactKind {
    /// The file extension, as in a GOPROXY tree.
    pub fn extension(self) -> &'static str {
        match self {
            ArtifactKind::Info => "info",
            ArtifactKind::Mod => "mod",
            ArtifactKind::Zip => "zip",
            ArtifactKind::ZipHash => "ziphash",
        }
    }
}

/// One artifact of one module version. `version` is canonical.
#[derive(Debug, Clone, Copy)]
pub struct ArtifactKey<'a> {
    pub module: &'a ModulePath,
    pub version: &'a str,
    pub kind: ArtifactKind,
}

/// Where to read an artifact from.
#[derive(Debug, Clone)]
pub enum ReadPlan {
    /// A file the host opens; a missing file means a miss.
    File(PathBuf),
    /// Bytes the backend holds itself (small objects); `None` means a miss.
    Inline(Option<Bytes>),
}

/// Where to write an artifact to.
#[derive(Debug, Clone)]
pub enum WritePlan {
    /// The final path of a file; the host writes a temporary file beside it and renames.
    File(PathBuf),
}

/// A storage backend: answers with plans; never moves artifact bytes itself.
pub trait Backend: Send + Sync + 'static {
    /// Where `key` is to be read from.
    fn read_plan(&self, key: ArtifactKey<'_>) -> Result<ReadPlan, Error>;
    /// Where `key` is to be written to.
    fn write_plan(&self, key: ArtifactKey<'_>) -> Result<WritePlan, Error>;
    /// The committed versions of `module` (those with `.info`), in no particular order. Blocking.
    fn committed_versions(&self, module: &ModulePath) -> Result<Vec<String>, Error>;
    /// Whether the backend is usable (for `/readyz`). Blocking.
    fn ready(&self) -> bool;
}

/// An artifact opened for serving.
#[derive(Debug)]
pub enum Artifact {
    /// An open file, with its length and modification time. Read it on the blocking pool.
    File {
        file: std::fs::File,
        len: u64,
        modified: Option<SystemTime>,
    },
    /// Bytes in memory.
    Bytes(Bytes),
}

impl Artifact {
    /// The artifact's length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Artifact::File { len, .. } => *len,
            Artifact::Bytes(b) => b.len() as u64,
        }
    }

    /// Whether the artifact is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A version's artifacts staged for commit: a checked zip already in a temporary file beside its
/// final place (see [`Store::zip_staging`]), its hash, the go.mod when it is not stored yet, and
/// the `.info` that commits it. Only [`verify::verify`] makes one.
#[derive(Debug)]
pub struct StagedVersion {
    pub zip: tempfile::TempPath,
    /// The zip's `h1:` hash, computed from the bytes checked.
    pub zip_hash: String,
    pub go_mod: Option<Bytes>,
    pub info: Bytes,
    /// Files in the zip.
    pub files: usize,
    _verified: verify::Verified,
}

/// A bounded in-memory copy of small immutable artifacts (`.info`, `.mod`, `.ziphash`), shared
/// by all stores. Versioned artifacts never change, so a copy is never stale; it saves a file
/// open per request on the hot path and keeps canonical `.info` answers of versions whose zip
/// is not stored yet (those are not written to storage: `.info` there marks a complete version).
pub struct MemoryCache {
    entries: quick_cache::sync::Cache<String, Bytes, ByteWeighter>,
}

#[derive(Clone)]
struct ByteWeighter;

impl quick_cache::Weighter<String, Bytes> for ByteWeighter {
    fn weight(&self, key: &String, value: &Bytes) -> u64 {
        // Roughly what an entry costs: its bytes plus bookkeeping.
        (key.len() + value.len() + 64) as u64
    }
}

impl MemoryCache {
    /// A cache holding at most about `bytes` bytes.
    pub fn new(bytes: u64) -> Self {
        let items = usize::try_from(bytes / 256).unwrap_or(usize::MAX).max(16);
        Self {
            entries: quick_cache::sync::Cache::with_weighter(items, bytes.max(1), ByteWeighter),
        }
    }
}

/// The host side of a storage backend: opens, writes and commits with the host's own I/O.
pub struct Store {
    name: String,
    backend: std::sync::Arc<dyn Backend>,
    memory: Option<std::sync::Arc<MemoryCache>>,
}

impl Store {
    /// Wraps `backend`, named `name` in the config (`[storage.NAME]`).
    pub fn new(
        name: &str,
        backend: std::sync::Arc<dyn Backend>,
        memory: Option<std::sync::Arc<MemoryCache>>,
    ) -> Self {
        Self {
            name: name.to_owned(),
            backend,
            memory,
        }
    }

    fn memory_key(&self, key: ArtifactKey<'_>) -> Option<(&MemoryCache, String)> {
        let memory = self.memory.as_deref()?;
        if key.kind == ArtifactKind::Zip {
            return None;
        }
        // `join`, not `format!`: the formatting machinery costs more than the lookup.
        let k = [
            self.name.as_str(),
            key.module.escaped(),
            key.version,
            key.kind.extension(),
        ]
        .join("\0");
        Some((memory, k))
    }

    /// Keeps a copy of a small immutable artifact in memory without storing it (a canonical
    /// `.info` whose version is not committed yet).
    pub fn remember(&self, key: ArtifactKey<'_>, data: &Bytes) {
        if let Some((memory, k)) = self.memory_key(key) {
            memory.entries.insert(k, data.clone());
        }
    }

    /// The storage's name in the config.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn err(&self, message: impl std::fmt::Display) -> Error {
        Error::storage(&self.name, message)
    }

    /// Opens `key` for reading; `Ok(None)` when it is not stored.
    pub async fn open(&self, key: ArtifactKey<'_>) -> Result<Option<Artifact>, Error> {
        match self.backend.read_plan(key)? {
            ReadPlan::Inline(bytes) => Ok(bytes.map(Artifact::Bytes)),
            ReadPlan::File(path) => {
                // Open and stat in one trip to the blocking pool.
                let opened = tokio::task::spawn_blocking(move || {
                    let file = std::fs::File::open(&path).map_err(|e| (path.clone(), "open", e))?;
                    let meta = file.metadata().map_err(|e| (path, "stat", e))?;
                    Ok((file, meta))
                })
                .await?;
                match opened {
                    Ok((file, meta)) => Ok(Some(Artifact::File {
                        file,
                        len: meta.len(),
                        modified: meta.modified().ok(),
                    })),
                    Err((_, _, e)) if is_absent(&e) => Ok(None),
                    Err((path, op, e)) => {
                        Err(self.err(format_args!("{op} {}: {e}", path.display())))
                    }
                }
            }
        }
    }

    /// Reads a small artifact (`.info`, `.mod`, `.ziphash`) whole, from memory when a copy is
    /// there; `Ok(None)` when not stored (or remembered).
    pub async fn read_small(&self, key: ArtifactKey<'_>) -> Result<Option<Bytes>, Error> {
        let memory = self.memory_key(key);
        if let Some((memory, k)) = &memory
            && let Some(b) = memory.entries.get(k)
        {
            return Ok(Some(b));
        }
        let found = match self.backend.read_plan(key)? {
            ReadPlan::Inline(bytes) => bytes,
            ReadPlan::File(path) => match tokio::fs::read(&path).await {
                Ok(b) => Some(Bytes::from(b)),
                Err(e) if is_absent(&e) => None,
                Err(e) => return Err(self.err(format_args!("read {}: {e}", path.display()))),
            },
        };
        if let (Some((memory, k)), Some(b)) = (memory, &found) {
            memory.entries.insert(k, b.clone());
        }
        Ok(found)
    }

    /// Whether `key` is stored.
    pub async fn contains(&self, key: ArtifactKey<'_>) -> Result<bool, Error> {
        match self.backend.read_plan(key)? {
            ReadPlan::Inline(bytes) => Ok(bytes.is_some()),
            ReadPlan::File(path) => Ok(tokio::fs::try_exists(&path).await.unwrap_or(false)),
        }
    }

    /// Stores a small artifact atomically (temp + fsync + rename). An existing one is kept.
    pub async fn put_small(&self, key: ArtifactKey<'_>, data: &[u8]) -> Result<(), Error> {
        let WritePlan::File(path) = self.backend.write_plan(key)?;
        let dir = parent(&path).map_err(|e| self.err(e))?;
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| self.err(format_args!("create {}: {e}", dir.display())))?;
        let tmp = temp_file(dir).map_err(|e| self.err(e))?;
        let (std_file, tmp_path) = tmp.into_parts();
        let mut file = tokio::fs::File::from_std(std_file);
        let written = async {
            file.write_all(data).await?;
            file.sync_all().await
        }
        .await;
        written.map_err(|e| self.err(format_args!("write {}: {e}", tmp_path.display())))?;
        drop(file);
        persist(tmp_path, &path).map_err(|e| self.err(e))?;
        self.remember(key, &Bytes::copy_from_slice(data));
        Ok(())
    }

    /// A temporary file beside the final place of `key`'s zip, for the host to download into.
    /// Dropping the returned path removes the file, so an abandoned download leaves nothing.
    pub async fn zip_staging(
        &self,
        module: &ModulePath,
        version: &str,
    ) -> Result<(tokio::fs::File, tempfile::TempPath), Error> {
        let key = ArtifactKey {
            module,
            version,
            kind: ArtifactKind::Zip,
        };
        let WritePlan::File(path) = self.backend.write_plan(key)?;
        let dir = parent(&path).map_err(|e| self.err(e))?.to_path_buf();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| self.err(format_args!("create {}: {e}", dir.display())))?;
        let tmp = temp_file(&dir).map_err(|e| self.err(e))?;
        let (std_file, tmp_path) = tmp.into_parts();
        Ok((tokio::fs::File::from_std(std_file), tmp_path))
    }

    /// Commits a version: its go.mod (unless already stored), the zip (already checked and
    /// synced), its hash, then `.info` last.
    pub async fn commit(
        &self,
        module: &ModulePath,
        version: &str,
        staged: StagedVersion,
    ) -> Result<(), Error> {
        let key = |kind| ArtifactKey {
            module,
            version,
            kind,
        };
        if let Some(go_mod) = &staged.go_mod
            && !self.contains(key(ArtifactKind::Mod)).await?
        {
            self.put_small(key(ArtifactKind::Mod), go_mod).await?;
        }
        self.put_small(key(ArtifactKind::ZipHash), staged.zip_hash.as_bytes())
            .await?;
        let WritePlan::File(zip_path) = self.backend.write_plan(key(ArtifactKind::Zip))?;
        persist(staged.zip, &zip_path).map_err(|e| self.err(e))?;
        self.put_small(key(ArtifactKind::Info), &staged.info).await
    }

    /// The committed versions of `module`.
    pub async fn committed_versions(&self, module: &ModulePath) -> Result<Vec<String>, Error> {
        // The backend may block (a directory scan): keep it off the async workers.
        let backend = self.backend.clone();
        let module = module.clone();
        tokio::task::spawn_blocking(move || backend.committed_versions(&module))
            .await
            .map_err(|e| self.err(format_args!("version scan failed: {e}")))?
    }

    /// Whether the backend is usable.
    pub fn ready(&self) -> bool {
        self.backend.ready()
    }
}

/// Whether an error opening a stored file means "not stored": missing, a path component that
/// is a file (ENOTDIR), or a name too long for the filesystem (ENAMETOOLONG).
fn is_absent(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || matches!(e.raw_os_error(), Some(20 | 36))
}

/// Opens every `[storage.NAME]` of `config`, sharing `memory` for small-artifact copies.
pub fn open_stores(
    config: &crate::config::Config,
    memory: Option<std::sync::Arc<MemoryCache>>,
) -> Result<std::collections::HashMap<String, std::sync::Arc<Store>>, Error> {
    let mut stores = std::collections::HashMap::new();
    for (name, storage) in &config.storage {
        let backend: std::sync::Arc<dyn Backend> = match storage {
            crate::config::StorageConfig::Fs { root } => {
                std::sync::Arc::new(fs::FsBackend::new(name, root)?)
            }
        };
        stores.insert(
            name.clone(),
            std::sync::Arc::new(Store::new(name, backend, memory.clone())),
        );
    }
    Ok(stores)
}

/// A hidden temporary file in `dir`, named `.tmp-…` so it is never mistaken for an artifact.
/// Its mode is 0666 less the process's umask, as any file a program writes: the tree can be
/// served by a static file server running as another user (tempfile's own default, 0600, is
/// for secrets).
fn temp_file(dir: &Path) -> Result<tempfile::NamedTempFile, String> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(|e| format!("create temporary file in {}: {e}", dir.display()))
}

/// Renames a temporary file to its final name unless that already exists (artifacts are
/// immutable: the first complete copy wins, and it is identical by construction).
fn persist(tmp: tempfile::TempPath, path: &Path) -> Result<(), String> {
    if path.exists() {
        return Ok(());
    }
    tmp.persist(path)
        .map(|_| ())
        .map_err(|e| format!("rename to {}: {}", path.display(), e.error))
}

fn parent(path: &Path) -> Result<&Path, String> {
    path.parent()
        .ok_or_else(|| format!("{} has no parent directory", path.display()))
}
