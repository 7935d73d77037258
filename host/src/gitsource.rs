//! Serving Go modules straight from git repositories, as the go command does in direct mode
//! (`cmd/go/internal/modfetch/coderepo.go` over `codehost/git.go`), with gix: no `go` and no
//! `git` program.
//!
//! A [`RepoMapping`] says which repository holds the modules under a path prefix (the
//! repository root's module path, `codeRoot` in the go command); a [`RepoTemplate`] derives the
//! repository's URL from the root's path and finds the root by probing. Routes get theirs from
//! `config/git.rs`; `handler/git.rs` puts them in the request pipeline. Tags give the version list
//! (`sub/dir/vX.Y.Z` for modules in subdirectories, `+incompatible` for v2+ tags without a
//! go.mod); branch names and hashes resolve to pseudo-versions built on the highest ancestor
//! tag. Remote repositories are mirrored into bare clones under the cache directory and
//! fetched at most once per `fetch_ttl`; local ones are read in place.
//!
//! gopkg.in paths are served as the go command serves them: the repository root is the whole
//! path, `.vN` suffix kept (`gopkg.in/yaml.v3`), and only `vN` tags are its versions (one
//! repository may serve `gopkg.in/yaml.v2` and `.v3`). Not ported: SHA-256 repositories.

mod coderepo;
mod repo;

// The go.mod and tag readers behind version resolution, public for the fuzz targets (fuzz/).
pub use coderepo::{module_path as go_mod_module_path, retract_intervals, tag_to_version};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coderepo::CodeRepo;
pub(crate) use coderepo::module_path;
pub use repo::Credentials;
use repo::{Location, Repo};

use crate::goproxy::path::{ModulePath, split_path_version};
use crate::goproxy::semver;
use crate::goproxy::zipbuild::{self, BuildError, BuiltZip};

/// Which repository holds the modules whose paths start with `module_prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoMapping {
    /// Module path of the repository root (`corp.example/lib`); modules below it live in
    /// subdirectories named by the rest of their path.
    pub module_prefix: String,
    /// `https://`, `http://`, `ssh://`, `git://`, `file://` URL, an scp-like `user@host:path`
    /// or a local path.
    pub url: String,
    /// Basic credentials for an https remote (never sent over plain http; a remote that asks
    /// for credentials when none are configured is a fetch failure, never a prompt), or the
    /// key and known hosts of an ssh remote.
    pub credentials: Option<Credentials>,
}

/// Repositories named by a URL template, for modules no [`RepoMapping`] covers: `{module}` in
/// `url` stands for the repository root's module path (`corp.example/team/lib`), `{path}` for
/// it without its first element (`team/lib`).
///
/// The repository root of a module is found as the go command finds the root of a path with a
/// `.git` qualifier (`cmd/go/internal/vcs`, `vcsPaths`): the shortest path prefix that names a
/// repository (at least two elements), unless `root_elements` fixes the number of elements (as
/// the go command's built-in pattern for a `host/owner/repo` forge does). A prefix whose URL
/// answers "not found" (HTTP 404/410, no such local directory) is skipped; any other failure
/// stops the search (502), so an outage never turns into a 404.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoTemplate {
    /// URL (or local path) with `{module}` and/or `{path}`.
    pub url: String,
    /// Basic credentials for an https remote, or the key and known hosts of an ssh remote.
    pub credentials: Option<Credentials>,
    /// Path elements of every repository root (host included), when fixed.
    pub root_elements: Option<usize>,
}

impl RepoTemplate {
    /// The URL of the repository whose root module path is `root`.
    pub fn url_for(&self, root: &str) -> String {
        let path = root.split_once('/').map_or("", |(_, rest)| rest);
        self.url.replace("{module}", root).replace("{path}", path)
    }
}

