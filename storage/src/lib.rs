//! Millrace's partition log: segments, sparse offset and time indexes, group commit over direct
//! I/O, crash recovery, leader-epoch checkpoint, idempotent-producer state, retention,
//! DeleteRecords, log compaction, and what a follower needs: appends that keep the leader's
//! offsets and epochs, tail truncation, a reset that empties the log and starts it at any
//! offset (installing a snapshot), and the OffsetForLeaderEpoch lookup.
//!
//! Storage knows two ends of a log: the *log end* (the offset the next append gets) and the
//! *durable end* (the log end of the last completed flush). It never knows the high
//! watermark, which replication owns: callers pass the bound a read must stay below (the high
//! watermark for consumers, the log end for followers) and how far retention and DeleteRecords
//! may delete.
//!
//! Everything here lives on the shard that owns the partition: types are `!Send`, shared state
//! is `Rc`/`RefCell`, and no borrow is held across an `.await`. I/O goes through the
//! [`disk::Disk`] trait, implemented over io_uring by the shard crate and in memory, with crash
//! and fault injection, by [`sim::SimDisk`].
//!
//! # On disk
//!
//! One directory per partition, Kafka's file names (offsets as 20 digits):
//!
//! ```text
//! <topic>-<partition>/
//!   00000000000000000000.log        record batches v2, exactly as produced (offsets and the
//!   00000000000000000000.index      leader epoch stamped in place); block-padded with zeros
//!   00000000000000000000.timeindex  sparse indexes + segment summary, written at roll and close
//!   00000000000000004211.log        the active segment: its indexes live in memory only
//!   00000000000000000000.txnindex   aborted transactions whose marker is in the segment
//!                                   (only when there are some; written with the indexes)
//!   00000000000000004211.snapshot   producer state below offset 4211 (at roll and close)
//!   00000000000000000000.log.cleaned  a compacted segment before its swap (removed at open)
//!   leader-epoch-checkpoint         epoch -> first offset
//!   log-start-offset-checkpoint     the log start DeleteRecords set (may be inside a segment)
//!   truncation-pending              the end a committed truncation cuts the log to
//!   reset-pending                   the offset a committed reset starts the empty log at
//!   clean-shutdown                  present only between close and the next open
//! ```
//!
//! Every file but `.log` is small, written atomically, and framed as
//! `magic | version | length | body | CRC-32C` (see `framed.rs`); a bad one is rebuilt from
//! the log. Body layouts are drawn where they are encoded: indexes in `segment.rs`, producer
//! snapshots in `producer.rs`, the aborted-transaction index in `txn_index.rs`, the
//! leader-epoch checkpoint in `epoch.rs`, the log-start
//! checkpoint in `retention.rs`, the truncation and reset markers in `truncate.rs`. Retention
//! and DeleteRecords are in `retention.rs`, log compaction and its crash-safe swap in
//! `compaction.rs`, tail truncation and the reset in `truncate.rs`. Any other name in the
//! directory belongs to the layer above (sealed files, `checkpoint.rs`): storage never
//! removes it.
//!
//! # Use
//!
//! ```
//! use futures_lite::future::block_on;
//! use millrace_storage::{sim::SimDisk, BatchCache, LogConfig, PartitionLog};
//! use millrace_wire::epoch::LeaderEpoch;
//! use millrace_wire::records::{BatchBuilder, NewRecord};
//!
//! let cache = BatchCache::new(64 << 20); // one per shard
//! let log = block_on(PartitionLog::open(SimDisk::default(), "/data/t-0".into(),
//!     LogConfig::default(), cache, 0)).unwrap();
//! let batch = BatchBuilder::default().build(&[NewRecord { value: Some(b"hi".to_vec()), ..Default::default() }]);
//! let out = log.append(batch.as_slice().into(), LeaderEpoch(0), 1_000, false).unwrap();
//! assert_eq!((out.base_offset, log.durable_end(), log.log_end_offset()), (0, 0, 1));
//! block_on(log.flush()).unwrap(); // group commit: write + fdatasync
//! // A consumer reads below the high watermark: on a single node, the durable end.
//! let read = block_on(log.read(0, 1 << 20, true, log.durable_end())).unwrap();
//! assert_eq!((read.durable_end, read.bytes), (1, batch.len()));
//! ```
//!
//! A follower appends the leader's batches as they are, answers OffsetForLeaderEpoch, and
//! cuts its log where it diverges from the leader's:
//!
//! ```
//! # use futures_lite::future::block_on;
//! # use millrace_storage::{sim::SimDisk, BatchCache, LogConfig, PartitionLog};
//! # use millrace_wire::epoch::LeaderEpoch;
//! # use millrace_wire::records::{set_base_offset, set_partition_leader_epoch, BatchBuilder, NewRecord};
//! let log = block_on(PartitionLog::open(SimDisk::default(), "/data/t-1".into(),
//!     LogConfig::default(), BatchCache::new(1 << 20), 0)).unwrap();
//! for (offset, epoch) in [(0, 1), (1, 1), (2, 3)] {
//!     let mut batch = BatchBuilder::default().build(&[NewRecord::default()]);
//!     set_base_offset(&mut batch, offset); // as the leader stamped it
//!     set_partition_leader_epoch(&mut batch, epoch);
//!     log.append_as_follower(batch.as_slice().into(), 0).unwrap();
//! }
//! assert_eq!(log.last_offset_for_epoch(LeaderEpoch(2)), Some((LeaderEpoch(1), 2)));
//! assert_eq!(log.last_offset_for_epoch(LeaderEpoch(3)), Some((LeaderEpoch(3), 3)));
//! assert_eq!(block_on(log.truncate_to(2, 0)).unwrap(), 2); // the leader's epoch 1 ended at 2
//! assert_eq!(log.last_offset_for_epoch(LeaderEpoch(3)), None);
//! // Installing the leader's snapshot, which ends at 100: the log starts over there.
//! block_on(log.reset_to(100, 0)).unwrap();
//! assert_eq!((log.log_start_offset(), log.durable_end(), log.log_end_offset()), (100, 100, 100));
//! assert!(log.epoch_entries().is_empty());
//! ```
//!
//! Retention, DeleteRecords and compaction are called by the broker's per-shard task:
//!
//! ```
//! # use futures_lite::future::block_on;
//! # use millrace_storage::{sim::SimDisk, BatchCache, LogConfig, NoThrottle, PartitionLog};
//! # use millrace_wire::epoch::LeaderEpoch;
//! # use millrace_wire::records::{BatchBuilder, NewRecord};
//! let config = LogConfig { cleanup_compact: true, segment_bytes: 100, ..LogConfig::default() };
//! let log = block_on(PartitionLog::open(SimDisk::default(), "/data/t-0".into(), config,
//!     BatchCache::new(1 << 20), 0)).unwrap();
//! for value in ["1", "2", "3"] {
//!     let record = NewRecord { key: Some(b"k".to_vec()), value: Some(value.into()), ..Default::default() };
//!     let batch = BatchBuilder::default().build(&[record]);
//!     log.append(batch.as_slice().into(), LeaderEpoch(0), 0, false).unwrap();
//!     block_on(log.flush()).unwrap();
//! }
//! // One record per segment: the clean covers the two closed ones and drops k=1.
//! let cleaned = block_on(log.clean(1_000, &NoThrottle)).unwrap();
//! assert_eq!((cleaned.records_removed, cleaned.cleaned_end_offset), (1, 2));
//! // Everything below the limit (the high watermark: here the durable end); the closed
//! // segments go at once.
//! assert_eq!(block_on(log.delete_records(-1, log.durable_end())).unwrap(), 3);
//! // The active segment is wholly below the start: retention rolls it and deletes it.
//! let out = block_on(log.enforce_retention(1_000, log.durable_end())).unwrap();
//! assert_eq!((out.segments_deleted, out.log_start_offset, log.log_end_offset()), (1, 3, 3));
//! ```
//!
//! # Invariants
//!
//! * Segments are contiguous: each starts where the previous one ends (its last batch ends
//!   at the next segment's base; compaction always keeps a segment's last batch, empty if
//!   need be). Inside a segment offsets increase but are dense only until it is cleaned:
//!   compaction drops records and whole batches and keeps the rest at their offsets, so a
//!   batch may hold fewer records than its offset span, or none. Every lookup (read, offset
//!   index, time index, recovery scan) takes the first batch ending at or after the offset.
//! * The log start offset is max(first segment's base, `log-start-offset-checkpoint`); it
//!   never moves back, also across restarts, except by a reset below it: DeleteRecords
//!   persists it before answering and before deleting, retention deletes segments only after
//!   the segment at the log end has a file, a reset writes it before its marker goes.
//! * Writes are block-aligned: the log keeps the partial last block of each segment in memory
//!   and rewrites it whole, zero-padded. A segment's logical size is tracked by the log (and
//!   recorded in its `.index`), never taken from the file length.
//! * Storage knows the log end and the durable end, never the high watermark. The durable end
//!   is the log end of the last completed flush (with `fsync`, everything below it is on
//!   disk); it never exceeds the log end and never moves back except by `truncate_to` and
//!   `reset_to` (a flush waiting for data they removed fails). Reads
//!   stop below the caller's bound; file reads also stop at the durable end (above it only
//!   the batch cache serves). Retention, DeleteRecords and compaction never delete or rewrite
//!   above the durable end, and retention and DeleteRecords not above the caller's limit.
//! * A truncation or a reset is committed by its marker file: recovery completes it, so a
//!   crash leaves the old log (at least its durable part) or the cut, or the empty log at the
//!   reset's offset, never a mix. The log never goes on while a marker it has not acted on is
//!   in its directory: a failed marker write is taken back, or the log closes. Follower
//!   appends must continue the log exactly at its end.
//! * A segment's indexes and the producer snapshot taken at its roll are written only after its
//!   data is synced, so a valid index never describes data that may be lost.
//! * Recovery trusts closed segments with a valid index, scans the rest (CRC included), cuts
//!   the log at the first torn or corrupt batch and drops every later segment. A segment is
//!   replaced by its cleaned version with one rename, after its old index files are removed:
//!   a crash leaves the old or the new content, never a mix.
//! * The batch cache never serves bytes of a segment that was cleaned or deleted: their
//!   batches are forgotten at the swap or deletion.
//! * Memory is bounded by configuration: the batch cache by its limit, unwritten bytes by
//!   `pending_bytes_max`, producer state by expiration and five batches per producer.
#![forbid(unsafe_code)]

mod cache;
mod checkpoint;
mod compaction;
pub mod disk;
mod epoch;
mod error;
mod foreground;
mod framed;
mod log;
mod producer;
mod recovery;
mod retention;
mod segment;
pub mod sim;
mod truncate;
mod txn_index;

pub use cache::{BatchCache, SharedBuffer};
pub use checkpoint::REPLICATION_CHECKPOINT;
pub use compaction::{CleanOutcome, NoThrottle, Throttle, IO_BYTES, MAP_ENTRY_BYTES};
pub use error::StorageError;
pub use foreground::foreground_io_started;
pub use log::{
    AppendOutcome, LogConfig, PartitionLog, ProducerInfo, ReadChunk, ReadResult,
    PREPARE_AHEAD_DEFAULT,
};
pub use retention::RetentionOutcome;
pub use txn_index::AbortedTxn;
