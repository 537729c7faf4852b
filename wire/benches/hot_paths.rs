//! Micro-benchmarks of the wire crate's hot paths: batch validation with CRC-32C, Produce
//! request decoding (the guard walk plus kafka-protocol's decode, as the broker does it) and
//! Fetch response encoding, and the compaction cleaner's per-batch work (decoding records for
//! the key map, filtering a batch). Numbers are reported by `cargo bench -p millrace-wire`, never
//! asserted.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use millrace_wire::fetch::{encode_fetch_response, PartitionData, TopicData, TopicKey};
use millrace_wire::records::{
    decode_records, filter_records, validate_batch, BatchBuilder, NewRecord,
};
use millrace_wire::Compression;
use std::hint::black_box;

const PARTITIONS: i32 = 16;

/// A batch of `count` records of `value_bytes` each, as a producer would send it.
fn batch(count: usize, value_bytes: usize, compression: Compression) -> Vec<u8> {
    keyed_batch(count, value_bytes, compression, false)
}

/// Like [`batch`], with a 6-byte key per record when `keyed`.
fn keyed_batch(count: usize, value_bytes: usize, compression: Compression, keyed: bool) -> Vec<u8> {
    let records: Vec<NewRecord> = (0..count)
        .map(|i| NewRecord {
            timestamp: 1_700_000_000_000 + i as i64,
            key: keyed.then(|| format!("k{:05}", i).into_bytes()),
            value: Some(
                (0..value_bytes)
                    .map(|j| b'A' + ((i * 31 + j) % 26) as u8)
                    .collect(),
            ),
            headers: Vec::new(),
        })
        .collect();
    BatchBuilder {
        compression,
        producer_id: 1,
        producer_epoch: 0,
        base_sequence: 0,
        ..Default::default()
    }
    .build(&records)
}

fn batch_validation(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate_batch");
    for (name, count, size) in [("64x1KiB", 64, 1024), ("1000x100B", 1000, 100)] {
        let b = batch(count, size, Compression::None);
        group.throughput(Throughput::Bytes(b.len() as u64));
        group.bench_function(name, |bench| {
            bench.iter(|| validate_batch(black_box(&b)).expect("valid"))
        });
    }
    group.finish();
}

fn produce_body(version: i16) -> Bytes {
    let records = Bytes::from(batch(64, 1024, Compression::None));
    let mut topic = TopicProduceData::default();
    topic.name = TopicName(StrBytes::from_static_str("bench"));
    topic.partition_data = (0..PARTITIONS)
        .map(|p| {
            let mut d = PartitionProduceData::default();
            d.index = p;
            d.records = Some(records.clone());
            d
        })
        .collect();
    let mut request = ProduceRequest::default();
    request.acks = -1;
    request.timeout_ms = 30_000;
    request.topic_data = vec![topic];
    let mut buf = BytesMut::new();
    request.encode(&mut buf, version).expect("encodes");
    buf.freeze()
}

fn produce_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("produce_decode");
    for version in [7i16, 9] {
        let body = produce_body(version);
        // Record bytes are sliced, not copied: the cost is per partition, not per byte.
        group.throughput(Throughput::Elements(PARTITIONS as u64));
        group.bench_function(format!("v{version}_16x64KiB"), |bench| {
            bench.iter(|| {
                millrace_wire::guard::check_request_body(0, version, black_box(&body))
                    .expect("guard accepts");
                let mut b = body.clone();
                ProduceRequest::decode(&mut b, version).expect("decodes")
            })
        });
    }
    group.finish();
}

fn fetch_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("fetch_encode");
    let records = Bytes::from(batch(64, 1024, Compression::None));
    for version in [11i16, 12] {
        group.throughput(Throughput::Elements(PARTITIONS as u64));
        group.bench_function(format!("v{version}_16_partitions"), |bench| {
            bench.iter_batched(
                || {
                    vec![TopicData {
                        topic: TopicKey::Name("bench".into()),
                        partitions: (0..PARTITIONS)
                            .map(|p| PartitionData {
                                partition_index: p,
                                error_code: 0,
                                high_watermark: 1_000_000,
                                last_stable_offset: 1_000_000,
                                log_start_offset: 0,
                                aborted_transactions: None,
                                records: vec![records.clone()],
                                diverging_epoch: None,
                                current_leader: None,
                            })
                            .collect(),
                    }]
                },
                |topics| encode_fetch_response(7, version, (0, 0, 0), topics, &[]),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// The cleaner's work on one 1 MiB batch (1,000 keyed records of 1 KiB, as a producer with
/// batch.size=1 MiB sends them): decoding it for the key map, and filtering out half of it.
fn compaction(c: &mut Criterion) {
    let mut group = c.benchmark_group("compaction");
    let b = keyed_batch(1000, 1024, Compression::None, true);
    group.throughput(Throughput::Bytes(b.len() as u64));
    group.bench_function("decode_records_1000x1KiB", |bench| {
        bench.iter(|| decode_records(black_box(&b), 64 << 20).expect("valid"))
    });
    group.bench_function("filter_records_half_1000x1KiB", |bench| {
        bench.iter(|| {
            let mut n = 0u32;
            filter_records(black_box(&b), 64 << 20, |_| {
                n += 1;
                n.is_multiple_of(2)
            })
            .expect("valid")
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    batch_validation,
    produce_decode,
    fetch_encode,
    compaction
);
criterion_main!(benches);
