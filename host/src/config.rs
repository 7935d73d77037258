//! Configuration: one TOML file plus `MODGATE_*` environment overrides (figment), in two stages.
//!
//! [`FileConfig`] is the serde shape of the file (`deny_unknown_fields`, defaults); [`Config`] is
//! the resolved form of parsed types that the rest of the host uses. Every key is documented in
//! `docs/config.md`; keep the two in step.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::route::{Dispatch, Entry, Pattern, Route, RouteTable};
use crate::upstream::{SourceEntry, SourceList};

mod acme;
mod git;
mod goproxy;
mod publish;
mod secret;
mod storage;
mod sumdb;

pub use acme::{AcmeFile, Challenge};
pub use git::{GitFile, GitRoute, GitSettings};
pub use goproxy::GoproxyOrigin;
pub use publish::{PublishFile, Uploads};
pub use sumdb::{GosumdbFile, RouteSumdb, SumdbRoute};

/// The configuration modgate runs with when no file is given: fs storage in `./modgate-data`,
/// every module routed to it, fetched through the upstream named by `GOPROXY`: the variable, else
/// the go command's setting (`go env GOPROXY`), else none (offline).
pub const EMBEDDED_DEFAULTS: &str = r#"
[server]
listen = "127.0.0.1:8080"

[storage.local]
plugin = "storage-fs"
config = { root = "./modgate-data" }

[upstream.public]
goproxy = "${GOPROXY}"

[[route]]
match = ["*"]
storage = "local"
sources = ["public"]
"#;

/// A configuration error, naming the key and the file where that is known.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or did not parse, or a key is unknown or has the wrong type.
    #[error("{}", describe_figment(.0))]
    Load(#[from] Box<figment::Error>),
    /// A key parsed but its value is not acceptable.
    #[error("{origin}: `{key}`: {message}")]
    Invalid {
        origin: String,
        key: String,
        message: String,
    },
}

/// Phrases figment's errors like the others: `FILE: `key`: reason`, one per line, without
/// figment's profile prefix (`default.`).
fn describe_figment(e: &figment::Error) -> String {
    e.clone()
        .into_iter()
        .map(|e| {
            let origin = e
                .metadata
                .as_ref()
                .and_then(|m| m.source.as_ref())
                .map(|s| match s {
                    figment::Source::File(p) => p.display().to_string(),
                    other => other.to_string(),
                })
                .or_else(|| e.metadata.as_ref().map(|m| m.name.to_string()));
            let key = e.path.join(".");
            let reason = one_line_reason(&e.kind.to_string());
            match (origin, key.is_empty()) {
                (Some(o), false) => format!("{o}: `{key}`: {reason}"),
                (Some(o), true) => format!("{o}: {reason}"),
                (None, false) => format!("`{key}`: {reason}"),
                (None, true) => reason,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A source-snippet line of a TOML parse error: `|    ^` or `12 | x = [`.
fn is_snippet_line(line: &str) -> bool {
    line.trim_start_matches(|c: char| c.is_ascii_digit())
        .trim_start()
        .starts_with('|')
}

/// The TOML parser reports over several lines with a source snippet (`1 | x = [`, `|  ^`);
/// keep the sentences and join them.
fn one_line_reason(text: &str) -> String {
    let sentences: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter(|l| !is_snippet_line(l))
        .collect();
    match sentences.split_first() {
        Some((first, rest)) if !rest.is_empty() => format!("{first}: {}", rest.join(", ")),
        Some((first, _)) => (*first).to_owned(),
        None => String::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Stage 1: the file's shape.

/// The TOML file as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerFile,
    #[serde(default)]
    pub cache: CacheFile,
    #[serde(default)]
    pub storage: BTreeMap<String, StorageFile>,
    #[serde(default)]
    pub upstream: BTreeMap<String, UpstreamFile>,
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginFile>,
    #[serde(default)]
    pub git: GitFile,
    #[serde(default)]
    pub publish: PublishFile,
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteFile>,
    /// Admin endpoints (`POST /admin/reload`); absent: they answer 404.
    pub admin: Option<AdminFile>,
    /// Replicas sharing storage: fills coordinated through Redis; absent: in-process only.
    pub cluster: Option<ClusterFile>,
    /// The checksum database versions from upstream proxies are verified against.
    #[serde(default)]
    pub gosumdb: GosumdbFile,
}

/// `[cluster]`: replicas over one storage.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// `redis://[user:password@]host:port[/db]`; `${VAR}` is replaced from the environment.
    pub redis: String,
    /// How long a replica's lease on a version fill lives unless renewed (it renews it while
    /// the fill runs): how long a replica that dies mid-fill delays the others.
    #[serde(default = "default_lease_ttl", with = "humantime_serde")]
    pub lease_ttl: Duration,
}

fn default_lease_ttl() -> Duration {
    Duration::from_secs(30)
}

/// `[admin]`: who may use the admin endpoints.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    /// `[plugins.NAME]` authorizers asked (action `admin`) before an admin request runs, as a
    /// route's `auth`; at least one.
    pub auth: Vec<String>,
}

/// `[plugins.NAME]`: a sandboxed WebAssembly plugin and what it may reach.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PluginFile {
    /// A first-party plugin embedded in the binary (`auth-token`, …). Exactly one of `plugin`
    /// and `wasm`.
    pub plugin: Option<String>,
    /// A component file built for `wasm32-wasip2`, relative to the config file.
    pub wasm: Option<PathBuf>,
    /// The plugin's own settings, handed to it as JSON.
    #[serde(default)]
    pub config: toml::Table,
    /// What the plugin may reach; nothing by default.
    #[serde(default)]
    pub grants: GrantsFile,
    /// Per-call limits.
    #[serde(default)]
    pub limits: LimitsFile,
}

/// `[plugins.NAME.grants]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GrantsFile {
    /// `host:port` pairs the plugin may send HTTP requests to through the host.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Names of secrets the plugin may read; values come from environment variables of the
    /// same name, or from the file named by `NAME_FILE` (mode 0600 or stricter).
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Directories a storage plugin may name in its plans.
    #[serde(default)]
    pub dirs: Vec<PathBuf>,
}

/// `[plugins.NAME.limits]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// Wall-clock limit of one call in milliseconds (default 50).
    pub timeout_ms: Option<u64>,
    /// Memory the plugin may grow to, in MiB (default 32, at most 256).
    pub memory_mb: Option<u64>,
    /// Calls one instance serves before it is replaced (default 10000; 0: a fresh instance
    /// for every call).
    pub reuse_calls: Option<u32>,
    /// The longest an answer the plugin asks to be remembered (`memo.remember`) is reused, in
    /// milliseconds (default 60000, at most 3600000; 0: never reuse, call for every request).
    pub memo_ttl_ms: Option<u64>,
    /// Calls of this plugin that may run at once (default: 2 per CPU; 1..=4096).
    pub max_concurrent: Option<u32>,
    /// Calls that may wait for a turn; past them a request is refused at once with 503 and
    /// `Retry-After` (default: 32 per CPU; 0..=65536).
    pub max_queue: Option<u32>,
}

