//! The `storage` world (`plugin-sdk/wit/storage.wit`): one call of a storage plugin
//! ([`PluginSet::storage`]) and the caps on what it answers. Whether a plan stays inside the
//! plugin's grants is checked where it is carried out ([`crate::storage::plan`]), which knows
//! what is about to be done with it.

use std::future::Future;

use wasmtime::Store;

use super::bindings::storage::{Storage, StoragePre};
pub use super::bindings::storage_types::{
    Artifact, ArtifactKind, Error as StorageError, Finished, HttpPlan, HttpRequest, ListPage,
    Listing, Located, Operation, PartsPlan, Plan, Upload,
};
use super::host::State;
use super::{Export, Idle, Loaded, PluginError, PluginId, PluginSet};

/// Caps on a storage plugin's answers; beyond them the answer is [`PluginError::BadOutput`].
pub struct StorageCaps;

impl StorageCaps {
    /// Bytes of an inline plan (small artifacts only; a zip is never inline).
    pub const INLINE: usize = 64 * 1024;
    /// Bytes of a path, a URL or a cursor.
    pub const LOCATION: usize = 8 * 1024;
    /// Headers of one HTTP plan, and bytes of each.
    pub const HEADERS: usize = 64;
    pub const HEADER: usize = 8 * 1024;
    /// Statuses in each of an HTTP plan's lists.
    pub const STATUSES: usize = 16;
    /// Versions in one page of a listing, and bytes of each.
    pub const PAGE: usize = 10_000;
    pub const VERSION: usize = 512;
    /// Parts of a multipart upload (S3's own limit).
    pub const PARTS: usize = 10_000;
    /// Bytes of the plugin's own error message.
    pub const MESSAGE: usize = 1024;
}

/// One call of the `storage` world.
#[derive(Debug, Clone)]
pub enum StorageCall {
    /// `locate(artifact, op)`
    Locate(Artifact, Operation),
    /// `list-versions(module, cursor)`
    List {
        module: String,
        cursor: Option<String>,
    },
    /// `begin-upload(artifact, size)`
    BeginUpload(Artifact, u64),
    /// `finish-upload(artifact, upload-id, etags)`
    FinishUpload {
        artifact: Artifact,
        upload_id: String,
        etags: Vec<String>,
    },
    /// `abort-upload(artifact, upload-id)`
    AbortUpload {
        artifact: Artifact,
        upload_id: String,
    },
}

/// What a storage call answered.
#[derive(Debug, Clone)]
pub enum StorageAnswer {
    Located(Located),
    Listing(Listing),
    Upload(Upload),
    Finished(Finished),
    Aborted,
}

impl PluginSet {
    /// One call of storage plugin `id`. The plugin's own error answer (`error.invalid`,
    /// `error.failed`) is a [`PluginError::Failed`]; a call that traps, times out or answers
    /// past [`StorageCaps`] fails as any plugin call does.
    pub async fn storage(
        &self,
        id: PluginId,
        call: StorageCall,
    ) -> Result<StorageAnswer, PluginError> {
        let plugin = &self.plugins[id.0];
        let (answer, _remembered) = Box::pin(self.call::<Storage>(plugin, call)).await?;
        answer.map_err(|e| {
            let message = match e {
                StorageError::Invalid(m) => format!("cannot serve this: {m}"),
                StorageError::Failed(m) => m,
            };
            PluginError::Failed {
                plugin: plugin.shared.name.clone(),
                message: crate::error::one_line(&message, StorageCaps::MESSAGE)
                    .trim_end()
                    .to_owned(),
            }
        })
    }
}

impl Export for Storage {
    type Input = StorageCall;
    /// The plugin's answer, or the error it answered with.
    type Answer = Result<StorageAnswer, StorageError>;
    type Pre = StoragePre<State>;
    const KIND: &'static str = "storage";

    fn pre(plugin: &Loaded) -> Option<&Self::Pre> {
        plugin.storage.as_ref()
    }

    fn idle(plugin: &Loaded) -> &Idle<Self> {
        &plugin.idle_storage
    }

