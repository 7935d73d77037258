//! The plugin runtime: sandboxed WebAssembly components (wasmtime 48, component model) that make
//! modgate's decisions. The contract is `plugin-sdk/wit/plugin.wit` (`modgate:plugin@0.1.0`).
//!
//! - [`PluginEngine`]: built once per process. One wasmtime `Engine` (component model, async,
//!   epoch interruption, pooling allocator, wasmtime's on-disk compilation cache), the one
//!   `Linker` with the host interfaces, a 1 ms epoch ticker thread (parked while no call
//!   runs, [`ticker`]), and an in-memory map of
//!   compiled components by sha256 so a reload recompiles only what changed.
//! - [`PluginSet`]: the plugins of one configuration, built from [`PluginSpec`]s. Immutable and
//!   cheap to share (`Arc`): hot reload builds a new set beside the old one and swaps it.
//!
//! # Sandbox
//! A plugin sees no files, no environment, no arguments, no sockets or name lookups, a closed
//! stdin and discarded stdout/stderr (WASI with nothing granted). It reaches the world only
//! through the host interfaces, which enforce its [`Grants`]: `http` only to `grants.hosts`,
//! `secrets` only `grants.secrets`; `kv` is its own. Every call runs under [`Limits`]: a
//! deadline (epoch interruption, checked every 1 ms tick, plus a wall-clock bound on host calls),
//! a memory cap, a log cap per call ([`LOG_CAP_BYTES`]) and caps on what it returns
//! ([`OutputCaps`]). A trap, timeout or OOM fails that call only; after
//! [`UNHEALTHY_AFTER`] consecutive failures the plugin reports unhealthy until a call succeeds.
//!
//! # Instances
//! A call runs in an idle instance of the plugin (with its own store) when one is waiting, else
//! in a fresh one instantiated from the `InstancePre` (in a pooling-allocator slot). An instance
//! serves up to `limits.reuse_calls` calls (default 10000; `0`: a fresh instance per call) and
//! is dropped after any failed call, so a trapped instance is never reused. Measured
//! (`allow-all`, release build; `cargo test --release -p modgate --lib
//! plugin::tests::bench_instance_strategies -- --ignored --nocapture`): a fresh instance per
//! call ~58 µs, a reused one ~3 µs.
//!
//! # Remembered answers
//! A plugin may say, during a call, what its answer depended on (`memo.remember`: some request
//! facts and a time-to-live). The host then gives that answer to later requests that agree on
//! those facts without calling the plugin ([`memo::Memo`], per plugin and world, forgotten with
//! the set on reload, capped by `limits.memo_ttl_ms`). The lookup reads the facts straight from
//! the caller's request ([`Asked`]); [`RequestFacts`] are built only when a call is needed.

mod bindings;
mod budget;
pub mod build;
pub mod crypto;
pub mod embedded;
#[cfg(test)]
pub(crate) mod first_party_tests;
mod host;
mod memo;
pub mod policy;
mod pool;
pub mod storage;
#[cfg(test)]
mod tests;
mod ticker;
pub mod trial;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::time::Instant;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

pub use bindings::limits;
pub use bindings::types::{Action, Allow, Decision, Deny, RequestFacts};
pub use host::LOG_CAP_BYTES;
use host::{Shared, State};
pub use memo::Asked;

/// An authorizer's answer: its decision, and the rate limits it charged the request against
/// (`limits.apply`; empty for most plugins). Remembered together, so a remembered answer is
/// still counted against its limits.
#[derive(Debug, Clone)]
pub struct Ruling {
    pub decision: Decision,
    pub limits: Box<[crate::ratelimit::Limit]>,
}

/// A plugin that fails this many calls in a row is reported unhealthy.
pub const UNHEALTHY_AFTER: u32 = 5;

/// Settings of the [`PluginEngine`] (process-wide; changing them needs a restart).
#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// Instances that may exist at once (concurrent calls, all plugins together): the size of
    /// the pooling allocator. A call beyond it fails (it does not wait).
    pub max_instances: u32,
    /// The largest `limits.memory_bytes` any plugin may have (the pool's slot size).
    pub max_memory_bytes: usize,
    /// Where wasmtime keeps compiled code between runs (`None`: compile at every start).
    pub cache_dir: Option<PathBuf>,
    /// Threads of the plugin pool, where calls that run past their first slice continue
    /// (0: one per CPU).
    pub pool_threads: usize,
    /// Run the pool's threads at the lowest CPU priority (`SCHED_IDLE`, Linux): the kernel
    /// gives them only CPU time the server's workers leave, and a waking worker preempts them
    /// at once. Off: the workers' own priority.
    pub pool_idle_priority: bool,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            max_instances: 256,
            max_memory_bytes: 256 << 20,
            cache_dir: None,
            pool_threads: 0,
            pool_idle_priority: true,
        }
    }
}

/// Per-plugin limits (`[plugins.NAME] limits = { timeout_ms, memory_mb, reuse_calls, … }`).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Wall-clock deadline of one call, instantiation included.
    pub timeout: Duration,
    /// Linear memory the plugin may grow to.
    pub memory_bytes: usize,
    /// Calls one instance may serve before it is discarded (`0`: a fresh instance for every
    /// call). An instance that fails a call is always discarded.
    pub reuse_calls: u32,
    /// The longest the host keeps an answer the plugin asked it to remember
    /// (`memo.remember`); zero turns the memo off for this plugin.
    pub memo_ttl: Duration,
    /// Calls of this plugin that may run at once.
    pub max_concurrent: u32,
    /// Calls that may wait for a turn; past them a call is refused at once
    /// ([`PluginError::Overloaded`]).
    pub max_queue: u32,
}

