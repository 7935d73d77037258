//! Rate limits and quotas (`limits` in the WIT): auth plugins name the limits a request is
//! charged against, the host keeps the counters and refuses with `429` and `Retry-After`.
//!
//! A limit is a token bucket of requests (GCRA: a sustained rate and a burst) and/or a quota of
//! response bytes per UTC day, per subject (the allowed principal, the client's IP, the module,
//! or a key the plugin names). Because the limits travel with the plugin's answer, a request
//! whose answer the host remembered (`memo`) is counted here without calling the plugin.
//!
//! Counters live in this process ([`Counters`], kept across reloads) or, with `[cluster]`, in
//! the replicas' Redis, so that every replica charges the same buckets: one script call per
//! request checks every limit in order, with Redis' clock. When Redis cannot be reached a
//! replica counts on its own until it is back (the cluster's degraded metric and log line).
//! Limits are checked in order and a request is refused by the first one exhausted; the limits
//! before it have counted the request (as nginx's `limit_req` does).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};

use crate::cluster::Cluster;
use crate::plugin::limits as wit;
use crate::telemetry::Metrics;

/// Limits one answer may carry.
pub const MAX_LIMITS: usize = 16;
/// Longest limit name.
const MAX_NAME: usize = 64;
/// Longest plugin-named key.
const MAX_KEY: usize = 256;
/// How often idle counters are dropped from memory.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// How long one Redis call may take before the replica counts on its own.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
const DAY_SECS: u64 = 86_400;

/// One limit, as a plugin applied it (checked).
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    pub name: Box<str>,
    pub subject: Subject,
    pub rate: Option<Rate>,
    pub bytes_per_day: Option<u64>,
}

/// Whose counter a limit charges.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    Principal,
    PeerIp,
    Module,
    Key(Box<str>),
}

/// A token bucket: `per_second` sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

impl Rate {
    /// Time between two tokens.
    fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.per_second).max(Duration::from_nanos(1))
    }

    fn quota(&self) -> Quota {
        let burst = NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN);
        Quota::with_period(self.interval())
            .expect("a positive interval")
            .allow_burst(burst)
    }
}

impl Limit {
    /// Checks a limit a plugin applied (`limits.apply`).
    pub fn from_wit(limit: wit::Limit) -> Result<Self, String> {
        let wit::Limit {
            name,
            subject,
            requests_per_second,
            burst,
            bytes_per_day,
        } = limit;
        let valid_name = !name.is_empty()
            && name.len() <= MAX_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !valid_name {
            return Err(format!(
                "limit name {name:?} must be 1 to {MAX_NAME} bytes of [A-Za-z0-9._-]"
            ));
        }
        let subject = match subject {
            wit::Subject::Principal => Subject::Principal,
            wit::Subject::PeerIp => Subject::PeerIp,
            wit::Subject::Module => Subject::Module,
            wit::Subject::Key(key) => {
                if key.is_empty() || key.len() > MAX_KEY || key.chars().any(char::is_control) {
                    return Err(format!(
                        "limit {name}: key must be 1 to {MAX_KEY} bytes without control characters"
                    ));
                }
                Subject::Key(key.into())
            }
        };
        let rate = match requests_per_second {
            None if burst.is_some() => {
                return Err(format!("limit {name}: burst without requests-per-second"));
            }
            None => None,
            Some(r) if !(0.001..=1_000_000.0).contains(&r) => {
                return Err(format!(
                    "limit {name}: requests-per-second {r} is not between 0.001 and 1000000"
                ));
            }
            Some(per_second) => {
                let burst = match burst {
                    Some(b) if b == 0 || b > 1_000_000 => {
                        return Err(format!(
                            "limit {name}: burst {b} is not between 1 and 1000000"
                        ));
                    }
                    Some(b) => b,
                    // One second's worth, at least one request.
                    None => (per_second.ceil() as u32).max(1),
                };
                Some(Rate { per_second, burst })
            }
        };
        if bytes_per_day == Some(0) {
            return Err(format!("limit {name}: bytes-per-day must be positive"));
        }
        if rate.is_none() && bytes_per_day.is_none() {
            return Err(format!(
                "limit {name}: set requests-per-second, bytes-per-day or both"
            ));
        }
        Ok(Limit {
            name: name.into(),
            subject,
            rate,
            bytes_per_day,
        })
    }

