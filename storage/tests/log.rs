//! Behaviour of the partition log through its public API, on the in-memory disk.

mod common;

use common::*;
use futures_lite::future::{block_on, zip};
use millrace_storage::sim::SimDisk;
use millrace_storage::{LogConfig, ReadChunk, StorageError};
use millrace_wire::epoch::LeaderEpoch;
use millrace_wire::records::{decode_records, BatchHeader};

const E0: LeaderEpoch = LeaderEpoch(0);

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

fn log_files(disk: &SimDisk, suffix: &str) -> Vec<String> {
    disk.paths()
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(suffix))
        .collect()
}

#[test]
fn append_is_invisible_until_flush_then_reads_back_byte_for_byte() {
    let disk = SimDisk::new(512);
    let log = open(&disk, &LogConfig::default(), 1 << 20, 0);
    let a = batch(3, 10, 100);
    let out = log.append(bytes_mut(&a), E0, 0, false).unwrap();
    assert_eq!(
        (out.base_offset, out.last_offset, out.duplicate),
        (0, 2, false)
    );
    assert_eq!((log.log_end_offset(), log.durable_end()), (3, 0));
    assert!(block_on(log.read(0, 1000, true, log.durable_end()))
        .unwrap()
        .chunks
        .is_empty());
    assert!(matches!(
        block_on(log.read(1, 1000, true, log.durable_end())),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    block_on(log.flush()).unwrap();
    assert_eq!(log.durable_end(), 3);
    let result = block_on(log.read(1, 1000, true, log.durable_end())).unwrap();
    let batches = split_batches(&materialize(&result));
    assert_eq!(batches.len(), 1);
    let h = BatchHeader::parse(&batches[0]).unwrap();
    assert_eq!((h.base_offset, h.partition_leader_epoch), (0, 0));
    assert_eq!(
        &batches[0][16..],
        &a[16..],
        "only offset and epoch are rewritten"
    );
    assert!(
        matches!(result.chunks[0], ReadChunk::Memory(_)),
        "a tailing read comes from the cache"
    );
}

#[test]
fn reads_from_files_return_whole_batches_within_max_bytes() {
    let disk = SimDisk::new(512);
    let log = open(&disk, &small_config(), 0, 0);
    let mut expected = Vec::new();
    for i in 0..40 {
        let b = batch(1 + i % 3, 20 + i * 7, i as i64);
        let out = log.append(bytes_mut(&b), E0, 0, false).unwrap();
        let mut stored = b.clone();
        millrace_wire::records::set_base_offset(&mut stored, out.base_offset);
        millrace_wire::records::set_partition_leader_epoch(&mut stored, 0);
        expected.push((out.base_offset, out.last_offset, stored));
    }
    block_on(log.flush()).unwrap();
    assert!(log_files(&disk, ".log").len() > 3, "small segments roll");
    for &(base, last, ref bytes) in &expected {
        for offset in [base, last] {
            let r = block_on(log.read(offset, 300, true, log.durable_end())).unwrap();
            assert!(r.chunks.iter().all(|c| matches!(c, ReadChunk::File { .. })));
            let got = split_batches(&materialize(&r));
            assert_eq!(
                &got[0], bytes,
                "read at {offset} starts at the batch holding it"
            );
            assert!(r.bytes <= 300 || got.len() == 1);
            let r = block_on(log.read(offset, bytes.len() - 1, false, log.durable_end())).unwrap();
            assert_eq!(r.bytes, 0, "no partial batch without min_one_batch");
        }
    }
    assert_eq!(
        read_all(&log),
        expected.iter().map(|e| e.2.clone()).collect::<Vec<_>>()
    );
}

#[test]
fn roll_by_size_and_by_time() {
    let disk = SimDisk::new(512);
    let b = batch(1, 300, 0);
    let segment_bytes = 3 * b.len() as u64 + 10;
    let config = LogConfig {
        segment_bytes,
        segment_ms: 1000,
        ..LogConfig::default()
    };
    let log = open(&disk, &config, 0, 0);
    for now in [0, 10, 20] {
        log.append(bytes_mut(&b), E0, now, false).unwrap();
    }
    block_on(log.flush()).unwrap();
    assert_eq!(log_files(&disk, ".log").len(), 1, "three batches fit");
    log.append(bytes_mut(&b), E0, 30, false).unwrap();
    block_on(log.flush()).unwrap();
    assert_eq!(log_files(&disk, ".log").len(), 2, "the fourth overflows");
    log.append(bytes_mut(&b), E0, 500, false).unwrap();
    log.append(bytes_mut(&b), E0, 1029, false).unwrap();
    block_on(log.flush()).unwrap();
    assert_eq!(log_files(&disk, ".log").len(), 2, "segment 3 is 999 ms old");
    log.append(bytes_mut(&b), E0, 1030, false).unwrap();
    block_on(log.flush()).unwrap();
    let mut logs = log_files(&disk, ".log");
    logs.sort();
    assert_eq!(
        logs.last().unwrap(),
        "00000000000000000006.log",
        "1000 ms after its first batch"
    );
    assert_eq!(
        log_files(&disk, ".index").len(),
        2,
        "rolled segments have index files"
    );
    assert!(
        log_files(&disk, ".snapshot").len() >= 2,
        "a producer snapshot at each roll"
    );
}

#[test]
fn offset_for_timestamp_finds_the_first_record_at_or_after() {
    let disk = SimDisk::new(512);
    let config = LogConfig {
        segment_bytes: 3000,
        index_interval_bytes: 100,
        ..LogConfig::default()
    };
    let log = open(&disk, &config, 0, 0);
    let mut records = Vec::new(); // (offset, timestamp)
    let mut ts = 1_000;
    for i in 0..60i64 {
        // Mostly increasing, with a few records from the past.
        ts += if i % 7 == 3 { -50 } else { 20 };
        let b = batch(1 + (i % 4) as usize, 30, ts);
        let out = log.append(bytes_mut(&b), E0, 0, false).unwrap();
        for r in decode_records(&b, 1 << 20).unwrap() {
            records.push((out.base_offset + r.offset, r.timestamp));
        }
    }
    block_on(log.flush()).unwrap();
    for target in (900..ts + 40).step_by(7) {
        let expected = records.iter().find(|r| r.1 >= target).copied();
        assert_eq!(
            block_on(log.offset_for_timestamp(target)).unwrap(),
            expected,
            "target {target}"
        );
    }
    let max = records.iter().map(|r| r.1).max().unwrap();
    assert_eq!(log.max_timestamp().unwrap().0, max);
    block_on(log.close()).unwrap();
    drop(log);
    let log = open(&disk, &config, 0, 0);
    assert_eq!(
        block_on(log.offset_for_timestamp(1_500)).unwrap(),
        records.iter().find(|r| r.1 >= 1_500).copied()
    );
    assert_eq!(log.max_timestamp().unwrap().0, max);
}

#[test]
fn corrupt_index_is_rebuilt_identically() {
    let disk = SimDisk::new(512);
    let config = small_config();
    let log = open(&disk, &config, 0, 0);
    for i in 0..30 {
        log.append(bytes_mut(&batch(2, 50, i)), E0, 0, false)
            .unwrap();
    }
    block_on(log.close()).unwrap();
    let before = read_all(&log);
    drop(log);
    let index = dir().join("00000000000000000000.index");
    let good = disk.file_bytes(&index).unwrap();
    let mut bad = good.clone();
    bad[20] ^= 0xff;
    disk.put_file(&index, &bad);
    disk.put_file(&dir().join("00000000000000000000.timeindex"), b"junk");
    let log = open(&disk, &config, 0, 0);
    assert_eq!(read_all(&log), before);
    assert_eq!(
        disk.file_bytes(&index).unwrap(),
        good,
        "rebuilt by scanning the segment"
    );
}

#[test]
fn corrupt_batch_truncates_the_log_and_drops_later_segments() {
    let disk = SimDisk::new(512);
    let config = small_config();
    let log = open(&disk, &config, 0, 0);
    for i in 0..30 {
        log.append(bytes_mut(&batch(2, 50, i)), E0, 0, false)
            .unwrap();
    }
    block_on(log.flush()).unwrap();
    let all = read_all(&log);
    drop(log);
    let first = dir().join("00000000000000000000.log");
    let mut bytes = disk.file_bytes(&first).unwrap();
    let second_batch = all[0].len();
    bytes[second_batch + 70] ^= 1; // a record byte of the second batch
    disk.put_file(&first, &bytes);
    disk.put_file(&dir().join("00000000000000000000.index"), b"");
    let log = open(&disk, &config, 0, 0);
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(read_all(&log), all[..1].to_vec());
    assert_eq!(
        log_files(&disk, ".log"),
        vec!["00000000000000000000.log".to_string()]
    );
    let out = log
        .append(bytes_mut(&batch(1, 5, 0)), E0, 0, false)
        .unwrap();
    assert_eq!(
        out.base_offset, 2,
        "appends continue at the truncation point"
    );
}

#[test]
fn disk_full_fails_the_flush_and_loses_nothing_acknowledged() {
    let disk = SimDisk::new(512);
    let log = open(&disk, &small_config(), 1 << 20, 0);
    log.append(bytes_mut(&batch(2, 100, 1)), E0, 0, false)
        .unwrap();
    block_on(log.flush()).unwrap();
    disk.set_disk_full(true);
    for i in 0..20 {
        log.append(bytes_mut(&batch(2, 100, i)), E0, 0, false)
            .unwrap();
    }
    let err = block_on(log.flush()).unwrap_err();
    assert!(err.is_disk_full(), "{err}");
    assert_eq!(log.durable_end(), 2, "nothing new is visible");
    assert_eq!(read_all(&log).len(), 1);
    disk.set_disk_full(false);
    block_on(log.flush()).unwrap();
    assert_eq!(log.durable_end(), 42);
    let expected = read_all(&log);
    assert_eq!(expected.len(), 21);
    drop(log);
    disk.crash(7);
    let log = open(&disk, &small_config(), 0, 0);
    assert_eq!(read_all(&log), expected);
}

#[test]
fn failed_sync_is_retried_by_the_next_flush() {
    let disk = SimDisk::new(512);
    let log = open(&disk, &LogConfig::default(), 0, 0);
    log.append(bytes_mut(&batch(1, 10, 1)), E0, 0, false)
        .unwrap();
    disk.fail_next_syncs(1);
    assert!(block_on(log.flush()).is_err());
    assert_eq!(log.durable_end(), 0);
    block_on(log.flush()).unwrap();
    assert_eq!(log.durable_end(), 1);
}

#[test]
fn concurrent_flushes_share_one_write_and_sync() {
    let disk = SimDisk::new(512);
    // Without zeroes written ahead, which are writes of their own.
    let config = LogConfig {
        prepare_ahead_bytes: 0,
        ..LogConfig::default()
    };
    let log = open(&disk, &config, 0, 0);
    disk.set_yield(true);
    log.append(bytes_mut(&batch(1, 10, 1)), E0, 0, false)
        .unwrap();
    let before = disk.stats();
    let ((a, b), (c, d)) = block_on(zip(
        zip(log.flush(), log.flush()),
        zip(log.flush(), log.flush()),
    ));
    for r in [a, b, c, d] {
        r.unwrap();
    }
    let after = disk.stats();
    assert_eq!(
        after.syncs - before.syncs,
        1,
        "one fdatasync for four callers"
    );
    assert_eq!(after.writes - before.writes, 1);
    // A caller arriving during a round waits for the next one, which covers its append.
    log.append(bytes_mut(&batch(1, 10, 2)), E0, 0, false)
        .unwrap();
    let first = log.flush();
    let late = async {
        futures_lite::future::yield_now().await;
        log.append(bytes_mut(&batch(1, 10, 3)), E0, 0, false)
            .unwrap();
        log.flush().await
    };
    let (x, y) = block_on(zip(first, late));
    x.unwrap();
    y.unwrap();
    assert_eq!(log.durable_end(), 3);
}

#[test]
fn idempotent_producer_rules_and_restart() {
    let disk = SimDisk::new(512);
    let config = small_config();
    let log = open(&disk, &config, 0, 0);
    let pid = 42;
    let first = idempotent_batch(3, 10, 0, pid, 0, 0);
    let out = log.append(bytes_mut(&first), E0, 0, false).unwrap();
    assert_eq!((out.base_offset, out.last_offset), (0, 2));
    log.append(bytes_mut(&batch(1, 10, 0)), E0, 0, false)
        .unwrap();
    let retry = log.append(bytes_mut(&first), E0, 0, false).unwrap();
    assert_eq!(
        (retry.base_offset, retry.last_offset, retry.duplicate),
        (0, 2, true)
    );
    assert_eq!(log.log_end_offset(), 4, "a duplicate appends nothing");
    let gap = log.append(
        bytes_mut(&idempotent_batch(1, 10, 0, pid, 0, 5)),
        E0,
        0,
        false,
    );
    assert!(matches!(
        gap,
        Err(StorageError::OutOfOrderSequence {
            expected: 3,
            received: 5,
            ..
        })
    ));
    let unknown = log.append(
        bytes_mut(&idempotent_batch(1, 10, 0, 7, 0, 1)),
        E0,
        0,
        false,
    );
    assert!(matches!(
        unknown,
        Err(StorageError::OutOfOrderSequence { expected: 0, .. })
    ));
    // All or nothing: a good batch followed by a gap appends neither.
    let mut two = idempotent_batch(1, 10, 0, pid, 0, 3);
    two.extend_from_slice(&idempotent_batch(1, 10, 0, pid, 0, 9));
    assert!(log.append(bytes_mut(&two), E0, 0, false).is_err());
    assert_eq!(log.log_end_offset(), 4);
    log.append(
        bytes_mut(&idempotent_batch(2, 10, 0, pid, 0, 3)),
        E0,
        0,
        false,
    )
    .unwrap();
    // A new epoch must start at sequence 0 and fences the old one.
    let bump = log.append(
        bytes_mut(&idempotent_batch(1, 10, 0, pid, 1, 5)),
        E0,
        0,
        false,
    );
    assert!(matches!(bump, Err(StorageError::OutOfOrderSequence { .. })));
    log.append(
        bytes_mut(&idempotent_batch(1, 10, 0, pid, 1, 0)),
        E0,
        0,
        false,
    )
    .unwrap();
    let fenced = log.append(
        bytes_mut(&idempotent_batch(1, 10, 0, pid, 0, 5)),
        E0,
        0,
        false,
    );
    assert!(matches!(
        fenced,
        Err(StorageError::InvalidProducerEpoch {
            current: 1,
            received: 0,
            ..
        })
    ));
    block_on(log.flush()).unwrap();
    drop(log);
    // State survives a crash (replayed from the log) and a clean close (snapshot).
    for clean in [false, true] {
        disk.crash(1);
        let log = open(&disk, &config, 0, 0);
        let again = log
            .append(
                bytes_mut(&idempotent_batch(1, 10, 0, pid, 1, 0)),
                E0,
                0,
                false,
            )
            .unwrap();
        assert!(again.duplicate, "clean={clean}");
        assert_eq!(again.base_offset, 6);
        let next = log.append(
            bytes_mut(&idempotent_batch(1, 10, 0, pid, 1, 2)),
            E0,
            0,
            false,
        );
        assert!(matches!(
            next,
            Err(StorageError::OutOfOrderSequence { expected: 1, .. })
        ));
        if clean {
            block_on(log.close()).unwrap();
        }
    }
}

#[test]
fn producer_state_comes_from_the_snapshot_plus_replay() {
    let disk = SimDisk::new(512);
    let config = LogConfig {
        segment_bytes: 400,
        ..LogConfig::default()
    };
    let log = open(&disk, &config, 0, 0);
    for seq in 0..12 {
        log.append(
            bytes_mut(&idempotent_batch(1, 100, 0, 9, 0, seq)),
            E0,
            0,
            false,
        )
        .unwrap();
    }
    block_on(log.flush()).unwrap();
    assert!(!log_files(&disk, ".snapshot").is_empty());
    drop(log);
    let log = open(&disk, &config, 0, 0);
    let dup = log
        .append(
            bytes_mut(&idempotent_batch(1, 100, 0, 9, 0, 11)),
            E0,
            0,
            false,
        )
        .unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.base_offset, 11);
    log.append(
        bytes_mut(&idempotent_batch(1, 100, 0, 9, 0, 12)),
        E0,
        0,
        false,
    )
    .unwrap();
}

#[test]
fn leader_epochs_are_stamped_and_checkpointed() {
    let disk = SimDisk::new(512);
    let log = open(&disk, &LogConfig::default(), 0, 0);
    log.append(bytes_mut(&batch(2, 1, 0)), LeaderEpoch(0), 0, false)
        .unwrap();
    log.append(bytes_mut(&batch(2, 1, 0)), LeaderEpoch(3), 0, false)
        .unwrap();
    log.append(bytes_mut(&batch(2, 1, 0)), LeaderEpoch(3), 0, false)
        .unwrap();
    block_on(log.flush()).unwrap();
    let entries: Vec<_> = log
        .epoch_entries()
        .iter()
        .map(|e| (e.epoch.0, e.start_offset))
        .collect();
    assert_eq!(entries, vec![(0, 0), (3, 2)]);
    assert!(disk
        .file_bytes(&dir().join("leader-epoch-checkpoint"))
        .is_some());
    let epochs: Vec<i32> = read_all(&log)
        .iter()
        .map(|b| BatchHeader::parse(b).unwrap().partition_leader_epoch)
        .collect();
    assert_eq!(epochs, vec![0, 3, 3]);
    drop(log);
    disk.put_file(&dir().join("leader-epoch-checkpoint"), b"garbage");
    let log = open(&disk, &LogConfig::default(), 0, 0);
    let again: Vec<_> = log
        .epoch_entries()
        .iter()
        .map(|e| (e.epoch.0, e.start_offset))
        .collect();
    assert_eq!(again, entries, "rebuilt from the batches");
}

#[test]
fn log_append_time_is_stamped() {
    let disk = SimDisk::new(512);
    let log = open(&disk, &LogConfig::default(), 0, 0);
    let out = log
        .append(bytes_mut(&batch(3, 1, 5)), E0, 777, true)
        .unwrap();
    assert_eq!(out.log_append_time_ms, 777);
    block_on(log.flush()).unwrap();
    let b = &read_all(&log)[0];
    let h = millrace_wire::records::validate_batch(b).unwrap();
    assert!(h.is_log_append_time());
    assert_eq!(h.max_timestamp, 777);
}

#[test]
fn buffer_bound_pushes_back_until_a_flush() {
    let disk = SimDisk::new(512);
    let config = LogConfig {
        pending_bytes_max: 1000,
        ..LogConfig::default()
    };
    let log = open(&disk, &config, 0, 0);
    let b = batch(1, 300, 0);
    log.append(bytes_mut(&b), E0, 0, false).unwrap();
    log.append(bytes_mut(&b), E0, 0, false).unwrap();
    assert!(matches!(
        log.append(bytes_mut(&b), E0, 0, false),
        Err(StorageError::BufferFull { .. })
    ));
    block_on(log.flush()).unwrap();
    log.append(bytes_mut(&b), E0, 0, false).unwrap();
}

#[test]
fn append_in_place_stamps_the_callers_buffer_and_takes_it_only_on_success() {
    let disk = SimDisk::new(512);
    let config = LogConfig {
        pending_bytes_max: 1000,
        ..LogConfig::default()
    };
    let cache = millrace_storage::BatchCache::new(1 << 20);
    let log = block_on(millrace_storage::PartitionLog::open(
        disk.clone(),
        dir(),
        config,
        cache.clone(),
        0,
    ))
    .unwrap();
    // Two partitions' records in one request buffer, split as the produce handler splits it.
    let (a, b) = (batch(1, 300, 0), batch(1, 300, 0));
    let mut request = bytes::BytesMut::from(&[a.clone(), b.clone()].concat()[..]);
    let mut first = request.split_to(a.len());
    let shared = millrace_storage::SharedBuffer::new(4096);
    log.append_in_place(&mut first, Some(&shared), E0, 0, false)
        .unwrap();
    assert!(first.is_empty(), "appended records are taken");
    assert_eq!(
        cache.used_bytes(),
        4096,
        "the shared buffer is charged whole"
    );
    log.append_in_place(&mut request, Some(&shared), LeaderEpoch(3), 0, false)
        .unwrap();
    assert_eq!(cache.used_bytes(), 4096, "and once");
    // Refused (the pending buffer is full): left as it was, and appended after a flush.
    let mut third = bytes_mut(&b);
    assert!(matches!(
        log.append_in_place(&mut third, None, LeaderEpoch(3), 0, false),
        Err(StorageError::BufferFull { .. })
    ));
    assert_eq!(
        &third[..],
        &b[..],
        "a refused append leaves the records as they were"
    );
    block_on(log.flush()).unwrap();
    log.append_in_place(&mut third, None, LeaderEpoch(3), 0, false)
        .unwrap();
    block_on(log.flush()).unwrap();
    let batches = read_all(&log);
    assert_eq!(batches.len(), 3);
    for (i, (batch, epoch)) in batches.iter().zip([0, 3, 3]).enumerate() {
        let h = BatchHeader::parse(batch).unwrap();
        assert_eq!((h.base_offset, h.partition_leader_epoch), (i as i64, epoch));
        assert_eq!(
            &batch[16..],
            &a[16..],
            "only offset and epoch are rewritten"
        );
    }
    block_on(log.delete()).unwrap();
    assert_eq!(
        cache.used_bytes(),
        0,
        "the buffer is released with its last batch"
    );
}

#[test]
fn cache_stays_within_its_bound_and_delete_removes_the_directory() {
    let disk = SimDisk::new(512);
    let cache = millrace_storage::BatchCache::new(1000);
    let log = block_on(millrace_storage::PartitionLog::open(
        disk.clone(),
        dir(),
        LogConfig::default(),
        cache.clone(),
        0,
    ))
    .unwrap();
    for _ in 0..20 {
        log.append(bytes_mut(&batch(1, 200, 0)), E0, 0, false)
            .unwrap();
        assert!(cache.used_bytes() <= 1000);
    }
    assert!(cache.used_bytes() > 0);
    block_on(log.delete()).unwrap();
    assert_eq!(cache.used_bytes(), 0);
    assert!(disk.paths().is_empty());
}

#[test]
fn garbage_after_the_last_batch_is_truncated_at_open() {
    let disk = SimDisk::new(512);
    let log = open(&disk, &LogConfig::default(), 0, 0);
    log.append(bytes_mut(&batch(2, 10, 0)), E0, 0, false)
        .unwrap();
    block_on(log.flush()).unwrap();
    let expected = read_all(&log);
    drop(log);
    let path = dir().join("00000000000000000000.log");
    let mut bytes = disk.file_bytes(&path).unwrap();
    let end = expected[0].len();
    bytes[end..end + 20].copy_from_slice(&[0xab; 20]);
    bytes.extend_from_slice(&[0xcd; 512]);
    disk.put_file(&path, &bytes);
    let log = open(&disk, &LogConfig::default(), 0, 0);
    assert_eq!(read_all(&log), expected);
    assert_eq!(
        disk.file_bytes(&path).unwrap().len(),
        end,
        "file cut to the logical end"
    );
}

#[test]
fn a_roll_during_a_flush_round_is_covered_by_the_next_round() {
    let disk = SimDisk::new(512);
    let b = batch(1, 300, 0);
    let config = LogConfig {
        segment_bytes: b.len() as u64 + 10,
        ..LogConfig::default()
    };
    let log = open(&disk, &config, 0, 0);
    disk.set_yield(true);
    log.append(bytes_mut(&b), E0, 0, false).unwrap();
    let late = async {
        for _ in 0..3 {
            futures_lite::future::yield_now().await;
            log.append(bytes_mut(&b), E0, 0, false).unwrap(); // rolls while the round awaits
        }
        log.flush().await
    };
    let (x, y) = block_on(zip(log.flush(), late));
    x.unwrap();
    y.unwrap();
    assert_eq!(log.durable_end(), 4);
    assert_eq!(read_all(&log).len(), 4);
}

#[test]
fn zeroes_go_ahead_of_the_active_segment_and_are_cut_when_it_rolls() {
    let disk = SimDisk::new(512);
    let config = LogConfig {
        segment_bytes: 40 << 10,
        segment_ms: 1_000,
        prepare_ahead_bytes: 8 << 10,
        ..LogConfig::default()
    };
    let log = open(&disk, &config, 0, 0);
    let first = dir().join(format!("{:020}.log", 0));
    let b = batch(1, 900, 1);
    log.append(bytes_mut(&b), E0, 0, false).unwrap();
    block_on(log.flush()).unwrap();
    // The round wrote its block, then half a step of zeroes after it (the step is 8 KiB).
    let bytes = disk.file_bytes(&first).unwrap();
    let data = b.len();
    assert_eq!(bytes.len(), 1024 + (4 << 10), "half a step of zeroes ahead");
    assert!(bytes[data..].iter().all(|&x| x == 0));
    // Each later round overwrites zeroes, and zeroes another half-step whenever less than
    // that is left after its data: always at least half a step ahead, in half-steps.
    let mut written = data;
    while written + b.len() < (12 << 10) {
        log.append(bytes_mut(&b), E0, 0, false).unwrap();
        block_on(log.flush()).unwrap();
        written += b.len();
        let len = disk.file_bytes(&first).unwrap().len();
        assert!(
            len >= written.next_multiple_of(512) + (4 << 10),
            "{len} bytes for {written} written"
        );
        assert_eq!(
            (len - 1024) % (4 << 10),
            0,
            "half-steps after the first block"
        );
    }
    let grown = disk.file_bytes(&first).unwrap().len();
    assert!(grown >= 1024 + (12 << 10), "zeroed further: {grown}");
    // A crash keeps the zeroes; recovery ends the segment at its last batch.
    disk.crash(3);
    drop(log);
    let log = open(&disk, &config, 0, 0);
    let kept = read_all(&log);
    assert_eq!(kept.len(), written / b.len());
    log.append(bytes_mut(&b), E0, 0, false).unwrap();
    block_on(log.flush()).unwrap();
    assert!(disk.file_bytes(&first).unwrap().len() > written + b.len() + 512);
    // A segment rolled by age (with zeroes still ahead) has its file cut after its last block.
    log.append(bytes_mut(&b), E0, 5_000, false).unwrap();
    block_on(log.flush()).unwrap();
    while log.log_end_offset() < 60 {
        log.append(bytes_mut(&b), E0, 5_000, false).unwrap();
        block_on(log.flush()).unwrap();
    }
    assert!(log_files(&disk, ".index").contains(&format!("{:020}.index", 0)));
    let mut logs = log_files(&disk, ".log");
    logs.sort();
    let second: usize = logs[1].trim_end_matches(".log").parse().unwrap();
    let rolled_size = second * b.len();
    assert_eq!(
        disk.file_bytes(&first).unwrap().len(),
        rolled_size.next_multiple_of(512),
        "the rolled segment's file ends after its last block"
    );
    assert_eq!(read_all(&log).len(), 60);
}
