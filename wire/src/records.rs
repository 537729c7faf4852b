//! Kafka record batch v2 (magic 2): a zero-copy view of the header, CRC-32C checks, the record
//! iterator, and a builder.
//!
//! ```text
//! offset  size  field                   covered by CRC
//!      0     8  base_offset             no   (assigned by the broker on append)
//!      8     4  batch_length            no   (bytes after this field)
//!     12     4  partition_leader_epoch  no   (stamped by the leader on append)
//!     16     1  magic (= 2)             no
//!     17     4  crc (CRC-32C, unsigned) no
//!     21     2  attributes              yes  bits 0-2 codec, 3 timestamp type,
//!                                            4 transactional, 5 control, 6 delete horizon
//!     23     4  last_offset_delta       yes
//!     27     8  base_timestamp          yes
//!     35     8  max_timestamp           yes
//!     43     8  producer_id             yes
//!     51     2  producer_epoch          yes
//!     53     4  base_sequence           yes
//!     57     4  record_count            yes
//!     61     …  records (maybe compressed)  yes
//! ```
//!
//! Because base offset and leader epoch sit outside the CRC, the broker assigns offsets and
//! stamps epochs in place without recomputing it; only LogAppendTime (which rewrites
//! `max_timestamp` and the attributes) needs [`stamp_log_append_time`], which does.
//!
//! Each record inside is: length (varint), attributes (i8), timestamp delta (varlong), offset
//! delta (varint), key length (varint, -1 = null) and key, value length and value, header count
//! (varint) and headers (key length, key, value length, value).

use crate::compression::Compression;
use crate::varint;
use crate::WireError;
use bytes::Bytes;

/// Size of the fixed batch header in bytes.
pub const BATCH_HEADER_BYTES: usize = 61;
/// Bytes before `batch_length` counts (base offset + the length field itself).
pub const LOG_OVERHEAD: usize = 12;
/// Offset of the CRC-covered region.
const CRC_START: usize = 21;
/// The smallest possible encoded record (all varints one byte, null key and value).
const RECORD_BYTES_MIN: usize = 7;

/// The fields of a record batch v2 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the `batch_length` field.
    pub batch_length: i32,
    /// Leader epoch stamped by the leader that appended the batch.
    pub partition_leader_epoch: i32,
    /// Format version; always 2 here.
    pub magic: i8,
    /// Stored CRC-32C.
    pub crc: u32,
    /// Attribute bits.
    pub attributes: i16,
    /// Offset of the last record relative to `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch (or the append time under LogAppendTime).
    pub max_timestamp: i64,
    /// Idempotent/transactional producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence number of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records.
    pub record_count: i32,
}

impl BatchHeader {
    /// Parses the fixed header at the start of `buf`. Checks only that the bytes are there and
    /// the magic is 2; see [`validate_batch`] for the full check.
    pub fn parse(buf: &[u8]) -> Result<Self, WireError> {
        if buf.len() < BATCH_HEADER_BYTES {
            return Err(WireError::Truncated {
                at: 0,
                needed: BATCH_HEADER_BYTES,
                available: buf.len(),
            });
        }
        let magic = buf[16] as i8;
        if magic != 2 {
            return Err(WireError::UnsupportedMagic { magic });
        }
        Ok(BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length: be_i32(buf, 8),
            partition_leader_epoch: be_i32(buf, 12),
            magic,
            crc: be_i32(buf, 17) as u32,
            attributes: be_i16(buf, 21),
            last_offset_delta: be_i32(buf, 23),
            base_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, 35),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            record_count: be_i32(buf, 57),
        })
    }

    /// Total bytes the batch occupies in a log (header overhead included).
    pub fn total_bytes(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    /// Offset of the last record. Saturates: `base_offset` is outside the CRC, so a producer or
    /// a corrupt segment can carry any value (the broker overwrites it on append, as Kafka does).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// The next offset after this batch (saturating, like [`BatchHeader::last_offset`]).
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    /// Compression codec from the attributes.
    pub fn compression(&self) -> Result<Compression, WireError> {
        Compression::from_attributes(self.attributes)
    }

    /// True when the timestamps are the broker's append time.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & 0x08 != 0
    }

    /// True for a transactional batch.
    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }

    /// True for a control batch (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }

    /// Sequence number of the last record, wrapping at i32::MAX as Kafka does.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        let last = i64::from(self.base_sequence) + i64::from(self.last_offset_delta);
        (last % (i64::from(i32::MAX) + 1)) as i32
    }
}