    /// One line for people: `per-ip per ip: 20 requests/s, burst 40, 1000000 bytes/day`.
    pub fn describe(&self) -> String {
        let subject = match &self.subject {
            Subject::Principal => "principal".to_string(),
            Subject::PeerIp => "ip".to_string(),
            Subject::Module => "module".to_string(),
            Subject::Key(key) => format!("key {key:?}"),
        };
        let mut parts = Vec::new();
        if let Some(rate) = self.rate {
            parts.push(format!(
                "{} requests/s, burst {}",
                rate.per_second, rate.burst
            ));
        }
        if let Some(bytes) = self.bytes_per_day {
            parts.push(format!("{bytes} bytes/day"));
        }
        format!("{} per {subject}: {}", self.name, parts.join(", "))
    }

    /// The counter's key for `who` (`None`: this request is not charged by this limit).
    fn key(&self, who: &Who<'_>) -> Option<String> {
        let value = match &self.subject {
            Subject::Principal => format!("principal {}", who.principal?),
            Subject::PeerIp => format!("ip {}", who.ip),
            Subject::Module => format!("module {}", who.module?),
            Subject::Key(key) => format!("key {key}"),
        };
        Some(value)
    }
}

/// What a request is charged as.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    /// The principal the route's auth allowed, if one did.
    pub principal: Option<&'a str>,
    pub ip: IpAddr,
    pub module: Option<&'a str>,
}

/// A request refused by a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The one line the client sees.
    pub message: String,
    /// Whole seconds until a retry can succeed (at least 1).
    pub retry_after_secs: u32,
}

/// The byte quotas a request counts against once its response size is known.
#[derive(Debug, Default, Clone)]
pub struct Charge {
    /// `(limit name, counter key)` of each quota.
    quotas: Vec<(Box<str>, String)>,
}

/// The counters of this process, kept across reloads (a reload must not reset everyone's
/// limits).
#[derive(Default)]
pub struct Counters {
    /// A keyed token bucket per distinct (name, rate, burst).
    buckets: dashmap::DashMap<(Box<str>, u64, u32), Arc<DefaultKeyedRateLimiter<String>>>,
    /// Bytes served today, by `name\0key`: (day number, bytes).
    bytes: dashmap::DashMap<String, (u64, u64)>,
    /// When the idle counters were last dropped (ms since `epoch`).
    last_sweep_ms: AtomicU64,
    epoch: std::sync::OnceLock<Instant>,
}

impl Counters {
    /// Counts a request against `rate` under `key`: `Err(wait)` when the bucket is empty.
    fn take(&self, name: &str, rate: Rate, key: &str) -> Result<(), Duration> {
        let id = (Box::from(name), rate.per_second.to_bits(), rate.burst);
        let limiter = match self.buckets.get(&id) {
            Some(l) => Arc::clone(&l),
            None => Arc::clone(
                &self
                    .buckets
                    .entry(id)
                    .or_insert_with(|| Arc::new(RateLimiter::keyed(rate.quota()))),
            ),
        };
        limiter
            .check_key(&key.to_owned())
            .map_err(|not_until| not_until.wait_time_from(limiter.clock().now()))
    }

    /// Bytes counted today under `name\0key`.
    fn bytes_today(&self, id: &str, day: u64) -> u64 {
        self.bytes.get(id).filter(|e| e.0 == day).map_or(0, |e| e.1)
    }

    fn add_bytes(&self, id: String, day: u64, n: u64) {
        let mut e = self.bytes.entry(id).or_insert((day, 0));
        if e.0 != day {
            *e = (day, 0);
        }
        e.1 = e.1.saturating_add(n);
    }

    /// Drops counters indistinguishable from fresh ones, once a minute at most.
    fn sweep(&self) {
        let epoch = *self.epoch.get_or_init(Instant::now);
        let now = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_sweep_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < SWEEP_EVERY.as_millis() as u64
            || self
                .last_sweep_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        for limiter in self.buckets.iter() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        let today = day_now();
        self.bytes.retain(|_, e| e.0 == today);
    }
}

/// Checks and charges limits, in this process or through the cluster's Redis.
#[derive(Clone)]
pub struct Limiter {
    counters: Arc<Counters>,
    cluster: Option<Arc<Cluster>>,
    metrics: Arc<Metrics>,
}

