//! Replicas over one storage (`[cluster] redis = "redis://…"`): a lease per version fill in
//! Redis, so a storm of misses spread over every replica makes one upstream fetch per version.
//!
//! The replica that takes a version's lease fills it (fetch, check, commit with `.info` last);
//! the others wait for the commit, polling storage, and serve it from there. A lease expires
//! (`lease_ttl`) unless its holder renews it while the fill runs, so a replica that dies
//! holding one blocks the others for at most that long; a lease's value is a fencing token
//! unique to that acquisition, and only its holder can renew or release it. Redis is never
//! needed for correctness (storage writes are conditional and immutable): when it cannot be
//! reached a replica fills on its own (in-process single-flight only), says so in the log once
//! in a while and counts it in `modgate_cluster_degraded_total`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::Error;

/// How long one Redis command may take before the replica goes on without it.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

/// Polling for another replica's commit: from this interval, doubling, up to [`POLL_MAX`].
const POLL_MIN: Duration = Duration::from_millis(50);
const POLL_MAX: Duration = Duration::from_millis(500);

/// Extend the lease by its TTL if we still hold it (our token).
const RENEW: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
                     return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";
/// Drop the lease if we still hold it.
const RELEASE: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
                       return redis.call('del', KEYS[1]) else return 0 end";

/// `[cluster]`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `redis://[user:password@]host:port[/db]`.
    pub redis: String,
    /// How long a lease lives without renewal.
    pub lease_ttl: Duration,
}

/// The replicas' shared coordination.
pub struct Cluster {
    redis: redis::aio::ConnectionManager,
    /// This process, in fencing tokens (`pid-random`).
    me: String,
    acquisitions: AtomicU64,
    lease_ttl: Duration,
    metrics: Arc<crate::telemetry::Metrics>,
    /// When Redis was last reported unreachable in the log (ms since `started`).
    last_warning_ms: AtomicU64,
    started: Instant,
}

/// Who fills a version.
enum Turn {
    /// This replica: fill, then release the lease.
    Mine(String),
    /// Another replica holds the lease: wait for its commit.
    Theirs,
    /// Redis is unreachable: fill here.
    Degraded,
}

impl Cluster {
    /// The cluster of `config` (no connection is made until the first lease).
    pub fn new(
        config: &ClusterConfig,
        metrics: Arc<crate::telemetry::Metrics>,
    ) -> Result<Arc<Self>, Error> {
        let client = redis::Client::open(config.redis.as_str())
            .map_err(|e| Error::Internal(format!("cluster.redis: {e}")))?;
        let settings = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let redis = redis::aio::ConnectionManager::new_lazy_with_config(client, settings)
            .map_err(|e| Error::Internal(format!("cluster.redis: {e}")))?;
        let mut random = [0u8; 8];
        getrandom::fill(&mut random)
            .map_err(|e| Error::Internal(format!("cluster: no randomness: {e}")))?;
        Ok(Arc::new(Cluster {
            redis,
            me: format!("{}-{}", std::process::id(), hex::encode(random)),
            acquisitions: AtomicU64::new(0),
            lease_ttl: config.lease_ttl,
            metrics,
            last_warning_ms: AtomicU64::new(0),
            started: Instant::now(),
        }))
    }

    /// Runs `fill` in this replica only if no other replica is filling `key`: otherwise waits
    /// until `committed` says the other replica's fill is stored (or its lease lapsed, then
    /// tries again), at most `wait` in all (then fills here).
    pub async fn fill_once<C, CF, F, FF>(
        self: &Arc<Self>,
        key: &str,
        wait: Duration,
        committed: C,
        fill: F,
    ) -> Result<(), Error>
    where
        C: Fn() -> CF,
        CF: Future<Output = Result<bool, Error>>,
        F: FnOnce() -> FF,
        FF: Future<Output = Result<(), Error>>,
    {
        let key = format!("modgate:fill:{key}");
        let deadline = Instant::now() + wait;
        let mut poll = POLL_MIN;
        loop {
            match self.take(&key).await {
                Turn::Mine(token) => {
                    self.metrics.cluster_lease("held");
                    // Stops renewing however the fill ends (a panic included): the lease then
                    // expires by itself if it is not released below.
                    let renewing =
                        AbortOnDrop(self.renew_while_filling(key.clone(), token.clone()));
                    let result = fill().await;
                    drop(renewing);
                    self.release(&key, &token).await;
                    return result;
                }
                Turn::Degraded => return fill().await,
                Turn::Theirs => {
                    if Instant::now() >= deadline {
                        self.metrics.cluster_lease("gave_up_waiting");
                        return fill().await;
                    }
                    tokio::time::sleep(poll).await;
                    poll = (poll * 2).min(POLL_MAX);
                    if committed().await? {
                        self.metrics.cluster_lease("waited");
                        return Ok(());
                    }
                }
            }
        }
    }

    /// `SET key token NX PX ttl`: the lease if free.
    async fn take(&self, key: &str) -> Turn {
        let n = self.acquisitions.fetch_add(1, Ordering::Relaxed);
        let token = format!("{}-{n}", self.me);
        let mut redis = self.redis.clone();
        let mut set = redis::cmd("SET");
        set.arg(key)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(millis(self.lease_ttl));
        let set = set.query_async::<Option<String>>(&mut redis);
        match tokio::time::timeout(COMMAND_TIMEOUT, set).await {
            Ok(Ok(Some(_))) => Turn::Mine(token),
            Ok(Ok(None)) => Turn::Theirs,
            Ok(Err(e)) => self.degraded_fill(&e.to_string()),
            Err(_) => self.degraded_fill("no answer in time"),
        }
    }

    fn degraded_fill(&self, why: &str) -> Turn {
        self.degraded(
            why,
            "filling in this replica only (other replicas may fetch the same versions)",
        );
        Turn::Degraded
    }

    /// Redis could not be reached for something the replicas share: counted, and said in the
    /// log once every 10 s at most whatever the request rate, with what the replica does
    /// meanwhile (`instead`).
    pub fn degraded(&self, why: &str, instead: &str) {
        self.metrics.cluster_degraded();
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_warning_ms.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= 10_000)
            && self
                .last_warning_ms
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!("cluster: Redis unreachable ({why}); {instead} until it is back");
        }
    }

    /// A handle on the shared Redis connection.
    pub fn redis(&self) -> redis::aio::ConnectionManager {
        self.redis.clone()
    }

    /// Renews the lease every third of its TTL until aborted.
    fn renew_while_filling(&self, key: String, token: String) -> tokio::task::JoinHandle<()> {
        let redis = self.redis.clone();
        let ttl = self.lease_ttl;
        tokio::spawn(async move {
            let script = redis::Script::new(RENEW);
            loop {
                tokio::time::sleep(ttl / 3).await;
                let mut redis = redis.clone();
                let mut invocation = script.key(&key);
                invocation.arg(&token).arg(millis(ttl));
                let renew = invocation.invoke_async::<i64>(&mut redis);
                if let Ok(Ok(0)) = tokio::time::timeout(COMMAND_TIMEOUT, renew).await {
                    tracing::warn!(key, "cluster: lost a fill lease while filling");
                    return;
                }
            }
        })
    }

    async fn release(&self, key: &str, token: &str) {
        let mut redis = self.redis.clone();
        let script = redis::Script::new(RELEASE);
        let mut invocation = script.key(key);
        invocation.arg(token);
        let release = invocation.invoke_async::<i64>(&mut redis);
        // A lease that cannot be released expires by itself.
        let _ = tokio::time::timeout(COMMAND_TIMEOUT, release).await;
    }
}

/// A task aborted when this is dropped.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