/// `server.plugin_priority`: how the plugin threads share the CPU with the server's workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginPriority {
    /// `SCHED_IDLE` (Linux): the CPU time modgate's workers (and the other processes of its
    /// session or cgroup) leave, preempted at once when a worker wakes.
    Idle,
    /// The workers' own priority.
    Normal,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerFile {
    /// Address to listen on.
    pub listen: String,
    /// TLS certificate chain and key (PEM). Absent: plain HTTP.
    pub tls: Option<TlsFile>,
    /// Most connections served at once; further ones wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Threads serving connections (each connection stays on one). Zero: one per CPU.
    pub workers: usize,
    /// Threads where plugin calls that run past their first millisecond continue, at a lower
    /// CPU priority than the workers. Zero: one per CPU.
    pub plugin_threads: usize,
    /// The plugin threads' CPU priority: `idle` (SCHED_IDLE: only CPU time the workers leave)
    /// or `normal` (the workers' own).
    pub plugin_priority: PluginPriority,
    /// Where compiled plugins are kept between runs (`"off"`: nowhere). Absent: the user's cache
    /// directory ([`default_plugin_cache`]).
    pub plugin_cache: Option<String>,
    /// Time a client has to send a request's headers.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// A keep-alive connection with no request in flight is closed after this long.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A connection with bytes to send whose socket accepts none for this long (the client
    /// stopped reading) is closed. Zero: no limit.
    #[serde(with = "humantime_serde")]
    pub send_timeout: Duration,
    /// On SIGTERM/SIGINT, in-flight requests get this long to finish.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Largest request header block, in bytes.
    pub max_header_bytes: usize,
    /// Write one JSON access-log line per request to stdout.
    pub access_log: bool,
}

impl Default for ServerFile {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            tls: None,
            max_connections: 4096,
            workers: 0,
            plugin_threads: 0,
            plugin_priority: PluginPriority::Idle,
            plugin_cache: None,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
            max_header_bytes: 16 * 1024,
            access_log: true,
        }
    }
}

