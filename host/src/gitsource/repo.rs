//! One git repository as the go command's `codehost.gitRepo` sees it, read with gix: refs,
//! `Stat` of a revision, `ReadFile`, `RecentTag` and `DescendsFrom`
//! (`cmd/go/internal/modfetch/codehost/git.go`), plus fetching into a local bare cache.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use gix::bstr::ByteSlice as _;

use super::GitError;
use crate::goproxy::pseudo::Timestamp;
use crate::goproxy::semver;

/// Where the commit behind the remote's `HEAD` is recorded in a cached clone (a bare clone has
/// no remote-tracking refs, and its own `HEAD` is not updated by a fetch).
const REMOTE_HEAD: &str = "refs/modgate/HEAD";

/// `codehost.RevInfo`: what a revision resolves to.
#[derive(Debug, Clone)]
pub(super) struct CodeRev {
    /// Full commit hash (hex).
    pub name: String,
    /// 12-character hash prefix (`shortenObjectHash`).
    pub short: String,
    /// Committer time (`%ct`), UTC.
    pub time: Timestamp,
    /// The tag the revision was asked by, when it is one of [`CodeRev::tags`], else the hash.
    pub version: String,
    /// Tags pointing at the commit, sorted, deduplicated.
    pub tags: Vec<String>,
}

/// An opened repository, isolated from user and system git configuration.
pub(super) struct Repo {
    repo: gix::Repository,
    /// The reference holding the default branch's commit.
    head_ref: &'static str,
    /// Every tag, peeled to its commit.
    tags: BTreeMap<String, gix::ObjectId>,
}

impl Repo {
    /// Opens the repository at `path`. `cached` says whether it is one of our bare clones (whose
    /// default branch is recorded in [`REMOTE_HEAD`]) rather than the source repository itself.
    pub(super) fn open(path: &Path, cached: bool) -> Result<Self, GitError> {
        let repo = gix::open_opts(path, gix::open::Options::isolated())
            .map_err(|e| GitError::fetch(format!("opening {}: {e}", path.display())))?;
        let mut tags = BTreeMap::new();
        let platform = repo.references().map_err(GitError::internal)?;
        for r in platform.tags().map_err(GitError::internal)? {
            let Ok(mut r) = r else { continue };
            let name = r.name().as_bstr().to_str_lossy().into_owned();
            let Some(tag) = name.strip_prefix("refs/tags/") else {
                continue;
            };
            let tag = tag.to_owned();
            if let Ok(id) = r.peel_to_id() {
                let id = id.detach();
                // Tags of trees or blobs cannot name a module version.
                if let Some(commit) = peel_to_commit(&repo, id) {
                    tags.insert(tag, commit);
                }
            }
        }
        Ok(Self {
            repo,
            head_ref: if cached { REMOTE_HEAD } else { "HEAD" },
            tags,
        })
    }

    /// Whether `path` holds a git repository (bare or not).
    pub(super) fn is_repository(path: &Path) -> bool {
        gix::open_opts(path, gix::open::Options::isolated()).is_ok()
    }

    pub(super) fn path(&self) -> &Path {
        self.repo.path()
    }

    /// All tags with `prefix` (`codehost.Repo.Tags`), by name.
    pub(super) fn tags(&self, prefix: &str) -> impl Iterator<Item = &str> {
        self.tags
            .keys()
            .filter(move |t| t.starts_with(prefix))
            .map(String::as_str)
    }

    fn reference_commit(&self, name: &str) -> Option<gix::ObjectId> {
        let mut r = self.repo.find_reference(name).ok()?;
        let id = r.peel_to_id().ok()?.detach();
        peel_to_commit(&self.repo, id)
    }

    /// The commit of the default branch (`refs["HEAD"]`).
    pub(super) fn head(&self) -> Option<gix::ObjectId> {
        self.reference_commit(self.head_ref)
    }

    /// `gitRepo.stat`: a full or abbreviated (≥ 7 digits) hash, a tag, a branch, or `HEAD`.
    pub(super) fn stat(&self, rev: &str) -> Result<CodeRev, GitError> {
        let is_hex =
            rev.len() >= 7 && rev.len() <= 40 && rev.bytes().all(|b| b.is_ascii_hexdigit());
        if is_hex && let Some(id) = self.lookup_hex(rev)? {
            return self.stat_local(rev, id);
        }
        if let Some(&id) = self.tags.get(rev) {
            return self.stat_local(rev, id);
        }
        let id = if rev == "HEAD" {
            self.head()
        } else {
            self.reference_commit(&format!("refs/heads/{rev}"))
        };
        match id {
            Some(id) => self.stat_local(rev, id),
            None => Err(GitError::NotFound(format!("unknown revision {rev}"))),
        }
    }

