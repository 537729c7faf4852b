//! The leader-epoch checkpoint (`leader-epoch-checkpoint`): for each leader epoch, the first
//! offset it wrote (KIP-101), so followers can find where their log diverges.
//!
//! ```text
//! magic "MLEP" v1: count u32, count × (epoch i32, start_offset i64)
//! ```

use crate::framed;
use millrace_wire::epoch::{EpochEntry, LeaderEpoch};

const MAGIC: &[u8; 4] = b"MLEP";
const VERSION: u16 = 1;
/// The checkpoint's file name in the partition directory (Kafka's).
pub(crate) const FILE_NAME: &str = "leader-epoch-checkpoint";

/// Epoch entries, epochs and start offsets strictly increasing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EpochCache {
    pub entries: Vec<EpochEntry>,
}

impl EpochCache {
    /// Notes that `epoch` wrote at `offset`; true when this is the epoch's first write.
    pub(crate) fn assign(&mut self, epoch: LeaderEpoch, offset: i64) -> bool {
        if epoch.0 < 0 || self.entries.last().is_some_and(|e| e.epoch >= epoch) {
            return false;
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset: offset,
        });
        true
    }

    /// Drops entries starting at or after `end_offset` (the log was truncated there).
    pub(crate) fn truncate_from(&mut self, end_offset: i64) {
        self.entries.retain(|e| e.start_offset < end_offset);
    }

    /// Forgets what lies below a new log start (Kafka's truncateFromStart): the entry covering
    /// `start_offset` now starts there, older ones go. True when something changed.
    pub(crate) fn truncate_before(&mut self, start_offset: i64) -> bool {
        let covering = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        if covering == 0 {
            return false;
        }
        let before = self.entries.clone();
        self.entries.drain(..covering - 1);
        self.entries[0].start_offset = start_offset;
        self.entries != before
    }

    /// Kafka's OffsetForLeaderEpoch rule (see `PartitionLog::last_offset_for_epoch`); None
    /// is Kafka's (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET).
    pub(crate) fn end_offset_for(
        &self,
        requested: LeaderEpoch,
        log_end_offset: i64,
    ) -> Option<(LeaderEpoch, i64)> {
        if requested.0 < 0 {
            return None;
        }
        if self.entries.last()?.epoch == requested {
            return Some((requested, log_end_offset));
        }
        let higher = self.entries.partition_point(|e| e.epoch <= requested);
        let next = self.entries.get(higher)?;
        let epoch = match higher {
            0 => requested,
            i => self.entries[i - 1].epoch,
        };
        Some((epoch, next.start_offset))
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(4 + self.entries.len() * 12);
        body.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        for e in &self.entries {
            body.extend_from_slice(&e.epoch.0.to_be_bytes());
            body.extend_from_slice(&e.start_offset.to_be_bytes());
        }
        framed::seal(MAGIC, VERSION, &body)
    }

    pub(crate) fn decode(file: &[u8]) -> Result<Self, String> {
        let mut r = framed::Reader::new(framed::open(MAGIC, VERSION, file)?);
        let n = r.count(12)?;
        let mut cache = EpochCache::default();
        for _ in 0..n {
            let epoch = LeaderEpoch(r.i32()?);
            let start_offset = r.i64()?;
            if !cache.assign(epoch, start_offset) {
                return Err("epochs not increasing".into());
            }
        }
        r.finish()?;
        Ok(cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_before_keeps_the_entry_covering_the_new_start() {
        let mut cache = EpochCache::default();
        for (epoch, offset) in [(1, 0), (3, 10), (4, 20)] {
            cache.assign(LeaderEpoch(epoch), offset);
        }
        assert!(!cache.truncate_before(0));
        assert!(cache.truncate_before(15));
        let got: Vec<_> = cache
            .entries
            .iter()
            .map(|e| (e.epoch.0, e.start_offset))
            .collect();
        assert_eq!(got, [(3, 15), (4, 20)]);
        assert!(cache.truncate_before(20));
        assert_eq!(cache.entries.len(), 1);
        assert!(!cache.truncate_before(20));
        assert_eq!(EpochCache::decode(&cache.encode()).unwrap(), cache);
    }

    #[test]
    fn end_offset_for_answers_as_kafka_does() {
        let mut cache = EpochCache::default();
        assert_eq!(cache.end_offset_for(LeaderEpoch(0), 0), None, "empty cache");
        for (epoch, offset) in [(2, 5), (4, 10), (7, 20)] {
            cache.assign(LeaderEpoch(epoch), offset);
        }
        let answer = |e| {
            cache
                .end_offset_for(LeaderEpoch(e), 30)
                .map(|(e, o)| (e.0, o))
        };
        assert_eq!(answer(-1), None, "undefined epoch");
        assert_eq!(
            answer(1),
            Some((1, 5)),
            "older than every entry: itself, first start"
        );
        assert_eq!(answer(2), Some((2, 10)));
        assert_eq!(
            answer(3),
            Some((2, 10)),
            "unknown epoch between two: the one below"
        );
        assert_eq!(answer(6), Some((4, 20)));
        assert_eq!(answer(7), Some((7, 30)), "latest: the log end");
        assert_eq!(answer(8), None, "newer than the latest");
    }
}
