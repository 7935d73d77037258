//! Where plugin calls run, so that a slow plugin cannot stall the server.
//!
//! A call starts on the request's own worker thread: a cheap call (most are a few
//! microseconds) finishes in its first poll and costs no hand-off. A call that does not — the
//! guest ran into an epoch tick (it runs at most one 1 ms tick before it yields), or it waits
//! on host I/O — moves, at that first yield, to the plugin pool: threads of their own, at a
//! lower CPU priority than the workers. The worker goes back to its other connections, and
//! whatever plugins cost, connections that need no plugin keep the CPU they need; plugin calls
//! get what is left, which on a server that is not saturated is everything they need.
//!
//! A plugin whose calls keep running long, or whose last call failed, starts its calls on the
//! pool straight away ([`Slow`]): a trapping plugin's fresh instantiation, or a bcrypt hash,
//! never runs on a worker at all while it keeps being expensive. One long call among many cheap
//! ones (a Go plugin's garbage collection, a worker preempted by the kernel mid-call) does not
//! send the plugin's next calls through a hand-off they do not need.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

use super::PluginError;

/// The plugin threads: a multi-threaded tokio runtime whose threads run at a lower priority.
pub struct Pool {
    /// `Some` until dropped (a runtime cannot be dropped inside async code; it is shut down in
    /// the background instead).
    runtime: Option<tokio::runtime::Runtime>,
}

/// Where a call ended up running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    /// Entirely on the request's worker, in one poll.
    Inline,
    /// On the pool (from the start, or from its first yield).
    Pool,
}

impl Pool {
    /// Start `threads` plugin threads (0: one per CPU), at the lowest CPU priority when `idle`.
    pub fn start(threads: usize, idle: bool) -> std::io::Result<Pool> {
        let threads = match threads {
            0 => super::cpus(),
            n => n,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            // Host calls of plugins (http) may need a few; they are short.
            .max_blocking_threads(threads.max(4))
            .thread_name("plugin")
            .on_thread_start(move || {
                if idle {
                    lowest_priority();
                }
            })
            .enable_all()
            .build()?;
        Ok(Pool {
            runtime: Some(runtime),
        })
    }

    /// Run `call` to its end: its first poll here when `inline` (done if it finishes then),
    /// the rest on the pool, holding what `keep` gives until it ends there (what the call holds
    /// by reference while it runs here, owned).
    pub async fn run<T: Send + 'static, K: Send + 'static>(
        &self,
        mut call: Pin<Box<dyn Future<Output = T> + Send>>,
        inline: bool,
        keep: impl FnOnce() -> K,
    ) -> Result<(T, Ran), PluginError> {
        if inline {
            let first = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await;
            if let Poll::Ready(done) = first {
                return Ok((done, Ran::Inline));
            }
        }
        let Some(runtime) = &self.runtime else {
            return Err(PluginError::Engine("plugin pool stopped".into()));
        };
        // A call the client no longer waits for still runs to its end (bounded by its
        // deadline) on the pool, holding its turn of the plugin's budget until then.
        let kept = keep();
        let done = runtime
            .spawn(async move {
                let done = call.await;
                drop(kept);
                done
            })
            .await
            .map_err(|e| PluginError::Engine(format!("plugin pool task: {e}")))?;
        Ok((done, Ran::Pool))
    }
}

impl Pool {
    /// Drop `value` on the pool: a failed call's store, whose memory the pooling allocator
    /// resets when it goes (up to the plugin's memory cap of pages to give back), which is no
    /// work for a request's thread.
    pub fn dispose<T: Send + 'static>(&self, value: T) {
        match &self.runtime {
            Some(runtime) => drop(runtime.spawn(async move { drop(value) })),
            None => drop(value),
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Put the calling thread under `SCHED_IDLE` (Linux): it runs only when no thread of normal
/// priority wants the CPU, and a normal thread that wakes up preempts it at once. Niceness
/// alone is not enough: a nice 19 thread still runs out its slice before a waking worker gets
/// the CPU (EEVDF's run-to-parity), which showed as p99 latency of the workers' requests.
fn lowest_priority() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
            set_thread_priority_and_policy, thread_native_id,
        };
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        if let Err(e) =
            set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle)
        {
            tracing::warn!("plugin thread: could not lower its priority (SCHED_IDLE): {e:?}");
        }
    }
}

