//! The request pipeline: parse → route → (auth: arrives with the plugin runtime) → storage →
//! upstream, and the one place where errors become HTTP responses ([`App::handle`]).
//!
//! Protocol details follow the Go modules reference, "GOPROXY protocol": only 200 is success,
//! 404/410 let the client fall through to its next proxy, error bodies are one line of text.

mod fill;
mod git;
mod parsed;
mod policy;
mod respond;
mod upload;

/// The check every `.info`/`@latest` answer from an upstream passes (public for fuzz/).
pub use fill::check_info;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;

use crate::config::{CacheFile, Config};
use crate::error::{Error, one_line};
use crate::goproxy::path::ModulePath;
use crate::goproxy::request::{InfoQuery, ProxyRequest};
use crate::goproxy::{pseudo, semver};
use crate::plugin::{
    Action, Decision, EngineSettings, PluginEngine, PluginError, PluginId, PluginSet, RequestFacts,
    Ruling,
};
use crate::route::{Route, RouteTable, Step};
use crate::storage::{ArtifactKey, ArtifactKind, MemoryCache, Store};
use crate::telemetry::{Endpoint, Metrics};
use crate::upstream::UpstreamClient;

use respond::{ContentType, Freshness};

/// The body type of every response modgate sends.
pub type ResponseBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// Facts about the connection a request came in on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
    /// The subject of the client certificate mutual TLS verified (`CN=ci-7, O=Corp`).
    pub client_identity: Option<Arc<str>>,
    /// The server writes an access log line per request: an allowed request's principal is
    /// kept for it (in an [`Allowed`] in the response's extensions).
    pub access_log: bool,
}

/// The live pipeline, swappable at run time: each request runs to the end on the [`App`] it
/// started with, so a reload never disturbs in-flight downloads.
pub struct Gateway {
    current: arc_swap::ArcSwap<App>,
    /// What builds the next pipeline; shared with the blocking thread a reload runs on.
    builder: Arc<AppBuilder>,
    /// Held while a reload runs: SIGHUP and the admin endpoint take turns.
    reloading: tokio::sync::Mutex<()>,
    /// The listener's TLS settings, read again from their files on each reload (when serving
    /// TLS).
    tls: std::sync::OnceLock<Arc<crate::server::ServerTls>>,
}

/// Everything a reload needs to build a pipeline from the configuration file again.
struct AppBuilder {
    /// Where the configuration came from (`None`: embedded defaults).
    config_path: Option<std::path::PathBuf>,
    /// The server settings the listener was built with; they cannot change without a restart.
    server: crate::config::ServerConfig,
    metrics: Arc<Metrics>,
    client: UpstreamClient,
    /// The plugin engine, created when a configuration first names plugins and kept across
    /// reloads (compiled code and the instance pool are process-wide).
    engine: std::sync::OnceLock<Arc<PluginEngine>>,
    /// Rate limit counters, kept across reloads.
    counters: Arc<crate::ratelimit::Counters>,
}

impl AppBuilder {
    /// Reads the configuration again and builds its pipeline, with a one-line summary.
    fn build(&self) -> Result<(App, String), ReloadError> {
        let config = Config::load(self.config_path.as_deref())?;
        if config.server != self.server {
            tracing::warn!("[server] settings changed; they take effect after a restart");
        }
        let engine = engine_for(&self.engine, &config).map_err(ReloadError::Build)?;
        let app = App::with_client(
            &config,
            Arc::clone(&self.metrics),
            self.client.clone(),
            engine,
            Arc::clone(&self.counters),
        )
        .map_err(ReloadError::Build)?;
        tracing::info!(
            config = config.origin.as_str(),
            routes = config.routes.iter().count(),
            plugins = config.plugins.len(),
            "configuration reloaded"
        );
        let summary = format!(
            "reloaded {}: {} routes, {} plugins",
            config.origin,
            config.routes.iter().count() + config.routes.dispatches().count(),
            config.plugins.len()
        );
        Ok((app, summary))
    }
}

/// Why a reload was refused; the old configuration stays in force.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file no longer loads or resolves.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The new pipeline could not be built (storage, plugins).
    #[error("{0}")]
    Build(Error),
    /// The TLS certificate or key files cannot be used.
    #[error("{0}")]
    Tls(String),
}