    /// A hex object name or prefix, peeled to a commit; an ambiguous prefix is an error.
    fn lookup_hex(&self, rev: &str) -> Result<Option<gix::ObjectId>, GitError> {
        let id = if rev.len() == 40 {
            gix::ObjectId::from_hex(rev.as_bytes()).ok()
        } else {
            let prefix = gix::hash::Prefix::from_hex(rev).map_err(GitError::internal)?;
            match self
                .repo
                .objects
                .lookup_prefix(prefix, None)
                .map_err(GitError::internal)?
            {
                Some(Ok(id)) => Some(id),
                Some(Err(())) => {
                    return Err(GitError::NotFound(format!("ambiguous revision {rev}")));
                }
                None => None,
            }
        };
        Ok(id.and_then(|id| peel_to_commit(&self.repo, id)))
    }

    /// `gitRepo.statLocal`.
    fn stat_local(&self, version: &str, id: gix::ObjectId) -> Result<CodeRev, GitError> {
        let commit = self
            .repo
            .find_commit(id)
            .map_err(|e| GitError::NotFound(format!("unknown revision {version}: {e}")))?;
        let secs = commit.time().map_err(GitError::internal)?.seconds;
        let time = Timestamp::from_unix(secs)
            .ok_or_else(|| GitError::internal(format!("commit {id}: time out of range")))?;
        let name = id.to_hex().to_string();
        let tags: Vec<String> = self
            .tags
            .iter()
            .filter(|(_, c)| **c == id)
            .map(|(t, _)| t.clone())
            .collect();
        let version = if tags.iter().any(|t| t == version) {
            version.to_owned()
        } else {
            name.clone()
        };
        Ok(CodeRev {
            short: name[..12].to_owned(),
            name,
            time,
            version,
            tags,
        })
    }

    /// `gitRepo.ReadFile`: the raw blob at `file` in commit `rev` (as `git cat-file blob`, so a
    /// symlink yields its target), `None` when there is no blob there.
    pub(super) fn read_file(&self, rev: &str, file: &str) -> Result<Option<Vec<u8>>, GitError> {
        let id = gix::ObjectId::from_hex(rev.as_bytes()).map_err(GitError::internal)?;
        let commit = self.repo.find_commit(id).map_err(GitError::internal)?;
        let tree = commit.tree().map_err(GitError::internal)?;
        let Some(entry) = tree
            .lookup_entry_by_path(file)
            .map_err(GitError::internal)?
        else {
            return Ok(None);
        };
        if !entry.mode().is_blob_or_symlink() {
            return Ok(None);
        }
        let blob = entry.object().map_err(GitError::internal)?;
        Ok(Some(blob.detach().data))
    }

    /// Every commit reachable from `rev` (itself included): `--merged=rev`,
    /// `merge-base --is-ancestor`.
    fn ancestors(&self, rev: gix::ObjectId) -> Result<HashSet<gix::ObjectId>, GitError> {
        let mut seen = HashSet::new();
        for info in self
            .repo
            .rev_walk([rev])
            .all()
            .map_err(GitError::internal)?
        {
            seen.insert(info.map_err(GitError::internal)?.id);
        }
        Ok(seen)
    }

    /// `gitRepo.RecentTag`: the highest tag with `prefix`, accepted by `allowed`, whose commit
    /// is an ancestor of (or is) `rev` — the highest, not the nearest.
    pub(super) fn recent_tag(
        &self,
        rev: &str,
        prefix: &str,
        allowed: impl Fn(&str) -> bool,
    ) -> Result<Option<String>, GitError> {
        let id = gix::ObjectId::from_hex(rev.as_bytes()).map_err(GitError::internal)?;
        let ancestors = self.ancestors(id)?;
        let mut highest = String::new();
        for (tag, commit) in &self.tags {
            if !tag.starts_with(prefix) || !ancestors.contains(commit) || !allowed(tag) {
                continue;
            }
            let semtag = &tag[prefix.len()..];
            if semver::compare(semtag, &highest).is_gt() {
                highest = semtag.to_owned();
            }
        }
        Ok((!highest.is_empty()).then(|| format!("{prefix}{highest}")))
    }

    /// `gitRepo.DescendsFrom`: whether `tag`'s commit is an ancestor of `rev`.
    pub(super) fn descends_from(&self, rev: &str, tag: &str) -> Result<bool, GitError> {
        let Some(&tag_commit) = self.tags.get(tag) else {
            return Ok(false);
        };
        let id = gix::ObjectId::from_hex(rev.as_bytes()).map_err(GitError::internal)?;
        Ok(self.ancestors(id)?.contains(&tag_commit))
    }
}

