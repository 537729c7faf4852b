//! Leader epochs, as the record batch header carries them.
//!
//! Every batch a leader appends has its `partition_leader_epoch` header field stamped with the
//! leader's epoch, so the epoch is part of the stored bytes: storage keeps a leader-epoch cache
//! (epoch → first offset) built from them, replication fences stale leaders with them, and
//! followers find where their log diverges from the leader's with them (KIP-101, KIP-279).
//! The types live here, beside the batch codec, so that storage and replication share them
//! without depending on each other.
//!
//! ```
//! use millrace_wire::epoch::{EpochEntry, LeaderEpoch};
//!
//! let entry = EpochEntry { epoch: LeaderEpoch(3), start_offset: 42 };
//! assert!(entry.epoch > LeaderEpoch::INITIAL);
//! assert_eq!(LeaderEpoch::UNKNOWN.0, -1);
//! ```

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
