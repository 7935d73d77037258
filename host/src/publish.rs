//! Publishing private module versions: build the zip exactly as the go command would
//! ([`crate::goproxy::zipbuild`]) and commit it to storage like any other version.
//!
//! Versions are immutable: publishing other content under a stored version is refused
//! ([`PublishError::Conflict`]); publishing the same content again changes nothing.

pub mod remote;

use std::io::{Seek, Write};
use std::path::Path;

use bytes::Bytes;

use crate::error::Error;
use crate::goproxy::hash::hash_go_mod;
use crate::goproxy::path::ModulePath;
use crate::goproxy::pseudo::Timestamp;
use crate::goproxy::zipbuild::{self, BuildError, BuiltZip};
use crate::goproxy::zipcheck::ZipError;
use crate::storage::verify::{GoMod, verify};
use crate::storage::{ArtifactKey, ArtifactKind, Store};

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// A new version was committed.
    Created(Hashes),
    /// The version was already stored with exactly this content; nothing changed.
    Unchanged(Hashes),
}

/// The `go.sum` hashes of a published version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashes {
    pub zip: String,
    pub go_mod: String,
    pub files: usize,
}

/// Why a publish was refused. Nothing stored changes in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The tree breaks a module zip rule, or the version does not fit the module path. The
    /// build error's message names the module, file and rule; it is the whole message (not a
    /// `source`), so error chains do not print it twice.
    #[error("{reason}")]
    Build { reason: BuildError },
    /// The zip or its go.mod fails the checks every version passes before it is stored
    /// ([`verify`]): x/mod's rules, a go.mod that declares another module, a go.mod in a
    /// `+incompatible` version.
    #[error("{0}")]
    Invalid(ZipError),
    /// The version exists with other content (versions are immutable) → 409.
    #[error(
        "{module}@{version} is already published with other content ({what}: stored {stored}, new {new}); publish a new version instead"
    )]
    Conflict {
        module: String,
        version: String,
        what: &'static str,
        stored: String,
        new: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] Error),
}

/// Builds `dir` as `module@version` and commits it to `store` ([`commit_published`]).
pub async fn publish_dir(
    store: &Store,
    dir: &Path,
    module: &ModulePath,
    version: &str,
) -> Result<Published, PublishError> {
    let (file, tmp) = store.zip_staging(module, version).await?;
    let (dir, m, v) = (dir.to_path_buf(), module.clone(), version.to_owned());
    let mut std_file = file.into_std().await;
    let built = tokio::task::spawn_blocking(move || {
        let built = zipbuild::zip_from_dir(&dir, &m, &v, &mut std_file)?;
        std_file.sync_all().map_err(|e| BuildError::Io {
            context: "syncing the zip".into(),
            source: e,
        })?;
        Ok::<_, BuildError>(built)
    })
    .await
    .map_err(Error::from)?
    .map_err(|reason| PublishError::Build { reason })?;
    commit_published(store, module, version, tmp, Some(&built)).await
}

/// Builds `dir` as `module@version` into `out` (for [`remote::upload`]), calling `progress`
/// with the bytes written so far. Blocking.
pub fn build_to_file(
    dir: &Path,
    module: &ModulePath,
    version: &str,
    out: &mut std::fs::File,
    progress: impl FnMut(u64),
) -> Result<BuiltZip, BuildError> {
    let mut counting = Counting {
        inner: out,
        written: 0,
        progress,
    };
    let built = zipbuild::zip_from_dir(dir, module, version, &mut counting)?;
    counting.flush().map_err(|e| BuildError::Io {
        context: "writing the zip".into(),
        source: e,
    })?;
    Ok(built)
}

/// A writer that reports how far it got.
struct Counting<'a, F: FnMut(u64)> {
    inner: &'a mut std::fs::File,
    written: u64,
    progress: F,
}

impl<F: FnMut(u64)> Write for Counting<'_, F> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        (self.progress)(self.written);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<F: FnMut(u64)> Seek for Counting<'_, F> {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// Commits the zip staged at `zip` (a staging file of `store`) as `module@version`, after the
/// checks every version passes ([`verify`], with the zip's own go.mod, which must declare
/// `module`), unless the version is already stored: then it must be identical. Every way a
/// version is published (`modgate publish`, the upload endpoint) comes through here. `built`:
/// the hashes the zip was built with, which what was read back must match before anything is
/// stored.
pub async fn commit_published(
    store: &Store,
    module: &ModulePath,
    version: &str,
    zip: tempfile::TempPath,
    built: Option<&BuiltZip>,
) -> Result<Published, PublishError> {
    let time = Timestamp::from_system_time(std::time::SystemTime::now())
        .map(|t| t.to_string())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into());
    let info = serde_json::json!({ "Version": version, "Time": time }).to_string();
    let staged = verify(module, version, zip, GoMod::FromZip, Bytes::from(info))
        .await?
        .map_err(PublishError::Invalid)?;
    let hashes = Hashes {
        zip: staged.zip_hash.clone(),
        go_mod: hash_go_mod(staged.go_mod.as_deref().unwrap_or_default()),
        files: staged.files,
    };
    if let Some(built) = built
        && (hashes.zip != built.zip_h1 || hashes.go_mod != built.mod_h1)
    {
        return Err(PublishError::Storage(Error::Internal(format!(
            "{module}@{version}: built with hashes {} {} but reads back as {} {}",
            built.zip_h1, built.mod_h1, hashes.zip, hashes.go_mod
        ))));
    }
    let key = |kind| ArtifactKey {
        module,
        version,
        kind,
    };
    let conflict = |what, stored: String, new: &str| PublishError::Conflict {
        module: module.to_string(),
        version: version.to_owned(),
        what,
        stored,
        new: new.to_owned(),
    };
    if let Some(stored_mod) = store.read_small(key(ArtifactKind::Mod)).await? {
        let stored = hash_go_mod(&stored_mod);
        if stored != hashes.go_mod {
            return Err(conflict("go.mod", stored, &hashes.go_mod));
        }
    }
    if let Some(stored_hash) = store.read_small(key(ArtifactKind::ZipHash)).await? {
        let stored = String::from_utf8_lossy(&stored_hash).trim().to_owned();
        if stored != hashes.zip {
            return Err(conflict("zip", stored, &hashes.zip));
        }
        if store.contains(key(ArtifactKind::Info)).await? {
            return Ok(Published::Unchanged(hashes));
        }
    }
    store.commit(module, version, staged).await?;
    Ok(Published::Created(hashes))
}
