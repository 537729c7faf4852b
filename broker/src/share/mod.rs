//! Share groups (KIP-932, "queues for Kafka"): the per-partition delivery state machine and
//! its durable form, sans-I/O. One [`SharePartition`] exists per (share group, topic-partition)
//! on the shard that leads the partition; ShareFetch acquires records from it, ShareAcknowledge
//! acknowledges them, a departing member's records are released, a timer expires locks, and
//! every change that must survive a crash comes out of [`SharePartition::take_write`] as a
//! `__share_group_state` record ([`record`]). Time only moves through `now_ms` arguments.
//!
//! The in-flight window runs from the share-partition start offset (SPSO, [`start_offset`]) to
//! the end of what has been acquired ([`end_offset`], exclusive; Kafka's SPEO is its last
//! offset). Every offset in the window is in one of four states:
//!
//! ```text
//!                       acquire: delivery count + 1, locked until now + lock duration
//!   new offset ──► Available ──────────────────────────────────► Acquired (one member)
//!   (past SPEO)     │   ▲                                           │   │   │
//!                   │   └── RELEASE, lock expiry, member leaves ────┘   │   │ ACCEPT
//!                   │       (delivery count below the limit)            │   v
//!   a read shows it │                                                   │  Acknowledged
//!   is not in the   v                                                   │
//!   log any more   Archived ◄── REJECT, GAP; or a release at the limit ─┘
//!
//!   Acknowledged and Archived are terminal: once every offset before them is too, the SPSO
//!   moves past them and their state is dropped. The log start moving drops all state below
//!   it, whatever it was.
//! ```
//!
//! The state is kept as ranges of equal state (split where an operation's offsets begin or
//! end, merged when neighbours become equal), so a batch of 100k records acquired, locked and
//! acknowledged whole costs one range, not 100k.
//!
//! Durability: an acknowledgement changes the state at once (an accepted record is never handed
//! out again by this incarnation), but the handler answers the client only once the write that
//! carries it is durable: [`SharePartition::acknowledge`] returns the [`WriteSeq`] of that write.
//! Acquisitions are never written (as in Kafka): after a crash a record that was locked is
//! Available again with the delivery count of its last persisted release, one lower than the
//! lost delivery made it. Answered ACCEPT/REJECT/GAP outcomes are never lost.
//!
//! Choices, and where they follow Kafka (`SharePartition.java`, KIP-932):
//! * a partition's acknowledgement is all or nothing, as Kafka rolls back every batch of a
//!   partition when one fails; offsets below the SPSO are skipped, offsets past the window are
//!   INVALID_REQUEST, offsets not held by the member under a live lock INVALID_RECORD_STATE;
//! * `max_records` is soft and new records are limited by `partition_max_record_locks`, both
//!   rounded up to the end of a record batch, as Kafka acquires whole batches;
//! * Kafka keeps a state change pending until its write succeeds and rolls it back if the
//!   write fails; here it applies at once, so a failed write must end this incarnation (the
//!   shard stops leading the partition and rebuilds it from the log with
//!   [`SharePartition::recover`]), never carry on with state that may not be durable;
//! * on recovery, offsets inside the persisted window that no record mentions were never
//!   released or acknowledged: they are Available with delivery count 0 (Kafka's
//!   `InitialReadGapOffset` likewise hands such gaps out as new records).
//!
//! Lives on the shard that leads the topic-partition (`Rc`, not `Send`).
//!
//! [`SharePartition`]: partition::SharePartition
//! [`SharePartition::take_write`]: partition::SharePartition::take_write
//! [`SharePartition::acknowledge`]: partition::SharePartition::acknowledge
//! [`SharePartition::recover`]: partition::SharePartition::recover
//! [`start_offset`]: partition::SharePartition::start_offset
//! [`end_offset`]: partition::SharePartition::end_offset

#[cfg(test)]
mod model_tests;
pub mod partition;
pub mod record;
#[cfg(test)]
mod record_tests;
pub mod session;
#[cfg(test)]
mod tests;

