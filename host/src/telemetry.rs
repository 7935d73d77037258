//! Access logs (tracing) and Prometheus metrics.
//!
//! Logs are JSON lines on stdout ([`init_logging`]); the access log is one line per request with
//! target `modgate::access`, written by the server when the response body is finished or dropped.
//! Metrics live in one [`Metrics`] registry shared by the server and the handler and are rendered
//! at `/metrics` by [`Metrics::render`].

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::{Atomic, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};

/// The endpoint kind of a response, for metric labels and the access log.
///
/// The handler inserts it into the response's extensions; the server reads it back when the
/// response is finished. Responses without one are counted as `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint(pub &'static str);

impl Endpoint {
    /// The label used when a response carries no [`Endpoint`].
    pub const OTHER: Endpoint = Endpoint("other");
}

/// The environment variable holding the log filter (`RUST_LOG` syntax, e.g. `info,modgate=debug`).
pub const LOG_ENV: &str = "MODGATE_LOG";

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LogInitError {
    /// `MODGATE_LOG` does not parse as a filter.
    #[error("{LOG_ENV}: {0}")]
    Filter(#[from] tracing_subscriber::filter::FromEnvError),
    /// A global subscriber was already installed (e.g. `init_logging` called twice).
    #[error("logging is already initialised: {0}")]
    AlreadySet(#[from] tracing_subscriber::util::TryInitError),
}

/// Installs the global tracing subscriber: JSON lines on stdout, event fields flattened into the
/// top-level object (so access-log lines read `{"method":"GET","status":200,...}`), filtered by
/// [`LOG_ENV`] (default `info`).
pub fn init_logging() -> Result<(), LogInitError> {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::filter::LevelFilter;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .with_env_var(LOG_ENV)
        .from_env()?;
    json_subscriber(filter, std::io::stdout).try_init()?;
    Ok(())
}

/// The production log format writing to `writer`; tests use it to check what operators see.
pub(crate) fn json_subscriber<W>(
    filter: tracing_subscriber::EnvFilter,
    writer: W,
) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_writer(writer)
        .finish()
}

// Label sets are small `Copy`-able structs of static strings so that `get_or_create` on the hot
// path hashes a few words and never allocates after the first request of each kind.

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    kind: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamOutcomeLabels {
    upstream: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginOutcomeLabels {
    plugin: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: String,
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

/// Plugin call latency buckets (seconds): a call into a reused instance takes microseconds,
/// the default deadline is 50 ms.
const PLUGIN_BUCKETS: [f64; 12] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05,
    0.25,
];

fn plugin_histogram() -> Histogram {
    Histogram::new(PLUGIN_BUCKETS)
}

/// Request latency buckets (seconds): storage hits take around a millisecond, upstream fetches
/// of large zips can take minutes.
const REQUEST_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0,
];

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS)
}

