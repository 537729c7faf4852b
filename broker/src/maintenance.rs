//! Per-shard log maintenance: retention and the compaction cleaner.
//!
//! Each shard runs two background tasks over the logs it owns, in a low-share task queue so
//! that request handling goes first whenever both have work:
//!
//! * **Retention**, every `log.retention.check.interval.ms`: deletes whole segments past
//!   `retention.ms`/`retention.bytes` or below the log start offset, rolling the active segment
//!   when it is due (topics with `cleanup.policy` containing `delete`).
//! * **Cleaner** (`log.cleaner.enable`): compacts logs with `cleanup.policy` containing
//!   `compact` whose dirty ratio reaches `min.cleanable.dirty.ratio` (or whose dirty data is
//!   older than `max.compaction.lag.ms`), one log at a time, its reads and writes paced by a
//!   token bucket of `log.cleaner.io.max.bytes.per.second`; it waits
//!   `log.cleaner.backoff.ms` when a pass found nothing to do.

use crate::node::{PartitionKey, Shard};
use millrace_storage::Throttle;
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

/// Starts the shard's maintenance tasks.
pub fn start(shard: &Rc<Shard>) -> Result<(), String> {
    millrace_shard::spawn_background("retention", retention_loop(shard.clone()))?;
    if shard.config.log_cleaner_enable {
        millrace_shard::spawn_background("cleaner", cleaner_loop(shard.clone()))?;
    }
    Ok(())
}

fn owned_logs(shard: &Shard) -> Vec<(PartitionKey, Rc<crate::node::Log>)> {
    let mut logs: Vec<_> = shard
        .logs
        .borrow()
        .iter()
        .map(|(k, l)| (k.clone(), l.clone()))
        .collect();
    logs.sort_by(|a, b| a.0.cmp(&b.0));
    logs
}

async fn retention_loop(shard: Rc<Shard>) {
    let interval = Duration::from_millis(shard.config.log_retention_check_interval_ms as u64);
    while !shard.stopping.get() {
        millrace_shard::time::sleep(interval).await;
        for (key, log) in owned_logs(&shard) {
            if shard.stopping.get() {
                return;
            }
            match log.enforce_retention(millrace_shard::time::now_ms()).await {
                Ok(o) if o.segments_deleted > 0 => tracing::info!(
                    topic = %key.0, partition = key.1, segments = o.segments_deleted,
                    bytes = o.bytes_deleted, log_start_offset = o.log_start_offset,
                    "retention deleted segments"
                ),
                Ok(_) | Err(millrace_storage::StorageError::Closed) => {}
                Err(e) => {
                    tracing::warn!(topic = %key.0, partition = key.1, error = %e, "retention")
                }
            }
        }
    }
}

async fn cleaner_loop(shard: Rc<Shard>) {
    let throttle = TokenBucket::new(shard.config.log_cleaner_io_max_bytes_per_second);
    let backoff = Duration::from_millis(shard.config.log_cleaner_backoff_ms as u64);
    while !shard.stopping.get() {
        let mut cleaned_any = false;
        for (key, log) in owned_logs(&shard) {
            if shard.stopping.get() {
                return;
            }
            if !log.config().cleanup_compact {
                continue;
            }
            match log.clean(millrace_shard::time::now_ms(), &throttle).await {
                Ok(o) if o.cleaned => {
                    cleaned_any = true;
                    tracing::info!(
                        topic = %key.0, partition = key.1, read = o.bytes_read,
                        written = o.bytes_written, removed = o.records_removed,
                        "cleaned log"
                    );
                }
                Ok(_) | Err(millrace_storage::StorageError::Closed) => {}
                Err(e) => tracing::warn!(topic = %key.0, partition = key.1, error = %e, "cleaner"),
            }
        }
        if !cleaned_any {
            millrace_shard::time::sleep(backoff).await;
        }
    }
}

/// The longest a [`TokenBucket`] lets its user run ahead of the rate.
const BURST: Duration = Duration::from_millis(100);

/// Paces bytes to a rate: each `pace(n)` takes `n` tokens and sleeps off any debt. The bucket
/// holds at most [`BURST`] worth of tokens, so neither a cleaner that just started nor one
/// that was idle reads faster than its rate for more than that long (with a second of tokens,
/// a broker restarting onto a backlog read 100 MiB per shard at the disk's full speed first).
pub struct TokenBucket {
    rate: f64,
    depth: f64,
    tokens: Cell<f64>,
    last: Cell<std::time::Instant>,
}

impl TokenBucket {
    /// A bucket of `rate` bytes per second, full.
    pub fn new(rate: f64) -> Self {
        let depth = rate * BURST.as_secs_f64();
        TokenBucket {
            rate,
            depth,
            tokens: Cell::new(depth),
            last: Cell::new(std::time::Instant::now()),
        }
    }

    /// Takes `bytes` tokens at `now`; returns how long to wait to pay back a debt.
    fn take(&self, bytes: usize, now: std::time::Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last.get()).as_secs_f64();
        self.last.set(now);
        let tokens = (self.tokens.get() + elapsed * self.rate).min(self.depth) - bytes as f64;
        self.tokens.set(tokens);
        if tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-tokens / self.rate)
        }
    }
}

impl Throttle for TokenBucket {
    async fn pace(&self, bytes: usize) {
        let wait = self.take(bytes, std::time::Instant::now());
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

    #[test]
    fn token_bucket_waits_off_its_debt_and_caps_savings() {
        let close = |d: Duration, ms: f64| (d.as_secs_f64() * 1e3 - ms).abs() < 1e-6;
        let b = TokenBucket::new(1000.0);
        let t0 = b.last.get();
        // A new bucket holds 100 ms of tokens, not a second.
        assert_eq!(b.take(100, t0), Duration::ZERO);
        let wait = b.take(500, t0);
        assert!(close(wait, 500.0), "{wait:?}");
        // Ten idle seconds refill at most 100 ms of tokens.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(b.take(100, later), Duration::ZERO);
        let wait = b.take(250, later);
        assert!(close(wait, 250.0), "{wait:?}");
    }
}
