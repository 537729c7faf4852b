//! Record keys and the partition each record goes to.
//!
//! * `none`: null keys; partitions are filled in turn (Kafka's sticky partitioner as of
//!   KIP-794, see [`Sticky`]): a partition gets records until `--batch-size` bytes went to it,
//!   so batches fill up at high rates and a low rate still moves over every partition.
//! * `uniform:N`: keys `key-0..key-N` drawn uniformly; partition = murmur2(key) % partitions,
//!   as Kafka's default partitioner does, so runs against any broker place keys alike.
//! * `zipf:N[:S]`: the same keys drawn with a Zipf law of exponent S (default 0.99): key rank
//!   k has weight 1/k^S, a few hot keys get most records.

use rand::rngs::SmallRng;
use rand::Rng;

/// How keys are chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyDistribution {
    /// Null keys, sticky partitioning.
    None,
    /// Uniform over this many keys.
    Uniform(u64),
    /// Zipfian over this many keys with this exponent.
    Zipf(u64, f64),
}

impl std::str::FromStr for KeyDistribution {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let count = |p: Option<&&str>| -> Result<u64, String> {
            let n: u64 = p
                .ok_or("give the key count, e.g. uniform:1000")?
                .parse()
                .map_err(|e| format!("key count: {e}"))?;
            if n == 0 || n > 100_000_000 {
                return Err("key count must be 1..=100000000".into());
            }
            Ok(n)
        };
        match parts[0] {
            "none" if parts.len() == 1 => Ok(KeyDistribution::None),
            "uniform" if parts.len() == 2 => Ok(KeyDistribution::Uniform(count(parts.get(1))?)),
            "zipf" | "zipfian" if (2..=3).contains(&parts.len()) => {
                let exponent = match parts.get(2) {
                    Some(e) => e.parse().map_err(|e| format!("zipf exponent: {e}"))?,
                    None => 0.99,
                };
                if !(0.0..=10.0).contains(&exponent) {
                    return Err("zipf exponent must be in 0..=10".into());
                }
                Ok(KeyDistribution::Zipf(count(parts.get(1))?, exponent))
            }
            _ => Err(format!(
                "unknown key distribution {s:?}: none, uniform:N or zipf:N[:EXPONENT]"
            )),
        }
    }
}

/// Draws key ranks for one producer.
pub struct KeySource {
    kind: KeyDistribution,
    /// Cumulative weights for zipf (normalised to 1.0), empty otherwise.
    cdf: Vec<f64>,
}

impl KeySource {
    /// Prepares the distribution (zipf precomputes its cumulative weights once).
    pub fn new(kind: KeyDistribution) -> Self {
        let cdf = match kind {
            KeyDistribution::Zipf(n, s) => {
                let mut acc = 0.0;
                let mut cdf: Vec<f64> = (1..=n)
                    .map(|k| {
                        acc += 1.0 / (k as f64).powf(s);
                        acc
                    })
                    .collect();
                for c in &mut cdf {
                    *c /= acc;
                }
                cdf
            }
            _ => Vec::new(),
        };
        KeySource { kind, cdf }
    }

    /// The next key's rank (0 = hottest for zipf), None for null keys.
    pub fn next_rank(&self, rng: &mut SmallRng) -> Option<u64> {
        match self.kind {
            KeyDistribution::None => None,
            KeyDistribution::Uniform(n) => Some(rng.random_range(0..n)),
            KeyDistribution::Zipf(..) => {
                let u: f64 = rng.random();
                let rank = self.cdf.partition_point(|&c| c < u);
                Some(rank.min(self.cdf.len() - 1) as u64)
            }
        }
    }
}

/// The key bytes of a rank.
pub fn key_bytes(rank: u64, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(b"key-");
    out.extend_from_slice(rank.to_string().as_bytes());
}

/// The partition null-keyed records go to: one partition until `batch_size` bytes went to it
/// or its batch was sealed for size, then the next, in turn. Kafka's producer (KIP-794)
/// switches after `batch.size` bytes whether its batches were sent for size or for
/// `linger.ms`; switching only when a batch fills would keep a low rate, whose batches are
/// all sent by linger, on one partition for the whole run.
#[derive(Debug, Clone)]
pub struct Sticky {
    partition: i32,
    partitions: i32,
    bytes: usize,
    batch_size: usize,
}