/// Process-wide metrics, rendered at `/metrics`.
///
/// Cheap to update from any thread. The per-request metrics (requests, durations, cache
/// lookups, memo hits) are kept per thread and summed when rendered, their handles cached per
/// thread: no lock, no line shared between cores. The rest are a few atomic operations (plus a
/// hash-map lookup under a read lock for labelled families).
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, LocalCounter>,
    request_duration: Family<EndpointLabels, LocalHistogram, fn() -> LocalHistogram>,
    cache_lookups: Family<CacheLabels, LocalCounter>,
    /// Each thread's handles to the per-request metrics above, so a request takes no lock
    /// (a family's lookup takes a read lock every core writes to).
    handles: thread_local::ThreadLocal<RefCell<Handles>>,
    upstream_requests: Family<UpstreamOutcomeLabels, Counter>,
    upstream_duration: Histogram,
    upstream_rejected: Family<UpstreamLabels, Counter>,
    upstream_skipped: Family<UpstreamLabels, Gauge>,
    connections_open: Gauge,
    tls_handshake_failures: Counter,
    acme_orders: Family<OutcomeLabels, Counter>,
    acme_not_after: Gauge,
    plugin_calls: Family<PluginOutcomeLabels, Counter>,
    plugin_call_duration: Family<PluginLabels, Histogram, fn() -> Histogram>,
    plugin_healthy: Family<PluginLabels, Gauge>,
    plugin_memo_hits: Family<PluginLabels, LocalCounter>,
    plugin_pool_calls: Family<PluginLabels, Counter>,
    plugin_overloaded: Family<PluginLabels, Counter>,
    plugin_queue: Family<PluginLabels, Gauge>,
    cluster_leases: Family<OutcomeLabels, Counter>,
    cluster_degraded: Counter,
    rate_limited: Family<LimitLabels, Counter>,
    sumdb_checks: Family<OutcomeLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The `Content-Type` of [`Metrics::render`]'s output (OpenMetrics text, which Prometheus
    /// scrapes natively).
    pub const CONTENT_TYPE: &'static str =
        "application/openmetrics-text; version=1.0.0; charset=utf-8";

    /// Creates the registry with every modgate metric registered (all start at zero).
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("modgate");
        let requests = Family::<RequestLabels, LocalCounter>::default();
        registry.register(
            "requests",
            "Requests served, by endpoint and status",
            requests.clone(),
        );
        let request_duration =
            Family::<EndpointLabels, LocalHistogram, fn() -> LocalHistogram>::new_with_constructor(
                || LocalHistogram::new(&REQUEST_BUCKETS),
            );
        registry.register_with_unit(
            "request_duration",
            "Time from request head to the last body byte, by endpoint",
            Unit::Seconds,
            request_duration.clone(),
        );
        let cache_lookups = Family::<CacheLabels, LocalCounter>::default();
        registry.register(
            "cache_lookups",
            "Storage lookups by artifact kind and result (hit or miss)",
            cache_lookups.clone(),
        );
        let upstream_requests = Family::<UpstreamOutcomeLabels, Counter>::default();
        registry.register(
            "upstream_requests",
            "Upstream requests by upstream (host:port) and outcome: ok, not_found, refused (400/403), status (another error status: 5xx, 429…), connect (connection, TLS or DNS failure), timeout, body (the body broke off), too_large, redirects (too many, or unusable), invalid, store (ours), skipped",
            upstream_requests.clone(),
        );
        let upstream_duration = request_histogram();
        registry.register_with_unit(
            "upstream_request_duration",
            "Duration of upstream requests, including the body",
            Unit::Seconds,
            upstream_duration.clone(),
        );
        let upstream_skipped = Family::<UpstreamLabels, Gauge>::default();
        registry.register(
            "upstream_skipped",
            "1 while an upstream is skipped after failing repeatedly ([upstream.NAME] skip_after)",
            upstream_skipped.clone(),
        );
        let upstream_rejected = Family::<UpstreamLabels, Counter>::default();
        registry.register(
            "upstream_rejected",
            "Upstream artifacts that failed validation and were not stored",
            upstream_rejected.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "connections_open",
            "Client connections currently open",
            connections_open.clone(),
        );
        let tls_handshake_failures = Counter::default();
        registry.register(
            "tls_handshake_failures",
            "Client connections dropped because the TLS handshake failed or timed out",
            tls_handshake_failures.clone(),
        );
        let acme_orders = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "acme_orders",
            "ACME certificate orders by outcome (ok, failed): a failure keeps the certificate in use",
            acme_orders.clone(),
        );
        let acme_not_after = Gauge::default();
        registry.register(
            "acme_certificate_not_after",
            "Expiry (Unix seconds) of the last certificate obtained through ACME",
            acme_not_after.clone(),
        );
        let plugin_calls = Family::<PluginOutcomeLabels, Counter>::default();
        registry.register(
            "plugin_calls",
            "Plugin calls by plugin and outcome (ok, trap, timeout, out_of_memory, bad_output, busy)",
            plugin_calls.clone(),
        );
        let plugin_call_duration =
            Family::<PluginLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                plugin_histogram,
            );
        registry.register_with_unit(
            "plugin_call_duration",
            "Duration of plugin calls, instantiation included, by plugin",
            Unit::Seconds,
            plugin_call_duration.clone(),
        );
        let plugin_healthy = Family::<PluginLabels, Gauge>::default();
        registry.register(
            "plugin_healthy",
            "1 while the plugin is healthy, 0 after repeated failed calls (until one succeeds)",
            plugin_healthy.clone(),
        );
        let plugin_memo_hits = Family::<PluginLabels, LocalCounter>::default();
        registry.register(
            "plugin_memo_hits",
            "Requests answered with a plugin's remembered answer (memo), without calling it",
            plugin_memo_hits.clone(),
        );
        let plugin_pool_calls = Family::<PluginLabels, Counter>::default();
        registry.register(
            "plugin_pool_calls",
            "Plugin calls that ran past their first slice (or started there: the plugin was slow) and finished on the plugin threads",
            plugin_pool_calls.clone(),
        );
        let plugin_overloaded = Family::<PluginLabels, Counter>::default();
        registry.register(
            "plugin_overloaded",
            "Requests refused (503) without a call: limits.max_queue calls were already waiting for the plugin",
            plugin_overloaded.clone(),
        );
        let plugin_queue = Family::<PluginLabels, Gauge>::default();
        registry.register(
            "plugin_queue",
            "Calls waiting for a turn (limits.max_concurrent calls are running)",
            plugin_queue.clone(),
        );
        let cluster_leases = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "cluster_fills",
            "Version fills coordinated through [cluster] Redis: held (this replica filled), waited (another replica did), gave_up_waiting",
            cluster_leases.clone(),
        );
        let cluster_degraded = Counter::default();
        registry.register(
            "cluster_degraded",
            "Version fills and rate-limit checks done in this replica alone because Redis could not be reached",
            cluster_degraded.clone(),
        );
        let rate_limited = Family::<LimitLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused with 429 by a rate limit, by limit name and kind (requests: the token bucket, bytes: the daily byte quota)",
            rate_limited.clone(),
        );
        let sumdb_checks = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "sumdb_checks",
            "Versions from upstream proxies checked against the checksum database: ok, mismatch (not stored), not_found, error (could not verify), halted",
            sumdb_checks.clone(),
        );
        Self {
            registry,
            sumdb_checks,
            rate_limited,
            cluster_leases,
            cluster_degraded,
            plugin_calls,
            plugin_pool_calls,
            plugin_overloaded,
            plugin_queue,
            plugin_call_duration,
            plugin_healthy,
            plugin_memo_hits,
            requests,
            request_duration,
            cache_lookups,
            handles: thread_local::ThreadLocal::new(),
            upstream_requests,
            upstream_duration,
            upstream_rejected,
            upstream_skipped,
            connections_open,
            tls_handshake_failures,
            acme_orders,
            acme_not_after,
        }
    }

    /// One finished request: endpoint kind (`list`, `info`, `mod`, `zip`, `latest`, `sumdb`, `ops`, `invalid`).
    pub fn observe_request(&self, endpoint: &'static str, status: u16, elapsed: Duration) {
        let mut handles = self.local_handles().borrow_mut();
        let (count, duration) = cached(&mut handles.requests, label_key(endpoint, status), || {
            let count = self
                .requests
                .get_or_create(&RequestLabels { endpoint, status })
                .clone();
            let duration = self
                .request_duration
                .get_or_create(&EndpointLabels { endpoint })
                .clone();
            (count, duration)
        });
        count.inc();
        duration.observe(elapsed.as_secs_f64());
    }

    /// A storage lookup for `kind` (`info`, `mod`, `zip`, `list`, `latest`) hit or missed.
    pub fn cache_lookup(&self, kind: &'static str, hit: bool) {
        let mut handles = self.local_handles().borrow_mut();
        let count = cached(&mut handles.cache, label_key(kind, hit), || {
            let result = if hit { "hit" } else { "miss" };
            self.cache_lookups
                .get_or_create(&CacheLabels { kind, result })
                .clone()
        });
        count.inc();
    }

    fn local_handles(&self) -> &RefCell<Handles> {
        self.handles.get_or_default()
    }

    /// One request to the upstream at `url` finished with `outcome` (see the metric's help).
    pub fn upstream_fetch(&self, url: &str, outcome: &'static str, elapsed: Duration) {
        self.upstream_requests
            .get_or_create(&UpstreamOutcomeLabels {
                upstream: crate::upstream::host_of(url),
                outcome,
            })
            .inc();
        self.upstream_duration.observe(elapsed.as_secs_f64());
    }

    /// The upstream at `base` is skipped (or no longer is).
    pub fn upstream_skipped(&self, base: &str, skipped: bool) {
        self.upstream_skipped
            .get_or_create(&UpstreamLabels {
                upstream: crate::upstream::redact(base),
            })
            .set(i64::from(skipped));
    }

    /// An artifact from `upstream` (`host:port`) failed validation and was not stored.
    pub fn upstream_rejected(&self, upstream: &str) {
        self.upstream_rejected
            .get_or_create(&UpstreamLabels {
                upstream: upstream.to_owned(),
            })
            .inc();
    }

    /// A version fill coordinated through the cluster: `held`, `waited` or `gave_up_waiting`.
    pub fn cluster_lease(&self, outcome: &'static str) {
        self.cluster_leases
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// A checksum-database check of an upstream artifact: `ok`, `mismatch`, `not_found`,
    /// `error` or `halted`.
    pub fn sumdb_check(&self, outcome: &'static str) {
        self.sumdb_checks
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// A version fill done without a lease (Redis unreachable).
    pub fn cluster_degraded(&self) {
        self.cluster_degraded.inc();
    }

    /// A request refused by rate limit `limit` (`kind`: `requests` or `bytes`).
    pub fn rate_limited(&self, limit: &str, kind: &'static str) {
        self.rate_limited
            .get_or_create(&LimitLabels {
                limit: limit.to_string(),
                kind,
            })
            .inc();
    }

    /// The metric handles of plugin `plugin`, labels resolved once: a call then costs a few
    /// atomic operations, no label lookup.
    pub fn plugin(&self, plugin: &str) -> PluginMetrics {
        let labels = PluginLabels {
            plugin: plugin.to_string(),
        };
        PluginMetrics {
            calls: PLUGIN_OUTCOMES.map(|outcome| {
                self.plugin_calls
                    .get_or_create(&PluginOutcomeLabels {
                        plugin: plugin.to_string(),
                        outcome,
                    })
                    .clone()
            }),
            duration: self.plugin_call_duration.get_or_create(&labels).clone(),
            healthy: self.plugin_healthy.get_or_create(&labels).clone(),
            memo_hits: self.plugin_memo_hits.get_or_create(&labels).clone(),
            pool_calls: self.plugin_pool_calls.get_or_create(&labels).clone(),
            overloaded: self.plugin_overloaded.get_or_create(&labels).clone(),
            queue: self.plugin_queue.get_or_create(&labels).clone(),
        }
    }

    /// A TLS handshake failed or timed out.
    pub fn tls_handshake_failed(&self) {
        self.tls_handshake_failures.inc();
    }

    /// An ACME order ended: a new certificate (expiring at `not_after`), or a failure.
    pub fn acme_order(&self, ok: bool, not_after: Option<std::time::SystemTime>) {
        let outcome = if ok { "ok" } else { "failed" };
        self.acme_orders
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
        if let Some(t) = not_after.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()) {
            self.acme_not_after
                .set(i64::try_from(t.as_secs()).unwrap_or(i64::MAX));
        }
    }

    /// Counts a client connection as open until the returned guard is dropped.
    pub fn connection_opened(self: &Arc<Self>) -> OpenConnection {
        self.connections_open.inc();
        OpenConnection {
            metrics: Arc::clone(self),
        }
    }

    /// Prometheus text exposition format (OpenMetrics flavour, see [`Metrics::CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail; an Err here could only come from a metric's own
        // encoder, and those in this registry are all infallible.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "rendering metrics failed");
        }
        out
    }
}

