//! Timers and cooperative scheduling on the current shard.

use std::time::Duration;

/// Sleeps on the current shard's timer wheel.
pub async fn sleep(duration: Duration) {
    glommio::timer::sleep(duration).await;
}

/// Yields to other tasks if this one has used up its time slice.
pub async fn yield_if_needed() {
    glommio::yield_if_needed().await;
}

/// Gives every other task on this shard a turn, including those waiting for I/O that has
/// completed but not been reaped yet. [`yield_if_needed`] only yields once glommio's
/// preemption timer (100 ms) is due, and a plain yield puts the task back at the head of its
/// own queue before the ring is looked at; a short timer makes the task wait for the reactor.
pub async fn yield_to_reactor() {
    sleep(Duration::from_micros(20)).await;
}

/// Wall-clock milliseconds since the Unix epoch, as Kafka timestamps are.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
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
