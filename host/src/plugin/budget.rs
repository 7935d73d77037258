//! A plugin's budget: how many of its calls may run at once and how many may wait for a turn
//! (`limits.max_concurrent`, `limits.max_queue`). Past the queue a call is refused at once
//! ([`PluginError::Overloaded`]: 503 with `Retry-After`), so a plugin that is slow, or is
//! made slow on purpose, holds a bounded number of requests, never a pile-up, and never
//! another plugin's turns: every plugin has its own budget.
//!
//! A plugin that keeps failing (unhealthy: every call traps, times out or runs out of memory)
//! is also paced: one call at a time, the starts [`pace`] apart (100 ms, doubling with each
//! further failure up to 1 s), until a call succeeds. Calls
//! that all fail are then a trickle, whatever the clients send, instead of a stream of fresh
//! instances, page faults and memory resets that costs the whole machine (a failed call costs
//! far more than a good one); requests wait their turn in the same bounded queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, OwnedMutexGuard, OwnedSemaphorePermit, Semaphore, SemaphorePermit};
use tokio::time::Instant;

use super::PluginError;

/// One plugin's budget (per plugin set: a reload starts a new one).
pub struct Budget {
    running: Arc<Semaphore>,
    max_queue: usize,
    /// Calls waiting for a turn now.
    waiting: AtomicUsize,
    /// Calls refused because the queue was full, since the set was built.
    rejected: AtomicU64,
    /// Where the queue's length is reported.
    gauge: Option<prometheus_client::metrics::gauge::Gauge>,
    /// Paced calls take this in turn; it holds when the next one may start.
    pace: Arc<Mutex<Instant>>,
}

/// While a plugin is unhealthy, the least time between the starts of two of its calls: 100 ms
/// after the failure that made it unhealthy, doubling with each failure after that, at most
/// [`MAX_PACE`] (a plugin that stays broken costs about a call a second; the first call that
/// succeeds ends the pacing).
pub fn pace(failures_past_unhealthy: u32) -> Duration {
    (PACE * 2u32.saturating_pow(failures_past_unhealthy.min(8))).min(MAX_PACE)
}

const PACE: Duration = Duration::from_millis(100);
const MAX_PACE: Duration = Duration::from_secs(1);

/// A turn to run one call; the next waiting call runs when it is dropped. A turn taken at once
/// borrows the budget (no reference count touched: the common case costs one semaphore
/// operation each way); [`Turn::into_owned`] makes it go with a call that moves to the plugin
/// pool, so that it ends only when the call does.
pub struct Turn<'a> {
    borrowed: Option<SemaphorePermit<'a>>,
    owned: Option<OwnedSemaphorePermit>,
    /// A paced call's hold on the pace (the next paced call starts after this one ends).
    paced: Option<OwnedMutexGuard<Instant>>,
}

/// A [`Turn`] that lives as long as the call it was taken for, wherever that call runs.
pub struct OwnedTurn {
    /// A borrowed permit that was forgotten: given back to this semaphore on drop.
    give_back: Option<Arc<Semaphore>>,
    _owned: Option<OwnedSemaphorePermit>,
    _paced: Option<OwnedMutexGuard<Instant>>,
}

impl Turn<'_> {
    /// This turn, owned (`budget` is the budget it was taken from).
    pub fn into_owned(self, budget: &Budget) -> OwnedTurn {
        let Turn {
            borrowed,
            owned,
            paced,
        } = self;
        let give_back = borrowed.map(|permit| {
            permit.forget();
            Arc::clone(&budget.running)
        });
        OwnedTurn {
            give_back,
            _owned: owned,
            _paced: paced,
        }
    }
}

impl Drop for OwnedTurn {
    fn drop(&mut self) {
        if let Some(semaphore) = &self.give_back {
            semaphore.add_permits(1);
        }
    }
}

impl Budget {
    pub fn new(max_concurrent: u32, max_queue: u32) -> Self {
        Budget {
            running: Arc::new(Semaphore::new(max_concurrent.max(1) as usize)),
            max_queue: max_queue as usize,
            waiting: AtomicUsize::new(0),
            rejected: AtomicU64::new(0),
            gauge: None,
            pace: Arc::new(Mutex::new(Instant::now())),
        }
    }

    /// Report the queue's length to `gauge`.
    pub fn report_to(&mut self, gauge: prometheus_client::metrics::gauge::Gauge) {
        self.gauge = Some(gauge);
    }

