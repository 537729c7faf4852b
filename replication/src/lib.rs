//! Replication state for Millrace, as sans-I/O state machines driven by the shard runtime.
//!
//! Today Millrace runs as a single node: every partition has one replica, the broker itself, and
//! the high watermark equals the durable log end offset. The types here are the ones storage
//! needs from the start so that replication (ISR, follower fetch, leader-epoch fencing and
//! truncation) and the controller quorum can arrive later without a storage format change:
//!
//! * [`LeaderEpoch`]: stamped into every record batch the leader appends (the batch header's
//!   `partition_leader_epoch` field) and recorded in each partition's leader-epoch checkpoint.
//! * [`EpochEntry`]: one line of that checkpoint, the first offset written in an epoch.
//! * [`HighWatermark`]: the offset below which records are committed and visible to consumers.
//!
//! [`metadata`] holds the cluster metadata as KRaft shapes it: records (topics, partitions with
//! replicas / ISR / leader / epochs, configs, producer-id blocks) appended to a Kafka log and
//! applied in order to a [`metadata::ClusterImage`], with image snapshots and the migration
//! from the old whole-file image. Invariants: applying is deterministic and the only way an
//! image changes; every decoder here takes untrusted bytes and returns [`ReplicationError`]
//! rather than panicking or allocating from a declared length.
//!
//! Types in this crate are plain values. Partition types live on the shard that owns the
//! partition; the metadata log and image live on the controller's shard (today shard 0), and
//! other shards hold read-only copies of the image.
#![forbid(unsafe_code)]

mod error;
pub mod metadata;

pub use error::ReplicationError;

/// A partition leader epoch, as Kafka numbers them: starts at 0, grows by one at every leader
/// change. `-1` on the wire means "unknown" (Kafka's `RecordBatch.NO_PARTITION_LEADER_EPOCH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeaderEpoch(pub i32);

impl LeaderEpoch {
    /// The epoch a single-node broker leads every partition with.
    pub const INITIAL: LeaderEpoch = LeaderEpoch(0);
    /// Kafka's wire value for "no epoch known".
    pub const UNKNOWN: LeaderEpoch = LeaderEpoch(-1);
}

/// The first offset a leader epoch wrote: the unit of the leader-epoch checkpoint, used by
/// followers to find where their log diverges from the leader's (KIP-101).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: LeaderEpoch,
    /// The first offset appended under that epoch.
    pub start_offset: i64,
}

/// The high watermark of a partition: records at offsets below it are committed (durable on
/// every in-sync replica; on a single node, fsync'd) and may be returned to consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct HighWatermark(pub i64);

impl HighWatermark {
    /// Advance to `offset` if it is ahead; the high watermark never moves back on a leader.
    pub fn advance_to(&mut self, offset: i64) -> bool {
        if offset > self.0 {
            self.0 = offset;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn high_watermark_only_moves_forward() {
        let mut hw = HighWatermark(10);
        assert!(!hw.advance_to(5));
        assert_eq!(hw.0, 10);
        assert!(hw.advance_to(12));
        assert_eq!(hw.0, 12);
    }
}
