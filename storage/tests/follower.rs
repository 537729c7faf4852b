//! The calls a follower and a replica layer need, through the public API on the in-memory disk:
//! reads bounded by the caller, deletions bounded by the caller, `append_as_follower`,
//! `truncate_to` (including a power loss at every point of one) and `last_offset_for_epoch`.

mod common;

use common::*;
use futures_lite::future::{block_on, zip};
use millrace_storage::sim::SimDisk;
use millrace_storage::{LogConfig, StorageError};
use millrace_wire::epoch::LeaderEpoch;
use millrace_wire::records::{set_base_offset, set_partition_leader_epoch, BatchHeader};
use std::future::Future;
use std::task::{Context, Poll, Waker};

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        ..LogConfig::default()
    }
}

/// A batch as a leader stamped it: `records` records from `base_offset`, under `epoch`.
fn leader_batch(base_offset: i64, records: usize, epoch: i32) -> Vec<u8> {
    let mut b = batch(records, 60, base_offset);
    set_base_offset(&mut b, base_offset);
    set_partition_leader_epoch(&mut b, epoch);
    b
}

/// Appends `(records, epoch)` batches as a follower; returns them as stored.
fn follow(log: &Log, batches: &[(usize, i32)]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for &(records, epoch) in batches {
        let b = leader_batch(log.log_end_offset(), records, epoch);
        log.append_as_follower(bytes_mut(&b), 0)
            .expect("follower append");
        out.push(b);
    }
    out
}

#[test]
fn reads_stop_below_the_callers_bound() {
    let disk = SimDisk::new(512);
    // No batch cache: every read goes to the files.
    let log = open(&disk, &small_config(), 0, 0);
    let stored = follow(&log, &[(2, 0), (3, 0), (2, 0)]);
    block_on(log.flush()).unwrap();
    assert_eq!((log.durable_end(), log.log_end_offset()), (7, 7));
    let read = |offset, bound| {
        let r = block_on(log.read(offset, 1 << 20, true, bound)).unwrap();
        split_batches(&materialize(&r))
    };
    assert_eq!(read(0, 2), stored[..1], "a bound at a batch boundary");
    assert_eq!(
        read(0, 3),
        stored[..2],
        "a batch starting below the bound is whole"
    );
    assert_eq!(
        read(3, 7),
        stored[1..],
        "the batch holding the offset first"
    );
    assert!(read(2, 2).is_empty(), "offset == bound reads nothing");
    assert!(matches!(
        block_on(log.read(3, 1 << 20, true, 2)),
        Err(StorageError::OffsetOutOfRange { upper_bound: 2, .. })
    ));
    // Not flushed and not cached: the files serve up to the durable end, no further.
    follow(&log, &[(2, 0)]);
    assert_eq!(
        read(0, 100),
        stored,
        "a bound above the log end is the log end"
    );
    assert!(read(7, 9).is_empty(), "unflushed, uncached: nothing yet");
    assert!(matches!(
        block_on(log.read(10, 1 << 20, true, 100)),
        Err(StorageError::OffsetOutOfRange { upper_bound: 9, .. })
    ));
}

#[test]
fn a_follower_reads_unflushed_batches_from_the_cache() {
    let disk = SimDisk::new(512);
    let log = open(&disk, &small_config(), 1 << 20, 0);
    let stored = follow(&log, &[(2, 0), (3, 1)]);
    assert_eq!(log.durable_end(), 0);
    let end = log.log_end_offset();
    let r = block_on(log.read(0, 1 << 20, true, end)).unwrap();
    assert_eq!(split_batches(&materialize(&r)), stored);
    assert_eq!(r.durable_end, 0);
    let consumer = block_on(log.read(0, 1 << 20, true, log.durable_end())).unwrap();
    assert_eq!(consumer.bytes, 0, "a consumer's bound hides them");
}

