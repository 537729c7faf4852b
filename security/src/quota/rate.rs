//! Kafka's measurements behind quotas: the windowed rate (`SampledStat` + `Rate` with a
//! `WindowedSum`), the token bucket of controller mutations, and the throttle time
//! (`QuotaUtils`).
//!
//! The windowed rate, as Kafka measures it:
//! - A sample covers one window from its own start (a sample starts at the first record
//!   after the previous one completed, so windows are not aligned to a grid). At most
//!   `samples + 1` samples are kept: the extra one keeps a sample that began before the
//!   measured span but still overlaps it.
//! - Measuring first purges obsolete samples: a sample whose *last event* is
//!   `samples * window` or more before now is reset (emptied, restarted at now).
//! - The rate is the sum of the samples over the elapsed time since the oldest sample's
//!   start, counted as at least `samples - 1` whole windows: a new or idle client is measured
//!   as if it had been silent before, so a first burst of up to `quota * (samples - 1) *
//!   window` passes unthrottled.

/// The largest throttle time answered: the wire's `throttle_time_ms` is an INT32 (Kafka casts
/// its long to int; clamping keeps a huge value from wrapping negative).
pub const MAX_THROTTLE_TIME_MS: u64 = i32::MAX as u64;

/// The throttle time that brings an observed rate `observed` back to `quota`, when no more
/// is recorded, over the measured window `window_ms` (Kafka's `QuotaUtils.throttleTime`):
/// `X = (O - T) / T * W`, rounded; 0 when `O <= T`.
///
/// `window_ms` must be the window the rate was measured over ([`WindowedRate::window_ms`]),
/// not the configured `samples * window`: Kafka uses "the precise window used by the rate
/// calculation". A non-positive or NaN quota gives [`MAX_THROTTLE_TIME_MS`] or 0, never a
/// panic (validated configs never hold one).
pub fn throttle_time_ms(observed: f64, quota: f64, window_ms: u64) -> u64 {
    if observed.is_nan() || observed <= quota {
        return 0;
    }
    clamp_ms((observed - quota) / quota * window_ms as f64)
}

/// [`throttle_time_ms`] capped at `max_ms` (Kafka's `QuotaUtils.boundedThrottleTime`). Request
/// quotas and IP connection-rate quotas cap at one window (`quota.window.size.seconds`); byte
/// rate quotas are not capped.
pub fn bounded_throttle_time_ms(observed: f64, quota: f64, window_ms: u64, max_ms: u64) -> u64 {
    throttle_time_ms(observed, quota, window_ms).min(max_ms)
}

/// The time a token bucket at `tokens` takes to refill to zero at `quota` per second
/// (Kafka's `ControllerMutationQuotaManager.throttleTimeMs`); 0 when not below zero.
pub fn token_bucket_throttle_time_ms(tokens: f64, quota: f64) -> u64 {
    if tokens.is_nan() || tokens >= 0.0 {
        return 0;
    }
    clamp_ms(-tokens / quota * 1000.0)
}

/// The value to record for a `request_percentage` quota: the request's thread time in
/// nanoseconds as "percent-seconds" (Kafka's `nanos * 100 / 1e9`), so that the per-second
/// rate is the percentage of one thread the client used: 10 ms of I/O-thread time is 1.0,
/// and a client using 10 ms each second measures 1 (%).
pub fn request_time_percentage(thread_time_nanos: u64) -> f64 {
    thread_time_nanos as f64 * 100.0 / 1e9
}

fn clamp_ms(ms: f64) -> u64 {
    if ms.is_nan() || ms <= 0.0 {
        0
    } else if ms >= MAX_THROTTLE_TIME_MS as f64 {
        MAX_THROTTLE_TIME_MS
    } else {
        // Java's Math.round, for a positive value.
        (ms + 0.5).floor() as u64
    }
}

#[derive(Debug, Clone)]
struct Sample {
    value: f64,
    events: u64,
    start_ms: u64,
    last_event_ms: u64,
}

impl Sample {
    fn new(now_ms: u64) -> Self {
        Sample {
            value: 0.0,
            events: 0,
            start_ms: now_ms,
            last_event_ms: now_ms,
        }
    }
}

/// Kafka's `Rate` over a `WindowedSum`: `samples` samples of `window_ms` each (the quota
/// defaults are `quota.window.num` = 11 and `quota.window.size.seconds` = 1).
#[derive(Debug, Clone)]
pub struct WindowedRate {
    samples: Vec<Sample>,
    current: usize,
    num_samples: usize,
    window_ms: u64,
}

impl WindowedRate {
    /// A rate with no records. `samples` and `window_ms` come from broker configs that Kafka
    /// requires to be at least 1.
    pub fn new(samples: usize, window_ms: u64) -> Self {
        assert!(
            samples >= 1 && window_ms >= 1,
            "a rate needs samples and a window"
        );
        WindowedRate {
            samples: Vec::new(),
            current: 0,
            num_samples: samples,
            window_ms,
        }
    }