impl Limits {
    /// Default for [`Limits::reuse_calls`].
    pub const DEFAULT_REUSE_CALLS: u32 = 10_000;
    /// Default for [`Limits::memo_ttl`].
    pub const DEFAULT_MEMO_TTL: Duration = Duration::from_secs(60);

    /// Default for [`Limits::max_concurrent`]: two per CPU (a call waiting on the host's I/O
    /// leaves its CPU to another).
    pub fn default_max_concurrent() -> u32 {
        u32::try_from(cpus() * 2).unwrap_or(u32::MAX)
    }

    /// Default for [`Limits::max_queue`]: 32 per CPU, enough for a burst of new clients.
    pub fn default_max_queue() -> u32 {
        u32::try_from(cpus() * 32).unwrap_or(u32::MAX)
    }
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_millis(50),
            memory_bytes: 32 << 20,
            reuse_calls: Self::DEFAULT_REUSE_CALLS,
            memo_ttl: Self::DEFAULT_MEMO_TTL,
            max_concurrent: Self::default_max_concurrent(),
            max_queue: Self::default_max_queue(),
        }
    }
}

/// What a plugin may reach (`[plugins.NAME] grants = { hosts, secrets, dirs }`). Nothing by
/// default.
#[derive(Clone, Debug, Default)]
pub struct Grants {
    /// `host:port` pairs the plugin may send HTTP requests to (port required, e.g.
    /// `idp.corp.example:443`).
    pub hosts: Vec<String>,
    /// Secret names the plugin may read.
    pub secrets: Vec<String>,
    /// Directories a storage plugin may name in its plans (created when missing).
    pub dirs: Vec<PathBuf>,
}

/// Where a plugin's component comes from.
#[derive(Clone, Debug)]
pub enum PluginSource {
    /// A first-party plugin embedded in the binary (`plugin = "auth-token"`).
    Embedded(String),
    /// A `.wasm` component file (`wasm = "plugins/corp_auth.wasm"`).
    File(PathBuf),
    /// Component bytes already in memory.
    Bytes(Cow<'static, [u8]>),
}

/// One configured plugin.
#[derive(Clone, Debug)]
pub struct PluginSpec {
    /// The `[plugins.NAME]` key; routes refer to plugins by it.
    pub name: String,
    pub source: PluginSource,
    /// The plugin's `config` table, handed to it as JSON.
    pub config: toml::Table,
    pub grants: Grants,
    pub limits: Limits,
    /// Values of secrets by name (e.g. read from the environment by the config loader). Only
    /// names in `grants.secrets` are ever shown to the plugin.
    pub secret_values: BTreeMap<String, String>,
}

impl PluginSpec {
    /// A spec with no config, no grants and default limits.
    pub fn new(name: impl Into<String>, source: PluginSource) -> Self {
        PluginSpec {
            name: name.into(),
            source,
            config: toml::Table::new(),
            grants: Grants::default(),
            limits: Limits::default(),
            secret_values: BTreeMap::new(),
        }
    }
}

/// Caps on what a plugin returns; beyond them the answer is [`PluginError::BadOutput`].
pub struct OutputCaps;

impl OutputCaps {
    /// Bytes in an allow's principal.
    pub const PRINCIPAL: usize = 256;
    /// Number of scopes in an allow.
    pub const SCOPES: usize = 64;
    /// Bytes in one scope.
    pub const SCOPE: usize = 256;
    /// Bytes in a deny's message.
    pub const MESSAGE: usize = 1024;
    /// Bytes in a route name.
    pub const ROUTE: usize = 256;
}

/// A plugin failure. Every variant names the plugin; all are the plugin's fault except
/// [`PluginError::Engine`], [`PluginError::Busy`] (the host's) and
/// [`PluginError::Overloaded`] (too many requests for it).
#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginError {
    #[error("plugin {0:?} is not configured")]
    NotFound(String),
    #[error("plugin {plugin:?} is not a{} {expected} plugin", if expected.starts_with('a') { "n" } else { "" })]
    WrongKind {
        plugin: String,
        expected: &'static str,
    },
    #[error("plugin {plugin:?}: {message}")]
    Load { plugin: String, message: String },
    #[error("plugin {plugin:?} trapped: {message}")]
    Trap { plugin: String, message: String },
    #[error("plugin {plugin:?} timed out after {timeout:?}")]
    Timeout { plugin: String, timeout: Duration },
    #[error("plugin {plugin:?} ran out of memory (limit {limit_bytes} bytes)")]
    OutOfMemory { plugin: String, limit_bytes: usize },
    #[error("plugin {plugin:?} returned an invalid answer: {reason}")]
    BadOutput { plugin: String, reason: String },
    #[error("plugin {plugin:?} could not start: {message}")]
    Busy { plugin: String, message: String },
    /// Its calls in flight and waiting are at `limits.max_concurrent` and `limits.max_queue`:
    /// refused without a call.
    #[error("plugin {plugin:?} is overloaded: too many requests waiting for it, try again later")]
    Overloaded { plugin: String },
    /// The plugin answered that it could not do what was asked (a storage plugin's `error`):
    /// the call itself went well.
    #[error("plugin {plugin:?} failed: {message}")]
    Failed { plugin: String, message: String },
    #[error("plugin engine: {0}")]
    Engine(String),
}

impl PluginError {
    /// The plugin the error is about, if any.
    pub fn plugin(&self) -> Option<&str> {
        match self {
            PluginError::NotFound(plugin) => Some(plugin),
            PluginError::WrongKind { plugin, .. }
            | PluginError::Load { plugin, .. }
            | PluginError::Trap { plugin, .. }
            | PluginError::Timeout { plugin, .. }
            | PluginError::OutOfMemory { plugin, .. }
            | PluginError::BadOutput { plugin, .. }
            | PluginError::Busy { plugin, .. }
            | PluginError::Failed { plugin, .. }
            | PluginError::Overloaded { plugin } => Some(plugin),
            PluginError::Engine(_) => None,
        }
    }
}

