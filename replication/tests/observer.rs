//! Observers of the metadata log (broker-only nodes): a lone voter leads, an observer on its
//! own disk fetches from it. Each test drives both halves through the real metadata log over
//! `SimDisk`.

use millrace_replication::metadata::{MetadataRecord, ProducerIdsRecord};
use millrace_replication::quorum::{
    self, read_for_fetch, CommittedBatch, Cut, FetchPlan, Observer, Quorum, QuorumConfig,
};
use millrace_storage::sim::SimDisk;
use std::cell::RefCell;

mod common;
use common::{block_on, Log};

fn open_log(disk: &SimDisk) -> Log {
    common::open_log(disk, 0)
}

struct Leader {
    log: Log,
    quorum: RefCell<Quorum>,
}

impl Leader {
    fn new() -> Leader {
        let disk = SimDisk::new(512);
        let log = open_log(&disk);
        let config = QuorumConfig::new(1, &[1]).deterministic();
        let quorum = block_on(quorum::open(&config, &log, log.store(), 0)).expect("opens");
        let leader = Leader {
            log,
            quorum: RefCell::new(quorum),
        };
        leader.quorum.borrow_mut().campaign().expect("campaign");
        leader.cycles();
        leader
    }

    fn cycles(&self) -> Vec<CommittedBatch> {
        let mut out = Vec::new();
        while self.quorum.borrow().has_ready() {
            let mut send = |_| panic!("a lone voter sends nothing");
            out.extend(
                block_on(quorum::run_ready_cycle(
                    &self.quorum,
                    &self.log,
                    self.log.store(),
                    0,
                    &mut send,
                ))
                .expect("cycle")
                .committed,
            );
        }
        out
    }

    fn commit(&self, records: Vec<MetadataRecord>) {
        self.commit_batches(records);
    }

    fn commit_batches(&self, records: Vec<MetadataRecord>) -> Vec<CommittedBatch> {
        self.quorum.borrow_mut().propose(&records).expect("leads");
        let committed = self.cycles();
        assert!(!committed.is_empty(), "a lone voter commits at once");
        committed
    }

    /// One fetch round of `observer`: what the leader answers, applied. Returns the batches
    /// the observer applied and, for a divergence, its cut.
    fn serve(&self, observer: &mut Observer, log: &Log) -> (Vec<CommittedBatch>, Option<Cut>) {
        let at = observer.position();
        let plan = self
            .quorum
            .borrow()
            .plan_fetch(at.fetch_offset, at.last_fetched_epoch);
        match plan {
            FetchPlan::Read { high_watermark } => {
                let bytes = block_on(read_for_fetch(
                    &self.log,
                    at.fetch_offset,
                    high_watermark,
                    300,
                ))
                .expect("read");
                let applied = block_on(observer.on_records(log, &bytes, high_watermark, 0))
                    .expect("observer appends");
                (applied, None)
            }
            FetchPlan::Diverging { end_offset, .. } => {
                let cut = block_on(observer.on_diverging(log, end_offset, 0)).expect("cut");
                (Vec::new(), Some(cut))
            }
            FetchPlan::Snapshot { id, .. } => {
                use millrace_replication::metadata::SnapshotStore;
                let body = block_on(self.log.store().read_snapshot(id))
                    .expect("reads")
                    .expect("the snapshot the leader names is there");
                block_on(observer.on_snapshot(log, id, &body, 0)).expect("installs");
                (Vec::new(), None)
            }
            FetchPlan::NotLeader { .. } => panic!("a lone voter leads"),
        }
    }
}

fn pid(n: i64) -> MetadataRecord {
    MetadataRecord::ProducerIds(ProducerIdsRecord {
        broker_id: 1,
        broker_epoch: 0,
        next_producer_id: n,
    })
}

