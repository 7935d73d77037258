//! A route's sources in order — its git repositories ([`crate::gitsource`]) and its upstream
//! proxies — and what the pipeline asks of the git ones.
//!
//! The route's git entries sit together before or after its proxies (config resolution keeps
//! them so); a source that does not know the module or version (404) passes the question to
//! the next, any other failure ends it, as `,` does in a GOPROXY list. A version built from
//! git goes through the same single-flight, checks ([`zipcheck`]) and atomic commit as one
//! fetched from a proxy, so later requests are storage hits.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::config::Config;
use crate::error::Error;
use crate::gitsource::{GitCache, GitError, GitSource, RevInfo};
use crate::goproxy::{semver, zipcheck};
use crate::storage::ArtifactKind;
use crate::storage::verify::{GoMod, verify};

use super::Ctx;
use super::fill::{self, Fetcher};

/// One place to ask, in a route's order.
enum Tier {
    Git(Arc<GitSource>),
    Proxy,
}

/// The git sources of `config`'s routes, by route index, sharing one clone cache.
pub(super) fn build_sources(config: &Config) -> HashMap<usize, Arc<GitSource>> {
    let cache = Arc::new(GitCache::new(config.git.cache_dir.clone()));
    config
        .routes
        .iter()
        .filter_map(|route| {
            let git = route.git.as_ref()?;
            let source = GitSource::with_cache(
                Arc::clone(&cache),
                git.mappings.clone(),
                git.templates.clone(),
                config.git.fetch_ttl,
            );
            Some((route.index, Arc::new(source)))
        })
        .collect()
}

/// The tiers of a route: git (when it could serve the module) and proxies, in order.
fn tiers(git: Option<&(Arc<GitSource>, bool)>, proxies: bool) -> Vec<Tier> {
    let mut tiers = Vec::with_capacity(2);
    if proxies {
        tiers.push(Tier::Proxy);
    }
    if let Some((source, first)) = git {
        let tier = Tier::Git(Arc::clone(source));
        if *first {
            tiers.insert(0, tier);
        } else {
            tiers.push(tier);
        }
    }
    tiers
}

/// The pipeline's error for a git source's failure on `what`.
fn git_error(what: String, e: GitError) -> Error {
    match e {
        GitError::NotFound(m) | GitError::InvalidVersion(m) => Error::NotFound(m),
        GitError::Fetch(message) => Error::Upstream {
            what,
            host: "git".into(),
            message,
        },
        GitError::Build(reason) => Error::BadArtifact {
            what,
            host: "git".into(),
            reason,
        },
        GitError::Internal(m) => Error::Internal(m),
    }
}

fn info_json(info: &RevInfo) -> Result<Bytes, Error> {
    serde_json::to_vec(info)
        .map(Bytes::from)
        .map_err(|e| Error::Internal(format!("encoding .info: {e}")))
}

/// Walks `tiers`, passing a 404 to the next one.
macro_rules! walk {
    ($tiers:expr, $missing:expr, |$tier:ident| $ask:expr) => {{
        let mut last: Option<Error> = None;
        let mut answer = None;
        for $tier in $tiers {
            match $ask {
                Err(Error::NotFound(m)) => last = Some(Error::NotFound(m)),
                other => {
                    answer = Some(other);
                    break;
                }
            }
        }
        match answer {
            Some(a) => a,
            None => Err(last.unwrap_or_else(|| $missing)),
        }
    }};
}

