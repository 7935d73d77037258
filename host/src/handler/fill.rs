//! Filling storage from upstream: fetch, check, commit. Nothing that fails a check is stored.
//!
//! A [`Fetcher`] owns what a fill needs (cheap clones of shared parts), so a whole version fill
//! runs in its own task under single-flight and finishes even if every client went away.

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use crate::error::Error;
use crate::goproxy::escape::escape_version;
use crate::goproxy::path::ModulePath;
use crate::goproxy::zipcheck;
use crate::storage::verify::{GoMod, verify};
use crate::storage::{ArtifactKey, ArtifactKind, Store};
use crate::telemetry::Metrics;
use crate::upstream::singleflight::SingleFlight;
use crate::upstream::{FetchError, Fetched, SourceList, UpstreamClient};

use super::{Ctx, TtlCache, artifact_path};

/// Largest module zip (Go modules reference: `MaxZipFile`, 500 MiB).
pub const MAX_ZIP: u64 = 500 << 20;
/// Largest go.mod (`MaxGoMod`, 16 MiB).
pub const MAX_GO_MOD: u64 = 16 << 20;
/// Largest `.info`/`@latest` answer accepted from an upstream.
pub const MAX_INFO: u64 = 1 << 20;
/// Largest checksum database answer (a data tile holds 256 records).
pub const MAX_SUMDB: u64 = 4 << 20;
/// Largest `list` answer accepted from an upstream.
pub const MAX_LIST: u64 = 16 << 20;

/// Shared fetch state: one flight per small upstream artifact and per version fill.
#[derive(Default)]
pub struct Flights {
    small: SingleFlight<String, Fetched<Bytes>>,
    versions: SingleFlight<String, ()>,
}

/// Checks an `.info`/`@latest` body: a JSON object with a valid `Version` (equal to `expected`
/// when the request named a canonical version, as `modfetch.proxyRepo.Stat` requires) and, if
/// present, an RFC 3339 `Time`.
pub fn check_info(body: &[u8], expected: Option<&str>) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct Info {
        #[serde(rename = "Version")]
        version: String,
        #[serde(rename = "Time", default)]
        time: Option<String>,
    }
    let info: Info =
        serde_json::from_slice(body).map_err(|e| format!("not a version info object: {e}"))?;
    if !crate::goproxy::semver::is_valid(&info.version) {
        return Err(format!("Version {:?} is not a valid version", info.version));
    }
    if let Some(expected) = expected
        && info.version != expected
    {
        return Err(format!(
            "Version {:?} does not match the requested {expected}",
            info.version
        ));
    }
    if let Some(t) = &info.time
        && !looks_like_rfc3339(t)
    {
        return Err(format!("Time {t:?} is not an RFC 3339 time"));
    }
    Ok(())
}

/// A shape check for `2006-01-02T15:04:05Z07:00`; the go command parses it strictly.
pub(super) fn looks_like_rfc3339(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() >= 20
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b't')
        && b[13] == b':'
        && b[16] == b':'
}

/// Everything a fetch for one module on one route needs, owned.
#[derive(Clone)]
pub struct Fetcher {
    client: UpstreamClient,
    pub(super) metrics: Arc<Metrics>,
    flights: Arc<Flights>,
    recent: Arc<TtlCache>,
    not_found_ttl: std::time::Duration,
    route_index: usize,
    sources: SourceList,
    pub(super) store: Arc<Store>,
    pub(super) module: ModulePath,
    /// The route's git repositories, when one could serve the module, and whether they come
    /// before the upstream proxies.
    pub(super) git: Option<(Arc<crate::gitsource::GitSource>, bool)>,
    /// Other replicas over the same storage (`[cluster]`).
    cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// The longest a replica waits for another replica's fill of a version before filling it
/// itself (a replica that dies mid-fill frees its lease after `cluster.lease_ttl` anyway).
const CLUSTER_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

impl Ctx<'_> {
    /// The fetcher for this request's module and route.
    pub(super) fn fetcher(&self) -> Fetcher {
        Fetcher {
            client: self.app.client.clone(),
            metrics: Arc::clone(&self.app.metrics),
            flights: Arc::clone(&self.app.flights),
            recent: Arc::clone(&self.app.recent),
            not_found_ttl: self.app.cache.not_found_ttl,
            route_index: self.route.index,
            sources: self.route.sources.clone(),
            store: Arc::clone(self.store),
            module: self.module.clone(),
            git: self.git().map(|g| (g, self.git_first())),
            cluster: self.app.cluster.clone(),
        }
    }

    /// An upstream answer that changes (`list`, `@latest`, non-canonical `.info`), reused for
    /// `list_ttl`; not-founds for `not_found_ttl`.
    pub(super) async fn fetch_changing(&self, rel: &str, limit: u64) -> Result<Bytes, Error> {
        let keep = Some(self.app.cache.list_ttl).filter(|t| !t.is_zero());
        let (body, _) = self.fetcher().fetch_small(rel, limit, keep).await?;
        Ok(body)
    }

