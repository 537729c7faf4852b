//! The calls a follower and a replica layer need, through the public API on the in-memory disk:
//! reads bounded by the caller, deletions bounded by the caller, `append_as_follower`,
//! `truncate_to` and `reset_to` (including a power loss at every point of each, and a marker
//! write that fails or is dropped) and `last_offset_for_epoch`.

mod common;

use common::*;
use futures_lite::future::{block_on, zip};
use millrace_storage::disk::Disk;
use millrace_storage::sim::{SimDisk, SimFile};
use millrace_storage::{BatchCache, LogConfig, PartitionLog, StorageError};
use millrace_wire::epoch::LeaderEpoch;
use millrace_wire::records::{set_base_offset, set_partition_leader_epoch, BatchHeader};
use std::cell::Cell;
use std::future::Future;
use std::io;
use std::path::Path;
use std::rc::Rc;
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

/// A flush called while a reset runs waits for it, and the reset drops what it waited for:
/// the flush fails, also when the log now starts past that data (its durable end is then
/// above the flush's target, yet nothing of it was written).
#[test]
fn appends_and_flushes_during_a_reset_fail() {
    for target in [50, 5] {
        let disk = SimDisk::new(512);
        let log = open(&disk, &small_config(), 1 << 20, 0);
        follow(&log, &[(3, 0); 4]);
        disk.set_yield(true);
        let mut cx = Context::from_waker(Waker::noop());
        let mut reset = std::pin::pin!(log.reset_to(target, 0));
        assert!(
            reset.as_mut().poll(&mut cx).is_pending(),
            "writing its marker"
        );
        let appended = log.append_as_follower(bytes_mut(&leader_batch(12, 1, 0)), 0);
        assert!(matches!(appended, Err(StorageError::TruncationInProgress)));
        let mut flush = std::pin::pin!(log.flush());
        assert!(
            flush.as_mut().poll(&mut cx).is_pending(),
            "behind the reset"
        );
        disk.set_yield(false);
        block_on(reset).unwrap();
        let flushed = block_on(flush);
        assert!(
            matches!(flushed, Err(StorageError::Truncated { offset: 12, log_end_offset })
                if log_end_offset == target),
            "reset to {target}: {flushed:?}"
        );
        follow(&log, &[(1, 0)]);
        block_on(log.flush()).unwrap();
        assert_eq!(log.durable_end(), target + 1);
    }
}

/// Between any two steps of a reset the log reads as the old one or as the empty one at the
/// offset: never a start past the end, and a read at the log start always succeeds.
#[test]
fn a_log_being_reset_reads_as_the_old_log_or_the_empty_one() {
    let mut seen = [false; 2];
    for polls in 0..60 {
        let disk = SimDisk::new(512);
        let log = open(&disk, &small_config(), 1 << 20, 0);
        let stored = follow(&log, &[(3, 0), (3, 1), (3, 1), (3, 2), (3, 2), (3, 3)]);
        block_on(log.flush()).unwrap();
        // The start inside the first segment, in the second batch.
        assert_eq!(block_on(log.delete_records(4, 18)).unwrap(), 4);
        disk.set_yield(true);
        let mut cx = Context::from_waker(Waker::noop());
        let mut reset = std::pin::pin!(log.reset_to(30, 0));
        let done = (0..polls).any(|_| reset.as_mut().poll(&mut cx).is_ready());
        let ends = (
            log.log_start_offset(),
            log.log_end_offset(),
            log.durable_end(),
        );
        let bytes = block_on(log.read(ends.0, 1 << 20, true, ends.1))
            .map(|r| split_batches(&materialize(&r)));
        let epochs = log.epoch_entries().len();
        if ends == (4, 18, 18) {
            assert_eq!(bytes.unwrap(), stored[1..], "polls {polls}: the old log");
            assert_eq!(epochs, 3, "polls {polls}");
            seen[0] = true;
        } else {
            assert_eq!(ends, (30, 30, 30), "polls {polls}: a mix");
            assert!(bytes.unwrap().is_empty(), "polls {polls}: the empty log");
            assert_eq!(epochs, 0, "polls {polls}");
            seen[1] = true;
        }
        disk.set_yield(false);
        if !done {
            block_on(reset).unwrap();
        }
        assert_eq!(log.log_end_offset(), 30);
    }
    assert_eq!(seen, [true, true], "both sides of the commit point seen");
}