/// `[server.tls]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    /// The certificate chain (PEM); with `acme`, the file ACME keeps it in.
    #[serde(default)]
    pub cert: PathBuf,
    /// The certificate's private key (PEM); with `acme`, the same file as `cert`.
    #[serde(default)]
    pub key: PathBuf,
    /// How often the files are looked at for a renewed certificate (`0s`: only on reloads).
    #[serde(default = "TlsFile::default_watch", with = "humantime_serde")]
    pub watch: Duration,
    /// Mutual TLS: CA certificates (PEM) that client certificates must chain to.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: whether a client without a certificate may connect.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// With `client_ca`: certificate revocation lists (PEM or DER) client certificates are
    /// checked against.
    #[serde(default)]
    pub client_crls: Vec<PathBuf>,
    /// More certificates, chosen by the name a client asks for (SNI) among the DNS names of
    /// their subjectAltName; `cert`/`key` serve every other name.
    #[serde(default)]
    pub certificates: Vec<CertPair>,
    /// Certificates for `cert`/`key` obtained and renewed from an ACME CA.
    #[serde(default)]
    pub acme: Option<AcmeFile>,
}

/// One `[[server.tls.certificates]]`: a certificate chain and its key (PEM).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CertPair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFile {
    pub fn default_watch() -> Duration {
        Duration::from_secs(10)
    }

    /// A certificate and its key, watched at the default interval; no mutual TLS, no other
    /// certificates.
    pub fn new(cert: PathBuf, key: PathBuf) -> Self {
        TlsFile {
            cert,
            key,
            watch: Self::default_watch(),
            client_ca: None,
            client_auth: ClientAuth::default(),
            client_crls: Vec::new(),
            certificates: Vec::new(),
            acme: None,
        }
    }
}

/// `server.tls.client_auth`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// Every client presents a certificate that verifies; others fail the handshake.
    #[default]
    Required,
    /// A client may connect without one (plugins see no identity); one it presents must verify.
    Optional,
}

/// `[cache]`: how long changing answers (`list`, `@latest`, not-found) are reused.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheFile {
    /// How long an upstream `list`/`@latest` answer is reused before asking again.
    #[serde(with = "humantime_serde")]
    pub list_ttl: Duration,
    /// How long "not found upstream" is remembered, and the `max-age` of 404 responses.
    #[serde(with = "humantime_serde")]
    pub not_found_ttl: Duration,
    /// Bytes of memory for copies of small immutable artifacts (`.info`, `.mod`, `.ziphash`);
    /// 0 turns the copies off.
    pub memory_bytes: u64,
    /// Storage plans (where an artifact is) remembered per storage, so warm reads call no
    /// plugin; at least 16.
    pub plan_entries: usize,
}

impl Default for CacheFile {
    fn default() -> Self {
        Self {
            list_ttl: Duration::from_secs(60),
            not_found_ttl: Duration::from_secs(60),
            memory_bytes: 16 << 20,
            plan_entries: 100_000,
        }
    }
}

/// `[storage.NAME]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageFile {
    /// The storage plugin: a built-in one (`storage-fs`), or the name of a `[plugins.NAME]`
    /// table whose component exports the `storage` world.
    pub plugin: String,
    /// A built-in backend's settings (`storage-fs`: `root`). A `[plugins.NAME]` backend takes
    /// its settings from its own table.
    #[serde(default)]
    pub config: toml::Table,
    /// A built-in backend's per-call limits (as `[plugins.NAME.limits]`).
    #[serde(default)]
    pub limits: LimitsFile,
}

/// `[upstream.NAME]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFile {
    /// A GOPROXY list: URLs separated by `,` (next on 404/410) or `|` (next on any error).
    /// `${VAR}` is replaced from the environment; empty or `off` means no upstream (offline).
    pub goproxy: String,
    /// Time limit for one upstream request, including the body.
    #[serde(default = "default_upstream_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Extra attempts after a connection error or a 5xx (with a short backoff, or after the
    /// answer's `Retry-After` up to 10 s).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Bytes per second a body must average once it has taken longer than `timeout` (0: no
    /// floor).
    #[serde(default = "default_min_rate")]
    pub min_rate: u64,
    /// Failed fetches in a row after which the upstream is skipped for a while (0: never).
    #[serde(default = "default_skip_after")]
    pub skip_after: u32,
    /// The first pause; it doubles while the upstream keeps failing, up to 16 times this.
    #[serde(default = "default_skip_for", with = "humantime_serde")]
    pub skip_for: Duration,
}

fn default_min_rate() -> u64 {
    crate::upstream::DEFAULT_MIN_RATE
}

fn default_skip_after() -> u32 {
    crate::upstream::Skip::default().after
}

fn default_skip_for() -> Duration {
    crate::upstream::Skip::default().first
}

fn default_upstream_timeout() -> Duration {
    Duration::from_secs(300)
}

fn default_retries() -> u32 {
    2
}