/// How a call went, for [`Slow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Finished without yielding: within its first slice, without waiting on host I/O.
    Quick,
    /// Ran past its first slice, or waited on host I/O.
    Long,
    /// Trapped, timed out or ran out of memory (the next call needs a fresh instance).
    Failed,
}

/// How long a plugin stays slow after it became slow or its last call ran long or failed on
/// the pool: its calls start on the pool meanwhile.
pub const SLOW_WINDOW: Duration = Duration::from_secs(1);

/// Whether a plugin's calls should start on the pool. A plugin becomes slow when a call fails,
/// or when a call started on a worker runs long while the share of such calls that ran long,
/// weighted towards the latest (each call's weight is 1/16 of the one after it), is at least
/// 1/8 — three in a row, or about one in eight for a while; one long call among many quick
/// ones (a Go plugin's garbage collection, a worker preempted mid-call) does not make it slow.
/// It stays slow for [`SLOW_WINDOW`] after that, or after a call started on the pool ran long
/// or failed there (a call started on the pool cannot show whether it would have needed it
/// otherwise). Nothing is written for a quick call of a plugin that was never slow (the common
/// case), so a cheap plugin's calls share no cache line between workers.
pub struct Slow {
    /// The weighted share of long calls started on a worker, in units of 1/[`Slow::FULL`].
    score: AtomicU32,
    /// Nanoseconds after `base` until which the plugin counts as slow (0: never was).
    until: AtomicU64,
    base: Instant,
}

impl Slow {
    const FULL: u32 = 1 << 16;
    /// Each call's weight.
    const WEIGHT: u32 = Self::FULL / 16;
    /// From this share on, a long call makes the plugin slow.
    const THRESHOLD: u32 = Self::FULL / 8;

    pub fn new(base: Instant) -> Self {
        Slow {
            score: AtomicU32::new(0),
            until: AtomicU64::new(0),
            base,
        }
    }

    /// Whether a call starting at `now` should start on the pool.
    pub fn is_slow(&self, now: Instant) -> bool {
        self.nanos(now) < self.until.load(Ordering::Relaxed)
    }

    /// How many epoch ticks the next call may run across before it yields: more for a plugin
    /// none of whose recent calls ran long (less than one long call's weight left).
    pub fn slice_ticks(&self) -> u32 {
        if self.score.load(Ordering::Relaxed) < Self::WEIGHT {
            super::host::QUICK_PLUGIN_SLICE_TICKS
        } else {
            super::host::FIRST_SLICE_TICKS
        }
    }

    /// Counts a call that started at `started`, on a worker (`inline`) or on the pool.
    pub fn observe(&self, how: Observed, inline: bool, started: Instant) {
        if !inline {
            if how != Observed::Quick {
                self.mark(started);
            }
            return;
        }
        let old = self.score.load(Ordering::Relaxed);
        if old == 0 && how == Observed::Quick {
            return;
        }
        let decayed = old - old.div_ceil(16);
        let new = match how {
            Observed::Quick => decayed,
            Observed::Long => decayed + Self::WEIGHT,
            Observed::Failed => Self::FULL,
        };
        // Two calls ending at once may lose one of their updates: an estimate either way.
        self.score.store(new, Ordering::Relaxed);
        if how == Observed::Failed || (how == Observed::Long && new >= Self::THRESHOLD) {
            self.mark(started);
        }
    }

