//! The storage crate's one error type. The broker maps each variant to a Kafka error code at
//! its handler boundary.

use millrace_wire::WireError;
use std::io;
use std::path::PathBuf;

/// What can go wrong in a partition log.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A read or DeleteRecords asked for an offset outside `[log_start_offset, upper_bound]`.
    #[error("offset {offset} out of range [{log_start_offset}, {upper_bound}]")]
    OffsetOutOfRange {
        /// The offset asked for.
        offset: i64,
        /// The log's first offset.
        log_start_offset: i64,
        /// The caller's bound (the high watermark for consumers and DeleteRecords), at most
        /// the log end (the durable end for DeleteRecords).
        upper_bound: i64,
    },
    /// `truncate_to` was asked for an offset outside `[log_start_offset, log_end_offset]`, or
    /// the log would end below its start; or `reset_to` for a negative offset. Nothing
    /// changed.
    #[error("cannot truncate to {offset}: log is [{log_start_offset}, {log_end_offset}]")]
    TruncateOutOfRange {
        /// The offset asked for.
        offset: i64,
        /// The log's first offset.
        log_start_offset: i64,
        /// The log's end offset.
        log_end_offset: i64,
    },
    /// `append_as_follower` got a batch that does not start where the log (or the previous
    /// batch) ends. Nothing was appended. Kafka's UnexpectedAppendOffsetException.
    #[error("follower append at offset {received}, expected {expected}")]
    UnexpectedAppendOffset {
        /// The offset the batch had to start at.
        expected: i64,
        /// The batch's base offset.
        received: i64,
    },
    /// An append arrived while `truncate_to` or `reset_to` runs. Nothing was appended.
    #[error("the log is being truncated")]
    TruncationInProgress,
    /// `truncate_to` removed data a flush was waiting for, or `reset_to` ran while it waited:
    /// the data is not durable, it is gone.
    #[error("flush to {offset}: the log was truncated or reset, it ends at {log_end_offset}")]
    Truncated {
        /// The log end the flush was called at.
        offset: i64,
        /// The log end after the truncation or reset (above `offset` after a reset past it).
        log_end_offset: i64,
    },
    /// An idempotent producer's sequence number is not the next one expected.
    #[error("producer {producer_id}: sequence {received} received, {expected} expected")]
    OutOfOrderSequence {
        /// The producer.
        producer_id: i64,
        /// The sequence the log expects next (0 for an unknown producer).
        expected: i32,
        /// The batch's base sequence.
        received: i32,
    },
    /// The producer's epoch is older than the one the log has seen (the producer is fenced).
    #[error("producer {producer_id}: epoch {received} is older than {current}")]
    InvalidProducerEpoch {
        /// The producer.
        producer_id: i64,
        /// The newest epoch the log has seen.
        current: i16,
        /// The batch's epoch.
        received: i16,
    },
    /// A producer's batch breaks its transaction's rules: a non-transactional batch while
    /// its transaction is open here, or a transactional one from a producer the log does not
    /// know to be in a transaction where one is required. Kafka's INVALID_TXN_STATE.
    #[error("producer {producer_id}: {reason}")]
    InvalidTxnState {
        /// The producer.
        producer_id: i64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A transaction marker from an older coordinator epoch than the last one seen for its
    /// producer. Kafka's TRANSACTION_COORDINATOR_FENCED.
    #[error("producer {producer_id}: marker of coordinator epoch {received}, {current} seen")]
    CoordinatorFenced {
        /// The producer.
        producer_id: i64,
        /// The newest coordinator epoch seen.
        current: i32,
        /// The marker's.
        received: i32,
    },
    /// The bytes handed to `append` are not a sequence of whole v2 batches.
    #[error("invalid records at byte {position}: {reason}")]
    InvalidRecords {
        /// Where in the appended buffer.
        position: usize,
        /// What is wrong.
        reason: WireError,
    },
    /// A record the log refuses to store: a record without a key in a compacted log. Nothing
    /// was appended. Kafka's INVALID_RECORD.
    #[error("invalid record: {reason}")]
    InvalidRecord {
        /// Which record and why.
        reason: String,
    },
    /// Appended bytes waiting for a flush have reached `LogConfig::pending_bytes_max`:
    /// the caller should flush (or wait for one) and retry.
    #[error("{pending_bytes} bytes wait for a flush, limit {limit}")]
    BufferFull {
        /// Bytes appended and not yet written.
        pending_bytes: usize,
        /// The configured limit.
        limit: usize,
    },
    /// On-disk data that cannot be used.
    #[error("corrupt {path} at byte {position}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where in it.
        position: u64,
        /// What is wrong.
        reason: String,
    },
    /// The disk failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation (`"write"`, `"sync"`, ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error (ENOSPC for a full disk).
        #[source]
        source: io::Error,
    },
    /// A configuration value the log cannot work with.
    #[error("invalid log config: {reason}")]
    InvalidConfig {
        /// Which value and why.
        reason: &'static str,
    },
    /// The log was closed.
    #[error("the log is closed")]
    Closed,
}

impl StorageError {
    /// True for ENOSPC: the disk is full (Kafka answers KAFKA_STORAGE_ERROR either way).
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StorageError::Io { source, .. } if source.raw_os_error() == Some(28))
    }
}

/// Wraps an `io::Error` with the operation and path.
pub(crate) fn io_err(
    op: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(io::Error) -> StorageError {
    let path = path.to_path_buf();
    move |source| StorageError::Io { op, path, source }
}