#[test]
fn follower_appends_keep_offsets_and_epochs_and_refuse_gaps() {
    let disk = SimDisk::new(512);
    let log = open(&disk, &small_config(), 1 << 20, 0);
    follow(&log, &[(2, 1), (1, 1), (3, 4)]);
    let entries: Vec<_> = log
        .epoch_entries()
        .iter()
        .map(|e| (e.epoch.0, e.start_offset))
        .collect();
    assert_eq!(entries, [(1, 0), (4, 3)]);
    for base in [5, 7, -1] {
        let err = log
            .append_as_follower(bytes_mut(&leader_batch(base, 1, 4)), 0)
            .unwrap_err();
        assert!(
            matches!(err, StorageError::UnexpectedAppendOffset { expected: 6, received } if received == base),
            "{err}"
        );
    }
    // The second batch does not follow the first: neither is appended.
    let two = [leader_batch(6, 2, 4), leader_batch(9, 1, 4)].concat();
    assert!(matches!(
        log.append_as_follower(bytes_mut(&two), 0),
        Err(StorageError::UnexpectedAppendOffset {
            expected: 8,
            received: 9
        })
    ));
    let mut corrupt = leader_batch(6, 1, 4);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    assert!(matches!(
        log.append_as_follower(bytes_mut(&corrupt), 0),
        Err(StorageError::InvalidRecords { .. })
    ));
    assert_eq!(log.log_end_offset(), 6, "refused appends appended nothing");
    // An older epoch is stored as sent but adds no entry.
    follow(&log, &[(1, 2)]);
    assert_eq!(log.epoch_entries().len(), 2);
}

#[test]
fn follower_appends_set_producer_state_without_checks() {
    let disk = SimDisk::new(512);
    let log = open(&disk, &small_config(), 1 << 20, 0);
    // Sequence 5 from an unknown producer: a leader append would refuse it.
    let mut b = idempotent_batch(2, 10, 0, 9, 0, 5);
    set_base_offset(&mut b, 0);
    log.append_as_follower(bytes_mut(&b), 0).unwrap();
    let retry = log
        .append(
            bytes_mut(&idempotent_batch(2, 10, 0, 9, 0, 5)),
            LeaderEpoch(0),
            0,
            false,
        )
        .unwrap();
    assert!(
        retry.duplicate,
        "the follower's batch is known to the producer state"
    );
    let next = log
        .append(
            bytes_mut(&idempotent_batch(1, 10, 0, 9, 0, 7)),
            LeaderEpoch(0),
            0,
            false,
        )
        .unwrap();
    assert_eq!((next.base_offset, next.duplicate), (2, false));
}

#[test]
fn last_offset_for_epoch_follows_the_cache_and_the_log_end() {
    let disk = SimDisk::new(512);
    let log = open(&disk, &small_config(), 1 << 20, 0);
    assert_eq!(log.last_offset_for_epoch(LeaderEpoch(0)), None);
    follow(&log, &[(2, 1), (2, 3), (1, 3), (2, 6)]);
    let answer = |e| {
        log.last_offset_for_epoch(LeaderEpoch(e))
            .map(|(e, o)| (e.0, o))
    };
    assert_eq!(answer(0), Some((0, 0)));
    assert_eq!(answer(1), Some((1, 2)));
    assert_eq!(answer(2), Some((1, 2)));
    assert_eq!(answer(5), Some((3, 5)));
    assert_eq!(answer(6), Some((6, 7)));
    assert_eq!(answer(7), None);
    assert_eq!(answer(-1), None);
    block_on(log.truncate_to(5, 0)).unwrap();
    assert_eq!(answer(3), Some((3, 5)), "epoch 3 is now the latest");
    assert_eq!(answer(6), None);
}

#[test]
fn truncation_cuts_whole_batches_and_refuses_out_of_range() {
    let disk = SimDisk::new(512);
    let log = open(&disk, &small_config(), 1 << 20, 0);
    let stored = follow(&log, &[(3, 0); 12]);
    for bad in [-1, 37] {
        assert!(matches!(
            block_on(log.truncate_to(bad, 0)),
            Err(StorageError::TruncateOutOfRange { .. })
        ));
    }
    assert_eq!(
        block_on(log.truncate_to(36, 0)).unwrap(),
        36,
        "at the end: nothing"
    );
    assert_eq!(
        block_on(log.truncate_to(20, 0)).unwrap(),
        18,
        "inside a batch: all of it"
    );
    assert_eq!(log.durable_end(), 18);
    let r = block_on(log.read(0, 1 << 20, true, log.log_end_offset())).unwrap();
    assert_eq!(split_batches(&materialize(&r)), stored[..6]);
    // The log continues where it now ends, and survives a restart that way.
    follow(&log, &[(2, 1)]);
    block_on(log.close()).unwrap();
    drop(log);
    let log = open(&disk, &small_config(), 1 << 20, 0);
    assert_eq!(log.log_end_offset(), 20);
    let entries: Vec<_> = log
        .epoch_entries()
        .iter()
        .map(|e| (e.epoch.0, e.start_offset))
        .collect();
    assert_eq!(entries, [(0, 0), (1, 18)]);
}

