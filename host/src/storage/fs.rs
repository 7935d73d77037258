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