impl Gateway {
    /// The pipeline for `config`, loaded from `config_path` (reloads read it again).
    pub fn new(
        config: &Config,
        config_path: Option<&std::path::Path>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, Error> {
        let client = UpstreamClient::new();
        let engine = std::sync::OnceLock::new();
        let plugin_engine = engine_for(&engine, config)?;
        let counters = Arc::<crate::ratelimit::Counters>::default();
        let app = App::with_client(
            config,
            Arc::clone(&metrics),
            client.clone(),
            plugin_engine,
            Arc::clone(&counters),
        )?;
        Ok(Self {
            current: arc_swap::ArcSwap::from_pointee(app),
            builder: Arc::new(AppBuilder {
                config_path: config_path.map(std::path::Path::to_path_buf),
                server: config.server.clone(),
                metrics,
                client,
                engine,
                counters,
            }),
            reloading: tokio::sync::Mutex::new(()),
            tls: std::sync::OnceLock::new(),
        })
    }

    /// The pipeline new requests get.
    pub fn current(&self) -> Arc<App> {
        self.current.load_full()
    }
}

impl Gateway {
    /// `/admin/…`: operations on the running server, for callers `[admin] auth` allows (action
    /// `admin`). Off (404) without `[admin]`. `POST /admin/reload` does what SIGHUP does and
    /// answers whether the new configuration is in force.
    pub async fn admin<B>(
        &self,
        req: &http::Request<B>,
        conn: &ConnInfo,
    ) -> Response<ResponseBody> {
        let app = self.current();
        let head = req.method() == Method::HEAD;
        let mut response = match self.admin_action(&app, req, conn).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(path = req.uri().path(), error = %e, "admin request refused");
                respond::error(&e, &app.cache, head)
            }
        };
        response.extensions_mut().insert(Endpoint("admin"));
        response
    }

    async fn admin_action<B>(
        &self,
        app: &App,
        req: &http::Request<B>,
        conn: &ConnInfo,
    ) -> Result<Response<ResponseBody>, Error> {
        let admin = app.admin.as_ref().ok_or_else(|| {
            Error::NotFound(
                "admin endpoints are off (configure [admin] auth to enable them)".into(),
            )
        })?;
        let asking = Asking {
            method: req.method(),
            path: req.uri().path(),
            headers: req.headers(),
            conn,
            action: Action::Admin,
        };
        app.authorize(
            &admin.auth,
            &app.plugin_refs.admin,
            &Facts::new(&asking, None, None),
            &mut Authz::default(),
        )
        .await?;
        match req.uri().path() {
            "/admin/reload" if req.method() == Method::POST => Ok(match self.reload_now().await {
                // One printable line, as every error body (a config error quotes the file).
                Ok(summary) => respond::text(StatusCode::OK, one_line(&summary, 600), false),
                Err(e) => respond::text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    one_line(
                        &format!("reload refused, the running configuration stays: {e}"),
                        600,
                    ),
                    false,
                ),
            }),
            "/admin/reload" => {
                let mut r = respond::text(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "use POST /admin/reload\n",
                    req.method() == Method::HEAD,
                );
                r.headers_mut()
                    .insert(http::header::ALLOW, http::HeaderValue::from_static("POST"));
                Ok(r)
            }
            path if path.starts_with("/admin/policy/") => {
                let module = &path["/admin/policy/".len()..];
                Box::pin(app.policy_audit(module, &asking)).await
            }
            other => Err(Error::NotFound(format!("{other}: no such admin endpoint"))),
        }
    }

    /// Reads the configuration again, builds a new pipeline beside the old one and swaps it in
    /// (SIGHUP, the admin endpoint). Requests already running finish on the old pipeline; new
    /// ones get the new one. On any error the old pipeline stays. `[server]` settings (listener,
    /// TLS, limits) need a restart. One reload at a time, built on a blocking thread (compiling
    /// a changed plugin takes a while, and the runtime calling may be the one thread serving a
    /// share of the connections). Returns a one-line summary of what is now in force.
    pub async fn reload_now(&self) -> Result<String, ReloadError> {
        let _one_at_a_time = self.reloading.lock().await;
        let builder = Arc::clone(&self.builder);
        let tls = self.tls.get().cloned();
        let (app, summary) = tokio::task::spawn_blocking(move || {
            let built = builder.build()?;
            // TLS last: it is in use as soon as it is read, so only with a pipeline that will be.
            if let Some(tls) = tls {
                tls.reload().map_err(|e| ReloadError::Tls(e.to_string()))?;
            }
            Ok::<_, ReloadError>(built)
        })
        .await
        .map_err(|e| ReloadError::Build(Error::Internal(format!("reload failed: {e}"))))??;
        self.current.store(Arc::new(app));
        Ok(summary)
    }

    /// The listener's TLS settings, for reloads to read again.
    pub fn attach_tls(&self, tls: Arc<crate::server::ServerTls>) {
        let _ = self.tls.set(tls);
    }
}

/// Every plugin a route or `[admin]` names is of the kind it is used as (config resolution knows
/// the names; only the loaded component knows what it exports).
fn check_plugin_kinds(config: &Config, plugins: &PluginSet) -> Result<(), Error> {
    let wrong = |key: String, name: &str, kind: &str| {
        Err(Error::Internal(format!(
            "{}: `{key}`: plugin {name:?} is not {kind} (it does not export `{}`)",
            config.origin,
            if kind == "a router" {
                "route"
            } else {
                "authorize"
            }
        )))
    };
    for d in config.routes.dispatches() {
        if !plugins.is_router(&d.router) {
            return wrong(format!("route[{}].router", d.index), &d.router, "a router");
        }
    }
    for r in config.routes.iter() {
        if let Some(name) = r.auth.iter().find(|n| !plugins.is_authorizer(n)) {
            return wrong(format!("route[{}].auth", r.index), name, "an authorizer");
        }
        if let Some(name) = r.policies.iter().find(|n| !plugins.is_policy(n)) {
            return Err(Error::Internal(format!(
                "{}: `route[{}].policies`: plugin {name:?} is not an upstream policy (it does \
                 not export `judge`)",
                config.origin, r.index
            )));
        }
    }
    if let Some(name) = config
        .admin
        .iter()
        .flat_map(|a| &a.auth)
        .find(|n| !plugins.is_authorizer(n))
    {
        return wrong("admin.auth".into(), name, "an authorizer");
    }
    for (name, storage) in &config.storage {
        let plugin = storage.plugin(name);
        if !plugins.is_storage(&plugin) {
            return Err(Error::Internal(format!(
                "{}: `storage.{name}.plugin`: plugin {plugin:?} is not a storage plugin (it \
                 does not export `locate`)",
                config.origin
            )));
        }
    }
    Ok(())
}

/// The plugins each route and `[admin]` name, found in the set once per pipeline so that a
/// request reaches them by position (looking names up cost a remembered request ~0.1 µs).
#[derive(Default)]
struct PluginRefs {
    /// The `auth` plugins of the serving route at each position in the file.
    auth: Vec<Box<[PluginId]>>,
    /// The `router` of the router route at each position in the file.
    router: Vec<Option<PluginId>>,
    /// The `policies` of the serving route at each position in the file.
    policies: Vec<Box<[PluginId]>>,
    /// `[admin] auth`.
    admin: Box<[PluginId]>,
}

/// [`PluginRefs`] for `config`, after checking every named plugin is of the kind it is used as.
fn resolve_plugins(config: &Config, plugins: &PluginSet) -> Result<PluginRefs, Error> {
    check_plugin_kinds(config, plugins)?;
    let find = |name: &str| {
        plugins.find(name).ok_or_else(|| {
            Error::Internal(format!("{}: plugin {name:?} is not loaded", config.origin))
        })
    };
    let ids = |names: &[String]| names.iter().map(|n| find(n)).collect::<Result<_, _>>();
    let slots = config
        .routes
        .iter()
        .map(|r| r.index)
        .chain(config.routes.dispatches().map(|d| d.index))
        .max()
        .map_or(0, |last| last + 1);
    let mut refs = PluginRefs {
        auth: vec![Box::default(); slots],
        router: vec![None; slots],
        policies: vec![Box::default(); slots],
        admin: match &config.admin {
            Some(admin) => ids(&admin.auth)?,
            None => Box::default(),
        },
    };
    for r in config.routes.iter() {
        refs.auth[r.index] = ids(&r.auth)?;
        refs.policies[r.index] = ids(&r.policies)?;
    }
    for d in config.routes.dispatches() {
        refs.router[d.index] = Some(find(&d.router)?);
    }
    Ok(refs)
}