#[test]
fn appends_and_flushes_during_a_truncation_fail() {
    let disk = SimDisk::new(512);
    let log = open(&disk, &small_config(), 1 << 20, 0);
    follow(&log, &[(3, 0); 4]);
    disk.set_yield(true);
    let waiting_flush = log.flush();
    let (truncated, (appended, flushed)) = block_on(zip(log.truncate_to(3, 0), async {
        futures_lite::future::yield_now().await;
        let b = leader_batch(log.log_end_offset(), 1, 0);
        (
            log.append_as_follower(bytes_mut(&b), 0),
            waiting_flush.await,
        )
    }));
    disk.set_yield(false);
    assert_eq!(truncated.unwrap(), 3);
    assert!(matches!(appended, Err(StorageError::TruncationInProgress)));
    // The flush was called at log end 12 and waited behind the truncation: its data is gone.
    // (It may also have finished first, if its round ran before the truncation started.)
    if let Err(e) = flushed {
        assert!(
            matches!(
                e,
                StorageError::Truncated {
                    offset: 12,
                    log_end_offset: 3
                }
            ),
            "{e}"
        );
    }
    follow(&log, &[(1, 0)]);
    assert_eq!(log.log_end_offset(), 4);
}

/// Power loss after every number of polls of a truncation: the reopened log ends at the old
/// end or at the cut, holds the batches below its end byte for byte, and takes appends.
#[test]
fn a_crash_at_any_point_of_a_truncation_leaves_the_old_log_or_the_cut() {
    let mut outcomes = [0usize; 2];
    for polls in 1..200 {
        for seed in 0..3 {
            let disk = SimDisk::new(512);
            disk.set_yield(true);
            let log = open(&disk, &small_config(), 1 << 20, 0);
            let mut stored = follow(&log, &[(3, 0), (3, 1), (3, 1), (3, 2), (3, 2), (3, 3)]);
            stored.extend(follow(&log, &[(3, 3); 10]));
            block_on(log.flush()).unwrap();
            let old_end = log.log_end_offset();
            let finished = {
                let fut = log.truncate_to(7, 0);
                let mut fut = std::pin::pin!(fut);
                let mut cx = Context::from_waker(Waker::noop());
                (0..polls).any(|_| matches!(fut.as_mut().poll(&mut cx), Poll::Ready(Ok(6))))
            };
            drop(log);
            disk.crash(seed);
            disk.set_yield(false);
            let log = open(&disk, &small_config(), 1 << 20, 0);
            let end = log.log_end_offset();
            assert!(
                end == old_end || end == 6,
                "polls {polls} seed {seed}: end {end}, expected {old_end} or 6"
            );
            assert!(!finished || end == 6, "a finished truncation came back");
            outcomes[usize::from(end == 6)] += 1;
            let got = read_all(&log);
            let kept = stored
                .iter()
                .take_while(|b| BatchHeader::parse(b).unwrap().next_offset() <= end);
            assert!(
                got.iter().eq(kept),
                "polls {polls} seed {seed}: content differs"
            );
            let entries: Vec<_> = log.epoch_entries().iter().map(|e| e.epoch.0).collect();
            let expected: &[i32] = if end == 6 { &[0, 1] } else { &[0, 1, 2, 3] };
            assert_eq!(entries, expected, "polls {polls} seed {seed}");
            follow(&log, &[(1, 4)]);
            block_on(log.flush()).unwrap();
        }
    }
    assert!(
        outcomes[0] > 0 && outcomes[1] > 0,
        "both outcomes seen: {outcomes:?}"
    );
}

