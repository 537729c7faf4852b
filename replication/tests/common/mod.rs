//! What the quorum's integration tests share: the metadata log on a `SimDisk`.

use millrace_replication::metadata::{MetadataLog, PartitionStore};
use millrace_storage::sim::SimDisk;
use millrace_storage::{BatchCache, LogConfig, PartitionLog};
use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// The metadata log over a simulated disk.
pub type Log = MetadataLog<PartitionStore<SimDisk>>;

/// Opens (recovers) the metadata log on `disk`, with small segments so tests cross several.
pub fn open_log(disk: &SimDisk, now_ms: i64) -> Log {
    let log = block_on(PartitionLog::open(
        disk.clone(),
        PathBuf::from("/data/__cluster_metadata-0"),
        LogConfig {
            segment_bytes: 2_000,
            ..LogConfig::default()
        },
        BatchCache::new(1 << 20),
        now_ms,
    ))
    .expect("the metadata log opens after any crash");
    MetadataLog::new(PartitionStore::new(log))
}

/// Polls `future` to completion (`SimDisk` completes when polled), or gives up after
/// `budget` polls: the process died at that await point.
pub fn poll_within<F: Future>(future: F, budget: Option<u32>) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    let mut polls = 0u32;
    loop {
        if budget.is_some_and(|b| polls >= b) {
            return None;
        }
        polls += 1;
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return Some(out);
        }
        assert!(polls < 100_000, "a SimDisk future never completes");
    }
}

/// Polls `future` to completion.
pub fn block_on<F: Future>(future: F) -> F::Output {
    poll_within(future, None).expect("no budget")
}