    /// Adds `value` at `now_ms`: to the current sample, or to a new one when the current
    /// sample's window has passed (a negative value "unrecords"). Time going backwards is
    /// taken as no time passing.
    pub fn record(&mut self, value: f64, now_ms: u64) {
        if self.samples.is_empty() {
            self.samples.push(Sample::new(now_ms));
        }
        if now_ms.saturating_sub(self.samples[self.current].start_ms) >= self.window_ms {
            self.advance(now_ms);
        }
        let sample = &mut self.samples[self.current];
        sample.value += value;
        sample.events += 1;
        sample.last_event_ms = now_ms;
    }

    /// The rate per second at `now_ms`: the retained total over [`Self::window_ms`] seconds.
    /// Measuring purges obsolete samples, as Kafka's does (hence `&mut`). The measured
    /// window is at least 1 ms, so the rate stays finite (Kafka would divide by zero with one
    /// sample measured at the instant it started).
    pub fn rate(&mut self, now_ms: u64) -> f64 {
        let total = self.total(now_ms);
        let window_ms = self.window_ms(now_ms).max(1);
        total / (window_ms as f64 / 1000.0)
    }

    /// The retained total at `now_ms` (after purging obsolete samples).
    pub fn total(&mut self, now_ms: u64) -> f64 {
        self.purge_obsolete(now_ms);
        self.samples.iter().map(|s| s.value).sum()
    }

    /// The window the rate is measured over at `now_ms` (Kafka's `Rate.windowSize`): the
    /// elapsed time since the oldest retained sample started, at least `samples - 1` whole
    /// windows (the missing windows count as silent ones).
    pub fn window_ms(&mut self, now_ms: u64) -> u64 {
        self.purge_obsolete(now_ms);
        if self.samples.is_empty() {
            // Kafka's `oldest` creates the first sample when asked before any record.
            self.samples.push(Sample::new(now_ms));
        }
        let oldest = self
            .samples
            .iter()
            .map(|s| s.start_ms)
            .min()
            .unwrap_or(now_ms);
        let elapsed = now_ms.saturating_sub(oldest);
        let full_windows = elapsed / self.window_ms;
        let min_full_windows = self.num_samples as u64 - 1;
        if full_windows < min_full_windows {
            elapsed + (min_full_windows - full_windows) * self.window_ms
        } else {
            elapsed
        }
    }

    /// Moves to the next sample slot, reusing the oldest slot once `samples + 1` exist.
    fn advance(&mut self, now_ms: u64) {
        let max_samples = self.num_samples + 1;
        self.current = (self.current + 1) % max_samples;
        if self.current >= self.samples.len() {
            self.samples.push(Sample::new(now_ms));
        } else {
            self.samples[self.current] = Sample::new(now_ms);
        }
    }

    /// Resets every sample whose last event is `samples * window` or more in the past; a
    /// sample that started earlier but has an event inside that span is kept.
    fn purge_obsolete(&mut self, now_ms: u64) {
        let expire_age = self.num_samples as u64 * self.window_ms;
        for sample in &mut self.samples {
            if now_ms.saturating_sub(sample.last_event_ms) >= expire_age {
                *sample = Sample::new(now_ms);
            }
        }
    }
}

/// Kafka's `TokenBucket`, the controller mutation quota: refilled at `quota` tokens per
/// second up to a burst of `samples * window * quota`; the quota is exhausted while the
/// tokens are below zero. Kafka's bucket starts at 0 tokens with its last update at the
/// epoch, so in wall-clock time it is full when first used; with a monotonic clock that may
/// start near 0, this bucket is explicitly full on first use.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    last_update_ms: Option<u64>,
    samples: usize,
    window_ms: u64,
}

impl TokenBucket {
    /// A full bucket; `samples` and `window_ms` are `controller.quota.window.num` and
    /// `controller.quota.window.size.seconds` (defaults 11 and 1 s).
    pub fn new(samples: usize, window_ms: u64) -> Self {
        assert!(
            samples >= 1 && window_ms >= 1,
            "a bucket needs samples and a window"
        );
        TokenBucket {
            tokens: 0.0,
            last_update_ms: None,
            samples,
            window_ms,
        }
    }

    /// The tokens at `now_ms` under `quota` (may be negative).
    pub fn tokens(&mut self, quota: f64, now_ms: u64) -> f64 {
        self.refill(quota, now_ms);
        self.tokens
    }

    /// Takes `value` tokens at `now_ms` (the bucket may go below zero).
    pub fn record(&mut self, quota: f64, value: f64, now_ms: u64) {
        self.refill(quota, now_ms);
        self.tokens = (self.tokens - value).min(self.burst(quota));
    }

    fn burst(&self, quota: f64) -> f64 {
        self.samples as f64 * (self.window_ms as f64 / 1000.0) * quota
    }