    /// An error for an upstream body (at `rel`, the path the client asked for) that failed
    /// its check.
    pub(super) fn bad_info(&self, rel: &str, reason: String) -> Error {
        self.app.metrics.upstream_rejected();
        Error::BadArtifact {
            what: rel.to_owned(),
            host: self.route.sources.describe(),
            reason,
        }
    }
}

impl Fetcher {
    /// True when the route has no upstream proxies.
    pub(super) fn sources_offline(&self) -> bool {
        self.sources.is_offline()
    }

    pub(super) fn key<'k>(&'k self, version: &'k str, kind: ArtifactKind) -> ArtifactKey<'k> {
        ArtifactKey {
            module: &self.module,
            version,
            kind,
        }
    }

    /// What errors about `version`'s `ext` file name: its path as a client asks for it,
    /// `module/@v/version.ext` (escaped).
    pub(super) fn what(&self, version: &str, ext: &str) -> String {
        artifact_path(&self.module, version, ext)
    }

    fn rel(&self, version: &str, ext: &str) -> Result<String, Error> {
        escape_version(version)
            .map_err(|e| Error::BadRequest(format!("version {version:?}: {e}")))?;
        Ok(self.what(version, ext))
    }

    fn rejected(&self, what: String, url: &str, reason: String) -> Error {
        self.metrics.upstream_rejected();
        Error::BadArtifact {
            what,
            host: crate::upstream::host_of(url),
            reason,
        }
    }

    /// Fetches a small artifact (at `rel`, which errors name) once for all concurrent
    /// requests. A not-found is remembered for `not_found_ttl`, and with `keep` the answer for
    /// that long, so a flood of requests reaches the upstream once. Both are remembered inside
    /// the flight, before its waiters wake, and looked for again when a flight starts: a
    /// request that missed the cache just before a flight ended finds its answer there.
    async fn fetch_small(
        &self,
        rel: &str,
        limit: u64,
        keep: Option<std::time::Duration>,
    ) -> Result<(Bytes, String), Error> {
        let ok_key = format!("{}\0{rel}", self.route_index);
        let nf_key = format!("{}\0nf\0{rel}", self.route_index);
        let remembered = {
            let (recent, ok_key, nf_key) =
                (Arc::clone(&self.recent), ok_key.clone(), nf_key.clone());
            move || {
                let ok = keep.and_then(|_| recent.get(&ok_key)).filter(Result::is_ok);
                ok.or_else(|| recent.get(&nf_key).filter(Result::is_err))
                    .map(|hit| hit.map(|body| (body, String::new())))
            }
        };
        if let Some(hit) = remembered() {
            return hit;
        }
        let (client, sources, metrics, recent) = (
            self.client.clone(),
            self.sources.clone(),
            Arc::clone(&self.metrics),
            Arc::clone(&self.recent),
        );
        let not_found_ttl = self.not_found_ttl;
        let r = rel.to_owned();
        let fetched = self
            .flights
            .small
            .run(format!("{}\0{rel}", self.route_index), move || async move {
                if let Some(hit) = remembered() {
                    return hit.map(|(body, url)| Fetched { body, url });
                }
                match client.fetch_bytes(&sources, &r, limit, &metrics).await {
                    Ok(f) => {
                        if let Some(ttl) = keep {
                            recent.put(ok_key, Ok(f.body.clone()), ttl);
                        }
                        Ok(f)
                    }
                    Err(e) => {
                        let e = upstream_error(r, e);
                        if matches!(e, Error::NotFound(_)) {
                            recent.put(nf_key, Err(e.clone()), not_found_ttl);
                        }
                        Err(e)
                    }
                }
            })
            .await?;
        Ok((fetched.body, fetched.url))
    }

    /// Fetches and checks a version's go.mod without storing it.
    async fn fetch_checked_mod(&self, version: &str) -> Result<Bytes, Error> {
        let what = self.rel(version, "mod")?;
        let (body, url) = self.fetch_small(&what, MAX_GO_MOD, None).await?;
        zipcheck::check_go_mod(&body).map_err(|e| self.rejected(what, &url, e.to_string()))?;
        Ok(body)
    }

    /// Fetches, checks and stores a version's go.mod from the upstream proxies (the go command
    /// reads many go.mod files whose zips it never needs, so a go.mod is worth keeping on its
    /// own).
    pub(super) async fn fetch_mod_proxy(&self, version: &str) -> Result<Bytes, Error> {
        let body = self.fetch_checked_mod(version).await?;
        self.store
            .put_small(self.key(version, ArtifactKind::Mod), &body)
            .await?;
        Ok(body)
    }

    /// Fetches and checks a version's `.info` from the upstream proxies, then [`Fetcher::keep_info`].
    pub(super) async fn fetch_info_proxy(&self, version: &str) -> Result<Bytes, Error> {
        let what = self.rel(version, "info")?;
        let (body, url) = self.fetch_small(&what, MAX_INFO, None).await?;
        check_info(&body, Some(version)).map_err(|reason| self.rejected(what, &url, reason))?;
        self.keep_info(version, body).await
    }

