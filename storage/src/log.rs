//! The partition log: append, group commit, reads, time lookup. Recovery lives in
//! [`crate::recovery`].

use crate::cache::{BatchCache, SharedBuffer};
use crate::disk::{Disk, DiskFile};
use crate::epoch::{self, EpochCache};
use crate::error::io_err;
use crate::producer::{Check, ProducerState};
use crate::segment::{file_name, Segment};
use crate::txn_index::{self, AbortedTxn};
use crate::StorageError;
use bytes::{Bytes, BytesMut};
use millrace_wire::epoch::{EpochEntry, LeaderEpoch};
use millrace_wire::records::{
    build_txn_marker, decode_records, set_base_offset, set_partition_leader_epoch,
    stamp_log_append_time, txn_marker, validate_stored_batch, BatchHeader, BatchIter, BatchStep,
    TxnMarker, BATCH_HEADER_BYTES,
};
use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::task::{Poll, Waker};

/// Per-partition settings, with Kafka's names where they mean the same thing.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `log.segment.bytes`: a batch that would take the active segment past this starts a new one.
    pub segment_bytes: u64,
    /// `log.roll.ms`: the active segment rolls once its first batch is this old.
    pub segment_ms: i64,
    /// `log.index.interval.bytes`: bytes between two sparse index entries.
    pub index_interval_bytes: u32,
    /// True: every group commit ends with fdatasync (the default). False: Kafka's own default,
    /// data reaches the device when the OS writes it (segments are still synced at roll).
    pub fsync: bool,
    /// Bytes appended and not yet written that `append` accepts before answering
    /// [`StorageError::BufferFull`].
    pub pending_bytes_max: usize,
    /// `producer.id.expiration.ms`: producer state idle this long is dropped at the next roll.
    pub producer_id_expiration_ms: i64,
    /// Bound on a batch's decompressed size when the log decodes one (`offset_for_timestamp`,
    /// the null-key check of a compacted log, the cleaner).
    pub decode_bytes_max: usize,
    /// `retention.ms`: closed segments whose newest record is older than this are deleted
    /// (-1: unlimited).
    pub retention_ms: i64,
    /// `retention.bytes`: the oldest segments are deleted while the log stays at least this
    /// big without them (-1: unlimited).
    pub retention_bytes: i64,
    /// `cleanup.policy` contains `delete`: [`PartitionLog::enforce_retention`] applies.
    pub cleanup_delete: bool,
    /// `cleanup.policy` contains `compact`: [`PartitionLog::clean`] applies and appended
    /// records must have a key.
    pub cleanup_compact: bool,
    /// `min.compaction.lag.ms`: a segment is cleaned only once its newest record is this old.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a dirty segment whose oldest record is this old is cleaned
    /// whatever the dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// `delete.retention.ms`: how long a tombstone stays readable (see `compaction.rs`).
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`: [`PartitionLog::clean`] skips a log whose dirty share of
    /// the cleanable bytes is below this.
    pub min_cleanable_dirty_ratio: f64,
    /// `log.cleaner.dedupe.buffer.size`: bound on the cleaner's key map (key bytes plus a
    /// fixed cost per key); a clean covers only the segments whose keys fit.
    pub cleaner_dedupe_buffer_bytes: usize,
    /// `millrace.log.prepare.ahead.bytes`: how far past the data a flush round writes zeros
    /// into the active segment's file, so later rounds overwrite written blocks inside the
    /// file's size (see [`PREPARE_STEP_MIN`]); 0 turns it off.
    pub prepare_ahead_bytes: u64,
    /// `millrace.log.cache.written`: after each flush round, advise the system to read what
    /// it wrote back into the page cache (writes go around it), so that consumers catching
    /// up on recent data read memory, as from a broker that writes through the page cache.
    pub cache_written: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            fsync: true,
            pending_bytes_max: 64 << 20,
            producer_id_expiration_ms: 24 * 3600 * 1000,
            decode_bytes_max: 64 << 20,
            retention_ms: -1,
            retention_bytes: -1,
            cleanup_delete: true,
            cleanup_compact: false,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            delete_retention_ms: 86_400_000,
            min_cleanable_dirty_ratio: 0.5,
            cleaner_dedupe_buffer_bytes: 128 << 20,
            prepare_ahead_bytes: PREPARE_AHEAD_DEFAULT,
            cache_written: false,
        }
    }
}

/// The default of [`LogConfig::prepare_ahead_bytes`].
pub const PREPARE_AHEAD_DEFAULT: u64 = 1 << 20;

/// The smallest step a round zeroes ahead. Steps then grow with the segment (a step is as
/// big as the segment's data so far, up to [`LogConfig::prepare_ahead_bytes`]), so a
/// partition that sees little traffic keeps little zeroed space.
///
/// Why: a direct write into blocks that are already written and inside the file's size is
/// an overwrite. ext4 and XFS complete it inline in io_uring, and the fdatasync after it has
/// no inode to write, because neither the size nor the extent map changed. An appending
/// write goes to an io_uring worker, and its fdatasync writes the inode too. Zeroes written
/// ahead turn appends into overwrites. fallocate alone does not: unwritten extents must
/// still be converted, and that conversion is an inode update at fdatasync.
pub const PREPARE_STEP_MIN: u64 = 64 << 10;

impl LogConfig {
    /// Checks the values at start-up.
    pub fn validate(&self) -> Result<(), StorageError> {
        let bad = |reason| Err(StorageError::InvalidConfig { reason });
        if self.segment_bytes < BATCH_HEADER_BYTES as u64 || self.segment_bytes > i32::MAX as u64 {
            return bad("segment_bytes must be between 61 and 2^31-1 (index positions are 32-bit)");
        }
        if self.segment_ms <= 0 || self.producer_id_expiration_ms <= 0 {
            return bad("segment_ms and producer_id_expiration_ms must be positive");
        }
        if self.index_interval_bytes == 0 || self.pending_bytes_max == 0 {
            return bad("index_interval_bytes and pending_bytes_max must be positive");
        }
        if self.retention_ms < -1 || self.retention_bytes < -1 {
            return bad("retention_ms and retention_bytes must be -1 (unlimited) or at least 0");
        }
        if self.min_compaction_lag_ms < 0 || self.delete_retention_ms < 0 {
            return bad("min_compaction_lag_ms and delete_retention_ms must not be negative");
        }
        if self.max_compaction_lag_ms < 1 || self.max_compaction_lag_ms < self.min_compaction_lag_ms
        {
            return bad(
                "max_compaction_lag_ms must be positive and at least min_compaction_lag_ms",
            );
        }
        if !(0.0..=1.0).contains(&self.min_cleanable_dirty_ratio) {
            return bad("min_cleanable_dirty_ratio must be between 0 and 1");
        }
        if self.prepare_ahead_bytes > 1 << 30 {
            return bad("prepare_ahead_bytes must be at most 1 GiB");
        }
        if self.cleaner_dedupe_buffer_bytes == 0 || self.decode_bytes_max == 0 {
            return bad("cleaner_dedupe_buffer_bytes and decode_bytes_max must be positive");
        }
        Ok(())
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Offset of the first record appended (or of the original, for a duplicate).
    pub base_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
    /// The broker time stamped under LogAppendTime, else -1.
    pub log_append_time_ms: i64,
    /// True when the batch was a producer retry already in the log: nothing was appended.
    pub duplicate: bool,
}

/// A piece of a read: bytes in memory, or a range of a segment file to send from disk.
#[derive(Debug)]
pub enum ReadChunk<F> {
    /// Whole batches from the batch cache.
    Memory(Bytes),
    /// Whole batches at `position..position + len` of a segment file.
    File {
        /// The segment file.
        file: Rc<F>,
        /// Byte position in it.
        position: u64,
        /// Length in bytes.
        len: u32,
    },
}

/// The result of [`PartitionLog::read`].
#[derive(Debug)]
pub struct ReadResult<F> {
    /// Whole batches, in offset order.
    pub chunks: Vec<ReadChunk<F>>,
    /// Total bytes of `chunks`.
    pub bytes: usize,
    /// The durable end when the read was made (see [`PartitionLog::durable_end`]).
    pub durable_end: i64,
    /// The log start offset when the read was made.
    pub log_start_offset: i64,
    /// The offset after the last batch returned (the offset asked for when none): with the
    /// offset asked for, the range a read_committed fetch reports aborted transactions for.
    pub next_offset: i64,
}

/// A read of one segment: the chunk, its length, whether it reaches the segment's durable end,
/// the offset after its last batch.
type SegmentRead<F> = (ReadChunk<F>, usize, bool, i64);

/// A segment's index files: base offset, `.index`, `.timeindex`, `.txnindex` (None: none).
type IndexFiles = (i64, Vec<u8>, Vec<u8>, Option<Vec<u8>>);

/// One producer's state on a partition, as DescribeProducers reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerInfo {
    /// The producer id.
    pub producer_id: i64,
    /// Its newest epoch.
    pub producer_epoch: i16,
    /// The last sequence appended, -1 when none.
    pub last_sequence: i32,
    /// Max timestamp of its last batch, -1 when unknown.
    pub last_timestamp: i64,
    /// Coordinator epoch of its last marker, -1 before any.
    pub coordinator_epoch: i32,
    /// First offset of its open transaction here, -1 when none.
    pub current_txn_start_offset: i64,
}

/// One partition's log on one shard. Methods take `&self`: the broker holds it in an `Rc` and
/// calls it from several tasks; no `RefCell` borrow is held across an `.await`.
pub struct PartitionLog<D: Disk> {
    pub(crate) disk: D,
    pub(crate) dir: PathBuf,
    pub(crate) config: RefCell<LogConfig>,
    pub(crate) cache: Rc<BatchCache>,
    pub(crate) cache_id: u64,
    pub(crate) state: RefCell<State<D::File>>,
    pub(crate) gate: FlushGate,
    /// Serialises retention and DeleteRecords (each changes the log start and deletes files).
    pub(crate) maintenance: AsyncLock,
    /// Held while a clean runs (a second one returns at once) and by `truncate_to` and
    /// `reset_to`.
    pub(crate) cleaning: AsyncLock,
    /// True while `truncate_to` or `reset_to` runs: appends are refused.
    pub(crate) truncating: Cell<bool>,
    /// Resets committed since the log was opened: a flush that waited across one fails.
    pub(crate) resets: Cell<u64>,
}

pub(crate) struct State<F> {
    /// Sorted by base offset, contiguous; the last one is active.
    pub segments: Vec<Segment<F>>,
    pub log_start_offset: i64,
    /// The log end of the last completed flush round; never above the log end, never
    /// decreasing but by `truncate_to` and `reset_to`.
    pub durable_end: i64,
    pub producers: ProducerState,
    /// Every aborted transaction whose marker is in the log, by marker offset (`txn_index.rs`).
    pub aborted: Vec<AbortedTxn>,
    pub epochs: EpochCache,
    /// Bumped at every epoch change; the checkpoint is current when it equals `epochs_written`.
    pub epochs_version: u64,
    pub epochs_written: u64,
    /// Producer snapshots taken at rolls: (offset, file bytes), written once that offset is
    /// durable.
    pub pending_snapshots: Vec<(i64, Vec<u8>)>,
    /// Largest batch max_timestamp appended, with its batch's last offset.
    pub appended_max_timestamp: Option<(i64, i64)>,
    /// The same, as of the durable end.
    pub durable_max_timestamp: Option<(i64, i64)>,
    /// Bytes appended and not yet written.
    pub unwritten_bytes: usize,
    /// Tails written by earlier rounds, emptied, kept for the next rounds' fresh tails (at
    /// most `SPARE_TAILS`, none larger than `SPARE_TAIL_CAPACITY_MAX`), so a busy log does not
    /// allocate and fault in a buffer per round.
    pub spare_tails: Vec<Vec<u8>>,
    /// The cleaner's progress: offsets below it were cleaned since the log was opened.
    pub first_dirty_offset: i64,
    pub closed: bool,
}

/// Group-commit coordination: one flush round at a time; callers arriving during a round wait
/// for its end and then start (or join) the next.
#[derive(Default)]
pub(crate) struct FlushGate {
    running: Cell<bool>,
    generation: Cell<u64>,
    waiters: RefCell<Vec<Waker>>,
}

/// A lock for the log's maintenance tasks (no `RefCell` borrow is held while waiting).
#[derive(Default)]
pub(crate) struct AsyncLock {
    held: Cell<bool>,
    waiters: RefCell<Vec<Waker>>,
}

/// Releases an [`AsyncLock`] when dropped (also when its future is dropped mid-way).
pub(crate) struct AsyncLockGuard<'a>(&'a AsyncLock);

impl AsyncLock {
    /// The lock if it is free now.
    pub(crate) fn try_lock(&self) -> Option<AsyncLockGuard<'_>> {
        (!self.held.replace(true)).then_some(AsyncLockGuard(self))
    }

    pub(crate) async fn lock(&self) -> AsyncLockGuard<'_> {
        std::future::poll_fn(|cx| {
            if self.held.get() {
                self.waiters.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            } else {
                self.held.set(true);
                Poll::Ready(())
            }
        })
        .await;
        AsyncLockGuard(self)
    }
}

impl Drop for AsyncLockGuard<'_> {
    fn drop(&mut self) {
        self.0.held.set(false);
        for waker in self.0.waiters.take() {
            waker.wake();
        }
    }
}

/// Marks the end of a round (also when its future is dropped) and wakes the waiters.
pub(crate) struct RoundGuard<'a>(&'a FlushGate);

impl FlushGate {
    /// Waits until no round runs and keeps others from starting until the guard drops
    /// (`truncate_to` runs its own rounds under it).
    pub(crate) async fn hold(&self) -> RoundGuard<'_> {
        loop {
            if !self.running.get() {
                self.running.set(true);
                return RoundGuard(self);
            }
            let generation = self.generation.get();
            std::future::poll_fn(|cx| {
                if self.generation.get() != generation {
                    Poll::Ready(())
                } else {
                    self.waiters.borrow_mut().push(cx.waker().clone());
                    Poll::Pending
                }
            })
            .await;
        }
    }
}

impl Drop for RoundGuard<'_> {
    fn drop(&mut self) {
        self.0.running.set(false);
        self.0.generation.set(self.0.generation.get() + 1);
        for waker in self.0.waiters.take() {
            waker.wake();
        }
    }
}

impl<D: Disk> PartitionLog<D> {
    /// The first offset of the log.
    pub fn log_start_offset(&self) -> i64 {
        self.state.borrow().log_start_offset
    }

    /// The offset the next appended record gets.
    pub fn log_end_offset(&self) -> i64 {
        self.state.borrow().log_end_offset()
    }

    /// The log end offset of the last completed flush: with `fsync`, everything below it is
    /// on disk (without, written to the OS). Never above the log end; it moves back only when
    /// [`PartitionLog::truncate_to`] cuts below it or [`PartitionLog::reset_to`] starts the
    /// log below it. On a single node it is also the high
    /// watermark, which storage does not know: callers bound reads and deletions with it.
    pub fn durable_end(&self) -> i64 {
        self.state.borrow().durable_end
    }

    /// The bytes of batches the log holds (Kafka's `Log.size`): what retention by size
    /// counts.
    pub fn size_in_bytes(&self) -> u64 {
        self.state
            .borrow()
            .segments
            .iter()
            .map(|s| s.index.size)
            .sum()
    }

    /// The largest batch timestamp below the durable end and its batch's last offset
    /// (ListOffsets MAX_TIMESTAMP, at batch granularity).
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        self.state.borrow().durable_max_timestamp
    }

    /// The leader-epoch entries (epoch, first offset), oldest first.
    pub fn epoch_entries(&self) -> Vec<EpochEntry> {
        self.state.borrow().epochs.entries.clone()
    }

    /// The latest leader-epoch entry (the epoch of the last batch and where it began), if
    /// any: what a follower fetch reads on every round, without copying the whole cache.
    pub fn last_epoch_entry(&self) -> Option<EpochEntry> {
        self.state.borrow().epochs.entries.last().copied()
    }

    /// Kafka's OffsetForLeaderEpoch answer from the leader-epoch cache: the largest epoch at
    /// or below `epoch` with the offset where it ends (the first offset of the next epoch, or
    /// the log end offset for the latest one). As in Kafka, an epoch older than every entry
    /// answers itself with the first entry's start offset (the log before it is gone), and
    /// None stands for Kafka's UNDEFINED_EPOCH answer (-1, -1): an unknown (negative) epoch,
    /// an epoch newer than the latest, or an empty cache.
    pub fn last_offset_for_epoch(&self, epoch: LeaderEpoch) -> Option<(LeaderEpoch, i64)> {
        let st = self.state.borrow();
        st.epochs.end_offset_for(epoch, st.log_end_offset())
    }

    /// The partition's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The settings in force.
    pub fn config(&self) -> LogConfig {
        self.config.borrow().clone()
    }

    /// Validates and applies new settings at once: segment size and age take effect at the
    /// next roll decision, retention and compaction settings at the next
    /// [`PartitionLog::enforce_retention`] or [`PartitionLog::clean`], the null-key rule of a
    /// compacted log at the next append.
    pub fn set_config(&self, config: LogConfig) -> Result<(), StorageError> {
        config.validate()?;
        *self.config.borrow_mut() = config;
        Ok(())
    }

    /// Appends one or more validated v2 batches: checks idempotent-producer sequences, assigns
    /// offsets, stamps `leader_epoch` (and the append time if `log_append_time`), buffers the
    /// bytes for the next flush and caches them. All batches are appended or none.
    pub fn append(
        &self,
        mut records: BytesMut,
        leader_epoch: LeaderEpoch,
        now_ms: i64,
        log_append_time: bool,
    ) -> Result<AppendOutcome, StorageError> {
        self.append_in_place(&mut records, None, leader_epoch, now_ms, log_append_time)
    }

    /// [`PartitionLog::append`], stamping `records` where they are, so that the cache holds
    /// slices of them: once appended they are taken (`records` is left empty); a duplicate's,
    /// or on an error, they are as they were (for a retry). `shared` is the buffer they are a slice of when other
    /// batches (of other partitions) are slices of it too: the cache charges it whole.
    pub fn append_in_place(
        &self,
        records: &mut BytesMut,
        shared: Option<&Rc<SharedBuffer>>,
        leader_epoch: LeaderEpoch,
        now_ms: i64,
        log_append_time: bool,
    ) -> Result<AppendOutcome, StorageError> {
        let mut st = self.state.borrow_mut();
        self.check_appendable(&st)?;
        let mut headers = parse_batches(records)?;
        if headers.iter().any(|(_, h)| h.is_control()) {
            return Err(StorageError::InvalidRecord {
                reason: "control batches are written by the broker only".into(),
            });
        }
        let (compact, decode_bytes_max) = {
            let c = self.config.borrow();
            (c.cleanup_compact, c.decode_bytes_max)
        };
        if compact {
            check_keys(records, &headers, decode_bytes_max)?;
        }
        self.check_pending(&st, records.len())?;
        if let Some(duplicate) = check_producers(&st.producers, &mut headers, st.log_end_offset())?
        {
            return Ok(duplicate);
        }
        for (position, h) in &mut headers {
            let batch = &mut records[*position..*position + h.total_bytes()];
            set_base_offset(batch, h.base_offset);
            set_partition_leader_epoch(batch, leader_epoch.0);
            h.partition_leader_epoch = leader_epoch.0;
            if log_append_time {
                stamp_log_append_time(batch, now_ms);
                h.max_timestamp = now_ms;
                h.attributes |= 0x08;
            }
        }
        // Nothing can fail from here on: the stamped bytes are taken.
        let records = std::mem::take(records).freeze();
        for (position, h) in &headers {
            let bytes = records.slice(*position..*position + h.total_bytes());
            self.append_one(&mut st, h, bytes, leader_epoch, now_ms, shared);
        }
        let (first, last) = (headers[0].1, headers[headers.len() - 1].1);
        Ok(AppendOutcome {
            base_offset: first.base_offset,
            last_offset: last.last_offset(),
            log_append_time_ms: if log_append_time { now_ms } else { -1 },
            duplicate: false,
        })
    }

    /// Appends batches a leader wrote, as they are: their offsets (the first must be the log
    /// end, each next one where the previous ends, else
    /// [`StorageError::UnexpectedAppendOffset`]), their partition leader epochs (recorded in
    /// the leader-epoch cache; an epoch below the latest is not) and their timestamps. Each
    /// batch's CRC is checked; producer state is updated without sequence checks (the leader
    /// decided) and the batches are cached and buffered as by [`PartitionLog::append`]. All
    /// batches are appended or none.
    pub fn append_as_follower(
        &self,
        records: BytesMut,
        now_ms: i64,
    ) -> Result<AppendOutcome, StorageError> {
        let mut st = self.state.borrow_mut();
        self.check_appendable(&st)?;
        let headers = parse_batches(&records)?;
        let mut expected = st.log_end_offset();
        for (position, h) in &headers {
            let batch = &records[*position..*position + h.total_bytes()];
            validate_stored_batch(batch).map_err(|reason| StorageError::InvalidRecords {
                position: *position,
                reason,
            })?;
            if h.base_offset != expected {
                return Err(StorageError::UnexpectedAppendOffset {
                    expected,
                    received: h.base_offset,
                });
            }
            expected = h.next_offset();
        }
        self.check_pending(&st, records.len())?;
        let records = records.freeze();
        for (position, h) in &headers {
            let bytes = records.slice(*position..*position + h.total_bytes());
            let epoch = LeaderEpoch(h.partition_leader_epoch);
            self.append_one(&mut st, h, bytes, epoch, now_ms, None);
        }
        let (first, last) = (headers[0].1, headers[headers.len() - 1].1);
        Ok(AppendOutcome {
            base_offset: first.base_offset,
            last_offset: last.last_offset(),
            log_append_time_ms: -1,
            duplicate: false,
        })
    }

    /// Appends a transaction marker (a control batch) for `producer_id`, as the partition
    /// leader does for WriteTxnMarkers: refused when the producer's epoch or the marker's
    /// coordinator epoch is older than the log has seen
    /// ([`StorageError::InvalidProducerEpoch`], [`StorageError::CoordinatorFenced`]). A marker
    /// for a producer with nothing open here is written all the same (an empty transaction).
    /// An abort adds an entry to the aborted-transaction index.
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        marker: TxnMarker,
        leader_epoch: LeaderEpoch,
        now_ms: i64,
    ) -> Result<AppendOutcome, StorageError> {
        let mut st = self.state.borrow_mut();
        self.check_appendable(&st)?;
        let mut batch = build_txn_marker(producer_id, producer_epoch, marker, now_ms);
        self.check_pending(&st, batch.len())?;
        let mut h = BatchHeader::parse(&batch).map_err(|reason| StorageError::InvalidRecords {
            position: 0,
            reason,
        })?;
        st.producers.check(&h, Some(marker))?;
        h.base_offset = st.log_end_offset();
        h.partition_leader_epoch = leader_epoch.0;
        set_base_offset(&mut batch, h.base_offset);
        set_partition_leader_epoch(&mut batch, leader_epoch.0);
        self.append_one(&mut st, &h, Bytes::from(batch), leader_epoch, now_ms, None);
        Ok(AppendOutcome {
            base_offset: h.base_offset,
            last_offset: h.base_offset,
            log_append_time_ms: -1,
            duplicate: false,
        })
    }

    /// The last stable offset under `high_watermark` (Kafka's LSO): the first offset of the
    /// oldest transaction still open here, or of a completed one whose marker the high
    /// watermark has not yet passed, when below `high_watermark`; else `high_watermark`
    /// (at most the log end). read_committed consumers read below it.
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        let mut st = self.state.borrow_mut();
        let bound = high_watermark.min(st.log_end_offset());
        st.producers.last_stable_offset(bound)
    }

    /// The aborted transactions a read_committed fetch of `[from, upper)` reports: those whose
    /// abort marker is at or after `from` and whose first offset is below `upper`.
    pub fn aborted_transactions(&self, from: i64, upper: i64) -> Vec<AbortedTxn> {
        txn_index::collect(&self.state.borrow().aborted, from, upper)
    }

    /// Whether `producer_id` has a transaction open here under `producer_epoch`.
    pub fn has_open_transaction(&self, producer_id: i64, producer_epoch: i16) -> bool {
        self.state
            .borrow()
            .producers
            .producers
            .get(&producer_id)
            .is_some_and(|p| p.epoch == producer_epoch && p.txn_first_offset.is_some())
    }

    /// The epoch this partition last saw from `producer_id`, if it has state for it.
    pub fn producer_epoch(&self, producer_id: i64) -> Option<i16> {
        self.state
            .borrow()
            .producers
            .producers
            .get(&producer_id)
            .map(|p| p.epoch)
    }

    /// The producers this partition has state for (DescribeProducers), by producer id.
    pub fn producers(&self) -> Vec<ProducerInfo> {
        let st = self.state.borrow();
        let mut out: Vec<ProducerInfo> = st
            .producers
            .producers
            .iter()
            .map(|(&producer_id, p)| ProducerInfo {
                producer_id,
                producer_epoch: p.epoch,
                last_sequence: p.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: p.last_timestamp,
                coordinator_epoch: p.coordinator_epoch,
                current_txn_start_offset: p.txn_first_offset.unwrap_or(-1),
            })
            .collect();
        out.sort_unstable_by_key(|p| p.producer_id);
        out
    }

    fn check_appendable(&self, st: &State<D::File>) -> Result<(), StorageError> {
        if st.closed {
            return Err(StorageError::Closed);
        }
        if self.truncating.get() {
            return Err(StorageError::TruncationInProgress);
        }
        Ok(())
    }

    fn check_pending(&self, st: &State<D::File>, bytes: usize) -> Result<(), StorageError> {
        let limit = self.config.borrow().pending_bytes_max;
        if st.unwritten_bytes > 0 && st.unwritten_bytes + bytes > limit {
            return Err(StorageError::BufferFull {
                pending_bytes: st.unwritten_bytes,
                limit,
            });
        }
        Ok(())
    }

    fn append_one(
        &self,
        st: &mut State<D::File>,
        h: &BatchHeader,
        bytes: Bytes,
        epoch: LeaderEpoch,
        now_ms: i64,
        shared: Option<&Rc<SharedBuffer>>,
    ) {
        if self.should_roll(st.segments.last().expect("a log has a segment"), h, now_ms) {
            self.roll(st, now_ms);
        }
        let interval = u64::from(self.config.borrow().index_interval_bytes);
        let active = st.segments.last_mut().expect("a log has a segment");
        active.append_batch(h, &bytes, interval, now_ms);
        st.unwritten_bytes += bytes.len();
        let marker = match h.is_control() {
            true => txn_marker(&bytes).ok().flatten(),
            false => None,
        };
        if let Some(done) = st.producers.record(h, marker, now_ms) {
            if !done.commit {
                let stable = st.producers.first_open_offset();
                st.aborted.push(AbortedTxn {
                    producer_id: done.producer_id,
                    first_offset: done.first_offset,
                    last_offset: done.last_offset,
                    last_stable_offset: stable.unwrap_or(done.last_offset + 1),
                });
            }
        }
        if st.epochs.assign(epoch, h.base_offset) {
            st.epochs_version += 1;
        }
        if st
            .appended_max_timestamp
            .is_none_or(|m| h.max_timestamp > m.0)
            && h.max_timestamp >= 0
        {
            st.appended_max_timestamp = Some((h.max_timestamp, h.last_offset()));
        }
        self.cache.insert(
            self.cache_id,
            h.base_offset,
            h.last_offset(),
            bytes,
            shared.cloned(),
        );
    }

    fn should_roll(&self, active: &Segment<D::File>, h: &BatchHeader, now_ms: i64) -> bool {
        if active.index.size == 0 {
            return false;
        }
        let size = active.index.size + h.total_bytes() as u64;
        let relative_last = h.last_offset() - active.base_offset;
        let aged = active
            .first_append_ms
            .is_some_and(|t| now_ms - t >= self.config.borrow().segment_ms);
        size > self.config.borrow().segment_bytes || aged || relative_last > i64::from(i32::MAX)
    }

    /// Closes the active segment and starts a new one at the log end. Its file is created by
    /// the next flush; its predecessor's indexes are written once its data is synced.
    pub(crate) fn roll(&self, st: &mut State<D::File>, now_ms: i64) {
        let next = st.log_end_offset();
        let old = st.segments.last_mut().expect("a log has a segment");
        old.rolled = true;
        tracing::debug!(dir = %self.dir.display(), base_offset = old.base_offset, next, "segment rolled");
        st.producers
            .expire(now_ms - self.config.borrow().producer_id_expiration_ms);
        let snapshot = st.producers.encode_snapshot(next);
        st.pending_snapshots.push((next, snapshot));
        st.segments.push(Segment::new(next));
    }

    /// Group commit: writes everything appended before the call (and whatever else is pending)
    /// and, with `fsync`, syncs it; then advances the durable end. Concurrent callers share
    /// rounds: one write and one sync per file per round. [`StorageError::Truncated`] when
    /// `truncate_to` removed some of what the call was waiting for, or `reset_to` ran while
    /// it waited (the reset removed all of it, whatever offset the log starts at now).
    pub async fn flush(&self) -> Result<(), StorageError> {
        let target = self.log_end_offset();
        let resets = self.resets.get();
        loop {
            let (durable_end, log_end_offset) = {
                let st = self.state.borrow();
                (st.durable_end, st.log_end_offset())
            };
            if self.resets.get() != resets {
                return Err(StorageError::Truncated {
                    offset: target,
                    log_end_offset,
                });
            }
            if durable_end >= target {
                return Ok(());
            }
            if log_end_offset < target {
                return Err(StorageError::Truncated {
                    offset: target,
                    log_end_offset,
                });
            }
            if self.gate.running.get() {
                let generation = self.gate.generation.get();
                std::future::poll_fn(|cx| {
                    if self.gate.generation.get() != generation {
                        Poll::Ready(())
                    } else {
                        self.gate.waiters.borrow_mut().push(cx.waker().clone());
                        Poll::Pending
                    }
                })
                .await;
                continue;
            }
            self.gate.running.set(true);
            let _guard = RoundGuard(&self.gate);
            self.flush_round().await?;
        }
    }

    pub(crate) async fn flush_round(&self) -> Result<(), StorageError> {
        crate::foreground::io_started();
        self.open_new_files().await?;
        // Holds the tails the round took: put back if the round fails or is dropped midway.
        let mut round = TakenRound {
            log: self,
            plan: self.plan_round(),
            committed: false,
        };
        for w in &round.plan.writes {
            w.file
                .write_at(w.position, &w.data)
                .await
                .map_err(io_err("write", w.file.path()))?;
        }
        for file in &round.plan.syncs {
            file.sync_data()
                .await
                .map_err(io_err("sync", file.path()))?;
        }
        self.commit_round(&round.plan);
        round.committed = true;
        if self.config.borrow().cache_written {
            for w in &round.plan.writes {
                w.file.advise_written(w.position, w.data.len() as u64);
            }
        }
        // After the commit: the round's callers are not kept waiting for the zeroes, and the
        // next write of the file waits for them only if it comes before they are done.
        for z in &round.plan.zeroes {
            if z.file.start_zeroes(z.from, z.to - z.from) {
                let mut st = self.state.borrow_mut();
                if let Some(i) = st.find_segment(z.base_offset) {
                    let seg = &mut st.segments[i];
                    seg.prepared_end = seg.prepared_end.max(z.to);
                }
            }
        }
        drop(round);
        if let Err(e) = self.write_metadata().await {
            // The data is durable; the indexes, snapshot or checkpoint are retried at the next
            // round, and recovery rebuilds whatever is missing.
            tracing::warn!(dir = %self.dir.display(), error = %e, "writing log metadata failed");
        }
        Ok(())
    }

    /// Creates the files of segments that have data but no file yet (append cannot await).
    async fn open_new_files(&self) -> Result<(), StorageError> {
        let missing: Vec<i64> = {
            let st = self.state.borrow();
            st.segments
                .iter()
                .filter(|s| s.file.is_none() && s.index.size > 0)
                .map(|s| s.base_offset)
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        for base in missing {
            let path = file_name(&self.dir, base, ".log");
            let file = self
                .disk
                .open(&path, true)
                .await
                .map_err(io_err("create", &path))?;
            let mut st = self.state.borrow_mut();
            // Retention may have deleted it meanwhile.
            if let Some(i) = st.find_segment(base) {
                st.segments[i].file.get_or_insert(Rc::new(file));
            }
        }
        self.disk
            .sync_dir(&self.dir)
            .await
            .map_err(io_err("sync dir", &self.dir))
    }

    /// What the round writes and syncs. Each segment's unwritten tail is taken as it is (no
    /// copy) and replaced by a fresh one holding only its last partial block, which the next
    /// round writes again whole; appends made while the round runs go there.
    fn plan_round(&self) -> RoundPlan<D::File> {
        let mut guard = self.state.borrow_mut();
        let st = &mut *guard;
        let (ahead, segment_bytes, fsync) = {
            let config = self.config.borrow();
            (
                config.prepare_ahead_bytes,
                config.segment_bytes,
                config.fsync,
            )
        };
        let mut plan = RoundPlan {
            target: st.log_end_offset(),
            writes: Vec::new(),
            zeroes: Vec::new(),
            syncs: Vec::new(),
            synced_rolls: Vec::new(),
            max_timestamp: st.appended_max_timestamp,
        };
        for seg in st.segments.iter_mut().filter(|s| {
            s.unwritten_bytes() > 0 || (s.rolled && !s.index_written && !s.data_synced())
        }) {
            let Some(file) = seg.file.clone() else {
                // Rolled while this round was opening files: the next round covers it, and
                // the durable end stops where this round's data ends.
                plan.target = seg.base_offset;
                plan.max_timestamp = st.durable_max_timestamp;
                break;
            };
            if seg.unwritten_bytes() > 0 {
                let align = file.alignment() as u64;
                let (end_size, end_offset) = (seg.index.size, seg.index.next_offset);
                let keep_from = end_size - end_size % align;
                let mut fresh = st.spare_tails.pop().unwrap_or_default();
                fresh.clear();
                fresh.extend_from_slice(&seg.tail[(keep_from - seg.tail_position) as usize..]);
                let mut data = std::mem::replace(&mut seg.tail, fresh);
                let position = std::mem::replace(&mut seg.tail_position, keep_from);
                data.resize(align_up(data.len() as u64, align) as usize, 0);
                let write_end = position + data.len() as u64;
                let zeroing = zero_ahead(seg.prepared_end, write_end, ahead, segment_bytes, align);
                if let (Some((from, to)), false) = (zeroing, seg.rolled) {
                    plan.zeroes.push(Zeroing {
                        base_offset: seg.base_offset,
                        file: file.clone(),
                        from,
                        to,
                    });
                }
                plan.writes.push(Write {
                    base_offset: seg.base_offset,
                    file: file.clone(),
                    position,
                    data,
                    end_size,
                    end_offset,
                });
            }
            if fsync || seg.rolled {
                plan.syncs.push(file);
            }
            if seg.rolled {
                plan.synced_rolls.push(seg.base_offset);
            }
        }
        plan
    }

    fn commit_round(&self, plan: &RoundPlan<D::File>) {
        let mut st = self.state.borrow_mut();
        for w in &plan.writes {
            // A segment with unwritten data is above the durable end: retention cannot have
            // deleted it.
            let i = st.segment_index(w.base_offset);
            let seg = &mut st.segments[i];
            let written = (w.end_size - seg.flushed_size) as usize;
            seg.flushed_size = w.end_size;
            seg.flushed_next_offset = w.end_offset;
            seg.prepared_end = seg.prepared_end.max(w.position + w.data.len() as u64);
            st.unwritten_bytes -= written;
        }
        for &base in &plan.synced_rolls {
            // Retention or DeleteRecords may have deleted a durable segment during the round.
            let Some(i) = st.find_segment(base) else {
                continue;
            };
            let seg = &mut st.segments[i];
            seg.synced_size = seg.flushed_size;
            if seg.flushed_size == seg.index.size {
                seg.tail = Vec::new();
            }
        }
        // Appends only add above the target and truncation cannot run during a round.
        assert!(
            plan.target >= st.durable_end && plan.target <= st.log_end_offset(),
            "durable end {} -> {} outside [durable end, log end {}]",
            st.durable_end,
            plan.target,
            st.log_end_offset()
        );
        st.durable_end = plan.target;
        st.durable_max_timestamp = plan.max_timestamp;
    }

    /// Writes what must follow durable data: the leader-epoch checkpoint, indexes of rolled,
    /// synced segments, producer snapshots at or below the durable end. The checkpoint goes
    /// first: recovery scans only segments without a valid index for epochs, so an index
    /// written before the checkpoint that names its epochs would hide them after a crash.
    /// (Entries above the durable end are harmless: recovery cuts the checkpoint at the log
    /// end.)
    pub(crate) async fn write_metadata(&self) -> Result<(), StorageError> {
        let epochs = {
            let st = self.state.borrow();
            (st.epochs_version != st.epochs_written)
                .then(|| (st.epochs_version, st.epochs.encode()))
        };
        if let Some((version, bytes)) = epochs {
            self.write_small(&self.dir.join(epoch::FILE_NAME), &bytes)
                .await?;
            self.state.borrow_mut().epochs_written = version;
        }
        let jobs: Vec<IndexFiles> = {
            let st = self.state.borrow();
            st.segments
                .iter()
                .filter(|s| s.rolled && !s.index_written && s.data_synced())
                .map(|s| {
                    (
                        s.base_offset,
                        s.index.encode_offset_index(s.base_offset),
                        s.index.encode_time_index(s.base_offset),
                        st.encode_txn_index(s),
                    )
                })
                .collect()
        };
        for (base, offsets, times, aborted) in jobs {
            self.cut_zeroes_ahead(base).await?;
            // Before the `.index`: a trusted `.index` without a `.txnindex` means no abort.
            self.write_txn_index(base, aborted).await?;
            self.write_small(&file_name(&self.dir, base, ".index"), &offsets)
                .await?;
            self.write_small(&file_name(&self.dir, base, ".timeindex"), &times)
                .await?;
            let gone = {
                let mut st = self.state.borrow_mut();
                match st.find_segment(base) {
                    Some(i) => {
                        st.segments[i].index_written = true;
                        false
                    }
                    None => true,
                }
            };
            if gone {
                // Deleted while its indexes were being written: do not leave them behind.
                for suffix in [".index", ".timeindex", ".txnindex"] {
                    crate::retention::remove_if_present(
                        &self.disk,
                        &file_name(&self.dir, base, suffix),
                    )
                    .await?;
                }
            }
        }
        let snapshots: Vec<(i64, Vec<u8>)> = {
            let st = self.state.borrow();
            st.pending_snapshots
                .iter()
                .filter(|s| s.0 <= st.durable_end)
                .cloned()
                .collect()
        };
        for (offset, bytes) in snapshots {
            self.write_small(&file_name(&self.dir, offset, ".snapshot"), &bytes)
                .await?;
            self.state
                .borrow_mut()
                .pending_snapshots
                .retain(|s| s.0 != offset);
            self.remove_old_snapshots(offset).await?;
        }
        Ok(())
    }

    /// Cuts a rolled segment's file after its last block of data, removing the zeroes written
    /// ahead of it. Not synced: if a crash loses the cut, recovery finds the same end in the
    /// segment's index or, scanning, at the first zero header.
    async fn cut_zeroes_ahead(&self, base: i64) -> Result<(), StorageError> {
        let (file, size) = {
            let st = self.state.borrow();
            let Some(i) = st.find_segment(base) else {
                return Ok(());
            };
            let seg = &st.segments[i];
            match &seg.file {
                Some(file) if seg.prepared_end > seg.index.size => (file.clone(), seg.index.size),
                _ => return Ok(()),
            }
        };
        let end = align_up(size, file.alignment() as u64);
        let file_bytes = file.size().await.map_err(io_err("size", file.path()))?;
        if file_bytes > end {
            file.truncate(end)
                .await
                .map_err(io_err("truncate", file.path()))?;
        }
        let mut st = self.state.borrow_mut();
        if let Some(i) = st.find_segment(base) {
            st.segments[i].prepared_end = end;
        }
        Ok(())
    }

    /// Writes a segment's aborted-transaction index, or removes a stale one when it has none.
    async fn write_txn_index(&self, base: i64, file: Option<Vec<u8>>) -> Result<(), StorageError> {
        let path = file_name(&self.dir, base, ".txnindex");
        match file {
            Some(bytes) => self.write_small(&path, &bytes).await,
            None => crate::retention::remove_if_present(&self.disk, &path).await,
        }
    }

    pub(crate) async fn write_small(&self, path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
        self.disk
            .write_file_atomic(path, bytes)
            .await
            .map_err(io_err("write", path))
    }

    /// Keeps the newest two snapshots at or below `newest`.
    async fn remove_old_snapshots(&self, newest: i64) -> Result<(), StorageError> {
        let names = self
            .disk
            .list_dir(&self.dir)
            .map_err(io_err("list", &self.dir))?;
        let mut offsets: Vec<i64> = names
            .iter()
            .filter_map(|n| parse_name(n, ".snapshot"))
            .filter(|&o| o <= newest)
            .collect();
        offsets.sort_unstable();
        for &old in offsets.iter().rev().skip(2) {
            let path = file_name(&self.dir, old, ".snapshot");
            self.disk
                .remove_file(&path)
                .await
                .map_err(io_err("remove", &path))?;
        }
        Ok(())
    }

    /// Whole batches from the one holding `offset`, at most `max_bytes` (at least one batch if
    /// `min_one_batch`), none starting at or above `upper_bound`: the caller's limit, the high
    /// watermark for consumers (on a single node, [`PartitionLog::durable_end`]), the log end
    /// for followers. A bound above the log end counts as the log end.
    ///
    /// `offset` outside `[log start, upper_bound]` is [`StorageError::OffsetOutOfRange`];
    /// `offset == upper_bound` reads nothing. Data above the durable end (appended, not yet
    /// flushed) is served only from the batch cache, which holds it only while it fits: the
    /// read never waits for a flush. When the batch holding `offset` is neither cached nor
    /// flushed the result is empty, and a read from the files stops at the durable end; the
    /// caller reads again after the next flush.
    pub async fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        upper_bound: i64,
    ) -> Result<ReadResult<D::File>, StorageError> {
        let (durable_end, log_start_offset, upper_bound) = {
            let st = self.state.borrow();
            let bound = upper_bound.min(st.log_end_offset());
            (st.durable_end, st.log_start_offset, bound)
        };
        let mut result = ReadResult {
            chunks: Vec::new(),
            bytes: 0,
            durable_end,
            log_start_offset,
            next_offset: offset,
        };
        if offset < log_start_offset || offset > upper_bound {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset,
                upper_bound,
            });
        }
        if offset == upper_bound {
            return Ok(result);
        }
        if let Some(hit) =
            self.cache
                .read(self.cache_id, offset, upper_bound, max_bytes, min_one_batch)
        {
            result.bytes = hit.bytes;
            if let Some(last) = hit.batches.last() {
                let h = BatchHeader::parse(last).expect("cached batches are whole");
                result.next_offset = h.next_offset();
            }
            result.chunks = hit.batches.into_iter().map(ReadChunk::Memory).collect();
            return Ok(result);
        }
        let file_bound = upper_bound.min(durable_end);
        if offset >= file_bound {
            return Ok(result);
        }
        crate::foreground::io_started();
        // From the segment holding `offset`, then on through the following segments while
        // the budget lasts: after compaction a segment may hold little (an empty batch kept
        // for its producer), and a fetch that returned only that would make clients take one
        // round trip per segment (librdkafka even reports such a fetch as a message too large).
        let mut offset = offset;
        let mut first_segment = true;
        loop {
            let budget = max_bytes.saturating_sub(result.bytes);
            let next = {
                let st = self.state.borrow();
                let i = st.segment_for_offset(offset);
                st.segments.get(i + 1).map(|s| s.base_offset)
            };
            let read = self
                .read_segment(offset, budget, first_segment && min_one_batch, file_bound)
                .await?;
            let Some((chunk, len, reached_end, next_offset)) = read else {
                break;
            };
            result.next_offset = next_offset;
            result.bytes += len;
            result.chunks.push(chunk);
            first_segment = false;
            match next {
                Some(base) if reached_end && base < file_bound && result.bytes < max_bytes => {
                    offset = base;
                }
                _ => break,
            }
        }
        Ok(result)
    }

    /// Whole batches of the segment holding `offset`, from the batch holding it, within
    /// `max_bytes` (or the first batch whole when `min_one_batch`), none starting at or above
    /// `upper_bound` (at most the durable end): the chunk, its length, whether it reaches
    /// the segment's durable end, and the offset after its last batch. None when nothing fits.
    async fn read_segment(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        upper_bound: i64,
    ) -> Result<Option<SegmentRead<D::File>>, StorageError> {
        let (file, base, from, end, bound_from, end_offset) = {
            let st = self.state.borrow();
            let seg = &st.segments[st.segment_for_offset(offset)];
            let file = seg.file.clone().expect("durable data has a file");
            (
                file,
                seg.base_offset,
                seg.index.position_for_offset(seg.base_offset, offset),
                seg.flushed_size,
                // At or before the first batch reaching the bound, so the walk below sees it.
                seg.index.position_for_offset(seg.base_offset, upper_bound),
                seg.flushed_next_offset,
            )
        };
        let Some((start, first)) =
            walk_headers(&*file, from, end, |_, h| h.last_offset() >= offset).await?
        else {
            return Err(corrupt(
                file.path(),
                end,
                "batch holding a durable offset not found",
            ));
        };
        let first_len = first.total_bytes() as u64;
        if first_len > max_bytes as u64 && !min_one_batch {
            return Ok(None);
        }
        let limit = (start + max_bytes as u64).min(end).max(start + first_len);
        let walk_from = {
            let st = self.state.borrow();
            st.find_segment(base).map_or(start, |i| {
                let entry = st.segments[i].index.entry_at_or_before(limit);
                entry.min(bound_from).max(start)
            })
        };
        let stop = walk_headers(&*file, walk_from, end, |p, h| {
            p + h.total_bytes() as u64 > limit || h.base_offset >= upper_bound
        })
        .await?;
        let (stop, next_offset) = stop.map_or((end, end_offset), |(p, h)| (p, h.base_offset));
        let len = (stop - start) as usize;
        let chunk = ReadChunk::File {
            file,
            position: start,
            len: len as u32,
        };
        Ok(Some((chunk, len, stop >= end, next_offset)))
    }

    /// The first record at or after `timestamp_ms`, at or above the log start offset and below
    /// the durable end: its offset and timestamp (a caller with a lower bound, such as the high
    /// watermark, ignores an answer at or above it). Finds the batch through the time index,
    /// then decodes it; a batch whose records were all removed (compaction, or the log start
    /// inside it) sends the search on to the next one.
    pub async fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        let decode_bytes_max = self.config.borrow().decode_bytes_max;
        let (log_start, candidates) = {
            let st = self.state.borrow();
            let start = st.log_start_offset;
            let candidates: Vec<_> = st
                .segments
                .iter()
                .filter(|s| s.flushed_size > 0 && s.index.max_timestamp >= timestamp_ms)
                .filter(|s| s.flushed_next_offset > start)
                .map(|s| {
                    let from = s.index.position_for_timestamp(s.base_offset, timestamp_ms);
                    let file = s.file.clone().expect("durable data has a file");
                    (file, from, s.flushed_size)
                })
                .collect();
            (start, candidates)
        };
        for (file, mut from, end) in candidates {
            let wanted = |_: u64, h: &BatchHeader| {
                h.max_timestamp >= timestamp_ms && h.last_offset() >= log_start
            };
            while let Some((position, h)) = walk_headers(&*file, from, end, wanted).await? {
                let bytes = file
                    .read_at(position, h.total_bytes())
                    .await
                    .map_err(io_err("read", file.path()))?;
                let Ok(records) = decode_records(&bytes, decode_bytes_max) else {
                    return Ok(Some((h.base_offset.max(log_start), h.max_timestamp)));
                };
                let found = records
                    .into_iter()
                    .find(|r| r.timestamp >= timestamp_ms && r.offset >= log_start);
                if let Some(r) = found {
                    return Ok(Some((r.offset, r.timestamp)));
                }
                from = position + h.total_bytes() as u64;
            }
        }
        Ok(None)
    }

    /// Final flush, then indexes of the active segment, a producer snapshot at the log end, the
    /// leader-epoch checkpoint and the clean-shutdown marker. Appends fail afterwards.
    pub async fn close(&self) -> Result<(), StorageError> {
        self.flush().await?;
        self.write_metadata().await?;
        let (end, snapshot, active) = {
            let mut st = self.state.borrow_mut();
            st.closed = true;
            let end = st.log_end_offset();
            let seg = st.segments.last().expect("a log has a segment");
            let indexes = seg.file.is_some().then(|| {
                (
                    seg.base_offset,
                    seg.index.encode_offset_index(seg.base_offset),
                    seg.index.encode_time_index(seg.base_offset),
                    st.encode_txn_index(seg),
                )
            });
            (end, st.producers.encode_snapshot(end), indexes)
        };
        if let Some((base, offsets, times, aborted)) = active {
            self.write_txn_index(base, aborted).await?;
            self.write_small(&file_name(&self.dir, base, ".index"), &offsets)
                .await?;
            self.write_small(&file_name(&self.dir, base, ".timeindex"), &times)
                .await?;
        }
        self.write_small(&file_name(&self.dir, end, ".snapshot"), &snapshot)
            .await?;
        self.remove_old_snapshots(end).await?;
        self.write_small(&self.dir.join(crate::recovery::CLEAN_SHUTDOWN), b"")
            .await
    }

    /// Removes the partition's directory and everything in it.
    pub async fn delete(self) -> Result<(), StorageError> {
        self.cache.unregister(self.cache_id);
        self.disk
            .remove_dir_all(&self.dir)
            .await
            .map_err(io_err("remove", &self.dir))
    }
}

impl<D: Disk> Drop for PartitionLog<D> {
    fn drop(&mut self) {
        self.cache.unregister(self.cache_id);
    }
}

impl<F> State<F> {
    /// The `.txnindex` file of `seg`: the aborts whose marker lies in it, None when none.
    pub(crate) fn encode_txn_index(&self, seg: &Segment<F>) -> Option<Vec<u8>> {
        let (base, next) = (seg.base_offset, seg.index.next_offset);
        let from = self.aborted.partition_point(|e| e.last_offset < base);
        let to = self.aborted.partition_point(|e| e.last_offset < next);
        (from < to).then(|| txn_index::encode(base, &self.aborted[from..to]))
    }

    pub(crate) fn log_end_offset(&self) -> i64 {
        self.segments
            .last()
            .expect("a log has a segment")
            .index
            .next_offset
    }

    /// Index of the segment with this base offset.
    pub(crate) fn segment_index(&self, base_offset: i64) -> usize {
        self.segments
            .binary_search_by_key(&base_offset, |s| s.base_offset)
            .expect("segment exists")
    }

    /// Index of the segment with this base offset, if it still exists.
    pub(crate) fn find_segment(&self, base_offset: i64) -> Option<usize> {
        self.segments
            .binary_search_by_key(&base_offset, |s| s.base_offset)
            .ok()
    }

    /// Index of the segment holding `offset` (the last one starting at or before it).
    pub(crate) fn segment_for_offset(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1)
    }
}

struct RoundPlan<F> {
    target: i64,
    writes: Vec<Write<F>>,
    /// Zeroes written ahead of the data of active segments, after the round's data writes.
    zeroes: Vec<Zeroing<F>>,
    syncs: Vec<Rc<F>>,
    synced_rolls: Vec<i64>,
    max_timestamp: Option<(i64, i64)>,
}

struct Write<F> {
    base_offset: i64,
    file: Rc<F>,
    position: u64,
    /// The segment's tail from `position` (block-aligned) to `end_size`, padded to a block.
    data: Vec<u8>,
    end_size: u64,
    end_offset: i64,
}

/// Zeroes a round writes ahead of an active segment's data: `from..to` of its file.
struct Zeroing<F> {
    base_offset: i64,
    file: Rc<F>,
    from: u64,
    to: u64,
}

/// The zeroes to write ahead of a round's write that ends at `write_end` (block-aligned),
/// in a segment whose file has written blocks up to `prepared_end`: None while at least half
/// a step of them is left. A step is the segment's size so far rounded up to a power of two,
/// between [`PREPARE_STEP_MIN`] and `ahead` (the most zeroed ahead), and nothing is zeroed
/// past `segment_bytes`.
///
/// The range is a whole number of half-steps (one, unless the data overtook the zeroes), up
/// to at least half a step past `write_end`. So with a power-of-two `ahead` (the default)
/// every range's length is a power of two, and the disk writes it from a buffer of zeroes
/// kept for that length instead of filling a new one each time. A range that ended a fixed
/// distance past `write_end` had a different length every time. Half-steps rather than whole
/// ones: an extending write holds the file's inode lock until the device has it, and the
/// round after it waits for it; half a step is what each zeroing wrote before.
fn zero_ahead(
    prepared_end: u64,
    write_end: u64,
    ahead: u64,
    segment_bytes: u64,
    align: u64,
) -> Option<(u64, u64)> {
    if ahead == 0 {
        return None;
    }
    let step = write_end
        .max(PREPARE_STEP_MIN)
        .checked_next_power_of_two()
        .unwrap_or(u64::MAX)
        .min(ahead);
    let half = align_up((step / 2).max(1), align);
    let limit = align_up(segment_bytes, align);
    let prepared = prepared_end.max(write_end);
    if prepared >= write_end + half {
        return None;
    }
    let from = align_up(prepared, align);
    let halves = (write_end + half)
        .saturating_sub(from)
        .div_ceil(half)
        .max(1);
    let to = (from + halves * half).min(limit);
    (to > from).then_some((from, to))
}

/// How many emptied tails a log keeps for reuse.
const SPARE_TAILS: usize = 1;
/// The largest tail kept for reuse: a busy partition's round is far smaller (at 50 MB/s and a
/// round every few ms, a few hundred KB); a burst's larger buffer is freed, not kept.
const SPARE_TAIL_CAPACITY_MAX: usize = 1 << 20;

/// A round's plan with the tails it took from its segments. Dropped committed, the tails are
/// kept as spares; dropped otherwise (a write or sync failed, or the flush was cancelled), each
/// is put back in front of what was appended meanwhile, so the next round writes it again.
struct TakenRound<'a, D: Disk> {
    log: &'a PartitionLog<D>,
    plan: RoundPlan<D::File>,
    committed: bool,
}

impl<D: Disk> Drop for TakenRound<'_, D> {
    fn drop(&mut self) {
        // Never a second panic while unwinding from one that held the state.
        let Ok(mut st) = self.log.state.try_borrow_mut() else {
            return;
        };
        for w in self.plan.writes.drain(..) {
            let mut data = w.data;
            if self.committed {
                if st.spare_tails.len() < SPARE_TAILS && data.capacity() <= SPARE_TAIL_CAPACITY_MAX
                {
                    data.clear();
                    st.spare_tails.push(data);
                }
                continue;
            }
            // Segments with unwritten data are above the durable end: nothing removed them.
            let Some(i) = st.find_segment(w.base_offset) else {
                continue;
            };
            let seg = &mut st.segments[i];
            let align = w.file.alignment() as u64;
            let keep_from = w.end_size - w.end_size % align;
            debug_assert_eq!(seg.tail_position, keep_from, "the fresh tail moved");
            data.truncate((keep_from - w.position) as usize);
            data.extend_from_slice(&seg.tail);
            seg.tail = data;
            seg.tail_position = w.position;
        }
    }
}

/// Splits an append's bytes into batch headers; every byte must belong to a whole batch.
fn parse_batches(records: &[u8]) -> Result<Vec<(usize, BatchHeader)>, StorageError> {
    let mut headers = Vec::new();
    for step in BatchIter::new(records) {
        match step {
            BatchStep::Batch {
                position, header, ..
            } if header.last_offset_delta >= 0 => headers.push((position, header)),
            BatchStep::Batch { position, .. } => {
                let reason = millrace_wire::WireError::InvalidBatch {
                    reason: "negative last_offset_delta",
                };
                return Err(StorageError::InvalidRecords { position, reason });
            }
            BatchStep::Tail { position, reason } => {
                return Err(StorageError::InvalidRecords { position, reason })
            }
        }
    }
    if headers.is_empty() {
        let reason = millrace_wire::WireError::InvalidBatch {
            reason: "no batches",
        };
        return Err(StorageError::InvalidRecords {
            position: 0,
            reason,
        });
    }
    Ok(headers)
}

/// A compacted log keeps the last record per key, so every record must have one (Kafka
/// answers INVALID_RECORD). Compressed batches are decoded within `decode_bytes_max`.
fn check_keys(
    records: &[u8],
    headers: &[(usize, BatchHeader)],
    decode_bytes_max: usize,
) -> Result<(), StorageError> {
    for (position, h) in headers {
        if h.is_control() {
            continue;
        }
        let batch = &records[*position..*position + h.total_bytes()];
        let decoded = decode_records(batch, decode_bytes_max).map_err(|reason| {
            StorageError::InvalidRecords {
                position: *position,
                reason,
            }
        })?;
        if let Some(r) = decoded.iter().find(|r| r.key.is_none()) {
            return Err(StorageError::InvalidRecord {
                reason: format!(
                    "compacted topic: the record at offset delta {} has no key",
                    r.offset - h.base_offset
                ),
            });
        }
    }
    Ok(())
}

/// Checks every batch against the producer state (as if the earlier ones were appended) and
/// assigns offsets from `next_offset`. Returns the outcome when every batch is a duplicate;
/// a mix of duplicates and new batches is out of order.
fn check_producers(
    producers: &ProducerState,
    headers: &mut [(usize, BatchHeader)],
    mut next_offset: i64,
) -> Result<Option<AppendOutcome>, StorageError> {
    let mut scratch = ProducerState::default();
    for (_, h) in headers.iter() {
        if let Some(entry) = producers.producers.get(&h.producer_id) {
            scratch.producers.insert(h.producer_id, entry.clone());
        }
    }
    let mut duplicates = Vec::new();
    for (_, h) in headers.iter_mut() {
        match scratch.check(h, None)? {
            Check::Append => {
                h.base_offset = next_offset;
                next_offset = h.next_offset();
                scratch.record(h, None, 0);
            }
            Check::Duplicate {
                base_offset,
                last_offset,
            } => duplicates.push((h.producer_id, h.base_sequence, base_offset, last_offset)),
        }
    }
    match duplicates.len() {
        0 => Ok(None),
        n if n == headers.len() => Ok(Some(AppendOutcome {
            base_offset: duplicates[0].2,
            last_offset: duplicates[n - 1].3,
            log_append_time_ms: -1,
            duplicate: true,
        })),
        _ => {
            let (producer_id, received, _, _) = duplicates[0];
            Err(StorageError::OutOfOrderSequence {
                producer_id,
                expected: -1,
                received,
            })
        }
    }
}

/// Reads batch headers from `from` until `stop` says so (returning that batch's position and
/// header) or `end` is reached (None). Reads in windows; a header it cannot parse is corruption.
pub(crate) async fn walk_headers<F: DiskFile>(
    file: &F,
    mut pos: u64,
    end: u64,
    mut stop: impl FnMut(u64, &BatchHeader) -> bool,
) -> Result<Option<(u64, BatchHeader)>, StorageError> {
    const WINDOW_BYTES: u64 = 16 * 1024;
    while pos < end {
        let want = WINDOW_BYTES.min(end - pos) as usize;
        let buf = file
            .read_at(pos, want)
            .await
            .map_err(io_err("read", file.path()))?;
        let mut at = 0usize;
        while at + BATCH_HEADER_BYTES <= buf.len() && pos + (at as u64) < end {
            let h = BatchHeader::parse(&buf[at..])
                .map_err(|e| corrupt(file.path(), pos + at as u64, &e.to_string()))?;
            if stop(pos + at as u64, &h) {
                return Ok(Some((pos + at as u64, h)));
            }
            at += h.total_bytes();
        }
        if at == 0 {
            return Err(corrupt(file.path(), pos, "batch header cut short"));
        }
        pos += at as u64;
    }
    Ok(None)
}

pub(crate) fn corrupt(path: &Path, position: u64, reason: &str) -> StorageError {
    StorageError::Corrupt {
        path: path.to_path_buf(),
        position,
        reason: reason.to_string(),
    }
}

pub(crate) fn align_up(x: u64, align: u64) -> u64 {
    x.div_ceil(align) * align
}

/// The offset in a Kafka-style file name (`<20 digits><suffix>`), if it is one.
pub(crate) fn parse_name(name: &str, suffix: &str) -> Option<i64> {
    let digits = name.strip_suffix(suffix)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod zero_ahead_tests {
    use super::{zero_ahead, PREPARE_STEP_MIN};

    const MIB: u64 = 1 << 20;

    #[test]
    fn nothing_is_zeroed_when_off_or_while_half_a_step_is_left() {
        assert_eq!(zero_ahead(0, 4096, 0, 1 << 30, 4096), None);
        // 3 MiB written, zeroes up to 3.5 MiB: exactly half a 1 MiB step is left.
        assert_eq!(
            zero_ahead(3 * MIB + MIB / 2, 3 * MIB, MIB, 1 << 30, 4096),
            None
        );
    }

    #[test]
    fn every_range_is_a_power_of_two_long_however_far_the_data_moved() {
        let (mut prepared, mut written) = (0u64, 0u64);
        let mut full = 0;
        // Rounds of uneven sizes, as a busy partition's are.
        for i in 0..2_000u64 {
            written += 4096 * (1 + (i * 7919) % 37);
            if let Some((from, to)) = zero_ahead(prepared, written, MIB, 1 << 30, 4096) {
                assert_eq!(from, prepared.max(written), "zeroes start where blocks end");
                let half = written
                    .clamp(PREPARE_STEP_MIN, MIB)
                    .next_power_of_two()
                    .min(MIB)
                    / 2;
                assert!(
                    to >= written + half,
                    "half a step ahead: {to} for {written}"
                );
                assert!((to - from).is_power_of_two(), "{from}..{to} at round {i}");
                if written >= MIB {
                    assert_eq!(to - from, MIB / 2, "one half-step at round {i}");
                    full += 1;
                }
                prepared = to;
            }
            assert!(
                prepared > written,
                "the data never reaches the end of the zeroes"
            );
        }
        assert!(full > 100, "only {full} full-size ranges");
    }

    #[test]
    fn young_segments_step_by_their_size_and_data_that_overtook_gets_whole_half_steps() {
        // 8 KiB written in a young segment: the step is the minimum.
        assert_eq!(
            zero_ahead(0, 8192, MIB, 1 << 30, 4096),
            Some((8192, 8192 + PREPARE_STEP_MIN / 2))
        );
        // 300 KiB written: a 512 KiB step.
        assert_eq!(
            zero_ahead(0, 75 * 4096, MIB, 1 << 30, 4096),
            Some((75 * 4096, 75 * 4096 + 256 * 1024))
        );
        // The data is 2.3 steps past the zeroes (zeroing was off or failed): half-steps from
        // the data's end.
        let (from, to) = zero_ahead(MIB, 3 * MIB + 300 * 4096, MIB, 1 << 30, 4096).unwrap();
        assert_eq!(from, 3 * MIB + 300 * 4096);
        assert_eq!(to - from, MIB / 2);
    }

    #[test]
    fn an_ahead_that_is_not_a_power_of_two_is_still_the_largest_step() {
        let ahead = 3 * MIB;
        let (from, to) = zero_ahead(10 * MIB, 10 * MIB, ahead, 1 << 30, 4096).unwrap();
        assert_eq!((from, to), (10 * MIB, 10 * MIB + ahead / 2));
    }

    #[test]
    fn zeroes_stop_at_the_segments_size() {
        let segment = 10 * MIB + 512;
        let (from, to) = zero_ahead(9 * MIB + MIB / 4, 9 * MIB, MIB, segment, 4096).unwrap();
        assert_eq!(from, 9 * MIB + MIB / 4);
        assert_eq!(to, 9 * MIB + MIB * 3 / 4, "one half-step");
        let (from, to) = zero_ahead(10 * MIB, 10 * MIB - MIB / 4, MIB, segment, 4096).unwrap();
        assert_eq!(from, 10 * MIB);
        assert_eq!(
            to,
            10 * MIB + 4096,
            "the segment's last block, and no further"
        );
        assert_eq!(
            zero_ahead(10 * MIB + 4096, 10 * MIB, MIB, segment, 4096),
            None
        );
    }
}