/// Why a git source could not answer. One-line messages.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// Unknown module, version or query (the client's; 404).
    #[error("{0}")]
    NotFound(String),
    /// A version that is not canonical or does not fit the module (the client's; 404).
    #[error("{0}")]
    InvalidVersion(String),
    /// The repository could not be fetched (upstream; 502).
    #[error("{0}")]
    Fetch(String),
    /// The module's tree breaks a zip rule (names the file and rule).
    #[error("{0}")]
    Build(String),
    /// Something else went wrong reading the repository or the cache.
    #[error("git source: {0}")]
    Internal(String),
}

impl GitError {
    fn one_line(s: impl std::fmt::Display) -> String {
        s.to_string().replace(['\n', '\r'], " ")
    }
    fn fetch(s: impl std::fmt::Display) -> Self {
        Self::Fetch(Self::one_line(s))
    }
    fn internal(s: impl std::fmt::Display) -> Self {
        Self::Internal(Self::one_line(s))
    }
    fn not_found(s: impl std::fmt::Display) -> Self {
        Self::NotFound(Self::one_line(s))
    }
    fn invalid(module: &ModulePath, version: &str, s: impl std::fmt::Display) -> Self {
        Self::InvalidVersion(Self::one_line(format!(
            "{module}@{version}: invalid version: {s}"
        )))
    }
}

/// A resolved version, serialized as the go command's `.info` file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RevInfo {
    /// Canonical version (a pseudo-version for an untagged commit).
    #[serde(rename = "Version")]
    pub version: String,
    /// Commit time, UTC, RFC 3339.
    #[serde(rename = "Time")]
    pub time: String,
}

/// The repository and directory that serve one module (`newCodeRepo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// Index of the mapping in the source's list (templates count after the mappings).
    pub mapping: usize,
    /// The repository's URL or path.
    pub url: String,
    /// The module path.
    pub module: ModulePath,
    /// Repository root module path (`codeRoot`).
    pub code_root: String,
    /// Subdirectory named by the path, without the major suffix (`codeDir`, `""` at the root).
    pub code_dir: String,
    /// Module path without its major suffix (`pathPrefix`).
    pub path_prefix: String,
    /// `"/v2"` or `""` (`pathMajor`).
    pub path_major: String,
}

impl Located {
    /// `pseudoMajor` (`module.PathMajorPrefix`): `v2` for `/v2`, `.v2` and `.v2-unstable`;
    /// `""` (meaning v0) without a suffix.
    fn pseudo_major(&self) -> &str {
        let major = self.path_major.get(1..).unwrap_or("");
        if self.path_major.starts_with(".v") {
            major.strip_suffix("-unstable").unwrap_or(major)
        } else {
            major
        }
    }

    /// Tag prefix of this module's versions (`codeDir/`).
    fn tag_prefix(&self) -> String {
        if self.code_dir.is_empty() {
            String::new()
        } else {
            format!("{}/", self.code_dir)
        }
    }
}

/// How soon a cached clone may be fetched again because something asked for was not in it.
pub const MISS_REFETCH: Duration = Duration::from_secs(5);

/// When [`GitSource::ready`] fetches a remote.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// Refs must be at most `fetch_ttl` old (lists, `@latest`, branches, short hashes).
    Fresh,
    /// Any clone will do (canonical versions and full hashes name immutable content).
    Present,
    /// Something was not found: fetch unless the last fetch was a moment ago.
    Missing,
}

struct RepoState {
    location: Location,
    credentials: Option<Credentials>,
    /// Held while fetching: one fetch per repository at a time; `None` until the first.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

/// The cached clones under one directory, shared by every [`GitSource`] of a configuration so
/// that two routes naming the same remote never fetch into its clone at the same time.
#[derive(Debug)]
pub struct GitCache {
    dir: PathBuf,
    repos: std::sync::Mutex<std::collections::HashMap<String, Arc<RepoState>>>,
}

impl std::fmt::Debug for RepoState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoState").finish_non_exhaustive()
    }
}

