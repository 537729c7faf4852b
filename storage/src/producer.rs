//! Idempotent and transactional producer state of one partition, with Kafka's rules, and its
//! snapshot file.
//!
//! Per producer id: the newest epoch, the last [`BATCHES_KEPT`] batches appended (first and
//! last sequence, first and last offset), enough to answer a retried batch with its original
//! offsets, and the producer's transaction here: the offset of its first batch in the open
//! transaction (none when no transaction is open) and the coordinator epoch of the last marker.
//! Open transactions hold back the last stable offset ([`ProducerState::last_stable_offset`]).
//!
//! Snapshot file `<offset as 20 digits>.snapshot`: the state after every batch below
//! `offset`, in the [`crate::framed`] envelope:
//!
//! ```text
//! magic "MLPS" v2: offset i64, count u32, count × producer:
//!   producer_id i64, epoch i16, last_append_ms i64, batch_count u8,
//!   batch_count × (first_seq i32, last_seq i32, base_offset i64, last_offset i64),
//!   txn_first_offset i64 (-1: no open transaction), coordinator_epoch i32,
//!   last_timestamp i64
//! ```
//!
//! Version 1 (before transactions) has no fields after the batches; it still loads, with no
//! transaction open and no marker seen.

use crate::framed;
use crate::StorageError;
use millrace_wire::records::{BatchHeader, TxnMarker};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Batches remembered per producer (Kafka's `max.in.flight.requests.per.connection` bound).
pub const BATCHES_KEPT: usize = 5;
const SNAPSHOT_MAGIC: &[u8; 4] = b"MLPS";
const SNAPSHOT_VERSION: u16 = 2;
const SNAPSHOT_VERSION_V1: u16 = 1;

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
    /// Offset of the producer's first batch in its open transaction on this partition.
    pub txn_first_offset: Option<i64>,
    /// Coordinator epoch of the last marker written for the producer, -1 before any.
    pub coordinator_epoch: i32,
    /// Max timestamp of the producer's last batch (DescribeProducers' LastTimestamp).
    pub last_timestamp: i64,
}

impl ProducerEntry {
    fn new(epoch: i16, now_ms: i64) -> Self {
        ProducerEntry {
            epoch,
            last_append_ms: now_ms,
            batches: VecDeque::new(),
            txn_first_offset: None,
            coordinator_epoch: -1,
            last_timestamp: -1,
        }
    }
}

/// A transaction a marker closed on this partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CompletedTxn {
    pub producer_id: i64,
    /// The producer's first offset in it (the marker's own offset when it wrote nothing here).
    pub first_offset: i64,
    /// The marker's offset.
    pub last_offset: i64,
    pub commit: bool,
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
    /// Open transactions: first offset -> producer id (derived from `producers`).
    pub ongoing: BTreeMap<i64, i64>,
    /// Transactions whose marker may still be above the high watermark: first offset ->
    /// marker offset. They hold back the last stable offset until the high watermark passes
    /// their marker, so a read_committed consumer never reads data whose abort it cannot see
    /// yet. Not in snapshots: after a restart the markers below the log end count as
    /// replicated (as in Kafka).
    pub unreplicated: BTreeMap<i64, i64>,
}