#[test]
fn a_reset_empties_the_log_and_starts_it_anywhere_keeping_sealed_files() {
    for (target, what) in [
        (50, "past the end"),
        (36, "at the end"),
        (7, "below the end"),
    ] {
        let disk = SimDisk::new(512);
        let log = open(&disk, &small_config(), 1 << 20, 0);
        follow(&log, &[(3, 0), (3, 1), (3, 1), (3, 2)]);
        follow(&log, &[(3, 3); 8]);
        block_on(log.flush()).unwrap();
        block_on(log.write_sealed_file("1-1.checkpoint", b"SNAP", 1, b"image")).unwrap();
        block_on(log.write_sealed_file("quorum-state", b"QSTA", 1, b"vote")).unwrap();
        assert_eq!(block_on(log.delete_records(6, 36)).unwrap(), 6);
        block_on(log.reset_to(target, 0)).unwrap();
        let ends = (
            log.log_start_offset(),
            log.log_end_offset(),
            log.durable_end(),
        );
        assert_eq!(ends, (target, target, target), "{what}");
        assert!(log.epoch_entries().is_empty(), "{what}: epochs cleared");
        let r = block_on(log.read(target, 1 << 20, true, target)).unwrap();
        assert_eq!(r.bytes, 0, "{what}: nothing to read");
        // Appends go on from there, and a restart keeps all of it.
        let after = follow(&log, &[(2, 5), (2, 5)]);
        block_on(log.flush()).unwrap();
        block_on(log.close()).unwrap();
        drop(log);
        let log = open(&disk, &small_config(), 1 << 20, 0);
        assert_eq!(
            (log.log_start_offset(), log.log_end_offset()),
            (target, target + 4),
            "{what}: after a restart"
        );
        assert_eq!(read_all(&log), after, "{what}");
        let sealed = |name, magic| block_on(log.read_sealed_file(name, magic, 1)).unwrap();
        assert_eq!(
            sealed("1-1.checkpoint", b"SNAP").as_deref(),
            Some(&b"image"[..])
        );
        assert_eq!(
            sealed("quorum-state", b"QSTA").as_deref(),
            Some(&b"vote"[..])
        );
    }
    let disk = SimDisk::new(512);
    let log = open(&disk, &small_config(), 1 << 20, 0);
    assert!(matches!(
        block_on(log.reset_to(-1, 0)),
        Err(StorageError::TruncateOutOfRange { .. })
    ));
    // An empty log reset and reopened before any append still starts there.
    block_on(log.reset_to(9, 0)).unwrap();
    drop(log);
    let log = open(&disk, &small_config(), 1 << 20, 0);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (9, 9));
    follow(&log, &[(1, 1)]);
    assert_eq!(log.log_end_offset(), 10);
}

#[test]
fn a_crash_at_any_point_of_a_reset_leaves_the_old_log_or_the_empty_one() {
    let mut outcomes = [0usize; 2];
    for polls in 1..120 {
        for seed in 0..3 {
            let disk = SimDisk::new(512);
            disk.set_yield(true);
            let log = open(&disk, &small_config(), 1 << 20, 0);
            let stored = follow(&log, &[(3, 0), (3, 1), (3, 1), (3, 2), (3, 2), (3, 3)]);
            block_on(log.flush()).unwrap();
            let finished = {
                let fut = log.reset_to(40, 0);
                let mut fut = std::pin::pin!(fut);
                let mut cx = Context::from_waker(Waker::noop());
                (0..polls).any(|_| matches!(fut.as_mut().poll(&mut cx), Poll::Ready(Ok(()))))
            };
            drop(log);
            disk.crash(seed);
            disk.set_yield(false);
            let log = open(&disk, &small_config(), 1 << 20, 0);
            let (start, end) = (log.log_start_offset(), log.log_end_offset());
            let reset = (start, end) == (40, 40);
            assert!(
                reset || (start, end) == (0, 18),
                "polls {polls} seed {seed}: start {start} end {end}"
            );
            assert!(!finished || reset, "a finished reset came back");
            outcomes[usize::from(reset)] += 1;
            if reset {
                assert!(read_all(&log).is_empty());
                assert!(log.epoch_entries().is_empty());
            } else {
                assert_eq!(read_all(&log), stored, "polls {polls} seed {seed}");
            }
            let more = follow(&log, &[(1, 4)]);
            block_on(log.flush()).unwrap();
            drop(log);
            let log = open(&disk, &small_config(), 1 << 20, 0);
            assert_eq!(
                read_all(&log).last(),
                more.last(),
                "polls {polls} seed {seed}"
            );
        }
    }
    assert!(
        outcomes[0] > 0 && outcomes[1] > 0,
        "both outcomes seen: {outcomes:?}"
    );
}
