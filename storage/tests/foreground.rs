//! The process-wide count of foreground flush rounds that the cleaner's budget slows down on.
//! A test binary of its own: the count is a process global, and the other storage tests flush
//! from parallel threads.

mod common;

use common::*;
use futures_lite::future::block_on;
use millrace_replication::LeaderEpoch;
use millrace_storage::foreground_rounds_started;
use millrace_storage::sim::SimDisk;
use millrace_storage::LogConfig;

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
fn each_flush_round_with_data_counts_once_and_nothing_else_does() {
    let disk = SimDisk::default();
    let log = open(&disk, &LogConfig::default(), 1 << 20, 1000);
    let start = foreground_rounds_started();

    // Three appends, one round.
    for t in 1000..1003 {
        append(&log, t);
    }
    block_on(log.flush()).expect("flush");
    assert_eq!(foreground_rounds_started(), start + 1);

    // Nothing pending: no round, no count.
    block_on(log.flush()).expect("flush");
    assert_eq!(foreground_rounds_started(), start + 1);

    // Reads and appends alone are not rounds.
    assert!(!read_all(&log).is_empty());
    append(&log, 1003);
    assert_eq!(foreground_rounds_started(), start + 1);

    // A round that fails still made device requests; the retry is another round.
    disk.fail_next_syncs(1);
    assert!(block_on(log.flush()).is_err());
    assert_eq!(foreground_rounds_started(), start + 2);
    block_on(log.flush()).expect("flush");
    assert_eq!(foreground_rounds_started(), start + 3);

    // Every log's rounds count, on one process-wide counter.
    let other_disk = SimDisk::default();
    let other = open(&other_disk, &LogConfig::default(), 1 << 20, 1000);
    append(&log, 1004);
    append(&other, 1004);
    block_on(log.flush()).expect("flush");
    block_on(other.flush()).expect("flush");
    assert_eq!(foreground_rounds_started(), start + 5);
}
