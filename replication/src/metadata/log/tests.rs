//! The metadata log over an in-memory store; the storage crate's partition log, with crashes,
//! is exercised by `tests/metadata_log.rs`.

use super::*;
use crate::metadata::record::{TopicId, TopicRecord};
use crate::metadata::sample::RecordSource;
use crate::metadata::ClusterImage;
use futures_lite::future::block_on;
use millrace_wire::records::{set_base_offset, set_partition_leader_epoch, BatchHeader};
use std::cell::RefCell;

/// Batches in memory; `durable` of them survive a flush.
#[derive(Default)]
struct MemStore {
    batches: RefCell<Vec<Vec<u8>>>,
    durable: RefCell<usize>,
    start: std::cell::Cell<i64>,
}

#[derive(Debug, thiserror::Error)]
#[error("mem store")]
struct MemError;

impl MemStore {
    fn end_of(&self, count: usize) -> i64 {
        let batches = self.batches.borrow();
        batches[..count].last().map_or(self.start.get(), |b| {
            BatchHeader::parse(b).unwrap().next_offset()
        })
    }
}

impl LogStore for MemStore {
    type Error = MemError;

    fn append(&self, mut batch: Vec<u8>, epoch: i32, _now_ms: i64) -> Result<i64, MemError> {
        let base = self.log_end_offset();
        set_base_offset(&mut batch, base);
        set_partition_leader_epoch(&mut batch, epoch);
        self.batches.borrow_mut().push(batch);
        Ok(base)
    }

    async fn flush(&self) -> Result<(), MemError> {
        *self.durable.borrow_mut() = self.batches.borrow().len();
        Ok(())
    }

    fn durable_end(&self) -> i64 {
        self.end_of(*self.durable.borrow())
    }

    fn log_end_offset(&self) -> i64 {
        self.end_of(self.batches.borrow().len())
    }

    async fn truncate_to(&self, offset: i64, _now_ms: i64) -> Result<i64, MemError> {
        let mut batches = self.batches.borrow_mut();
        let keep = batches
            .iter()
            .take_while(|b| BatchHeader::parse(b).unwrap().next_offset() <= offset)
            .count();
        batches.truncate(keep);
        let mut durable = self.durable.borrow_mut();
        *durable = (*durable).min(keep);
        drop(batches);
        Ok(self.end_of(keep))
    }

    fn log_start_offset(&self) -> i64 {
        self.start.get()
    }

    async fn delete_before(&self, offset: i64) -> Result<i64, MemError> {
        let offset = offset.min(self.durable_end());
        let mut batches = self.batches.borrow_mut();
        let gone = batches
            .iter()
            .take_while(|b| BatchHeader::parse(b).unwrap().next_offset() <= offset)
            .count();
        batches.drain(..gone);
        *self.durable.borrow_mut() -= gone;
        self.start.set(self.start.get().max(offset));
        Ok(self.start.get())
    }

    async fn reset_to(&self, offset: i64, _now_ms: i64) -> Result<(), MemError> {
        self.batches.borrow_mut().clear();
        *self.durable.borrow_mut() = 0;
        self.start.set(offset);
        Ok(())
    }

    async fn read(&self, offset: i64, max_bytes: usize) -> Result<Vec<u8>, MemError> {
        let batches = self.batches.borrow();
        let mut out = Vec::new();
        for batch in &batches[..*self.durable.borrow()] {
            let header = BatchHeader::parse(batch).unwrap();
            if header.next_offset() <= offset {
                continue;
            }
            if !out.is_empty() && out.len() + batch.len() > max_bytes {
                break;
            }
            out.extend_from_slice(batch);
        }
        Ok(out)
    }
}

fn records(seed: u64, count: usize) -> Vec<MetadataRecord> {
    let mut source = RecordSource::new(seed);
    let mut image = ClusterImage::default();
    (0..count)
        .map(|offset| {
            let record = source.next_valid(&image);
            image.apply(&record, offset as i64).unwrap();
            record
        })
        .collect()
}

