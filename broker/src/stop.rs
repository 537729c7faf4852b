//! How a broker stops: the flags its shards and the signal thread share.
//!
//! The first SIGTERM/SIGINT requests a stop; a broker that heartbeats to a controller first
//! runs a controlled shutdown (the controller moves its leaderships away, see
//! `controller::lifecycle::run`), then [`STOP`] is set and every shard closes.

use millrace_shard::net::WakeSender;
use millrace_shard::sync::Notify;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Set when the shards are to stop ([`stop_all`]).
pub static STOP: AtomicBool = AtomicBool::new(false);

/// Set by the first SIGTERM/SIGINT: a broker that heartbeats to a controller asks it to move
/// its leaderships away first (controlled shutdown), then stops.
pub static SHUTDOWN_REQUESTED: AtomicBool = AtomicBool::new(false);

/// Set once a broker heartbeats to a controller (its shutdown is a controlled one).
pub static CONTROLLED_SHUTDOWN: AtomicBool = AtomicBool::new(false);

/// Set when the controller allowed the shutdown (or the broker gave up asking).
pub static SHUTDOWN_ALLOWED: AtomicBool = AtomicBool::new(false);

/// The signal thread's part of a stop: with a controlled shutdown, waits until the
/// controller allowed it, at most `wait`; then stops every shard.
pub fn stop_after_controlled_shutdown(wait: Duration) {
    SHUTDOWN_REQUESTED.store(true, Ordering::Relaxed);
    if CONTROLLED_SHUTDOWN.load(Ordering::Relaxed) {
        let deadline = std::time::Instant::now() + wait;
        while !SHUTDOWN_ALLOWED.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !SHUTDOWN_ALLOWED.load(Ordering::Relaxed) {
            tracing::warn!(
                waited_ms = wait.as_millis() as u64,
                "controlled shutdown: no answer from the controller; stopping anyway"
            );
        }
    }
    stop_all();
}

/// The wakes of every shard's [`ShardStop`].
static STOP_WAKES: Mutex<Vec<WakeSender>> = Mutex::new(Vec::new());

/// Sets [`STOP`] and wakes every shard's [`ShardStop`].
pub fn stop_all() {
    STOP.store(true, Ordering::Relaxed);
    for wake in STOP_WAKES.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        wake.wake();
    }
}

/// One shard's view of [`STOP`]: a single task waits for [`stop_all`]'s wake and wakes every
/// waiter, so the shard's listeners neither keep timers of their own nor poll the flag (each
/// wake of an idle shard costs the runtime a membarrier and several ring entries:
/// docs/BENCHMARKS.md).
pub struct ShardStop {
    stopped: Notify,
}

impl ShardStop {
    /// Starts the shard's watcher of [`STOP`]. Where the wake cannot be set up it polls the
    /// flag every `poll` instead.
    pub fn start(poll: Duration) -> Rc<Self> {
        let this = Rc::new(Self {
            stopped: Notify::new(),
        });
        let watcher = this.clone();
        let wake = match millrace_shard::net::cross_thread_wake() {
            Ok((sender, receiver)) => {
                STOP_WAKES
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(sender);
                Some(receiver)
            }
            Err(e) => {
                tracing::warn!(error = %e, "no wake for stopping; polling the stop flag");
                None
            }
        };
        millrace_shard::spawn_detached(async move {
            // Registered before this first look: a stop_all after the push rings the wake,
            // one before it set the flag this sees.
            if let Some(mut wake) = wake {
                while !STOP.load(Ordering::Relaxed) {
                    if let Err(e) = wake.wait().await {
                        tracing::warn!(error = %e, "the stop wake failed; polling the stop flag");
                        break;
                    }
                }
            }
            while !STOP.load(Ordering::Relaxed) {
                millrace_shard::time::sleep(poll).await;
            }
            watcher.stopped.notify_all();
        });
        this
    }

    /// Completes once [`STOP`] is set.
    pub fn wait(self: &Rc<Self>) -> impl std::future::Future<Output = ()> + 'static {
        let this = self.clone();
        async move {
            loop {
                let seen = this.stopped.generation();
                if STOP.load(Ordering::Relaxed) {
                    return;
                }
                this.stopped.changed_since(seen).await;
            }
        }
    }
}