/// The engine for `config`'s plugins, created on first need; `None` when it names none.
fn engine_for(
    cell: &std::sync::OnceLock<Arc<PluginEngine>>,
    config: &Config,
) -> Result<Option<Arc<PluginEngine>>, Error> {
    if config.plugins.is_empty() {
        return Ok(cell.get().cloned());
    }
    if let Some(engine) = cell.get() {
        return Ok(Some(Arc::clone(engine)));
    }
    let engine = PluginEngine::new(EngineSettings {
        pool_threads: config.server.plugin_threads,
        pool_idle_priority: config.server.plugin_priority == crate::config::PluginPriority::Idle,
        cache_dir: config.server.plugin_cache.clone(),
        ..EngineSettings::default()
    })
    .map_err(|e| Error::Internal(format!("cannot start the plugin engine: {e}")))?;
    Ok(Some(Arc::clone(cell.get_or_init(|| Arc::new(engine)))))
}

/// Everything a request needs, shared by all connections.
pub struct App {
    pub metrics: Arc<Metrics>,
    routes: RouteTable,
    cache: CacheFile,
    stores: HashMap<String, Arc<Store>>,
    client: UpstreamClient,
    /// One fetch in flight per upstream artifact and per version fill.
    flights: Arc<fill::Flights>,
    /// Recent upstream answers that change (`list`, `@latest`, queries) and recent not-founds.
    recent: Arc<TtlCache>,
    /// The configured plugins (`None` when there are none).
    plugins: Option<Arc<PluginSet>>,
    /// The plugins routes and `[admin]` name, found once.
    plugin_refs: PluginRefs,
    /// Who may use the admin endpoints (`None`: they are off).
    admin: Option<crate::config::AdminConfig>,
    /// Git sources by route index.
    git: HashMap<usize, Arc<crate::gitsource::GitSource>>,
    /// Uploads in progress (store, module, version): a second concurrent upload of the same
    /// version is refused rather than raced.
    uploads: Arc<Mutex<std::collections::HashSet<String>>>,
    /// `[publish] max_upload_bytes`
    max_upload_bytes: u64,
    /// Replicas over the same storage (`[cluster]`).
    cluster: Option<Arc<crate::cluster::Cluster>>,
    /// The checksum database upstream versions are verified against (`None`: no route
    /// verifies).
    gosumdb: Option<Arc<crate::sumdb::gosumdb::Gosumdb>>,
    /// The rate limits auth plugins apply.
    limiter: crate::ratelimit::Limiter,
}

impl App {
    /// Builds the pipeline from a resolved configuration (opens storage, builds the upstream client).
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Result<Self, Error> {
        let engine = engine_for(&std::sync::OnceLock::new(), config)?;
        Self::with_client(
            config,
            metrics,
            UpstreamClient::new(),
            engine,
            Arc::default(),
        )
    }

    /// Like [`App::new`], sharing an upstream client (and its connection pool) and the rate
    /// limit counters across reloads.
    pub fn with_client(
        config: &Config,
        metrics: Arc<Metrics>,
        client: UpstreamClient,
        engine: Option<Arc<PluginEngine>>,
        counters: Arc<crate::ratelimit::Counters>,
    ) -> Result<Self, Error> {
        let plugins = match (&engine, config.plugins.is_empty()) {
            (_, true) => None,
            (Some(engine), false) => Some(Arc::new(
                PluginSet::build(&config.plugins, engine)
                    .map_err(|e| Error::Internal(format!("plugins: {e}")))?
                    .with_metrics(metrics.clone()),
            )),
            (None, false) => {
                return Err(Error::Internal(
                    "plugins configured without an engine".into(),
                ));
            }
        };
        let plugin_refs = match &plugins {
            Some(set) => resolve_plugins(config, set)?,
            None => PluginRefs::default(),
        };
        let memory = (config.cache.memory_bytes > 0)
            .then(|| Arc::new(MemoryCache::new(config.cache.memory_bytes)));
        let stores = match &plugins {
            Some(set) => crate::storage::open_stores(config, memory, set)?,
            None => HashMap::new(),
        };
        let cluster = config
            .cluster
            .as_ref()
            .map(|c| crate::cluster::Cluster::new(c, Arc::clone(&metrics)))
            .transpose()?;
        let limiter =
            crate::ratelimit::Limiter::new(counters, cluster.clone(), Arc::clone(&metrics));
        let verifies = config.routes.iter().any(|r| r.sumdb.verify);
        let gosumdb = verifies
            .then(|| crate::sumdb::gosumdb::Gosumdb::open(&config.gosumdb))
            .transpose()
            .map_err(|e| Error::Internal(format!("gosumdb {}: {e}", config.gosumdb.name)))?
            .map(Arc::new);
        Ok(Self {
            metrics,
            routes: config.routes.clone(),
            cache: config.cache.clone(),
            stores,
            client,
            flights: Arc::default(),
            recent: Arc::default(),
            plugins,
            plugin_refs,
            admin: config.admin.clone(),
            git: git::build_sources(config),
            uploads: Arc::default(),
            max_upload_bytes: config.publish.max_upload_bytes,
            cluster,
            gosumdb,
            limiter,
        })
    }

