//! What the connection's shard checks before a partition's records go to their owner: whole
//! batches (magic, lengths, CRC-32C, `max.message.bytes`), then Kafka's per-record rules
//! (KIP-467): a compacted topic's records carry keys; a CreateTime record's timestamp lies within
//! `message.timestamp.{before,after}.max.ms` of now; a producer does not claim LogAppendTime.
//!
//! A partition is written whole or not at all. When records break a per-record rule, the
//! partition is refused with every failing record listed by its index (`record_errors`,
//! Produce v8+), so the client fails exactly those records and may send the others again:
//! INVALID_TIMESTAMP when a timestamp is among the faults, INVALID_RECORD otherwise, as Kafka
//! answers. Kafka accepts one batch per partition from v3 and indexes records within it;
//! millrace also takes several batches per partition (its own tools send them) and counts the
//! index across the partition's batches, which is the same thing for a one-batch request.
//!
//! Records are decoded only when a rule needs them: compacted topics, a batch flagged
//! LogAppendTime, or timestamps the batch header cannot vouch for (its max timestamp is past the
//! window's end, or a finite `message.timestamp.before.max.ms` needs each record's timestamp).

use crate::errors::{code, wire_code};
use crate::topic_config::TopicSettings;
use bytes::Bytes;
use millrace_wire::records::{
    decode_records, recompress, validate_batch, BatchHeader, BatchIter, BatchStep,
};

/// Bound on a batch's decompressed size when the broker decodes it (timestamps, recompression).
pub(super) const DECOMPRESSED_BYTES_MAX: usize = 64 << 20;

/// Kafka's "no timestamp" value: such a record is not range-checked.
const NO_TIMESTAMP: i64 = -1;

/// Why a partition's records were refused.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Refused {
    /// Kafka error code for the partition.
    pub code: i16,
    /// The partition's error message.
    pub message: String,
    /// KIP-467: (record index, why) for each record at fault; empty when the whole request is.
    pub record_errors: Vec<(i32, String)>,
}

impl Refused {
    pub(super) fn whole(code: i16, message: impl Into<String>) -> Refused {
        Refused {
            code,
            message: message.into(),
            record_errors: Vec::new(),
        }
    }
}

/// The partition a check runs for (named in the per-record messages) and the clock.
pub(super) struct Target<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub now_ms: i64,
}

/// Validates a partition's records; returns them recompressed when the topic's
/// `compression.type` asks for a codec some batch does not use.
pub(super) fn validate_records(
    records: Option<&Bytes>,
    settings: &TopicSettings,
    target: &Target<'_>,
) -> Result<Option<Bytes>, Refused> {
    let Some(records) = records.filter(|r| !r.is_empty()) else {
        return Err(Refused::whole(
            code::CORRUPT_MESSAGE,
            "no record batch in the request",
        ));
    };
    let max_batch_bytes = settings.max_message_bytes;
    let too_large = |len: usize| {
        Refused::whole(
            code::MESSAGE_TOO_LARGE,
            format!("record batch of {len} bytes exceeds the limit of {max_batch_bytes}"),
        )
    };
    let malformed = |e: millrace_wire::WireError| Refused::whole(wire_code(&e), e.to_string());
    let mut recompress_to = None;
    let mut faults = Faults::default();
    let mut first_index = 0i32;
    for step in BatchIter::new(records) {
        match step {
            BatchStep::Batch { bytes, .. } => {
                if bytes.len() > max_batch_bytes {
                    return Err(too_large(bytes.len()));
                }
                let header = validate_batch(bytes).map_err(malformed)?;
                check_records(bytes, &header, settings, target, first_index, &mut faults)?;
                first_index = first_index.saturating_add(header.record_count.max(0));
                if let Some(codec) = settings.compression {
                    if header.compression().ok() != Some(codec) {
                        recompress_to = Some(codec);
                    }
                }
            }
            BatchStep::Tail { reason, .. } => return Err(malformed(reason)),
        }
    }
    faults.into_result()?;
    let Some(codec) = recompress_to else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(records.len());
    for step in BatchIter::new(records) {
        if let BatchStep::Batch { bytes, .. } = step {
            let batch = recompress(bytes, codec, DECOMPRESSED_BYTES_MAX).map_err(malformed)?;
            if batch.len() > max_batch_bytes {
                return Err(too_large(batch.len()));
            }
            out.extend_from_slice(&batch);
        }
    }
    Ok(Some(Bytes::from(out)))
}

/// Per-record faults found so far in a partition's batches.
#[derive(Default)]
struct Faults {
    errors: Vec<(i32, String)>,
    any_timestamp: bool,
}

