//! The durable form of a share partition: Kafka's `__share_group_state` records, byte for byte.
//! A ShareSnapshot record holds the whole state; a ShareUpdate record holds the state batches
//! that changed since the previous record and is applied over it (later batches win where
//! offsets overlap, batches below the start offset are dropped).
//!
//! Both key and value start with a big-endian i16 version, as every coordinator record does.
//! The key's version names the record type; keys are not flexible (`string` = i16 length +
//! UTF-8, `uuid` = 16 bytes). Values are flexible (KIP-482): arrays are compact (unsigned
//! varint count + 1) and every struct ends with its tagged fields (unsigned varint count, then
//! per field: uvarint tag, uvarint size, bytes).
//!
//! ```text
//! ShareSnapshotKey   i16 0 | string GroupId | uuid TopicId | i32 Partition
//! ShareUpdateKey     i16 1 | string GroupId | uuid TopicId | i32 Partition
//! ShareSnapshotValue i16 0 | i32 SnapshotEpoch | i32 StateEpoch | i32 LeaderEpoch
//!                    | i64 StartOffset | i64 CreateTimestamp | i64 WriteTimestamp
//!                    | StateBatches | tagged fields
//! ShareUpdateValue   i16 0 | i32 SnapshotEpoch | i32 LeaderEpoch | i64 StartOffset
//!                    | StateBatches | tagged fields
//! StateBatches       uvarint n+1 | n x (i64 FirstOffset | i64 LastOffset | i8 DeliveryState
//!                    | i16 DeliveryCount | tagged fields)
//! ```
//!
//! DeliveryState is 0 Available, 2 Acknowledged, 4 Archived; Acquired (1) is never written.
//! SnapshotEpoch is an int32 since Kafka 4.1 (it was a uint16 while KIP-932 was in early
//! access); CreateTimestamp and WriteTimestamp came with KAFKA-18170. Kafka 4.2 (KIP-1226) adds
//! DeliveryCompleteCount as tagged field 0 (int32, default -1) of both values; it is not
//! written here (readers take the default), and unknown tagged fields of a value are kept and
//! written back unchanged (those of a state batch are skipped). The layout above was checked
//! against the schemas shipped in Kafka 4.4's `kafka-share-coordinator` jar
//! (`common/message/Share{Snapshot,Update}{Key,Value}.json`). Decoding never panics: every prefix of a valid record is an error.

use super::WriteSeq;

/// Key version (record type) of a ShareSnapshot record.
pub const SNAPSHOT_KEY_VERSION: i16 = 0;
/// Key version (record type) of a ShareUpdate record.
pub const UPDATE_KEY_VERSION: i16 = 1;
/// The one value version.
pub const VALUE_VERSION: i16 = 0;
/// Persisted DeliveryState of an available record.
pub const DELIVERY_STATE_AVAILABLE: i8 = 0;
/// Kafka's in-memory id of an acquired record; accepted on read as available.
pub const DELIVERY_STATE_ACQUIRED: i8 = 1;
/// Persisted DeliveryState of an acknowledged record.
pub const DELIVERY_STATE_ACKNOWLEDGED: i8 = 2;
/// Persisted DeliveryState of an archived record.
pub const DELIVERY_STATE_ARCHIVED: i8 = 4;

/// Smallest encoded state batch: two i64, i8, i16, an empty tagged-field section.
const STATE_BATCH_BYTES_MIN: usize = 8 + 8 + 1 + 2 + 1;
/// Smallest encoded tagged field: tag, size.
const TAGGED_FIELD_BYTES_MIN: usize = 2;

/// Which share partition a record belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareStateKey {
    /// Share group id.
    pub group_id: String,
    /// Topic id.
    pub topic_id: uuid::Uuid,
    /// Partition index.
    pub partition: i32,
}

/// A run of offsets in one delivery state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateBatch {
    /// First offset of the run.
    pub first_offset: i64,
    /// Last offset of the run (inclusive).
    pub last_offset: i64,
    /// 0 Available, 2 Acknowledged, 4 Archived.
    pub delivery_state: i8,
    /// Deliveries so far.
    pub delivery_count: i16,
}

/// A full share-partition state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareSnapshotValue {
    /// Counts snapshots of this share partition; updates name the one they follow.
    pub snapshot_epoch: i32,
    /// Bumped when the start offset is reset (AlterShareGroupOffsets).
    pub state_epoch: i32,
    /// Leader epoch of the topic-partition when written.
    pub leader_epoch: i32,
    /// The share-partition start offset (SPSO).
    pub start_offset: i64,
    /// When the snapshot was made (ms).
    pub create_timestamp: i64,
    /// When it was written (ms); later than `create_timestamp` only for a rewrite.
    pub write_timestamp: i64,
    /// The in-flight states, ascending.
    pub state_batches: Vec<StateBatch>,
    /// Tagged fields this codec does not know, as (tag, bytes), written back as read.
    pub unknown_tagged_fields: Vec<(u32, Vec<u8>)>,
}