impl Sticky {
    /// Starts on `first % partitions`.
    pub fn new(first: i32, partitions: i32, batch_size: usize) -> Self {
        let partitions = partitions.max(1);
        Sticky {
            partition: first.rem_euclid(partitions),
            partitions,
            bytes: 0,
            batch_size,
        }
    }

    /// The partition the next null-keyed record goes to.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// `bytes` went to the current partition; `sealed`: its batch was sealed for size.
    pub fn appended(&mut self, bytes: usize, sealed: bool) {
        self.bytes += bytes;
        if sealed || self.bytes >= self.batch_size {
            self.partition = (self.partition + 1) % self.partitions;
            self.bytes = 0;
        }
    }
}

/// Kafka's default partitioner for keyed records (murmur2 of the key, sign bit cleared, modulo
/// the partition count).
pub use millrace_wire::murmur2::partition_for_key;

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn sticky_moves_on_after_batch_size_bytes_or_a_full_batch() {
        let mut sticky = Sticky::new(5, 4, 1000);
        assert_eq!(sticky.partition(), 1);
        // Small batches sealed by linger: still one partition until 1000 bytes went to it.
        let mut seen = Vec::new();
        for _ in 0..40 {
            seen.push(sticky.partition());
            sticky.appended(100, false);
        }
        let expected: Vec<i32> = (0..40).map(|i| (1 + i / 10) % 4).collect();
        assert_eq!(seen, expected);
        // A batch sealed for size moves on at once, and the count starts again.
        let at = sticky.partition();
        sticky.appended(300, true);
        assert_eq!(sticky.partition(), (at + 1) % 4);
        sticky.appended(900, false);
        assert_eq!(sticky.partition(), (at + 1) % 4);
        sticky.appended(100, false);
        assert_eq!(sticky.partition(), (at + 2) % 4);
        // One partition: always partition 0.
        let mut one = Sticky::new(3, 1, 10);
        one.appended(50, true);
        assert_eq!(one.partition(), 0);
    }

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!("none".parse::<KeyDistribution>(), Ok(KeyDistribution::None));
        assert_eq!("uniform:10".parse(), Ok(KeyDistribution::Uniform(10)));
        assert_eq!("zipf:100".parse(), Ok(KeyDistribution::Zipf(100, 0.99)));
        assert_eq!("zipf:100:1.2".parse(), Ok(KeyDistribution::Zipf(100, 1.2)));
        for bad in [
            "uniform",
            "uniform:0",
            "zipf:x",
            "zipf:5:-1",
            "normal:3",
            "none:3",
        ] {
            assert!(bad.parse::<KeyDistribution>().is_err(), "{bad}");
        }
    }

    #[test]
    fn uniform_covers_every_key_evenly_and_is_seeded() {
        let source = KeySource::new(KeyDistribution::Uniform(10));
        let mut rng = SmallRng::seed_from_u64(7);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[source.next_rank(&mut rng).unwrap() as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_000..11_000).contains(&c)),
            "{counts:?}"
        );
        let draw = |seed| {
            let mut rng = SmallRng::seed_from_u64(seed);
            (0..20)
                .map(|_| source.next_rank(&mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
    }

    #[test]
    fn zipf_makes_a_few_keys_hot_in_the_ratio_its_exponent_says() {
        let source = KeySource::new(KeyDistribution::Zipf(1000, 1.0));
        let mut rng = SmallRng::seed_from_u64(1);
        let mut counts = vec![0u32; 1000];
        for _ in 0..200_000 {
            counts[source.next_rank(&mut rng).unwrap() as usize] += 1;
        }
        // Weight 1/k: rank 0 is twice rank 1 and ten times rank 9.
        let ratio = |a: usize, b: usize| f64::from(counts[a]) / f64::from(counts[b]);
        assert!((1.8..2.2).contains(&ratio(0, 1)), "{}", ratio(0, 1));
        assert!((8.0..12.0).contains(&ratio(0, 9)), "{}", ratio(0, 9));
        // H(1000) ~ 7.485, so the top key gets ~13.4% of all records.
        let top = f64::from(counts[0]) / 200_000.0;
        assert!((0.12..0.15).contains(&top), "{top}");
    }
}