/// The outcomes of a plugin call, as `modgate_plugin_calls_total` labels them.
pub const PLUGIN_OUTCOMES: [&str; 7] = [
    "ok",
    "trap",
    "timeout",
    "out_of_memory",
    "bad_output",
    "busy",
    "error",
];

/// One plugin's metric handles (see [`Metrics::plugin`]).
#[derive(Clone, Debug)]
pub struct PluginMetrics {
    calls: [Counter; PLUGIN_OUTCOMES.len()],
    duration: Histogram,
    healthy: Gauge,
    memo_hits: LocalCounter,
    pool_calls: Counter,
    overloaded: Counter,
    /// Calls waiting for a turn (moved as calls join and leave the queue).
    pub queue: Gauge,
}

impl PluginMetrics {
    /// One call finished with `outcome` (one of [`PLUGIN_OUTCOMES`]; anything else counts as
    /// `error`); `healthy` is the plugin's health after it; `on_pool`: it finished on the
    /// plugin threads.
    pub fn call(&self, outcome: &str, elapsed: Duration, healthy: bool, on_pool: bool) {
        let i = PLUGIN_OUTCOMES
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or(PLUGIN_OUTCOMES.len() - 1);
        self.calls[i].inc();
        self.duration.observe(elapsed.as_secs_f64());
        self.healthy.set(i64::from(healthy));
        if on_pool {
            self.pool_calls.inc();
        }
    }