/// `[[route]]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    /// A name by which a router plugin can choose this route.
    pub name: Option<String>,
    /// GOPRIVATE-style patterns (comma-separated globs or a list); the first route that matches
    /// wins. May be empty on a named route that only a router sends requests to.
    #[serde(default, rename = "match")]
    pub patterns: Vec<String>,
    /// A `[plugins.NAME]` router that names the route for the modules this one matches (or
    /// declines: the routes after this one decide). Such a route has no storage, sources or auth.
    pub router: Option<String>,
    /// Name of a `[storage.NAME]` table (required unless `router` is set).
    pub storage: Option<String>,
    /// Tried in order: names of `[upstream.NAME]` tables and `{ git = … }` tables
    /// (`config/git.rs`); empty: serve from storage only.
    #[serde(default)]
    pub sources: Vec<toml::Value>,
    /// `[plugins.NAME]` authorizers asked in order; the first that does not abstain decides,
    /// all abstaining is a 401. Empty: no authentication on this route.
    #[serde(default)]
    pub auth: Vec<String>,
    /// Who may upload versions (`PUT`): `auth` (default), `open` or `off`.
    #[serde(default)]
    pub uploads: Uploads,
    /// What a miss does and how zips reach clients: `sync` (default), `async`, `redirect` or
    /// `none`.
    #[serde(default)]
    pub download: Download,
    /// `[plugins.NAME]` upstream policies asked, in order, about versions not yet stored
    /// before they are fetched (the first deny wins).
    #[serde(default)]
    pub policies: Vec<String>,
    /// Whether versions from the route's upstream proxies are checked against `[gosumdb]`:
    /// `verify` (the default when the route has proxies) or `off`.
    pub sumdb: Option<RouteSumdb>,
    /// Modules never checked against the checksum database (GONOSUMDB-style patterns).
    #[serde(default)]
    pub nosumdb: Vec<String>,
}

/// `[[route]] download`: what a miss does, and how a route's zips reach clients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Download {
    /// A miss is fetched, checked and stored, then served; modgate serves every artifact.
    #[default]
    Sync,
    /// A miss answers 404 at once (the go command falls through to its next GOPROXY entry)
    /// while the version is filled in the background; later requests are served from storage.
    Async,
    /// A zip miss answers a `302` to the upstream's URL for it (after auth and policies) while
    /// the version is filled in the background; a stored zip whose storage can presign gets a
    /// short-lived `302` to the object store, else it is served. `.info`, `.mod` and `list` are
    /// answered by modgate.
    Redirect,
    /// Storage only: nothing is ever fetched (as a route without sources).
    None,
}

// ---------------------------------------------------------------------------------------------
// Stage 2: resolved, typed settings.

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the configuration came from (a path or "embedded defaults"), for messages.
    pub origin: String,
    pub server: ServerConfig,
    pub cache: CacheFile,
    pub storage: BTreeMap<String, StorageConfig>,
    pub routes: RouteTable,
    /// Every `[plugins.NAME]`, resolved (secrets read from the environment).
    pub plugins: Vec<crate::plugin::PluginSpec>,
    /// The authorizers of the admin endpoints (`None`: admin endpoints are off).
    pub admin: Option<AdminConfig>,
    /// `[git]`
    pub git: GitSettings,
    /// `[publish]`
    pub publish: PublishFile,
    /// What `${GOPROXY}` stood for and why, when the file refers to it ([`Config::load`]).
    pub goproxy: Option<GoproxyOrigin>,
    /// `[cluster]`
    pub cluster: Option<crate::cluster::ClusterConfig>,
    /// `[gosumdb]`
    pub gosumdb: crate::sumdb::gosumdb::Settings,
}

/// Resolved `[admin]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Authorizer plugins asked with action `admin`, in order.
    pub auth: Vec<String>,
}

/// Resolved `[server]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub tls: Option<TlsFile>,
    pub max_connections: usize,
    /// Threads serving connections; `0`: one per CPU ([`ServerConfig::worker_threads`]).
    pub workers: usize,
    /// Plugin pool threads; `0`: one per CPU.
    pub plugin_threads: usize,
    pub plugin_priority: PluginPriority,
    /// Where compiled plugins are kept between runs; `None`: compiled at every start.
    pub plugin_cache: Option<PathBuf>,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// Longest time the socket may accept no bytes while a response (or any other write) is
    /// waiting to be sent; then the connection is closed. `Duration::ZERO`: no limit.
    pub send_timeout: Duration,
    pub shutdown_grace: Duration,
    pub max_header_bytes: usize,
    pub access_log: bool,
}

/// Resolved `[storage.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageConfig {
    /// The built-in filesystem backend: the embedded `storage-fs` plugin, loaded as plugin
    /// `storage.NAME` with `root` granted.
    Fs { root: PathBuf },
    /// The built-in S3 backend: the embedded `storage-s3` plugin, loaded as plugin
    /// `storage.NAME` with the endpoint's host and the credentials' secrets granted.
    S3 {
        endpoint: String,
        bucket: String,
        prefix: String,
    },
    /// A `[plugins.NAME]` that exports the `storage` world.
    Plugin { plugin: String },
}

