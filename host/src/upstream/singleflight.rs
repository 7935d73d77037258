//! One in-flight upstream fetch per key: concurrent requests for the same missing artifact wait
//! on the first one's work instead of each fetching it.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use crate::error::Error;

type Flight<T, E> = Shared<BoxFuture<'static, Result<T, E>>>;

/// A map of in-flight work by key.
pub struct SingleFlight<K, T, E = Error> {
    inflight: Arc<Mutex<HashMap<K, Flight<T, E>>>>,
}

impl<K, T, E> Default for SingleFlight<K, T, E> {
    fn default() -> Self {
        Self {
            inflight: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

impl<K, T, E> SingleFlight<K, T, E>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static + From<tokio::task::JoinError>,
{
    /// Runs `work` for `key` unless a run for it is already in flight, and returns its result.
    ///
    /// The work runs in its own task, so it completes (and commits, or cleans up) even when every
    /// waiting client has gone away. Work that starts after a run finished runs again, so `work`
    /// should first look for what an earlier run stored.
    pub async fn run<F>(&self, key: K, work: impl FnOnce() -> F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        let flight = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            match inflight.get(&key) {
                Some(f) => f.clone(),
                None => {
                    let map = Arc::clone(&self.inflight);
                    let k = key.clone();
                    let fut = work();
                    let task = tokio::spawn(async move {
                        let result = fut.await;
                        map.lock().unwrap_or_else(|p| p.into_inner()).remove(&k);
                        result
                    });
                    let flight: Flight<T, E> =
                        async move { task.await.unwrap_or_else(|e| Err(e.into())) }
                            .boxed()
                            .shared();
                    inflight.insert(key, flight.clone());
                    flight
                }
            }
        };
        flight.await
    }

    /// Number of keys in flight (for tests and metrics).
    pub fn len(&self) -> usize {
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_run() {
        let sf = Arc::new(SingleFlight::<&'static str, u32>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::new();
        for _ in 0..50 {
            let sf = Arc::clone(&sf);
            let runs = Arc::clone(&runs);
            handles.push(tokio::spawn(async move {
                sf.run("k", || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Ok(7)
                })
                .await
            }));
        }
        for h in handles {
            assert_eq!(h.await.expect("task").expect("result"), 7);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(sf.is_empty());
    }

    #[tokio::test]
    async fn work_survives_the_caller_going_away() {
        let sf = Arc::new(SingleFlight::<u8, ()>::default());
        let done = Arc::new(AtomicUsize::new(0));
        let d = Arc::clone(&done);
        let caller = tokio::spawn({
            let sf = Arc::clone(&sf);
            async move {
                sf.run(1, || async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    d.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                })
                .await
            }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        caller.abort();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(done.load(Ordering::SeqCst), 1);
    }
}
