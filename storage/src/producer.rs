//! Idempotent-producer state of one partition, with Kafka's rules, and its snapshot file.
//!
//! Per producer id: the newest epoch and the last [`BATCHES_KEPT`] batches appended
//! (first and last sequence, first and last offset), enough to answer a retried batch with its
//! original offsets. Snapshot file `<offset as 20 digits>.snapshot`: the state after every batch
//! below `offset`, in the [`crate::framed`] envelope:
//!
//! ```text
//! magic "MLPS" v1: offset i64, count u32, count × producer:
//!   producer_id i64, epoch i16, last_append_ms i64, batch_count u8,
//!   batch_count × (first_seq i32, last_seq i32, base_offset i64, last_offset i64)
//! ```

use crate::framed;
use crate::StorageError;
use millrace_wire::records::BatchHeader;
use std::collections::{HashMap, VecDeque};

/// Batches remembered per producer (Kafka's `max.in.flight.requests.per.connection` bound).
pub const BATCHES_KEPT: usize = 5;
const SNAPSHOT_MAGIC: &[u8; 4] = b"MLPS";
const SNAPSHOT_VERSION: u16 = 1;

/// One remembered batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

/// What the log knows of one producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProducerEntry {
    pub epoch: i16,
    pub last_append_ms: i64,
    pub batches: VecDeque<BatchMeta>,
}

/// The verdict on one incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Append it.
    Append,
    /// Already in the log at these offsets: answer with them, append nothing.
    Duplicate { base_offset: i64, last_offset: i64 },
}

/// All producers of a partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProducerState {
    pub producers: HashMap<i64, ProducerEntry>,
}

impl ProducerState {
    /// Checks a batch against the state (Kafka's idempotence rules) without changing it.
    pub(crate) fn check(&self, h: &BatchHeader) -> Result<Check, StorageError> {
        if h.producer_id < 0 {
            return Ok(Check::Append);
        }
        let (pid, epoch, seq) = (h.producer_id, h.producer_epoch, h.base_sequence);
        let Some(entry) = self.producers.get(&pid) else {
            return match seq {
                0 | -1 => Ok(Check::Append),
                _ => Err(out_of_order(pid, 0, seq)),
            };
        };
        if epoch < entry.epoch {
            return Err(StorageError::InvalidProducerEpoch {
                producer_id: pid,
                current: entry.epoch,
                received: epoch,
            });
        }
        if seq < 0 {
            return Ok(Check::Append);
        }
        if epoch > entry.epoch {
            return match seq {
                0 => Ok(Check::Append),
                _ => Err(out_of_order(pid, 0, seq)),
            };
        }
        let last_seq = h.last_sequence();
        if let Some(b) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == seq && b.last_seq == last_seq)
        {
            return Ok(Check::Duplicate {
                base_offset: b.base_offset,
                last_offset: b.last_offset,
            });
        }
        let expected = match entry.batches.back() {
            Some(last) if last.last_seq == i32::MAX => 0,
            Some(last) => last.last_seq + 1,
            None => 0,
        };
        if seq != expected {
            return Err(out_of_order(pid, expected, seq));
        }
        Ok(Check::Append)
    }

    /// Records an appended batch (`h` carries its assigned offsets). Also used to replay the
    /// log at recovery, where no check is made: the log is the truth.
    pub(crate) fn record(&mut self, h: &BatchHeader, now_ms: i64) {
        if h.producer_id < 0 {
            return;
        }
        let entry = self
            .producers
            .entry(h.producer_id)
            .or_insert(ProducerEntry {
                epoch: h.producer_epoch,
                last_append_ms: now_ms,
                batches: VecDeque::new(),
            });
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        entry.last_append_ms = entry.last_append_ms.max(now_ms);
        if h.base_sequence < 0 {
            return;
        }
        if entry.batches.len() == BATCHES_KEPT {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMeta {
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            base_offset: h.base_offset,
            last_offset: h.last_offset(),
        });
    }

    /// Forgets producers idle since before `cutoff_ms` (Kafka's `producer.id.expiration.ms`).
    pub(crate) fn expire(&mut self, cutoff_ms: i64) {
        self.producers.retain(|_, p| p.last_append_ms >= cutoff_ms);
    }

    pub(crate) fn encode_snapshot(&self, offset: i64) -> Vec<u8> {
        let mut body = Vec::with_capacity(12 + self.producers.len() * 64);
        body.extend_from_slice(&offset.to_be_bytes());
        body.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<_> = self.producers.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let p = &self.producers[&id];
            body.extend_from_slice(&id.to_be_bytes());
            body.extend_from_slice(&p.epoch.to_be_bytes());
            body.extend_from_slice(&p.last_append_ms.to_be_bytes());
            body.push(p.batches.len() as u8);
            for b in &p.batches {
                body.extend_from_slice(&b.first_seq.to_be_bytes());
                body.extend_from_slice(&b.last_seq.to_be_bytes());
                body.extend_from_slice(&b.base_offset.to_be_bytes());
                body.extend_from_slice(&b.last_offset.to_be_bytes());
            }
        }
        framed::seal(SNAPSHOT_MAGIC, SNAPSHOT_VERSION, &body)
    }

    /// Decodes a snapshot; returns the offset it covers up to and the state.
    pub(crate) fn decode_snapshot(file: &[u8]) -> Result<(i64, Self), String> {
        let mut r = framed::Reader::new(framed::open(SNAPSHOT_MAGIC, SNAPSHOT_VERSION, file)?);
        let offset = r.i64()?;
        let n = r.count(19)?;
        let mut state = ProducerState::default();
        for _ in 0..n {
            let id = r.i64()?;
            let epoch = r.i16()?;
            let last_append_ms = r.i64()?;
            let count = r.u8()? as usize;
            if count > BATCHES_KEPT {
                return Err(format!("{count} batches for producer {id}"));
            }
            let mut batches = VecDeque::with_capacity(count);
            for _ in 0..count {
                batches.push_back(BatchMeta {
                    first_seq: r.i32()?,
                    last_seq: r.i32()?,
                    base_offset: r.i64()?,
                    last_offset: r.i64()?,
                });
            }
            let entry = ProducerEntry {
                epoch,
                last_append_ms,
                batches,
            };
            state.producers.insert(id, entry);
        }
        r.finish()?;
        Ok((offset, state))
    }
}