    /// A request was refused without a call: the plugin's queue was full.
    pub fn overloaded(&self) {
        self.overloaded.inc();
    }

    /// A request was answered from the plugin's memo, without a call.
    pub fn memo_hit(&self) {
        self.memo_hits.inc();
    }
}

/// One thread's handles to the per-request metrics, keyed by the label strings' addresses
/// (the labels are literals; two copies of one literal only make two handles to the same
/// metric). A handful of entries each: a scan compares a few integers.
#[derive(Default)]
struct Handles {
    requests: Vec<(LabelKey<u16>, (LocalCounter, LocalHistogram))>,
    cache: Vec<(LabelKey<bool>, LocalCounter)>,
}

/// A label literal's address and length, and the other label.
type LabelKey<T> = (usize, usize, T);

fn label_key<T>(literal: &'static str, other: T) -> LabelKey<T> {
    (literal.as_ptr() as usize, literal.len(), other)
}

/// The handle cached under `key` in `list`, made by `make` (and kept) the first time.
fn cached<K: PartialEq, V>(list: &mut Vec<(K, V)>, key: K, make: impl FnOnce() -> V) -> &V {
    let i = match list.iter().position(|(k, _)| *k == key) {
        Some(i) => i,
        None => {
            list.push((key, make()));
            list.len() - 1
        }
    };
    &list[i].1
}