fn peel_to_commit(repo: &gix::Repository, id: gix::ObjectId) -> Option<gix::ObjectId> {
    let object = repo.find_object(id).ok()?;
    Some(object.peel_to_commit().ok()?.id)
}

/// How modgate authenticates to a remote.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// HTTP Basic, sent to https remotes only.
    Basic {
        /// User name.
        username: String,
        /// Password or token.
        password: String,
    },
    /// A private key for an ssh remote, whose host key must be in `known_hosts`.
    Ssh {
        /// The key, as OpenSSH or PEM text.
        key: String,
        /// A known_hosts file (OpenSSH's format).
        known_hosts: PathBuf,
    },
}

impl Credentials {
    /// A digest telling credentials apart without holding them.
    pub(super) fn fingerprint(&self) -> String {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        match self {
            Self::Basic { username, password } => {
                h.update(b"basic\0");
                h.update(username.as_bytes());
                h.update(b"\0");
                h.update(password.as_bytes());
            }
            Self::Ssh { key, known_hosts } => {
                h.update(b"ssh\0");
                h.update(key.trim().as_bytes());
                h.update(b"\0");
                h.update(known_hosts.as_os_str().as_encoded_bytes());
            }
        }
        hex::encode(&h.finalize()[..16])
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .finish_non_exhaustive(),
            Self::Ssh { known_hosts, .. } => f
                .debug_struct("Ssh")
                .field("known_hosts", known_hosts)
                .finish_non_exhaustive(),
        }
    }
}

/// Where a mapping's repository is read from.
pub(super) enum Location {
    /// A local repository (plain path or `file://`), read in place: nothing to clone, and
    /// fetching from it would need the `git upload-pack` program.
    Local(PathBuf),
    /// A remote (`https://`, `http://`, `ssh://` or scp-like, `git://`), mirrored into a bare
    /// clone at `cache`.
    Remote { url: String, cache: PathBuf },
}

/// Creates the bare clone at `cache` if needed and fetches all branches and tags from `url`
/// into it (branches and tags mirrored under their own names, the remote `HEAD` recorded as
/// [`REMOTE_HEAD`]). Only missing objects are transferred.
pub(super) fn fetch(
    url: &str,
    cache: &Path,
    credentials: Option<&Credentials>,
) -> Result<(), GitError> {
    // gix's http(s) transport (reqwest with `rustls-no-provider`) uses the process-wide rustls
    // provider; ring is the one modgate links. An error only means one is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let first = !cache.join("HEAD").exists();
    let result = fetch_into(url, cache, credentials);
    if first && result.is_err() {
        // Leave no empty clone behind for a URL that never answered (a template's probe of a
        // path that is not a repository, a typo in the config).
        let _ = std::fs::remove_dir_all(cache);
    }
    result
}

fn fetch_into(url: &str, cache: &Path, credentials: Option<&Credentials>) -> Result<(), GitError> {
    let mut repo = if cache.join("HEAD").exists() {
        gix::open_opts(cache, gix::open::Options::isolated())
            .map_err(|e| GitError::internal(format!("opening cache {}: {e}", cache.display())))?
    } else {
        if let Some(parent) = cache.parent() {
            std::fs::create_dir_all(parent).map_err(GitError::internal)?;
        }
        // A half-made clone from an interrupted first fetch is started again.
        let _ = std::fs::remove_dir_all(cache);
        gix::init_bare(cache).map_err(|e| GitError::internal(format!("creating cache: {e}")))?
    };
    let ssh = match credentials {
        Some(Credentials::Ssh { key, known_hosts }) => {
            let session = SshSession::new(key, known_hosts)?;
            let mut config = repo.config_snapshot_mut();
            config
                .set_value(
                    &gix::config::tree::Core::SSH_COMMAND,
                    session.command.as_str(),
                )
                .and_then(|_| config.set_value(&gix::config::tree::Ssh::VARIANT, "ssh"))
                .map_err(GitError::internal)?;
            config.commit().map_err(GitError::internal)?;
            Some(session)
        }
        _ if super::is_ssh(url) => {
            return Err(GitError::fetch(format!(
                "fetching {url}: an ssh remote needs a key and known_hosts"
            )));
        }
        _ => None,
    };
    // The whole cause chain: gix's top-level messages ("Transport handshake failed") alone
    // do not say what went wrong; for ssh, what ssh and the remote printed.
    let fetch_err = |e: &dyn std::error::Error| {
        // What ssh or the remote said is the cause; gix only saw the connection end.
        if let Some(said) = ssh.as_ref().and_then(SshSession::said) {
            return GitError::fetch(format!("fetching {url}: ssh: {said}"));
        }
        let mut msg = format!("fetching {url}: {e}");
        let mut cause = e.source();
        while let Some(c) = cause {
            msg.push_str(&format!(": {c}"));
            cause = c.source();
        }
        GitError::fetch(msg)
    };
    let remote = repo
        .remote_at(url)
        .map_err(|e| fetch_err(&e))?
        .with_fetch_tags(gix::remote::fetch::Tags::None)
        .with_refspecs(
            [
                "+refs/heads/*:refs/heads/*",
                "+refs/tags/*:refs/tags/*",
                "+HEAD:refs/modgate/HEAD",
            ],
            gix::remote::Direction::Fetch,
        )
        .map_err(|e| fetch_err(&e))?;
    let connection = remote
        .connect(gix::remote::Direction::Fetch)
        .map_err(|e| fetch_err(&e))?;
    let connection = match credentials.cloned() {
        Some(Credentials::Basic { username, password }) => {
            connection.with_credentials(move |action| match action {
                gix::credentials::helper::Action::Get(ctx) => {
                    Ok(Some(gix::credentials::protocol::Outcome {
                        identity: gix::sec::identity::Account {
                            username: username.clone(),
                            password: password.clone(),
                            oauth_refresh_token: None,
                        },
                        next: ctx.into(),
                    }))
                }
                _ => Ok(None),
            })
        }
        // Never prompt and never run credential helpers named by some git configuration.
        _ => connection.with_credentials(|_| Ok(None)),
    };
    connection
        .prepare_fetch(gix::progress::Discard, Default::default())
        .map_err(|e| fetch_err(&e))?
        .receive(gix::progress::Discard, &AtomicBool::new(false))
        .map_err(|e| fetch_err(&e))?;
    Ok(())
}