impl GitCache {
    /// Clones of remotes go under `dir` (created on first fetch).
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            repos: std::sync::Mutex::default(),
        }
    }

    /// The directory holding the clones.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The state of the repository at `url`, created on first use. (Credentials for a plain
    /// http remote are refused by the transport with a message saying so, and by config
    /// resolution before that.)
    ///
    /// One clone per remote *and credentials*: two routes naming one remote with different
    /// credentials never read what the other's credentials fetched, nor fetch with them.
    fn state(&self, url: &str, credentials: Option<&Credentials>) -> Arc<RepoState> {
        let key = match credentials {
            None => url.to_owned(),
            Some(c) => format!("{url}\0{}", c.fingerprint()),
        };
        let mut repos = self.repos.lock().unwrap_or_else(|p| p.into_inner());
        let state = repos.entry(key.clone()).or_insert_with(|| {
            let location = if let Some(p) = url.strip_prefix("file://") {
                Location::Local(PathBuf::from(p))
            } else if url.contains("://") || is_scp_like(url) {
                Location::Remote {
                    url: url.to_owned(),
                    cache: self.dir.join(cache_name(&key)),
                }
            } else {
                Location::Local(PathBuf::from(url))
            };
            Arc::new(RepoState {
                location,
                credentials: credentials.cloned(),
                last_fetch: tokio::sync::Mutex::new(None),
            })
        });
        Arc::clone(state)
    }
}

/// Modules served from git repositories. Cheap to share behind an `Arc`.
pub struct GitSource {
    mappings: Vec<RepoMapping>,
    templates: Vec<RepoTemplate>,
    fetch_ttl: Duration,
    cache: Arc<GitCache>,
    /// Template answers: candidate root → whether a repository is there, and since when.
    roots: std::sync::Mutex<std::collections::HashMap<String, (bool, Instant)>>,
    /// Fetches started, for metrics and tests.
    fetches: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for GitSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitSource")
            .field("mappings", &self.mappings)
            .field("fetch_ttl", &self.fetch_ttl)
            .finish_non_exhaustive()
    }
}

impl GitSource {
    /// A source for `mappings`, caching remote repositories as bare clones under `cache_dir`
    /// and fetching each at most once per `fetch_ttl`.
    pub fn new(cache_dir: PathBuf, mappings: Vec<RepoMapping>, fetch_ttl: Duration) -> Self {
        Self::with_cache(
            Arc::new(GitCache::new(cache_dir)),
            mappings,
            Vec::new(),
            fetch_ttl,
        )
    }