/// The process-wide engine: compile settings, the linker with the host interfaces, and the
/// epoch ticker. Build it once; build [`PluginSet`]s from it.
pub struct PluginEngine {
    engine: Engine,
    linker: Linker<State>,
    settings: EngineSettings,
    /// Compiled components by sha256 of their bytes: reloads recompile only what changed.
    compiled: Mutex<HashMap<[u8; 32], Component>>,
    http: Option<host::HttpClient>,
    ticker: Arc<ticker::Ticker>,
    pool: Arc<pool::Pool>,
}

impl PluginEngine {
    /// Configure wasmtime and start the epoch ticker.
    pub fn new(settings: EngineSettings) -> Result<Self, PluginError> {
        let engine_error = |e: wasmtime::Error| PluginError::Engine(format!("{e:#}"));
        let mut pool = PoolingAllocationConfig::new();
        let n = settings.max_instances.max(1);
        // A Rust wasm32-wasip2 component has a few core instances (the program, WASI adapter
        // shims) but one memory; leave headroom for other toolchains.
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(8))
            .total_memories(n.saturating_mul(2))
            .total_tables(n.saturating_mul(8))
            .total_stacks(n)
            .max_memory_size(settings.max_memory_bytes)
            // A slot's memory is reset for its next instance: the first pages by clearing the
            // ones that were written (PAGEMAP_SCAN, Linux ≥ 6.7) rather than by madvise, which
            // makes the next instance fault them in again and makes the kernel interrupt every
            // CPU running one of modgate's threads (a TLB shootdown) for each reset. What a
            // small plugin uses fits.
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(KEEP_RESIDENT_BYTES / 16)
            .pagemap_scan(wasmtime::Enabled::Auto);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        if let Some(dir) = &settings.cache_dir {
            // wasmtime's own cache (keyed by the bytes, the settings and the wasmtime version):
            // `Component::deserialize_file` would need `unsafe`, this does not. It only saves
            // time: a directory it cannot use costs a warning, not the start.
            let mut cache = wasmtime::CacheConfig::new();
            cache.with_directory(dir);
            match std::fs::create_dir_all(dir)
                .map_err(wasmtime::Error::from)
                .and_then(|()| wasmtime::Cache::new(cache))
            {
                Ok(cache) => {
                    config.cache(Some(cache));
                }
                Err(e) => tracing::warn!(
                    dir = %dir.display(),
                    "plugins are compiled at every start: the cache directory is not usable ({e:#})"
                ),
            }
        }
        let engine = Engine::new(&config).map_err(engine_error)?;

        let mut linker = Linker::<State>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_error)?;
        bindings::authorizer::Authorizer::add_to_linker::<State, HasSelf<State>>(
            &mut linker,
            |state| state,
        )
        .map_err(engine_error)?;
        // The storage world's types interface (no functions); its other imports are the
        // authorizer's.
        bindings::storage_types::add_to_linker::<State, HasSelf<State>>(&mut linker, |state| state)
            .map_err(engine_error)?;

        // The ticker holds only a weak reference: it stops when the engine is dropped.
        let ticker = ticker::Ticker::start(&engine)
            .map_err(|e| PluginError::Engine(format!("epoch thread: {e}")))?;

        let pool = pool::Pool::start(settings.pool_threads, settings.pool_idle_priority)
            .map_err(|e| PluginError::Engine(format!("plugin threads: {e}")))?;

        Ok(PluginEngine {
            engine,
            linker,
            settings,
            compiled: Mutex::new(HashMap::new()),
            http: host::Shared::http_client(),
            ticker,
            pool: Arc::new(pool),
        })
    }

    fn compile(&self, name: &str, wasm: &[u8]) -> Result<Component, PluginError> {
        let key: [u8; 32] = Sha256::digest(wasm).into();
        let mut compiled = self
            .compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(component) = compiled.get(&key) {
            return Ok(component.clone());
        }
        let component = Component::new(&self.engine, wasm).map_err(|e| PluginError::Load {
            plugin: name.to_string(),
            message: format!("not a valid component: {e:#}"),
        })?;
        compiled.insert(key, component.clone());
        Ok(component)
    }
}

/// Call counters and health of one plugin (for `/readyz` and metrics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// False after [`UNHEALTHY_AFTER`] consecutive failed calls, until one succeeds.
    pub healthy: bool,
    pub consecutive_failures: u32,
    pub calls: u64,
    pub failures: u64,
    /// Calls whose log output passed [`LOG_CAP_BYTES`] and was cut.
    pub log_truncations: u64,
    /// Calls waiting for a turn now (`limits.max_queue` at most).
    pub waiting: usize,
    /// Calls refused because `limits.max_queue` were already waiting.
    pub overloaded: u64,
}

#[derive(Default)]
struct Counters {
    consecutive_failures: AtomicU32,
    calls: AtomicU64,
    failures: AtomicU64,
    log_truncations: AtomicU64,
}