    /// Serves one request. Never fails: every error becomes a response here.
    pub async fn handle<B>(&self, req: http::Request<B>, conn: &ConnInfo) -> Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let head = req.method() == Method::HEAD;
        let mut authz = Authz::default();
        let (endpoint, result, path) = if req.method() == Method::PUT {
            // Uploads own the body; everything else only reads the head.
            let path = std::borrow::Cow::Owned(req.uri().path().to_owned());
            let result = Box::pin(self.upload(req, conn, &mut authz)).await;
            ("upload", result, path)
        } else {
            let (endpoint, result) = self.dispatch(&req, conn, &mut authz).await;
            (
                endpoint,
                result,
                std::borrow::Cow::Borrowed(req.uri().path()),
            )
        };
        let mut response = match result {
            Ok(r) => r,
            Err(e) => {
                if matches!(e.fault(), crate::error::Fault::Client) {
                    tracing::debug!(path = &*path, error = %e, "request refused");
                } else {
                    tracing::warn!(path = &*path, error = %e, "request failed");
                }
                respond::error(&e, &self.cache, head)
            }
        };
        if let Some(charge) = authz.charge.take() {
            // Charged with the bytes actually sent, when the connection has sent them.
            let settle = crate::ratelimit::Settle::new(self.limiter.clone(), charge);
            response.extensions_mut().insert(settle);
        }
        if authz.private {
            // Answers behind authentication must not be kept by shared caches.
            respond::make_private(response.headers_mut());
        }
        response.extensions_mut().insert(Endpoint(endpoint));
        if let Some(allowed) = authz.allowed {
            response.extensions_mut().insert(allowed);
        }
        response
    }

    /// Whether every storage backend is usable; for `/readyz`.
    pub fn ready(&self) -> bool {
        self.stores.values().all(|s| s.ready())
    }

    async fn dispatch<B>(
        &self,
        req: &http::Request<B>,
        conn: &ConnInfo,
        authz: &mut Authz,
    ) -> (&'static str, Result<Response<ResponseBody>, Error>) {
        let head = match *req.method() {
            Method::GET => false,
            Method::HEAD => true,
            ref m => return ("invalid", Err(Error::MethodNotAllowed(m.clone()))),
        };
        let path = req.uri().path();
        match path {
            "/healthz" => return ("ops", Ok(respond::text(StatusCode::OK, "ok\n", head))),
            "/readyz" => {
                let unhealthy = self.unhealthy_plugins();
                let r = if !self.ready() {
                    respond::text(StatusCode::SERVICE_UNAVAILABLE, "storage not ready\n", head)
                } else if !unhealthy.is_empty() {
                    respond::text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("plugins unhealthy: {}\n", unhealthy.join(", ")),
                        head,
                    )
                } else {
                    respond::text(StatusCode::OK, "ready\n", head)
                };
                return ("ops", Ok(r));
            }
            "/metrics" => {
                let body = self.metrics.render();
                return ("ops", Ok(respond::metrics(body, head)));
            }
            _ => {}
        }
        let parsed = match parsed::parse(path) {
            Ok(p) => p,
            Err(e) => return ("invalid", Err(e.into())),
        };
        let endpoint = match &parsed {
            ProxyRequest::List { .. } => "list",
            ProxyRequest::Info { .. } => "info",
            ProxyRequest::Mod { .. } => "mod",
            ProxyRequest::Zip { .. } => "zip",
            ProxyRequest::Latest { .. } => "latest",
            ProxyRequest::Sumdb { .. } => "sumdb",
        };
        let asking = Asking {
            method: req.method(),
            path,
            headers: req.headers(),
            conn,
            action: Action::Read,
        };
        (endpoint, self.serve(parsed, &asking, head, authz).await)
    }

    async fn serve(
        &self,
        parsed: ProxyRequest,
        asking: &Asking<'_>,
        head: bool,
        authz: &mut Authz,
    ) -> Result<Response<ResponseBody>, Error> {
        let headers = asking.headers;
        let module = match &parsed {
            ProxyRequest::Sumdb { name, rest } => {
                return Box::pin(self.sumdb(name, rest, asking, head, authz)).await;
            }
            ProxyRequest::List { module }
            | ProxyRequest::Info { module, .. }
            | ProxyRequest::Mod { module, .. }
            | ProxyRequest::Zip { module, .. }
            | ProxyRequest::Latest { module } => module.clone(),
        };
        let version = match &parsed {
            ProxyRequest::Info { version, .. } => Some(version.as_str().to_owned()),
            ProxyRequest::Mod { version, .. } | ProxyRequest::Zip { version, .. } => {
                Some(version.clone())
            }
            _ => None,
        };
        let facts = Facts::new(asking, Some(&module), version);
        let route = self
            .pick_route(module.as_str(), &facts)
            .await?
            .ok_or_else(|| Error::NotFound(format!("{module}: no route serves this module")))?;
        // Authentication comes before storage or upstream is touched, so an unauthenticated
        // caller learns nothing about which private modules exist.
        authz.private = !route.auth.is_empty();
        self.authorize(&route.auth, self.auth_ids(route), &facts, authz)
            .await?;
        let store = self.store_of(route)?;
        let ctx = Ctx {
            app: self,
            route,
            store,
            module: &module,
            facts: Some(&facts),
        };
        // Only the warm `.info`/`.mod` answers run in place; the other endpoints' futures are
        // boxed, so the future every request moves around stays small (it was 4 KiB).
        match parsed {
            ProxyRequest::List { .. } => Box::pin(ctx.list(head)).await,
            ProxyRequest::Latest { .. } => Box::pin(ctx.latest(head)).await,
            ProxyRequest::Info {
                version: InfoQuery::Canonical(v),
                ..
            } => ctx.info(&v, head).await,
            ProxyRequest::Info {
                version: InfoQuery::Query(q),
                ..
            } => Box::pin(ctx.info_query(&q, head)).await,
            ProxyRequest::Mod { version, .. } => ctx.go_mod(&version, head).await,
            ProxyRequest::Zip { version, .. } => Box::pin(ctx.zip(&version, headers, head)).await,
            ProxyRequest::Sumdb { .. } => unreachable!("answered above"),
        }
    }
}

