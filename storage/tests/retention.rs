//! Retention, DeleteRecords, compaction and live configuration of the partition log, against
//! the simulated disk.

mod common;

use common::*;
use futures_lite::future::block_on;
use millrace_storage::sim::SimDisk;
use millrace_storage::{LogConfig, NoThrottle, StorageError, Throttle, IO_BYTES};
use millrace_wire::compression::Compression;
use millrace_wire::epoch::LeaderEpoch;
use millrace_wire::records::{
    decode_records, BatchBuilder, BatchHeader, NewRecord, Record, TxnMarker,
};
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// A batch of (key, value) records with timestamps from `timestamp`.
fn keyed(pairs: &[(&str, Option<&str>)], timestamp: i64) -> Vec<u8> {
    keyed_with(BatchBuilder::default(), pairs, timestamp)
}

fn keyed_with(builder: BatchBuilder, pairs: &[(&str, Option<&str>)], timestamp: i64) -> Vec<u8> {
    let records: Vec<NewRecord> = pairs
        .iter()
        .enumerate()
        .map(|(i, (k, v))| NewRecord {
            timestamp: timestamp + i as i64,
            key: Some(k.as_bytes().to_vec()),
            value: v.map(|v| v.as_bytes().to_vec()),
            headers: Vec::new(),
        })
        .collect();
    builder.build(&records)
}

fn append(log: &Log, batch: &[u8], now_ms: i64) -> i64 {
    let out = log
        .append(bytes_mut(batch), LeaderEpoch(0), now_ms, false)
        .expect("append");
    out.base_offset
}

/// Every record from the log start, decoded.
fn records(log: &Log) -> Vec<Record> {
    read_all(log)
        .iter()
        .flat_map(|b| decode_records(b, 1 << 20).unwrap())
        .collect()
}

fn kv(records: &[Record]) -> Vec<(i64, String, Option<String>)> {
    records
        .iter()
        .map(|r| {
            let s = |b: &bytes::Bytes| String::from_utf8(b.to_vec()).unwrap();
            (
                r.offset,
                s(r.key.as_ref().unwrap()),
                r.value.as_ref().map(s),
            )
        })
        .collect()
}

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 300,
        index_interval_bytes: 1,
        ..LogConfig::default()
    }
}

fn compacted() -> LogConfig {
    LogConfig {
        cleanup_compact: true,
        cleanup_delete: false,
        min_cleanable_dirty_ratio: 0.0,
        ..small_segments()
    }
}

/// A compacted log with `segment_bytes` segments.
fn compacted_log(disk: &SimDisk, segment_bytes: u64) -> Log {
    let config = LogConfig {
        segment_bytes,
        ..compacted()
    };
    open(disk, &config, 1 << 20, 0)
}

/// `count` batches of 250 records of 4,000 bytes over 60 keys (about 1 MiB each; two fit a
/// 2 MiB segment), each flushed; returns their lengths.
fn fill_large(log: &Log, count: i64) -> Vec<usize> {
    let value = "v".repeat(4000);
    let keys: Vec<String> = (0..60).map(|k| format!("key-{k}")).collect();
    let pairs: Vec<(&str, Option<&str>)> = (0..250)
        .map(|i| (keys[i % 60].as_str(), Some(value.as_str())))
        .collect();
    (0..count)
        .map(|b| {
            let batch = keyed(&pairs, b * 1000);
            assert!(batch.len() > 900_000, "{}", batch.len());
            append(log, &batch, b * 1000);
            block_on(log.flush()).unwrap();
            batch.len()
        })
        .collect()
}

/// `batches` keyed batches (3 records each, keys a/b/c, about 90 bytes), each flushed.
fn fill(log: &Log, batches: usize, t0: i64) {
    for i in 0..batches {
        let value = format!("v{i}");
        let batch = keyed(
            &[
                ("a", Some(&value)),
                ("b", Some(&value)),
                ("c", Some(&value)),
            ],
            t0 + i as i64 * 10,
        );
        append(log, &batch, t0 + i as i64 * 10);
        block_on(log.flush()).unwrap();
    }
}

#[test]
fn set_config_validates_and_applies_live() {
    let disk = SimDisk::default();
    let log = open(&disk, &LogConfig::default(), 1 << 20, 0);
    for bad in [
        LogConfig {
            retention_ms: -2,
            ..LogConfig::default()
        },
        LogConfig {
            retention_bytes: -7,
            ..LogConfig::default()
        },
        LogConfig {
            min_cleanable_dirty_ratio: 1.5,
            ..LogConfig::default()
        },
        LogConfig {
            min_compaction_lag_ms: 10,
            max_compaction_lag_ms: 5,
            ..LogConfig::default()
        },
        LogConfig {
            delete_retention_ms: -1,
            ..LogConfig::default()
        },
    ] {
        assert!(matches!(
            log.set_config(bad),
            Err(StorageError::InvalidConfig { .. })
        ));
    }
    assert_eq!(
        log.config(),
        LogConfig::default(),
        "a refused config changes nothing"
    );
    fill(&log, 3, 0);
    assert_eq!(
        disk.paths()
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .count(),
        1
    );
    log.set_config(small_segments()).unwrap();
    fill(&log, 6, 100);
    let logs = disk
        .paths()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .count();
    assert!(
        logs >= 3,
        "segment_bytes applied at the next roll: {logs} segments"
    );
}