struct Loaded {
    shared: Arc<Shared>,
    limits: Limits,
    authorizer: Option<bindings::authorizer::AuthorizerPre<State>>,
    router: Option<bindings::router::RouterPre<State>>,
    storage: Option<bindings::storage::StoragePre<State>>,
    policy: Option<bindings::policy::UpstreamPolicyPre<State>>,
    idle_authorizers: Idle<bindings::authorizer::Authorizer>,
    idle_routers: Idle<bindings::router::Router>,
    idle_storage: Idle<bindings::storage::Storage>,
    idle_policies: Idle<bindings::policy::UpstreamPolicy>,
    /// `grants.dirs`, as configured.
    dirs: Vec<PathBuf>,
    /// Answers the plugin asked the host to remember, per world.
    memo_authorize: memo::Memo<Ruling>,
    memo_route: memo::Memo<Option<String>>,
    memo_judge: memo::Memo<policy::Verdict>,
    counters: Counters,
    /// Calls at once and waiting (`limits.max_concurrent`, `limits.max_queue`).
    budget: budget::Budget,
    /// Whether calls start on the plugin pool rather than on the request's thread.
    slow: pool::Slow,
    /// Where calls are reported (`None` until [`PluginSet::with_metrics`]).
    metrics: Option<crate::telemetry::PluginMetrics>,
}

/// Instances that finished a call cleanly, with their stores, ready for the next call; at most
/// `cap` of them.
struct Idle<I> {
    warm: Mutex<Vec<Warm<I>>>,
    cap: usize,
}

impl<I> Idle<I> {
    fn new(cap: usize) -> Self {
        Idle {
            warm: Mutex::new(Vec::new()),
            cap,
        }
    }
}

/// A live instance and its store, and how many calls it has served.
struct Warm<I> {
    store: Store<State>,
    instance: I,
    calls: u32,
}

impl<I> Idle<I> {
    fn take(&self) -> Option<Warm<I>> {
        self.warm
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop()
    }

    /// Keep `warm` for a later call, unless it has served its calls or enough are idle.
    fn put(&self, warm: Warm<I>, limits: &Limits) {
        if warm.calls >= limits.reuse_calls {
            return;
        }
        let mut idle = self
            .warm
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < self.cap {
            idle.push(warm);
        }
    }
}

/// Idle instances kept per plugin and kind: enough for every core to have one in hand (two, for
/// calls that wait on the host), and together at most half of the engine's instance slots, so
/// idle instances never crowd out calls (a set being reloaded in overlaps its predecessor).
fn idle_cap(max_instances: u32, plugins: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(4, std::num::NonZero::get);
    let share = max_instances as usize / 2 / plugins.max(1);
    cores.saturating_mul(2).min(32).min(share)
}

/// The plugins of one configuration, ready to call. Immutable: share it in an `Arc` and swap
/// the `Arc` to reload.
pub struct PluginSet {
    engine: Engine,
    ticker: Arc<ticker::Ticker>,
    pool: Arc<pool::Pool>,
    /// Sorted by name; a [`PluginId`] is a position here.
    plugins: Vec<Loaded>,
}

/// A plugin of one [`PluginSet`], found by name once ([`PluginSet::find`]) when a pipeline is
/// built, so a request reaches its plugins without looking a name up. Only meaningful for the
/// set that gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginId(usize);