/// Checks every limit in order with Redis' clock: a token bucket (`r`: interval in µs, burst)
/// or a day's byte quota (`b`: quota, unused); returns `{index, wait ms}` of the first limit
/// exhausted, or `{0, 0}`. Numbers are kept as whole microseconds (exact in Lua's doubles).
const CHECK: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, #KEYS do
  local kind = ARGV[3 * i - 2]
  local a = tonumber(ARGV[3 * i - 1])
  local b = tonumber(ARGV[3 * i])
  if kind == 'r' then
    local tat = tonumber(redis.call('GET', KEYS[i]) or now)
    if tat < now then tat = now end
    local new = tat + a
    if new - now > a * b then
      return {i, math.ceil((new - a * b - now) / 1000)}
    end
    redis.call('SET', KEYS[i], string.format('%.0f', new), 'PX', math.ceil((new - now) / 1000) + 1)
  else
    local used = tonumber(redis.call('GET', KEYS[i]) or 0)
    if used >= a then
      local day_ms = 86400000
      local now_ms = math.floor(now / 1000)
      return {i, day_ms - now_ms % day_ms}
    end
  end
end
return {0, 0}
";

impl Limiter {
    pub fn new(
        counters: Arc<Counters>,
        cluster: Option<Arc<Cluster>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Limiter {
            counters,
            cluster,
            metrics,
        }
    }

    /// Checks `limits` for `who`, counting the request; `Ok` carries the byte quotas to charge
    /// the response to ([`Limiter::charge`]).
    pub async fn check<'l>(
        &self,
        limits: impl Iterator<Item = &'l Limit>,
        who: &Who<'_>,
    ) -> Result<Option<Charge>, Refused> {
        let day = day_now();
        let keyed: Vec<(&Limit, String)> =
            limits.filter_map(|l| l.key(who).map(|k| (l, k))).collect();
        if keyed.is_empty() {
            return Ok(None);
        }
        let refused = match &self.cluster {
            Some(cluster) => match self.check_shared(cluster, &keyed, day).await {
                Ok(refused) => refused,
                Err(why) => {
                    cluster.degraded(&why, "counting rate limits in this replica only");
                    self.check_local(&keyed, day)
                }
            },
            None => self.check_local(&keyed, day),
        };
        if let Some((limit, key, wait, bytes)) = refused {
            self.metrics
                .rate_limited(&limit.name, if bytes { "bytes" } else { "requests" });
            return Err(refused_message(limit, key, wait, bytes));
        }
        let quotas: Vec<_> = keyed
            .into_iter()
            .filter(|(l, _)| l.bytes_per_day.is_some())
            .map(|(l, k)| (l.name.clone(), k))
            .collect();
        Ok((!quotas.is_empty()).then_some(Charge { quotas }))
    }

    /// The first limit exhausted, with the wait and whether it was the byte quota.
    fn check_local<'k>(
        &self,
        keyed: &'k [(&'k Limit, String)],
        day: u64,
    ) -> Option<(&'k Limit, &'k str, Duration, bool)> {
        self.counters.sweep();
        for (limit, key) in keyed {
            if let Some(rate) = limit.rate
                && let Err(wait) = self.counters.take(&limit.name, rate, key)
            {
                return Some((limit, key, wait, false));
            }
            if let Some(quota) = limit.bytes_per_day
                && self.counters.bytes_today(&byte_id(&limit.name, key), day) >= quota
            {
                return Some((limit, key, until_midnight(), true));
            }
        }
        None
    }

    async fn check_shared<'k>(
        &self,
        cluster: &Cluster,
        keyed: &'k [(&'k Limit, String)],
        day: u64,
    ) -> Result<Option<(&'k Limit, &'k str, Duration, bool)>, String> {
        let script = redis::Script::new(CHECK);
        let mut invocation = script.prepare_invoke();
        // Which (limit, is-bytes) each script key stands for.
        let mut slots = Vec::with_capacity(keyed.len() * 2);
        for (limit, key) in keyed {
            if let Some(rate) = limit.rate {
                let interval_us = (rate.interval().as_secs_f64() * 1e6).round().max(1.0) as u64;
                invocation
                    .key(format!(
                        "modgate:rate:{}:{}:{}:{key}",
                        limit.name, interval_us, rate.burst
                    ))
                    .arg("r")
                    .arg(interval_us)
                    .arg(rate.burst);
                slots.push((*limit, key.as_str(), false));
            }
            if let Some(quota) = limit.bytes_per_day {
                invocation
                    .key(bytes_key(&limit.name, key, day))
                    .arg("b")
                    .arg(quota)
                    .arg(0);
                slots.push((*limit, key.as_str(), true));
            }
        }
        let mut redis = cluster.redis();
        let call = invocation.invoke_async::<(usize, u64)>(&mut redis);
        let (index, wait_ms) = match tokio::time::timeout(REDIS_TIMEOUT, call).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("no answer in time".into()),
        };
        Ok(index
            .checked_sub(1)
            .and_then(|i| slots.get(i))
            .map(|&(limit, key, bytes)| (limit, key, Duration::from_millis(wait_ms), bytes)))
    }

    /// Charges a response of `bytes` to the quotas of `charge`.
    pub fn charge(&self, charge: Charge, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let day = day_now();
        match &self.cluster {
            Some(cluster) if tokio::runtime::Handle::try_current().is_ok() => {
                let mut redis = cluster.redis();
                let cluster = Arc::clone(cluster);
                let counters = Arc::clone(&self.counters);
                tokio::spawn(async move {
                    let mut pipe = redis::pipe();
                    for (name, key) in &charge.quotas {
                        let k = bytes_key(name, key, day);
                        pipe.cmd("INCRBY").arg(&k).arg(bytes).ignore();
                        pipe.cmd("EXPIRE").arg(&k).arg(2 * DAY_SECS).ignore();
                    }
                    let sent = pipe.query_async::<()>(&mut redis);
                    let failed = match tokio::time::timeout(REDIS_TIMEOUT, sent).await {
                        Ok(Ok(())) => return,
                        Ok(Err(e)) => e.to_string(),
                        Err(_) => "no answer in time".into(),
                    };
                    cluster.degraded(&failed, "counting rate limits in this replica only");
                    for (name, key) in charge.quotas {
                        counters.add_bytes(byte_id(&name, &key), day, bytes);
                    }
                });
            }
            _ => {
                for (name, key) in charge.quotas {
                    self.counters.add_bytes(byte_id(&name, &key), day, bytes);
                }
            }
        }
    }
}