    fn refill(&mut self, quota: f64, now_ms: u64) {
        let burst = self.burst(quota);
        self.tokens = match self.last_update_ms {
            None => burst,
            Some(last) => {
                let elapsed_s = now_ms.saturating_sub(last) as f64 / 1000.0;
                (self.tokens + quota * elapsed_s).min(burst)
            }
        };
        self.last_update_ms = Some(now_ms.max(self.last_update_ms.unwrap_or(0)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn first_records_count_missing_windows_as_silent() {
        let mut rate = WindowedRate::new(11, 1000);
        rate.record(1000.0, 0);
        assert_eq!(rate.window_ms(0), 10_000);
        assert!(close(rate.rate(0), 100.0));
        // 500 ms into the first window: still 10 windows, the elapsed part is not yet whole.
        assert_eq!(rate.window_ms(500), 10_500);
        rate.record(1000.0, 5500);
        assert_eq!(rate.window_ms(5500), 10_500);
        assert!(close(rate.rate(5500), 2000.0 / 10.5));
    }

    #[test]
    fn obsolete_samples_are_purged_by_their_last_event() {
        let mut rate = WindowedRate::new(11, 1000);
        rate.record(1000.0, 0);
        rate.record(1000.0, 5500);
        // At 10 999 the first sample's last event is 10 999 ms old: kept.
        assert!(close(rate.total(10_999), 2000.0));
        // At 11 000 it is samples * window old: reset; the oldest start is now 5 500.
        assert!(close(rate.total(11_000), 1000.0));
        assert_eq!(rate.window_ms(11_000), 10_500);
        assert!(close(rate.rate(11_000), 1000.0 / 10.5));
    }

    #[test]
    fn a_sample_overlapping_the_span_is_kept_with_its_start() {
        let mut rate = WindowedRate::new(11, 1000);
        rate.record(100.0, 0);
        rate.record(100.0, 900);
        // The sample started at 0 but its last event (900) is within 11 s of 11 000.
        assert!(close(rate.total(11_000), 200.0));
        assert_eq!(rate.window_ms(11_000), 11_000);
        assert!(close(rate.rate(11_000), 200.0 / 11.0));
    }

    #[test]
    fn samples_are_recycled_after_samples_plus_one() {
        let mut rate = WindowedRate::new(2, 1000);
        for t in [0, 1000, 2000, 3000] {
            rate.record(1.0, t);
        }
        // Three slots: the sample of t=0 was reused at t=3000; the one of t=1000 is
        // obsolete at 3000 (2 windows after its last event), leaving 2000 and 3000.
        assert_eq!(rate.samples.len(), 3);
        assert!(close(rate.total(3000), 2.0));
        assert_eq!(rate.window_ms(3000), 1000);
        // A record before the window passes stays in the current sample.
        rate.record(1.0, 3999);
        assert_eq!(rate.samples[rate.current].events, 2);
    }

    #[test]
    fn unrecording_restores_the_total() {
        let mut rate = WindowedRate::new(11, 1000);
        rate.record(500.0, 0);
        rate.record(300.0, 10);
        rate.record(-300.0, 10);
        assert!(close(rate.total(10), 500.0));
    }

    #[test]
    fn throttle_time_formula() {
        // Twice the quota over an 11 s window needs another 11 s.
        assert_eq!(throttle_time_ms(2e6, 1e6, 11_000), 11_000);
        assert_eq!(throttle_time_ms(1.01e6, 1e6, 10_000), 100);
        assert_eq!(throttle_time_ms(1e6, 1e6, 10_000), 0);
        assert_eq!(throttle_time_ms(5e5, 1e6, 10_000), 0);
        assert_eq!(bounded_throttle_time_ms(2e6, 1e6, 11_000, 1000), 1000);
        assert_eq!(bounded_throttle_time_ms(1.01e6, 1e6, 10_000, 1000), 100);
        assert_eq!(throttle_time_ms(1.0, 0.0, 1000), MAX_THROTTLE_TIME_MS);
        assert_eq!(throttle_time_ms(f64::NAN, 1.0, 1000), 0);
        // Rounds half up, as Math.round.
        assert_eq!(throttle_time_ms(1.5, 1.0, 1), 1);
    }

    #[test]
    fn request_percentage_units() {
        assert!(close(request_time_percentage(10_000_000), 1.0));
        assert!(close(request_time_percentage(1_000_000_000), 100.0));
    }

    #[test]
    fn token_bucket_refills_to_its_burst() {
        let mut bucket = TokenBucket::new(11, 1000);
        assert!(close(bucket.tokens(2.0, 0), 22.0));
        bucket.record(2.0, 30.0, 0);
        assert!(close(bucket.tokens(2.0, 0), -8.0));
        assert_eq!(token_bucket_throttle_time_ms(-8.0, 2.0), 4000);
        assert!(close(bucket.tokens(2.0, 4000), 0.0));
        assert!(
            close(bucket.tokens(2.0, 100_000), 22.0),
            "capped at the burst"
        );
        assert_eq!(token_bucket_throttle_time_ms(0.0, 2.0), 0);
    }
}
