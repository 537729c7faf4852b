//! The metadata log: metadata records stored as a Kafka log (KRaft's `__cluster_metadata-0`),
//! one record batch per append.
//!
//! ```text
//! batch (record batch v2, written by wire's BatchBuilder, uncompressed, no producer id)
//!   base_offset            = offset of the first record   (a Raft index will be offset + 1)
//!   partition_leader_epoch = term of the appender         (stamped by the log on append)
//!   record i: key = null, value = MetadataRecord::encode(), timestamp = the appender's now_ms
//! ```
//!
//! The log sits on a [`LogStore`]: the partition log of the storage crate, through the one
//! adapter in `partition_store.rs`, so the bytes go through the same group commit, recovery
//! (torn tails cut at the first bad CRC) and leader-epoch checkpoint as partition data. Flushing
//! is asynchronous over the storage crate's `Disk` trait, so it never blocks an event loop.
//!
//! Today the controller is a single voter: a record is committed once it is durable, so
//! [`MetadataLog::read_committed`] reads up to the store's durable end. Under Raft the commit
//! index bounds reads instead (the store's coming `upper_bound` argument); what a record is
//! does not change, only who decides it is committed.
//!
//! Replay reads untrusted bytes (a disk can rot): every batch's CRC is checked, decoded sizes
//! are bounded, offsets must increase, and a record that does not decode is an error, never a
//! panic and never skipped.

use super::record::MetadataRecord;
use crate::error::ReplicationError;
use millrace_wire::records::{decode_records, validate_stored_batch, BatchBuilder, NewRecord};
use millrace_wire::records::{BatchIter, BatchStep};
use std::future::Future;

/// The largest batch one append may write. KRaft caps a metadata batch at 8 MiB; records are
/// small, so 1 MiB leaves room for thousands of them.
pub const BATCH_BYTES_MAX: usize = 1 << 20;

/// How much one replay step reads and decodes.
pub const REPLAY_READ_BYTES: usize = 1 << 20;

/// What the metadata log needs from the log beneath it. Implemented for the storage crate's
/// partition log by `PartitionStore` (`partition_store.rs`) and by an in-memory store in tests.
pub trait LogStore {
    /// The store's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Appends one valid v2 batch at the log end, stamping `leader_epoch` into it; returns the
    /// offset of its first record. Not durable until [`LogStore::flush`].
    fn append(&self, batch: Vec<u8>, leader_epoch: i32, now_ms: i64) -> Result<i64, Self::Error>;
    /// Makes everything appended so far durable.
    fn flush(&self) -> impl Future<Output = Result<(), Self::Error>>;
    /// The offset after the last durable record.
    fn durable_end(&self) -> i64;
    /// The offset after the last appended record.
    fn log_end_offset(&self) -> i64;
    /// Whole durable batches starting with the one that holds `offset`, about `max_bytes` of
    /// them (at least one batch when there is one); empty at the durable end.
    fn read(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> impl Future<Output = Result<Vec<u8>, Self::Error>>;
    /// Removes every batch at and above `offset` (a batch holding `offset` goes whole),
    /// crash-safely: after a crash the log ends at its old end or at the cut, never a mix.
    /// Returns the new log end offset. `now_ms` stamps state rebuilt by the cut.
    fn truncate_to(
        &self,
        offset: i64,
        now_ms: i64,
    ) -> impl Future<Output = Result<i64, Self::Error>>;
    /// The first offset the log holds: 0 until [`LogStore::delete_before`] or
    /// [`LogStore::reset_to`] moved it.
    fn log_start_offset(&self) -> i64;
    /// Moves the log start to `offset` (at most the durable end) durably and deletes what
    /// lies wholly below it; returns the new start.
    fn delete_before(&self, offset: i64) -> impl Future<Output = Result<i64, Self::Error>>;
    /// Empties the log and starts it at `offset` (below, at or past its end), crash-safely:
    /// after a crash the log is the old one whole or the empty one at `offset`.
    fn reset_to(&self, offset: i64, now_ms: i64) -> impl Future<Output = Result<(), Self::Error>>;
}

/// One record read back, with where it is in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Its offset.
    pub offset: i64,
    /// The term (partition leader epoch) of its batch.
    pub term: i32,
    /// The record.
    pub record: MetadataRecord,
}

