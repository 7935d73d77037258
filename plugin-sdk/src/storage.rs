//! Storage backends: where a route's artifacts live.
//!
//! A storage plugin never touches an artifact's bytes. modgate asks it *where* an artifact is
//! for what it is about to do (get, head, put, delete) and the plugin answers with a [`Plan`]: a
//! file under a directory granted in `grants.dirs`, an HTTP request (for example a presigned
//! object-store URL) to a host in `grants.hosts`, small inline bytes, or not found. modgate
//! carries the plan out with its own I/O, streams zips, writes `.info` last to commit a version
//! and never replaces an artifact that exists.
//!
//! ```no_run
//! use modgate_plugin_sdk::storage::{
//!     export_storage, Artifact, Listing, Located, Operation, Plan, Storage, StorageError,
//! };
//!
//! /// A GOPROXY tree under /srv/goproxy (granted with `grants.dirs = ["/srv/goproxy"]`).
//! struct Tree;
//!
//! impl Storage for Tree {
//!     fn locate(artifact: &Artifact, _op: Operation) -> Result<Located, StorageError> {
//!         Ok(Located::forever(Plan::File(artifact.path_in("/srv/goproxy"))))
//!     }
//!
//!     fn list_versions(module: &str, _cursor: Option<&str>) -> Result<Listing, StorageError> {
//!         Ok(Listing::Directory(format!("/srv/goproxy/{module}/@v")))
//!     }
//! }
//!
//! export_storage!(Tree);
//! # fn main() {}
//! ```

pub use crate::bindings::storage::modgate::plugin::storage_types::{
    Artifact, ArtifactKind, Error as StorageError, Finished, HttpPlan, HttpRequest, ListPage,
    Listing, Located, Operation, PartsPlan, Plan, Upload,
};
pub use crate::export_storage;

/// A storage backend. Implement it on a unit struct and export it with [`export_storage!`].
///
/// Module paths and versions arrive escaped as in a GOPROXY URL (`github.com/!azure/x`,
/// `v1.0.0-!r!c1`) and already validated by the host; they are safe to join into file and
/// object names as they are.
pub trait Storage {
    /// Where `artifact` is, for `op`.
    fn locate(artifact: &Artifact, op: Operation) -> Result<Located, StorageError>;

    /// Where the committed versions of `module` are listed (a `@v` directory, or pages of
    /// versions; `cursor` is the previous page's).
    fn list_versions(module: &str, cursor: Option<&str>) -> Result<Listing, StorageError>;

    /// How to write the zip `artifact` of `size` bytes. The default: in one go, where
    /// `locate(artifact, put)` says.
    fn begin_upload(artifact: &Artifact, size: u64) -> Result<Upload, StorageError> {
        let _ = size;
        Self::locate(artifact, Operation::Put).map(|located| Upload::Whole(located.plan))
    }

    /// Complete a multipart upload begun by [`Storage::begin_upload`]. The default refuses:
    /// a backend that never answers [`Upload::Parts`] is never asked.
    fn finish_upload(
        artifact: &Artifact,
        upload_id: &str,
        etags: &[String],
    ) -> Result<Finished, StorageError> {
        let _ = (artifact, upload_id, etags);
        Err(StorageError::Invalid(
            "this backend does not upload in parts".into(),
        ))
    }

    /// Drop a multipart upload. The default refuses, as [`Storage::finish_upload`].
    fn abort_upload(artifact: &Artifact, upload_id: &str) -> Result<(), StorageError> {
        let _ = (artifact, upload_id);
        Err(StorageError::Invalid(
            "this backend does not upload in parts".into(),
        ))
    }
}

impl ArtifactKind {
    /// The file extension, as in a GOPROXY tree (`info`, `mod`, `zip`, `ziphash`).
    pub fn extension(self) -> &'static str {
        match self {
            ArtifactKind::Info => "info",
            ArtifactKind::Mod => "mod",
            ArtifactKind::Zip => "zip",
            ArtifactKind::Ziphash => "ziphash",
        }
    }
}

impl Artifact {
    /// Where the artifact is in a GOPROXY tree: `<module>/@v/<version>.<extension>`.
    pub fn key(&self) -> String {
        format!(
            "{}/@v/{}.{}",
            self.module,
            self.version,
            self.kind.extension()
        )
    }

    /// Where the artifact is in a GOPROXY tree rooted at `root` (no trailing slash).
    pub fn path_in(&self, root: &str) -> String {
        format!("{root}/{}", self.key())
    }
}

impl Located {
    /// `plan`, reusable for as long as the configuration stands (a file path in a fixed tree).
    pub fn forever(plan: Plan) -> Self {
        Located {
            plan,
            reuse_ms: u32::MAX,
        }
    }

    /// `plan`, to be asked for again every time.
    pub fn once(plan: Plan) -> Self {
        Located { plan, reuse_ms: 0 }
    }
}

/// Exports a type implementing [`Storage`] as the plugin's `storage` world.
#[macro_export]
macro_rules! export_storage {
    ($ty:ident) => {
        impl $crate::bindings::storage::Guest for $ty {
            fn locate(
                artifact: $crate::storage::Artifact,
                op: $crate::storage::Operation,
            ) -> Result<$crate::storage::Located, $crate::storage::StorageError> {
                <$ty as $crate::storage::Storage>::locate(&artifact, op)
            }
            fn list_versions(
                module: String,
                cursor: Option<String>,
            ) -> Result<$crate::storage::Listing, $crate::storage::StorageError> {
                <$ty as $crate::storage::Storage>::list_versions(&module, cursor.as_deref())
            }
            fn begin_upload(
                artifact: $crate::storage::Artifact,
                size: u64,
            ) -> Result<$crate::storage::Upload, $crate::storage::StorageError> {
                <$ty as $crate::storage::Storage>::begin_upload(&artifact, size)
            }
            fn finish_upload(
                artifact: $crate::storage::Artifact,
                upload_id: String,
                etags: Vec<String>,
            ) -> Result<$crate::storage::Finished, $crate::storage::StorageError> {
                <$ty as $crate::storage::Storage>::finish_upload(&artifact, &upload_id, &etags)
            }
            fn abort_upload(
                artifact: $crate::storage::Artifact,
                upload_id: String,
            ) -> Result<(), $crate::storage::StorageError> {
                <$ty as $crate::storage::Storage>::abort_upload(&artifact, &upload_id)
            }
        }
        $crate::bindings::storage::export!($ty with_types_in $crate::bindings::storage);
    };
}
