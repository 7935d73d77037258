//! The host interfaces a plugin may import (`log`, `config`, `kv`, `secrets`, `http`), each
//! enforcing the plugin's grants, and the per-call store state they live in (`crypto` is in
//! `crypto.rs`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use tokio::time::Instant;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{config, http, kv, limits, log, memo, secrets, types};

/// Log output kept per call; past it lines are dropped and one "truncated" line is logged.
pub const LOG_CAP_BYTES: usize = 64 * 1024;
/// Largest response body a plugin's outbound request may receive.
pub const HTTP_BODY_CAP_BYTES: usize = 1024 * 1024;
/// `kv` caps per plugin: entries, bytes per key + value, total bytes.
pub const KV_MAX_ENTRIES: usize = 4096;
pub const KV_MAX_ENTRY_BYTES: usize = 1024 * 1024;
pub const KV_MAX_TOTAL_BYTES: usize = 16 * 1024 * 1024;

pub type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// What every call of one plugin shares: its identity, config, grants and `kv` cache.
pub struct Shared {
    pub name: String,
    /// The plugin's TOML `config` table, as the JSON `config.get-json` returns.
    pub config_json: String,
    /// Granted `host:port` pairs, lower case.
    pub hosts: BTreeSet<String>,
    /// Granted secret names, with their value when the host has one.
    pub secrets: BTreeMap<String, Option<String>>,
    pub kv: Mutex<Kv>,
    pub http: Option<HttpClient>,
    /// Keys the plugin's instances have read through `crypto`.
    pub keys: super::crypto::KeyCache,
}

impl Shared {
    pub fn http_client() -> Option<HttpClient> {
        // Native roots: a plugin talks to the company's IdP like any other host service would.
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .ok()?
            .https_or_http()
            .enable_http1()
            .build();
        Some(
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(https),
        )
    }
}

/// A per-plugin TTL cache with hard size caps (a cache: entries may be refused or vanish).
#[derive(Default)]
pub struct Kv {
    entries: HashMap<String, (Vec<u8>, Option<Instant>)>,
    bytes: usize,
}

impl Kv {
    fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        match self.entries.get(key) {
            Some((_, Some(expiry))) if *expiry <= Instant::now() => {
                self.remove(key);
                None
            }
            Some((value, _)) => Some(value.clone()),
            None => None,
        }
    }

    fn set(&mut self, key: String, value: Vec<u8>, ttl: Option<Duration>) {
        self.remove(&key);
        let size = key.len() + value.len();
        if size > KV_MAX_ENTRY_BYTES {
            return;
        }
        if self.entries.len() >= KV_MAX_ENTRIES || self.bytes + size > KV_MAX_TOTAL_BYTES {
            let now = Instant::now();
            self.entries
                .retain(|_, (_, expiry)| expiry.is_none_or(|e| e > now));
            self.bytes = self
                .entries
                .iter()
                .map(|(k, (v, _))| k.len() + v.len())
                .sum();
            if self.entries.len() >= KV_MAX_ENTRIES || self.bytes + size > KV_MAX_TOTAL_BYTES {
                return;
            }
        }
        self.bytes += size;
        let expiry = ttl.map(|t| Instant::now() + t);
        self.entries.insert(key, (value, expiry));
    }

    fn remove(&mut self, key: &str) {
        if let Some((value, _)) = self.entries.remove(key) {
            self.bytes -= key.len() + value.len();
        }
    }
}

/// The memory cap, remembering whether the guest hit it (so a trap can be reported as OOM).
pub struct Limiter {
    pub memory_bytes: usize,
    pub hit: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; 100k is far beyond any real plugin.
        Ok(desired <= 100_000)
    }
}

/// Ticks a call runs across before it yields: 2, so a call yields after between 1 and 2 ms of
/// running (ticks are 1 ms), and a short call that a tick happens to fall into does not.
pub const FIRST_SLICE_TICKS: u32 = 2;