/// Checks one complete batch (`batch` holds exactly its bytes): length, magic, CRC, codec,
/// record count against the offset delta and the bytes present.
pub fn validate_batch(batch: &[u8]) -> Result<BatchHeader, WireError> {
    let header = validate_stored_batch(batch)?;
    if header.record_count <= 0 {
        return Err(WireError::InvalidBatch {
            reason: "record batch holds no records",
        });
    }
    if header.last_offset_delta != header.record_count - 1 {
        return Err(WireError::InvalidBatch {
            reason: "last_offset_delta does not match record_count",
        });
    }
    Ok(header)
}

/// Checks a batch as a log may hold it after compaction: like [`validate_batch`], except that
/// records may be missing from the offset span (`0 <= record_count <= last_offset_delta + 1`),
/// and an empty batch is allowed (Kafka keeps an idempotent producer's last batch that way).
pub fn validate_stored_batch(batch: &[u8]) -> Result<BatchHeader, WireError> {
    let header = BatchHeader::parse(batch)?;
    if header.batch_length < (BATCH_HEADER_BYTES - LOG_OVERHEAD) as i32 {
        return Err(WireError::BadLength {
            at: 8,
            declared: i64::from(header.batch_length),
        });
    }
    if header.total_bytes() != batch.len() {
        return Err(WireError::InvalidBatch {
            reason: "batch_length does not match the batch's bytes",
        });
    }
    let computed = crc32c::crc32c(&batch[CRC_START..]);
    if computed != header.crc {
        return Err(WireError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    header.compression()?;
    if header.record_count < 0
        || header.last_offset_delta < 0
        || i64::from(header.record_count) > i64::from(header.last_offset_delta) + 1
    {
        return Err(WireError::InvalidBatch {
            reason: "record_count does not fit last_offset_delta",
        });
    }
    let uncompressed = header.attributes & 0x07 == 0;
    let records_bytes = batch.len() - BATCH_HEADER_BYTES;
    if uncompressed && (header.record_count as usize) > records_bytes / RECORD_BYTES_MIN {
        return Err(WireError::InvalidBatch {
            reason: "record_count larger than the bytes can hold",
        });
    }
    Ok(header)
}

/// Splits a buffer of concatenated batches (a produce request's records, or a segment file)
/// into whole batches. Stops at the first incomplete or zero-length batch and reports the byte
/// position where the valid prefix ends, so recovery can truncate there.
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// One step of [`BatchIter`].
#[derive(Debug)]
pub enum BatchStep<'a> {
    /// A batch whose header parsed and whose declared length fits in the buffer. Its CRC has
    /// not been checked: call [`validate_batch`] on `bytes`.
    Batch {
        /// Byte position of the batch in the buffer.
        position: usize,
        /// The parsed header.
        header: BatchHeader,
        /// The batch's bytes.
        bytes: &'a [u8],
    },
    /// The bytes at `position` are not a complete batch: a torn write, zero padding, or
    /// garbage. `reason` says which.
    Tail {
        /// Where the valid prefix ends.
        position: usize,
        /// Why iteration stopped.
        reason: WireError,
    },
}

impl<'a> BatchIter<'a> {
    /// Iterates over `buf` from its start.
    pub fn new(buf: &'a [u8]) -> Self {
        BatchIter { buf, pos: 0 }
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = BatchStep<'a>;

    fn next(&mut self) -> Option<BatchStep<'a>> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.pos..];
        let position = self.pos;
        let stop = |reason| Some(BatchStep::Tail { position, reason });
        if rest.len() < LOG_OVERHEAD {
            self.pos = self.buf.len();
            return stop(WireError::Truncated {
                at: position,
                needed: LOG_OVERHEAD,
                available: rest.len(),
            });
        }
        let length = be_i32(rest, 8);
        if length < (BATCH_HEADER_BYTES - LOG_OVERHEAD) as i32 {
            self.pos = self.buf.len();
            return stop(WireError::BadLength {
                at: position + 8,
                declared: i64::from(length),
            });
        }
        let total = LOG_OVERHEAD + length as usize;
        if rest.len() < total {
            self.pos = self.buf.len();
            return stop(WireError::Truncated {
                at: position,
                needed: total,
                available: rest.len(),
            });
        }
        match BatchHeader::parse(rest) {
            Ok(header) => {
                self.pos += total;
                Some(BatchStep::Batch {
                    position,
                    header,
                    bytes: &rest[..total],
                })
            }
            Err(reason) => {
                self.pos = self.buf.len();
                stop(reason)
            }
        }
    }
}

/// Writes `base_offset` into a batch in place (outside the CRC).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Writes the partition leader epoch into a batch in place (outside the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[12..16].copy_from_slice(&epoch.to_be_bytes());
}