/// One fetch's ssh client settings: the OpenSSH client run with a config file of its own (no
/// user or system ssh configuration, no agent, no prompts), the deploy key in a file only the
/// process can read, host keys checked strictly against the configured `known_hosts`, and what
/// ssh and the remote print to stderr kept for the error message. All removed when dropped.
struct SshSession {
    dir: tempfile::TempDir,
    /// `core.sshCommand`: run through `sh -c`, as git runs it.
    command: String,
}

impl SshSession {
    /// How long ssh waits for the TCP connection, and for a silent server, before giving up.
    const TIMEOUT_SECS: u32 = 15;

    fn new(key: &str, known_hosts: &Path) -> Result<Self, GitError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        // tempfile makes the directory 0700 and files 0600, as ssh demands of a key.
        let dir = tempfile::Builder::new()
            .prefix("modgate-ssh-")
            .tempdir()
            .map_err(GitError::internal)?;
        let key_path = dir.path().join("key");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_path)
            .map_err(GitError::internal)?;
        let mut key = key.trim().to_owned();
        key.push('\n');
        file.write_all(key.as_bytes()).map_err(GitError::internal)?;
        let config_path = dir.path().join("config");
        let quoted = |p: &Path| format!("\"{}\"", p.display());
        let config = format!(
            "Host *\n\
             \tIdentityFile {key}\n\
             \tIdentitiesOnly yes\n\
             \tIdentityAgent none\n\
             \tPreferredAuthentications publickey\n\
             \tBatchMode yes\n\
             \tUserKnownHostsFile {known}\n\
             \tGlobalKnownHostsFile /dev/null\n\
             \tStrictHostKeyChecking yes\n\
             \tUpdateHostKeys no\n\
             \tConnectTimeout {t}\n\
             \tServerAliveInterval {t}\n\
             \tServerAliveCountMax 2\n\
             \tControlMaster no\n\
             \tControlPath none\n\
             \tForwardAgent no\n\
             \tForwardX11 no\n\
             \tClearAllForwardings yes\n\
             \tLogLevel ERROR\n",
            key = quoted(&key_path),
            known = quoted(known_hosts),
            t = Self::TIMEOUT_SECS,
        );
        std::fs::write(&config_path, config).map_err(GitError::internal)?;
        let shell = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', r"'\''"));
        let command = format!(
            "ssh -F {} 2>>{}",
            shell(&config_path),
            shell(&dir.path().join("stderr"))
        );
        Ok(Self { dir, command })
    }

    /// The last two lines ssh and the remote printed (where ssh says why: "Permission denied
    /// (publickey).", "Host key verification failed.", git's "does not appear to be a git
    /// repository"), on one line of at most 300 characters, if anything; banners left out.
    fn said(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.dir.path().join("stderr")).ok()?;
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('@'))
            .collect();
        let line = lines[lines.len().saturating_sub(2)..].join("; ");
        (!line.is_empty()).then(|| line.chars().take(300).collect())
    }
}
