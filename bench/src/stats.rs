//! Counters and latency histograms, kept per executor per one-second window and merged on the
//! main thread.
//!
//! Latencies are recorded in microseconds in HDR histograms (3 significant digits, 1 µs to one
//! hour). Each executor owns its window (`Rc<RefCell<..>>`, never shared across threads);
//! once a second it hands the finished window to the main thread over a channel, and the main
//! thread merges windows of the same second from all executors. Merging HDR histograms is
//! exact (bucket counts add), so the run's percentiles are those of all samples.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency a histogram records, in µs (one hour); larger values are clamped.
pub const LATENCY_US_MAX: u64 = 3_600_000_000;

/// A new latency histogram (µs).
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("static bounds are valid")
}

/// Records `ns` of latency, clamped into the histogram's range.
pub fn record_ns(h: &mut Histogram<u64>, ns: u64) {
    let us = (ns / 1_000).clamp(1, LATENCY_US_MAX);
    h.record(us).expect("value clamped into range");
}

/// What happened during one second on one executor (or, merged, on all of them).
#[derive(Debug, Clone)]
pub struct Window {
    /// Second since the run's start this window covers.
    pub second: u64,
    /// Records handed to the socket.
    pub sent_records: u64,
    /// Records the broker acknowledged (or, with acks=0, written to the socket).
    pub acked_records: u64,
    /// Value bytes of the acknowledged records.
    pub acked_bytes: u64,
    /// Records whose produce failed.
    pub produce_errors: u64,
    /// Records consumers received.
    pub consumed_records: u64,
    /// Value bytes consumers received.
    pub consumed_bytes: u64,
    /// Produce acknowledgement latency, from intended send time.
    pub produce_latency: Histogram<u64>,
    /// End-to-end latency, from intended send time to the consumer's receipt.
    pub e2e_latency: Histogram<u64>,
}

impl Window {
    /// An empty window for `second`.
    pub fn new(second: u64) -> Self {
        Window {
            second,
            sent_records: 0,
            acked_records: 0,
            acked_bytes: 0,
            produce_errors: 0,
            consumed_records: 0,
            consumed_bytes: 0,
            produce_latency: latency_histogram(),
            e2e_latency: latency_histogram(),
        }
    }

    /// Adds `other`'s counts and samples to this window.
    pub fn merge(&mut self, other: &Window) {
        self.sent_records += other.sent_records;
        self.acked_records += other.acked_records;
        self.acked_bytes += other.acked_bytes;
        self.produce_errors += other.produce_errors;
        self.consumed_records += other.consumed_records;
        self.consumed_bytes += other.consumed_bytes;
        self.produce_latency
            .add(&other.produce_latency)
            .expect("same bounds");
        self.e2e_latency
            .add(&other.e2e_latency)
            .expect("same bounds");
    }
}

/// Percentiles of one histogram, in µs (what the JSON carries).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th.
    pub p99_us: u64,
    /// 99.9th.
    pub p999_us: u64,
    /// 99.99th.
    pub p9999_us: u64,
    /// Largest sample.
    pub max_us: u64,
}

impl LatencySummary {
    /// Summarises `h` (zeros when empty).
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return LatencySummary::default();
        }
        let q = |quantile| h.value_at_quantile(quantile);
        LatencySummary {
            count: h.len(),
            mean_us: h.mean(),
            p50_us: q(0.50),
            p90_us: q(0.90),
            p99_us: q(0.99),
            p999_us: q(0.999),
            p9999_us: q(0.9999),
            max_us: h.max(),
        }
    }

    /// p50, p90, p99, p99.9, p99.99 and max, in that order.
    pub fn values(&self) -> [u64; 6] {
        [
            self.p50_us,
            self.p90_us,
            self.p99_us,
            self.p999_us,
            self.p9999_us,
            self.max_us,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_windows_equal_one_window_of_all_samples() {
        let mut a = Window::new(3);
        let mut b = Window::new(3);
        let mut all = Window::new(3);
        for i in 0..10_000u64 {
            let ns = (i * 7919 % 100_000) * 1_000 + 500;
            let target = if i % 3 == 0 { &mut a } else { &mut b };
            record_ns(&mut target.produce_latency, ns);
            target.acked_records += 1;
            target.acked_bytes += 100;
            record_ns(&mut all.produce_latency, ns);
            all.acked_records += 1;
            all.acked_bytes += 100;
        }
        record_ns(&mut b.e2e_latency, 5_000_000);
        record_ns(&mut all.e2e_latency, 5_000_000);
        let mut merged = Window::new(3);
        merged.merge(&a);
        merged.merge(&b);
        assert_eq!(merged.acked_records, 10_000);
        assert_eq!(merged.acked_bytes, all.acked_bytes);
        assert_eq!(
            LatencySummary::of(&merged.produce_latency),
            LatencySummary::of(&all.produce_latency)
        );
        assert_eq!(merged.produce_latency, all.produce_latency);
        // HDR keeps 3 significant digits: the max is 5 ms to within 0.1%.
        let max_us = LatencySummary::of(&merged.e2e_latency).max_us;
        assert!((4_995..=5_005).contains(&max_us), "{max_us}");
    }

    #[test]
    fn summary_percentiles_are_ordered_and_within_three_digits() {
        let mut h = latency_histogram();
        for us in 1..=100_000u64 {
            h.record(us).unwrap();
        }
        let s = LatencySummary::of(&h);
        let v = s.values();
        assert!(v.windows(2).all(|w| w[0] <= w[1]), "{v:?}");
        assert!((49_900..=50_100).contains(&s.p50_us), "{}", s.p50_us);
        assert!((98_900..=99_100).contains(&s.p99_us), "{}", s.p99_us);
        assert!((99_850..=100_000).contains(&s.p999_us), "{}", s.p999_us);
        assert_eq!(s.count, 100_000);
        // Out-of-range samples are clamped, never a panic.
        record_ns(&mut h, 0);
        record_ns(&mut h, u64::MAX);
        assert_eq!(LatencySummary::of(&h).max_us, h.max());
        assert_eq!(
            LatencySummary::of(&latency_histogram()),
            LatencySummary::default()
        );
    }
}
