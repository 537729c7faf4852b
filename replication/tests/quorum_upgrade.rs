//! A metadata log written by the single-voter controller before the quorum existed (batches
//! under leader epoch 0, no `quorum-state`) opens as a Raft log: its batches count as term 1,
//! and a lone voter that campaigns commits them again, in order, followed by its own entry.

use millrace_replication::metadata::{
    MetadataLog, MetadataRecord, PartitionStore, ProducerIdsRecord,
};
use millrace_replication::quorum::{self, QuorumConfig, QuorumRole, PRE_RAFT_TERM};
use millrace_storage::sim::SimDisk;
use millrace_storage::{BatchCache, LogConfig, PartitionLog};
use std::cell::RefCell;
use std::path::PathBuf;

fn ids(next: i64) -> MetadataRecord {
    MetadataRecord::ProducerIds(ProducerIdsRecord {
        broker_id: 0,
        broker_epoch: -1,
        next_producer_id: next,
    })
}

fn open_log(disk: &SimDisk) -> MetadataLog<PartitionStore<SimDisk>> {
    let log = futures_lite::future::block_on(PartitionLog::open(
        disk.clone(),
        PathBuf::from("/data/__cluster_metadata-0"),
        LogConfig::default(),
        BatchCache::new(1 << 20),
        0,
    ))
    .expect("opens");
    MetadataLog::new(PartitionStore::new(log))
}

#[test]
fn a_pre_raft_log_is_committed_again_by_a_lone_voter() {
    let disk = SimDisk::new(512);
    {
        let log = open_log(&disk);
        log.append(&[ids(1000), ids(2000)], 0, 1).unwrap();
        log.append(&[ids(3000)], 0, 2).unwrap();
        futures_lite::future::block_on(log.flush()).unwrap();
    }
    let log = open_log(&disk);
    let config = QuorumConfig::new(1, &[1]);
    let quorum = futures_lite::future::block_on(quorum::open(&config, &log, log.store(), 0))
        .expect("a term-0 prefix opens");
    assert_eq!(quorum.last_index(), 2);
    assert_eq!(
        quorum.commit_index(),
        0,
        "nothing is known committed before an election"
    );
    let quorum = RefCell::new(quorum);
    quorum.borrow_mut().campaign().unwrap();
    let mut committed = Vec::new();
    let mut send = |m: Vec<quorum::Message>| panic!("a lone voter sends nothing: {m:?}");
    for _ in 0..10 {
        let cycle = quorum::run_ready_cycle(&quorum, &log, log.store(), 3, &mut send);
        committed.extend(futures_lite::future::block_on(cycle).unwrap().committed);
    }
    assert_eq!(quorum.borrow().role(), QuorumRole::Leader);
    let summary: Vec<(u64, i32, i64, usize)> = committed
        .iter()
        .map(|b| (b.index, b.term, b.base_offset, b.records.len()))
        .collect();
    let pre = PRE_RAFT_TERM as i32;
    assert_eq!(summary, vec![(1, pre, 0, 2), (2, pre, 2, 1), (3, 2, 3, 1)]);
    assert_eq!(committed[2].records, vec![MetadataRecord::NoOp]);
    // Proposals now land after the old prefix and commit under the new term.
    let index = quorum.borrow_mut().propose(&[ids(4000)]).unwrap();
    assert_eq!(index, 4);
    let mut more = Vec::new();
    for _ in 0..3 {
        let cycle = quorum::run_ready_cycle(&quorum, &log, log.store(), 4, &mut send);
        more.extend(futures_lite::future::block_on(cycle).unwrap().committed);
    }
    assert_eq!(more.len(), 1);
    assert_eq!((more[0].index, more[0].base_offset), (4, 4));
}

#[test]
fn epoch_zero_after_a_raft_term_is_refused() {
    let disk = SimDisk::new(512);
    {
        let log = open_log(&disk);
        log.append(&[ids(1000)], 2, 1).unwrap();
        log.append(&[ids(2000)], 0, 2).unwrap();
        futures_lite::future::block_on(log.flush()).unwrap();
    }
    let log = open_log(&disk);
    let config = QuorumConfig::new(1, &[1]);
    let opened = futures_lite::future::block_on(quorum::open(&config, &log, log.store(), 0));
    assert!(opened.is_err(), "terms may not go down");
}