impl StorageConfig {
    /// The plugin (a name among [`Config::plugins`]) behind `[storage.NAME]`.
    pub fn plugin(&self, name: &str) -> String {
        match self {
            StorageConfig::Fs { .. } | StorageConfig::S3 { .. } => format!("storage.{name}"),
            StorageConfig::Plugin { plugin } => plugin.clone(),
        }
    }
}

/// The most `server.workers` accepted: far beyond any machine's useful thread count.
pub const MAX_WORKERS: usize = 1024;

impl ServerConfig {
    /// The number of worker threads to start: `workers`, or one per CPU this process may use
    /// (cgroup quotas and affinity included) when it is 0.
    pub fn worker_threads(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            n => n,
        }
    }
}

impl Config {
    /// Loads `path` (or the embedded defaults when `None`) with `MODGATE_*` overrides, e.g.
    /// `MODGATE_SERVER__LISTEN=0.0.0.0:8080`.
    /// `${GOPROXY}` is the variable, else the go command's setting ([`GoproxyOrigin`]).
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let goproxy = std::cell::OnceCell::new();
        let mut config = Self::load_with_env(path, |name| match name {
            "GOPROXY" => goproxy.get_or_init(GoproxyOrigin::resolve).value.clone(),
            _ => std::env::var(name).ok(),
        })?;
        config.goproxy = goproxy.into_inner();
        Ok(config)
    }

    /// Like [`Config::load`] with an explicit environment lookup for `${VAR}` references.
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let base = Figment::from(Serialized::defaults(FileConfig::default()));
        let (figment, origin) = match path {
            Some(p) => (base.merge(Toml::file_exact(p)), p.display().to_string()),
            None => (
                base.merge(Toml::string(EMBEDDED_DEFAULTS)),
                "embedded defaults".to_owned(),
            ),
        };
        // `MODGATE_LOG` is the log filter (telemetry::LOG_ENV), not a config key.
        let figment = figment.merge(
            Env::prefixed("MODGATE_")
                .filter(|key| !key.as_str().eq_ignore_ascii_case("log"))
                .split("__"),
        );
        let file: FileConfig = figment.extract().map_err(Box::new)?;
        let base_dir = path
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        resolve(file, origin, &base_dir, &env)
    }
}

/// `[…limits]` over `limits`; an error names the key (made by `key` from the field) and says
/// what is wrong.
pub(crate) fn resolve_limits(
    file: &LimitsFile,
    limits: &mut crate::plugin::Limits,
    key: &dyn Fn(&str) -> String,
) -> Result<(), (String, String)> {
    if let Some(ms) = file.timeout_ms {
        if ms == 0 || ms > 60_000 {
            return Err((key("limits.timeout_ms"), "must be 1..=60000".into()));
        }
        limits.timeout = Duration::from_millis(ms);
    }
    if let Some(mb) = file.memory_mb {
        if mb == 0 || mb > 256 {
            return Err((key("limits.memory_mb"), "must be 1..=256".into()));
        }
        limits.memory_bytes = (mb as usize) << 20;
    }
    if let Some(n) = file.reuse_calls {
        limits.reuse_calls = n;
    }
    if let Some(ms) = file.memo_ttl_ms {
        if ms > 3_600_000 {
            return Err((
                key("limits.memo_ttl_ms"),
                "must be 0..=3600000 (0: off)".into(),
            ));
        }
        limits.memo_ttl = Duration::from_millis(ms);
    }
    if let Some(n) = file.max_concurrent {
        if n == 0 || n > 4096 {
            return Err((key("limits.max_concurrent"), "must be 1..=4096".into()));
        }
        limits.max_concurrent = n;
    }
    if let Some(n) = file.max_queue {
        if n > 65_536 {
            return Err((key("limits.max_queue"), "must be 0..=65536".into()));
        }
        limits.max_queue = n;
    }
    Ok(())
}

/// Where compiled plugins are kept unless `server.plugin_cache` says otherwise, as other tools
/// keep their caches: the directory systemd gives a service with `CacheDirectory=`
/// (`$CACHE_DIRECTORY`), else `$XDG_CACHE_HOME/modgate/plugins`, else
/// `$HOME/.cache/modgate/plugins`; none without any of them.
pub fn default_plugin_cache(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let set = |name: &str| env(name).filter(|v| Path::new(v).is_absolute());
    if let Some(dir) = set("CACHE_DIRECTORY") {
        // systemd may give several, colon-separated: the first is the service's own.
        let first = dir.split(':').next().unwrap_or(&dir);
        return Some(Path::new(first).join("plugins"));
    }
    if let Some(dir) = set("XDG_CACHE_HOME") {
        return Some(Path::new(&dir).join("modgate/plugins"));
    }
    set("HOME").map(|home| Path::new(&home).join(".cache/modgate/plugins"))
}