    fn instantiate<'a>(
        pre: &'a Self::Pre,
        store: &'a mut Store<State>,
    ) -> impl Future<Output = wasmtime::Result<Self>> + Send + 'a {
        pre.instantiate_async(store)
    }

    async fn invoke(
        &self,
        store: &mut Store<State>,
        input: &StorageCall,
    ) -> wasmtime::Result<Self::Answer> {
        Ok(match input {
            StorageCall::Locate(artifact, op) => self
                .call_locate(store, artifact, *op)
                .await?
                .map(StorageAnswer::Located),
            StorageCall::List { module, cursor } => self
                .call_list_versions(store, module, cursor.as_deref())
                .await?
                .map(StorageAnswer::Listing),
            StorageCall::BeginUpload(artifact, size) => self
                .call_begin_upload(store, artifact, *size)
                .await?
                .map(StorageAnswer::Upload),
            StorageCall::FinishUpload {
                artifact,
                upload_id,
                etags,
            } => self
                .call_finish_upload(store, artifact, upload_id, etags)
                .await?
                .map(StorageAnswer::Finished),
            StorageCall::AbortUpload {
                artifact,
                upload_id,
            } => self
                .call_abort_upload(store, artifact, upload_id)
                .await?
                .map(|()| StorageAnswer::Aborted),
        })
    }

    fn check(plugin: &str, answer: Self::Answer) -> Result<Self::Answer, PluginError> {
        let Ok(ok) = &answer else {
            return Ok(answer);
        };
        let problem = match ok {
            StorageAnswer::Located(located) => plan_problem(&located.plan),
            StorageAnswer::Listing(Listing::Directory(path)) => location_problem("path", path),
            StorageAnswer::Listing(Listing::Page(page)) => page_problem(page),
            StorageAnswer::Upload(Upload::Whole(plan)) => plan_problem(plan),
            StorageAnswer::Upload(Upload::Parts(parts)) => parts_problem(parts),
            StorageAnswer::Finished(_) | StorageAnswer::Aborted => None,
        };
        match problem {
            None => Ok(answer),
            Some(reason) => Err(PluginError::BadOutput {
                plugin: plugin.to_string(),
                reason,
            }),
        }
    }
}

fn location_problem(what: &str, s: &str) -> Option<String> {
    (s.len() > StorageCaps::LOCATION)
        .then(|| format!("{what} longer than {} bytes", StorageCaps::LOCATION))
}

fn plan_problem(plan: &Plan) -> Option<String> {
    match plan {
        Plan::File(path) => location_problem("path", path),
        Plan::Http(http) => {
            let lists = [&http.ok, &http.not_found, &http.exists];
            if lists.iter().any(|l| l.len() > StorageCaps::STATUSES) {
                return Some(format!(
                    "more than {} statuses in a list",
                    StorageCaps::STATUSES
                ));
            }
            request_problem(&http.request)
        }
        Plan::Inline(bytes) => (bytes.len() > StorageCaps::INLINE).then(|| {
            format!(
                "inline plan of {} bytes (at most {})",
                bytes.len(),
                StorageCaps::INLINE
            )
        }),
        Plan::NotFound => None,
    }
}

fn request_problem(request: &HttpRequest) -> Option<String> {
    if request.headers.len() > StorageCaps::HEADERS
        || request
            .headers
            .iter()
            .any(|(n, v)| n.len() + v.len() > StorageCaps::HEADER)
    {
        return Some(format!(
            "at most {} headers of at most {} bytes",
            StorageCaps::HEADERS,
            StorageCaps::HEADER
        ));
    }
    location_problem("url", &request.url)
}

fn page_problem(page: &ListPage) -> Option<String> {
    if page.versions.len() > StorageCaps::PAGE
        || page.versions.iter().any(|v| v.len() > StorageCaps::VERSION)
    {
        return Some(format!(
            "a page of at most {} versions of at most {} bytes",
            StorageCaps::PAGE,
            StorageCaps::VERSION
        ));
    }
    page.cursor
        .as_deref()
        .and_then(|c| location_problem("cursor", c))
}

fn parts_problem(parts: &PartsPlan) -> Option<String> {
    if parts.parts.is_empty() || parts.parts.len() > StorageCaps::PARTS {
        return Some(format!("1 to {} parts", StorageCaps::PARTS));
    }
    if parts.part_size == 0 {
        return Some("part size 0".into());
    }
    location_problem("upload id", &parts.upload_id)
        .or_else(|| parts.parts.iter().find_map(request_problem))
}