impl Ctx<'_> {
    /// The route's git source when it could serve this module.
    pub(super) fn git(&self) -> Option<Arc<GitSource>> {
        self.app
            .git
            .get(&self.route.index)
            .filter(|g| g.covers(self.module))
            .cloned()
    }

    /// Whether the route's git entries come before its proxies.
    pub(super) fn git_first(&self) -> bool {
        self.route.git.as_ref().is_some_and(|g| g.first)
    }

    fn tiers(&self) -> Vec<Tier> {
        let git = self.git().map(|g| (g, self.git_first()));
        tiers(git.as_ref(), !self.route.sources.is_offline())
    }

    /// No source could answer for this module: serve from storage only.
    pub(super) fn offline(&self) -> bool {
        (self.route.sources.is_offline() && self.git().is_none())
            || self.route.download == crate::config::Download::None
    }

    /// The versions the sources know (`list`, named `what` in errors), from the first that
    /// knows the module: each with the time the source gave for it, if any. Pseudo-versions are
    /// kept: the go command leaves them out of `-versions` but derives `@latest` from them
    /// when `@latest` is not found (`modfetch.proxyRepo.latestFromList`).
    pub(super) async fn source_versions(&self, what: &str) -> Result<Vec<ListLine>, Error> {
        let missing = || self.offline_miss(what);
        walk!(self.tiers(), missing(), |tier| match tier {
            Tier::Git(git) => git
                .list(self.module)
                .await
                .map(|tags| tags.into_iter().map(ListLine::bare).collect())
                .map_err(|e| git_error(what.to_owned(), e)),
            Tier::Proxy => {
                let rel = format!("{}/@v/list", self.module.escaped());
                self.fetch_changing(&rel, fill::MAX_LIST)
                    .await
                    .map(|body| ListLine::parse_all(&body))
            }
        })
    }

    /// `@latest` (named `what` in errors) from the first source that knows the module: a
    /// checked `.info` body.
    pub(super) async fn source_latest(&self, what: &str) -> Result<Bytes, Error> {
        let missing = || self.offline_miss(what);
        walk!(self.tiers(), missing(), |tier| match tier {
            Tier::Git(git) => match git.latest(self.module).await {
                Ok(info) => info_json(&info),
                Err(e) => Err(git_error(what.to_owned(), e)),
            },
            Tier::Proxy => {
                let rel = format!("{}/@latest", self.module.escaped());
                match self.fetch_changing(&rel, fill::MAX_INFO).await {
                    Ok(body) => fill::check_info(&body, None)
                        .map(|()| body)
                        .map_err(|reason| self.bad_info(&rel, reason)),
                    Err(e) => Err(e),
                }
            }
        })
    }

    /// A non-canonical `.info` query (branch, tag, hash) from the first source that resolves it.
    pub(super) async fn source_query(&self, query: &str) -> Result<Bytes, Error> {
        let escaped = crate::goproxy::escape::escape_version(query)
            .map_err(|e| Error::BadRequest(format!("version {query:?}: {e}")))?;
        let rel = format!("{}/@v/{escaped}.info", self.module.escaped());
        let missing = || self.offline_miss(&rel);
        walk!(self.tiers(), missing(), |tier| match tier {
            Tier::Git(git) => match git.info(self.module, query).await {
                Ok(info) => info_json(&info),
                Err(e) => Err(git_error(rel.clone(), e)),
            },
            Tier::Proxy => match self.fetch_changing(&rel, fill::MAX_INFO).await {
                Ok(body) => fill::check_info(&body, None)
                    .map(|()| body)
                    .map_err(|reason| self.bad_info(&rel, reason)),
                Err(e) => Err(e),
            },
        })
    }
}

/// One line of a `list` answer: a version and, when the source gave one, its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ListLine {
    pub version: String,
    pub time: Option<String>,
}

impl ListLine {
    pub(super) fn bare(version: String) -> Self {
        ListLine {
            version,
            time: None,
        }
    }

    /// The lines of an upstream's `list` the go command would read: a valid version first, and
    /// an RFC 3339 time after it if there is one (`modfetch.proxyRepo.Versions`).
    pub(super) fn parse_all(body: &[u8]) -> Vec<Self> {
        String::from_utf8_lossy(body)
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let version = fields.next().filter(|v| semver::is_valid(v))?;
                let time = fields.next().filter(|t| fill::looks_like_rfc3339(t));
                Some(ListLine {
                    version: version.to_owned(),
                    time: time.map(str::to_owned),
                })
            })
            .collect()
    }
}

impl Fetcher {
    fn tiers(&self) -> Vec<Tier> {
        tiers(self.git.as_ref(), !self.sources_offline())
    }

    fn missing(&self, version: &str, ext: &str) -> Error {
        Error::NotFound(format!("{}: not found", self.what(version, ext)))
    }