impl Faults {
    /// Kafka's rule: INVALID_TIMESTAMP when any fault is a timestamp, else INVALID_RECORD.
    fn into_result(self) -> Result<(), Refused> {
        if self.errors.is_empty() {
            return Ok(());
        }
        let (code, message) = if self.any_timestamp {
            (
                code::INVALID_TIMESTAMP,
                "records were refused for invalid timestamps".to_string(),
            )
        } else {
            let shown: Vec<String> = self
                .errors
                .iter()
                .take(3)
                .map(|(i, why)| format!("record {i}: {why}"))
                .collect();
            (
                code::INVALID_RECORD,
                format!(
                    "{} records were refused (first {}: {})",
                    self.errors.len(),
                    shown.len(),
                    shown.join("; ")
                ),
            )
        };
        Err(Refused {
            code,
            message,
            record_errors: self.errors,
        })
    }
}

/// Kafka's per-record rules for one batch, faults added to `faults` with their index.
fn check_records(
    batch: &[u8],
    header: &BatchHeader,
    settings: &TopicSettings,
    target: &Target<'_>,
    first_index: i32,
    faults: &mut Faults,
) -> Result<(), Refused> {
    let create_time = !settings.log_append_time;
    let earliest = target
        .now_ms
        .saturating_sub(settings.timestamp_before_max_ms);
    let latest = target
        .now_ms
        .saturating_add(settings.timestamp_after_max_ms);
    let claims_append_time = header.is_log_append_time();
    let timestamps_unsure = create_time
        && (header.max_timestamp > latest || settings.timestamp_before_max_ms != i64::MAX);
    if !settings.cleanup_compact && !claims_append_time && !timestamps_unsure {
        return Ok(());
    }
    let records = decode_records(batch, DECOMPRESSED_BYTES_MAX)
        .map_err(|e| Refused::whole(wire_code(&e), e.to_string()))?;
    for (i, r) in records.iter().enumerate() {
        let index = first_index.saturating_add(i as i32);
        if settings.cleanup_compact && r.key.is_none() {
            faults.errors.push((
                index,
                format!(
                    "the compacted topic {}-{} takes only records with a key",
                    target.topic, target.partition
                ),
            ));
        } else if create_time && r.timestamp != NO_TIMESTAMP {
            if r.timestamp < earliest || r.timestamp > latest {
                faults.any_timestamp = true;
                faults.errors.push((
                    index,
                    format!(
                        "timestamp {} of the record at offset delta {} is out of range; it \
                         must be within [{earliest}, {latest}]",
                        r.timestamp,
                        r.offset - header.base_offset
                    ),
                ));
            }
        } else if claims_append_time {
            faults.any_timestamp = true;
            faults.errors.push((
                index,
                "the batch claims LogAppendTime: a producer must not set that timestamp type"
                    .to_string(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use millrace_wire::records::{BatchBuilder, NewRecord};

    fn record(i: usize, key: bool) -> NewRecord {
        NewRecord {
            timestamp: i as i64,
            key: key.then(|| vec![b'k'; 4]),
            value: Some(vec![1; 100]),
            ..Default::default()
        }
    }

    fn batch(n: usize) -> Vec<u8> {
        let records: Vec<NewRecord> = (0..n).map(|i| record(i, true)).collect();
        BatchBuilder::default().build(&records)
    }

    fn settings(limit: usize) -> TopicSettings {
        let mut s = crate::topic_config::BrokerDefaults::default().settings(&Default::default());
        s.max_message_bytes = limit;
        s
    }

    fn at(now_ms: i64) -> Target<'static> {
        Target {
            topic: "t",
            partition: 0,
            now_ms,
        }
    }

    fn check(records: Option<&Bytes>, limit: usize) -> Result<Option<Bytes>, Refused> {
        validate_records(records, &settings(limit), &at(1_000))
    }

    fn indexes(r: &Refused) -> Vec<i32> {
        r.record_errors.iter().map(|(i, _)| *i).collect()
    }

    #[test]
    fn corrupt_oversized_and_torn_records_are_refused() {
        let good = batch(3);
        assert_eq!(check(Some(&Bytes::from(good.clone())), 1 << 20), Ok(None));
        let mut bad = good.clone();
        *bad.last_mut().unwrap() ^= 1;
        let refused = check(Some(&Bytes::from(bad)), 1 << 20).unwrap_err();
        assert_eq!(refused.code, code::CORRUPT_MESSAGE);
        assert!(refused.record_errors.is_empty());
        assert_eq!(
            check(Some(&Bytes::from(good.clone())), 100)
                .unwrap_err()
                .code,
            code::MESSAGE_TOO_LARGE
        );
        let torn = Bytes::from(good[..good.len() - 1].to_vec());
        assert_eq!(
            check(Some(&torn), 1 << 20).unwrap_err().code,
            code::CORRUPT_MESSAGE
        );
        assert!(check(None, 1 << 20).is_err());
    }

    #[test]
    fn create_time_outside_the_window_names_each_record() {
        // Records carry timestamps 0, 1, 2.
        let records = Bytes::from(batch(3));
        let mut s = settings(1 << 20);
        s.timestamp_after_max_ms = 0;
        assert_eq!(validate_records(Some(&records), &s, &at(2)), Ok(None));
        let refused = validate_records(Some(&records), &s, &at(0)).unwrap_err();
        assert_eq!(refused.code, code::INVALID_TIMESTAMP);
        assert_eq!(indexes(&refused), [1, 2]);
        s.timestamp_after_max_ms = i64::MAX;
        s.timestamp_before_max_ms = 10;
        assert_eq!(validate_records(Some(&records), &s, &at(10)), Ok(None));
        let refused = validate_records(Some(&records), &s, &at(11)).unwrap_err();
        assert_eq!(refused.code, code::INVALID_TIMESTAMP);
        assert_eq!(indexes(&refused), [0]);
        // LogAppendTime topics take any producer timestamp.
        s.log_append_time = true;
        assert_eq!(
            validate_records(Some(&records), &s, &at(1_000_000)),
            Ok(None)
        );
    }

    #[test]
    fn a_record_without_timestamp_is_not_range_checked() {
        let mut r = record(0, true);
        r.timestamp = NO_TIMESTAMP;
        let records = Bytes::from(BatchBuilder::default().build(&[r]));
        let mut s = settings(1 << 20);
        s.timestamp_before_max_ms = 10;
        assert_eq!(
            validate_records(Some(&records), &s, &at(1_000_000)),
            Ok(None)
        );
    }

    #[test]
    fn keyless_records_on_a_compacted_topic_are_listed_by_index() {
        let records: Vec<NewRecord> = (0..100).map(|i| record(i, i % 10 != 0)).collect();
        let bytes = Bytes::from(BatchBuilder::default().build(&records));
        let mut s = settings(1 << 20);
        assert_eq!(validate_records(Some(&bytes), &s, &at(50)), Ok(None));
        s.cleanup_compact = true;
        let refused = validate_records(Some(&bytes), &s, &at(50)).unwrap_err();
        assert_eq!(refused.code, code::INVALID_RECORD);
        assert_eq!(indexes(&refused), (0..100).step_by(10).collect::<Vec<_>>());
        assert!(refused.message.starts_with("10 records were refused"));
        // A timestamp fault among key faults makes the partition INVALID_TIMESTAMP.
        s.timestamp_after_max_ms = 0;
        let refused = validate_records(Some(&bytes), &s, &at(98)).unwrap_err();
        assert_eq!(refused.code, code::INVALID_TIMESTAMP);
        assert!(indexes(&refused).contains(&99));
        assert!(indexes(&refused).contains(&90));
    }

    #[test]
    fn indexes_run_across_the_batches_of_a_partition() {
        let keyed = BatchBuilder::default().build(&[record(0, true), record(1, true)]);
        let mixed = BatchBuilder::default().build(&[record(2, true), record(3, false)]);
        let bytes = Bytes::from([keyed, mixed].concat());
        let mut s = settings(1 << 20);
        s.cleanup_compact = true;
        let refused = validate_records(Some(&bytes), &s, &at(50)).unwrap_err();
        assert_eq!(indexes(&refused), [3]);
    }

    #[test]
    fn a_producer_claiming_log_append_time_is_refused_where_it_matters() {
        let mut claims = BatchBuilder::default().build(&[record(0, true), record(1, true)]);
        millrace_wire::records::stamp_log_append_time(&mut claims, 5);
        let bytes = Bytes::from(claims);
        let mut s = settings(1 << 20);
        // A CreateTime topic range-checks records that carry a timestamp, as Kafka does.
        assert_eq!(validate_records(Some(&bytes), &s, &at(50)), Ok(None));
        s.log_append_time = true;
        let refused = validate_records(Some(&bytes), &s, &at(50)).unwrap_err();
        assert_eq!(refused.code, code::INVALID_TIMESTAMP);
        assert_eq!(indexes(&refused), [0, 1]);
    }

    #[test]
    fn a_topic_codec_recompresses_other_batches() {
        let two = [batch(3), batch(2)].concat();
        let mut s = settings(1 << 20);
        s.compression = Some(millrace_wire::Compression::Zstd);
        let out = validate_records(Some(&Bytes::from(two.clone())), &s, &at(1_000))
            .unwrap()
            .expect("recompressed");
        let mut seen = 0;
        for step in BatchIter::new(&out) {
            let BatchStep::Batch { bytes, .. } = step else {
                panic!("torn output")
            };
            let h = validate_batch(bytes).unwrap();
            assert_eq!(h.compression().unwrap(), millrace_wire::Compression::Zstd);
            seen += h.record_count;
        }
        assert_eq!(seen, 5);
        s.compression = Some(millrace_wire::Compression::None);
        assert_eq!(
            validate_records(Some(&Bytes::from(two)), &s, &at(1_000)),
            Ok(None)
        );
    }
}
