//! Per-partition record batches, encoded in place as records arrive.
//!
//! Records go straight into the batch's record section (no per-record allocation); sealing
//! compresses that section when asked, writes the 61-byte v2 header in front and computes the
//! CRC-32C, exactly the bytes a Kafka producer sends (see `millrace_wire::records` for the
//! layout). Every record's value starts with its intended send time, so a consumer can measure
//! end-to-end latency:
//!
//! ```text
//! value = intended_send_ns:u64 (since the run's start instant) | filler (record_size - 8)
//! ```

use millrace_wire::records::{BATCH_HEADER_BYTES, LOG_OVERHEAD};
use millrace_wire::varint::put_varint;
use millrace_wire::Compression;

/// Bytes at the front of every value: the intended send time.
pub const STAMP_BYTES: usize = 8;

/// An open batch for one partition.
#[derive(Debug, Default)]
pub struct OpenBatch {
    records: Vec<u8>,
    count: i32,
    /// Intended send time of each record, ns since the run's start.
    pub intended_ns: Vec<u64>,
    /// Value bytes in the batch (what throughput counts).
    pub value_bytes: u64,
    /// When the first record arrived (for linger), ns since the run's start.
    pub opened_ns: u64,
    base_timestamp_ms: i64,
}

/// A sealed batch, ready to send.
#[derive(Debug)]
pub struct SealedBatch {
    /// Partition it goes to.
    pub partition: i32,
    /// The encoded batch.
    pub bytes: bytes::Bytes,
    /// Intended send time of each record.
    pub intended_ns: Vec<u64>,
    /// Value bytes.
    pub value_bytes: u64,
}

impl OpenBatch {
    /// Records in the batch.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when no record was appended since the last seal.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes of the (uncompressed) record section so far.
    pub fn size_bytes(&self) -> usize {
        self.records.len() + BATCH_HEADER_BYTES
    }

    /// Appends one record whose value is the stamp followed by `filler`.
    pub fn append(
        &mut self,
        key: Option<&[u8]>,
        filler: &[u8],
        intended_ns: u64,
        now_ns: u64,
        wall_ms: i64,
    ) {
        if self.count == 0 {
            self.opened_ns = now_ns;
            self.base_timestamp_ms = wall_ms;
        }
        let value_len = STAMP_BYTES + filler.len();
        let key_len = key.map_or(-1, |k| k.len() as i32);
        // attributes (1), timestamp delta 0 (1), offset delta, key, value, header count (1).
        let body_len = 3
            + varint_len(self.count)
            + varint_len(key_len)
            + key_len.max(0) as usize
            + varint_len(value_len as i32)
            + value_len;
        let r = &mut self.records;
        r.reserve(body_len + 5);
        put_varint(r, body_len as i32);
        r.extend_from_slice(&[0, 0]);
        put_varint(r, self.count);
        put_varint(r, key_len);
        if let Some(k) = key {
            r.extend_from_slice(k);
        }
        put_varint(r, value_len as i32);
        r.extend_from_slice(&intended_ns.to_be_bytes());
        r.extend_from_slice(filler);
        r.push(0);
        self.count += 1;
        self.intended_ns.push(intended_ns);
        self.value_bytes += value_len as u64;
    }

    /// Encodes the batch and resets this one for reuse.
    pub fn seal(
        &mut self,
        partition: i32,
        compression: Compression,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
    ) -> SealedBatch {
        assert!(self.count > 0, "sealing an empty batch");
        let body = match compression {
            Compression::None => std::borrow::Cow::Borrowed(&self.records[..]),
            codec => std::borrow::Cow::Owned(
                codec
                    .compress(&self.records)
                    .expect("compressing into memory does not fail"),
            ),
        };
        let mut out = Vec::with_capacity(BATCH_HEADER_BYTES + body.len());
        out.extend_from_slice(&0i64.to_be_bytes());
        let batch_length = (BATCH_HEADER_BYTES - LOG_OVERHEAD + body.len()) as i32;
        out.extend_from_slice(&batch_length.to_be_bytes());
        out.extend_from_slice(&(-1i32).to_be_bytes());
        out.push(2);
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&compression.attribute_bits().to_be_bytes());
        out.extend_from_slice(&(self.count - 1).to_be_bytes());
        out.extend_from_slice(&self.base_timestamp_ms.to_be_bytes());
        out.extend_from_slice(&self.base_timestamp_ms.to_be_bytes());
        out.extend_from_slice(&producer_id.to_be_bytes());
        out.extend_from_slice(&producer_epoch.to_be_bytes());
        out.extend_from_slice(&base_sequence.to_be_bytes());
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(&body);
        let crc = crc32c::crc32c(&out[21..]);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
        let sealed = SealedBatch {
            partition,
            bytes: bytes::Bytes::from(out),
            intended_ns: std::mem::take(&mut self.intended_ns),
            value_bytes: self.value_bytes,
        };
        self.records.clear();
        self.count = 0;
        self.value_bytes = 0;
        sealed
    }
}

fn varint_len(value: i32) -> usize {
    let mut zigzag = ((value << 1) ^ (value >> 31)) as u32;
    let mut n = 1;
    while zigzag >= 0x80 {
        zigzag >>= 7;
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use millrace_wire::records::{decode_records, validate_batch};

    #[test]
    fn sealed_batches_validate_and_carry_the_stamps_under_every_codec() {
        let filler = [b'x'; 200];
        for codec in Compression::ALL {
            let mut batch = OpenBatch::default();
            for i in 0..50u64 {
                let key = format!("key-{i}");
                let key = (i % 2 == 0).then_some(key.as_bytes());
                batch.append(
                    key,
                    &filler[..(i as usize * 3) % 200],
                    1000 + i,
                    5,
                    1_700_000,
                );
            }
            assert_eq!(batch.len(), 50);
            let sealed = batch.seal(3, codec, 77, 1, 10);
            assert!(batch.is_empty());
            let header = validate_batch(&sealed.bytes).unwrap();
            assert_eq!(header.record_count, 50);
            assert_eq!((header.producer_id, header.base_sequence), (77, 10));
            let records = decode_records(&sealed.bytes, 1 << 20).unwrap();
            for (i, r) in records.iter().enumerate() {
                let value = r.value.as_ref().unwrap();
                assert_eq!(value.len(), 8 + (i * 3) % 200);
                assert_eq!(
                    u64::from_be_bytes(value[..8].try_into().unwrap()),
                    1000 + i as u64
                );
                assert_eq!(r.key.is_some(), i % 2 == 0);
                assert_eq!(r.offset, i as i64);
            }
            assert_eq!(sealed.intended_ns.len(), 50);
        }
    }
}
