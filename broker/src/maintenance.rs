//! Per-shard log maintenance: retention, the compaction cleaner, high-watermark checkpoints.
//!
//! Each shard runs these background tasks over the partitions it owns, in a low-share task
//! queue so that request handling goes first whenever both have work:
//!
//! * **High-watermark checkpoint**, every `replica.high.watermark.checkpoint.interval.ms`:
//!   persists each partition's high watermark that moved (and at close).
//! * **Retention**, every `log.retention.check.interval.ms`: deletes whole segments past
//!   `retention.ms`/`retention.bytes` or below the log start offset, rolling the active segment
//!   when it is due (topics with `cleanup.policy` containing `delete`).
//! * **Cleaner** (`log.cleaner.enable`): compacts logs with `cleanup.policy` containing
//!   `compact` whose dirty ratio reaches `min.cleanable.dirty.ratio` (or whose dirty data is
//!   older than `max.compaction.lag.ms`), one log at a time, its reads and writes paced by a
//!   token bucket of `log.cleaner.io.max.bytes.per.second`, or of the lower
//!   `millrace.log.cleaner.io.busy.max.bytes.per.second` while the broker syncs produces or
//!   reads segments for fetches; it waits `log.cleaner.backoff.ms` when a pass found nothing
//!   to do.

use crate::shard::Shard;
use millrace_storage::Throttle;
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

/// Starts the shard's maintenance tasks.
pub fn start(shard: &Rc<Shard>) -> Result<(), String> {
    millrace_shard::spawn_background("retention", retention_loop(shard.clone()))?;
    millrace_shard::spawn_background("hw-checkpoint", checkpoint_loop(shard.clone()))?;
    if shard.config.log_cleaner_enable {
        millrace_shard::spawn_background("cleaner", cleaner_loop(shard.clone()))?;
    }
    Ok(())
}

async fn checkpoint_loop(shard: Rc<Shard>) {
    let interval = shard.config.replica_high_watermark_checkpoint_interval_ms as u64;
    while !shard.stopping.get() {
        millrace_shard::time::sleep(Duration::from_millis(interval)).await;
        for partition in shard.partitions() {
            match partition.checkpoint_high_watermark().await {
                Ok(()) | Err(millrace_storage::StorageError::Closed) => {}
                Err(e) => tracing::warn!(topic = %partition.topic(),
                    partition = partition.index(), error = %e, "high-watermark checkpoint"),
            }
        }
    }
}

async fn retention_loop(shard: Rc<Shard>) {
    let interval = Duration::from_millis(shard.config.log_retention_check_interval_ms as u64);
    while !shard.stopping.get() {
        millrace_shard::time::sleep(interval).await;
        for partition in shard.partitions() {
            if shard.stopping.get() {
                return;
            }
            match partition
                .enforce_retention(millrace_shard::time::now_ms())
                .await
            {
                Ok(o) if o.segments_deleted > 0 => tracing::info!(
                    topic = %partition.topic(),
                    partition = partition.index(),
                    segments = o.segments_deleted,
                    bytes = o.bytes_deleted,
                    log_start_offset = o.log_start_offset,
                    "retention deleted segments"
                ),
                Ok(_) | Err(millrace_storage::StorageError::Closed) => {}
                Err(e) => {
                    tracing::warn!(topic = %partition.topic(), partition = partition.index(), error = %e, "retention")
                }
            }
        }
    }
}

async fn cleaner_loop(shard: Rc<Shard>) {
    let throttle = TokenBucket::new(
        shard.config.log_cleaner_io_max_bytes_per_second,
        shard.config.log_cleaner_io_busy_max_bytes_per_second,
        millrace_storage::foreground_io_started(),
    );
    let backoff = Duration::from_millis(shard.config.log_cleaner_backoff_ms as u64);
    while !shard.stopping.get() {
        let mut cleaned_any = false;
        for partition in shard.partitions() {
            if shard.stopping.get() {
                return;
            }
            if !partition.config().cleanup_compact {
                continue;
            }
            match partition
                .clean(millrace_shard::time::now_ms(), &throttle)
                .await
            {
                Ok(o) if o.cleaned => {
                    cleaned_any = true;
                    tracing::info!(
                        topic = %partition.topic(),
                        partition = partition.index(),
                        read = o.bytes_read,
                        written = o.bytes_written,
                        removed = o.records_removed,
                        "cleaned log"
                    );
                }
                Ok(_) | Err(millrace_storage::StorageError::Closed) => {}
                Err(e) => {
                    tracing::warn!(topic = %partition.topic(), partition = partition.index(), error = %e, "cleaner")
                }
            }
        }
        if !cleaned_any {
            millrace_shard::time::sleep(backoff).await;
        }
    }
}

/// The longest a [`TokenBucket`] lets its user run ahead of the rate.
const BURST: Duration = Duration::from_millis(100);
/// How long after the last foreground device work started the busy rate still applies.
const BUSY_FOR: Duration = Duration::from_secs(1);

