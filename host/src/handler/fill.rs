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
use crate::sumdb::gosumdb::{self, Gosumdb, Record, VerifyError};
use crate::telemetry::Metrics;
use crate::upstream::singleflight::SingleFlight;
use crate::upstream::{FetchError, Fetched, SourceList, UpstreamClient, redact};

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
    use serde::Deserialize as _;
    #[derive(serde::Deserialize)]
    struct Info {
        #[serde(rename = "Version")]
        version: String,
        #[serde(rename = "Time", default)]
        time: Option<String>,
    }
    // An object, as the go command unmarshals it: serde's derived `Deserialize` would also take
    // a JSON array (`["v1.0.0"]`) as the struct's fields in order (found by fuzz/go_mod).
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not a version info object: {e}"))?;
    if !value.is_object() {
        return Err("not a version info object: the JSON is not an object".into());
    }
    let info = Info::deserialize(&value).map_err(|e| format!("not a version info object: {e}"))?;
    if !crate::goproxy::semver::is_valid(&info.version) {
        return Err(format!("Version {:?} is not a valid version", info.version));
    }
    if let Some(expected) = expected
        && info.version != expected
    {
        return Err(format!(
            "Version {:?} does not match the requested {expected:?}",
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
    /// The checksum database versions from the proxies are checked against (`None`: not
    /// checked, for this route or this module).
    sumdb: Option<Arc<Gosumdb>>,
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
            sumdb: self
                .app
                .gosumdb
                .clone()
                .filter(|_| self.route.sumdb.verifies(self.module.as_str())),
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
        let host = self.route.sources.describe();
        self.app.metrics.upstream_rejected(&host);
        Error::BadArtifact {
            what: rel.to_owned(),
            host,
            reason,
        }
    }
}

impl Fetcher {
    /// The same fetcher, taking versions from `sources` (an upstream policy's plan) instead
    /// of the route's.
    pub(super) fn with_sources(mut self, sources: Option<SourceList>) -> Self {
        if let Some(s) = sources {
            self.sources = s;
        }
        self
    }

    /// The URL of `version`'s zip at the upstream proxy that serves the version (the one that
    /// answers its `.info`), for a client to fetch itself; `None` when that URL carries
    /// credentials (they must not reach clients) or no proxy serves it.
    pub(super) async fn upstream_zip_url(self, version: &str) -> Result<Option<String>, Error> {
        if self.sources.is_offline() {
            return Ok(None);
        }
        let info = self.rel(version, "info")?;
        let (_, url) = match self.fetch_small(&info, MAX_INFO, None).await {
            Ok(found) => found,
            Err(Error::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(entry) = served_by(&self.sources, &url).map(|i| &self.sources.entries[i]) else {
            return Ok(None);
        };
        let has_userinfo = entry
            .base
            .split_once("://")
            .is_some_and(|(_, rest)| rest.split('/').next().is_some_and(|a| a.contains('@')));
        if has_userinfo {
            return Ok(None);
        }
        Ok(Some(format!(
            "{}/{}",
            entry.base,
            self.rel(version, "zip")?
        )))
    }

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
        self.metrics
            .upstream_rejected(&crate::upstream::host_of(url));
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

    /// Fetches and checks a version's go.mod without storing it, from the route's sources or
    /// only from `from` on (after a source whose answer the checksum database contradicted).
    /// Returns it with the URL it came from.
    async fn fetch_checked_mod(
        &self,
        version: &str,
        from: Option<&SourceList>,
    ) -> Result<(Bytes, String), Error> {
        let what = self.rel(version, "mod")?;
        let (body, url) = match from {
            None => self.fetch_small(&what, MAX_GO_MOD, None).await?,
            Some(sources) => {
                let f = self
                    .client
                    .fetch_bytes(sources, &what, MAX_GO_MOD, &self.metrics)
                    .await
                    .map_err(|e| upstream_error(what.clone(), e))?;
                (f.body, f.url)
            }
        };
        zipcheck::check_go_mod(&body).map_err(|e| self.rejected(what, &url, e.to_string()))?;
        Ok((body, url))
    }

    /// Fetches, checks and stores a version's go.mod from the upstream proxies (the go command
    /// reads many go.mod files whose zips it never needs, so a go.mod is worth keeping on its
    /// own). With verification on, it is stored only once its hash matches the checksum
    /// database's record (a source contradicted by the record makes way for the next one).
    pub(super) async fn fetch_mod_proxy(&self, version: &str) -> Result<Bytes, Error> {
        let expected = self.expected(version);
        let (mut body, mut url) = self.fetch_checked_mod(version, None).await?;
        if let Some(task) = expected {
            let record = self.record(task).await?;
            let mut sources = self.sources.clone();
            while let Err((mismatch, _)) = self.matches(version, &record, Some((&body, &url)), None)
            {
                let Some(rest) = self.after(&sources, &url) else {
                    return Err(mismatch);
                };
                tracing::warn!(module = %self.module, version, error = %mismatch, "trying the next upstream");
                (body, url) = self.fetch_checked_mod(version, Some(&rest)).await?;
                sources = rest;
            }
        }
        self.store
            .put_small(self.key(version, ArtifactKind::Mod), &body)
            .await?;
        Ok(body)
    }

    /// The checksum database's record of `version`, looked up in a task of its own (it runs
    /// while the version downloads); `None` when the version is not checked.
    fn expected(
        &self,
        version: &str,
    ) -> Option<tokio::task::JoinHandle<Result<Record, VerifyError>>> {
        let db = self.sumdb.clone()?;
        let lookup = format!(
            "{}@{}",
            self.module.escaped(),
            escape_version(version).ok()?
        );
        let source: Arc<dyn gosumdb::Source> = Arc::new(SumdbVia::new(
            &self.client,
            &self.sources,
            &self.metrics,
            db.name(),
        ));
        let (module, version) = (self.module.as_str().to_owned(), version.to_owned());
        Some(tokio::spawn(async move {
            db.record(&module, &version, lookup, source).await
        }))
    }

    /// The record a lookup task found, or the error a client gets when there is none.
    async fn record(
        &self,
        task: tokio::task::JoinHandle<Result<Record, VerifyError>>,
    ) -> Result<Record, Error> {
        let result = task.await.unwrap_or_else(|e| Err(e.into()));
        result.map_err(|e| {
            let outcome = match &e {
                VerifyError::NotFound { .. } => "not_found",
                VerifyError::Halted(_) => "halted",
                _ => "error",
            };
            self.metrics.sumdb_check(outcome);
            match e {
                VerifyError::Halted(why) => Error::SumdbHalted(why),
                e => Error::Unverified {
                    what: self.module.to_string(),
                    reason: format!("cannot verify: {e}; not admitted"),
                },
            }
        })
    }

    /// Whether a downloaded go.mod (`mod`: its bytes and URL) and zip (`zip`: its `h1:` and
    /// URL) hash as the record says; else the error and the URL of the contradicted answer.
    fn matches(
        &self,
        version: &str,
        record: &Record,
        go_mod: Option<(&Bytes, &str)>,
        zip: Option<(&str, &str)>,
    ) -> Result<(), (Error, String)> {
        let checks = [
            go_mod.map(|(data, url)| {
                let got = crate::goproxy::hash::hash_go_mod(data);
                ("go.mod", got, record.go_mod.as_deref(), url)
            }),
            zip.map(|(h1, url)| ("zip", h1.to_owned(), record.zip.as_deref(), url)),
        ];
        for (file, got, want, url) in checks.into_iter().flatten() {
            if want == Some(got.as_str()) {
                continue;
            }
            self.metrics.sumdb_check("mismatch");
            let db = self.sumdb.as_ref().map_or("", |d| d.name());
            let reason = match want {
                Some(want) => format!(
                    "verifying {file}: checksum mismatch: {} served {got}, checksum database                      {db} has {want}; not stored",
                    crate::upstream::host_of(url)
                ),
                None => format!(
                    "verifying {file}: checksum database {db} has no {file} hash for this                      version; not stored"
                ),
            };
            let e = Error::Unverified {
                what: format!("{}@{version}", self.module),
                reason,
            };
            return Err((e, url.to_owned()));
        }
        self.metrics.sumdb_check("ok");
        Ok(())
    }

    /// The sources after the one that served `url` (`None`: it was the last).
    fn after(&self, sources: &SourceList, url: &str) -> Option<SourceList> {
        let i = served_by(sources, url)?;
        let rest: Vec<_> = sources.entries[i + 1..].to_vec();
        (!rest.is_empty()).then_some(SourceList { entries: rest })
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

    /// [`Fetcher::fill`] from the upstream proxies. With verification on, the checksum
    /// database's record is looked up while the version downloads, and a go.mod or zip that
    /// hashes otherwise is not stored: the next source in the list is tried, and when none is
    /// left the client gets the mismatch, naming both hashes.
    pub(super) async fn fill_proxy(&self, version: &str) -> Result<(), Error> {
        let mut expected = self.expected(version);
        let mut record: Option<Record> = None;
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
        // After a source the database contradicted: the sources after it.
        let mut from: Option<SourceList> = None;
        loop {
            let mod_stored = self
                .store
                .contains(self.key(version, ArtifactKind::Mod))
                .await?;
            let zip_stored = self.store.contains(zip_key).await?;
            // The go.mod and the zip at once: a cold fill waits for one round trip, not two.
            let (go_mod, download) = tokio::try_join!(
                async {
                    match mod_stored {
                        true => Ok(None),
                        false => self
                            .fetch_checked_mod(version, from.as_ref())
                            .await
                            .map(Some),
                    }
                },
                async {
                    match zip_stored {
                        true => Ok(None),
                        false => self.download_zip(version, from.as_ref()).await.map(Some),
                    }
                },
            )?;
            if let Some(task) = expected.take() {
                record = Some(self.record(task).await?);
            }
            let (error, url) = match self
                .admit(version, record.as_ref(), go_mod, download, &info)
                .await?
            {
                Admitted::Stored => return Ok(()),
                Admitted::Contradicted(e, url) => (e, url),
            };
            let sources = from.as_ref().unwrap_or(&self.sources);
            let Some(rest) = self.after(sources, &url) else {
                return Err(error);
            };
            tracing::warn!(module = %self.module, version, %error, "trying the next upstream");
            from = Some(rest);
        }
    }

    /// Downloads `version`'s zip into staging, from the route's sources or only from `from`.
    async fn download_zip(
        &self,
        version: &str,
        from: Option<&SourceList>,
    ) -> Result<Downloaded, Error> {
        let what = self.what(version, "zip");
        let rel = self.rel(version, "zip")?;
        let (mut file, tmp) = self.store.zip_staging(&self.module, version).await?;
        let fetched = self
            .client
            .fetch_to_file(
                from.unwrap_or(&self.sources),
                &rel,
                MAX_ZIP,
                &mut file,
                &self.metrics,
            )
            .await
            .map_err(|e| upstream_error(what.clone(), e))?;
        file.flush()
            .await
            .map_err(|e| Error::storage(self.store.name(), format_args!("{what}: {e}")))?;
        // Synced while it is checked (Fetcher::admit), before it is committed.
        Ok((tmp, fetched, file))
    }

    /// Checks what was downloaded (the go.mod, the zip; `None`: already stored) and commits the
    /// version, unless the checksum database's `record` contradicts it.
    async fn admit(
        &self,
        version: &str,
        record: Option<&Record>,
        go_mod: Option<(Bytes, String)>,
        download: Option<Downloaded>,
        info: &Bytes,
    ) -> Result<Admitted, Error> {
        if let (Some(r), Some((data, url))) = (record, &go_mod)
            && let Err((e, url)) = self.matches(version, r, Some((data, url)), None)
        {
            return Ok(Admitted::Contradicted(e, url));
        }
        let go_mod = go_mod.map(|(data, _)| data);
        let Some((tmp, fetched, file)) = download else {
            if let Some(go_mod) = &go_mod {
                self.store
                    .put_small(self.key(version, ArtifactKind::Mod), go_mod)
                    .await?;
            }
            self.store
                .put_small(self.key(version, ArtifactKind::Info), info)
                .await?;
            return Ok(Admitted::Stored);
        };
        let what = self.what(version, "zip");
        let sync = async {
            file.sync_all()
                .await
                .map_err(|e| Error::storage(self.store.name(), format_args!("{what}: {e}")))
        };
        let check = verify(
            &self.module,
            version,
            tmp,
            GoMod::Upstream(go_mod),
            info.clone(),
        );
        // A rejected zip is the answer even if its sync failed too (it is not kept anyway).
        let (checked, synced) = tokio::join!(check, sync);
        let staged =
            checked?.map_err(|e| self.rejected(what.clone(), &fetched.url, e.to_string()))?;
        synced?;
        if let Some(r) = record
            && let Err((e, url)) =
                self.matches(version, r, None, Some((&staged.zip_hash, &fetched.url)))
        {
            return Ok(Admitted::Contradicted(e, url));
        }
        tracing::info!(module = %self.module, version, url = %fetched.url, bytes = fetched.body,
            files = staged.files, hash = %staged.zip_hash, "stored module version");
        self.store.commit(&self.module, version, staged).await?;
        Ok(Admitted::Stored)
    }
}

/// The position in `sources` of the one whose (redacted) answer URL `url` is.
fn served_by(sources: &SourceList, url: &str) -> Option<usize> {
    sources
        .entries
        .iter()
        .position(|e| url.starts_with(&redact(&e.base)))
}

/// A zip downloaded into staging: the file (written, not yet synced), where it came from, and
/// the handle it was written through.
type Downloaded = (tempfile::TempPath, Fetched<u64>, tokio::fs::File);

/// How [`Fetcher::admit`] ended.
enum Admitted {
    Stored,
    /// The checksum database contradicts the answer from this URL: nothing was stored.
    Contradicted(Error, String),
}

/// A route's upstream proxies, as the checksum database client reaches the database.
pub(super) struct SumdbVia {
    client: UpstreamClient,
    sources: SourceList,
    metrics: Arc<Metrics>,
    name: String,
}

impl SumdbVia {
    pub(super) fn new(
        client: &UpstreamClient,
        sources: &SourceList,
        metrics: &Arc<Metrics>,
        name: &str,
    ) -> Self {
        SumdbVia {
            client: client.clone(),
            sources: sources.clone(),
            metrics: Arc::clone(metrics),
            name: name.to_owned(),
        }
    }
}

impl gosumdb::Source for SumdbVia {
    fn get<'a>(&'a self, rest: &'a str) -> gosumdb::BoxFuture<'a, Result<Bytes, FetchError>> {
        Box::pin(async move {
            let rel = format!("sumdb/{}/{rest}", self.name);
            let f = self
                .client
                .fetch_bytes(&self.sources, &rel, MAX_SUMDB, &self.metrics)
                .await?;
            Ok(f.body)
        })
    }
}

/// Turns a fetch failure into the pipeline's error for `what` (the path the client asked for,
/// `module/@v/file`): a not-found or a refusal keeps the upstream's status and reason.
pub(super) fn upstream_error(what: String, e: FetchError) -> Error {
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
        // Found by fuzz/go_mod: an array holding the fields in order is not an .info.
        let array = check_info(br#"["v1.2.3"]"#, None).expect_err("an array");
        assert!(array.contains("not an object"), "{array}");
        assert!(check_info(br#"{"Version":"v1.2.3","Time":"yesterday"}"#, None).is_err());
        // Found by fuzz/go_mod: the requested version is quoted, so a message stays one line
        // whatever it was asked with.
        let other = check_info(br#"{"Version":"v1"}"#, Some("\r")).expect_err("another version");
        assert_eq!(other, r#"Version "v1" does not match the requested "\r""#);
    }
}