/// A counter kept per thread.
type LocalCounter = Counter<u64, PerThread>;

/// A histogram each thread observes into on its own cache lines, rendered as the sum: an
/// observation takes no lock (prometheus-client's `Histogram` takes a write lock every core
/// contends for).
#[derive(Debug, Clone)]
pub struct LocalHistogram(Arc<HistogramShards>);

#[derive(Debug)]
struct HistogramShards {
    /// Upper bounds, ascending, the last `f64::MAX` (rendered `+Inf`).
    bounds: Box<[f64]>,
    shards: thread_local::ThreadLocal<CacheLine<HistogramShard>>,
}

/// One thread's observations: only that thread writes them.
#[derive(Debug)]
struct HistogramShard {
    /// The sum's `f64` bits.
    sum: AtomicU64,
    count: AtomicU64,
    /// Observations per bucket (not cumulative), as `bounds`.
    buckets: Box<[AtomicU64]>,
}

impl LocalHistogram {
    pub fn new(bounds: &[f64]) -> Self {
        let bounds = bounds.iter().copied().chain([f64::MAX]).collect();
        LocalHistogram(Arc::new(HistogramShards {
            bounds,
            shards: thread_local::ThreadLocal::new(),
        }))
    }

    pub fn observe(&self, v: f64) {
        let all = &*self.0;
        let shard = &all
            .shards
            .get_or(|| {
                CacheLine(HistogramShard {
                    sum: AtomicU64::new(0f64.to_bits()),
                    count: AtomicU64::new(0),
                    buckets: all.bounds.iter().map(|_| AtomicU64::new(0)).collect(),
                })
            })
            .0;
        // NaN (never from a duration) lands in the last bucket.
        let i = all
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(all.bounds.len() - 1);
        add_own(&shard.buckets[i], 1);
        add_own(&shard.count, 1);
        let sum = f64::from_bits(shard.sum.load(Ordering::Relaxed)) + v;
        shard.sum.store(sum.to_bits(), Ordering::Relaxed);
    }