/// A reset forgets the producers (their snapshots go with the segments) and this log's
/// cached batches, and leaves nothing of the old log in the directory.
#[test]
fn a_reset_forgets_producers_and_cached_batches() {
    let disk = SimDisk::new(512);
    let log = open(&disk, &small_config(), 1 << 20, 0);
    let sent: Vec<Vec<u8>> = (0..8)
        .map(|i| idempotent_batch(3, 60, i, 9, 0, 3 * i as i32))
        .collect();
    for b in &sent {
        log.append(bytes_mut(b), LeaderEpoch(2), 0, false).unwrap();
        block_on(log.flush()).unwrap();
    }
    let names = || -> Vec<String> {
        let mut names: Vec<String> = disk
            .paths()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let count = |suffix: &str| names().iter().filter(|n| n.ends_with(suffix)).count();
    assert!(count(".log") > 1 && count(".snapshot") > 0, "{:?}", names());
    assert_eq!(log.log_end_offset(), 24);
    // Past the end: the producer snapshots at the rolls are below it.
    block_on(log.reset_to(40, 0)).unwrap();
    assert_eq!(
        names(),
        ["leader-epoch-checkpoint", "log-start-offset-checkpoint"]
    );
    // The producer's first batch again: new to the emptied producer state, at the new start.
    let out = log
        .append(bytes_mut(&sent[0]), LeaderEpoch(3), 0, false)
        .unwrap();
    assert_eq!((out.base_offset, out.duplicate), (40, false));
    let mut stored = sent[0].clone();
    set_base_offset(&mut stored, 40);
    set_partition_leader_epoch(&mut stored, 3);
    // Not flushed: the batch cache serves it, and none of the old batches.
    let r = block_on(log.read(40, 1 << 20, true, log.log_end_offset())).unwrap();
    assert_eq!(split_batches(&materialize(&r)), [stored]);
    assert!(matches!(
        block_on(log.read(24, 1 << 20, true, 43)),
        Err(StorageError::OffsetOutOfRange {
            log_start_offset: 40,
            ..
        })
    ));
    let entries: Vec<_> = log.epoch_entries().iter().map(|e| e.epoch.0).collect();
    assert_eq!(entries, [3]);
}

/// A disk whose marker writes (`*-pending`) land and still report an error, as a failed
/// directory sync after the rename would, and whose removals can be made to fail.
#[derive(Clone)]
struct MarkerFaults {
    inner: SimDisk,
    fail_marker: Rc<Cell<bool>>,
    fail_removals: Rc<Cell<bool>>,
}

impl Disk for MarkerFaults {
    type File = SimFile;

    async fn open(&self, path: &Path, create: bool) -> io::Result<SimFile> {
        self.inner.open(path, create).await
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }
    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        if self.fail_removals.get() {
            return Err(io::Error::other("removal failed"));
        }
        self.inner.remove_file(path).await
    }
    async fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_dir_all(path).await
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    async fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.sync_dir(path).await
    }
    async fn write_file_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.inner.write_file_atomic(path, data).await?;
        let marker = path.to_string_lossy().ends_with("-pending");
        match marker && self.fail_marker.take() {
            true => Err(io::Error::other("directory sync after the rename failed")),
            false => Ok(()),
        }
    }
    async fn read_file(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        self.inner.read_file(path).await
    }
}

fn open_faulty(disk: &MarkerFaults) -> PartitionLog<MarkerFaults> {
    let cache = BatchCache::new(1 << 20);
    block_on(PartitionLog::open(
        disk.clone(),
        dir(),
        small_config(),
        cache,
        0,
    ))
    .expect("open")
}