impl App {
    /// Checksum database requests (`/sumdb/<name>/supported`, `lookup/…`, `tile/…`) are passed
    /// to the upstreams of the route that matches the database's name, so clients that reach
    /// the database only through their proxy can verify what they download. The go command
    /// checks the database's signatures itself. For the `[gosumdb]` database, modgate answers
    /// `supported` itself and serves lookups and tiles from the cache its own verification
    /// uses (full tiles kept, lookups for minutes). A 404 for `supported` (no route or no
    /// upstream) tells the client to contact the database directly.
    async fn sumdb(
        &self,
        name: &str,
        rest: &str,
        asking: &Asking<'_>,
        head: bool,
        authz: &mut Authz,
    ) -> Result<Response<ResponseBody>, Error> {
        let not_proxied = || {
            Error::NotFound(format!(
                "checksum database {name} is not proxied here; the go command contacts it directly"
            ))
        };
        let facts = Facts::new(asking, None, None);
        let route = self
            .pick_route(name, &facts)
            .await?
            .ok_or_else(not_proxied)?;
        authz.private = !route.auth.is_empty();
        self.authorize(&route.auth, self.auth_ids(route), &facts, authz)
            .await?;
        if route.sources.is_offline() {
            return Err(not_proxied());
        }
        let store = self.store_of(route)?;
        let body = match &self.gosumdb {
            Some(db) if db.name() == name && rest == "supported" => {
                // Answered here: the go command then sends all its checksum-database
                // requests to this proxy, and they share the verifier's cache.
                return Ok(respond::text(StatusCode::OK, "", head));
            }
            Some(db) if db.name() == name => {
                let via = fill::SumdbVia::new(&self.client, &route.sources, &self.metrics, name);
                db.serve(rest, &via)
                    .await
                    .map_err(|e| fill::upstream_error(format!("sumdb/{name}/{rest}"), e))?
            }
            _ => {
                let module = ModulePath::parse(name).map_err(|_| not_proxied())?;
                let ctx = Ctx {
                    app: self,
                    route,
                    store,
                    module: &module,
                    facts: None,
                };
                ctx.fetch_changing(&format!("sumdb/{name}/{rest}"), fill::MAX_SUMDB)
                    .await?
            }
        };
        // Tiles never change once published (a partial tile is named by its width); lookups
        // carry the latest signed tree head.
        let fresh = if rest.starts_with("tile/") {
            Freshness::Immutable
        } else {
            Freshness::Short(self.cache.list_ttl)
        };
        let ct = if rest.starts_with("tile/") {
            ContentType::Binary
        } else {
            ContentType::Text
        };
        Ok(respond::bytes(body, ct, fresh, head))
    }
}

/// What authentication decided about a request, for its response.
#[derive(Default)]
struct Authz {
    /// The route has auth plugins: shared caches must not keep the answer.
    private: bool,
    /// The plugin's allow, when one allowed the request.
    allowed: Option<Allowed>,
    /// The byte quotas the response counts against.
    charge: Option<crate::ratelimit::Charge>,
}

/// An auth plugin's allow (an [`Decision::Allow`]), carried in the response's extensions so
/// the access log can name the principal; shared, never copied.
#[derive(Clone, Debug)]
pub struct Allowed(pub Arc<Ruling>);

impl Allowed {
    /// Who the plugin allowed.
    pub fn principal(&self) -> &str {
        match &self.0.decision {
            Decision::Allow(allow) => &allow.principal,
            _ => "",
        }
    }
}

/// The parts of a request that plugins see.
struct Asking<'a> {
    method: &'a Method,
    path: &'a str,
    headers: &'a http::HeaderMap,
    conn: &'a ConnInfo,
    /// What the request would do: `read` for the GOPROXY protocol, `publish`, `admin`.
    action: Action,
}

/// The request facts plugins see, built once per request when a plugin first needs them.
struct Facts<'a> {
    asking: &'a Asking<'a>,
    module: Option<&'a ModulePath>,
    version: Option<String>,
    built: std::sync::OnceLock<Arc<RequestFacts>>,
}

impl<'a> Facts<'a> {
    fn new(
        asking: &'a Asking<'a>,
        module: Option<&'a ModulePath>,
        version: Option<String>,
    ) -> Self {
        Facts {
            asking,
            module,
            version,
            built: std::sync::OnceLock::new(),
        }
    }

    fn get(&self) -> &Arc<RequestFacts> {
        self.built.get_or_init(|| {
            let asking = self.asking;
            Arc::new(RequestFacts {
                method: asking.method.as_str().to_owned(),
                path: asking.path.to_owned(),
                module: self.module.map(|m| m.as_str().to_owned()),
                version: self.version.clone(),
                action: asking.action,
                headers: asking
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().to_owned(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
                peer_addr: asking.conn.peer.to_string(),
                tls_client_identity: asking.conn.client_identity.as_deref().map(str::to_owned),
            })
        })
    }
}

/// Memo keys straight from the request, so a remembered answer needs no [`RequestFacts`].
impl crate::plugin::Asked for Facts<'_> {
    fn facts(&self) -> Arc<RequestFacts> {
        Arc::clone(self.get())
    }

    fn method(&self) -> &str {
        self.asking.method.as_str()
    }

    fn path(&self) -> &str {
        self.asking.path
    }

    fn module(&self) -> Option<&str> {
        self.module.map(ModulePath::as_str)
    }

    fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    fn action(&self) -> Action {
        self.asking.action
    }

    fn peer_ip(&self) -> Result<std::net::IpAddr, &str> {
        Ok(self.asking.conn.peer.ip())
    }

    fn tls_client_identity(&self) -> Option<&str> {
        self.asking.conn.client_identity.as_deref()
    }

    fn header_values(&self, name: &http::HeaderName, each: &mut dyn FnMut(&[u8])) {
        for value in self.asking.headers.get_all(name) {
            each(value.as_bytes());
        }
    }
}