#[test]
fn an_observer_fetches_the_committed_log_in_small_steps_and_resumes_after_restart() {
    let leader = Leader::new();
    for n in 1..=20 {
        leader.commit(vec![pid(n * 10), pid(n * 10 + 1)]);
    }
    let disk = SimDisk::new(512);
    let log = open_log(&disk);
    let mut observer = block_on(Observer::open(&log, 0)).unwrap();
    let mut applied = Vec::new();
    for _ in 0..200 {
        let (batches, cut) = leader.serve(&mut observer, &log);
        assert_eq!(cut, None);
        if batches.is_empty() {
            break;
        }
        applied.extend(batches);
    }
    let end = leader.quorum.borrow().committed_end_offset();
    assert_eq!(observer.position().fetch_offset, end);
    assert_eq!(applied.len() as u64, leader.quorum.borrow().last_index());
    let leader_records: Vec<_> = block_on(leader.log.replay(0)).unwrap();
    let observer_records: Vec<_> = block_on(log.replay(0)).unwrap();
    let strip = |v: Vec<millrace_replication::metadata::LogEntry>| {
        v.into_iter()
            .map(|e| (e.offset, e.record))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(observer_records), strip(leader_records));
    for (i, b) in applied.iter().enumerate() {
        assert_eq!(b.index, i as u64 + 1);
        let entry = leader.quorum.borrow().raft_log().entry(b.index).unwrap();
        assert_eq!(b.term as u64, entry.term);
    }
    // A restart resumes where the durable log ends; more commits arrive.
    drop(log);
    let log = open_log(&disk);
    let mut observer = block_on(Observer::open(&log, 0)).unwrap();
    assert_eq!(observer.position().fetch_offset, end);
    leader.commit(vec![pid(1_000)]);
    let (batches, _) = leader.serve(&mut observer, &log);
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].base_offset, end);
    assert_eq!(batches[0].index, applied.len() as u64 + 1);
}

#[test]
fn a_foreign_log_is_cut_back_to_where_it_agrees_then_refetched() {
    let leader = Leader::new();
    for n in 1..=5 {
        leader.commit(vec![pid(n)]);
    }
    // The observer holds another cluster's log: same offsets, a later term.
    let disk = SimDisk::new(512);
    let log = open_log(&disk);
    for n in 1..=8 {
        log.append(&[pid(100 + n)], 7, 0).unwrap();
    }
    block_on(log.flush()).unwrap();
    let mut observer = block_on(Observer::open(&log, 0)).unwrap();
    assert_eq!(observer.position().last_fetched_epoch, 7);
    let mut rounds = 0;
    let mut rebuilt = false;
    loop {
        rounds += 1;
        assert!(rounds < 50, "no convergence");
        let (batches, cut) = leader.serve(&mut observer, &log);
        rebuilt |= cut == Some(Cut::Rebuild);
        if cut.is_none() && batches.is_empty() {
            break;
        }
    }
    assert!(rebuilt, "applied batches were cut: the caller must rebuild");
    let leader_records: Vec<_> = block_on(leader.log.replay(0)).unwrap();
    let observer_records: Vec<_> = block_on(log.replay(0)).unwrap();
    assert_eq!(
        observer_records
            .iter()
            .map(|e| &e.record)
            .collect::<Vec<_>>(),
        leader_records.iter().map(|e| &e.record).collect::<Vec<_>>()
    );
}