/// The states that changed since the previous record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareUpdateValue {
    /// Epoch of the snapshot this update follows.
    pub snapshot_epoch: i32,
    /// Leader epoch of the topic-partition when written.
    pub leader_epoch: i32,
    /// The share-partition start offset, or -1 if unchanged.
    pub start_offset: i64,
    /// Changed states, ascending.
    pub state_batches: Vec<StateBatch>,
    /// Tagged fields this codec does not know, written back as read.
    pub unknown_tagged_fields: Vec<(u32, Vec<u8>)>,
}

/// One `__share_group_state` record value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateRecord {
    /// Replaces the whole state.
    Snapshot(ShareSnapshotValue),
    /// Applies over the state so far.
    Update(ShareUpdateValue),
}

/// A record to make durable, numbered so acknowledgements can wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateWrite {
    /// Answer acknowledgements whose [`WriteSeq`] is at most this once it is durable.
    pub seq: WriteSeq,
    /// The record value.
    pub record: StateRecord,
}

/// Why bytes are not a share-state record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The bytes end inside a field.
    #[error("truncated at byte {at}")]
    Truncated {
        /// Where the missing field starts.
        at: usize,
    },
    /// A length or count is negative, null where not allowed, or larger than what is left.
    #[error("bad length {declared} at byte {at}")]
    BadLength {
        /// Where the length starts.
        at: usize,
        /// The length read.
        declared: i64,
    },
    /// An unsigned varint runs past 5 bytes.
    #[error("bad varint at byte {at}")]
    BadVarint {
        /// Where it starts.
        at: usize,
    },
    /// A key or value version this codec does not know.
    #[error("unknown {what} version {version}")]
    UnknownVersion {
        /// "key" or "value".
        what: &'static str,
        /// The version read.
        version: i16,
    },
    /// The group id is not UTF-8.
    #[error("group id is not UTF-8")]
    InvalidUtf8,
    /// Bytes follow the record.
    #[error("{extra} bytes after the record")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// A group id longer than a key string can hold.
    #[error("group id of {len} bytes does not fit a record key")]
    GroupIdTooLong {
        /// Its length.
        len: usize,
    },
}

impl StateRecord {
    /// The key version this record is written under.
    pub fn key_version(&self) -> i16 {
        match self {
            StateRecord::Snapshot(_) => SNAPSHOT_KEY_VERSION,
            StateRecord::Update(_) => UPDATE_KEY_VERSION,
        }
    }

    #[cfg_attr(not(test), allow(dead_code))]
    /// The record key for share partition `key`.
    pub fn encode_key(&self, key: &ShareStateKey) -> Result<Vec<u8>, RecordError> {
        encode_key(self.key_version(), key)
    }

    /// The record value, version-prefixed.
    pub fn encode_value(&self) -> Vec<u8> {
        let mut b = VALUE_VERSION.to_be_bytes().to_vec();
        match self {
            StateRecord::Snapshot(v) => {
                b.extend_from_slice(&v.snapshot_epoch.to_be_bytes());
                b.extend_from_slice(&v.state_epoch.to_be_bytes());
                b.extend_from_slice(&v.leader_epoch.to_be_bytes());
                b.extend_from_slice(&v.start_offset.to_be_bytes());
                b.extend_from_slice(&v.create_timestamp.to_be_bytes());
                b.extend_from_slice(&v.write_timestamp.to_be_bytes());
                put_batches(&mut b, &v.state_batches);
                put_tagged(&mut b, &v.unknown_tagged_fields);
            }
            StateRecord::Update(v) => {
                b.extend_from_slice(&v.snapshot_epoch.to_be_bytes());
                b.extend_from_slice(&v.leader_epoch.to_be_bytes());
                b.extend_from_slice(&v.start_offset.to_be_bytes());
                put_batches(&mut b, &v.state_batches);
                put_tagged(&mut b, &v.unknown_tagged_fields);
            }
        }
        b
    }

    /// Decodes a record value of the type key version `key_version` names.
    pub fn decode_value(key_version: i16, bytes: &[u8]) -> Result<StateRecord, RecordError> {
        let mut r = Reader { buf: bytes, pos: 0 };
        let version = r.i16()?;
        if version != VALUE_VERSION {
            return Err(RecordError::UnknownVersion {
                what: "value",
                version,
            });
        }
        let record = match key_version {
            SNAPSHOT_KEY_VERSION => StateRecord::Snapshot(ShareSnapshotValue {
                snapshot_epoch: r.i32()?,
                state_epoch: r.i32()?,
                leader_epoch: r.i32()?,
                start_offset: r.i64()?,
                create_timestamp: r.i64()?,
                write_timestamp: r.i64()?,
                state_batches: r.batches()?,
                unknown_tagged_fields: r.tagged()?,
            }),
            UPDATE_KEY_VERSION => StateRecord::Update(ShareUpdateValue {
                snapshot_epoch: r.i32()?,
                leader_epoch: r.i32()?,
                start_offset: r.i64()?,
                state_batches: r.batches()?,
                unknown_tagged_fields: r.tagged()?,
            }),
            version => {
                return Err(RecordError::UnknownVersion {
                    what: "key",
                    version,
                })
            }
        };
        r.finish()?;
        Ok(record)
    }
}