#[test]
fn appended_batches_replay_in_order_once_flushed() {
    let log = MetadataLog::new(MemStore::default());
    let all = records(1, 10);
    assert_eq!(log.append(&all[..3], 1, 100).unwrap(), 0);
    assert_eq!(log.append(&all[3..4], 1, 100).unwrap(), 3);
    assert_eq!((log.log_end_offset(), log.durable_end()), (4, 0));
    assert!(
        block_on(log.replay(0)).unwrap().is_empty(),
        "unflushed records are not committed"
    );
    block_on(log.flush()).unwrap();
    assert_eq!(log.append(&all[4..], 2, 100).unwrap(), 4);
    let replayed = block_on(log.replay(0)).unwrap();
    let expected: Vec<LogEntry> = (0..4)
        .map(|i| LogEntry {
            offset: i as i64,
            term: 1,
            record: all[i].clone(),
        })
        .collect();
    assert_eq!(replayed, expected);
    block_on(log.flush()).unwrap();
    let replayed = block_on(log.replay(0)).unwrap();
    assert_eq!(replayed.len(), 10);
    assert!(replayed[4..].iter().all(|e| e.term == 2));
    // From the middle of a batch: the batch is read whole, the earlier records skipped.
    let tail = block_on(log.replay(5)).unwrap();
    assert_eq!(tail, replayed[5..]);
    assert!(block_on(log.replay(10)).unwrap().is_empty());
}

#[test]
fn read_committed_is_bounded_and_resumable() {
    let log = MetadataLog::new(MemStore::default());
    let all = records(2, 40);
    for chunk in all.chunks(4) {
        log.append(chunk, 0, 0).unwrap();
    }
    block_on(log.flush()).unwrap();
    let first = block_on(log.read_committed(0, 1)).unwrap();
    assert_eq!(
        first.len(),
        4,
        "one batch at least, and only one within 1 byte"
    );
    let mut next = 0;
    let mut seen = Vec::new();
    loop {
        let step = block_on(log.read_committed(next, 300)).unwrap();
        let Some(last) = step.last() else { break };
        next = last.offset + 1;
        seen.extend(step.into_iter().map(|e| e.record));
    }
    assert_eq!(seen, all);
}

#[test]
fn empty_and_oversized_appends_are_refused() {
    let log = MetadataLog::new(MemStore::default());
    assert!(matches!(
        log.append(&[], 0, 0),
        Err(ReplicationError::EmptyAppend)
    ));
    let big = MetadataRecord::Topic(TopicRecord {
        name: "x".repeat(BATCH_BYTES_MAX),
        topic_id: TopicId([1; 16]),
    });
    assert!(matches!(
        log.append(&[big], 0, 0),
        Err(ReplicationError::BatchTooLarge { .. })
    ));
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn corrupt_batches_are_errors_not_panics() {
    let log = MetadataLog::new(MemStore::default());
    log.append(&records(3, 5), 0, 0).unwrap();
    block_on(log.flush()).unwrap();
    let good = log.store().batches.borrow()[0].clone();
    // Every truncation of the batch, and every flipped byte, is refused.
    for n in 1..good.len() {
        assert!(decode_batches(&good[..n], 0).is_err(), "{n}-byte prefix");
    }
    for at in 0..good.len() {
        let mut bad = good.clone();
        bad[at] ^= 0x5a;
        // Bytes outside the CRC (offset, epoch) may still decode; nothing may panic, and a
        // decoded result must still be five records.
        if let Ok(entries) = decode_batches(&bad, 0) {
            assert_eq!(entries.len(), 5, "byte {at}");
        }
    }
    // A valid batch whose record value is not a metadata record.
    let junk = millrace_wire::records::BatchBuilder::default().build(&[
        millrace_wire::records::NewRecord {
            value: Some(vec![0, 99, 0, 0]),
            ..Default::default()
        },
    ]);
    assert!(matches!(
        decode_batches(&junk, 0),
        Err(ReplicationError::UnknownRecordType { record_type: 99 })
    ));
}