/// The first slice of a plugin none of whose recent calls ran long ([`super::pool::Slow`]):
/// between 3 and 4 ms. Its rare long call (a Go plugin's garbage collection takes about 1 ms)
/// then finishes where it started instead of moving to the plugin threads, which a saturated
/// server starves (there it could wait past its deadline and fail the request); a plugin that
/// starts running long is back to [`FIRST_SLICE_TICKS`] after its first such call.
pub const QUICK_PLUGIN_SLICE_TICKS: u32 = 4;

/// Everything an instance's `Store` holds; [`State::begin_call`] re-arms it for each call.
pub struct State {
    pub shared: Arc<Shared>,
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: Limiter,
    /// When the call must be over (also bounds outbound HTTP).
    pub deadline: Instant,
    /// Epoch ticks the guest ran across during this call: the first is let pass (a call that
    /// was only preempted across it, or started just before it, is not a long one), from
    /// `slice_ticks` on the guest yields.
    pub ticks: u32,
    /// [`FIRST_SLICE_TICKS`], or [`QUICK_PLUGIN_SLICE_TICKS`] for a plugin that runs quick.
    pub slice_ticks: u32,
    /// The guest ran past its first slice during this call (it yielded to the executor).
    pub yielded: bool,
    pub log_bytes: usize,
    pub log_truncated: bool,
    /// What the plugin said this call's answer depends on (`memo.remember`), with its TTL in ms.
    pub remembered: Option<(memo::DependsOn, u32)>,
    /// `crypto` public keys the instance holds (capped).
    pub crypto_keys: u32,
    /// The limits the plugin charged this call's request against (`limits.apply`).
    pub limits: Vec<crate::ratelimit::Limit>,
}

impl State {
    pub fn new(
        shared: Arc<Shared>,
        memory_bytes: usize,
        deadline: Instant,
        slice_ticks: u32,
    ) -> Self {
        // Deny by default: no preopened directories, no environment or arguments, stdin closed,
        // stdout/stderr discarded, no sockets and no name lookups. Clocks and randomness are
        // the host's (std needs them; they reveal nothing a request does not).
        let wasi = WasiCtx::builder()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        State {
            shared,
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter {
                memory_bytes,
                hit: false,
            },
            deadline,
            ticks: 0,
            slice_ticks,
            yielded: false,
            log_bytes: 0,
            log_truncated: false,
            remembered: None,
            crypto_keys: 0,
            limits: Vec::new(),
        }
    }

    /// Arm a reused instance's state for its next call: a new deadline and slice, and a fresh
    /// log budget. (An instance whose call failed is never reused, so the limiter has not
    /// refused anything.)
    pub fn begin_call(&mut self, deadline: Instant, slice_ticks: u32) {
        debug_assert!(
            !self.limiter.hit,
            "an instance that hit its memory cap was reused"
        );
        self.deadline = deadline;
        self.ticks = 0;
        self.slice_ticks = slice_ticks;
        self.yielded = false;
        self.log_bytes = 0;
        self.log_truncated = false;
        self.remembered = None;
        self.limits.clear();
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// `types` has no functions; its `Host` trait is empty.
impl types::Host for State {}

/// `storage-types` has no functions either.
impl super::bindings::storage_types::Host for State {}

impl log::Host for State {
    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        if self.log_truncated {
            return Ok(());
        }
        self.log_bytes += message.len();
        let plugin = self.shared.name.as_str();
        if self.log_bytes > LOG_CAP_BYTES {
            self.log_truncated = true;
            tracing::warn!(
                plugin,
                "plugin log truncated: more than {LOG_CAP_BYTES} bytes in one call"
            );
            return Ok(());
        }
        match level {
            log::Level::Trace => tracing::trace!(plugin, "{message}"),
            log::Level::Debug => tracing::debug!(plugin, "{message}"),
            log::Level::Info => tracing::info!(plugin, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, "{message}"),
            log::Level::Error => tracing::error!(plugin, "{message}"),
        }
        Ok(())
    }
}

impl config::Host for State {
    fn get_json(&mut self) -> wasmtime::Result<String> {
        Ok(self.shared.config_json.clone())
    }
}

impl kv::Host for State {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(lock(&self.shared.kv).get(&key))
    }