/// A response's byte quotas, charged with the bytes actually sent once the body is over (or
/// the client left): carried in the response's extensions to the connection, which counts them.
#[derive(Clone)]
pub struct Settle {
    limiter: Limiter,
    charge: Charge,
}

impl Settle {
    pub fn new(limiter: Limiter, charge: Charge) -> Self {
        Settle { limiter, charge }
    }

    /// Charges `bytes` sent.
    pub fn settle(self, bytes: u64) {
        self.limiter.charge(self.charge, bytes);
    }
}

fn refused_message(limit: &Limit, key: &str, wait: Duration, bytes: bool) -> Refused {
    let retry_after_secs = u32::try_from(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
        .unwrap_or(u32::MAX)
        .max(1);
    let what = match (bytes, limit.rate, limit.bytes_per_day) {
        (true, _, Some(quota)) => format!("{quota} bytes per day"),
        (_, Some(rate), _) => format!("{} requests/s, burst {}", rate.per_second, rate.burst),
        _ => String::new(),
    };
    Refused {
        message: format!(
            "rate limit {} exceeded for {key} ({what}); retry in {retry_after_secs}s",
            limit.name
        ),
        retry_after_secs,
    }
}

/// Days since the Unix epoch, UTC.
fn day_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / DAY_SECS)
}

/// Time left until the next midnight UTC.
fn until_midnight() -> Duration {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Duration::from_secs(DAY_SECS - now.as_secs() % DAY_SECS)
}

fn byte_id(name: &str, key: &str) -> String {
    format!("{name}\0{key}")
}