fn out_of_order(producer_id: i64, expected: i32, received: i32) -> StorageError {
    StorageError::OutOfOrderSequence {
        producer_id,
        expected,
        received,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, count: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            record_count: count,
        }
    }

    #[test]
    fn sequence_rules() {
        let mut s = ProducerState::default();
        assert!(matches!(
            s.check(&header(7, 0, 3, 1, 0)),
            Err(StorageError::OutOfOrderSequence { expected: 0, .. })
        ));
        s.record(&header(7, 0, 0, 3, 10), 0);
        assert_eq!(
            s.check(&header(7, 0, 0, 3, 0)).unwrap(),
            Check::Duplicate {
                base_offset: 10,
                last_offset: 12
            }
        );
        assert!(matches!(
            s.check(&header(7, 0, 4, 1, 0)),
            Err(StorageError::OutOfOrderSequence { expected: 3, .. })
        ));
        assert_eq!(s.check(&header(7, 0, 3, 1, 0)).unwrap(), Check::Append);
        assert!(matches!(
            s.check(&header(7, 1, 3, 1, 0)),
            Err(StorageError::OutOfOrderSequence { .. })
        ));
        assert_eq!(s.check(&header(7, 1, 0, 1, 0)).unwrap(), Check::Append);
        s.record(&header(7, 1, 0, 1, 13), 0);
        assert!(matches!(
            s.check(&header(7, 0, 3, 1, 0)),
            Err(StorageError::InvalidProducerEpoch { current: 1, .. })
        ));
    }

    #[test]
    fn sequence_wraps_at_i32_max_and_only_five_batches_are_kept() {
        let mut s = ProducerState::default();
        s.record(&header(1, 0, 0, 1, 0), 0);
        for i in 1..=6 {
            s.record(&header(1, 0, i, 1, i64::from(i)), 0);
        }
        assert_eq!(s.producers[&1].batches.len(), BATCHES_KEPT);
        let evicted = s.check(&header(1, 0, 1, 1, 0));
        assert!(matches!(
            evicted,
            Err(StorageError::OutOfOrderSequence { expected: 7, .. })
        ));
        let mut s = ProducerState::default();
        s.producers.insert(
            2,
            ProducerEntry {
                epoch: 0,
                last_append_ms: 0,
                batches: VecDeque::new(),
            },
        );
        s.record(&header(2, 0, i32::MAX - 1, 2, 0), 0);
        assert_eq!(s.producers[&2].batches[0].last_seq, i32::MAX);
        assert_eq!(s.check(&header(2, 0, 0, 1, 0)).unwrap(), Check::Append);
    }

    #[test]
    fn snapshot_round_trip() {
        let mut s = ProducerState::default();
        s.record(&header(1, 2, 0, 3, 0), 5);
        s.record(&header(9, 0, 0, 1, 3), 6);
        let (offset, back) = ProducerState::decode_snapshot(&s.encode_snapshot(4)).unwrap();
        assert_eq!((offset, back), (4, s));
    }
}