/// One record batch read back: its records, where it starts and its term. Under Raft one batch
/// is one Raft entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogBatch {
    /// Offset of its first record.
    pub base_offset: i64,
    /// The offset after its last record.
    pub next_offset: i64,
    /// Its partition leader epoch (the Raft term).
    pub term: i32,
    /// Its records, in order.
    pub records: Vec<MetadataRecord>,
}

/// The metadata log over a [`LogStore`]. Lives on the controller's shard.
pub struct MetadataLog<S: LogStore> {
    store: S,
}

impl<S: LogStore> MetadataLog<S> {
    /// The log over an opened (recovered) store.
    pub fn new(store: S) -> Self {
        MetadataLog { store }
    }

    /// The store beneath.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Appends `records` as one batch under `term` (leader epoch); returns the base offset.
    /// `now_ms` is the records' timestamp: the caller owns the clock. Not durable until
    /// [`MetadataLog::flush`].
    pub fn append(
        &self,
        records: &[MetadataRecord],
        term: i32,
        now_ms: i64,
    ) -> Result<i64, ReplicationError> {
        if records.is_empty() {
            return Err(ReplicationError::EmptyAppend);
        }
        let new: Vec<NewRecord> = records
            .iter()
            .map(|r| NewRecord {
                timestamp: now_ms,
                key: None,
                value: Some(r.encode()),
                headers: Vec::new(),
            })
            .collect();
        let batch = BatchBuilder::default().build(&new);
        if batch.len() > BATCH_BYTES_MAX {
            return Err(ReplicationError::BatchTooLarge {
                bytes: batch.len(),
                max: BATCH_BYTES_MAX,
            });
        }
        self.store
            .append(batch, term, now_ms)
            .map_err(store_error("append"))
    }

    /// Makes every appended record durable (and, on a single voter, committed).
    pub async fn flush(&self) -> Result<(), ReplicationError> {
        self.store.flush().await.map_err(store_error("flush"))
    }

    /// The offset after the last durable record.
    pub fn durable_end(&self) -> i64 {
        self.store.durable_end()
    }

    /// The offset after the last appended record.
    pub fn log_end_offset(&self) -> i64 {
        self.store.log_end_offset()
    }

    /// Committed records at `from_offset` and after, from about `max_bytes` of batches; empty
    /// when there are none. The next call starts after the last entry returned.
    pub async fn read_committed(
        &self,
        from_offset: i64,
        max_bytes: usize,
    ) -> Result<Vec<LogEntry>, ReplicationError> {
        let bytes = self
            .store
            .read(from_offset, max_bytes)
            .await
            .map_err(store_error("read"))?;
        decode_batches(&bytes, from_offset)
    }

    /// Removes every batch at and above `offset`; returns the new log end (see
    /// [`LogStore::truncate_to`]).
    pub async fn truncate_to(&self, offset: i64, now_ms: i64) -> Result<i64, ReplicationError> {
        self.store
            .truncate_to(offset, now_ms)
            .await
            .map_err(store_error("truncate"))
    }

    /// The first offset the log holds.
    pub fn log_start_offset(&self) -> i64 {
        self.store.log_start_offset()
    }

    /// Deletes the log below `offset` (see [`LogStore::delete_before`]); returns the start.
    pub async fn delete_before(&self, offset: i64) -> Result<i64, ReplicationError> {
        self.store
            .delete_before(offset)
            .await
            .map_err(store_error("delete before"))
    }

    /// Empties the log and starts it at `offset` (see [`LogStore::reset_to`]).
    pub async fn reset_to(&self, offset: i64, now_ms: i64) -> Result<(), ReplicationError> {
        self.store
            .reset_to(offset, now_ms)
            .await
            .map_err(store_error("reset"))
    }