fn resolve(
    file: FileConfig,
    origin: String,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let invalid = |key: &str, message: String| ConfigError::Invalid {
        origin: origin.clone(),
        key: key.to_owned(),
        message,
    };
    let relative = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base_dir.join(p)
        }
    };

    let s = file.server;
    let listen: SocketAddr = s.listen.parse().map_err(|e| {
        invalid(
            "server.listen",
            format!("`{}` is not an address: {e}", s.listen),
        )
    })?;
    if s.max_connections == 0 {
        return Err(invalid(
            "server.max_connections",
            "must be at least 1".into(),
        ));
    }
    if s.workers > MAX_WORKERS {
        return Err(invalid(
            "server.workers",
            format!(
                "{} is more than {MAX_WORKERS} (0 means one per CPU)",
                s.workers
            ),
        ));
    }
    if s.plugin_threads > MAX_WORKERS {
        return Err(invalid(
            "server.plugin_threads",
            format!(
                "{} is more than {MAX_WORKERS} (0 means one per CPU)",
                s.plugin_threads
            ),
        ));
    }
    if let Some(t) = &s.tls
        && t.client_ca.is_none()
        && !t.client_crls.is_empty()
    {
        return Err(invalid(
            "server.tls.client_crls",
            "revocation lists are for client certificates: set `client_ca` too".into(),
        ));
    }
    let acme = match s.tls.as_ref().and_then(|t| t.acme.as_ref()) {
        None => None,
        Some(a) => Some(
            a.resolve(relative)
                .map_err(|(key, message)| invalid(key, message))?,
        ),
    };
    let (cert, key) = match (&s.tls, &acme) {
        (None, _) => (PathBuf::new(), PathBuf::new()),
        (Some(t), Some(acme)) => {
            for (key, set) in [("server.tls.cert", &t.cert), ("server.tls.key", &t.key)] {
                if !set.as_os_str().is_empty() {
                    return Err(invalid(
                        key,
                        "set by ACME ([server.tls.acme] keeps the certificate in its `dir`): \
                         remove it, or remove [server.tls.acme] to use your own files"
                            .into(),
                    ));
                }
            }
            (acme.certificate_file(), acme.certificate_file())
        }
        (Some(t), None) => {
            for (key, set) in [("server.tls.cert", &t.cert), ("server.tls.key", &t.key)] {
                if set.as_os_str().is_empty() {
                    return Err(invalid(
                        key,
                        "missing: TLS needs a certificate chain and its key (PEM files), or \
                         [server.tls.acme] to obtain them"
                            .into(),
                    ));
                }
            }
            (relative(&t.cert), relative(&t.key))
        }
    };
    let tls = s.tls.map(|t| TlsFile {
        cert,
        key,
        watch: t.watch,
        client_ca: t.client_ca.as_deref().map(relative),
        client_auth: t.client_auth,
        client_crls: t.client_crls.iter().map(|p| relative(p)).collect(),
        certificates: t
            .certificates
            .iter()
            .map(|c| CertPair {
                cert: relative(&c.cert),
                key: relative(&c.key),
            })
            .collect(),
        acme,
    });
    let plugin_cache = match s.plugin_cache.as_deref() {
        None => default_plugin_cache(env),
        Some("off") => None,
        Some("") => {
            return Err(invalid(
                "server.plugin_cache",
                "empty: give a directory, or \"off\" to compile plugins at every start".into(),
            ));
        }
        Some(dir) => Some(relative(Path::new(dir))),
    };
    let server = ServerConfig {
        listen,
        tls,
        max_connections: s.max_connections,
        workers: s.workers,
        plugin_threads: s.plugin_threads,
        plugin_priority: s.plugin_priority,
        plugin_cache,
        header_timeout: s.header_timeout,
        idle_timeout: s.idle_timeout,
        send_timeout: s.send_timeout,
        shutdown_grace: s.shutdown_grace,
        max_header_bytes: s.max_header_bytes,
        access_log: s.access_log,
    };

    let mut upstreams: BTreeMap<&str, Vec<SourceEntry>> = BTreeMap::new();
    for (name, up) in &file.upstream {
        let key = format!("upstream.{name}.goproxy");
        let expanded = expand_env(&up.goproxy, env).map_err(|m| invalid(&key, m))?;
        let list = SourceList::parse_goproxy(&expanded, up.timeout, up.retries)
            .map_err(|m| invalid(&key, m))?;
        if let Some(own) = list
            .entries
            .iter()
            .find(|e| is_own_address(&e.base, listen))
        {
            return Err(invalid(
                &key,
                format!(
                    "`{}` (from `{}`) is this server's own address (server.listen = {listen}):                      it would ask itself for what it lacks; name the upstream proxy instead                      (GOPROXY, or `go env -w GOPROXY=…`)",
                    own.base, up.goproxy
                ),
            ));
        }
        let entries = list
            .entries
            .into_iter()
            .map(|e| SourceEntry {
                name: name.clone(),
                min_rate: up.min_rate,
                skip: crate::upstream::Skip {
                    after: up.skip_after,
                    first: up.skip_for,
                },
                ..e
            })
            .collect();
        upstreams.insert(name.as_str(), entries);
    }

    let mut plugins = Vec::new();
    for (name, p) in &file.plugins {
        let key = |field: &str| format!("plugins.{name}.{field}");
        let source = match (&p.plugin, &p.wasm) {
            (Some(builtin), None) => {
                if crate::plugin::embedded::lookup(builtin).is_none() {
                    return Err(invalid(
                        &key("plugin"),
                        format!(
                            "no built-in plugin `{builtin}` (built in: {})",
                            crate::plugin::embedded::names().join(", ")
                        ),
                    ));
                }
                crate::plugin::PluginSource::Embedded(builtin.clone())
            }
            (None, Some(wasm)) => {
                let path = relative(wasm);
                if !path.is_file() {
                    return Err(invalid(
                        &key("wasm"),
                        format!("{} is not a file", path.display()),
                    ));
                }
                crate::plugin::PluginSource::File(path)
            }
            _ => {
                return Err(invalid(
                    &format!("plugins.{name}"),
                    "set exactly one of `plugin` (built in) and `wasm` (a file)".into(),
                ));
            }
        };
        let mut limits = crate::plugin::Limits::default();
        resolve_limits(&p.limits, &mut limits, &key).map_err(|(k, m)| invalid(&k, m))?;
        for host in &p.grants.hosts {
            let ok = host
                .rsplit_once(':')
                .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok());
            if !ok {
                return Err(invalid(
                    &key("grants.hosts"),
                    format!("`{host}` is not host:port (e.g. idp.corp.example:443)"),
                ));
            }
        }
        let mut secret_values = std::collections::BTreeMap::new();
        for n in &p.grants.secrets {
            if let Some(v) =
                secret::lookup(n, env).map_err(|m| invalid(&key("grants.secrets"), m))?
            {
                secret_values.insert(n.clone(), v);
            }
        }
        plugins.push(crate::plugin::PluginSpec {
            name: name.clone(),
            source,
            config: p.config.clone(),
            grants: crate::plugin::Grants {
                hosts: p.grants.hosts.clone(),
                secrets: p.grants.secrets.clone(),
                dirs: p.grants.dirs.iter().map(|d| relative(d)).collect(),
            },
            limits,
            secret_values,
        });
    }

    let storage = storage::resolve(&file.storage, &file.plugins, &mut plugins, &relative, env)
        .map_err(|(k, m)| invalid(&k, m))?;

    if file.routes.is_empty() {
        return Err(invalid(
            "route",
            "at least one [[route]] is required".into(),
        ));
    }
    if file.publish.max_upload_bytes == 0 {
        return Err(invalid(
            "publish.max_upload_bytes",
            "must be at least 1".into(),
        ));
    }
    let mut routes = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for (i, r) in file.routes.iter().enumerate() {
        let key = |field: &str| format!("route[{i}].{field}");
        let patterns = r
            .patterns
            .iter()
            .flat_map(|p| p.split(','))
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| Pattern::parse(p).map_err(|m| invalid(&key("match"), m)))
            .collect::<Result<Vec<_>, _>>()?;
        let plugin_table = |field: &str, name: &str| {
            if file.plugins.contains_key(name) {
                Ok(())
            } else {
                Err(invalid(&key(field), format!("no [plugins.{name}] table")))
            }
        };
        if let Some(router) = &r.router {
            plugin_table("router", router)?;
            for (field, set) in [
                ("name", r.name.is_some()),
                ("storage", r.storage.is_some()),
                ("sources", !r.sources.is_empty()),
                ("auth", !r.auth.is_empty()),
                ("policies", !r.policies.is_empty()),
                ("sumdb", r.sumdb.is_some()),
                ("nosumdb", !r.nosumdb.is_empty()),
            ] {
                if set {
                    return Err(invalid(
                        &key(field),
                        "not allowed on a route with `router`: it only chooses a route; put \
                         this on the routes the router names"
                            .into(),
                    ));
                }
            }
            if patterns.is_empty() {
                return Err(invalid(&key("match"), "needs at least one pattern".into()));
            }
            routes.push(Entry::Dispatch(Dispatch {
                index: i,
                patterns,
                router: router.clone(),
            }));
            continue;
        }
        if let Some(name) = &r.name {
            let valid = !name.is_empty()
                && name.len() <= crate::plugin::OutputCaps::ROUTE
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !valid {
                return Err(invalid(
                    &key("name"),
                    format!("{name:?} is not a route name (letters, digits, `-`, `_`, `.`)"),
                ));
            }
            if !names.insert(name.as_str()) {
                return Err(invalid(
                    &key("name"),
                    format!("another route is already called {name:?}"),
                ));
            }
        }
        let storage_name = r.storage.as_ref().ok_or_else(|| {
            invalid(
                &key("storage"),
                "required (the [storage.NAME] that keeps this route's artifacts)".into(),
            )
        })?;
        if !storage.contains_key(storage_name) {
            return Err(invalid(
                &key("storage"),
                format!("no [storage.{storage_name}] table"),
            ));
        }
        if patterns.is_empty() && r.name.is_none() {
            return Err(invalid(
                &key("match"),
                "needs at least one pattern (or a `name`, for a route only a router chooses)"
                    .into(),
            ));
        }
        let (entries, git) = git::resolve_sources(
            &r.sources,
            &git::SourceContext {
                key: key("sources"),
                patterns: &patterns,
                upstreams: &upstreams,
                base_dir,
                env,
            },
        )
        .map_err(|(k, m)| invalid(&k, m))?;
        for a in &r.auth {
            plugin_table("auth", a)?;
        }
        for p in &r.policies {
            plugin_table("policies", p)?;
        }
        let sumdb = sumdb::resolve_route(r.sumdb, &r.nosumdb, !entries.is_empty(), &key)
            .map_err(|(k, m)| invalid(&k, m))?;
        routes.push(Entry::Serve(Route {
            index: i,
            name: r.name.clone(),
            patterns,
            storage: storage_name.clone(),
            sources: SourceList { entries },
            auth: r.auth.clone(),
            policies: r.policies.clone(),
            git,
            uploads: r.uploads,
            download: r.download,
            sumdb,
        }));
    }
    let admin = match &file.admin {
        None => None,
        Some(a) => {
            if a.auth.is_empty() {
                return Err(invalid(
                    "admin.auth",
                    "needs at least one authorizer plugin: admin endpoints are never open".into(),
                ));
            }
            for name in &a.auth {
                if !file.plugins.contains_key(name) {
                    return Err(invalid("admin.auth", format!("no [plugins.{name}] table")));
                }
            }
            Some(AdminConfig {
                auth: a.auth.clone(),
            })
        }
    };

    let cluster = match &file.cluster {
        None => None,
        Some(c) => {
            let redis = expand_env(&c.redis, env).map_err(|m| invalid("cluster.redis", m))?;
            if !redis.starts_with("redis://") {
                return Err(invalid(
                    "cluster.redis",
                    "must be a redis:// URL (TLS to Redis is not supported: reach it over a \
                     private network or a local tunnel)"
                        .into(),
                ));
            }
            if c.lease_ttl < Duration::from_secs(1) {
                return Err(invalid("cluster.lease_ttl", "must be at least 1s".into()));
            }
            Some(crate::cluster::ClusterConfig {
                redis,
                lease_ttl: c.lease_ttl,
            })
        }
    };

    let gosumdb = sumdb::resolve(&file.gosumdb, &relative).map_err(|(k, m)| invalid(&k, m))?;

    Ok(Config {
        origin,
        server,
        cache: file.cache,
        storage,
        routes: RouteTable::new(routes),
        plugins,
        admin,
        git: GitSettings {
            cache_dir: relative(&file.git.cache_dir),
            fetch_ttl: file.git.fetch_ttl,
        },
        publish: file.publish.clone(),
        goproxy: None,
        cluster,
        gosumdb,
    })
}

/// Whether `base` (an upstream URL) points at `listen`: the same port on a loopback name or on
/// the listen address itself.
fn is_own_address(base: &str, listen: SocketAddr) -> bool {
    let Ok(uri) = base.parse::<http::Uri>() else {
        return false;
    };
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    if port != listen.port() {
        return false;
    }
    let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let listen_ip = listen.ip();
    (loopback && (listen_ip.is_loopback() || listen_ip.is_unspecified()))
        || host.parse::<std::net::IpAddr>() == Ok(listen_ip)
}

/// Replaces `${VAR}` with the variable's value (empty when unset), as the design's
/// `goproxy = "${GOPROXY}"` expects.
fn expand_env(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated `${{` in `{s}`"))?;
        let name = &after[..end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`${{{name}}}` is not an environment variable name"));
        }
        out.push_str(&env(name).unwrap_or_default());
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests;