impl PluginSet {
    /// Load, compile (or take from the cache) and link every plugin. Blocking and CPU-heavy on
    /// a cold cache: call it from `spawn_blocking` in async code.
    pub fn build(specs: &[PluginSpec], engine: &PluginEngine) -> Result<Self, PluginError> {
        let mut plugins = BTreeMap::new();
        let idle_cap = idle_cap(engine.settings.max_instances, specs.len());
        let built = Instant::now();
        for spec in specs {
            let load = |message: String| PluginError::Load {
                plugin: spec.name.clone(),
                message,
            };
            if spec.limits.memory_bytes > engine.settings.max_memory_bytes {
                return Err(load(format!(
                    "limits.memory is {} bytes, more than the engine's maximum of {}",
                    spec.limits.memory_bytes, engine.settings.max_memory_bytes
                )));
            }
            let wasm: Cow<'_, [u8]> = match &spec.source {
                PluginSource::Embedded(name) => Cow::Borrowed(
                    embedded::lookup(name)
                        .ok_or_else(|| load(format!("no built-in plugin called {name:?}")))?,
                ),
                PluginSource::File(path) => Cow::Owned(
                    std::fs::read(path).map_err(|e| load(format!("{}: {e}", path.display())))?,
                ),
                PluginSource::Bytes(bytes) => Cow::Borrowed(bytes.as_ref()),
            };
            let component = engine.compile(&spec.name, &wasm)?;
            let pre = engine
                .linker
                .instantiate_pre(&component)
                .map_err(|e| load(format!("imports something the host does not offer: {e:#}")))?;
            let authorizer = bindings::authorizer::AuthorizerPre::new(pre.clone()).ok();
            let router = bindings::router::RouterPre::new(pre.clone()).ok();
            let storage = bindings::storage::StoragePre::new(pre.clone()).ok();
            let policy = bindings::policy::UpstreamPolicyPre::new(pre).ok();
            if authorizer.is_none() && router.is_none() && storage.is_none() && policy.is_none() {
                return Err(load(
                    "exports none of `authorize` (authorizer), `route` (router), `locate` \
                     (storage) and `judge` (upstream-policy)"
                        .into(),
                ));
            }
            let config_json =
                serde_json::to_string(&spec.config).map_err(|e| load(format!("config: {e}")))?;
            let secrets = spec
                .grants
                .secrets
                .iter()
                .map(|name| (name.clone(), spec.secret_values.get(name).cloned()))
                .collect();
            let shared = Arc::new(Shared {
                name: spec.name.clone(),
                config_json,
                hosts: spec
                    .grants
                    .hosts
                    .iter()
                    .map(|h| h.to_ascii_lowercase())
                    .collect(),
                secrets,
                kv: Mutex::default(),
                keys: crypto::KeyCache::default(),
                http: engine.http.clone(),
            });
            let loaded = Loaded {
                shared,
                limits: spec.limits.clone(),
                authorizer,
                router,
                storage,
                policy,
                idle_authorizers: Idle::new(idle_cap),
                idle_routers: Idle::new(idle_cap),
                idle_storage: Idle::new(idle_cap),
                idle_policies: Idle::new(idle_cap),
                dirs: spec.grants.dirs.clone(),
                memo_authorize: memo::Memo::new(spec.limits.memo_ttl),
                memo_route: memo::Memo::new(spec.limits.memo_ttl),
                memo_judge: memo::Memo::new(spec.limits.memo_ttl),
                counters: Counters::default(),
                budget: budget::Budget::new(spec.limits.max_concurrent, spec.limits.max_queue),
                slow: pool::Slow::new(built),
                metrics: None,
            };
            if plugins.insert(spec.name.clone(), loaded).is_some() {
                return Err(load("configured twice".into()));
            }
        }
        Ok(PluginSet {
            engine: engine.engine.clone(),
            ticker: engine.ticker.clone(),
            pool: engine.pool.clone(),
            plugins: plugins.into_values().collect(),
        })
    }

    /// Report every call (outcome, latency, health) to `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<crate::telemetry::Metrics>) -> Self {
        for plugin in &mut self.plugins {
            let handles = metrics.plugin(&plugin.shared.name);
            plugin.budget.report_to(handles.queue.clone());
            plugin.metrics = Some(handles);
        }
        self
    }

    /// Plugin `name`'s id in this set.
    pub fn find(&self, name: &str) -> Option<PluginId> {
        self.plugins
            .binary_search_by(|p| p.shared.name.as_str().cmp(name))
            .ok()
            .map(PluginId)
    }

    /// Plugin `name`, if configured.
    fn by_name(&self, name: &str) -> Option<&Loaded> {
        self.find(name).map(|id| &self.plugins[id.0])
    }

    /// Ask authorizer `name` about a request. (Answers are shared: a remembered one is handed
    /// out without copying.)
    pub async fn authorize(
        &self,
        name: &str,
        asked: &(impl Asked + Sync + ?Sized),
    ) -> Result<Arc<Ruling>, PluginError> {
        let id = self.find_or_err(name)?;
        self.authorize_then(id, asked, Arc::clone).await
    }

    /// Ask authorizer `id` about a request and hand its decision to `then`, which takes a
    /// reference only if it needs one (a remembered decision is then read in place, without
    /// touching its reference count).
    pub async fn authorize_then<R>(
        &self,
        id: PluginId,
        asked: &(impl Asked + Sync + ?Sized),
        then: impl FnOnce(&Arc<Ruling>) -> R + Send,
    ) -> Result<R, PluginError> {
        self.ask::<bindings::authorizer::Authorizer, R>(id, asked, then)
            .await
    }

    /// Ask router `name` for a route name (`None`: let the TOML routes decide).
    pub async fn route(
        &self,
        name: &str,
        asked: &(impl Asked + Sync + ?Sized),
    ) -> Result<Arc<Option<String>>, PluginError> {
        let id = self.find_or_err(name)?;
        self.route_then(id, asked, Arc::clone).await
    }

    /// Ask router `id` for a route name and hand it to `then` (as [`Self::authorize_then`]).
    pub async fn route_then<R>(
        &self,
        id: PluginId,
        asked: &(impl Asked + Sync + ?Sized),
        then: impl FnOnce(&Arc<Option<String>>) -> R + Send,
    ) -> Result<R, PluginError> {
        self.ask::<bindings::router::Router, R>(id, asked, then)
            .await
    }

    fn find_or_err(&self, name: &str) -> Result<PluginId, PluginError> {
        self.find(name)
            .ok_or_else(|| PluginError::NotFound(name.to_string()))
    }

    /// Plugin `id`'s answer for `asked`, handed to `then`: a remembered one when the plugin
    /// left one that fits (no call at all, and no [`RequestFacts`] built), else a
    /// [`PluginSet::call`]'s. The call's future is boxed: it is large (instantiation, the call),
    /// and most requests never need it.
    async fn ask<E: Asks, R>(
        &self,
        id: PluginId,
        asked: &(impl Asked + Sync + ?Sized),
        then: impl FnOnce(&Arc<E::Answer>) -> R + Send,
    ) -> Result<R, PluginError> {
        let plugin = &self.plugins[id.0];
        let then = match E::memo(plugin).with(asked, then) {
            Ok(done) => {
                if let Some(metrics) = &plugin.metrics {
                    metrics.memo_hit();
                }
                return Ok(done);
            }
            Err(then) => then,
        };
        let (answer, remembered) = Box::pin(self.call::<E>(plugin, asked.facts())).await?;
        let answer = Arc::new(answer);
        if let Some((depends_on, ttl_ms)) = remembered {
            E::memo(plugin).put(depends_on, ttl_ms, asked, &answer);
        }
        Ok(then(&answer))
    }

    /// One call of `plugin`'s export `E`: a turn of the plugin's budget (or refused at once),
    /// an idle instance or a fresh one, under the deadline, on the request's thread until its
    /// first slice ends and then on the plugin pool ([`pool`]); the answer checked; health and
    /// metrics recorded; the instance kept for the next call only if this one succeeded (and its
    /// answer does not say the plugin is failing, [`Export::reusable_after`]).
    /// Returns the answer and what the plugin said it depends on (`memo.remember`), if it did.
    async fn call<E: Export>(
        &self,
        plugin: &Loaded,
        input: E::Input,
    ) -> Result<(E::Answer, Remembered), PluginError> {
        let name = plugin.shared.name.as_str();
        let Some(pre) = E::pre(plugin) else {
            return Err(PluginError::WrongKind {
                plugin: name.to_string(),
                expected: E::KIND,
            });
        };
        // Refused for want of a turn is not a call: health and the slow mark stay as they are.
        let turn = match plugin.budget.turn(name, plugin.pace()).await {
            Ok(turn) => turn,
            Err(e) => {
                if let Some(metrics) = &plugin.metrics {
                    metrics.overloaded();
                }
                return Err(e);
            }
        };
        let started = Instant::now();
        let (store, warm) = self.checkout(plugin, E::idle(plugin), started);
        // Owned, so that the call can move to the pool: the pre-instance only when a fresh
        // instance is needed.
        let start = match warm {
            Some((instance, calls)) => Start::Warm(instance, calls),
            None => Start::Fresh(pre.clone()),
        };
        let running = self.ticker.running();
        let run = Box::pin(async move {
            let mut store = store;
            let deadline = store.data().deadline;
            let outcome = tokio::time::timeout_at(deadline + HOST_GRACE, async {
                let (instance, calls) = match start {
                    Start::Warm(instance, calls) => (instance, calls),
                    Start::Fresh(pre) => (E::instantiate(&pre, &mut store).await?, 0),
                };
                let answer = instance.invoke(&mut store, &input).await?;
                Ok((instance, calls, answer))
            })
            .await;
            (store, outcome)
        });
        let inline = !plugin.slow.is_slow(started);
        // The turn and the ticker's running count are borrowed while the call runs here (no
        // reference counts touched); a call that moves to the pool takes them along, owned.
        let keep = move || {
            (
                turn.into_owned(&plugin.budget),
                running.into_owned(&self.ticker),
            )
        };
        let ((mut store, outcome), ran) = self.pool.run(run, inline, keep).await?;
        let result = finish(plugin, &store, outcome)
            .and_then(|(instance, calls, answer)| Ok((instance, calls, E::check(name, answer)?)));
        let how = if result.is_err() {
            pool::Observed::Failed
        } else if store.data().yielded || (inline && ran == pool::Ran::Pool) {
            pool::Observed::Long
        } else {
            pool::Observed::Quick
        };
        plugin.slow.observe(how, inline, started);
        self.record(plugin, started, &result, store.data().log_truncated, ran);
        let (instance, calls, answer) = match result {
            Ok(done) => done,
            Err(e) => {
                self.pool.dispose(store);
                return Err(e);
            }
        };
        let remembered = store.data_mut().remembered.take();
        if !E::reusable_after(&answer) {
            self.pool.dispose(store);
            return Ok((answer, remembered));
        }
        E::idle(plugin).put(
            Warm {
                store,
                instance,
                calls: calls + 1,
            },
            &plugin.limits,
        );
        Ok((answer, remembered))
    }

    /// Health and counters of every plugin, sorted by name.
    pub fn health(&self) -> Vec<(String, Health)> {
        self.plugins
            .iter()
            .map(|p| (p.shared.name.clone(), p.health()))
            .collect()
    }

    /// Whether `name` is configured and exports `authorize`.
    pub fn is_authorizer(&self, name: &str) -> bool {
        self.by_name(name).is_some_and(|p| p.authorizer.is_some())
    }

    /// Whether `name` is configured and exports `route`.
    pub fn is_router(&self, name: &str) -> bool {
        self.by_name(name).is_some_and(|p| p.router.is_some())
    }

    /// Whether `name` is configured and exports the `storage` world.
    pub fn is_storage(&self, name: &str) -> bool {
        self.by_name(name).is_some_and(|p| p.storage.is_some())
    }

    /// Whether `name` is configured and exports the `upstream-policy` world.
    pub fn is_policy(&self, name: &str) -> bool {
        self.by_name(name).is_some_and(|p| p.policy.is_some())
    }

    /// Plugin `id`'s name.
    pub fn name(&self, id: PluginId) -> &str {
        &self.plugins[id.0].shared.name
    }

    /// Plugin `id`'s `grants.hosts` (`host:port`, lower case).
    pub fn granted_hosts(&self, id: PluginId) -> &std::collections::BTreeSet<String> {
        &self.plugins[id.0].shared.hosts
    }

    /// Plugin `id`'s `grants.dirs`, as configured.
    pub fn granted_dirs(&self, id: PluginId) -> &[PathBuf] {
        &self.plugins[id.0].dirs
    }

    /// Whether plugin `id` is healthy (fewer than [`UNHEALTHY_AFTER`] failed calls in a row).
    pub fn is_healthy(&self, id: PluginId) -> bool {
        self.plugins[id.0].health().healthy
    }

    /// The configured plugin names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.plugins
            .iter()
            .map(|p| p.shared.name.as_str())
            .collect()
    }

    /// Count a finished call in the plugin's health and in the metrics.
    fn record<T>(
        &self,
        plugin: &Loaded,
        started: Instant,
        result: &Result<T, PluginError>,
        log_truncated: bool,
        ran: pool::Ran,
    ) {
        let healthy = plugin.record(result, log_truncated);
        if let Some(metrics) = &plugin.metrics {
            let outcome = match result {
                Ok(_) => "ok",
                Err(PluginError::Trap { .. }) => "trap",
                Err(PluginError::Timeout { .. }) => "timeout",
                Err(PluginError::OutOfMemory { .. }) => "out_of_memory",
                Err(PluginError::BadOutput { .. }) => "bad_output",
                Err(PluginError::Busy { .. }) => "busy",
                Err(_) => "error",
            };
            metrics.call(outcome, started.elapsed(), healthy, ran == pool::Ran::Pool);
        }
    }

    /// The store for one call starting at `now`, with the deadline armed: an idle instance's
    /// own store (with the instance and its call count) when one is waiting, else a fresh store
    /// to instantiate in.
    fn checkout<I>(
        &self,
        plugin: &Loaded,
        idle: &Idle<I>,
        now: Instant,
    ) -> (Store<State>, Option<(I, u32)>) {
        let deadline = now + plugin.limits.timeout;
        let slice = plugin.slow.slice_ticks();
        if let Some(mut warm) = idle.take() {
            warm.store.data_mut().begin_call(deadline, slice);
            warm.store.set_epoch_deadline(1);
            return (warm.store, Some((warm.instance, warm.calls)));
        }
        let state = State::new(
            plugin.shared.clone(),
            plugin.limits.memory_bytes,
            deadline,
            slice,
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        // At each epoch tick (1 ms) the guest runs across: past the deadline it traps; past its
        // first slice (state.slice_ticks) it yields to the executor (which moves the call
        // to the plugin pool, and there lets other calls take turns); within it, it runs on.
        // Counting ticks, not time since the call began, keeps a cheap call that was only
        // preempted from counting as a long one.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut store| {
            let state = store.data_mut();
            state.ticks += 1;
            Ok(if Instant::now() >= state.deadline {
                wasmtime::UpdateDeadline::Interrupt
            } else if state.ticks >= state.slice_ticks {
                state.yielded = true;
                wasmtime::UpdateDeadline::Yield(1)
            } else {
                wasmtime::UpdateDeadline::Continue(1)
            })
        });
        (store, None)
    }
}

