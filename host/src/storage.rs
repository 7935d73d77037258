//! Where artifacts live. Every storage backend is a plugin (the `storage` world of
//! `plugin-sdk/wit`; `storage-fs` is the embedded default): asked where an artifact is, it
//! answers with a plan (a file in a granted directory, an HTTP request to a granted host, small
//! inline bytes, or not found), and [`Store`] carries the plan out with the host's own I/O. No
//! artifact's bytes cross into the sandbox.
//!
//! Invariants, kept by [`Store`] whatever the plugin:
//! - Every plan is checked against the plugin's grants before anything is done with it
//!   ([`plan::Grants`]); a plan the plugin lets the host reuse is remembered, so a warm request
//!   does not call the sandbox.
//! - Every file artifact is written to a temporary name beside its final name, fsynced, and
//!   renamed: a reader sees the whole file or nothing.
//! - A version is committed by writing `.info` last, after `.mod`, `.zip` and `.ziphash`; the
//!   storage's version list only counts versions whose `.info` exists.
//! - Versioned artifacts are immutable: an existing one is never rewritten.

pub mod files;
pub mod plan;
pub mod remote;
pub mod verify;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use crate::error::Error;
use crate::goproxy::escape::escape_version;
use crate::goproxy::path::ModulePath;
use crate::plugin::storage::{self as wit, Listing, Operation, StorageAnswer, StorageCall};
use crate::plugin::{PluginError, PluginId, PluginSet};