    fn mark(&self, started: Instant) {
        let until = self.nanos(started + SLOW_WINDOW);
        self.until.fetch_max(until, Ordering::Relaxed);
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_call_that_yields_finishes_on_the_pool() {
        let pool = Pool::start(1, false).expect("pool");
        let here = std::thread::current().id();
        // Finishes in its first poll: never leaves this thread.
        let (thread, ran) = pool
            .run(Box::pin(async { std::thread::current().id() }), true, || ())
            .await
            .expect("run");
        assert_eq!((thread, ran), (here, Ran::Inline));
        // Yields once: the rest runs on a plugin thread.
        let (thread, ran) = pool
            .run(
                Box::pin(async {
                    tokio::task::yield_now().await;
                    std::thread::current().name().map(str::to_owned)
                }),
                true,
                || (),
            )
            .await
            .expect("run");
        assert_eq!((thread.as_deref(), ran), (Some("plugin"), Ran::Pool));
        // Not inline: the pool from the start.
        let (thread, ran) = pool
            .run(
                Box::pin(async { std::thread::current().name().map(str::to_owned) }),
                false,
                || (),
            )
            .await
            .expect("run");
        assert_eq!((thread.as_deref(), ran), (Some("plugin"), Ran::Pool));
    }

    #[test]
    fn slow_when_calls_keep_running_long_or_one_failed() {
        use crate::plugin::host::{FIRST_SLICE_TICKS, QUICK_PLUGIN_SLICE_TICKS};
        let base = Instant::now();
        let at = |ms: u64| base + Duration::from_millis(ms);
        let slow = Slow::new(base);
        assert!(!slow.is_slow(base));
        // A plugin that runs quick gets the longer first slice; one long call takes it away
        // until quick calls have made up for it.
        assert_eq!(slow.slice_ticks(), QUICK_PLUGIN_SLICE_TICKS);
        slow.observe(Observed::Long, true, base);
        assert_eq!(slow.slice_ticks(), FIRST_SLICE_TICKS);
        // One long call among quick ones (a garbage collection, a preempted worker): never
        // slow, however often it recurs at that rate.
        for _ in 0..100 {
            std::iter::repeat_n(Observed::Quick, 15).for_each(|q| slow.observe(q, true, base));
            slow.observe(Observed::Long, true, base);
            assert!(!slow.is_slow(base));
        }
        std::iter::repeat_n(Observed::Quick, 1000).for_each(|q| slow.observe(q, true, base));
        assert_eq!(slow.slice_ticks(), QUICK_PLUGIN_SLICE_TICKS);
        // Three long calls in a row: slow for the window after the third.
        slow.observe(Observed::Long, true, at(0));
        slow.observe(Observed::Long, true, at(0));
        assert!(!slow.is_slow(at(1)));
        slow.observe(Observed::Long, true, at(10));
        assert!(slow.is_slow(at(10)) && slow.is_slow(at(500)));
        assert!(!slow.is_slow(at(10) + SLOW_WINDOW));
        // Calls started on the pool meanwhile: a long one extends it, a quick one does not.
        slow.observe(Observed::Long, false, at(800));
        assert!(slow.is_slow(at(800) + SLOW_WINDOW / 2));
        slow.observe(Observed::Quick, false, at(1700));
        assert!(!slow.is_slow(at(800) + SLOW_WINDOW));
        // A failure: slow at once, for the window; then quick calls on a worker do not make it
        // slow again, and bring the share down.
        slow.observe(Observed::Failed, true, at(5000));
        assert!(slow.is_slow(at(5000)) && slow.is_slow(at(5900)));
        assert!(!slow.is_slow(at(6000)));
        std::iter::repeat_n(Observed::Quick, 40).for_each(|q| slow.observe(q, true, at(6000)));
        assert!(!slow.is_slow(at(6001)));
        // An older mark never shortens the window.
        slow.observe(Observed::Failed, true, at(9000));
        slow.observe(Observed::Long, false, at(8000));
        assert!(slow.is_slow(at(9500)));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn plugin_threads_run_at_the_lowest_priority() {
        use thread_priority::{NormalThreadSchedulePolicy, ThreadSchedulePolicy};
        let pool = Pool::start(1, true).expect("pool");
        let runtime = pool.runtime.as_ref().expect("running");
        let policy = runtime
            .block_on(async {
                tokio::spawn(async { thread_priority::thread_schedule_policy() }).await
            })
            .expect("join")
            .expect("policy");
        assert_eq!(
            policy,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle)
        );
    }
}