#[test]
fn bad_fetch_answers_are_refused_and_leave_the_log_as_it_was() {
    let leader = Leader::new();
    leader.commit(vec![pid(1)]);
    leader.commit(vec![pid(2)]);
    let disk = SimDisk::new(512);
    let log = open_log(&disk);
    let mut observer = block_on(Observer::open(&log, 0)).unwrap();
    let hw = leader.quorum.borrow().committed_end_offset();
    let bytes = block_on(read_for_fetch(&leader.log, 0, hw, 1 << 20)).unwrap();
    // A flipped byte: the CRC refuses it.
    let mut bad = bytes.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert!(block_on(observer.on_records(&log, &bad, hw, 0)).is_err());
    assert_eq!(log.log_end_offset(), 0);
    // Batches that do not start at the fetch offset.
    let later = block_on(read_for_fetch(&leader.log, 1, hw, 1 << 20)).unwrap();
    assert!(block_on(observer.on_records(&log, &later, hw, 0)).is_err());
    assert_eq!(log.log_end_offset(), 0);
    // Past the high watermark the observer keeps nothing.
    let applied = block_on(observer.on_records(&log, &bytes, 0, 0)).unwrap();
    assert!(applied.is_empty());
    assert_eq!(observer.position().fetch_offset, 0);
    // The real answer still works.
    let applied = block_on(observer.on_records(&log, &bytes, hw, 0)).unwrap();
    assert_eq!(applied.len(), 3, "the leader's first entry and two batches");
    assert_eq!(observer.position().fetch_offset, hw);
}

#[test]
fn a_follower_sends_observers_to_the_leader_and_fetch_positions_are_checked() {
    let leader = Leader::new();
    leader.commit(vec![pid(1), pid(2)]);
    let term = leader.quorum.borrow().term() as i32;
    let q = leader.quorum.borrow();
    let hw = q.committed_end_offset();
    assert_eq!(q.plan_fetch(0, 0), FetchPlan::Read { high_watermark: hw });
    assert_eq!(
        q.plan_fetch(hw, term),
        FetchPlan::Read { high_watermark: hw }
    );
    // The log: the leader's first (empty) entry at offset 0, then the two records at 1..3.
    assert_eq!(hw, 3);
    // Inside a batch, past the end, or with another epoch: diverging at a boundary at most
    // the fetch offset, with the term of the batch that ends there.
    for (offset, epoch, end) in [(2, term, 1), (8, term, 3), (3, term + 1, 3)] {
        assert_eq!(
            q.plan_fetch(offset, epoch),
            FetchPlan::Diverging {
                epoch: term,
                end_offset: end,
                high_watermark: hw
            },
            "fetch at ({offset}, {epoch})"
        );
    }
    drop(q);
    // A voter that is not leading names the leader.
    let disk = SimDisk::new(512);
    let log = open_log(&disk);
    let follower = block_on(quorum::open(
        &QuorumConfig::new(2, &[1, 2, 3]),
        &log,
        log.store(),
        0,
    ))
    .unwrap();
    assert!(matches!(
        follower.plan_fetch(0, 0),
        FetchPlan::NotLeader { leader: None, .. }
    ));
}