    /// Every durable batch from the one at `from_offset` on, whole, in offset order: what
    /// the controller quorum rebuilds its Raft log from at start-up. Batches must follow each
    /// other without gaps (a metadata log is never compacted, only cut below a snapshot).
    pub async fn replay_batches(
        &self,
        from_offset: i64,
    ) -> Result<Vec<LogBatch>, ReplicationError> {
        let mut out: Vec<LogBatch> = Vec::new();
        let mut next = from_offset;
        loop {
            let bytes = self
                .store
                .read(next, REPLAY_READ_BYTES)
                .await
                .map_err(store_error("read"))?;
            let batches = decode_whole_batches(&bytes, next)?;
            let Some(last) = batches.last() else {
                return Ok(out);
            };
            next = last.next_offset;
            out.extend(batches);
        }
    }

    /// Every committed record at `from_offset` and after, in offset order.
    pub async fn replay(&self, from_offset: i64) -> Result<Vec<LogEntry>, ReplicationError> {
        let mut out = Vec::new();
        let mut next = from_offset;
        loop {
            let entries = self.read_committed(next, REPLAY_READ_BYTES).await?;
            let Some(last) = entries.last() else {
                return Ok(out);
            };
            next = last.offset + 1;
            out.extend(entries);
        }
    }
}

/// Wraps a store's error as [`ReplicationError::Store`] for operation `op`.
pub(crate) fn store_error<E: std::error::Error + Send + Sync + 'static>(
    op: &'static str,
) -> impl FnOnce(E) -> ReplicationError {
    move |e| ReplicationError::Store {
        op,
        source: Box::new(e),
    }
}

/// Records of whole batches in `bytes`, skipping those before `from_offset`. Offsets must
/// increase from `from_offset` on; anything that is not a whole valid batch is an error (the
/// store returns only durable, recovered data, so a torn batch here is corruption).
pub fn decode_batches(bytes: &[u8], from_offset: i64) -> Result<Vec<LogEntry>, ReplicationError> {
    let mut out = Vec::new();
    let mut expected = from_offset;
    for step in BatchIter::new(bytes) {
        let batch = match step {
            BatchStep::Batch { bytes, .. } => bytes,
            BatchStep::Tail { reason, .. } => return Err(reason.into()),
        };
        let header = validate_stored_batch(batch)?;
        let records = decode_records(batch, BATCH_BYTES_MAX)?;
        for record in records {
            if record.offset < from_offset {
                continue;
            }
            if record.offset < expected || record.offset > header.last_offset() {
                return Err(ReplicationError::OffsetGap {
                    offset: record.offset,
                    expected,
                });
            }
            expected = record.offset + 1;
            let value = record
                .value
                .as_deref()
                .ok_or(ReplicationError::InvalidRecord {
                    reason: "metadata log record without a value",
                })?;
            out.push(LogEntry {
                offset: record.offset,
                term: header.partition_leader_epoch,
                record: MetadataRecord::decode(value)?,
            });
        }
    }
    Ok(out)
}

/// Whole batches in `bytes`, the first starting at `from_offset`, each following the one
/// before without a gap; every record must decode.
pub fn decode_whole_batches(
    bytes: &[u8],
    from_offset: i64,
) -> Result<Vec<LogBatch>, ReplicationError> {
    let mut out = Vec::new();
    let mut expected = from_offset;
    for step in BatchIter::new(bytes) {
        let batch = match step {
            BatchStep::Batch { bytes, .. } => bytes,
            BatchStep::Tail { reason, .. } => return Err(reason.into()),
        };
        let header = validate_stored_batch(batch)?;
        if header.base_offset != expected {
            return Err(ReplicationError::OffsetGap {
                offset: header.base_offset,
                expected,
            });
        }
        let mut records = Vec::new();
        for record in decode_records(batch, BATCH_BYTES_MAX)? {
            if record.offset != expected {
                return Err(ReplicationError::OffsetGap {
                    offset: record.offset,
                    expected,
                });
            }
            expected += 1;
            let value = record
                .value
                .as_deref()
                .ok_or(ReplicationError::InvalidRecord {
                    reason: "metadata log record without a value",
                })?;
            records.push(MetadataRecord::decode(value)?);
        }
        if records.is_empty() || expected != header.next_offset() {
            return Err(ReplicationError::InvalidRecord {
                reason: "metadata log batch whose records do not fill its offsets",
            });
        }
        out.push(LogBatch {
            base_offset: header.base_offset,
            next_offset: expected,
            term: header.partition_leader_epoch,
            records,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