/// A marker write that fails may still have put the marker in place: the failed call takes
/// it back (the log goes on as it was, and stays so across a restart), or, when it cannot,
/// closes the log, and reopening completes what the marker says.
#[test]
fn a_marker_write_that_fails_late_is_taken_back_or_closes_the_log() {
    for (reset, withdrawn) in [(true, true), (true, false), (false, true), (false, false)] {
        let what = format!("reset {reset}, withdrawn {withdrawn}");
        let disk = MarkerFaults {
            inner: SimDisk::new(512),
            fail_marker: Rc::new(Cell::new(false)),
            fail_removals: Rc::new(Cell::new(false)),
        };
        let log = open_faulty(&disk);
        let mut stored = Vec::new();
        for epoch in [0, 1, 1, 2, 2, 3] {
            let b = leader_batch(log.log_end_offset(), 3, epoch);
            log.append_as_follower(bytes_mut(&b), 0).unwrap();
            stored.push(b);
        }
        block_on(log.flush()).unwrap();
        disk.fail_marker.set(true);
        disk.fail_removals.set(!withdrawn);
        let failed = match reset {
            true => block_on(log.reset_to(40, 0)).err(),
            false => block_on(log.truncate_to(7, 0)).err(),
        };
        assert!(failed.is_some(), "{what}");
        disk.fail_removals.set(false);
        let expected = if withdrawn {
            let markers = disk.inner.paths();
            assert!(
                !markers
                    .iter()
                    .any(|p| p.to_string_lossy().ends_with("-pending")),
                "{what}: {markers:?}"
            );
            assert_eq!(
                (log.log_start_offset(), log.log_end_offset()),
                (0, 18),
                "{what}"
            );
            let b = leader_batch(18, 2, 4);
            log.append_as_follower(bytes_mut(&b), 0).unwrap();
            block_on(log.flush()).unwrap();
            stored.push(b);
            ((0, 20), stored)
        } else {
            let b = leader_batch(18, 2, 4);
            assert!(matches!(
                log.append_as_follower(bytes_mut(&b), 0),
                Err(StorageError::Closed)
            ));
            match reset {
                true => ((40, 40), Vec::new()),
                false => ((0, 6), stored[..2].to_vec()),
            }
        };
        drop(log);
        let log = open_faulty(&disk);
        let ends = (log.log_start_offset(), log.log_end_offset());
        assert_eq!((ends, read_all(&log)), expected, "{what}: after a restart");
    }
}

/// Dropped while it writes its marker, a reset or a truncation closes the log: whether the
/// marker is in place is unknown, and only the next open can tell (and follow it). Dropped
/// before, the log goes on unchanged.
#[test]
fn a_reset_or_truncation_dropped_at_its_marker_closes_the_log() {
    for reset in [true, false] {
        let mut closed_at = None;
        for polls in 1..20 {
            let disk = SimDisk::new(512);
            let log = open(&disk, &small_config(), 1 << 20, 0);
            let stored = follow(&log, &[(3, 0); 4]);
            block_on(log.flush()).unwrap();
            disk.set_yield(true);
            let mut cx = Context::from_waker(Waker::noop());
            let finished = match reset {
                true => {
                    let mut fut = std::pin::pin!(log.reset_to(40, 0));
                    (0..polls).any(|_| fut.as_mut().poll(&mut cx).is_ready())
                }
                false => {
                    let mut fut = std::pin::pin!(log.truncate_to(6, 0));
                    (0..polls).any(|_| fut.as_mut().poll(&mut cx).is_ready())
                }
            };
            disk.set_yield(false);
            assert!(!finished, "reset {reset}: polls {polls}");
            let b = leader_batch(12, 1, 0);
            match log.append_as_follower(bytes_mut(&b), 0) {
                Ok(_) => continue,
                Err(StorageError::Closed) => {}
                Err(e) => panic!("reset {reset}: polls {polls}: {e}"),
            }
            drop(log);
            // The in-memory disk writes a marker in one step, after its pause: at the first
            // poll count that closes the log, none was written.
            let log = open(&disk, &small_config(), 1 << 20, 0);
            assert_eq!(read_all(&log), stored, "reset {reset}: polls {polls}");
            closed_at = Some(polls);
            break;
        }
        let at = closed_at.expect("some drop closed the log");
        assert!(
            reset || at > 1,
            "a truncation reads the log before its marker"
        );
    }
}