    /// A version's go.mod from the first source that has it, checked and stored.
    pub async fn fetch_mod(&self, version: &str) -> Result<Bytes, Error> {
        walk!(
            self.tiers(),
            self.missing(version, "mod"),
            |tier| match tier {
                Tier::Git(git) => self.git_mod(&git, version).await,
                Tier::Proxy => self.fetch_mod_proxy(version).await,
            }
        )
    }

    /// A canonical version's `.info` from the first source that has it, checked and kept
    /// ([`Fetcher::keep_info`]).
    pub async fn fetch_info(&self, version: &str) -> Result<Bytes, Error> {
        walk!(
            self.tiers(),
            self.missing(version, "info"),
            |tier| match tier {
                Tier::Git(git) => match self.git_info(&git, version).await {
                    Ok(body) => self.keep_info(version, body).await,
                    Err(e) => Err(e),
                },
                Tier::Proxy => self.fetch_info_proxy(version).await,
            }
        )
    }

    /// Fills a whole version from the first source that has it.
    pub(super) async fn fill(&self, version: &str) -> Result<(), Error> {
        // An earlier fill may have finished between the caller's miss and this run.
        if self
            .store
            .contains(self.key(version, ArtifactKind::Info))
            .await?
            && self
                .store
                .contains(self.key(version, ArtifactKind::Zip))
                .await?
        {
            return Ok(());
        }
        walk!(
            self.tiers(),
            self.missing(version, "zip"),
            |tier| match tier {
                Tier::Git(git) => self.fill_git(&git, version).await,
                Tier::Proxy => self.fill_proxy(version).await,
            }
        )
    }

    async fn git_info(&self, git: &GitSource, version: &str) -> Result<Bytes, Error> {
        let what = self.what(version, "info");
        let info = git
            .info(&self.module, version)
            .await
            .map_err(|e| git_error(what.clone(), e))?;
        // A canonical request must resolve to itself (`modfetch.proxyRepo.Stat` checks the
        // same of a proxy); a tag that is not canonical cannot get here.
        if info.version != version {
            return Err(Error::NotFound(format!(
                "{what}: the repository resolves it to {}",
                info.version
            )));
        }
        info_json(&info)
    }

    async fn git_mod(&self, git: &GitSource, version: &str) -> Result<Bytes, Error> {
        let what = self.what(version, "mod");
        let body = Bytes::from(
            git.go_mod(&self.module, version)
                .await
                .map_err(|e| git_error(what.clone(), e))?,
        );
        zipcheck::check_go_mod(&body).map_err(|e| git_error(what, GitError::Build(e.0)))?;
        self.store
            .put_small(self.key(version, ArtifactKind::Mod), &body)
            .await?;
        Ok(body)
    }

    /// Builds the zip from git into a staging file beside its final place, checks it as a
    /// downloaded zip is checked, and commits the version with `.info` last.
    async fn fill_git(&self, git: &GitSource, version: &str) -> Result<(), Error> {
        let info = match self
            .store
            .read_small(self.key(version, ArtifactKind::Info))
            .await?
        {
            Some(info) => info,
            None => self.git_info(git, version).await?,
        };
        let what = self.what(version, "zip");
        let (file, tmp) = self.store.zip_staging(&self.module, version).await?;
        let file = file.into_std().await;
        let storage_err =
            |e: std::io::Error| Error::storage(self.store.name(), format_args!("{what}: {e}"));
        let sync = file.try_clone().map_err(storage_err)?;
        let started = std::time::Instant::now();
        let built = git
            .zip(&self.module, version, file)
            .await
            .map_err(|e| git_error(what.clone(), e))?;
        tokio::task::spawn_blocking(move || sync.sync_all())
            .await?
            .map_err(storage_err)?;
        let staged = verify(
            &self.module,
            version,
            tmp,
            GoMod::Built(Bytes::from(built.go_mod)),
            info,
        )
        .await?
        .map_err(|e| git_error(what.clone(), GitError::Build(e.0)))?;
        if staged.zip_hash != built.zip_h1 {
            return Err(Error::Internal(format!(
                "{what}: built with hash {} but reads back as {}",
                built.zip_h1, staged.zip_hash
            )));
        }
        tracing::info!(module = %self.module, version, files = staged.files, hash = %staged.zip_hash,
            ms = started.elapsed().as_millis() as u64, "stored module version built from git");
        self.store.commit(&self.module, version, staged).await
    }
}
