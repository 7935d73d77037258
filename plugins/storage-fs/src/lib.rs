//! `storage-fs`: a route's artifacts as a GOPROXY tree in one local directory,
//! `<root>/<escaped module>/@v/<escaped version>.<ext>`, which a static file server or
//! `GOPROXY=file://<root>` can serve as it is. The host writes and reads the files; this plugin
//! only says where they are ([`tree`], tested natively).

pub mod tree;

use std::sync::OnceLock;

use modgate_plugin_sdk::config;
use modgate_plugin_sdk::storage::{
    Artifact, Listing, Located, Operation, Plan, Storage, StorageError, export_storage,
};

struct StorageFs;

/// The tree from the `config` table, parsed once per instance (a reload builds new instances).
fn tree() -> Result<&'static tree::Tree, StorageError> {
    static TREE: OnceLock<Result<tree::Tree, String>> = OnceLock::new();
    TREE.get_or_init(|| {
        let settings: tree::Settings = config::get().map_err(|e| e.to_string())?;
        tree::Tree::new(&settings.root)
    })
    .as_ref()
    .map_err(|e| StorageError::Invalid(format!("storage-fs: {e}")))
}

impl Storage for StorageFs {
    fn locate(artifact: &Artifact, op: Operation) -> Result<Located, StorageError> {
        let _ = op; // one place per artifact, whatever is done with it
        let path = tree()?.path(artifact).map_err(StorageError::Invalid)?;
        Ok(Located::forever(Plan::File(path)))
    }

    fn list_versions(module: &str, _cursor: Option<&str>) -> Result<Listing, StorageError> {
        let dir = tree()?
            .versions_dir(module)
            .map_err(StorageError::Invalid)?;
        Ok(Listing::Directory(dir))
    }
}

export_storage!(StorageFs);