/// A record key: `version` is [`SNAPSHOT_KEY_VERSION`] or [`UPDATE_KEY_VERSION`].
pub fn encode_key(version: i16, key: &ShareStateKey) -> Result<Vec<u8>, RecordError> {
    let len = i16::try_from(key.group_id.len()).map_err(|_| RecordError::GroupIdTooLong {
        len: key.group_id.len(),
    })?;
    let mut b = version.to_be_bytes().to_vec();
    b.extend_from_slice(&len.to_be_bytes());
    b.extend_from_slice(key.group_id.as_bytes());
    b.extend_from_slice(key.topic_id.as_bytes());
    b.extend_from_slice(&key.partition.to_be_bytes());
    Ok(b)
}

/// Decodes a record key into its version (the record type) and share partition.
pub fn decode_key(bytes: &[u8]) -> Result<(i16, ShareStateKey), RecordError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let version = r.i16()?;
    if version != SNAPSHOT_KEY_VERSION && version != UPDATE_KEY_VERSION {
        return Err(RecordError::UnknownVersion {
            what: "key",
            version,
        });
    }
    let at = r.pos;
    let len = r.i16()?;
    let len = usize::try_from(len).map_err(|_| RecordError::BadLength {
        at,
        declared: i64::from(len),
    })?;
    let group_id =
        String::from_utf8(r.take(len)?.to_vec()).map_err(|_| RecordError::InvalidUtf8)?;
    let topic_id = uuid::Uuid::from_bytes(r.take(16)?.try_into().expect("took 16 bytes"));
    let partition = r.i32()?;
    r.finish()?;
    Ok((
        version,
        ShareStateKey {
            group_id,
            topic_id,
            partition,
        },
    ))
}

fn put_batches(b: &mut Vec<u8>, batches: &[StateBatch]) {
    millrace_wire::varint::put_uvarint(b, batches.len() as u64 + 1);
    for s in batches {
        b.extend_from_slice(&s.first_offset.to_be_bytes());
        b.extend_from_slice(&s.last_offset.to_be_bytes());
        b.push(s.delivery_state as u8);
        b.extend_from_slice(&s.delivery_count.to_be_bytes());
        b.push(0); // no tagged fields
    }
}

fn put_tagged(b: &mut Vec<u8>, fields: &[(u32, Vec<u8>)]) {
    millrace_wire::varint::put_uvarint(b, fields.len() as u64);
    for (tag, data) in fields {
        millrace_wire::varint::put_uvarint(b, u64::from(*tag));
        millrace_wire::varint::put_uvarint(b, data.len() as u64);
        b.extend_from_slice(data);
    }
}

/// A bounds-checked reader that names the byte where decoding failed.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.buf.len() - self.pos < n {
            return Err(RecordError::Truncated { at: self.pos });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    fn i8(&mut self) -> Result<i8, RecordError> {
        Ok(i8::from_be_bytes(self.array()?))
    }

    fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// An unsigned varint of at most 5 bytes (lengths, counts and tags are u32 in Kafka).
    fn uvarint(&mut self) -> Result<u32, RecordError> {
        let at = self.pos;
        let mut value = 0u64;
        for i in 0..5 {
            let b = self.take(1)?[0];
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return u32::try_from(value).map_err(|_| RecordError::BadVarint { at });
            }
        }
        Err(RecordError::BadVarint { at })
    }

    /// A compact array count whose elements (at least `min_bytes` each) fit in what is left;
    /// null (0) is refused, as the arrays here are not nullable.
    fn count(&mut self, min_bytes: usize) -> Result<usize, RecordError> {
        let at = self.pos;
        let raw = self.uvarint()?;
        let fits = |n: usize| n.saturating_mul(min_bytes) <= self.buf.len() - self.pos;
        match (raw as usize).checked_sub(1) {
            Some(n) if fits(n) => Ok(n),
            _ => Err(RecordError::BadLength {
                at,
                declared: i64::from(raw) - 1,
            }),
        }
    }

    fn batches(&mut self) -> Result<Vec<StateBatch>, RecordError> {
        let n = self.count(STATE_BATCH_BYTES_MIN)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(StateBatch {
                first_offset: self.i64()?,
                last_offset: self.i64()?,
                delivery_state: self.i8()?,
                delivery_count: self.i16()?,
            });
            // A batch's tagged fields are skipped: none is known at this version.
            self.tagged()?;
        }
        Ok(out)
    }

    fn tagged(&mut self) -> Result<Vec<(u32, Vec<u8>)>, RecordError> {
        let at = self.pos;
        let n = self.uvarint()? as usize;
        if n.saturating_mul(TAGGED_FIELD_BYTES_MIN) > self.buf.len() - self.pos {
            return Err(RecordError::BadLength {
                at,
                declared: n as i64,
            });
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let tag = self.uvarint()?;
            let size = self.uvarint()? as usize;
            out.push((tag, self.take(size)?.to_vec()));
        }
        Ok(out)
    }

    fn finish(&self) -> Result<(), RecordError> {
        match self.buf.len() - self.pos {
            0 => Ok(()),
            extra => Err(RecordError::TrailingBytes { extra }),
        }
    }
}
