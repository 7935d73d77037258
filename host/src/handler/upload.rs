//! The upload endpoint: `PUT /<module>/@v/<version>.zip` with the module zip as the body
//! (what `modgate publish --to` sends).
//!
//! The route's `uploads` setting decides who may upload (default: callers its auth plugins
//! allow with action `publish`; a route without auth refuses). The body is streamed to a
//! temporary file beside the zip's final place (413 past `[publish] max_upload_bytes`), then
//! checked and committed as `modgate publish` commits ([`crate::publish::commit_published`]: the
//! checks every version passes, `.mod` from the zip's go.mod, which must declare the module,
//! or `module <path>\n`; `.info` with the upload time, written last). Versions are immutable: the same content again
//! is a 200 no-op, other content a 409; nothing is half-written in any case.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;

use crate::config::Uploads;
use crate::error::Error;
use crate::goproxy::request::{self, ProxyRequest};

use crate::plugin::Action;
use crate::publish::{PublishError, Published};

use super::{App, Asking, ConnInfo, Facts, ResponseBody, respond};

/// Removes its key from the set of uploads in progress when dropped.
struct InProgress<'a> {
    set: &'a std::sync::Mutex<std::collections::HashSet<String>>,
    key: String,
}

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

impl App {
    /// Serves one `PUT`.
    pub(super) async fn upload<B>(
        &self,
        req: http::Request<B>,
        conn: &ConnInfo,
        authz: &mut super::Authz,
    ) -> Result<Response<ResponseBody>, Error>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path();
        // Version and path problems are the uploader's mistake here, not a "try the next
        // proxy": 400 rather than the 404 a GET gets.
        let parsed = request::parse(path).map_err(|e| match Error::from(e) {
            Error::NotFound(m) => Error::BadRequest(m),
            other => other,
        })?;
        let ProxyRequest::Zip { module, version } = parsed else {
            return Err(Error::NotAllowedHere(
                "uploads go to PUT /<module>/@v/<version>.zip".into(),
            ));
        };
        let asking = Asking {
            method: &parts.method,
            path,
            headers: &parts.headers,
            conn,
            action: Action::Publish,
        };
        let facts = Facts::new(&asking, Some(&module), Some(version.clone()));
        let route = self
            .pick_route(module.as_str(), &facts)
            .await?
            .ok_or_else(|| Error::NotFound(format!("{module}: no route serves this module")))?;
        match route.uploads {
            Uploads::Off => {
                return Err(Error::NotAllowedHere(format!(
                    "uploads are off for route[{}] (uploads = \"off\")",
                    route.index
                )));
            }
            Uploads::Auth if route.auth.is_empty() => {
                return Err(Error::Denied {
                    status: StatusCode::FORBIDDEN,
                    message: format!(
                        "uploads to route[{}] need authentication: give it `auth` plugins (or set uploads = \"open\")",
                        route.index
                    ),
                });
            }
            Uploads::Auth => {
                authz.private = true;
                self.authorize(&route.auth, self.auth_ids(route), &facts, authz)
                    .await?;
            }
            Uploads::Open => {}
        }
        let store = self.store_of(route)?;
        let limit = self.max_upload_bytes;
        let what = super::artifact_path(&module, &version, "zip");
        let too_large = || {
            Error::TooLarge(format!(
                "{what}: module zip file is too large (limit is {limit} bytes: [publish] max_upload_bytes)"
            ))
        };
        if let Some(len) = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            && len > limit
        {
            return Err(too_large());
        }

        let key = format!("{}\0{}\0{version}", store.name(), module.escaped());
        if !self
            .uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone())
        {
            return Err(Error::Conflict(format!(
                "{what}: another upload of this version is in progress"
            )));
        }
        let _in_progress = InProgress {
            set: &self.uploads,
            key,
        };

        // The body goes to a temporary file beside the zip's final place; dropping `tmp` on any
        // error removes it.
        let (mut file, tmp) = store.zip_staging(&module, &version).await?;
        let storage_err =
            |e: std::io::Error| Error::storage(store.name(), format_args!("{what}: {e}"));
        let mut body = body;
        let mut received = 0u64;
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| Error::BadRequest(format!("{what}: reading the upload: {e}")))?;
            if let Ok(data) = frame.into_data() {
                received += data.len() as u64;
                if received > limit {
                    return Err(too_large());
                }
                file.write_all(&data).await.map_err(storage_err)?;
            }
        }
        file.flush().await.map_err(storage_err)?;
        file.sync_all().await.map_err(storage_err)?;
        drop(file);

        let hashes_text = |h: &crate::publish::Hashes| {
            format!(
                "{module} {version} {}\n{module} {version}/go.mod {}\n",
                h.zip, h.go_mod
            )
        };
        match crate::publish::commit_published(store, &module, &version, tmp, None).await {
            Ok(Published::Created(h)) => {
                tracing::info!(%module, version, files = h.files, hash = %h.zip, peer = %conn.peer,
                    "version uploaded");
                Ok(respond::text(StatusCode::CREATED, hashes_text(&h), false))
            }
            Ok(Published::Unchanged(h)) => {
                Ok(respond::text(StatusCode::OK, hashes_text(&h), false))
            }
            Err(e @ PublishError::Conflict { .. }) => Err(Error::Conflict(e.to_string())),
            Err(PublishError::Invalid(reason)) => {
                Err(Error::BadRequest(format!("{what}: {reason}")))
            }
            Err(PublishError::Build { reason }) => Err(Error::BadRequest(reason.to_string())),
            Err(PublishError::Storage(e)) => Err(e),
        }
    }
}
