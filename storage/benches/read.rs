//! Offset lookup: `PartitionLog::read` at random offsets of a flushed log on the in-memory
//! `SimDisk`, with a batch cache too small to hold anything, so every read goes through the
//! sparse offset index and the segment list (the index is not public; this is its path).
//! Numbers are reported by `cargo bench -p millrace-storage`, never asserted.

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion};
use futures_lite::future::block_on;
use millrace_storage::sim::SimDisk;
use millrace_storage::{BatchCache, LogConfig, PartitionLog};
use millrace_wire::epoch::LeaderEpoch;
use millrace_wire::records::{BatchBuilder, NewRecord};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::hint::black_box;
use std::path::PathBuf;

const BATCHES: i64 = 20_000;
const RECORDS_PER_BATCH: i64 = 4;

fn filled_log(segment_bytes: u64) -> PartitionLog<SimDisk> {
    let disk = SimDisk::new(4096);
    let config = LogConfig {
        segment_bytes,
        ..LogConfig::default()
    };
    let log = block_on(PartitionLog::open(
        disk,
        PathBuf::from("/data/bench-0"),
        config,
        BatchCache::new(1),
        0,
    ))
    .expect("open");
    let records: Vec<NewRecord> = (0..RECORDS_PER_BATCH)
        .map(|i| NewRecord {
            timestamp: i,
            key: None,
            value: Some(vec![b'v'; 100]),
            headers: Vec::new(),
        })
        .collect();
    let batch = BatchBuilder::default().build(&records);
    for i in 0..BATCHES {
        log.append(BytesMut::from(&batch[..]), LeaderEpoch(0), i, false)
            .expect("append");
        if i % 1000 == 999 {
            block_on(log.flush()).expect("flush");
        }
    }
    block_on(log.flush()).expect("flush");
    log
}

fn offset_lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("partition_log_read_random_offset");
    for (name, segment_bytes) in [("one_segment", 1u64 << 30), ("16_segments", 256 << 10)] {
        let log = filled_log(segment_bytes);
        let end = log.durable_end();
        assert_eq!(end, BATCHES * RECORDS_PER_BATCH);
        let mut rng = SmallRng::seed_from_u64(1);
        group.bench_function(name, |b| {
            b.iter(|| {
                let offset = rng.random_range(0..end);
                let result =
                    block_on(log.read(black_box(offset), 64 << 10, true, log.durable_end()))
                        .expect("read");
                assert!(result.bytes > 0);
                result
            })
        });
    }
    group.finish();
}

criterion_group!(benches, offset_lookup);
criterion_main!(benches);
