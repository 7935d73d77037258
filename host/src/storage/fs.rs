//! The built-in filesystem backend (`plugin = "storage-fs"`): the storage root is itself a
//! GOPROXY tree, `<root>/<escaped module>/@v/<escaped version>.<ext>`, so it can also be served
//! by a static file server or used as `GOPROXY=file://<root>`.

use std::io;
use std::path::{Component, Path, PathBuf};

use crate::error::Error;
use crate::goproxy::escape::{escape_version, unescape_version};
use crate::goproxy::path::ModulePath;

use super::{ArtifactKey, Backend, ReadPlan, WritePlan};

/// A GOPROXY tree under `root`.
#[derive(Debug, Clone)]
pub struct FsBackend {
    name: String,
    root: PathBuf,
}

impl FsBackend {
    /// A backend rooted at `root` (created if missing). `name` is the config table's name.
    pub fn new(name: &str, root: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(root).map_err(|e| {
            Error::storage(name, format_args!("create root {}: {e}", root.display()))
        })?;
        // A process killed mid-download leaves `.tmp-*` files behind; they are never served
        // (no request maps to them) but take space. Sweep old ones without delaying start-up.
        let sweep_root = root.to_path_buf();
        std::thread::spawn(move || {
            let removed = sweep_temporaries(&sweep_root, STALE_TEMPORARY);
            if removed > 0 {
                tracing::info!(root = %sweep_root.display(), removed, "removed stale temporary files");
            }
        });
        Ok(Self {
            name: name.to_owned(),
            root: root.to_path_buf(),
        })
    }

    /// The storage root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn module_dir(&self, module: &ModulePath) -> Result<PathBuf, Error> {
        let rel = Path::new(module.escaped());
        // Defence in depth: a validated module path has only normal components, but nothing
        // that could leave the root is ever joined to it.
        if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(Error::Internal(format!(
                "module path {module} does not map to a storage path"
            )));
        }
        Ok(self.root.join(rel).join("@v"))
    }

    fn path(&self, key: ArtifactKey<'_>) -> Result<PathBuf, Error> {
        let version = escape_version(key.version)
            .map_err(|e| Error::BadRequest(format!("version {:?}: {e}", key.version)))?;
        if version.is_empty() || version.starts_with('.') || version.contains(['/', '\\']) {
            return Err(Error::Internal(format!(
                "version {:?} does not map to a storage path",
                key.version
            )));
        }
        Ok(self
            .module_dir(key.module)?
            .join(format!("{version}.{}", key.kind.extension())))
    }
}

/// A temporary file older than this is left over from a process that died: no live download
/// goes this long without writing (upstream requests time out well before).
const STALE_TEMPORARY: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Removes `.tmp-*` files under `root` last modified more than `age` ago; returns how many.
pub fn sweep_temporaries(root: &Path, age: std::time::Duration) -> usize {
    let mut removed = 0;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file()
                && entry.file_name().to_string_lossy().starts_with(".tmp-")
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|e| e > age))
                && std::fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    removed
}

impl Backend for FsBackend {
    fn read_plan(&self, key: ArtifactKey<'_>) -> Result<ReadPlan, Error> {
        self.path(key).map(ReadPlan::File)
    }

    fn write_plan(&self, key: ArtifactKey<'_>) -> Result<WritePlan, Error> {
        self.path(key).map(WritePlan::File)
    }

    fn committed_versions(&self, module: &ModulePath) -> Result<Vec<String>, Error> {
        let dir = self.module_dir(module)?;
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) if e.raw_os_error() == Some(20) => return Ok(Vec::new()),
            Err(e) => {
                return Err(Error::storage(
                    &self.name,
                    format_args!("list {}: {e}", dir.display()),
                ));
            }
        };
        let mut versions = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| {
                Error::storage(&self.name, format_args!("list {}: {e}", dir.display()))
            })?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(escaped) = name.strip_suffix(".info") else {
                continue;
            };
            if escaped.starts_with('.') {
                continue; // a temporary file
            }
            if let Ok(v) = unescape_version(escaped) {
                versions.push(v);
            }
        }
        Ok(versions)
    }

    fn ready(&self) -> bool {
        std::fs::metadata(&self.root).is_ok_and(|m| m.is_dir())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn stale_temporaries_are_swept_and_artifacts_kept() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("example.com/m/@v");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let old = SystemTime::now() - Duration::from_secs(3600);
        for name in [".tmp-old", "v1.0.0.zip", "v1.0.0.info"] {
            let f = std::fs::File::create(dir.join(name)).expect("create");
            f.set_modified(old).expect("set mtime");
        }
        std::fs::File::create(dir.join(".tmp-fresh")).expect("create");
        assert_eq!(sweep_temporaries(root.path(), STALE_TEMPORARY), 1);
        assert!(!dir.join(".tmp-old").exists());
        assert!(dir.join(".tmp-fresh").exists());
        assert!(dir.join("v1.0.0.zip").exists());
    }

    #[test]
    fn committed_versions_come_from_info_files() {
        let root = tempfile::tempdir().expect("tempdir");
        let b = FsBackend::new("t", root.path()).expect("backend");
        let m = ModulePath::parse("example.com/m").expect("path");
        let dir = root.path().join("example.com/m/@v");
        std::fs::create_dir_all(&dir).expect("mkdir");
        for name in [
            "v1.0.0.info",
            "v1.0.0.zip",
            "v1.1.0.mod",
            ".tmp-x.info",
            "v1.2.0.info",
        ] {
            std::fs::write(dir.join(name), "x").expect("write");
        }
        let mut v = b.committed_versions(&m).expect("list");
        v.sort();
        assert_eq!(v, ["v1.0.0", "v1.2.0"]);
        let missing = ModulePath::parse("example.com/none").expect("path");
        assert!(b.committed_versions(&missing).expect("list").is_empty());
    }
}