    /// A turn for a call of `plugin`: at once when one is free (a few atomic operations, the
    /// common case), else after the calls ahead of it, or [`PluginError::Overloaded`] when
    /// `max_queue` calls are already waiting. `paced` (the plugin is unhealthy): one call at a
    /// time, that far apart ([`pace`]).
    pub async fn turn(
        &self,
        plugin: &str,
        paced: Option<Duration>,
    ) -> Result<Turn<'_>, PluginError> {
        if paced.is_none()
            && let Ok(permit) = self.running.try_acquire()
        {
            return Ok(Turn {
                borrowed: Some(permit),
                owned: None,
                paced: None,
            });
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            self.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(PluginError::Overloaded {
                plugin: plugin.to_string(),
            });
        }
        // Leaves the queue however the wait ends (a turn, or the client going away).
        let _waiting = Waiting::new(self);
        let paced = match paced {
            Some(pace) => {
                let mut next = Arc::clone(&self.pace).lock_owned().await;
                tokio::time::sleep_until(*next).await;
                *next = Instant::now() + pace;
                Some(next)
            }
            None => None,
        };
        let permit = Arc::clone(&self.running)
            .acquire_owned()
            .await
            .map_err(|_| PluginError::Engine("plugin budget closed".into()))?;
        Ok(Turn {
            borrowed: None,
            owned: Some(permit),
            paced,
        })
    }

    /// Calls waiting for a turn now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Calls refused because the queue was full.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
}

/// A call in the queue; it leaves when this is dropped.
struct Waiting<'a>(&'a Budget);

impl<'a> Waiting<'a> {
    fn new(budget: &'a Budget) -> Self {
        if let Some(gauge) = &budget.gauge {
            gauge.inc();
        }
        Waiting(budget)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
        if let Some(gauge) = &self.0.gauge {
            gauge.dec();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Waker};

    use super::*;

    /// Polls once: whether the future is still waiting.
    fn pending<F: Future>(f: &mut Pin<Box<F>>) -> bool {
        f.as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
    }

    #[tokio::test]
    async fn waits_in_a_bounded_queue_then_refuses() {
        let budget = Budget::new(1, 2);
        let first = budget.turn("p", None).await.expect("a free turn");
        // Two may wait; they get their turns in order as turns end.
        let mut second = Box::pin(budget.turn("p", None));
        let mut third = Box::pin(budget.turn("p", None));
        assert!(pending(&mut second));
        assert!(pending(&mut third));
        assert_eq!(budget.waiting(), 2);
        // The queue is full: refused at once, and counted.
        match budget.turn("p", None).await {
            Err(PluginError::Overloaded { plugin }) => assert_eq!(plugin, "p"),
            other => panic!("expected Overloaded, got {:?}", other.map(|_| ())),
        }
        assert_eq!(budget.rejected(), 1);
        drop(first);
        let second = second.await.expect("second's turn");
        assert_eq!(budget.waiting(), 1);
        drop(second);
        drop(third.await.expect("third's turn"));
        assert_eq!(budget.waiting(), 0);
        // A waiter that gives up leaves the queue.
        let held = budget.turn("p", None).await.expect("turn");
        let mut gone = Box::pin(budget.turn("p", None));
        assert!(pending(&mut gone));
        assert_eq!(budget.waiting(), 1);
        drop(gone);
        assert_eq!(budget.waiting(), 0);
        drop(held);
    }

    #[tokio::test]
    async fn paced_calls_run_one_at_a_time_a_pace_apart() {
        let budget = Arc::new(Budget::new(4, 8));
        let started = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..3 {
            let turn = budget.turn("p", Some(pace(0))).await.expect("turn");
            starts.push(started.elapsed());
            // A paced turn is the only one: the next paced call waits for it to end.
            let mut next = Box::pin(budget.turn("p", Some(pace(0))));
            assert!(pending(&mut next));
            drop(next);
            drop(turn);
        }
        // tokio's timers round up to the millisecond.
        let apart = pace(0) - Duration::from_millis(1);
        assert!(starts[1] - starts[0] >= apart, "{starts:?}");
        assert!(starts[2] - starts[1] >= apart, "{starts:?}");
        // Each further failure doubles the pace, up to a second.
        assert_eq!(
            [0, 1, 2, 3, 4, 30].map(pace),
            [100, 200, 400, 800, 1000, 1000].map(Duration::from_millis)
        );
        // Unpaced calls (the plugin is healthy again) start at once.
        let _a = budget.turn("p", None).await.expect("turn");
        let _b = budget.turn("p", None).await.expect("turn");
    }

    #[tokio::test]
    async fn an_owned_turn_holds_the_slot_until_dropped() {
        let budget = Budget::new(1, 0);
        let owned = budget
            .turn("p", None)
            .await
            .expect("turn")
            .into_owned(&budget);
        assert!(
            matches!(
                budget.turn("p", None).await,
                Err(PluginError::Overloaded { .. })
            ),
            "the slot moved with the owned turn"
        );
        drop(owned);
        let again = budget.turn("p", None).await.expect("given back");
        drop(again);
        // A queued (owned from the start) turn converts too.
        let first = budget.turn("p", None).await.expect("turn");
        let budget2 = Budget::new(1, 1);
        let held = budget2.turn("p", None).await.expect("turn");
        let mut queued = Box::pin(budget2.turn("p", None));
        assert!(pending(&mut queued));
        drop(held);
        let owned = queued.await.expect("queued turn").into_owned(&budget2);
        assert!(budget2.running.try_acquire().is_err());
        drop(owned);
        assert!(budget2.running.try_acquire().is_ok());
        drop(first);
    }
}