/// A leader that cut its log below a snapshot sends an observer behind the cut to the
/// snapshot; the observer installs it (its log then starts at the snapshot's end, also after
/// a restart) and fetches the batches after it.
#[test]
fn an_observer_behind_the_leaders_log_start_installs_its_snapshot_and_goes_on() {
    use millrace_replication::metadata::snapshot_file;
    use millrace_replication::metadata::{ClusterImage, MetadataSnapshot};
    let leader = Leader::new();
    let mut image = ClusterImage::default();
    let mut last = None;
    for n in 1..=12 {
        for b in leader.commit_batches(vec![pid(n * 10)]) {
            for e in b.log_entries() {
                image.apply(&e.record, e.offset).unwrap();
            }
            last = Some(b);
        }
    }
    let last = last.expect("committed");
    let snapshot = MetadataSnapshot {
        index: last.index,
        term: last.term as u64,
        image: image.clone(),
    };
    let (id, body) =
        block_on(snapshot_file::write(leader.log.store(), &snapshot, 0)).expect("written");
    let point = quorum::LogBase {
        index: last.index,
        term: last.term as u64,
        offset: id.end_offset,
    };
    leader.quorum.borrow().offer_snapshot(point, body);
    assert_eq!(
        block_on(leader.log.delete_before(id.end_offset)).unwrap(),
        id.end_offset
    );
    leader
        .quorum
        .borrow()
        .compact_to(last.index)
        .expect("compacts");
    assert!(matches!(
        leader.quorum.borrow().plan_fetch(0, 0),
        FetchPlan::Snapshot { id: named, .. } if named == id
    ));
    // Two more batches after the cut.
    leader.commit(vec![pid(500)]);
    leader.commit(vec![pid(600)]);

    let disk = SimDisk::new(512);
    let log = open_log(&disk);
    let mut observer = block_on(Observer::open(&log, 0)).unwrap();
    let (applied, cut) = leader.serve(&mut observer, &log);
    assert_eq!(
        (applied.len(), cut),
        (0, None),
        "the first answer is the snapshot"
    );
    assert_eq!(observer.position().fetch_offset, id.end_offset);
    assert_eq!(observer.last_index(), last.index);
    assert_eq!(log.log_start_offset(), id.end_offset);
    let (after, _) = leader.serve(&mut observer, &log);
    let indexes: Vec<u64> = after.iter().map(|b| b.index).collect();
    assert_eq!(indexes, [last.index + 1, last.index + 2]);
    // A restart starts after the snapshot and holds the batches after it.
    drop(log);
    let log = open_log(&disk);
    let reopened = block_on(Observer::open(&log, 0)).unwrap();
    assert_eq!(reopened.position(), observer.position());
    assert_eq!(reopened.last_index(), last.index + 2);
    // A snapshot that does not match the name it was fetched under is refused.
    let other = millrace_replication::metadata::SnapshotId {
        end_offset: id.end_offset + 1,
        epoch: id.epoch,
    };
    let body = snapshot.encode();
    let fresh_log = open_log(&SimDisk::new(512));
    let mut fresh = block_on(Observer::open(&fresh_log, 0)).unwrap();
    assert!(block_on(fresh.on_snapshot(&fresh_log, other, &body, 0)).is_err());
    assert_eq!(
        fresh_log.log_start_offset(),
        0,
        "nothing of it was installed"
    );
}

/// An observer whose log was cut below a snapshot of a foreign history (a cluster rebuilt
/// under the same voters) and is told it diverges below its log start starts over empty:
/// its snapshots go too, so a restart does not bring the foreign state back.
#[test]
fn a_divergence_below_the_log_start_empties_the_log_and_its_snapshots() {
    use millrace_replication::metadata::snapshot_file;
    use millrace_replication::metadata::{ClusterImage, MetadataSnapshot, SnapshotStore};
    let foreign = Leader::new();
    let mut image = ClusterImage::default();
    let mut last = None;
    for n in 1..=4 {
        for b in foreign.commit_batches(vec![pid(n)]) {
            for e in b.log_entries() {
                image.apply(&e.record, e.offset).unwrap();
            }
            last = Some(b);
        }
    }
    let last = last.expect("committed");
    let disk = SimDisk::new(512);
    let log = open_log(&disk);
    let mut observer = block_on(Observer::open(&log, 0)).unwrap();
    for _ in 0..20 {
        let (batches, _) = foreign.serve(&mut observer, &log);
        if batches.is_empty() {
            break;
        }
    }
    let snapshot = MetadataSnapshot {
        index: last.index,
        term: last.term as u64,
        image,
    };
    let (id, _) = block_on(snapshot_file::write(log.store(), &snapshot, 0)).unwrap();
    block_on(log.delete_before(id.end_offset)).unwrap();
    let mut observer = block_on(Observer::open(&log, 0)).unwrap();
    assert_eq!(observer.position().fetch_offset, id.end_offset);
    let cut = block_on(observer.on_diverging(&log, 0, 0)).unwrap();
    assert_eq!(cut, Cut::Rebuild);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert!(log.store().snapshot_ids().unwrap().is_empty());
    assert_eq!(observer.position().fetch_offset, 0);
    drop(log);
    let log = open_log(&disk);
    let reopened = block_on(Observer::open(&log, 0)).unwrap();
    assert_eq!(
        reopened.position().fetch_offset,
        0,
        "nothing foreign comes back"
    );
}
