//! Kafka error codes, and the one place library errors become them.

use millrace_storage::StorageError;
use millrace_wire::WireError;

/// Kafka's numeric error codes used by this broker.
#[allow(missing_docs)]
pub mod code {
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    pub const NONE: i16 = 0;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    pub const REQUEST_TIMED_OUT: i16 = 7;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const RECORD_LIST_TOO_LARGE: i16 = 18;
    pub const INVALID_REQUIRED_ACKS: i16 = 21;
    pub const INVALID_TIMESTAMP: i16 = 32;
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
    pub const INVALID_CONFIG: i16 = 40;
    pub const INVALID_REQUEST: i16 = 42;
    pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
    pub const INVALID_RECORD: i16 = 87;
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
}

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