use files::{is_absent, parent, persist, temp_file};
use plan::{Checked, Grants, PlanCache};
use remote::{Outcome, Remote};

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

    fn wit(self) -> wit::ArtifactKind {
        match self {
            ArtifactKind::Info => wit::ArtifactKind::Info,
            ArtifactKind::Mod => wit::ArtifactKind::Mod,
            ArtifactKind::Zip => wit::ArtifactKind::Zip,
            ArtifactKind::ZipHash => wit::ArtifactKind::Ziphash,
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
    /// An object store's answer, its body still to be read, of `len` bytes.
    Remote {
        body: hyper::body::Incoming,
        len: u64,
    },
}

impl Artifact {
    /// The artifact's length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Artifact::File { len, .. } | Artifact::Remote { len, .. } => *len,
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

/// Pages of a version listing the host follows before it calls the listing endless.
const MAX_LIST_PAGES: usize = 10_000;

/// The host side of a storage backend: asks its plugin where artifacts are, and opens, writes
/// and commits them with the host's own I/O.
pub struct Store {
    name: String,
    plugins: Arc<PluginSet>,
    plugin: PluginId,
    grants: Grants,
    plans: PlanCache,
    memory: Option<Arc<MemoryCache>>,
    remote: Remote,
}

impl Store {
    /// The store `[storage.NAME]` whose backend is plugin `plugin` of `plugins`, remembering
    /// up to `plan_entries` plans. Its granted directories are created when missing, and
    /// temporaries a killed process left in them are swept in the background.
    pub fn new(
        name: &str,
        plugins: Arc<PluginSet>,
        plugin: PluginId,
        memory: Option<Arc<MemoryCache>>,
        remote: Remote,
        plan_entries: usize,
    ) -> Result<Self, Error> {
        let grants = Grants::new(plugins.granted_dirs(plugin), plugins.granted_hosts(plugin))
            .map_err(|e| Error::storage(name, e))?;
        let dirs: Vec<PathBuf> = grants.dirs().map(PathBuf::from).collect();
        if !dirs.is_empty() {
            std::thread::spawn(move || {
                for dir in dirs {
                    let removed = files::sweep_temporaries(&dir, files::STALE_TEMPORARY);
                    if removed > 0 {
                        tracing::info!(root = %dir.display(), removed, "removed stale temporary files");
                    }
                }
            });
        }
        Ok(Self {
            name: name.to_owned(),
            plugins,
            plugin,
            grants,
            plans: PlanCache::new(plan_entries),
            memory,
            remote,
        })
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

    /// A failed plugin call, or a plan the host refused, as the request's error: 503 naming
    /// the plugin.
    fn plugin_err(&self, error: PluginError) -> Error {
        Error::Plugin {
            phase: "storage",
            error,
        }
    }

    fn refused(&self, reason: String) -> Error {
        tracing::warn!(storage = %self.name, plugin = self.plugins.name(self.plugin), "storage plan refused: {reason}");
        self.plugin_err(PluginError::BadOutput {
            plugin: self.plugins.name(self.plugin).to_owned(),
            reason,
        })
    }

    async fn call(&self, call: StorageCall) -> Result<StorageAnswer, Error> {
        self.plugins
            .storage(self.plugin, call)
            .await
            .map_err(|e| self.plugin_err(e))
    }

    fn wit_artifact(key: ArtifactKey<'_>) -> Result<wit::Artifact, Error> {
        let version = escape_version(key.version)
            .map_err(|e| Error::BadRequest(format!("version {:?}: {e}", key.version)))?;
        Ok(wit::Artifact {
            module: key.module.escaped().to_owned(),
            version,
            kind: key.kind.wit(),
        })
    }

    /// Where `key` is for `op`: a plan remembered, or the plugin's answer checked against its
    /// grants (and remembered when the plugin allows).
    async fn locate(&self, key: ArtifactKey<'_>, op: Operation) -> Result<Arc<Checked>, Error> {
        let op_name = match op {
            Operation::Get => "get",
            Operation::Head => "head",
            Operation::Put => "put",
            Operation::Delete => "delete",
        };
        let cache_key = [
            key.module.escaped(),
            key.version,
            key.kind.extension(),
            op_name,
        ]
        .join("\0");
        if let Some(plan) = self.plans.get(&cache_key) {
            return Ok(plan);
        }
        let answer = self
            .call(StorageCall::Locate(Self::wit_artifact(key)?, op))
            .await?;
        let StorageAnswer::Located(located) = answer else {
            return Err(self.refused("answered another call".into()));
        };
        let checked = self
            .grants
            .check(located.plan, op, key.kind == ArtifactKind::Zip)
            .map_err(|reason| self.refused(reason))?;
        let checked = Arc::new(checked);
        self.plans.put(cache_key, &checked, located.reuse_ms);
        Ok(checked)
    }

    /// Carries out an HTTP plan.
    async fn send(
        &self,
        plan: &wit::HttpPlan,
        body: remote::Body,
        extra: &[(http::HeaderName, http::HeaderValue)],
        timeout: std::time::Duration,
    ) -> Result<Outcome, Error> {
        self.remote
            .send(plan, body, extra, timeout)
            .await
            .map_err(|e| self.err(e))
    }

    /// Carries out a PUT plan with `body` of `len` bytes: whether this put stored the object
    /// (`false`: someone else had written it first).
    async fn put(
        &self,
        plan: &wit::HttpPlan,
        body: remote::Body,
        len: u64,
        timeout: std::time::Duration,
    ) -> Result<bool, Error> {
        let extra = [remote::content_length(len), remote::octet_stream()];
        match self.send(plan, body, &extra, timeout).await? {
            Outcome::Ok(_) => Ok(true),
            Outcome::Exists => Ok(false),
            Outcome::NotFound => Err(self.err(format_args!(
                "{}: answered a put with a status the plan calls `not-found`",
                remote::describe(&plan.request)
            ))),
        }
    }

    /// A GET plan's answer: the response when found.
    async fn get(
        &self,
        plan: &wit::HttpPlan,
    ) -> Result<Option<http::Response<hyper::body::Incoming>>, Error> {
        match self
            .send(plan, remote::empty(), &[], remote::SMALL_TIMEOUT)
            .await?
        {
            Outcome::Ok(response) => Ok(Some(response)),
            Outcome::NotFound => Ok(None),
            Outcome::Exists => Err(self.err(format_args!(
                "{}: answered a get with a status the plan calls `exists`",
                remote::describe(&plan.request)
            ))),
        }
    }

    /// Opens `key` for reading; `Ok(None)` when it is not stored.
    pub async fn open(&self, key: ArtifactKey<'_>) -> Result<Option<Artifact>, Error> {
        let plan = self.locate(key, Operation::Get).await?;
        match &*plan {
            Checked::Inline(bytes) => Ok(Some(Artifact::Bytes(bytes.clone()))),
            Checked::NotFound => Ok(None),
            Checked::Http(http) => {
                let Some(response) = self.get(http).await? else {
                    return Ok(None);
                };
                let len = response
                    .headers()
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| {
                        self.err(format_args!(
                            "{}: answered without a content-length",
                            remote::describe(&http.request)
                        ))
                    })?;
                Ok(Some(Artifact::Remote {
                    body: response.into_body(),
                    len,
                }))
            }
            Checked::File(path) => {
                let path = path.clone();
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
        let plan = self.locate(key, Operation::Get).await?;
        let found = match &*plan {
            Checked::Inline(bytes) => Some(bytes.clone()),
            Checked::NotFound => None,
            Checked::Http(http) => match self.get(http).await? {
                None => None,
                Some(response) => Some(
                    remote::read_whole(response, remote::SMALL_LIMIT)
                        .await
                        .map_err(|e| {
                            self.err(format_args!("{}: {e}", remote::describe(&http.request)))
                        })?,
                ),
            },
            Checked::File(path) => match tokio::fs::read(path).await {
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
        let plan = self.locate(key, Operation::Head).await?;
        match &*plan {
            Checked::Inline(_) => Ok(true),
            Checked::NotFound => Ok(false),
            Checked::Http(http) => match self
                .send(http, remote::empty(), &[], remote::SMALL_TIMEOUT)
                .await?
            {
                Outcome::Ok(_) => Ok(true),
                Outcome::NotFound => Ok(false),
                Outcome::Exists => Err(self.err(format_args!(
                    "{}: answered a head with a status the plan calls `exists`",
                    remote::describe(&http.request)
                ))),
            },
            Checked::File(path) => Ok(tokio::fs::try_exists(path).await.unwrap_or(false)),
        }
    }

    /// A URL a client may fetch `key` from itself (`head`: ask about it with HEAD): the
    /// storage's plan when it is a request that needs no headers of its own (a presigned URL,
    /// signed for that method); `None` otherwise (a file, inline bytes).
    pub async fn direct_url(
        &self,
        key: ArtifactKey<'_>,
        head: bool,
    ) -> Result<Option<String>, Error> {
        let (op, method) = if head {
            (Operation::Head, "HEAD")
        } else {
            (Operation::Get, "GET")
        };
        let plan = self.locate(key, op).await?;
        Ok(match &*plan {
            Checked::Http(http)
                if http.request.method == method && http.request.headers.is_empty() =>
            {
                Some(http.request.url.clone())
            }
            _ => None,
        })
    }

    /// Stores a small artifact atomically: a file by temp + fsync + rename, an object by a
    /// conditional put. An existing one is kept.
    pub async fn put_small(&self, key: ArtifactKey<'_>, data: &[u8]) -> Result<(), Error> {
        let plan = self.locate(key, Operation::Put).await?;
        let path = match &*plan {
            Checked::File(path) => path,
            Checked::Http(http) => {
                let body = remote::bytes(Bytes::copy_from_slice(data));
                let len = data.len() as u64;
                // Only what this put stored is known to be what storage holds.
                if self.put(http, body, len, remote::SMALL_TIMEOUT).await? {
                    self.remember(key, &Bytes::copy_from_slice(data));
                }
                return Ok(());
            }
            Checked::Inline(_) | Checked::NotFound => {
                return Err(self.refused("no place to put an artifact".into()));
            }
        };
        let dir = parent(path).map_err(|e| self.err(e))?;
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
        if persist(tmp_path, path).map_err(|e| self.err(e))? {
            self.remember(key, &Bytes::copy_from_slice(data));
        }
        Ok(())
    }

    /// A temporary file for the host to download `module@version`'s zip into: beside its final
    /// place when that is a file, so committing it is a rename, else in the system's temporary
    /// directory (`TMPDIR`). Dropping the returned path removes the file, so an abandoned
    /// download leaves nothing.
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
        let plan = self.locate(key, Operation::Put).await?;
        let dir = match &*plan {
            Checked::File(path) => parent(path).map_err(|e| self.err(e))?.to_path_buf(),
            Checked::Http(_) => std::env::temp_dir(),
            Checked::Inline(_) | Checked::NotFound => {
                return Err(self.refused("no place to put the zip".into()));
            }
        };
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
        // Everything before `.info` at once (each write is synced on its own); `.info` last.
        let StagedVersion {
            zip: zip_file,
            zip_hash,
            go_mod,
            info,
            ..
        } = staged;
        let go_mod = async {
            if let Some(go_mod) = &go_mod
                && !self.contains(key(ArtifactKind::Mod)).await?
            {
                self.put_small(key(ArtifactKind::Mod), go_mod).await?;
            }
            Ok::<_, Error>(())
        };
        let zip_hash = self.put_small(key(ArtifactKind::ZipHash), zip_hash.as_bytes());
        let zip = self.commit_zip(key(ArtifactKind::Zip), zip_file);
        tokio::try_join!(go_mod, zip_hash, zip)?;
        self.put_small(key(ArtifactKind::Info), &info).await
    }

    /// Writes a staged version's zip where the plugin says (a file, one request or parts).
    async fn commit_zip(
        &self,
        zip: ArtifactKey<'_>,
        file: tempfile::TempPath,
    ) -> Result<(), Error> {
        let size = std::fs::metadata(&file)
            .map_err(|e| self.err(format_args!("stat {}: {e}", file.display())))?
            .len();
        let upload = self
            .call(StorageCall::BeginUpload(Self::wit_artifact(zip)?, size))
            .await?;
        let plan = match upload {
            StorageAnswer::Upload(wit::Upload::Whole(plan)) => self
                .grants
                .check(plan, Operation::Put, true)
                .map_err(|reason| self.refused(reason))?,
            StorageAnswer::Upload(wit::Upload::Parts(parts)) => {
                return self.upload_parts(zip, &file, size, parts).await;
            }
            _ => return Err(self.refused("answered another call".into())),
        };
        match plan {
            Checked::File(path) => {
                let dir = parent(&path).map_err(|e| self.err(e))?;
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| self.err(format_args!("create {}: {e}", dir.display())))?;
                let target = path.clone();
                tokio::task::spawn_blocking(move || persist(file, &target))
                    .await?
                    .map_err(|e| self.err(e))?;
            }
            Checked::Http(http) => {
                let body = remote::file_part(file.to_path_buf(), 0, size);
                self.put(&http, body, size, zip_timeout(size)).await?;
            }
            Checked::Inline(_) | Checked::NotFound => {
                return Err(self.refused("no place to put the zip".into()));
            }
        }
        Ok(())
    }

    /// Sends a staged zip in the parts the plugin planned, then has the plugin complete the
    /// upload (or drop it when a part fails).
    async fn upload_parts(
        &self,
        zip: ArtifactKey<'_>,
        staged: &std::path::Path,
        size: u64,
        parts: wit::PartsPlan,
    ) -> Result<(), Error> {
        let needed = size.div_ceil(parts.part_size).max(1);
        if needed != parts.parts.len() as u64 {
            return Err(self.refused(format!(
                "{} parts of {} bytes for a zip of {size} bytes",
                parts.parts.len(),
                parts.part_size
            )));
        }
        for request in &parts.parts {
            self.grants
                .check_url(&request.url)
                .map_err(|reason| self.refused(reason))?;
        }
        let mut etags = Vec::with_capacity(parts.parts.len());
        let mut failed = None;
        for (i, request) in parts.parts.iter().enumerate() {
            let start = i as u64 * parts.part_size;
            let len = parts.part_size.min(size - start);
            let body = remote::file_part(staged.to_path_buf(), start, len);
            match self
                .remote
                .send_part(request, body, len, zip_timeout(len))
                .await
            {
                Ok(etag) => etags.push(etag),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let artifact = Self::wit_artifact(zip)?;
        if let Some(e) = failed {
            let abort = StorageCall::AbortUpload {
                artifact,
                upload_id: parts.upload_id,
            };
            if let Err(abort_error) = self.call(abort).await {
                tracing::warn!(storage = %self.name, "dropping a failed upload: {abort_error}");
            }
            return Err(self.err(e));
        }
        let finish = StorageCall::FinishUpload {
            artifact: artifact.clone(),
            upload_id: parts.upload_id.clone(),
            etags,
        };
        let finished = match self.call(finish).await {
            Ok(StorageAnswer::Finished(_)) => return Ok(()),
            Ok(_) => self.refused("answered another call".into()),
            Err(e) => e,
        };
        // Parts of an upload that was not completed would stay in the bucket.
        let abort = StorageCall::AbortUpload {
            artifact,
            upload_id: parts.upload_id,
        };
        if let Err(abort_error) = self.call(abort).await {
            tracing::warn!(storage = %self.name, "dropping an unfinished upload: {abort_error}");
        }
        Err(finished)
    }

    /// The committed versions of `module`, following the plugin's pages to the end.
    pub async fn committed_versions(&self, module: &ModulePath) -> Result<Vec<String>, Error> {
        let mut versions = Vec::new();
        let mut cursor = None;
        for _ in 0..MAX_LIST_PAGES {
            let answer = self
                .call(StorageCall::List {
                    module: module.escaped().to_owned(),
                    cursor: cursor.take(),
                })
                .await?;
            let StorageAnswer::Listing(listing) = answer else {
                return Err(self.refused("answered another call".into()));
            };
            match listing {
                Listing::Directory(dir) => {
                    let dir = self
                        .grants
                        .check_path(&dir)
                        .map_err(|reason| self.refused(reason))?;
                    // A directory scan blocks: keep it off the async workers.
                    let listed = dir.clone();
                    let found = tokio::task::spawn_blocking(move || files::versions_in(&listed))
                        .await?
                        .map_err(|e| self.err(format_args!("list {}: {e}", dir.display())))?;
                    versions.extend(found);
                    return Ok(versions);
                }
                Listing::Page(page) => {
                    versions.extend(page.versions);
                    match page.cursor {
                        None => return Ok(versions),
                        Some(next) => cursor = Some(next),
                    }
                }
            }
        }
        Err(self.refused(format!("a listing of more than {MAX_LIST_PAGES} pages")))
    }

    /// Whether the backend is usable: its plugin is healthy and its granted directories exist.
    pub fn ready(&self) -> bool {
        self.plugins.is_healthy(self.plugin) && self.grants.dirs().all(std::path::Path::is_dir)
    }
}

/// How long a zip transfer of `len` bytes may take: the small timeout plus 1 MiB/s.
fn zip_timeout(len: u64) -> std::time::Duration {
    remote::SMALL_TIMEOUT + std::time::Duration::from_secs(len >> 20)
}

/// Opens every `[storage.NAME]` of `config`, whose plugins are in `plugins`, sharing `memory`
/// for small-artifact copies.
pub fn open_stores(
    config: &crate::config::Config,
    memory: Option<Arc<MemoryCache>>,
    plugins: &Arc<PluginSet>,
) -> Result<std::collections::HashMap<String, Arc<Store>>, Error> {
    let mut stores = std::collections::HashMap::new();
    let remote = Remote::new();
    for (name, storage) in &config.storage {
        let plugin_name = storage.plugin(name);
        let id = plugins.find(&plugin_name).ok_or_else(|| {
            Error::Internal(format!(
                "{}: storage {name}: plugin {plugin_name:?} is not loaded",
                config.origin
            ))
        })?;
        stores.insert(
            name.clone(),
            Arc::new(Store::new(
                name,
                Arc::clone(plugins),
                id,
                memory.clone(),
                remote.clone(),
                config.cache.plan_entries,
            )?),
        );
    }
    Ok(stores)
}

/// The stores of `config` outside a server (`modgate publish`): a plugin engine of its own,
/// with only the storage plugins loaded.
pub fn open_stores_alone(
    config: &crate::config::Config,
) -> Result<std::collections::HashMap<String, Arc<Store>>, Error> {
    let engine = crate::plugin::PluginEngine::new(crate::plugin::EngineSettings {
        max_instances: 16,
        ..crate::plugin::EngineSettings::default()
    })
    .map_err(|e| Error::Internal(format!("cannot start the plugin engine: {e}")))?;
    let wanted: std::collections::BTreeSet<String> = config
        .storage
        .iter()
        .map(|(name, storage)| storage.plugin(name))
        .collect();
    let specs: Vec<_> = config
        .plugins
        .iter()
        .filter(|p| wanted.contains(&p.name))
        .cloned()
        .collect();
    let set =
        PluginSet::build(&specs, &engine).map_err(|e| Error::Internal(format!("plugins: {e}")))?;
    open_stores(config, None, &Arc::new(set))
}
