//! The threads connections are served on: one single-threaded tokio runtime per worker (by
//! default one per CPU), each connection pinned to one of them for its whole life.
//!
//! Why not tokio's work-stealing runtime: a small warm request (`.info`, `.mod`) costs ~12 µs of
//! CPU, and with work stealing about a quarter of that went to waking the other worker and
//! switching to it (perf: `finish_task_switch`, rescheduling IPIs). A connection whose reads,
//! handler and writes all run on one thread pays none of it; nginx's worker processes are built
//! the same way. The accept loop stays on the caller's runtime and hands each new connection to
//! the worker with the fewest open connections, so long-lived keep-alive and HTTP/2 connections
//! spread evenly. Work that may block (zip checks, git, reload builds, file hashing) already
//! goes to each runtime's blocking pool, so one slow request does not stall its neighbours.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// How long a stopping worker waits for its blocking tasks (a zip check, a git fetch) before
/// leaving them to finish on their own.
const STOP_WAIT: Duration = Duration::from_secs(1);

/// The worker runtimes; dropping this stops them (their threads exit once idle).
pub(super) struct Workers {
    workers: Vec<Worker>,
    /// Where the search for the least busy worker starts, so ties rotate.
    next: usize,
}

struct Worker {
    handle: Handle,
    /// Connections handed to this worker and not yet finished.
    open: Arc<AtomicUsize>,
    /// Dropped (or sent) to stop the worker.
    stop: Option<oneshot::Sender<()>>,
    /// Resolves when the worker's thread is done.
    done: oneshot::Receiver<()>,
}

impl Workers {
    /// Starts `count` worker threads (at least one).
    pub(super) fn start(count: usize) -> io::Result<Self> {
        let workers = (0..count.max(1))
            .map(start_worker)
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Self { workers, next: 0 })
    }

    /// How many workers serve connections.
    pub(super) fn len(&self) -> usize {
        self.workers.len()
    }

    /// Runs one connection on the worker with the fewest open connections, tracked in `set`.
    pub(super) fn spawn<F>(&mut self, set: &mut JoinSet<()>, connection: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let n = self.workers.len();
        let start = self.next;
        self.next = (self.next + 1) % n;
        let worker = (0..n)
            .map(|i| &self.workers[(start + i) % n])
            .min_by_key(|w| w.open.load(Ordering::Relaxed))
            .unwrap_or(&self.workers[0]);
        let open = Open::new(&worker.open);
        set.spawn_on(
            async move {
                let _open = open;
                connection.await;
            },
            &worker.handle,
        );
    }

    /// Stops every worker and waits until their threads are done. Tasks still running on them
    /// (connections should have been drained first) are dropped.
    pub(super) async fn stop(mut self) {
        for worker in &mut self.workers {
            if let Some(stop) = worker.stop.take() {
                let _ = stop.send(());
            }
        }
        for worker in &mut self.workers {
            // An Err means the thread is gone already.
            let _ = (&mut worker.done).await;
        }
    }

    #[cfg(test)]
    pub(super) fn open_per_worker(&self) -> Vec<usize> {
        self.workers
            .iter()
            .map(|w| w.open.load(Ordering::Relaxed))
            .collect()
    }
}

fn start_worker(index: usize) -> io::Result<Worker> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("modgate-blocking")
        .build()?;
    let handle = runtime.handle().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let (finished, done) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name(format!("modgate-worker-{index}"))
        .spawn(move || {
            // Spawned connection tasks run while this thread is inside `block_on`.
            runtime.block_on(async {
                let _ = stopped.await;
            });
            runtime.shutdown_timeout(STOP_WAIT);
            let _ = finished.send(());
        })?;
    Ok(Worker {
        handle,
        open: Arc::new(AtomicUsize::new(0)),
        stop: Some(stop),
        done,
    })
}

/// One open connection counted against its worker, until dropped (finished or aborted).
struct Open(Arc<AtomicUsize>);

impl Open {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(count))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    #![expect(
        clippy::unwrap_used,
        reason = "tests: a panic is how a test reports failure"
    )]
    use super::*;

    #[tokio::test]
    async fn connections_go_to_the_least_busy_worker_and_each_runs_on_one_thread() {
        let mut workers = Workers::start(3).unwrap();
        let mut set = JoinSet::new();
        let (release, released) = tokio::sync::watch::channel(false);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for _ in 0..9 {
            let mut released = released.clone();
            let tx = tx.clone();
            workers.spawn(&mut set, async move {
                let thread = std::thread::current().name().map(str::to_owned);
                let _ = released.wait_for(|r| *r).await;
                // Still on the same thread after waiting.
                assert_eq!(std::thread::current().name().map(str::to_owned), thread);
                let _ = tx.send(thread);
            });
        }
        assert_eq!(workers.open_per_worker(), vec![3, 3, 3]);
        release.send(true).unwrap();
        let mut threads = Vec::new();
        for _ in 0..9 {
            threads.push(rx.recv().await.unwrap().unwrap());
        }
        while let Some(done) = set.join_next().await {
            done.unwrap();
        }
        assert_eq!(workers.open_per_worker(), vec![0, 0, 0]);
        threads.sort();
        threads.dedup();
        assert_eq!(
            threads,
            ["modgate-worker-0", "modgate-worker-1", "modgate-worker-2"]
        );
        // A finished connection frees its worker for the next one.
        let (hold, held) = oneshot::channel::<()>();
        workers.spawn(&mut set, async move {
            let _ = held.await;
        });
        assert_eq!(workers.open_per_worker().iter().sum::<usize>(), 1);
        set.abort_all();
        while set.join_next().await.is_some() {}
        drop(hold);
        assert_eq!(workers.open_per_worker(), vec![0, 0, 0]);
        workers.stop().await;
    }
}
