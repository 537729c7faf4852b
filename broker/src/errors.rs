//! The one place library errors become Kafka error codes.

use millrace_storage::StorageError;
use millrace_wire::WireError;

/// Kafka's numeric error codes: the one definition lives in `millrace_wire::codes`, shared with
/// the tools and the bench; handlers name it `code::X` through this path.
pub use millrace_wire::codes as code;

/// The Kafka error code for a storage error (exhaustive: a new variant must be mapped). Disk
/// and corruption errors are logged here, the one place they become a code.
pub fn storage_code(e: &StorageError) -> i16 {
    if matches!(e, StorageError::Corrupt { .. } | StorageError::Io { .. }) {
        tracing::error!(error = %e, "storage error");
    }
    match e {
        StorageError::OffsetOutOfRange { .. } => code::OFFSET_OUT_OF_RANGE,
        StorageError::OutOfOrderSequence { .. } => code::OUT_OF_ORDER_SEQUENCE_NUMBER,
        StorageError::InvalidProducerEpoch { .. } => code::INVALID_PRODUCER_EPOCH,
        StorageError::InvalidTxnState { .. } => code::INVALID_TXN_STATE,
        StorageError::CoordinatorFenced { .. } => code::TRANSACTION_COORDINATOR_FENCED,
        StorageError::InvalidRecords { reason, .. } => wire_code(reason),
        StorageError::InvalidRecord { .. } => code::INVALID_RECORD,
        StorageError::BufferFull { .. } => code::REQUEST_TIMED_OUT,
        StorageError::Corrupt { .. } | StorageError::Io { .. } => code::KAFKA_STORAGE_ERROR,
        StorageError::InvalidConfig { .. } => code::INVALID_CONFIG,
        StorageError::Closed => code::LEADER_NOT_AVAILABLE,
        // Follower-side calls (truncate_to, append_as_follower): no client request reaches
        // them yet.
        StorageError::TruncateOutOfRange { .. }
        | StorageError::UnexpectedAppendOffset { .. }
        | StorageError::TruncationInProgress
        | StorageError::Truncated { .. } => code::UNKNOWN_SERVER_ERROR,
    }
}

/// The Kafka error code for records a producer sent that fail validation.
pub fn wire_code(e: &WireError) -> i16 {
    match e {
        WireError::CrcMismatch { .. }
        | WireError::Truncated { .. }
        | WireError::BadLength { .. }
        | WireError::InvalidBatch { .. }
        | WireError::BadVarint { .. }
        | WireError::Decompression { .. }
        | WireError::Malformed { .. } => code::CORRUPT_MESSAGE,
        WireError::UnsupportedMagic { .. } => code::UNSUPPORTED_FOR_MESSAGE_FORMAT,
        WireError::UnknownCodec { .. } => code::CORRUPT_MESSAGE,
        WireError::FrameTooLarge { .. } => code::RECORD_LIST_TOO_LARGE,
        WireError::UnsupportedApi { .. } => code::UNSUPPORTED_VERSION,
    }
}

/// The Kafka error code of an ISR change the controller refused.
pub fn isr_refusal_code(refusal: millrace_replication::metadata::control::IsrRefusal) -> i16 {
    use millrace_replication::metadata::control::IsrRefusal;
    match refusal {
        IsrRefusal::UnknownTopicId => code::UNKNOWN_TOPIC_ID,
        IsrRefusal::UnknownTopicOrPartition => code::UNKNOWN_TOPIC_OR_PARTITION,
        IsrRefusal::FencedLeaderEpoch => code::FENCED_LEADER_EPOCH,
        IsrRefusal::NotLeaderOrFollower => code::NOT_LEADER_OR_FOLLOWER,
        IsrRefusal::InvalidUpdateVersion => code::INVALID_UPDATE_VERSION,
        IsrRefusal::InvalidRequest => code::INVALID_REQUEST,
        IsrRefusal::IneligibleReplica => code::INELIGIBLE_REPLICA,
    }
}