#[test]
fn compacted_log_refuses_keyless_records_even_compressed() {
    let disk = SimDisk::default();
    let log = open(&disk, &compacted(), 1 << 20, 0);
    for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let records = [
            NewRecord {
                key: Some(b"k".to_vec()),
                value: Some(b"v".to_vec()),
                ..Default::default()
            },
            NewRecord {
                key: None,
                value: Some(b"v".to_vec()),
                ..Default::default()
            },
        ];
        let bad = BatchBuilder {
            compression,
            ..Default::default()
        }
        .build(&records);
        let good = keyed(&[("k", Some("v"))], 0);
        let mut both = good.clone();
        both.extend_from_slice(&bad);
        let err = log.append(bytes_mut(&both), LeaderEpoch(0), 0, false);
        assert!(
            matches!(err, Err(StorageError::InvalidRecord { .. })),
            "{compression:?}: {err:?}"
        );
        assert_eq!(log.log_end_offset(), 0, "nothing appended");
    }
    append(&log, &keyed(&[("k", None)], 0), 0);
    assert_eq!(log.log_end_offset(), 1, "a tombstone has a key");
    // A delete-only log takes keyless records.
    log.set_config(small_segments()).unwrap();
    append(&log, &batch(2, 5, 0), 0);
    assert_eq!(log.log_end_offset(), 3);
}