/// How a call gets its instance: an idle one (with the calls it has served), or a fresh one
/// from the pre-instance.
enum Start<E: Export> {
    Warm(E, u32),
    Fresh(E::Pre),
}

/// What a plugin said, during a call, that its answer depends on (`memo.remember`) and for how
/// many milliseconds.
type Remembered = Option<(bindings::memo::DependsOn, u32)>;

/// A world's export, called the same way whatever the world ([`PluginSet::call`]): what
/// differs is where its pre-instance and idle instances live, the call itself and the checks
/// on its answer.
trait Export: Sized + Send + 'static {
    /// What a call is given.
    type Input: Send + Sync + 'static;
    /// What a call returns.
    type Answer: Send + Sync + 'static;
    /// The pre-instance the export is instantiated from.
    type Pre: Clone + Send + Sync + 'static;
    /// The world's name, for [`PluginError::WrongKind`].
    const KIND: &'static str;
    fn pre(plugin: &Loaded) -> Option<&Self::Pre>;
    fn idle(plugin: &Loaded) -> &Idle<Self>;
    fn instantiate<'a>(
        pre: &'a Self::Pre,
        store: &'a mut Store<State>,
    ) -> impl Future<Output = wasmtime::Result<Self>> + Send + 'a;
    fn invoke<'a>(
        &'a self,
        store: &'a mut Store<State>,
        input: &'a Self::Input,
    ) -> impl Future<Output = wasmtime::Result<Self::Answer>> + Send + 'a;
    /// The answer within [`OutputCaps`], or [`PluginError::BadOutput`].
    fn check(plugin: &str, answer: Self::Answer) -> Result<Self::Answer, PluginError>;
    /// Whether the instance that gave `answer` may serve another call. An answer that says
    /// the plugin itself is failing (an authorizer's 5xx: a broken config, a Go handler that
    /// panicked and was recovered) gets the next call a fresh instance.
    fn reusable_after(answer: &Self::Answer) -> bool {
        let _ = answer;
        true
    }
}

