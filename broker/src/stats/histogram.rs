//! Latency histograms with fixed bucket bounds, so the buckets of every shard and every broker
//! add up (Prometheus histograms, not summaries: a quantile of a sum is computable, a sum of
//! quantiles is not).

use std::time::Duration;

/// Upper bounds of the buckets, in seconds: 50 µs to 10 s on a 1-2.5-5 scale. A last bucket
/// (`+Inf`) takes everything above.
pub const BOUNDS_S: [f64; 18] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The same bounds in nanoseconds, for the recording side (no float on the hot path).
const BOUNDS_NS: [u64; 18] = [
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    30_000_000_000,
];

/// Counts per bucket (not cumulative; the encoder accumulates) and the sum of observations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    /// `counts[i]`: observations in (BOUNDS[i-1], BOUNDS[i]]; the last slot is above all.
    counts: [u64; BOUNDS_NS.len() + 1],
    /// Sum of the observations, in nanoseconds.
    sum_ns: u64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let slot = BOUNDS_NS.partition_point(|&b| b < ns);
        self.counts[slot] += 1;
        self.sum_ns = self.sum_ns.saturating_add(ns);
    }

    /// Adds another histogram's observations to this one.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
    }

    /// Observations in all.
    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Sum of the observations, in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_ns as f64 / 1e9
    }

    /// Cumulative counts at each bound of [`BOUNDS_S`], then the total (`+Inf`).
    pub fn cumulative(&self) -> impl Iterator<Item = u64> + '_ {
        self.counts.iter().scan(0u64, |acc, c| {
            *acc += c;
            Some(*acc)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_whose_bound_holds_them() {
        let mut h = Histogram::default();
        h.observe(Duration::from_micros(50)); // on a bound: that bucket (le is inclusive)
        h.observe(Duration::from_micros(51));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60)); // above every bound
        let cumulative: Vec<u64> = h.cumulative().collect();
        assert_eq!(cumulative.len(), BOUNDS_S.len() + 1);
        assert_eq!(cumulative[0], 1);
        assert_eq!(cumulative[1], 2);
        assert_eq!(cumulative[5], 2); // le 2.5 ms
        assert_eq!(cumulative[6], 3); // le 5 ms
        assert_eq!(cumulative[BOUNDS_S.len() - 1], 3);
        assert_eq!(*cumulative.last().unwrap(), 4);
        assert_eq!(h.count(), 4);
        let expected = 50e-6 + 51e-6 + 3e-3 + 60.0;
        assert!((h.sum_seconds() - expected).abs() < 1e-9);
        for (ns, s) in BOUNDS_NS.iter().zip(BOUNDS_S) {
            assert_eq!(*ns, (s * 1e9).round() as u64);
        }
    }

    #[test]
    fn merging_adds_counts_and_sums() {
        let (mut a, mut b) = (Histogram::default(), Histogram::default());
        a.observe(Duration::from_millis(1));
        b.observe(Duration::from_millis(1));
        b.observe(Duration::from_secs(2));
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.cumulative().nth(4), Some(2)); // le 1 ms
        assert!((a.sum_seconds() - 2.002).abs() < 1e-9);
    }
}