/// Turns a batch's timestamps into the broker's append time: sets the timestamp-type bit and
/// `max_timestamp`, then recomputes the CRC.
pub fn stamp_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attributes = be_i16(batch, 21) | 0x08;
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    batch[35..43].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Re-encodes a validated batch's records section with `codec`, keeping every header field
/// (offsets, timestamps, producer id, epoch and sequence, transactional and timestamp-type
/// bits): the records bytes do not depend on the codec. `max_bytes` bounds the decompressed
/// size. Used for a topic's `compression.type`.
pub fn recompress(
    batch: &[u8],
    codec: Compression,
    max_bytes: usize,
) -> Result<Vec<u8>, WireError> {
    let header = BatchHeader::parse(batch)?;
    let payload = &batch[BATCH_HEADER_BYTES.min(batch.len())..];
    let plain = match header.compression()? {
        Compression::None => payload.to_vec(),
        other => other.decompress(payload, max_bytes)?,
    };
    let body = codec.compress(&plain)?;
    let attributes = (header.attributes & !0x07) | codec.attribute_bits();
    let mut out = Vec::with_capacity(BATCH_HEADER_BYTES + body.len());
    out.extend_from_slice(&batch[..BATCH_HEADER_BYTES]);
    out.extend_from_slice(&body);
    let length = (BATCH_HEADER_BYTES - LOG_OVERHEAD + body.len()) as i32;
    out[8..12].copy_from_slice(&length.to_be_bytes());
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&out[CRC_START..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Absolute offset.
    pub offset: i64,
    /// Absolute timestamp.
    pub timestamp: i64,
    /// Key, or None for a null key.
    pub key: Option<Bytes>,
    /// Value, or None for a tombstone.
    pub value: Option<Bytes>,
    /// Headers in order; a header value may be null.
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Decodes every record of a validated batch, decompressing when needed. `max_bytes` bounds the
/// decompressed size (a compressed batch is untrusted input).
pub fn decode_records(batch: &[u8], max_bytes: usize) -> Result<Vec<Record>, WireError> {
    let header = BatchHeader::parse(batch)?;
    let payload = &batch[BATCH_HEADER_BYTES.min(batch.len())..];
    let codec = header.compression()?;
    let data: Bytes = match codec {
        Compression::None => Bytes::copy_from_slice(payload),
        other => Bytes::from(other.decompress(payload, max_bytes)?),
    };
    let count = header.record_count.max(0) as usize;
    if count > data.len() / RECORD_BYTES_MIN + 1 {
        return Err(WireError::InvalidBatch {
            reason: "record_count larger than the bytes can hold",
        });
    }
    let mut records = Vec::with_capacity(count);
    let mut cursor = varint::Cursor::new(&data);
    for _ in 0..count {
        records.push(decode_record(&mut cursor, &data, &header)?);
    }
    Ok(records)
}

fn decode_record(
    cursor: &mut varint::Cursor<'_>,
    data: &Bytes,
    header: &BatchHeader,
) -> Result<Record, WireError> {
    let length = cursor.varint()?;
    let start = cursor.position();
    if length < 0 || length as usize > cursor.remaining() {
        return Err(WireError::BadLength {
            at: start,
            declared: i64::from(length),
        });
    }
    let _attributes = cursor.i8()?;
    let timestamp_delta = cursor.varlong()?;
    let offset_delta = cursor.varint()?;
    let key = cursor.nullable_bytes(data)?;
    let value = cursor.nullable_bytes(data)?;
    let header_count = cursor.varint()?;
    if header_count < 0 || header_count as usize > cursor.remaining() {
        return Err(WireError::BadLength {
            at: cursor.position(),
            declared: i64::from(header_count),
        });
    }
    let mut headers = Vec::with_capacity(header_count as usize);
    for _ in 0..header_count {
        let name = cursor.nullable_bytes(data)?.unwrap_or_default();
        let name = String::from_utf8_lossy(&name).into_owned();
        headers.push((name, cursor.nullable_bytes(data)?));
    }
    if cursor.position() - start != length as usize {
        return Err(WireError::InvalidBatch {
            reason: "record length does not match its fields",
        });
    }
    let timestamp = if header.is_log_append_time() {
        header.max_timestamp
    } else {
        header.base_timestamp.wrapping_add(timestamp_delta)
    };
    let offset = header
        .base_offset
        .checked_add(i64::from(offset_delta))
        .ok_or(WireError::InvalidBatch {
            reason: "record offset overflows",
        })?;
    Ok(Record {
        offset,
        timestamp,
        key,
        value,
        headers,
    })
}

/// Rebuilds a batch keeping only the records `keep` accepts, as log compaction does.
///
/// The kept records' bytes are copied unchanged (offset and timestamp deltas, headers), so
/// every record keeps its offset and timestamp. The header keeps its base offset,
/// `last_offset_delta`, timestamps, leader epoch and producer fields: the batch still spans
/// its original offsets, so producer sequences stay valid. The records section is recompressed
/// with the batch's codec; a batch left empty is written uncompressed with no records.
/// Returns `None` when every record is kept (the caller keeps the original bytes).
/// `max_bytes` bounds decompression, as in [`decode_records`].
pub fn filter_records(
    batch: &[u8],
    max_bytes: usize,
    mut keep: impl FnMut(&Record) -> bool,
) -> Result<Option<Vec<u8>>, WireError> {
    let header = validate_stored_batch(batch)?;
    let codec = header.compression()?;
    let payload = &batch[BATCH_HEADER_BYTES..];
    let data: Bytes = match codec {
        Compression::None => Bytes::copy_from_slice(payload),
        other => Bytes::from(other.decompress(payload, max_bytes)?),
    };
    let mut kept = Vec::with_capacity(data.len());
    let mut kept_count = 0i32;
    let mut cursor = varint::Cursor::new(&data);
    for _ in 0..header.record_count {
        let start = cursor.position();
        let record = decode_record(&mut cursor, &data, &header)?;
        if keep(&record) {
            kept.extend_from_slice(&data[start..cursor.position()]);
            kept_count += 1;
        }
    }
    if kept_count == header.record_count {
        return Ok(None);
    }
    let (attributes, body) = match kept_count {
        0 => (header.attributes & !0x07, Vec::new()),
        _ => (header.attributes, codec.compress(&kept)?),
    };
    let mut out = Vec::with_capacity(BATCH_HEADER_BYTES + body.len());
    out.extend_from_slice(&batch[..BATCH_HEADER_BYTES]);
    out.extend_from_slice(&body);
    let batch_length = (out.len() - LOG_OVERHEAD) as i32;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    out[57..61].copy_from_slice(&kept_count.to_be_bytes());
    let crc = crc32c::crc32c(&out[CRC_START..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(Some(out))
}

/// A record to put in a batch built by [`BatchBuilder`].
#[derive(Debug, Clone, Default)]
pub struct NewRecord {
    /// Timestamp (CreateTime).
    pub timestamp: i64,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub value: Option<Vec<u8>>,
    /// Headers.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Builds a v2 batch the way a producer does. Used by tests, tools and the load generator.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    /// Codec for the records section.
    pub compression: Compression,
    /// Producer id (-1 for none).
    pub producer_id: i64,
    /// Producer epoch (-1 for none).
    pub producer_epoch: i16,
    /// First sequence (-1 for none).
    pub base_sequence: i32,
    /// Base offset written in the header (producers send 0).
    pub base_offset: i64,
    /// Transactional bit.
    pub transactional: bool,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        BatchBuilder {
            compression: Compression::None,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            base_offset: 0,
            transactional: false,
        }
    }
}

impl BatchBuilder {
    /// Encodes `records` as one batch. Panics if `records` is empty: a batch needs one record.
    pub fn build(&self, records: &[NewRecord]) -> Vec<u8> {
        assert!(
            !records.is_empty(),
            "a record batch needs at least one record"
        );
        let base_timestamp = records[0].timestamp;
        let max_timestamp = records.iter().map(|r| r.timestamp).max().unwrap_or(-1);
        let mut body = Vec::new();
        for (delta, record) in records.iter().enumerate() {
            encode_record(&mut body, record, base_timestamp, delta as i32);
        }
        let body = self
            .compression
            .compress(&body)
            .expect("compressing into memory does not fail");
        let mut attributes = self.compression.attribute_bits();
        if self.transactional {
            attributes |= 0x10;
        }
        let mut out = Vec::with_capacity(BATCH_HEADER_BYTES + body.len());
        out.extend_from_slice(&self.base_offset.to_be_bytes());
        out.extend_from_slice(
            &((BATCH_HEADER_BYTES - LOG_OVERHEAD + body.len()) as i32).to_be_bytes(),
        );
        out.extend_from_slice(&(-1i32).to_be_bytes());
        out.push(2);
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&attributes.to_be_bytes());
        out.extend_from_slice(&(records.len() as i32 - 1).to_be_bytes());
        out.extend_from_slice(&base_timestamp.to_be_bytes());
        out.extend_from_slice(&max_timestamp.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        out.extend_from_slice(&(records.len() as i32).to_be_bytes());
        out.extend_from_slice(&body);
        let crc = crc32c::crc32c(&out[CRC_START..]);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
        out
    }
}

fn encode_record(out: &mut Vec<u8>, record: &NewRecord, base_timestamp: i64, offset_delta: i32) {
    let mut body = Vec::new();
    body.push(0u8);
    varint::put_varlong(&mut body, record.timestamp - base_timestamp);
    varint::put_varint(&mut body, offset_delta);
    put_nullable(&mut body, record.key.as_deref());
    put_nullable(&mut body, record.value.as_deref());
    varint::put_varint(&mut body, record.headers.len() as i32);
    for (name, value) in &record.headers {
        put_nullable(&mut body, Some(name.as_bytes()));
        put_nullable(&mut body, value.as_deref());
    }
    varint::put_varint(out, body.len() as i32);
    out.extend_from_slice(&body);
}

fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => varint::put_varint(out, -1),
        Some(b) => {
            varint::put_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

pub(crate) fn be_i64(buf: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(buf[at..at + 8].try_into().expect("8 bytes"))
}

pub(crate) fn be_i32(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}

pub(crate) fn be_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(buf[at..at + 2].try_into().expect("2 bytes"))
}

/// What a transaction marker says (the only control record Kafka writes besides KRaft's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    /// True for COMMIT (control type 1), false for ABORT (type 0).
    pub commit: bool,
    /// The transaction coordinator's epoch that wrote it.
    pub coordinator_epoch: i32,
}

/// Reads the marker of a control batch (`batch` holds exactly its bytes, already validated):
/// its one record's key is `version i16, type i16` (0 abort, 1 commit), its value
/// `version i16, coordinator_epoch i32`. Other control types (KRaft's, above 1) are `None`.
pub fn txn_marker(batch: &[u8]) -> Result<Option<TxnMarker>, WireError> {
    let header = BatchHeader::parse(batch)?;
    if !header.is_control() {
        return Ok(None);
    }
    let bad = |reason| WireError::InvalidBatch { reason };
    if header.compression()? != Compression::None || header.record_count != 1 {
        return Err(bad("a control batch holds one uncompressed record"));
    }
    let data = Bytes::copy_from_slice(&batch[BATCH_HEADER_BYTES.min(batch.len())..]);
    let record = decode_record(&mut varint::Cursor::new(&data), &data, &header)?;
    let key = record.key.ok_or(bad("a control record has a key"))?;
    if key.len() < 4 {
        return Err(bad("control record key too short"));
    }
    let kind = i16::from_be_bytes([key[2], key[3]]);
    if kind > 1 {
        return Ok(None);
    }
    let coordinator_epoch = match record.value.as_deref() {
        Some(v) if v.len() >= 6 => i32::from_be_bytes([v[2], v[3], v[4], v[5]]),
        _ => return Err(bad("transaction marker value too short")),
    };
    Ok(Some(TxnMarker {
        commit: kind == 1,
        coordinator_epoch,
    }))
}

/// Builds the control batch of a transaction marker the way a partition leader writes it:
/// transactional and control bits, sequence -1, one record at offset delta 0.
pub fn build_txn_marker(
    producer_id: i64,
    producer_epoch: i16,
    marker: TxnMarker,
    timestamp: i64,
) -> Vec<u8> {
    let mut key = 0i16.to_be_bytes().to_vec();
    key.extend_from_slice(&i16::from(marker.commit).to_be_bytes());
    let mut value = 0i16.to_be_bytes().to_vec();
    value.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    let builder = BatchBuilder {
        producer_id,
        producer_epoch,
        transactional: true,
        ..Default::default()
    };
    let mut batch = builder.build(&[NewRecord {
        timestamp,
        key: Some(key),
        value: Some(value),
        headers: Vec::new(),
    }]);
    let attributes = i16::from_be_bytes([batch[21], batch[22]]) | 0x20;
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> Vec<NewRecord> {
        (0..n)
            .map(|i| NewRecord {
                timestamp: 1_700_000_000_000 + i as i64,
                key: if i % 3 == 0 {
                    None
                } else {
                    Some(format!("k{i}").into_bytes())
                },
                value: Some(vec![i as u8; i * 7]),
                headers: vec![("h".into(), Some(b"v".to_vec())), ("n".into(), None)],
            })
            .collect()
    }

    #[test]
    fn txn_markers_round_trip_and_data_batches_are_not_markers() {
        for (commit, epoch) in [(true, 7), (false, 0)] {
            let marker = TxnMarker {
                commit,
                coordinator_epoch: epoch,
            };
            let batch = build_txn_marker(42, 3, marker, 1_000);
            let h = validate_batch(&batch).unwrap();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (42, 3, -1)
            );
            assert_eq!(txn_marker(&batch).unwrap(), Some(marker));
        }
        let data = BatchBuilder::default().build(&[NewRecord::default()]);
        assert_eq!(txn_marker(&data).unwrap(), None);
        let mut short = build_txn_marker(
            1,
            0,
            TxnMarker {
                commit: true,
                coordinator_epoch: 0,
            },
            0,
        );
        let n = short.len();
        short.truncate(n - 3);
        assert!(txn_marker(&short).is_err());
    }

    #[test]
    fn build_validate_decode_round_trip_every_codec() {
        for codec in Compression::ALL {
            let builder = BatchBuilder {
                compression: codec,
                base_offset: 40,
                ..Default::default()
            };
            let batch = builder.build(&sample(25));
            let header = validate_batch(&batch).unwrap();
            assert_eq!(header.record_count, 25);
            assert_eq!(header.compression().unwrap(), codec);
            let records = decode_records(&batch, 1 << 20).unwrap();
            assert_eq!(records.len(), 25);
            for (i, r) in records.iter().enumerate() {
                assert_eq!(r.offset, 40 + i as i64);
                assert_eq!(r.timestamp, 1_700_000_000_000 + i as i64);
                assert_eq!(r.value.as_deref(), Some(&vec![i as u8; i * 7][..]));
                assert_eq!(r.headers.len(), 2);
                assert_eq!(r.headers[1].1, None);
            }
            assert_eq!(records[0].key, None);
            assert_eq!(records[1].key.as_deref(), Some(&b"k1"[..]));
        }
    }

    #[test]
    fn filter_records_keeps_offsets_timestamps_and_header_fields_under_every_codec() {
        for codec in Compression::ALL {
            let builder = BatchBuilder {
                compression: codec,
                producer_id: 9,
                producer_epoch: 2,
                base_sequence: 30,
                ..Default::default()
            };
            let mut batch = builder.build(&sample(10));
            set_base_offset(&mut batch, 100);
            set_partition_leader_epoch(&mut batch, 4);
            let original = decode_records(&batch, 1 << 20).unwrap();
            let out = filter_records(&batch, 1 << 20, |r| r.offset % 3 == 1)
                .unwrap()
                .expect("records were dropped");
            let h = validate_stored_batch(&out).unwrap();
            assert!(
                validate_batch(&out).is_err(),
                "holes in the span are not a produce batch"
            );
            let before = BatchHeader::parse(&batch).unwrap();
            assert_eq!(
                (h.base_offset, h.last_offset_delta, h.record_count),
                (100, 9, 4)
            );
            assert_eq!(
                (h.producer_id, h.base_sequence, h.partition_leader_epoch),
                (9, 30, 4)
            );
            assert_eq!(
                (h.base_timestamp, h.max_timestamp),
                (before.base_timestamp, before.max_timestamp)
            );
            assert_eq!(h.compression().unwrap(), codec);
            let kept = decode_records(&out, 1 << 20).unwrap();
            let expected: Vec<_> = original.into_iter().filter(|r| r.offset % 3 == 1).collect();
            assert_eq!(kept, expected);
            assert!(filter_records(&batch, 1 << 20, |_| true).unwrap().is_none());
            let empty = filter_records(&batch, 1 << 20, |_| false).unwrap().unwrap();
            let h = validate_stored_batch(&empty).unwrap();
            assert_eq!(
                (h.record_count, h.last_offset_delta, h.base_sequence),
                (0, 9, 30)
            );
            assert_eq!(h.compression().unwrap(), Compression::None);
            assert_eq!(empty.len(), BATCH_HEADER_BYTES);
            assert!(decode_records(&empty, 1 << 20).unwrap().is_empty());
        }
    }

    #[test]
    fn stored_batches_with_more_records_than_their_span_are_rejected() {
        let mut batch = BatchBuilder::default().build(&sample(3));
        batch[23..27].copy_from_slice(&1i32.to_be_bytes());
        let crc = crc32c::crc32c(&batch[CRC_START..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(validate_stored_batch(&batch).is_err());
        assert!(filter_records(&batch, 1 << 20, |_| true).is_err());
    }

    #[test]
    fn corrupt_byte_is_a_crc_mismatch() {
        let mut batch = BatchBuilder::default().build(&sample(3));
        let last = batch.len() - 1;
        batch[last] ^= 0x40;
        assert!(matches!(
            validate_batch(&batch),
            Err(WireError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn offsets_and_epoch_are_outside_the_crc_but_append_time_is_not() {
        let mut batch = BatchBuilder::default().build(&sample(3));
        set_base_offset(&mut batch, 1234);
        set_partition_leader_epoch(&mut batch, 7);
        let header = validate_batch(&batch).unwrap();
        assert_eq!(
            (header.base_offset, header.partition_leader_epoch),
            (1234, 7)
        );
        stamp_log_append_time(&mut batch, 99);
        let header = validate_batch(&batch).unwrap();
        assert!(header.is_log_append_time());
        let records = decode_records(&batch, 1 << 20).unwrap();
        assert!(records.iter().all(|r| r.timestamp == 99));
    }

    #[test]
    fn iterator_stops_at_a_torn_tail_at_every_cut() {
        let a = BatchBuilder::default().build(&sample(2));
        let b = BatchBuilder::default().build(&sample(4));
        let mut log = a.clone();
        log.extend_from_slice(&b);
        for cut in 0..=log.len() {
            let steps: Vec<_> = BatchIter::new(&log[..cut]).collect();
            let whole = steps
                .iter()
                .filter(|s| matches!(s, BatchStep::Batch { .. }))
                .count();
            let expected = usize::from(cut >= a.len()) + usize::from(cut == log.len());
            assert_eq!(whole, expected, "cut at {cut}");
            if let Some(BatchStep::Tail { position, .. }) = steps.last() {
                assert_eq!(*position, if cut >= a.len() { a.len() } else { 0 });
            }
        }
    }

    #[test]
    fn inconsistent_counts_are_rejected() {
        let mut batch = BatchBuilder::default().build(&sample(3));
        batch[57..61].copy_from_slice(&1_000_000i32.to_be_bytes());
        let crc = crc32c::crc32c(&batch[CRC_START..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate_batch(&batch),
            Err(WireError::InvalidBatch { .. })
        ));
        assert!(decode_records(&batch, 1 << 20).is_err());
    }

    #[test]
    fn every_prefix_of_a_batch_is_an_error_not_a_panic() {
        let batch = BatchBuilder {
            compression: Compression::Lz4,
            ..Default::default()
        }
        .build(&sample(5));
        for cut in 0..batch.len() {
            assert!(validate_batch(&batch[..cut]).is_err());
            let _ = decode_records(&batch[..cut], 1 << 20);
        }
    }
}