/// An export asked about a request, whose answers the plugin may have remembered.
trait Asks: Export<Input = Arc<RequestFacts>> {
    fn memo(plugin: &Loaded) -> &memo::Memo<Self::Answer>;
}

impl Asks for bindings::authorizer::Authorizer {
    fn memo(plugin: &Loaded) -> &memo::Memo<Ruling> {
        &plugin.memo_authorize
    }
}

impl Asks for bindings::router::Router {
    fn memo(plugin: &Loaded) -> &memo::Memo<Option<String>> {
        &plugin.memo_route
    }
}

impl Export for bindings::authorizer::Authorizer {
    type Input = Arc<RequestFacts>;
    type Answer = Ruling;
    type Pre = bindings::authorizer::AuthorizerPre<State>;
    const KIND: &'static str = "authorizer";

    fn pre(plugin: &Loaded) -> Option<&Self::Pre> {
        plugin.authorizer.as_ref()
    }

    fn idle(plugin: &Loaded) -> &Idle<Self> {
        &plugin.idle_authorizers
    }

    fn instantiate<'a>(
        pre: &'a Self::Pre,
        store: &'a mut Store<State>,
    ) -> impl Future<Output = wasmtime::Result<Self>> + Send + 'a {
        pre.instantiate_async(store)
    }

    async fn invoke<'a>(
        &'a self,
        store: &'a mut Store<State>,
        facts: &'a Arc<RequestFacts>,
    ) -> wasmtime::Result<Ruling> {
        let decision = self.call_authorize(&mut *store, facts).await?;
        let limits = std::mem::take(&mut store.data_mut().limits).into_boxed_slice();
        Ok(Ruling { decision, limits })
    }

    fn check(plugin: &str, answer: Ruling) -> Result<Ruling, PluginError> {
        Ok(Ruling {
            decision: check_decision(plugin, answer.decision)?,
            limits: answer.limits,
        })
    }

    fn reusable_after(answer: &Ruling) -> bool {
        !matches!(&answer.decision, Decision::Deny(deny) if deny.status >= 500)
    }
}

impl Export for bindings::router::Router {
    type Input = Arc<RequestFacts>;
    type Answer = Option<String>;
    type Pre = bindings::router::RouterPre<State>;
    const KIND: &'static str = "router";

    fn pre(plugin: &Loaded) -> Option<&Self::Pre> {
        plugin.router.as_ref()
    }

    fn idle(plugin: &Loaded) -> &Idle<Self> {
        &plugin.idle_routers
    }