    /// Sum, count and per-bucket counts over every thread.
    fn totals(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let all = &*self.0;
        let mut buckets: Vec<(f64, u64)> = all.bounds.iter().map(|b| (*b, 0)).collect();
        let (mut sum, mut count) = (0.0, 0);
        for shard in all.shards.iter() {
            let shard = &shard.0;
            sum += f64::from_bits(shard.sum.load(Ordering::Relaxed));
            count += shard.count.load(Ordering::Relaxed);
            for (total, n) in buckets.iter_mut().zip(shard.buckets.iter()) {
                total.1 += n.load(Ordering::Relaxed);
            }
        }
        (sum, count, buckets)
    }
}

impl TypedMetric for LocalHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LocalHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.totals();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// A count kept per thread and read as the sum: for counts every worker bumps on most requests,
/// where one shared atomic would move its cache line between cores each time.
#[derive(Debug, Default)]
pub struct PerThread(thread_local::ThreadLocal<CacheLine<AtomicU64>>);

/// A value alone on its cache line (two lines: adjacent-line prefetch pairs them), so threads
/// writing neighbouring values do not slow each other down.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct CacheLine<T>(pub T);

impl Atomic<u64> for PerThread {
    fn inc(&self) -> u64 {
        self.inc_by(1)
    }

    fn inc_by(&self, v: u64) -> u64 {
        add_own(&self.0.get_or_default().0, v)
    }