    /// Keeps a checked `.info`: stored (committing the version) only when the version's `.mod`
    /// and `.zip` already are; otherwise only remembered in memory.
    pub(super) async fn keep_info(&self, version: &str, body: Bytes) -> Result<Bytes, Error> {
        if self
            .store
            .contains(self.key(version, ArtifactKind::Zip))
            .await?
            && self
                .store
                .contains(self.key(version, ArtifactKind::Mod))
                .await?
        {
            self.store
                .put_small(self.key(version, ArtifactKind::Info), &body)
                .await?;
        } else {
            self.store
                .remember(self.key(version, ArtifactKind::Info), &body);
        }
        Ok(body)
    }

    /// Fetches a whole version (`.info`, `.mod`, `.zip`), checks it and commits it with `.info`
    /// last, once for all concurrent requests (of every replica, with `[cluster]`).
    pub async fn fill_version(self, version: &str) -> Result<(), Error> {
        let key = format!("{}/{}@{version}", self.store.name(), self.module.escaped());
        let version = version.to_owned();
        let flights = Arc::clone(&self.flights);
        flights
            .versions
            .run(key.clone(), move || async move {
                let Some(cluster) = self.cluster.clone() else {
                    return self.fill(&version).await;
                };
                let committed = || self.store.contains(self.key(&version, ArtifactKind::Info));
                cluster
                    .fill_once(&key, CLUSTER_WAIT, committed, || self.fill(&version))
                    .await
            })
            .await
    }

    /// [`Fetcher::fill`] from the upstream proxies.
    pub(super) async fn fill_proxy(&self, version: &str) -> Result<(), Error> {
        let zip_key = self.key(version, ArtifactKind::Zip);
        let info_key = self.key(version, ArtifactKind::Info);
        // `.info` and `.mod` first: cheap, and a not-found ends the fill before the download.
        // The go.mod is only stored with the zip, so a version whose zip is rejected leaves
        // nothing behind.
        // The client usually asked for `.info` first: its checked copy is in memory then.
        let info = match self.store.read_small(info_key).await? {
            Some(info) => info,
            None => self.fetch_info_proxy(version).await?,
        };
        let go_mod = if self
            .store
            .contains(self.key(version, ArtifactKind::Mod))
            .await?
        {
            None
        } else {
            Some(self.fetch_checked_mod(version).await?)
        };
        if self.store.contains(zip_key).await? {
            if let Some(go_mod) = &go_mod {
                self.store
                    .put_small(self.key(version, ArtifactKind::Mod), go_mod)
                    .await?;
            }
            return self.store.put_small(info_key, &info).await;
        }

        let what = self.what(version, "zip");
        let rel = self.rel(version, "zip")?;
        let (mut file, tmp) = self.store.zip_staging(&self.module, version).await?;
        let fetched = self
            .client
            .fetch_to_file(&self.sources, &rel, MAX_ZIP, &mut file, &self.metrics)
            .await
            .map_err(|e| upstream_error(what.clone(), e))?;
        let storage_err =
            |e: std::io::Error| Error::storage(self.store.name(), format_args!("{what}: {e}"));
        file.flush().await.map_err(storage_err)?;
        file.sync_all().await.map_err(storage_err)?;
        drop(file);

        let staged = verify(&self.module, version, tmp, GoMod::Upstream(go_mod), info)
            .await?
            .map_err(|e| self.rejected(what, &fetched.url, e.to_string()))?;
        tracing::info!(module = %self.module, version, url = %fetched.url, bytes = fetched.body,
            files = staged.files, hash = %staged.zip_hash, "stored module version");
        self.store.commit(&self.module, version, staged).await
    }
}

/// Turns a fetch failure into the pipeline's error for `what` (the path the client asked for,
/// `module/@v/file`): a not-found or a refusal keeps the upstream's status and reason.
fn upstream_error(what: String, e: FetchError) -> Error {
    match e {
        FetchError::NotFound { reason: Some(r) } => Error::NotFound(format!("{what}: {r}")),
        FetchError::NotFound { reason: None } => {
            Error::NotFound(format!("{what}: not found upstream"))
        }
        FetchError::Refused {
            host,
            status,
            reason,
        } => Error::Refused {
            what,
            host,
            status,
            reason,
        },
        FetchError::Failed { host, message } => Error::Upstream {
            what,
            host,
            message,
        },
        FetchError::Timeout { host, secs } => Error::UpstreamTimeout { what, host, secs },
        FetchError::TooLarge { host, limit } => Error::BadArtifact {
            what,
            host,
            reason: format!("larger than {limit} bytes"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_bodies_are_checked() {
        let ok = br#"{"Version":"v1.2.3","Time":"2019-04-05T12:00:00Z"}"#;
        assert!(check_info(ok, Some("v1.2.3")).is_ok());
        assert!(check_info(ok, None).is_ok());
        assert!(check_info(ok, Some("v1.2.4")).is_err());
        assert!(check_info(br#"{"Version":"v1.2.3"}"#, Some("v1.2.3")).is_ok());
        assert!(check_info(b"<html>", None).is_err());
        assert!(check_info(br#"{"Version":"v1.2.3","Time":"yesterday"}"#, None).is_err());
    }
}