    fn set(&mut self, key: String, value: Vec<u8>, ttl_ms: Option<u64>) -> wasmtime::Result<()> {
        lock(&self.shared.kv).set(key, value, ttl_ms.map(Duration::from_millis));
        Ok(())
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        lock(&self.shared.kv).remove(&key);
        Ok(())
    }
}

/// The kv lock: a panic while holding it cannot leave the map inconsistent (every operation is
/// a single insert/remove), so a poisoned lock is still usable.
fn lock(kv: &Mutex<Kv>) -> std::sync::MutexGuard<'_, Kv> {
    kv.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl memo::Host for State {
    fn remember(&mut self, mut depends_on: memo::DependsOn, ttl_ms: u32) -> wasmtime::Result<()> {
        // Header names are compared in lower case, as the request facts carry them.
        for name in &mut depends_on.headers {
            name.make_ascii_lowercase();
        }
        // The host caps what it keeps per answer; a plugin that names more headers than a
        // request can carry is told nothing, its answer is simply not remembered.
        self.remembered = (depends_on.headers.len() <= super::memo::MAX_HEADERS
            && depends_on.headers.iter().all(|h| h.len() <= 256))
        .then_some((depends_on, ttl_ms));
        Ok(())
    }
}

impl limits::Host for State {
    fn apply(&mut self, limits: Vec<limits::Limit>) -> wasmtime::Result<Result<(), String>> {
        if limits.len() > crate::ratelimit::MAX_LIMITS {
            return Ok(Err(format!(
                "{} limits; at most {} apply to one request",
                limits.len(),
                crate::ratelimit::MAX_LIMITS
            )));
        }
        let checked = limits
            .into_iter()
            .map(crate::ratelimit::Limit::from_wit)
            .collect::<Result<Vec<_>, _>>();
        Ok(match checked {
            Ok(limits) => {
                self.limits = limits;
                Ok(())
            }
            Err(reason) => Err(reason),
        })
    }
}

impl secrets::Host for State {
    fn get(&mut self, name: String) -> wasmtime::Result<Result<String, secrets::Error>> {
        Ok(match self.shared.secrets.get(&name) {
            Some(Some(value)) => Ok(value.clone()),
            Some(None) => Err(secrets::Error::NotFound),
            None => Err(secrets::Error::NotGranted),
        })
    }
}

impl http::Host for State {
    async fn send(&mut self, req: http::Request) -> Result<http::Response, http::Error> {
        let uri: ::http::Uri = req
            .url
            .parse()
            .map_err(|e| http::Error::InvalidRequest(format!("url: {e}")))?;
        let authority = crate::upstream::authority(&uri)
            .map_err(|m| http::Error::InvalidRequest(format!("url: {m}")))?;
        if !self.shared.hosts.contains(&authority) {
            return Err(http::Error::NotGranted(authority));
        }
        let Some(client) = self.shared.http.clone() else {
            return Err(http::Error::Failed("no TLS roots on this host".into()));
        };
        let mut builder = ::http::Request::builder()
            .method(req.method.as_str())
            .uri(uri);
        for (name, value) in &req.headers {
            // The URL alone says where the request goes: no Host header to reach another
            // virtual host behind a granted address.
            if !name.eq_ignore_ascii_case("host") {
                builder = builder.header(name.as_str(), value.as_str());
            }
        }
        let request = builder
            .body(Full::new(Bytes::from(req.body)))
            .map_err(|e| http::Error::InvalidRequest(e.to_string()))?;
        let exchange = async {
            let response = client
                .request(request)
                .await
                .map_err(|e| http::Error::Failed(e.to_string()))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, HTTP_BODY_CAP_BYTES)
                .collect()
                .await
                .map_err(|e| http::Error::Failed(format!("body: {e}")))?
                .to_bytes();
            let headers = parts
                .headers
                .iter()
                .filter_map(|(n, v)| Some((n.to_string(), v.to_str().ok()?.to_string())))
                .collect();
            Ok(http::Response {
                status: parts.status.as_u16(),
                headers,
                body: body.to_vec(),
            })
        };
        tokio::time::timeout_at(self.deadline, exchange)
            .await
            .unwrap_or(Err(http::Error::Timeout))
    }
}
