//! Timers and cooperative scheduling on the current shard: glommio's timer wheel, or the
//! virtual clock of the [`crate::sim::Sim`] installed on this thread.

use crate::sim;
use std::time::Duration;

/// Sleeps on the current shard's timer wheel (in a simulation: until the virtual clock has
/// moved `duration` on).
pub async fn sleep(duration: Duration) {
    match sim::current() {
        Some(core) => {
            let timer = sim::sleep(&core, duration);
            drop(core);
            timer.await;
        }
        None => glommio::timer::sleep(duration).await,
    }
}

/// Yields to other tasks if this one has used up its time slice. In a simulation it always
/// yields: each yield is a point where the seeded scheduler may run another task.
pub async fn yield_if_needed() {
    if sim::is_current() {
        sim::yield_now().await;
    } else {
        glommio::yield_if_needed().await;
    }
}

/// Gives every other task on this shard a turn, including those waiting for I/O that has
/// completed but not been reaped yet. [`yield_if_needed`] only yields once glommio's
/// preemption timer (100 ms) is due, and a plain yield puts the task back at the head of its
/// own queue before the ring is looked at; a short timer makes the task wait for the reactor.
pub async fn yield_to_reactor() {
    sleep(Duration::from_micros(20)).await;
}

/// Wall-clock milliseconds since the Unix epoch, as Kafka timestamps are (in a simulation:
/// the virtual wall clock).
pub fn now_ms() -> i64 {
    if let Some(core) = sim::current() {
        return core.now_ms();
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Milliseconds on the shard's monotonic clock ([`Instant`]'s), for rates measured over
/// windows: never goes back, whatever the wall clock does.
pub fn monotonic_ms() -> u64 {
    Instant::now().since_start.as_millis() as u64
}

/// Runs `future` with a deadline; None when the deadline passed first.
pub async fn timeout<T>(
    duration: Duration,
    future: impl std::future::Future<Output = T>,
) -> Option<T> {
    futures_lite::future::or(async { Some(future.await) }, async {
        sleep(duration).await;
        None
    })
    .await
}

/// A point on the shard's monotonic clock, for measuring waits and rates: real time on glommio,
/// virtual time in a simulation. Use it instead of `std::time::Instant`, which would let real
/// time leak into a simulated run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant {
    /// Since an arbitrary start: the first call in this process, or the simulation's start.
    since_start: Duration,
}

impl Instant {
    /// Now.
    pub fn now() -> Self {
        let since_start = match sim::current() {
            Some(core) => Duration::from_nanos(core.now_ns()),
            None => {
                static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
                START.get_or_init(std::time::Instant::now).elapsed()
            }
        };
        Instant { since_start }
    }

    /// How long after `earlier` this is; zero if `earlier` is later.
    pub fn saturating_duration_since(&self, earlier: Instant) -> Duration {
        self.since_start.saturating_sub(earlier.since_start)
    }

    /// Time passed since this instant.
    pub fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(*self)
    }
}

impl std::ops::Add<Duration> for Instant {
    type Output = Instant;

    fn add(self, d: Duration) -> Instant {
        Instant {
            since_start: self.since_start + d,
        }
    }
}