use millrace_wire::codes as code;

/// Limits and timers of share partitions (Kafka's names; a group may override the lock
/// duration and delivery limit with `share.record.lock.duration.ms` /
/// `share.delivery.count.limit`, which the caller resolves into this struct).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareConfig {
    /// `group.share.record.lock.duration.ms` (default 30000; Kafka bounds 1000..=3600000).
    pub record_lock_duration_ms: i64,
    /// `group.share.delivery.count.limit` (default 5; Kafka bounds 2..=10): a record released
    /// after this many deliveries is archived instead of made available again.
    pub delivery_count_limit: u16,
    /// `group.share.partition.max.record.locks` (default 2000; Kafka bounds 100..=10000): the
    /// in-flight window (SPSO..SPEO) stops taking new records at this size.
    pub partition_max_record_locks: u32,
    /// `share.coordinator.snapshot.update.records.per.snapshot` (default 500): after this many
    /// update records the next write is a full snapshot.
    pub snapshot_update_records_per_snapshot: u32,
}

impl Default for ShareConfig {
    fn default() -> Self {
        ShareConfig {
            record_lock_duration_ms: 30_000,
            delivery_count_limit: 5,
            partition_max_record_locks: 2_000,
            snapshot_update_records_per_snapshot: 500,
        }
    }
}

/// ShareAcknowledge's AcknowledgeTypes values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcknowledgeType {
    /// 0: the offset is not a record (compaction or a transaction marker): archived.
    Gap,
    /// 1: processed: acknowledged.
    Accept,
    /// 2: give it back for another delivery: available (archived at the delivery limit).
    Release,
    /// 3: unprocessable: archived.
    Reject,
    /// 4 (KIP-1222, ShareFetch/ShareAcknowledge v2): still being processed: the member keeps
    /// the record and its lock starts again.
    Renew,
}

impl AcknowledgeType {
    /// The type for a wire value; None if it is not one.
    pub fn from_wire(value: i8) -> Option<Self> {
        match value {
            0 => Some(AcknowledgeType::Gap),
            1 => Some(AcknowledgeType::Accept),
            2 => Some(AcknowledgeType::Release),
            3 => Some(AcknowledgeType::Reject),
            4 => Some(AcknowledgeType::Renew),
            _ => None,
        }
    }
}

/// Sequence number of a [`record::StateWrite`] (1, 2, ... per `SharePartition` incarnation). A
/// ShareAcknowledge may be answered once every write up to its `WriteSeq` is durable; 0 means
/// no write is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WriteSeq(pub u64);

/// Why a share-partition operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    /// The request is malformed (ranges reversed or overlapping, bad type list).
    #[error("invalid acknowledgement: {reason}")]
    InvalidRequest {
        /// What is wrong.
        reason: &'static str,
    },
    /// An offset is not acquired by this member under an unexpired lock.
    #[error("offset {offset} is not acquired by this member: {reason}")]
    InvalidRecordState {
        /// The first offending offset.
        offset: i64,
        /// Its state.
        reason: &'static str,
    },
    #[cfg_attr(not(test), allow(dead_code))]
    /// The start offset cannot be reset while members hold records.
    #[error("{acquired} records are still acquired")]
    RecordsAcquired {
        /// How many offsets are locked.
        acquired: u64,
    },
    /// A persisted state record does not describe a valid state.
    #[error("invalid persisted share state: {reason}")]
    InvalidState {
        /// What is wrong.
        reason: &'static str,
    },
}

impl ShareError {
    /// The Kafka error code for the response (exhaustive: a new variant must be mapped).
    pub fn code(&self) -> i16 {
        match self {
            ShareError::InvalidRequest { .. } => code::INVALID_REQUEST,
            ShareError::InvalidRecordState { .. } => code::INVALID_RECORD_STATE,
            ShareError::RecordsAcquired { .. } => code::NON_EMPTY_GROUP,
            ShareError::InvalidState { .. } => code::UNKNOWN_SERVER_ERROR,
        }
    }
}