#[test]
fn delete_records_moves_the_start_durably_and_deletes_segments_below() {
    let disk = SimDisk::default();
    let log = open(&disk, &small_segments(), 1 << 20, 0);
    fill(&log, 6, 1000);
    let hw = log.durable_end();
    assert_eq!(hw, 18);
    append(&log, &keyed(&[("z", Some("unflushed"))], 2000), 2000);
    for bad in [hw + 1, -2, i64::MIN, i64::MAX] {
        assert!(
            matches!(
                block_on(log.delete_records(bad, log.durable_end())),
                Err(StorageError::OffsetOutOfRange { .. })
            ),
            "offset {bad}"
        );
    }
    assert_eq!(
        block_on(log.delete_records(0, log.durable_end())).unwrap(),
        0,
        "at the start: nothing"
    );
    assert_eq!(
        block_on(log.delete_records(7, log.durable_end())).unwrap(),
        7
    );
    assert_eq!(
        block_on(log.delete_records(5, log.durable_end())).unwrap(),
        7,
        "never backwards"
    );
    assert_eq!(log.log_start_offset(), 7);
    assert!(matches!(
        block_on(log.read(6, 1 << 20, true, log.durable_end())),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    let got = records(&log);
    assert!(got[0].offset <= 7 && got.iter().any(|r| r.offset == 7));
    assert_eq!(
        block_on(log.offset_for_timestamp(0)).unwrap().map(|t| t.0),
        Some(7),
        "time lookup starts at the log start"
    );
    let bases: Vec<i64> = disk
        .paths()
        .iter()
        .filter_map(|p| {
            p.to_str()?
                .strip_suffix(".log")?
                .rsplit('/')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(
        bases.iter().filter(|&&b| b <= 7).count(),
        1,
        "only the segment holding the start is left of those at or below it: {bases:?}"
    );
    // Durable: a crash right after keeps the start.
    drop(log);
    disk.crash(1);
    let log = open(&disk, &small_segments(), 1 << 20, 0);
    assert_eq!(log.log_start_offset(), 7);
    assert!(log.durable_end() >= 18);
    assert_eq!(
        block_on(log.delete_records(-1, log.durable_end())).unwrap(),
        log.durable_end()
    );
    let end = log.durable_end();
    drop(log);
    disk.crash(2);
    let log = open(&disk, &small_segments(), 1 << 20, 0);
    assert_eq!((log.log_start_offset(), log.durable_end()), (end, end));
    assert!(records(&log).is_empty());
    assert_eq!(append(&log, &keyed(&[("n", Some("new"))], 5000), 5000), end);
}

#[test]
fn retention_by_time_rolls_the_due_active_segment_and_keeps_an_empty_one() {
    let disk = SimDisk::default();
    let config = LogConfig {
        retention_ms: 1000,
        ..small_segments()
    };
    let log = open(&disk, &config, 1 << 20, 0);
    fill(&log, 5, 0); // timestamps 0..42
    let out = block_on(log.enforce_retention(900, log.durable_end())).unwrap();
    assert_eq!(out.segments_deleted, 0, "nothing older than retention yet");
    let out = block_on(log.enforce_retention(1041, log.durable_end())).unwrap();
    assert!(out.segments_deleted >= 1);
    assert!(out.log_start_offset > 0 && out.log_start_offset < 15);
    let out = block_on(log.enforce_retention(10_000, log.durable_end())).unwrap();
    assert_eq!(
        out.log_start_offset, 15,
        "everything past retention, active included"
    );
    assert_eq!(log.log_end_offset(), 15);
    assert!(records(&log).is_empty());
    drop(log);
    disk.crash(3);
    let log = open(&disk, &config, 1 << 20, 10_000);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (15, 15));
    assert_eq!(
        append(&log, &keyed(&[("k", Some("v"))], 10_000), 10_000),
        15
    );
}

#[test]
fn retention_by_size_keeps_at_least_retention_bytes_and_never_unflushed_data() {
    let disk = SimDisk::default();
    let log = open(&disk, &small_segments(), 1 << 20, 0);
    fill(&log, 8, 0);
    let before: u64 = read_all(&log).iter().map(|b| b.len() as u64).sum();
    let one = read_all(&log)[0].len() as u64;
    log.set_config(LogConfig {
        retention_bytes: (before - 3 * one) as i64,
        ..small_segments()
    })
    .unwrap();
    let out = block_on(log.enforce_retention(0, log.durable_end())).unwrap();
    let after: u64 = read_all(&log).iter().map(|b| b.len() as u64).sum();
    assert_eq!(out.bytes_deleted, before - after);
    assert!(after >= before - 3 * one, "kept at least retention.bytes");
    assert!(out.segments_deleted >= 1, "deleted {out:?}");
    // Unflushed data is never deleted, however small retention is.
    log.set_config(LogConfig {
        retention_bytes: 0,
        ..small_segments()
    })
    .unwrap();
    append(&log, &keyed(&[("x", Some("pending"))], 0), 0);
    let end = log.log_end_offset();
    block_on(log.enforce_retention(0, log.durable_end())).unwrap();
    assert!(log.log_start_offset() <= log.durable_end());
    block_on(log.flush()).unwrap();
    assert_eq!(log.durable_end(), end);
    let got = records(&log);
    assert_eq!(
        got.last().map(|r| r.offset),
        Some(end - 1),
        "the pending record survived"
    );
    // cleanup.policy=compact only: retention does nothing.
    log.set_config(LogConfig {
        retention_bytes: 0,
        cleanup_delete: false,
        cleanup_compact: true,
        ..small_segments()
    })
    .unwrap();
    let start = log.log_start_offset();
    assert_eq!(
        block_on(log.enforce_retention(1 << 40, log.durable_end()))
            .unwrap()
            .segments_deleted,
        0
    );
    assert_eq!(log.log_start_offset(), start);
}

#[test]
fn a_quiet_log_rolls_by_segment_ms_at_retention_time() {
    let disk = SimDisk::default();
    let config = LogConfig {
        segment_ms: 100,
        ..LogConfig::default()
    };
    let log = open(&disk, &config, 1 << 20, 0);
    fill(&log, 1, 0);
    block_on(log.enforce_retention(50, log.durable_end())).unwrap();
    let count = |d: &SimDisk| {
        d.paths()
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .count()
    };
    assert_eq!(count(&disk), 1);
    block_on(log.enforce_retention(150, log.durable_end())).unwrap();
    assert_eq!(
        count(&disk),
        2,
        "rolled: a new (empty) active segment exists"
    );
    assert_eq!(records(&log).len(), 3);
}

#[test]
fn compaction_keeps_the_latest_value_per_key_at_its_offset() {
    let disk = SimDisk::default();
    let log = open(&disk, &compacted(), 4096, 0);
    fill(&log, 6, 0);
    let before = records(&log);
    assert_eq!(before.len(), 18);
    let out = block_on(log.clean(1000, &NoThrottle)).unwrap();
    assert!(out.cleaned && out.records_removed > 0, "{out:?}");
    let after = records(&log);
    // The active segment is never cleaned: whatever it holds stays; the cleaned range holds
    // only the latest record per key.
    let end = out.cleaned_end_offset;
    for r in &after {
        let original = before.iter().find(|b| b.offset == r.offset).unwrap();
        assert_eq!(r, original, "a record changed");
    }
    for b in before.iter().filter(|b| b.offset < end) {
        let latest = before
            .iter()
            .filter(|o| o.offset < end && o.key == b.key)
            .map(|o| o.offset)
            .max()
            .unwrap();
        let present = after.iter().any(|r| r.offset == b.offset);
        assert_eq!(present, b.offset == latest, "offset {}", b.offset);
    }
    assert!(
        after.iter().filter(|r| r.offset >= end).count()
            == before.iter().filter(|r| r.offset >= end).count()
    );
    // A fetch inside a gap gets the next batch; the cache never serves old bytes.
    let gap = (0..end)
        .find(|o| !after.iter().any(|r| r.offset == *o))
        .unwrap();
    let read = block_on(log.read(gap, 1 << 20, true, log.durable_end())).unwrap();
    let first = split_batches(&materialize(&read))[0].clone();
    let h = BatchHeader::parse(&first).unwrap();
    assert!(h.last_offset() >= gap);
    for r in decode_records(&first, 1 << 20).unwrap() {
        assert!(after.contains(&r));
    }
    // Recovery with gaps, with and without the index files.
    drop(log);
    for p in disk.paths() {
        if p.extension().is_some_and(|e| e == "index") {
            disk.put_file(&p, b"junk");
        }
    }
    disk.crash(4);
    let log = open(&disk, &compacted(), 4096, 2000);
    assert_eq!(records(&log), after);
    assert_eq!(log.log_end_offset(), 18);
    // Cleaning again changes nothing.
    let again = block_on(log.clean(2000, &NoThrottle)).unwrap();
    assert_eq!(again.records_removed, 0);
    assert_eq!(records(&log), after);
}

#[test]
fn tombstones_stay_for_delete_retention_then_go() {
    let disk = SimDisk::default();
    let config = LogConfig {
        delete_retention_ms: 500,
        ..compacted()
    };
    let log = open(&disk, &config, 0, 0);
    append(&log, &keyed(&[("x", Some("1")), ("y", Some("1"))], 0), 0);
    block_on(log.flush()).unwrap();
    append(
        &log,
        &keyed(&[("x", None), ("z", Some("1")), ("w", Some("1"))], 10),
        10,
    );
    block_on(log.flush()).unwrap();
    fill(&log, 2, 20); // rolls the tombstone's segment closed
    block_on(log.clean(100, &NoThrottle)).unwrap();
    let got = kv(&records(&log));
    assert!(
        got.contains(&(2, "x".into(), None)),
        "tombstone kept: {got:?}"
    );
    assert!(
        !got.iter().any(|r| r.0 == 0),
        "x=1 superseded by the tombstone"
    );
    block_on(log.clean(10_000, &NoThrottle)).unwrap();
    let got = kv(&records(&log));
    assert!(
        !got.iter().any(|r| r.1 == "x"),
        "expired tombstone removed: {got:?}"
    );
    assert!(got.iter().any(|r| r.1 == "y") && got.iter().any(|r| r.1 == "w"));
}

#[test]
fn an_idempotent_producers_last_batch_survives_empty_and_sequences_continue() {
    let disk = SimDisk::default();
    let config = LogConfig {
        segment_bytes: 200,
        ..compacted()
    };
    let log = open(&disk, &config, 1 << 20, 0);
    let producer = |seq: i32| BatchBuilder {
        producer_id: 5,
        producer_epoch: 0,
        base_sequence: seq,
        ..Default::default()
    };
    append(
        &log,
        &keyed_with(producer(0), &[("p", Some("1")), ("q", Some("1"))], 0),
        0,
    );
    block_on(log.flush()).unwrap();
    append(&log, &keyed_with(producer(2), &[("p", Some("2"))], 1), 1);
    block_on(log.flush()).unwrap();
    // A plain producer overwrites both keys, in later segments.
    for i in 0..4 {
        append(
            &log,
            &keyed(&[("p", Some("x")), ("q", Some("x"))], 10 + i),
            10 + i,
        );
        block_on(log.flush()).unwrap();
    }
    let out = block_on(log.clean(1000, &NoThrottle)).unwrap();
    assert!(out.cleaned);
    let batches = read_all(&log);
    let kept = batches
        .iter()
        .map(|b| BatchHeader::parse(b).unwrap())
        .find(|h| h.producer_id == 5)
        .expect("the producer's last batch is kept");
    assert_eq!(
        (kept.base_offset, kept.record_count, kept.base_sequence),
        (2, 0, 2)
    );
    assert!(
        !batches
            .iter()
            .any(|b| BatchHeader::parse(b).unwrap().base_offset == 0),
        "its earlier batch went"
    );
    // After a crash that loses the producer snapshots, the log alone restores the sequence.
    block_on(log.close()).unwrap();
    drop(log);
    for p in disk.paths() {
        if p.extension().is_some_and(|e| e == "snapshot") {
            disk.put_file(&p, b"bad");
        }
    }
    let log = open(&disk, &config, 1 << 20, 2000);
    let retry = keyed_with(producer(2), &[("p", Some("2"))], 1);
    let out = log
        .append(bytes_mut(&retry), LeaderEpoch(0), 2000, false)
        .unwrap();
    assert!(out.duplicate && out.base_offset == 2);
    let next = keyed_with(producer(3), &[("p", Some("3"))], 2000);
    assert!(
        !log.append(bytes_mut(&next), LeaderEpoch(0), 2000, false)
            .unwrap()
            .duplicate
    );
}

#[test]
fn clean_respects_policy_ratio_and_min_lag() {
    let disk = SimDisk::default();
    let log = open(&disk, &small_segments(), 1 << 20, 0);
    fill(&log, 5, 0);
    assert!(
        !block_on(log.clean(1000, &NoThrottle)).unwrap().cleaned,
        "delete policy"
    );
    log.set_config(LogConfig {
        min_compaction_lag_ms: 10_000,
        ..compacted()
    })
    .unwrap();
    assert!(
        !block_on(log.clean(1000, &NoThrottle)).unwrap().cleaned,
        "too young"
    );
    assert!((log.dirty_ratio() - 1.0).abs() < 1e-9);
    log.set_config(LogConfig {
        min_cleanable_dirty_ratio: 0.9,
        ..compacted()
    })
    .unwrap();
    assert!(block_on(log.clean(1000, &NoThrottle)).unwrap().cleaned);
    assert_eq!(log.dirty_ratio(), 0.0);
    fill(&log, 4, 100);
    assert!(log.dirty_ratio() > 0.0 && log.dirty_ratio() < 1.0);
    log.set_config(LogConfig {
        min_cleanable_dirty_ratio: 1.0,
        ..compacted()
    })
    .unwrap();
    assert!(
        !block_on(log.clean(1000, &NoThrottle)).unwrap().cleaned,
        "below the ratio"
    );
    log.set_config(LogConfig {
        min_cleanable_dirty_ratio: 1.0,
        max_compaction_lag_ms: 500,
        ..compacted()
    })
    .unwrap();
    let out = block_on(log.clean(1000, &NoThrottle)).unwrap();
    assert!(out.bytes_read > 0, "max lag forces a clean: {out:?}");
}

/// Counts the bytes it is asked to pace, and the pauses.
#[derive(Default)]
struct Counting(Cell<usize>, Cell<usize>);

impl Throttle for Counting {
    fn pace(&self, bytes: usize) -> impl Future<Output = ()> {
        self.0.set(self.0.get() + bytes);
        std::future::ready(())
    }

    fn pause(&self) -> impl Future<Output = ()> {
        self.1.set(self.1.get() + 1);
        std::future::ready(())
    }
}

#[test]
fn the_throttle_sees_every_byte_read_and_written() {
    let disk = SimDisk::default();
    let log = open(&disk, &compacted(), 1 << 20, 0);
    fill(&log, 6, 0);
    let throttle = Counting::default();
    let out = block_on(log.clean(1000, &throttle)).unwrap();
    assert!(throttle.0.get() as u64 >= out.bytes_read + out.bytes_written);
}

/// The cleaner decodes in slices with a pause between them (the broker yields to its reactor
/// there), not a whole read chunk at a time.
#[test]
fn the_cleaner_pauses_between_slices_of_decoding() {
    let disk = SimDisk::default();
    let log = compacted_log(&disk, 1 << 20);
    let value = "x".repeat(1000);
    for i in 0..2000 {
        let k = format!("key-{}", i % 50);
        append(&log, &keyed(&[(&k, Some(&value))], i), i);
    }
    block_on(log.flush()).unwrap();
    // Roll so the data is in closed segments.
    append(&log, &keyed(&[("last", Some("v"))], 5000), 5000);
    block_on(log.flush()).unwrap();
    let throttle = Counting::default();
    let out = block_on(log.clean(10_000, &throttle)).unwrap();
    assert!(out.cleaned, "{out:?}");
    assert!(out.bytes_read > 1 << 20, "{out:?}");
    // One pause per 64 KiB decoded (bytes_read counts both passes); half that is the floor.
    let expected = out.bytes_read / (128 * 1024);
    assert!(
        throttle.1.get() as u64 >= expected,
        "{} pauses for {} bytes read",
        throttle.1.get(),
        out.bytes_read
    );
}

/// Batches of about 1 MiB are read and written in requests of at most [`IO_BYTES`] (a large
/// request in flight holds up the foreground writes and flushes queued behind it), and each
/// pass reads every byte once: a batch larger than one request is assembled, not re-read.
#[test]
fn the_cleaner_reads_and_writes_large_batches_in_small_requests_and_once() {
    let disk = SimDisk::default();
    let log = compacted_log(&disk, 2 << 20);
    // Seven batches, two to a segment, so the first six are cleanable.
    let lengths = fill_large(&log, 7);
    let cleanable: u64 = lengths[..6].iter().map(|&n| n as u64).sum();
    disk.reset_stats();
    let out = block_on(log.clean(10_000, &NoThrottle)).unwrap();
    let stats = disk.stats();
    assert!(out.cleaned, "{out:?}");
    assert!(stats.largest_read as usize <= IO_BYTES, "{stats:?}");
    assert!(stats.largest_write as usize <= IO_BYTES, "{stats:?}");
    assert!(
        stats.bytes_written >= out.bytes_written,
        "{stats:?} {out:?}"
    );
    // Both passes read each cleanable byte once, and nothing else.
    assert_eq!(stats.bytes_read, 2 * cleanable, "{stats:?}");
    assert_eq!(out.bytes_read, 2 * cleanable, "{out:?}");
    // The cleaned segments keep each key's latest record; the active one is untouched.
    let kept = kv(&records(&log));
    assert_eq!(kept.len(), 60 + 250);
    let last_in_cleaned: Vec<i64> = (6 * 250 - 60..6 * 250).collect();
    let offsets: Vec<i64> = kept.iter().take(60).map(|r| r.0).collect();
    assert_eq!(offsets, last_in_cleaned);
}

/// A cleanable segment whose batch claims more bytes than the segment holds, or whose file is
/// shorter than its index says, fails the clean with the position, and nothing is swapped.
#[test]
fn a_damaged_segment_fails_the_clean_and_changes_nothing() {
    for damage in ["length", "short file"] {
        let disk = SimDisk::default();
        let log = compacted_log(&disk, 2 << 20);
        let first = fill_large(&log, 3)[0];
        let path = dir().join("00000000000000000000.log");
        let mut bytes = disk.file_bytes(&path).unwrap();
        match damage {
            // The second batch's length field (after its 8-byte base offset).
            "length" => bytes[first + 8..first + 12].copy_from_slice(&i32::MAX.to_be_bytes()),
            _ => bytes.truncate(first + 100_000),
        }
        disk.put_file(&path, &bytes);
        let err = block_on(log.clean(10_000, &NoThrottle)).unwrap_err();
        let text = err.to_string();
        let expected = match damage {
            "length" => "batch cut short in a synced segment",
            _ => "segment file shorter than its index says",
        };
        assert!(text.contains(expected), "{damage}: {text}");
        assert!(
            text.contains("00000000000000000000.log"),
            "{damage}: {text}"
        );
        assert_eq!(disk.file_bytes(&path).unwrap(), bytes, "{damage}");
        assert!(
            !disk
                .paths()
                .iter()
                .any(|p| p.to_string_lossy().ends_with(".cleaned")),
            "{damage}: {:?}",
            disk.paths()
        );
    }
}

#[test]
fn a_small_dedupe_buffer_cleans_fewer_segments() {
    let disk = SimDisk::default();
    let log = open(&disk, &compacted(), 1 << 20, 0);
    for i in 0..12 {
        let k = format!("key-{i}");
        append(&log, &keyed(&[(&k, Some("v")), (&k, Some("w"))], i), i);
        block_on(log.flush()).unwrap();
    }
    log.set_config(LogConfig {
        cleaner_dedupe_buffer_bytes: 3 * (6 + millrace_storage::MAP_ENTRY_BYTES),
        ..compacted()
    })
    .unwrap();
    let out = block_on(log.clean(1000, &NoThrottle)).unwrap();
    assert!(out.cleaned);
    assert!(out.cleaned_end_offset < log.log_end_offset() - 2, "{out:?}");
    for r in records(&log) {
        assert!(
            r.offset >= out.cleaned_end_offset || r.offset % 2 == 1,
            "older duplicate kept at {}",
            r.offset
        );
    }
}

/// Polls `fut` at most `polls` times; true when it finished.
fn poll_n<F: Future>(fut: F, polls: usize) -> bool {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..polls {
        if let Poll::Ready(r) = fut.as_mut().poll(&mut cx) {
            drop(r);
            return true;
        }
    }
    false
}

#[test]
fn a_crash_at_any_point_of_a_clean_keeps_old_or_new_content() {
    let mut polls = 1;
    loop {
        let disk = SimDisk::default();
        let log = open(&disk, &compacted(), 1 << 20, 0);
        fill(&log, 6, 0);
        let before = records(&log);
        disk.set_yield(true);
        let finished = poll_n(log.clean(1000, &NoThrottle), polls);
        disk.set_yield(false);
        drop(log);
        disk.crash(polls as u64);
        let log = open(&disk, &compacted(), 1 << 20, 0);
        let after = records(&log);
        assert!(
            !disk
                .paths()
                .iter()
                .any(|p| p.to_string_lossy().ends_with(".cleaned")),
            "stray cleaned file after recovery"
        );
        // Every record present is unchanged; every one missing has a later one with its key.
        for r in &after {
            assert!(
                before.contains(r),
                "poll {polls}: record from nowhere at {}",
                r.offset
            );
        }
        for b in &before {
            if !after.iter().any(|r| r.offset == b.offset) {
                assert!(
                    after.iter().any(|r| r.key == b.key && r.offset > b.offset),
                    "poll {polls}: offset {} lost without a later value",
                    b.offset
                );
            }
        }
        assert_eq!(log.log_end_offset(), 18);
        if finished {
            assert!(
                polls > 5,
                "the clean must have been interrupted at some points"
            );
            break;
        }
        polls += 1;
    }
}

#[test]
fn one_read_spans_segments_so_cleaned_segments_cost_no_round_trips() {
    let disk = SimDisk::default();
    let log = open(&disk, &compacted(), 0, 0);
    fill(&log, 6, 0);
    block_on(log.clean(1000, &NoThrottle)).unwrap();
    let all = read_all(&log);
    let read = block_on(log.read(0, 1 << 20, true, log.durable_end())).unwrap();
    assert!(
        read.chunks.len() > 1,
        "the read stopped at the first segment"
    );
    assert_eq!(split_batches(&materialize(&read)), all);
    // The budget still bounds it: whole batches, and at least the first.
    let first_len = all[0].len();
    let read = block_on(log.read(0, first_len + 1, true, log.durable_end())).unwrap();
    assert_eq!(split_batches(&materialize(&read)), all[..1].to_vec());
    let read = block_on(log.read(0, 1, true, log.durable_end())).unwrap();
    assert_eq!(read.bytes, first_len);
}

#[test]
fn retention_and_delete_records_race_with_a_flush_round() {
    for delete_records in [false, true] {
        let disk = SimDisk::default();
        let log = open(&disk, &small_segments(), 1 << 20, 0);
        fill(&log, 3, 0); // the first segment is full, synced, its roll not yet seen
        append(&log, &keyed(&[("a", Some("late"))], 50), 50); // rolls it
        log.set_config(LogConfig {
            retention_bytes: 0,
            ..small_segments()
        })
        .unwrap();
        disk.set_yield(true);
        let end = log.log_end_offset();
        let (flushed, deleted) = block_on(futures_lite::future::zip(log.flush(), async {
            futures_lite::future::yield_now().await;
            if delete_records {
                log.delete_records(-1, log.durable_end()).await.map(|_| ())
            } else {
                log.enforce_retention(0, log.durable_end())
                    .await
                    .map(|_| ())
            }
        }));
        disk.set_yield(false);
        flushed.unwrap();
        deleted.unwrap();
        assert_eq!(log.durable_end(), end);
        block_on(log.flush()).unwrap();
        block_on(log.enforce_retention(0, log.durable_end())).unwrap();
        assert!(log.log_start_offset() > 0);
        drop(log);
        disk.crash(9);
        let log = open(&disk, &small_segments(), 1 << 20, 0);
        assert_eq!(log.log_end_offset(), end);
    }
}

#[test]
fn a_failed_clean_changes_nothing_and_the_next_one_succeeds() {
    for fault in 0..3 {
        let disk = SimDisk::default();
        let log = open(&disk, &compacted(), 1 << 20, 0);
        fill(&log, 6, 0);
        let before = records(&log);
        match fault {
            0 => disk.set_disk_full(true),
            1 => disk.fail_next_writes(1),
            _ => disk.fail_next_syncs(1),
        }
        let err = block_on(log.clean(1000, &NoThrottle)).unwrap_err();
        assert!(
            matches!(err, StorageError::Io { .. }),
            "fault {fault}: {err}"
        );
        disk.set_disk_full(false);
        assert_eq!(
            records(&log),
            before,
            "fault {fault}: a failed clean changed the log"
        );
        let out = block_on(log.clean(1000, &NoThrottle)).unwrap();
        assert!(out.cleaned && out.records_removed > 0);
        assert!(
            !disk
                .paths()
                .iter()
                .any(|p| p.to_string_lossy().ends_with(".cleaned")),
            "fault {fault}: cleaned file left behind"
        );
        let after = records(&log);
        drop(log);
        disk.crash(fault);
        let log = open(&disk, &compacted(), 1 << 20, 0);
        assert_eq!(records(&log), after);
    }
}

#[test]
fn failed_retention_and_delete_records_keep_the_log_usable() {
    let disk = SimDisk::default();
    let log = open(&disk, &small_segments(), 1 << 20, 0);
    fill(&log, 6, 0);
    disk.set_disk_full(true);
    let err = block_on(log.delete_records(7, log.durable_end())).unwrap_err();
    assert!(err.is_disk_full(), "{err}");
    assert_eq!(
        log.log_start_offset(),
        0,
        "the start moves only once it is durable"
    );
    disk.set_disk_full(false);
    assert_eq!(
        block_on(log.delete_records(7, log.durable_end())).unwrap(),
        7
    );
    log.set_config(LogConfig {
        retention_bytes: 0,
        ..small_segments()
    })
    .unwrap();
    let out = block_on(log.enforce_retention(0, log.durable_end())).unwrap();
    assert!(out.segments_deleted > 0);
    assert_eq!(out.log_start_offset, log.log_start_offset());
    assert_eq!(log.log_end_offset(), 18);
}

#[test]
fn retention_deleting_the_segments_a_clean_rewrites_resurrects_nothing() {
    for delay in 0..40 {
        let disk = SimDisk::default();
        let config = LogConfig {
            cleanup_delete: true,
            ..compacted()
        };
        let log = open(&disk, &config, 1 << 20, 0);
        fill(&log, 6, 0);
        disk.set_yield(true);
        let (cleaned, retained) = block_on(futures_lite::future::zip(
            log.clean(1000, &NoThrottle),
            async {
                for _ in 0..delay {
                    futures_lite::future::yield_now().await;
                }
                log.delete_records(-1, log.durable_end()).await
            },
        ));
        disk.set_yield(false);
        cleaned.unwrap();
        let start = retained.unwrap();
        assert_eq!(start, 18);
        block_on(log.enforce_retention(1000, log.durable_end())).unwrap();
        let files = |d: &SimDisk| {
            let mut v: Vec<String> = d
                .paths()
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".log") || n.ends_with(".cleaned"))
                .collect();
            v.sort();
            v
        };
        let before = files(&disk);
        drop(log);
        disk.crash(delay);
        let log = open(&disk, &config, 1 << 20, 0);
        assert_eq!(log.log_start_offset(), 18, "delay {delay}");
        assert_eq!(log.log_end_offset(), 18, "delay {delay}");
        assert!(
            before.iter().all(|n| n.ends_with(".log")),
            "delay {delay}: {before:?}"
        );
        assert_eq!(files(&disk).len(), 1, "delay {delay}: {:?}", files(&disk));
    }
}

#[test]
fn retention_frees_a_full_disk() {
    let disk = SimDisk::default();
    let log = open(&disk, &small_segments(), 1 << 20, 0);
    fill(&log, 6, 0);
    append(&log, &keyed(&[("a", Some("roll"))], 100), 100);
    disk.set_disk_full(true);
    log.set_config(LogConfig {
        retention_bytes: 0,
        ..small_segments()
    })
    .unwrap();
    let out = block_on(log.enforce_retention(100, log.durable_end())).unwrap();
    assert!(out.segments_deleted > 0, "{out:?}");
    assert_eq!(
        out.log_start_offset, 18,
        "everything durable deleted, the pending record kept"
    );
    disk.set_disk_full(false);
    block_on(log.flush()).unwrap();
    assert_eq!(records(&log).len(), 1);
}

/// Records of aborted transactions never supersede a committed record and are dropped; the
/// clean stops before an open transaction, and reaches it once it commits.
#[test]
fn compaction_drops_aborted_records_and_stops_at_an_open_transaction() {
    let disk = SimDisk::default();
    let log = compacted_log(&disk, 100);
    let txn = |pid| BatchBuilder {
        producer_id: pid,
        producer_epoch: 0,
        base_sequence: 0,
        transactional: true,
        ..Default::default()
    };
    let marker = |commit| TxnMarker {
        commit,
        coordinator_epoch: 0,
    };
    let mark = |pid, commit| {
        log.append_marker(pid, 0, marker(commit), LeaderEpoch(0), 10)
            .unwrap()
            .base_offset
    };
    assert_eq!(append(&log, &keyed(&[("k", Some("a"))], 1), 1), 0);
    assert_eq!(
        append(&log, &keyed_with(txn(1), &[("k", Some("b"))], 2), 2),
        1
    );
    assert_eq!(mark(1, true), 2);
    let aborted = keyed_with(txn(2), &[("k", Some("c")), ("j", Some("c"))], 3);
    assert_eq!(append(&log, &aborted, 3), 3);
    assert_eq!(mark(2, false), 5);
    assert_eq!(append(&log, &keyed(&[("j", Some("x"))], 4), 4), 6);
    assert_eq!(
        append(&log, &keyed_with(txn(3), &[("k", Some("d"))], 5), 5),
        7
    );
    fill(&log, 4, 100);
    let data = |log: &Log| {
        let all = read_all(log);
        let data: Vec<Vec<u8>> = all
            .into_iter()
            .filter(|b| !BatchHeader::parse(b).unwrap().is_control())
            .collect();
        let recs: Vec<Record> = data
            .iter()
            .flat_map(|b| decode_records(b, 1 << 20).unwrap())
            .collect();
        kv(&recs)
            .into_iter()
            .map(|(o, k, v)| (o, k, v.unwrap_or_default()))
            .collect::<Vec<_>>()
    };
    let before = data(&log);
    let out = block_on(log.clean(1000, &NoThrottle)).unwrap();
    assert_eq!(out.cleaned_end_offset, 7, "stops at the open transaction");
    let after = data(&log);
    let kept: Vec<i64> = after.iter().map(|r| r.0).filter(|&o| o < 7).collect();
    // k@0 lost to the committed k@1; the aborted k@3 and j@4 superseded nothing and went.
    assert_eq!(kept, vec![1, 6]);
    let tail =
        |v: &[(i64, String, String)]| v.iter().filter(|r| r.0 >= 7).cloned().collect::<Vec<_>>();
    assert_eq!(tail(&after), tail(&before));
    assert_eq!(
        log.aborted_transactions(0, 100).len(),
        1,
        "the abort stays indexed"
    );
    // Once the transaction commits the clean goes on, and k@7 supersedes k@1.
    let commit = mark(3, true);
    block_on(log.flush()).unwrap();
    fill(&log, 2, 200);
    let out = block_on(log.clean(2000, &NoThrottle)).unwrap();
    assert!(out.cleaned_end_offset > commit, "{out:?}");
    let after = data(&log);
    assert!(!after.iter().any(|r| r.0 == 1));
    assert!(after.iter().any(|r| r.0 == 7));
}
