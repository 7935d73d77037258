//! The epoch ticker: the thread that advances wasmtime's epoch every millisecond, which is what
//! makes a running guest yield to the executor and trap past its deadline.
//!
//! It ticks only while guest code may run. Calls hold a [`Running`] guard; after
//! [`IDLE_TICKS`] ticks with none, the thread parks until the next call starts, so a gateway
//! whose requests are answered without calls (remembered answers, plugin-less routes) is not
//! woken a thousand times a second for nothing.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The tick period: deadlines are enforced to within about this.
pub const TICK: Duration = Duration::from_millis(1);
/// Ticks without a call before the thread parks.
pub const IDLE_TICKS: u32 = 100;

/// Shared by the ticker thread and every call.
#[derive(Default)]
pub struct Ticker {
    /// Calls in flight.
    running: AtomicUsize,
    /// The thread is parked (or about to be): a starting call must wake it.
    parked: AtomicBool,
    thread: OnceLock<std::thread::Thread>,
}

impl Ticker {
    /// Start the thread; it ends (within a second) once `engine` is dropped.
    pub fn start(engine: &wasmtime::Engine) -> std::io::Result<Arc<Ticker>> {
        let ticker = Arc::new(Ticker::default());
        let weak = engine.weak();
        let shared = ticker.clone();
        let handle = std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                let mut idle = 0;
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    if shared.running.load(Ordering::SeqCst) > 0 {
                        idle = 0;
                    } else {
                        idle += 1;
                    }
                    if idle < IDLE_TICKS {
                        std::thread::sleep(TICK);
                        continue;
                    }
                    // Announce the park, then look again: a call that started in between
                    // either is seen here or sees `parked` and unparks (park's token makes
                    // an early unpark count).
                    shared.parked.store(true, Ordering::SeqCst);
                    if shared.running.load(Ordering::SeqCst) == 0 {
                        // Bounded, so the thread notices a dropped engine.
                        std::thread::park_timeout(Duration::from_secs(1));
                    }
                    shared.parked.store(false, Ordering::SeqCst);
                    idle = 0;
                }
            })?;
        // Set before any call can start: the engine is not handed out yet.
        let _ = ticker.thread.set(handle.thread().clone());
        Ok(ticker)
    }

    /// Mark a call as running (guest code may run until the guard is dropped).
    pub fn running(&self) -> Running<'_> {
        self.running.fetch_add(1, Ordering::SeqCst);
        if self.parked.load(Ordering::SeqCst)
            && let Some(thread) = self.thread.get()
        {
            thread.unpark();
        }
        Running(self)
    }
}

/// A call in flight (see [`Ticker::running`]).
pub struct Running<'a>(&'a Ticker);

impl Running<'_> {
    /// The same guard, owned (`ticker` is the one it came from), for a call that moves to
    /// another thread.
    pub fn into_owned(self, ticker: &Arc<Ticker>) -> RunningOwned {
        std::mem::forget(self);
        RunningOwned(Arc::clone(ticker))
    }
}

/// A [`Running`] guard that owns its ticker.
pub struct RunningOwned(Arc<Ticker>);

impl Drop for RunningOwned {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parks_when_idle_and_ticks_again_when_a_call_starts() {
        let engine = wasmtime::Engine::new(wasmtime::Config::new().epoch_interruption(true))
            .expect("engine");
        let ticker = Ticker::start(&engine).expect("ticker");
        // Idle for IDLE_TICKS, then parked.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !ticker.parked.load(Ordering::SeqCst) {
            assert!(std::time::Instant::now() < deadline, "never parked");
            std::thread::sleep(Duration::from_millis(10));
        }
        let running = ticker.running();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while ticker.parked.load(Ordering::SeqCst) {
            assert!(
                std::time::Instant::now() < deadline,
                "a call did not wake it"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        // While a call runs it keeps ticking, past IDLE_TICKS.
        std::thread::sleep(TICK * (IDLE_TICKS + 50));
        assert!(
            !ticker.parked.load(Ordering::SeqCst),
            "parked during a call"
        );
        drop(running);
    }
}