impl App {
    /// The route for `name` (a module path, or a checksum database's name): the first
    /// `[[route]]` that matches, where a route with a `router` asks its plugin, which names the
    /// route or declines (then the following routes decide). A router that fails, or names a
    /// route that does not exist, fails the request (503 naming it): falling through could serve
    /// one tenant's request from another's route. `None`: no route serves it.
    async fn pick_route(&self, name: &str, facts: &Facts<'_>) -> Result<Option<&Route>, Error> {
        for step in self.routes.steps(name) {
            let dispatch = match step {
                Step::Serve(route) => return Ok(Some(route)),
                Step::Ask(dispatch) => dispatch,
            };
            let (Some(plugins), Some(Some(router))) = (
                self.plugins.as_ref(),
                self.plugin_refs.router.get(dispatch.index),
            ) else {
                return Err(Error::Internal(
                    "a route names a router plugin but none are loaded".into(),
                ));
            };
            let chosen = plugins
                .route_then(*router, facts, |chosen| {
                    let Some(chosen) = chosen.as_deref() else {
                        return Ok(None);
                    };
                    self.routes.named(chosen).map(Some).ok_or_else(|| {
                        tracing::warn!(
                            plugin = dispatch.router.as_str(),
                            route = chosen,
                            "router chose an unknown route"
                        );
                        Error::Plugin {
                            phase: "routing",
                            error: PluginError::BadOutput {
                                plugin: dispatch.router.clone(),
                                reason: format!("chose route {chosen:?}, which is not configured"),
                            },
                        }
                    })
                })
                .await;
            match chosen {
                Ok(Ok(Some(route))) => return Ok(Some(route)),
                Ok(Ok(None)) => continue,
                Ok(Err(unknown)) => return Err(unknown),
                Err(e) => {
                    tracing::warn!(plugin = dispatch.router.as_str(), error = %e, "router plugin failed; request refused");
                    return Err(Error::Plugin {
                        phase: "routing",
                        error: e,
                    });
                }
            }
        }
        Ok(None)
    }

    /// Asks the authorizers `auth` in order: the first that does not abstain decides; if all
    /// abstain the request is unauthenticated (401). A plugin that fails fails the request
    /// closed (503 naming it). An empty list is open. The rate limits the plugins asked
    /// applied (`limits.apply`) are then checked, whatever they decided: an exhausted one
    /// answers 429 instead. Sets `authz.allowed` and the byte quotas to charge.
    async fn authorize(
        &self,
        auth: &[String],
        ids: &[PluginId],
        facts: &Facts<'_>,
        authz: &mut Authz,
    ) -> Result<(), Error> {
        if auth.is_empty() {
            return Ok(());
        }
        let (Some(plugins), true) = (self.plugins.as_ref(), ids.len() == auth.len()) else {
            return Err(Error::Internal(
                "route names auth plugins but none are loaded".into(),
            ));
        };
        // The answers that carry limits (most carry none: nothing is kept then).
        let mut limited: Vec<Arc<Ruling>> = Vec::new();
        // The first plugin that did not abstain, and what it decided.
        let mut decided = None;
        for (&id, name) in ids.iter().zip(auth) {
            let verdict = plugins
                .authorize_then(id, facts, |ruling| {
                    if !ruling.limits.is_empty() {
                        limited.push(Arc::clone(ruling));
                    }
                    match &ruling.decision {
                        Decision::Allow(allow) => {
                            tracing::debug!(
                                plugin = name.as_str(),
                                principal = allow.principal.as_str(),
                                "allowed"
                            );
                            // Only the access log and the limits read it: no reference taken
                            // otherwise.
                            let keep = facts.asking.conn.access_log || !limited.is_empty();
                            Some(Ok(keep.then(|| Allowed(Arc::clone(ruling)))))
                        }
                        Decision::Deny(deny) => {
                            // 4xx or 5xx, as the WIT allows (the host checked the range): a
                            // plugin cannot make a refusal look like success, and a plugin that
                            // cannot decide (a broken config, an unreachable key server) can
                            // say so with a 5xx.
                            let status = http::StatusCode::from_u16(deny.status)
                                .ok()
                                .filter(|s| s.is_client_error() || s.is_server_error())
                                .unwrap_or(http::StatusCode::FORBIDDEN);
                            Some(Err(Error::Denied {
                                status,
                                message: deny.message.clone(),
                            }))
                        }
                        Decision::Abstain => None,
                    }
                })
                .await;
            match verdict {
                Ok(Some(outcome)) => {
                    decided = Some(outcome);
                    break;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(plugin = name.as_str(), error = %e, "auth plugin failed; request refused");
                    return Err(Error::Plugin {
                        phase: "authentication",
                        error: e,
                    });
                }
            }
        }
        // Every plugin abstained: the error is built only then, not on every request.
        let decided = decided.unwrap_or_else(|| {
            Err(Error::Unauthenticated(
                "authentication required: send credentials (.netrc or GOAUTH)".into(),
            ))
        });
        if !limited.is_empty() {
            let allowed = decided.as_ref().ok().and_then(Option::as_ref);
            let who = crate::ratelimit::Who {
                principal: allowed.map(Allowed::principal),
                ip: facts.asking.conn.peer.ip(),
                module: facts.module.map(ModulePath::as_str),
            };
            let limits = limited.iter().flat_map(|r| r.limits.iter());
            match self.limiter.check(limits, &who).await {
                Ok(charge) => authz.charge = charge,
                Err(refused) => {
                    authz.allowed = decided.ok().flatten();
                    return Err(Error::RateLimited {
                        message: refused.message,
                        retry_after_secs: refused.retry_after_secs,
                    });
                }
            }
        }
        authz.allowed = decided?;
        Ok(())
    }

    /// The auth plugins of `route` (as found when the pipeline was built).
    /// The storage `route` keeps its artifacts in (config resolution checked it exists).
    fn store_of(&self, route: &Route) -> Result<&Arc<Store>, Error> {
        self.stores.get(&route.storage).ok_or_else(|| {
            Error::Internal(format!(
                "route[{}] names unknown storage {}",
                route.index, route.storage
            ))
        })
    }

    fn auth_ids(&self, route: &Route) -> &[PluginId] {
        self.plugin_refs
            .auth
            .get(route.index)
            .map_or(&[], |ids| ids)
    }

