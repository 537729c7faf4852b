//! Replication state for Millrace, as sans-I/O state machines driven by the shard runtime.
//!
//! Today Millrace runs as a single node: every partition has one replica, the broker itself, and
//! the high watermark equals the durable log end offset. This crate owns the high watermark:
//! storage knows only a log's end and its durable end, and the caller (the partition replica)
//! decides how far consumers may read and how far retention may delete.
//!
//! * [`HighWatermark`]: the offset below which records are committed and visible to consumers.
//! * [`LeaderEpoch`] and [`EpochEntry`], re-exported from `millrace_wire::epoch`: the epoch is a
//!   field of every record batch header, so the type lives with the batch codec, where storage
//!   (its leader-epoch cache) and replication (fencing, truncation) both reach it.
//!
//! [`metadata`] holds the cluster metadata as KRaft shapes it: records (topics, partitions with
//! replicas / ISR / leader / epochs, configs, producer-id blocks) appended to a Kafka log and
//! applied in order to a [`metadata::ClusterImage`], with image snapshots and the migration
//! from the old whole-file image. Invariants: applying is deterministic and the only way an
//! image changes; every decoder here takes untrusted bytes and returns [`ReplicationError`]
//! rather than panicking or allocating from a declared length.
//!
//! [`quorum`] replicates that metadata log with Raft (raft-rs): a sans-I/O driver, the Raft log
//! as the metadata log's batches, the hard-state file and a bounded codec for Raft messages.
//!
//! Types in this crate are plain values. Partition types live on the shard that owns the
//! partition; the metadata log and image live on the controller's shard (today shard 0), and
//! other shards hold read-only copies of the image.
#![forbid(unsafe_code)]

mod error;
pub mod follow;
pub mod history;
pub mod metadata;
pub mod quorum;
pub mod replica;

pub use error::ReplicationError;

pub use millrace_wire::epoch::{EpochEntry, LeaderEpoch};

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
