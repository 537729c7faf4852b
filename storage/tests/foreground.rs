//! The process-wide count of foreground device work (flush rounds, reads past the batch cache)
//! that the cleaner's budget slows down on.
//! A test binary of its own: the count is a process global, and the other storage tests flush
//! from parallel threads.

mod common;

use common::*;
use futures_lite::future::block_on;
use millrace_storage::foreground_io_started;
use millrace_storage::sim::SimDisk;
use millrace_storage::LogConfig;
use millrace_wire::epoch::LeaderEpoch;

fn append(log: &Log, timestamp: i64) {
    log.append(
        bytes_mut(&batch(3, 100, timestamp)),
        LeaderEpoch(0),
        timestamp,
        false,
    )
    .expect("append");
}

#[test]
fn flush_rounds_and_reads_past_the_cache_count_and_nothing_else_does() {
    let disk = SimDisk::default();
    let log = open(&disk, &LogConfig::default(), 1 << 20, 1000);
    let start = foreground_io_started();

    // Three appends, one round.
    for t in 1000..1003 {
        append(&log, t);
    }
    block_on(log.flush()).expect("flush");
    assert_eq!(foreground_io_started(), start + 1);

    // Nothing pending: no round, no count.
    block_on(log.flush()).expect("flush");
    assert_eq!(foreground_io_started(), start + 1);

    // Reads the batch cache serves and appends alone make no device requests.
    assert!(!read_all(&log).is_empty());
    append(&log, 1003);
    assert_eq!(foreground_io_started(), start + 1);

    // A round that fails still made device requests; the retry is another round.
    disk.fail_next_syncs(1);
    assert!(block_on(log.flush()).is_err());
    assert_eq!(foreground_io_started(), start + 2);
    block_on(log.flush()).expect("flush");
    assert_eq!(foreground_io_started(), start + 3);

    // Every log's rounds count, on one process-wide counter.
    let other_disk = SimDisk::default();
    let other = open(&other_disk, &LogConfig::default(), 1 << 20, 1000);
    append(&log, 1004);
    append(&other, 1004);
    block_on(log.flush()).expect("flush");
    block_on(other.flush()).expect("flush");
    assert_eq!(foreground_io_started(), start + 5);

    // A read the cache cannot serve (a log reopened with an empty cache) counts once.
    drop(log);
    let log = open(&disk, &LogConfig::default(), 1 << 20, 2000);
    let before = foreground_io_started();
    let chunk = block_on(log.read(0, 1 << 20, true, log.durable_end())).expect("read");
    assert!(chunk.bytes > 0);
    assert_eq!(foreground_io_started(), before + 1);
    // Out of range, or at the high watermark: nothing read.
    assert!(block_on(log.read(-1, 1 << 20, true, log.durable_end())).is_err());
    let end = log.durable_end();
    assert_eq!(
        block_on(log.read(end, 1 << 20, true, log.durable_end()))
            .unwrap()
            .bytes,
        0
    );
    assert_eq!(foreground_io_started(), before + 1);
}