impl ProducerState {
    /// Checks a batch against the state (Kafka's idempotence and transaction rules) without
    /// changing it. `marker` is the batch's transaction marker when it is one.
    pub(crate) fn check(
        &self,
        h: &BatchHeader,
        marker: Option<TxnMarker>,
    ) -> Result<Check, StorageError> {
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
        if let Some(marker) = marker {
            if marker.coordinator_epoch < entry.coordinator_epoch {
                return Err(StorageError::CoordinatorFenced {
                    producer_id: pid,
                    current: entry.coordinator_epoch,
                    received: marker.coordinator_epoch,
                });
            }
            return Ok(Check::Append);
        }
        if !h.is_transactional() && entry.txn_first_offset.is_some() {
            return Err(StorageError::InvalidTxnState {
                producer_id: pid,
                reason: "a non-transactional batch while the producer's transaction is open",
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

    /// Records an appended batch (`h` carries its assigned offsets; `marker` is its
    /// transaction marker when it is one). Also used to replay the log at recovery, where no
    /// check is made: the log is the truth. Returns the transaction a marker closed.
    pub(crate) fn record(
        &mut self,
        h: &BatchHeader,
        marker: Option<TxnMarker>,
        now_ms: i64,
    ) -> Option<CompletedTxn> {
        if h.producer_id < 0 {
            return None;
        }
        let entry = self
            .producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry::new(h.producer_epoch, now_ms));
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        entry.last_append_ms = entry.last_append_ms.max(now_ms);
        entry.last_timestamp = h.max_timestamp;
        if h.is_control() {
            let marker = marker?;
            entry.coordinator_epoch = marker.coordinator_epoch;
            let first = entry.txn_first_offset.take();
            if let Some(first) = first {
                self.ongoing.remove(&first);
                self.unreplicated.insert(first, h.base_offset);
            }
            return Some(CompletedTxn {
                producer_id: h.producer_id,
                first_offset: first.unwrap_or(h.base_offset),
                last_offset: h.base_offset,
                commit: marker.commit,
            });
        }
        if h.is_transactional() && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(h.base_offset);
            self.ongoing.insert(h.base_offset, h.producer_id);
        }
        if h.base_sequence < 0 {
            return None;
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
        None
    }

    /// Forgets producers idle since before `cutoff_ms` (Kafka's `producer.id.expiration.ms`),
    /// but never one with an open transaction.
    pub(crate) fn expire(&mut self, cutoff_ms: i64) {
        self.producers
            .retain(|_, p| p.last_append_ms >= cutoff_ms || p.txn_first_offset.is_some());
    }

    /// The last stable offset under `high_watermark`: the first offset of the oldest open
    /// transaction, or of a completed one whose marker the high watermark has not passed, if
    /// below it. Forgets completed transactions whose marker is below it.
    pub(crate) fn last_stable_offset(&mut self, high_watermark: i64) -> i64 {
        self.unreplicated
            .retain(|_, marker| *marker >= high_watermark);
        let open = self.ongoing.keys().next().copied();
        let unreplicated = self.unreplicated.keys().next().copied();
        [open, unreplicated]
            .into_iter()
            .flatten()
            .fold(high_watermark, i64::min)
    }

    /// The first offset of the oldest open transaction.
    pub(crate) fn first_open_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
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
            body.extend_from_slice(&p.txn_first_offset.unwrap_or(-1).to_be_bytes());
            body.extend_from_slice(&p.coordinator_epoch.to_be_bytes());
            body.extend_from_slice(&p.last_timestamp.to_be_bytes());
        }
        framed::seal(SNAPSHOT_MAGIC, SNAPSHOT_VERSION, &body)
    }

    /// Decodes a snapshot (version 2, or 1 from before transactions); returns the offset it
    /// covers up to and the state.
    pub(crate) fn decode_snapshot(file: &[u8]) -> Result<(i64, Self), String> {
        let v1 = file.get(4..6) == Some(&SNAPSHOT_VERSION_V1.to_be_bytes()[..]);
        let version = if v1 {
            SNAPSHOT_VERSION_V1
        } else {
            SNAPSHOT_VERSION
        };
        let mut r = framed::Reader::new(framed::open(SNAPSHOT_MAGIC, version, file)?);
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
            let mut entry = ProducerEntry {
                batches,
                ..ProducerEntry::new(epoch, last_append_ms)
            };
            if !v1 {
                let first = r.i64()?;
                entry.txn_first_offset = (first >= 0).then_some(first);
                entry.coordinator_epoch = r.i32()?;
                entry.last_timestamp = r.i64()?;
            }
            if let Some(first) = entry.txn_first_offset {
                if state.ongoing.insert(first, id).is_some() {
                    return Err(format!("two transactions open at offset {first}"));
                }
            }
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

    impl ProducerState {
        fn record_data(&mut self, h: &BatchHeader, now_ms: i64) {
            assert_eq!(self.record(h, None, now_ms), None);
        }
    }

    fn txn(h: BatchHeader) -> BatchHeader {
        BatchHeader {
            attributes: 0x10,
            ..h
        }
    }

    fn marker(pid: i64, epoch: i16, offset: i64) -> BatchHeader {
        BatchHeader {
            attributes: 0x30,
            base_sequence: -1,
            ..header(pid, epoch, -1, 1, offset)
        }
    }

    const COMMIT: TxnMarker = TxnMarker {
        commit: true,
        coordinator_epoch: 3,
    };

    #[test]
    fn open_transactions_hold_the_last_stable_offset_until_their_marker_is_replicated() {
        let mut s = ProducerState::default();
        s.record_data(&header(1, 0, 0, 2, 0), 0);
        assert_eq!(s.last_stable_offset(2), 2);
        s.record_data(&txn(header(2, 0, 0, 2, 2)), 0);
        s.record_data(&txn(header(3, 0, 0, 1, 4)), 0);
        s.record_data(&txn(header(2, 0, 2, 1, 5)), 0);
        assert_eq!(s.producers[&2].txn_first_offset, Some(2));
        assert_eq!(s.last_stable_offset(6), 2);
        assert_eq!(s.last_stable_offset(1), 1, "never above the high watermark");
        let done = s.record(&marker(2, 0, 6), Some(COMMIT), 0).unwrap();
        assert_eq!(
            (done.first_offset, done.last_offset, done.commit),
            (2, 6, true)
        );
        assert_eq!(s.producers[&2].txn_first_offset, None);
        // Producer 2's marker is not replicated yet: still held at 2, then at 4 (producer 3).
        assert_eq!(s.last_stable_offset(6), 2);
        assert_eq!(s.last_stable_offset(7), 4);
        let abort = TxnMarker {
            commit: false,
            coordinator_epoch: 3,
        };
        let done = s.record(&marker(3, 0, 7), Some(abort), 0).unwrap();
        assert_eq!((done.first_offset, done.commit), (4, false));
        assert_eq!(s.last_stable_offset(8), 8);
        // A marker for a producer with nothing open here closes an empty transaction.
        let done = s.record(&marker(9, 0, 8), Some(COMMIT), 0).unwrap();
        assert_eq!((done.first_offset, done.last_offset), (8, 8));
        assert_eq!(s.last_stable_offset(9), 9);
    }

    #[test]
    fn transaction_rules() {
        let mut s = ProducerState::default();
        s.record_data(&txn(header(1, 0, 0, 1, 0)), 0);
        assert!(matches!(
            s.check(&header(1, 0, 1, 1, 1), None),
            Err(StorageError::InvalidTxnState { .. })
        ));
        assert_eq!(
            s.check(&txn(header(1, 0, 1, 1, 1)), None).unwrap(),
            Check::Append
        );
        s.record(&marker(1, 1, 1), Some(COMMIT), 0).unwrap();
        // The marker's bumped epoch fences the old one and restarts sequences.
        assert!(matches!(
            s.check(&txn(header(1, 0, 1, 1, 2)), None),
            Err(StorageError::InvalidProducerEpoch { current: 1, .. })
        ));
        assert_eq!(
            s.check(&txn(header(1, 1, 0, 1, 2)), None).unwrap(),
            Check::Append
        );
        let stale = TxnMarker {
            commit: false,
            coordinator_epoch: 2,
        };
        assert!(matches!(
            s.check(&marker(1, 1, 2), Some(stale)),
            Err(StorageError::CoordinatorFenced {
                current: 3,
                received: 2,
                ..
            })
        ));
        assert!(matches!(
            s.check(&marker(1, 0, 2), Some(COMMIT)),
            Err(StorageError::InvalidProducerEpoch { .. })
        ));
        assert_eq!(
            s.check(&marker(1, 1, 2), Some(COMMIT)).unwrap(),
            Check::Append
        );
    }

    #[test]
    fn producers_with_an_open_transaction_never_expire() {
        let mut s = ProducerState::default();
        s.record_data(&txn(header(1, 0, 0, 1, 0)), 10);
        s.record_data(&header(2, 0, 0, 1, 1), 10);
        s.expire(100);
        assert_eq!(s.producers.keys().copied().collect::<Vec<_>>(), vec![1]);
        assert_eq!(s.first_open_offset(), Some(0));
    }

    #[test]
    fn version_1_snapshots_still_load() {
        let mut s = ProducerState::default();
        s.record_data(&header(1, 2, 0, 3, 0), 5);
        let v2 = s.encode_snapshot(3);
        // The same producer as version 1 wrote it: no transaction fields.
        let body = &v2[10..v2.len() - 4];
        let v1 = framed::seal(
            SNAPSHOT_MAGIC,
            SNAPSHOT_VERSION_V1,
            &body[..body.len() - 20],
        );
        let (offset, back) = ProducerState::decode_snapshot(&v1).unwrap();
        let mut expected = s.clone();
        expected.producers.get_mut(&1).unwrap().last_timestamp = -1;
        assert_eq!((offset, back), (3, expected));
    }

    #[test]
    fn sequence_rules() {
        let mut s = ProducerState::default();
        assert!(matches!(
            s.check(&header(7, 0, 3, 1, 0), None),
            Err(StorageError::OutOfOrderSequence { expected: 0, .. })
        ));
        s.record_data(&header(7, 0, 0, 3, 10), 0);
        assert_eq!(
            s.check(&header(7, 0, 0, 3, 0), None).unwrap(),
            Check::Duplicate {
                base_offset: 10,
                last_offset: 12
            }
        );
        assert!(matches!(
            s.check(&header(7, 0, 4, 1, 0), None),
            Err(StorageError::OutOfOrderSequence { expected: 3, .. })
        ));
        assert_eq!(
            s.check(&header(7, 0, 3, 1, 0), None).unwrap(),
            Check::Append
        );
        assert!(matches!(
            s.check(&header(7, 1, 3, 1, 0), None),
            Err(StorageError::OutOfOrderSequence { .. })
        ));
        assert_eq!(
            s.check(&header(7, 1, 0, 1, 0), None).unwrap(),
            Check::Append
        );
        s.record_data(&header(7, 1, 0, 1, 13), 0);
        assert!(matches!(
            s.check(&header(7, 0, 3, 1, 0), None),
            Err(StorageError::InvalidProducerEpoch { current: 1, .. })
        ));
    }

    #[test]
    fn sequence_wraps_at_i32_max_and_only_five_batches_are_kept() {
        let mut s = ProducerState::default();
        s.record_data(&header(1, 0, 0, 1, 0), 0);
        for i in 1..=6 {
            s.record_data(&header(1, 0, i, 1, i64::from(i)), 0);
        }
        assert_eq!(s.producers[&1].batches.len(), BATCHES_KEPT);
        let evicted = s.check(&header(1, 0, 1, 1, 0), None);
        assert!(matches!(
            evicted,
            Err(StorageError::OutOfOrderSequence { expected: 7, .. })
        ));
        let mut s = ProducerState::default();
        s.producers.insert(2, ProducerEntry::new(0, 0));
        s.record_data(&header(2, 0, i32::MAX - 1, 2, 0), 0);
        assert_eq!(s.producers[&2].batches[0].last_seq, i32::MAX);
        assert_eq!(
            s.check(&header(2, 0, 0, 1, 0), None).unwrap(),
            Check::Append
        );
    }

    #[test]
    fn snapshot_round_trip() {
        let mut s = ProducerState::default();
        s.record_data(&header(1, 2, 0, 3, 0), 5);
        s.record_data(&header(9, 0, 0, 1, 3), 6);
        s.record_data(&txn(header(4, 0, 0, 1, 4)), 7);
        s.record(&marker(9, 0, 5), Some(COMMIT), 8);
        s.unreplicated.clear();
        let (offset, back) = ProducerState::decode_snapshot(&s.encode_snapshot(4)).unwrap();
        assert_eq!((offset, back), (4, s));
    }
}
