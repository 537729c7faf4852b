//! Helpers shared by the storage tests.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use futures_lite::future::block_on;
use millrace_storage::disk::{Disk, DiskFile};
use millrace_storage::sim::{SimDisk, SimFile};
use millrace_storage::{BatchCache, LogConfig, PartitionLog, ReadChunk, ReadResult};
use millrace_wire::records::{BatchBuilder, BatchIter, BatchStep, NewRecord};
use std::path::PathBuf;

pub type Log = PartitionLog<SimDisk>;

pub fn dir() -> PathBuf {
    PathBuf::from("/data/topic-0")
}

pub fn open(disk: &SimDisk, config: &LogConfig, cache_bytes: usize, now_ms: i64) -> Log {
    let cache = BatchCache::new(cache_bytes);
    block_on(PartitionLog::open(
        disk.clone(),
        dir(),
        config.clone(),
        cache,
        now_ms,
    ))
    .expect("open")
}

/// A batch of `records` records with values of `value_bytes`, timestamps from `timestamp`.
pub fn batch(records: usize, value_bytes: usize, timestamp: i64) -> Vec<u8> {
    idempotent_batch(records, value_bytes, timestamp, -1, -1, -1)
}

pub fn idempotent_batch(
    records: usize,
    value_bytes: usize,
    timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Vec<u8> {
    let records: Vec<NewRecord> = (0..records)
        .map(|i| NewRecord {
            timestamp: timestamp + i as i64,
            key: Some(format!("key-{i}").into_bytes()),
            value: Some(vec![(timestamp as usize + i) as u8; value_bytes]),
            headers: Vec::new(),
        })
        .collect();
    let builder = BatchBuilder {
        producer_id,
        producer_epoch,
        base_sequence,
        ..Default::default()
    };
    builder.build(&records)
}

pub fn bytes_mut(batch: &[u8]) -> BytesMut {
    BytesMut::from(batch)
}

/// The bytes of a read, chunk by chunk, files read back.
pub fn materialize(result: &ReadResult<SimFile>) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in &result.chunks {
        match chunk {
            ReadChunk::Memory(bytes) => out.extend_from_slice(bytes),
            ReadChunk::File {
                file,
                position,
                len,
            } => {
                let bytes: Bytes = block_on(file.read_at(*position, *len as usize)).expect("read");
                assert_eq!(
                    bytes.len(),
                    *len as usize,
                    "file chunk past the end of the file"
                );
                out.extend_from_slice(&bytes);
            }
        }
    }
    assert_eq!(
        out.len(),
        result.bytes,
        "ReadResult::bytes disagrees with its chunks"
    );
    out
}

/// Splits bytes into whole batches; panics on a partial one.
pub fn split_batches(bytes: &[u8]) -> Vec<Vec<u8>> {
    BatchIter::new(bytes)
        .map(|step| match step {
            BatchStep::Batch { bytes, .. } => bytes.to_vec(),
            BatchStep::Tail { position, reason } => panic!("partial batch at {position}: {reason}"),
        })
        .collect()
}

/// Every batch from the log start to the high watermark (on the in-memory disk, or a wrapper
/// of it).
pub fn read_all<D: Disk<File = SimFile>>(log: &PartitionLog<D>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.durable_end() {
        let result = block_on(log.read(offset, 1 << 20, true, log.durable_end())).expect("read");
        let batches = split_batches(&materialize(&result));
        assert!(
            !batches.is_empty(),
            "empty read below the high watermark at {offset}"
        );
        for b in batches {
            let h = millrace_wire::records::BatchHeader::parse(&b).unwrap();
            offset = h.next_offset();
            out.push(b);
        }
    }
    out
}

/// Runs a seeded model: the one seed `$<prefix>_SEED` names, else seeds 0..`$<prefix>_SEEDS`
/// (default `default_seeds`), naming the failing seed and how to rerun it.
pub fn run_seeds(prefix: &str, what: &str, default_seeds: u64, run: impl Fn(u64)) {
    let one = format!("{prefix}_SEED");
    if let Ok(seed) = std::env::var(&one) {
        run(seed.parse().unwrap_or_else(|_| panic!("{one} is a number")));
        return;
    }
    let seeds: u64 = std::env::var(format!("{prefix}_SEEDS"))
        .map_or(default_seeds, |n| n.parse().expect("a number"));
    for seed in 0..seeds {
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(seed)));
        if let Err(panic) = ran {
            eprintln!("{what} failed with seed {seed}; rerun with {one}={seed}");
            std::panic::resume_unwind(panic);
        }
    }
}