    fn get(&self) -> u64 {
        self.0
            .iter()
            .map(|c| c.0.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

/// Adds `v` to a count only the calling thread writes (others only read it): a load and a
/// store, no locked instruction. Returns the count before.
fn add_own(count: &AtomicU64, v: u64) -> u64 {
    let before = count.load(Ordering::Relaxed);
    count.store(before.wrapping_add(v), Ordering::Relaxed);
    before
}

/// An open connection, counted in `modgate_connections_open` until dropped.
#[derive(Debug)]
pub struct OpenConnection {
    metrics: Arc<Metrics>,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.metrics.connections_open.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_with_labels() {
        let m = Arc::new(Metrics::new());
        m.observe_request("zip", 200, Duration::from_millis(30));
        m.observe_request("zip", 200, Duration::from_millis(3));
        m.observe_request("info", 404, Duration::from_millis(1));
        m.cache_lookup("mod", true);
        m.cache_lookup("mod", false);
        m.upstream_fetch("http://127.0.0.1:1/x", "ok", Duration::from_millis(120));
        m.upstream_rejected("127.0.0.1:1");
        let tokens = m.plugin("tokens");
        tokens.call("ok", Duration::from_micros(4), true, false);
        tokens.call("trap", Duration::from_micros(40), false, true);
        tokens.memo_hit();
        tokens.overloaded();
        tokens.queue.set(3);
        let conn = m.connection_opened();
        let text = m.render();
        for needle in [
            r#"modgate_requests_total{endpoint="zip",status="200"} 2"#,
            r#"modgate_requests_total{endpoint="info",status="404"} 1"#,
            r#"modgate_request_duration_seconds_count{endpoint="zip"} 2"#,
            r#"modgate_cache_lookups_total{kind="mod",result="hit"} 1"#,
            r#"modgate_cache_lookups_total{kind="mod",result="miss"} 1"#,
            r#"modgate_upstream_requests_total{upstream="127.0.0.1:1",outcome="ok"} 1"#,
            "modgate_upstream_request_duration_seconds_count 1",
            r#"modgate_upstream_rejected_total{upstream="127.0.0.1:1"} 1"#,
            "modgate_connections_open 1",
            r#"modgate_plugin_calls_total{plugin="tokens",outcome="ok"} 1"#,
            r#"modgate_plugin_memo_hits_total{plugin="tokens"} 1"#,
            r#"modgate_plugin_calls_total{plugin="tokens",outcome="trap"} 1"#,
            r#"modgate_plugin_call_duration_seconds_count{plugin="tokens"} 2"#,
            r#"modgate_plugin_healthy{plugin="tokens"} 0"#,
            r#"modgate_plugin_pool_calls_total{plugin="tokens"} 1"#,
            r#"modgate_plugin_overloaded_total{plugin="tokens"} 1"#,
            r#"modgate_plugin_queue{plugin="tokens"} 3"#,
            "# EOF",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        drop(conn);
        assert!(m.render().contains("modgate_connections_open 0"));
    }

    #[test]
    fn per_thread_counts_add_up_across_threads() {
        let m = Metrics::new();
        let tokens = m.plugin("tokens");
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| (0..1000).for_each(|_| tokens.memo_hit()));
            }
        });
        tokens.memo_hit();
        // A second handle to the same plugin shares the count.
        m.plugin("tokens").memo_hit();
        assert!(
            m.render()
                .contains(r#"modgate_plugin_memo_hits_total{plugin="tokens"} 4002"#),
            "{}",
            m.render()
        );
    }

    #[test]
    fn per_thread_histogram_renders_as_prometheus_clients_own() {
        // Dyadic values: their sum is exact whatever order the threads add them in (with
        // 0.0005 and 0.2 the last digit of `_sum` depended on the order).
        let values = [
            0.000732421875,
            0.0009765625,
            0.0029296875,
            0.1875,
            0.1875,
            7.5,
            400.0,
        ];
        let reference = request_histogram();
        let local = LocalHistogram::new(&REQUEST_BUCKETS);
        for v in values {
            reference.observe(v);
        }
        std::thread::scope(|scope| {
            for half in values.chunks(4) {
                let local = local.clone();
                scope.spawn(move || half.iter().for_each(|v| local.observe(*v)));
            }
        });
        let render = |metric: Box<dyn FnOnce(&mut Registry)>| {
            let mut registry = Registry::default();
            metric(&mut registry);
            let mut text = String::new();
            prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
            text
        };
        let want = render(Box::new(move |r| r.register("d", "d", reference)));
        let got = render(Box::new(move |r| r.register("d", "d", local)));
        assert!(want.contains(r#"d_bucket{le="+Inf"} 7"#), "{want}");
        assert_eq!(got, want);
    }

    #[test]
    fn request_metrics_from_many_threads_add_up() {
        let m = Metrics::new();
        std::thread::scope(|scope| {
            for _ in 0..3 {
                scope.spawn(|| {
                    for _ in 0..100 {
                        m.observe_request("info", 200, Duration::from_micros(300));
                        m.cache_lookup("info", true);
                    }
                    m.observe_request("info", 404, Duration::from_millis(2));
                });
            }
        });
        let text = m.render();
        for needle in [
            r#"modgate_requests_total{endpoint="info",status="200"} 300"#,
            r#"modgate_requests_total{endpoint="info",status="404"} 3"#,
            r#"modgate_request_duration_seconds_count{endpoint="info"} 303"#,
            r#"modgate_request_duration_seconds_bucket{le="0.001",endpoint="info"} 300"#,
            r#"modgate_cache_lookups_total{kind="info",result="hit"} 300"#,
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }
}
