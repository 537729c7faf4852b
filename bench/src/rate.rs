//! The send schedule. At a fixed rate record `n` is due at `start + n / rate`, whatever
//! happened to the records before it: when the generator falls behind (the broker pushed back)
//! the schedule does not slide, so the records that are late carry their lateness into their
//! measured latency. That is what avoids coordinated omission: latency is measured from the
//! time a record *should* have been sent, not from when a stalled sender got around to it.

/// A schedule of intended send times, in ns since the run's start.
#[derive(Debug, Clone)]
pub struct Schedule {
    start_ns: u64,
    /// None = unlimited: every record is due as soon as it is generated.
    interval_ns: Option<f64>,
    sent: u64,
}

impl Schedule {
    /// `rate` records per second from `start_ns`; None or 0 means unlimited.
    pub fn new(start_ns: u64, rate: Option<f64>) -> Self {
        Schedule {
            start_ns,
            interval_ns: rate.filter(|r| *r > 0.0).map(|r| 1e9 / r),
            sent: 0,
        }
    }

    /// True for a fixed-rate schedule.
    pub fn is_fixed(&self) -> bool {
        self.interval_ns.is_some()
    }

    /// When the next record is due (for unlimited, `now_ns`).
    pub fn next_due_ns(&self, now_ns: u64) -> u64 {
        match self.interval_ns {
            Some(interval) => self.start_ns + (self.sent as f64 * interval) as u64,
            None => now_ns,
        }
    }

    /// Takes the next record's slot if it is due at `now_ns`; returns its intended send time.
    pub fn take_due(&mut self, now_ns: u64) -> Option<u64> {
        let due = self.next_due_ns(now_ns);
        if due <= now_ns {
            self.sent += 1;
            Some(due)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_rate_times_follow_the_schedule_without_drift() {
        let mut s = Schedule::new(1_000, Some(1000.0));
        assert!(s.is_fixed());
        assert_eq!(s.take_due(1_000), Some(1_000));
        assert_eq!(
            s.take_due(1_000),
            None,
            "the second record is due 1 ms later"
        );
        assert_eq!(s.next_due_ns(0), 1_001_000);
        // A sender that wakes late takes every overdue slot at its *intended* time.
        let late: Vec<u64> = std::iter::from_fn(|| s.take_due(5_000_500)).collect();
        assert_eq!(late, vec![1_001_000, 2_001_000, 3_001_000, 4_001_000]);
        // After a million records the schedule is exactly where the rate puts it.
        let mut s = Schedule::new(0, Some(250_000.0));
        for _ in 0..1_000_000 {
            s.take_due(u64::MAX / 2).unwrap();
        }
        assert_eq!(s.next_due_ns(0), 4_000_000_000);
    }

    #[test]
    fn unlimited_is_always_due_now() {
        let mut s = Schedule::new(0, None);
        assert!(!s.is_fixed());
        assert_eq!(s.take_due(42), Some(42));
        assert_eq!(s.take_due(43), Some(43));
        assert!(!Schedule::new(0, Some(0.0)).is_fixed());
    }
}