fn bytes_key(name: &str, key: &str, day: u64) -> String {
    format!("modgate:bytes:{name}:{day}:{key}")
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    fn wit_limit(rps: Option<f64>, burst: Option<u32>, bytes: Option<u64>) -> wit::Limit {
        wit::Limit {
            name: "per-ip".into(),
            subject: wit::Subject::PeerIp,
            requests_per_second: rps,
            burst,
            bytes_per_day: bytes,
        }
    }

    fn who(ip: &str) -> Who<'_> {
        Who {
            principal: None,
            ip: ip.parse().unwrap(),
            module: Some("example.com/m"),
        }
    }

    fn limiter() -> Limiter {
        Limiter::new(Arc::default(), None, Arc::new(Metrics::new()))
    }

    #[test]
    fn limits_are_checked() {
        let ok = Limit::from_wit(wit_limit(Some(2.5), None, None)).unwrap();
        assert_eq!(
            ok.rate,
            Some(Rate {
                per_second: 2.5,
                burst: 3
            })
        );
        for (bad, why) in [
            (wit_limit(None, None, None), "set requests-per-second"),
            (wit_limit(Some(0.0), None, None), "not between"),
            (wit_limit(Some(f64::NAN), None, None), "not between"),
            (wit_limit(Some(1.0), Some(0), None), "burst 0"),
            (wit_limit(None, Some(3), None), "burst without"),
            (wit_limit(None, None, Some(0)), "must be positive"),
        ] {
            let e = Limit::from_wit(bad).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        let mut bad_name = wit_limit(Some(1.0), None, None);
        bad_name.name = "a b".into();
        assert!(Limit::from_wit(bad_name).is_err());
    }

    #[tokio::test]
    async fn a_bucket_refuses_past_its_burst_and_per_subject() {
        let limiter = limiter();
        let limit = Limit::from_wit(wit_limit(Some(1.0), Some(3), None)).unwrap();
        for _ in 0..3 {
            limiter
                .check(std::iter::once(&limit), &who("10.0.0.1"))
                .await
                .unwrap();
        }
        let refused = limiter
            .check(std::iter::once(&limit), &who("10.0.0.1"))
            .await
            .unwrap_err();
        assert_eq!(refused.retry_after_secs, 1);
        assert_eq!(
            refused.message,
            "rate limit per-ip exceeded for ip 10.0.0.1 (1 requests/s, burst 3); retry in 1s"
        );
        // Another address has its own bucket.
        limiter
            .check(std::iter::once(&limit), &who("10.0.0.2"))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_principal_limit_skips_requests_no_one_allowed() {
        let limiter = limiter();
        let mut l = wit_limit(Some(0.001), Some(1), None);
        l.subject = wit::Subject::Principal;
        let limit = Limit::from_wit(l).unwrap();
        for _ in 0..5 {
            assert!(
                limiter
                    .check(std::iter::once(&limit), &who("10.0.0.1"))
                    .await
                    .unwrap()
                    .is_none()
            );
        }
        let alice = Who {
            principal: Some("alice"),
            ..who("10.0.0.1")
        };
        limiter
            .check(std::iter::once(&limit), &alice)
            .await
            .unwrap();
        let refused = limiter
            .check(std::iter::once(&limit), &alice)
            .await
            .unwrap_err();
        assert!(refused.retry_after_secs >= 999, "{refused:?}");
    }

    #[tokio::test]
    #[ignore = "micro-benchmark; prints time per check"]
    async fn bench_check() {
        let limiter = limiter();
        let per_ip = Limit::from_wit(wit_limit(Some(1e6), Some(1_000_000), None)).unwrap();
        let mut per_user = wit_limit(Some(1e6), Some(1_000_000), Some(u64::MAX));
        per_user.name = "per-user".into();
        per_user.subject = wit::Subject::Principal;
        let per_user = Limit::from_wit(per_user).unwrap();
        let who = Who {
            principal: Some("alice"),
            ..who("10.0.0.1")
        };
        for (label, limits) in [
            ("one request limit", vec![&per_ip]),
            (
                "request limit + request and byte limit",
                vec![&per_ip, &per_user],
            ),
        ] {
            const N: u32 = 200_000;
            let started = Instant::now();
            for _ in 0..N {
                let charge = limiter.check(limits.iter().copied(), &who).await.unwrap();
                if let Some(charge) = charge {
                    limiter.charge(charge, 1000);
                }
            }
            println!("{label}: {:?} per request", started.elapsed() / N);
        }
    }

    #[tokio::test]
    async fn a_byte_quota_refuses_once_spent_until_midnight() {
        let limiter = limiter();
        let limit = Limit::from_wit(wit_limit(None, None, Some(1000))).unwrap();
        let charge = limiter
            .check(std::iter::once(&limit), &who("10.0.0.1"))
            .await
            .unwrap()
            .expect("a byte quota to charge");
        limiter.charge(charge, 999);
        let charge = limiter
            .check(std::iter::once(&limit), &who("10.0.0.1"))
            .await
            .unwrap()
            .unwrap();
        limiter.charge(charge, 1);
        let refused = limiter
            .check(std::iter::once(&limit), &who("10.0.0.1"))
            .await
            .unwrap_err();
        assert!(
            refused.message.contains("1000 bytes per day"),
            "{refused:?}"
        );
        assert!((1..=86_400).contains(&refused.retry_after_secs));
        assert!(
            limiter
                .check(std::iter::once(&limit), &who("10.0.0.9"))
                .await
                .is_ok()
        );
    }
}