    /// Health of every plugin, for `/readyz`: the names of unhealthy ones.
    fn unhealthy_plugins(&self) -> Vec<String> {
        self.plugins
            .as_ref()
            .map(|p| {
                p.health()
                    .into_iter()
                    .filter(|(_, h)| !h.healthy)
                    .map(|(n, _)| n)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// One request's view of the pipeline: the app, the chosen route and its storage.
struct Ctx<'a> {
    app: &'a App,
    route: &'a Route,
    store: &'a Arc<Store>,
    module: &'a ModulePath,
    /// The request's facts, for the route's upstream policies.
    facts: Option<&'a Facts<'a>>,
}

impl Ctx<'_> {
    fn key<'k>(&'k self, version: &'k str, kind: ArtifactKind) -> ArtifactKey<'k> {
        ArtifactKey {
            module: self.module,
            version,
            kind,
        }
    }

    fn offline_miss(&self, what: &str) -> Error {
        let why = if self.route.download == crate::config::Download::None {
            "serves storage only (download = \"none\")"
        } else {
            "has no upstream"
        };
        Error::NotFound(format!(
            "{what}: not stored, and route[{}] {why}",
            self.route.index
        ))
    }

    /// `download = "async"`: the version is filled in the background and the client told to
    /// look elsewhere for now (a 404 makes the go command try its next GOPROXY entry).
    async fn fill_later(&self, version: &str, ext: &str) -> Result<Error, Error> {
        let admitted = self.admit(version).await?;
        let fetcher = self.fetcher().with_sources(admitted.sources);
        let v = version.to_owned();
        tokio::spawn(async move {
            if let Err(e) = fetcher.fill_version(&v).await {
                tracing::info!(version = v, error = %e, "background fill failed");
            }
        });
        Ok(Error::NotFound(format!(
            "{}: not stored yet; fetching it in the background (download = \"async\")",
            artifact_path(self.module, version, ext)
        )))
    }

    async fn go_mod(&self, version: &str, head: bool) -> Result<Response<ResponseBody>, Error> {
        let stored = self
            .store
            .read_small(self.key(version, ArtifactKind::Mod))
            .await?;
        self.app.metrics.cache_lookup("mod", stored.is_some());
        let body = match stored {
            Some(b) => b,
            None if self.offline() => {
                return Err(self.offline_miss(&artifact_path(self.module, version, "mod")));
            }
            None if self.route.download == crate::config::Download::Async => {
                return Err(self.fill_later(version, "mod").await?);
            }
            None => {
                let admitted = self.admit(version).await?;
                let fetcher = self.fetcher().with_sources(admitted.sources);
                Box::pin(fetcher.fetch_mod(version)).await?
            }
        };
        Ok(respond::bytes(
            body,
            ContentType::Text,
            Freshness::Immutable,
            head,
        ))
    }

    async fn info(&self, version: &str, head: bool) -> Result<Response<ResponseBody>, Error> {
        let stored = self
            .store
            .read_small(self.key(version, ArtifactKind::Info))
            .await?;
        self.app.metrics.cache_lookup("info", stored.is_some());
        let body = match stored {
            Some(b) => b,
            None if self.offline() => {
                return Err(self.offline_miss(&artifact_path(self.module, version, "info")));
            }
            None if self.route.download == crate::config::Download::Async => {
                return Err(self.fill_later(version, "info").await?);
            }
            None => {
                let admitted = self.admit(version).await?;
                let fetcher = self.fetcher().with_sources(admitted.sources);
                Box::pin(fetcher.fetch_info(version)).await?
            }
        };
        Ok(respond::bytes(
            body,
            ContentType::Json,
            Freshness::Immutable,
            head,
        ))
    }

    async fn zip(
        &self,
        version: &str,
        headers: &http::HeaderMap,
        head: bool,
    ) -> Result<Response<ResponseBody>, Error> {
        let key = self.key(version, ArtifactKind::Zip);
        if self.route.download == crate::config::Download::Redirect
            && let Some(response) = self.redirect_zip(version, head).await?
        {
            return Ok(response);
        }
        let mut artifact = self.store.open(key).await?;
        self.app.metrics.cache_lookup("zip", artifact.is_some());
        if artifact.is_none() {
            if self.offline() {
                return Err(self.offline_miss(&artifact_path(self.module, version, "zip")));
            }
            if self.route.download == crate::config::Download::Async {
                return Err(self.fill_later(version, "zip").await?);
            }
            self.fill(version).await?;
            artifact = self.store.open(key).await?;
        }
        let artifact = artifact.ok_or_else(|| {
            Error::storage(
                self.store.name(),
                format_args!(
                    "{} vanished after it was stored",
                    artifact_path(self.module, version, "zip")
                ),
            )
        })?;
        let hash = self
            .store
            .read_small(self.key(version, ArtifactKind::ZipHash))
            .await?;
        respond::zip(artifact, hash.as_deref(), headers, head).await
    }

    /// Fills `version`, not committed, after the route's policies admit it.
    async fn fill(&self, version: &str) -> Result<(), Error> {
        let admitted = self.admit(version).await?;
        self.fetcher()
            .with_sources(admitted.sources)
            .fill_version(version)
            .await
    }

    /// `download = "redirect"`: a `302` to where the storage lets the client fetch the zip
    /// itself (filling a miss first), or `None` when the storage gives no such URL.
    async fn redirect_zip(
        &self,
        version: &str,
        head: bool,
    ) -> Result<Option<Response<ResponseBody>>, Error> {
        let key = self.key(version, ArtifactKind::Zip);
        let stored = self.store.contains(key).await?;
        self.app.metrics.cache_lookup("zip", stored);
        if !stored {
            if self.offline() {
                return Err(self.offline_miss(&artifact_path(self.module, version, "zip")));
            }
            let admitted = self.admit(version).await?;
            let fetcher = self.fetcher().with_sources(admitted.sources);
            // Straight to the upstream that has the version, while storage fills.
            if let Some(url) = Box::pin(fetcher.clone().upstream_zip_url(version)).await? {
                let v = version.to_owned();
                tokio::spawn(async move {
                    if let Err(e) = fetcher.fill_version(&v).await {
                        tracing::info!(version = v, error = %e, "background fill failed");
                    }
                });
                return Ok(Some(respond::redirect(&url, head)));
            }
            fetcher.fill_version(version).await?;
        }
        Ok(self
            .store
            .direct_url(key, head)
            .await?
            .map(|url| respond::redirect(&url, head)))
    }

    /// `list`: what the sources list, as they list it, plus tagged versions only storage has;
    /// storage alone when no source can answer (offline, or failing) or none knows the module.
    /// A source's refusal (400/403) is passed on.
    async fn list(&self, head: bool) -> Result<Response<ResponseBody>, Error> {
        let what = format!("{}/@v/list", self.module.escaped());
        let stored = self.store.committed_versions(self.module).await?;
        let from_sources = if self.offline() {
            None
        } else {
            match self.source_versions(&what).await {
                Ok(lines) => Some(lines),
                Err(e @ (Error::NotFound(_) | Error::Refused { .. })) if stored.is_empty() => {
                    return Err(e);
                }
                Err(Error::NotFound(_)) => None,
                Err(e @ Error::Refused { .. }) => return Err(e),
                Err(e) if !stored.is_empty() => {
                    tracing::warn!(module = %self.module, error = %e, "upstream list failed; serving stored versions");
                    None
                }
                Err(e) => return Err(e),
            }
        };
        let from_sources = match from_sources {
            Some(lines) => Some(self.admitted_lines(lines, &stored).await?),
            None => None,
        };
        let mut lines = match from_sources {
            // Stored pseudo-versions stay out: the go command would take the newest for
            // `@latest`, and a source that can answer knows better.
            Some(mut lines) => {
                lines.extend(
                    stored
                        .into_iter()
                        .filter(|v| !pseudo::is_pseudo_version(v))
                        .map(git::ListLine::bare),
                );
                lines
            }
            None if stored.is_empty() => return Err(self.offline_miss(&what)),
            None => stored.into_iter().map(git::ListLine::bare).collect(),
        };
        // Stable: among equal versions the source's line (with its time) comes first and stays.
        lines.sort_by(|a, b| {
            semver::compare(&a.version, &b.version).then_with(|| a.version.cmp(&b.version))
        });
        lines.dedup_by(|later, first| later.version == first.version);
        let mut body = String::with_capacity(lines.len() * 12);
        for line in &lines {
            body.push_str(&line.version);
            if let Some(time) = &line.time {
                body.push(' ');
                body.push_str(time);
            }
            body.push('\n');
        }
        Ok(respond::bytes(
            Bytes::from(body),
            ContentType::Text,
            Freshness::Short(self.app.cache.list_ttl),
            head,
        ))
    }

    /// `@latest`: the sources' answer, passed on, including a not-found (the go command then
    /// derives `@latest` from `list`, as it would talking to the sources directly). Storage
    /// answers only when no source can (offline, or failing): its best committed version.
    async fn latest(&self, head: bool) -> Result<Response<ResponseBody>, Error> {
        let what = format!("{}/@latest", self.module.escaped());
        let failure = if self.offline() {
            None
        } else {
            match self.source_latest(&what).await {
                Ok(body) if self.has_policies() => {
                    let body = Box::pin(self.admitted_latest(body)).await?;
                    return Ok(respond::bytes(
                        body,
                        ContentType::Json,
                        Freshness::Short(self.app.cache.list_ttl),
                        head,
                    ));
                }
                Ok(body) => {
                    return Ok(respond::bytes(
                        body,
                        ContentType::Json,
                        Freshness::Short(self.app.cache.list_ttl),
                        head,
                    ));
                }
                Err(e @ (Error::NotFound(_) | Error::Refused { .. })) => return Err(e),
                Err(e) => Some(e),
            }
        };
        // Ranked as the go command ranks `@latest`: releases, then pre-releases, then
        // pseudo-versions.
        let stored = self.store.committed_versions(self.module).await?;
        let best = stored.iter().max_by(|a, b| {
            latest_rank(a)
                .cmp(&latest_rank(b))
                .then_with(|| semver::compare(a, b))
        });
        if let Some(v) = best
            && let Some(body) = self
                .store
                .read_small(self.key(v, ArtifactKind::Info))
                .await?
        {
            if let Some(e) = &failure {
                tracing::warn!(module = %self.module, error = %e, "upstream @latest failed; serving the best stored version");
            }
            return Ok(respond::bytes(
                body,
                ContentType::Json,
                Freshness::Short(self.app.cache.list_ttl),
                head,
            ));
        }
        Err(failure.unwrap_or_else(|| self.offline_miss(&what)))
    }

    async fn info_query(&self, query: &str, head: bool) -> Result<Response<ResponseBody>, Error> {
        if self.offline() {
            return Err(Error::NotFound(format!(
                "{}/@v/{query}.info: only canonical versions are served from storage, and route[{}] has no upstream",
                self.module.escaped(),
                self.route.index
            )));
        }
        let body = self.source_query(query).await?;
        if self.has_policies()
            && let Some(v) = policy::version_of(&body)
            && !self
                .store
                .contains(self.key(&v, ArtifactKind::Info))
                .await?
        {
            self.admit(&v).await?;
        }
        Ok(respond::bytes(
            body,
            ContentType::Json,
            Freshness::Short(self.app.cache.list_ttl),
            head,
        ))
    }
}

/// `module/@v/version.ext` as a client asks for it (escaped): how errors name a version's file.
fn artifact_path(module: &ModulePath, version: &str, ext: &str) -> String {
    let v = crate::goproxy::escape::escape_version(version).unwrap_or_else(|_| version.to_owned());
    format!("{}/@v/{v}.{ext}", module.escaped())
}

/// `@latest` preference: releases over pre-releases over pseudo-versions.
fn latest_rank(v: &str) -> u8 {
    if pseudo::is_pseudo_version(v) {
        0
    } else if !semver::prerelease(v).is_empty() {
        1
    } else {
        2
    }
}

/// Upstream answers that change (and not-found answers), reused for a short time.
#[derive(Default)]
struct TtlCache {
    entries: Mutex<HashMap<String, Remembered>>,
}

/// An answer and when it stops being reused.
type Remembered = (Instant, Result<Bytes, Error>);

/// Entries kept before expired ones are swept (bounds memory under a flood of distinct paths).
const TTL_CACHE_SWEEP_AT: usize = 50_000;

impl TtlCache {
    fn get(&self, key: &str) -> Option<Result<Bytes, Error>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(key) {
            Some((expires, value)) if *expires > Instant::now() => Some(value.clone()),
            _ => None,
        }
    }

    fn put(&self, key: String, value: Result<Bytes, Error>, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= TTL_CACHE_SWEEP_AT {
            let now = Instant::now();
            entries.retain(|_, (expires, _)| *expires > now);
            if entries.len() >= TTL_CACHE_SWEEP_AT {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now() + ttl, value));
    }
}
