//! The wire crate's one error type.

/// Everything that can be wrong with bytes a peer sent. Untrusted input returns one of these;
/// nothing in this crate panics on input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// Fewer bytes than the structure needs.
    #[error("truncated: needed {needed} bytes at offset {at}, {available} available")]
    Truncated {
        /// Position where the read started.
        at: usize,
        /// Bytes the read needed.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// A declared length is negative where not allowed, or larger than what is left.
    #[error("bad length {declared} at offset {at}")]
    BadLength {
        /// Position of the length field.
        at: usize,
        /// The value the sender declared.
        declared: i64,
    },
    /// A frame's size prefix exceeds the configured maximum.
    #[error("frame of {size} bytes exceeds the limit of {limit}")]
    FrameTooLarge {
        /// Declared size.
        size: i64,
        /// Configured limit (`socket.request.max.bytes`).
        limit: usize,
    },
    /// A record batch with a magic other than 2.
    #[error("unsupported record batch magic {magic}")]
    UnsupportedMagic {
        /// The magic byte found.
        magic: i8,
    },
    /// A record batch whose stored CRC-32C does not match its bytes.
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// CRC in the header.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// A record batch whose header fields contradict each other or its contents.
    #[error("invalid record batch: {reason}")]
    InvalidBatch {
        /// What is inconsistent.
        reason: &'static str,
    },
    /// Compression codec id not defined by Kafka.
    #[error("unknown compression codec {codec}")]
    UnknownCodec {
        /// The attribute bits.
        codec: i16,
    },
    /// Compressed data that does not decompress, or decompresses beyond the allowed size.
    #[error("{codec} decompression failed: {reason}")]
    Decompression {
        /// Codec name.
        codec: &'static str,
        /// Why.
        reason: String,
    },
    /// A varint longer than its type allows.
    #[error("malformed varint at offset {at}")]
    BadVarint {
        /// Position of the varint.
        at: usize,
    },
    /// An API key the registry does not know, or a version outside its range.
    #[error("unsupported api key {api_key} version {api_version}")]
    UnsupportedApi {
        /// API key.
        api_key: i16,
        /// API version.
        api_version: i16,
    },
    /// The kafka-protocol decoder refused the bytes.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// The decoder's message.
        reason: String,
    },
}