    fn instantiate<'a>(
        pre: &'a Self::Pre,
        store: &'a mut Store<State>,
    ) -> impl Future<Output = wasmtime::Result<Self>> + Send + 'a {
        pre.instantiate_async(store)
    }

    fn invoke<'a>(
        &'a self,
        store: &'a mut Store<State>,
        facts: &'a Arc<RequestFacts>,
    ) -> impl Future<Output = wasmtime::Result<Option<String>>> + Send + 'a {
        self.call_route(store, facts)
    }

    fn check(plugin: &str, answer: Option<String>) -> Result<Option<String>, PluginError> {
        if answer.as_ref().is_some_and(|r| r.len() > OutputCaps::ROUTE) {
            return Err(PluginError::BadOutput {
                plugin: plugin.to_string(),
                reason: format!("route name longer than {} bytes", OutputCaps::ROUTE),
            });
        }
        Ok(answer)
    }
}

/// Linear memory per pool slot reset in place (not given back to the kernel) between instances.
const KEEP_RESIDENT_BYTES: usize = 2 << 20;

/// The wall-clock bound on a call is its deadline plus this: the epoch interrupt normally ends
/// a guest first; this catches time spent in the host (instantiation, host calls).
const HOST_GRACE: Duration = Duration::from_millis(10);

impl Loaded {
    /// How far apart its calls must start: `None` while healthy (fewer than
    /// [`UNHEALTHY_AFTER`] failed calls in a row), else [`budget::pace`].
    fn pace(&self) -> Option<Duration> {
        let failures = self.counters.consecutive_failures.load(Ordering::Relaxed);
        failures.checked_sub(UNHEALTHY_AFTER).map(budget::pace)
    }

    fn health(&self) -> Health {
        let consecutive_failures = self.counters.consecutive_failures.load(Ordering::Relaxed);
        Health {
            healthy: consecutive_failures < UNHEALTHY_AFTER,
            consecutive_failures,
            calls: self.counters.calls.load(Ordering::Relaxed),
            failures: self.counters.failures.load(Ordering::Relaxed),
            log_truncations: self.counters.log_truncations.load(Ordering::Relaxed),
            waiting: self.budget.waiting(),
            overloaded: self.budget.rejected(),
        }
    }

    /// Count a finished call; whether the plugin is healthy after it.
    fn record<T>(&self, result: &Result<T, PluginError>, log_truncated: bool) -> bool {
        let c = &self.counters;
        c.calls.fetch_add(1, Ordering::Relaxed);
        if log_truncated {
            c.log_truncations.fetch_add(1, Ordering::Relaxed);
        }
        match result {
            Ok(_) => {
                c.consecutive_failures.store(0, Ordering::Relaxed);
                true
            }
            Err(e) => {
                c.failures.fetch_add(1, Ordering::Relaxed);
                let n = c.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
                if n == UNHEALTHY_AFTER {
                    tracing::error!(plugin = %self.shared.name, "plugin unhealthy after {n} failed calls in a row: {e}");
                }
                n < UNHEALTHY_AFTER
            }
        }
    }
}

/// Turn a call's outcome into the plugin's answer or a [`PluginError`] saying what went wrong.
fn finish<T>(
    plugin: &Loaded,
    store: &Store<State>,
    outcome: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
) -> Result<T, PluginError> {
    let name = plugin.shared.name.clone();
    let error = match outcome {
        Ok(Ok(value)) => return Ok(value),
        Ok(Err(error)) => error,
        Err(_elapsed) => {
            return Err(PluginError::Timeout {
                plugin: name,
                timeout: plugin.limits.timeout,
            });
        }
    };
    if store.data().limiter.hit {
        return Err(PluginError::OutOfMemory {
            plugin: name,
            limit_bytes: plugin.limits.memory_bytes,
        });
    }
    if matches!(error.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
        return Err(PluginError::Timeout {
            plugin: name,
            timeout: plugin.limits.timeout,
        });
    }
    if error
        .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
        .is_some()
    {
        return Err(PluginError::Busy {
            plugin: name,
            message: format!("{error:#}"),
        });
    }
    // The first line says what happened (e.g. "wasm trap: wasm `unreachable` instruction
    // executed"); the backtrace that follows belongs in debug logs, not in errors.
    let full = format!("{error:#}");
    tracing::debug!(plugin = %name, "plugin call failed: {full}");
    let message = full.lines().next().unwrap_or_default().to_string();
    Err(PluginError::Trap {
        plugin: name,
        message,
    })
}

fn check_decision(plugin: &str, decision: Decision) -> Result<Decision, PluginError> {
    let bad = |reason: String| {
        Err(PluginError::BadOutput {
            plugin: plugin.to_string(),
            reason,
        })
    };
    match &decision {
        Decision::Allow(allow) => {
            if allow.principal.is_empty() || allow.principal.len() > OutputCaps::PRINCIPAL {
                return bad(format!(
                    "principal must be 1 to {} bytes",
                    OutputCaps::PRINCIPAL
                ));
            }
            if allow.scopes.len() > OutputCaps::SCOPES
                || allow.scopes.iter().any(|s| s.len() > OutputCaps::SCOPE)
            {
                return bad(format!(
                    "at most {} scopes of at most {} bytes",
                    OutputCaps::SCOPES,
                    OutputCaps::SCOPE
                ));
            }
        }
        Decision::Deny(deny) => {
            if !(400..=599).contains(&deny.status) {
                return bad(format!("deny status {} is not 4xx or 5xx", deny.status));
            }
            if deny.message.len() > OutputCaps::MESSAGE || deny.message.contains(['\n', '\r']) {
                return bad(format!(
                    "deny message must be one line of at most {} bytes",
                    OutputCaps::MESSAGE
                ));
            }
        }
        Decision::Abstain => {}
    }
    Ok(decision)
}