/// Paces bytes to a rate: each `pace(n)` takes `n` tokens and sleeps off any debt. The bucket
/// holds at most [`BURST`] worth of tokens, so neither a cleaner that just started nor one
/// that was idle reads faster than its rate for more than that long (with a second of tokens,
/// a broker restarting onto a backlog read 100 MiB per shard at the disk's full speed first).
///
/// Two rates: the busy one while any log in the process has started foreground device work
/// within [`BUSY_FOR`] (a flush round that produces, offset commits or replica appends wait
/// on, or a fetch read the batch cache could not serve), the full one otherwise. Every
/// cleaner request on the device can delay one of theirs; how many it delays grows with the
/// cleaner's rate (docs/BENCHMARKS.md, "Cleaner budget and produce device waits"), and an
/// idle broker loses nothing by cleaning at full speed.
pub struct TokenBucket {
    rate: f64,
    busy_rate: f64,
    tokens: Cell<f64>,
    last: Cell<millrace_shard::time::Instant>,
    /// The foreground count last seen, and until when the busy rate applies because it moved.
    seen: Cell<u64>,
    busy_until: Cell<Option<millrace_shard::time::Instant>>,
}

impl TokenBucket {
    /// A full bucket of `rate` bytes per second, `busy_rate` (at most `rate`) while
    /// foreground device work is starting; `foreground` is its count so far
    /// ([`millrace_storage::foreground_io_started`]).
    pub fn new(rate: f64, busy_rate: f64, foreground: u64) -> Self {
        TokenBucket {
            rate,
            busy_rate: busy_rate.min(rate),
            tokens: Cell::new(rate * BURST.as_secs_f64()),
            last: Cell::new(millrace_shard::time::Instant::now()),
            seen: Cell::new(foreground),
            busy_until: Cell::new(None),
        }
    }

    /// The rate in force at `now`, given the foreground count so far.
    fn rate_at(&self, now: millrace_shard::time::Instant, foreground: u64) -> f64 {
        if foreground != self.seen.get() {
            self.seen.set(foreground);
            self.busy_until.set(Some(now + BUSY_FOR));
        }
        match self.busy_until.get() {
            Some(until) if now < until => self.busy_rate,
            _ => self.rate,
        }
    }

    /// Takes `bytes` tokens at `now`; returns how long to wait to pay back a debt. Tokens
    /// accrue at the rate in force now and are capped at [`BURST`] of it.
    fn take(&self, bytes: usize, now: millrace_shard::time::Instant, foreground: u64) -> Duration {
        let rate = self.rate_at(now, foreground);
        let elapsed = now.saturating_duration_since(self.last.get()).as_secs_f64();
        self.last.set(now);
        let depth = rate * BURST.as_secs_f64();
        let tokens = (self.tokens.get() + elapsed * rate).min(depth) - bytes as f64;
        self.tokens.set(tokens);
        if tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-tokens / rate)
        }
    }
}

impl Throttle for TokenBucket {
    async fn pace(&self, bytes: usize) {
        let now = millrace_shard::time::Instant::now();
        let wait = self.take(bytes, now, millrace_storage::foreground_io_started());
        if wait.is_zero() {
            millrace_shard::time::yield_if_needed().await;
        } else {
            millrace_shard::time::sleep(wait).await;
        }
    }

    async fn pause(&self) {
        millrace_shard::time::yield_to_reactor().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts that `wait` is `ms` milliseconds (to a nanosecond's rounding).
    #[track_caller]
    fn assert_wait(wait: Duration, ms: f64) {
        assert!(
            (wait.as_secs_f64() * 1e3 - ms).abs() < 1e-6,
            "{wait:?}, not {ms} ms"
        );
    }

    #[test]
    fn token_bucket_waits_off_its_debt_and_caps_savings() {
        let b = TokenBucket::new(1000.0, 1000.0, 7);
        let t0 = b.last.get();
        // A new bucket holds 100 ms of tokens, not a second.
        assert_eq!(b.take(100, t0, 7), Duration::ZERO);
        assert_wait(b.take(500, t0, 7), 500.0);
        // Ten idle seconds refill at most 100 ms of tokens.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(b.take(100, later, 7), Duration::ZERO);
        assert_wait(b.take(250, later, 7), 250.0);
    }

    #[test]
    fn token_bucket_uses_the_busy_rate_for_a_second_after_foreground_work_starts() {
        let b = TokenBucket::new(1000.0, 100.0, 7);
        let t0 = b.last.get();
        // Nothing since the bucket was made: the full rate (100 ms of it in the bucket).
        assert_eq!(b.take(100, t0, 7), Duration::ZERO);
        assert_wait(b.take(100, t0, 7), 100.0);
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(b.take(0, t1, 7), Duration::ZERO);
        // Foreground work started: 100 bytes now cost a second at the busy rate.
        assert_wait(b.take(100, t1, 8), 1000.0);
        // 0.9 s later, nothing new: still busy, 90 of the debt paid back.
        let t2 = t1 + Duration::from_millis(900);
        assert_wait(b.take(10, t2, 8), 200.0);
        // More foreground work moves the end of the busy spell on.
        let t3 = t2 + Duration::from_millis(100);
        assert_wait(b.take(0, t3, 9), 100.0);
        // A second after the last of it: the full rate again, its bucket refilled up to 100.
        let t4 = t3 + Duration::from_millis(1000);
        assert_eq!(b.take(100, t4, 9), Duration::ZERO);
        assert_wait(b.take(100, t4, 9), 100.0);
    }

    #[test]
    fn the_busy_rate_is_capped_by_the_full_rate() {
        let b = TokenBucket::new(1000.0, 5000.0, 0);
        let t0 = b.last.get();
        assert_eq!(b.take(100, t0, 1), Duration::ZERO);
        assert_wait(b.take(1000, t0, 1), 1000.0);
    }
}