    /// A source for `mappings` and then `templates` (for modules no mapping covers), sharing
    /// `cache` with other sources.
    pub fn with_cache(
        cache: Arc<GitCache>,
        mappings: Vec<RepoMapping>,
        templates: Vec<RepoTemplate>,
        fetch_ttl: Duration,
    ) -> Self {
        Self {
            mappings,
            templates,
            fetch_ttl,
            cache,
            roots: std::sync::Mutex::default(),
            fetches: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many fetches from remotes this source has started.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Which repository and directory serve `module`: the longest mapping prefix; the rest of
    /// the path, without a `/vN` suffix, is the subdirectory (`newCodeRepo`). Templates are not
    /// consulted (see [`GitSource::resolve`]).
    pub fn locate(&self, module: &ModulePath) -> Option<Located> {
        let path = module.as_str();
        let (mapping, m) = self
            .mappings
            .iter()
            .enumerate()
            .filter(|(_, m)| has_path_prefix(path, &m.module_prefix))
            .max_by_key(|(_, m)| m.module_prefix.len())?;
        locate_in(module, mapping, &m.module_prefix, &m.url)
    }

    /// Whether some mapping or template could serve `module` (without touching a repository).
    pub fn covers(&self, module: &ModulePath) -> bool {
        !self.templates.is_empty() || self.locate(module).is_some()
    }

    /// [`GitSource::locate`], then the templates in order: the first that finds a repository
    /// root for `module` (probing candidate roots, shortest first, unless the template fixes
    /// the root's length). Answers are remembered: found roots for good, absent ones for
    /// `fetch_ttl`.
    pub async fn resolve(&self, module: &ModulePath) -> Result<Located, GitError> {
        if let Some(loc) = self.locate(module) {
            return Ok(loc);
        }
        let no_repo =
            || GitError::not_found(format!("{module}: no git repository for this module"));
        if self.templates.is_empty() {
            return Err(no_repo());
        }
        // A gopkg.in path is its own repository root, `.vN` kept (`vcs` resolves
        // `gopkg.in/yaml.v3`, not `gopkg.in/yaml`); other roots are prefixes of the path
        // without its `/vN`.
        let gopkg_in = module.as_str().starts_with("gopkg.in/");
        let prefix = if gopkg_in {
            module.as_str()
        } else {
            split_path_version(module.as_str()).map_or(module.as_str(), |(prefix, _)| prefix)
        };
        let elements: Vec<&str> = prefix.split('/').collect();
        let mut tried = Vec::new();
        for (t, template) in self.templates.iter().enumerate() {
            let index = self.mappings.len() + t;
            let lengths: Vec<usize> = match template.root_elements {
                _ if gopkg_in => vec![elements.len()],
                Some(n) if n <= elements.len() => vec![n],
                Some(_) => Vec::new(),
                None => (2..=elements.len()).collect(),
            };
            for n in lengths {
                let root = elements[..n].join("/");
                let url = template.url_for(&root);
                let key = format!("{t}\0{root}");
                let known = {
                    let roots = self.roots.lock().unwrap_or_else(|p| p.into_inner());
                    roots
                        .get(&key)
                        .filter(|(found, at)| *found || at.elapsed() < self.fetch_ttl)
                        .map(|(found, _)| *found)
                };
                let found = match known {
                    Some(found) => found,
                    None => {
                        let state = self.cache.state(&url, template.credentials.as_ref());
                        let found = match self.ready_state(&state, Want::Fresh).await {
                            Ok((path, cached)) => cached || Repo::is_repository(&path),
                            Err(GitError::Fetch(m)) if is_not_found_message(&m) => false,
                            Err(e) => return Err(e),
                        };
                        self.roots
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(key, (found, Instant::now()));
                        found
                    }
                };
                if found {
                    return locate_in(module, index, &root, &url).ok_or_else(no_repo);
                }
                tried.push(url);
            }
        }
        Err(GitError::not_found(format!(
            "{module}: no git repository for this module (tried {})",
            tried.join(", ")
        )))
    }

    /// Makes the repository ready to read and returns its path and whether it is a cached
    /// clone. A remote is fetched (one fetch per repository at a time; waiters then reuse its
    /// result) when `want` asks for it: [`Want::Fresh`] when the last fetch is older than
    /// `fetch_ttl`, [`Want::Present`] only when there is no clone yet, [`Want::Missing`] when
    /// the last fetch is older than [`MISS_REFETCH`].
    async fn ready(&self, loc: &Located, want: Want) -> Result<(PathBuf, bool), GitError> {
        let credentials = self.credentials(loc.mapping);
        let state = self.cache.state(&loc.url, credentials);
        self.ready_state(&state, want).await
    }

    fn credentials(&self, index: usize) -> Option<&Credentials> {
        match self.mappings.get(index) {
            Some(m) => m.credentials.as_ref(),
            None => self
                .templates
                .get(index - self.mappings.len())
                .and_then(|t| t.credentials.as_ref()),
        }
    }

    async fn ready_state(
        &self,
        state: &Arc<RepoState>,
        want: Want,
    ) -> Result<(PathBuf, bool), GitError> {
        match &state.location {
            Location::Local(p) => Ok((p.clone(), false)),
            Location::Remote { url, cache } => {
                let mut last = state.last_fetch.lock().await;
                let age = last.map(|t| t.elapsed());
                let fetch = match want {
                    Want::Fresh => age.is_none_or(|a| a >= self.fetch_ttl),
                    Want::Present => age.is_none() && !cache.join("HEAD").exists(),
                    Want::Missing => age.is_none_or(|a| a >= MISS_REFETCH),
                };
                if fetch {
                    self.fetches
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let (url, cache2, creds) =
                        (url.clone(), cache.clone(), state.credentials.clone());
                    tokio::task::spawn_blocking(move || repo::fetch(&url, &cache2, creds.as_ref()))
                        .await
                        .map_err(GitError::internal)??;
                    *last = Some(Instant::now());
                }
                Ok((cache.clone(), true))
            }
        }
    }

    /// Runs `f` on the module's repository on the blocking pool. When `f` finds nothing
    /// (`NotFound`) in a cached clone, the remote is fetched once more (at most every
    /// [`MISS_REFETCH`]) and `f` retried: a commit or tag pushed a moment ago is found without
    /// waiting for `fetch_ttl`.
    async fn with_repo<T: Send + 'static>(
        &self,
        module: &ModulePath,
        want: Want,
        f: impl Fn(&CodeRepo<'_>) -> Result<T, GitError> + Send + Sync + 'static,
    ) -> Result<T, GitError> {
        let loc = Arc::new(self.resolve(module).await?);
        let f = Arc::new(f);
        let run = |path: PathBuf, cached: bool| {
            let (loc, f) = (Arc::clone(&loc), Arc::clone(&f));
            async move {
                tokio::task::spawn_blocking(move || {
                    let repo = Repo::open(&path, cached)?;
                    f(&CodeRepo {
                        repo: &repo,
                        loc: &loc,
                    })
                })
                .await
                .map_err(GitError::internal)?
            }
        };
        let (path, cached) = self.ready(&loc, want).await?;
        match run(path, cached).await {
            Err(GitError::NotFound(_)) if cached => {
                let (path, cached) = self.ready(&loc, Want::Missing).await?;
                run(path, cached).await
            }
            other => other,
        }
    }

    /// The module's tagged versions, sorted (`codeRepo.Versions`).
    pub async fn list(&self, module: &ModulePath) -> Result<Vec<String>, GitError> {
        self.with_repo(module, Want::Fresh, |r| r.versions()).await
    }

    /// Resolves `query` (canonical version, tag, branch, full or short hash) to its canonical
    /// version and commit time (`codeRepo.Stat`).
    pub async fn info(&self, module: &ModulePath, query: &str) -> Result<RevInfo, GitError> {
        if query == "latest" {
            return self.latest(module).await;
        }
        // A canonical version or a full hash names the same commit forever: the clone answers
        // if it has it. Branches and abbreviated hashes follow the remote.
        let immutable = semver::canonical(query).as_deref() == Some(query)
            || (query.len() == 40 && query.bytes().all(|b| b.is_ascii_hexdigit()));
        let want = if immutable {
            Want::Present
        } else {
            Want::Fresh
        };
        let q = query.to_owned();
        self.with_repo(module, want, move |r| r.stat(&q)).await
    }

    /// `@latest`: the highest release, else the highest pre-release, else the default branch's
    /// head (`modload.queryLatest` over `codeRepo.Latest`).
    pub async fn latest(&self, module: &ModulePath) -> Result<RevInfo, GitError> {
        self.with_repo(module, Want::Fresh, |r| {
            let versions = r.versions()?;
            let best = versions
                .iter()
                .rev()
                .find(|v| semver::prerelease(v).is_empty())
                .or_else(|| versions.last());
            match best {
                Some(v) => r.stat(v),
                None => r.latest_head(),
            }
        })
        .await
    }

    /// The go.mod of `module@version` (`codeRepo.GoMod`): the raw blob, or `module <path>\n`.
    pub async fn go_mod(&self, module: &ModulePath, version: &str) -> Result<Vec<u8>, GitError> {
        let v = version.to_owned();
        self.with_repo(module, Want::Present, move |r| {
            r.check_canonical_request(&v)?;
            r.go_mod(&v)
        })
        .await
    }

    /// Writes the zip of `module@version` to `out` (`codeRepo.Zip` via
    /// [`zipbuild::zip_from_git`]).
    pub async fn zip(
        &self,
        module: &ModulePath,
        version: &str,
        out: std::fs::File,
    ) -> Result<BuiltZip, GitError> {
        let v = version.to_owned();
        self.with_repo(module, Want::Present, move |r| {
            r.check_canonical_request(&v)?;
            let found = r.find_dir(&v)?;
            // Nothing was written yet if an earlier attempt found nothing.
            let mut out = out.try_clone().map_err(GitError::internal)?;
            zipbuild::zip_from_git(
                r.repo.path(),
                &found.rev.name,
                &found.dir,
                &r.loc.module,
                &v,
                &mut out,
            )
            .map_err(|e| match e {
                BuildError::Version { .. } => GitError::InvalidVersion(e.to_string()),
                BuildError::Io { .. } | BuildError::Git(_) => GitError::internal(e),
                _ => GitError::Build(GitError::one_line(format!("{}@{v}: {e}", r.loc.module))),
            })
        })
        .await
    }

    /// Fetches the module's repository now, regardless of `fetch_ttl` (still at most once per
    /// [`MISS_REFETCH`]).
    pub async fn refresh(&self, module: &ModulePath) -> Result<(), GitError> {
        let loc = self.resolve(module).await?;
        self.ready(&loc, Want::Missing).await.map(drop)
    }
}

/// `newCodeRepo` for a repository whose root module path is `code_root`.
fn locate_in(module: &ModulePath, mapping: usize, code_root: &str, url: &str) -> Option<Located> {
    let path = module.as_str();
    let (mut path_prefix, path_major) = split_path_version(path)?;
    if code_root == path {
        path_prefix = path;
    }
    let code_dir = if code_root == path {
        String::new()
    } else {
        if !has_path_prefix(path_prefix, code_root) {
            return None;
        }
        path_prefix[code_root.len()..].trim_matches('/').to_owned()
    };
    Some(Located {
        mapping,
        url: url.to_owned(),
        module: module.clone(),
        code_root: code_root.to_owned(),
        code_dir,
        path_prefix: path_prefix.to_owned(),
        path_major: path_major.to_owned(),
    })
}

/// Whether a fetch failure says the repository does not exist (so a template tries the next
/// candidate root) rather than that the server failed.
fn is_not_found_message(message: &str) -> bool {
    // git daemon does not tell "no such repository" from "not exported".
    [
        "HTTP status 404",
        "HTTP status 410",
        "does not appear to be a git repository",
        "repository not exported",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

/// Whether `url` is an scp-like ssh address (`git@host:team/repo.git`), by git's own rule: a
/// colon, and no slash before it (`url_is_local_not_ssh`).
pub fn is_scp_like(url: &str) -> bool {
    !url.contains("://")
        && url
            .find(':')
            .is_some_and(|colon| url.find('/').is_none_or(|slash| colon < slash))
}

/// Whether `url` is reached over ssh (`ssh://…` or scp-like).
pub fn is_ssh(url: &str) -> bool {
    url.starts_with("ssh://") || is_scp_like(url)
}

/// A stable directory name for a remote's bare clone.
fn cache_name(url: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(url.as_bytes());
    format!("{}.git", hex::encode(&digest[..16]))
}

/// `str.HasPathPrefix`: `prefix` equals `s` or is followed by `/` in it.
fn has_path_prefix(s: &str, prefix: &str) -> bool {
    s == prefix || (s.starts_with(prefix) && s.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// `path.Join` for two repository-relative paths.
fn join(dir: &str, file: &str) -> String {
    if dir.is_empty() {
        file.to_owned()
    } else {
        format!("{dir}/{file}")
    }
}

#[cfg(test)]
mod tests;
