//! What a Raft entry carries: the records of one metadata log batch.
//!
//! ```text
//! entry data = empty                                   raft-rs's empty leader entry
//!            | count u32 | { len u32 | record } * count  (big-endian; record =
//!                                                        MetadataRecord::encode())
//! ```
//!
//! The empty entry a new leader appends to commit its term is stored as a batch holding one
//! `MetadataRecord::NoOp`; the mapping is canonical both ways: a batch of exactly one NoOp
//! reads back as empty data, and proposing exactly `[NoOp]` proposes empty data. Only
//! `EntryNormal` entries with an empty context exist in this log (voters are static, see the
//! module docs), so the batch's records and term are all an entry is.

use crate::error::ReplicationError;
use crate::metadata::codec::{Reader, Writer};
use crate::metadata::log::BATCH_BYTES_MAX;
use crate::metadata::MetadataRecord;

/// Bytes of one record's length prefix: the least a record costs in entry data.
const RECORD_PREFIX_BYTES: usize = 4;

/// The entry data for `records` (which must not be empty).
pub fn encode_entry_data(records: &[MetadataRecord]) -> Vec<u8> {
    if matches!(records, [MetadataRecord::NoOp]) {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(64 * records.len());
    let mut w = Writer(&mut out);
    w.u32(records.len() as u32);
    for record in records {
        let value = record.encode();
        w.u32(value.len() as u32);
        w.raw(&value);
    }
    out
}

/// The records of entry data; untrusted bytes (they arrive from peers): every length is
/// checked against the bytes present and the batch bound, nothing panics.
pub fn decode_entry_data(data: &[u8]) -> Result<Vec<MetadataRecord>, ReplicationError> {
    if data.is_empty() {
        return Ok(vec![MetadataRecord::NoOp]);
    }
    if data.len() > BATCH_BYTES_MAX {
        return Err(ReplicationError::BatchTooLarge {
            bytes: data.len(),
            max: BATCH_BYTES_MAX,
        });
    }
    let mut r = Reader::new(data, "raft entry data");
    let at = r.pos();
    let count = r.count(RECORD_PREFIX_BYTES)?;
    if count == 0 {
        return Err(ReplicationError::Malformed {
            what: "raft entry data",
            at,
            reason: "an entry holds at least one record",
        });
    }
    let mut records = Vec::with_capacity(count);
    for _ in 0..count {
        let at = r.pos();
        let len = r.u32()? as usize;
        if len > r.remaining() {
            return Err(ReplicationError::BadLength {
                what: "raft entry data",
                at,
                declared: len as i64,
                available: r.remaining(),
            });
        }
        records.push(MetadataRecord::decode(r.raw(len)?)?);
    }
    r.finish()?;
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::sample::RecordSource;
    use crate::metadata::ClusterImage;

    #[test]
    fn records_round_trip_and_a_lone_noop_is_the_empty_entry() {
        assert!(encode_entry_data(&[MetadataRecord::NoOp]).is_empty());
        assert_eq!(decode_entry_data(&[]).unwrap(), vec![MetadataRecord::NoOp]);
        let two = [MetadataRecord::NoOp, MetadataRecord::NoOp];
        assert_eq!(decode_entry_data(&encode_entry_data(&two)).unwrap(), two);
        let mut source = RecordSource::new(9);
        let image = ClusterImage::default();
        for n in 1..20 {
            let records: Vec<_> = (0..n).map(|_| source.next_valid(&image)).collect();
            let data = encode_entry_data(&records);
            let expected = if matches!(&records[..], [MetadataRecord::NoOp]) {
                vec![MetadataRecord::NoOp]
            } else {
                records.clone()
            };
            assert_eq!(decode_entry_data(&data).unwrap(), expected);
            for cut in 1..data.len() {
                assert!(decode_entry_data(&data[..cut]).is_err(), "cut at {cut}");
            }
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode_entry_data(&[0, 0, 0, 0]).is_err(), "zero records");
        assert!(decode_entry_data(&[0xff, 0xff, 0xff, 0xff, 0]).is_err());
        assert!(decode_entry_data(&[0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]).is_err());
        let mut data = encode_entry_data(&[MetadataRecord::NoOp, MetadataRecord::NoOp]);
        data.push(0);
        assert!(decode_entry_data(&data).is_err(), "trailing byte");
    }
}
