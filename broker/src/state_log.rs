//! A state machine kept in an internal topic and served by the leaders of its partitions: the
//! host the group coordinator runs on (`__consumer_offsets`), shared with the transaction
//! coordinator (`__transaction_state`).
//!
//! Per shard, the host tracks which partitions of its topic this broker leads and under which
//! leader epoch their state was read back ([`Host::load`], after every image: [`watch`]). A
//! partition it stops leading is unloaded (the machine forgets its state and answers what
//! waits on it); one it starts leading, or leads under a new epoch (its log may have been
//! truncated or extended while it followed), is read back to its log end, as Kafka's
//! coordinators load. Requests are served only for partitions loaded under the current epoch
//! ([`Host::serving`]); records are appended only then ([`Host::append`]), so nothing computed
//! from state that was unloaded meanwhile reaches the log.

use crate::errors::code;
use crate::partition::{Acks, CommitError, Reader};
use crate::shard::{Partition, Shard};
use bytes::BytesMut;
use millrace_replication::replica::AcksRefusal;
use millrace_shard::sync::Turn;
use millrace_storage::disk::DiskFile;
use millrace_storage::ReadChunk;
use millrace_wire::records::{
    decode_records, txn_marker, BatchBuilder, BatchIter, BatchStep, NewRecord,
};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

const LOAD_READ_BYTES: usize = 1 << 20;

/// One record read back from the log, with what its batch says about it.
#[derive(Debug, Clone, Copy)]
pub struct Replayed<'a> {
    /// The record's offset.
    pub offset: i64,
    /// The batch's producer id (-1 for the coordinator's own, non-transactional writes).
    pub producer_id: i64,
    /// Whether the batch belongs to a transaction (it counts only once a COMMIT marker for
    /// its producer follows).
    pub transactional: bool,
    /// The record's key.
    pub key: Option<&'a [u8]>,
    /// The record's value (None: a tombstone).
    pub value: Option<&'a [u8]>,
}

/// What the host needs from the state machine it serves.
pub trait StateMachine {
    /// The internal topic.
    fn topic(&self) -> &'static str;
    /// What its state is called in logs ("groups", "transactions").
    fn what(&self) -> &'static str;
    /// Applies one record read back from partition `partition` at `now` (ms); false when the
    /// record was not understood (counted apart in the load's log line).
    fn replay(&self, partition: i32, now: i64, record: Replayed<'_>) -> bool;
    /// Applies a transaction marker read back from partition `partition`: `producer_id`'s
    /// transactional records before it are committed (`commit`) or aborted. Machines that never
    /// write transactional records ignore markers.
    fn replay_marker(&self, partition: i32, producer_id: i64, commit: bool) {
        let _ = (partition, producer_id, commit);
    }
    /// Forgets the state of partition `partition` (of `partitions`) and answers what waits on
    /// it (NOT_COORDINATOR). Returns how many entries went, for the log.
    fn unload(&self, partition: i32, partitions: usize) -> usize;
}

/// Where a shard stands with one partition of the topic while leading it (a partition it does
/// not lead has no entry, and none of its state is in memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coordination {
    /// Its state is being read back from the log (COORDINATOR_LOAD_IN_PROGRESS).
    Loading,
    /// Its state is in memory, read under this leader epoch.
    Active(i32),
}

/// One shard's view of the partitions of one internal topic.
pub struct Host {
    coordinated: RefCell<BTreeMap<i32, Coordination>>,
    /// One [`Host::load`] at a time.
    loading: Turn,
}

impl Default for Host {
    fn default() -> Self {
        Host {
            coordinated: RefCell::new(BTreeMap::new()),
            loading: Turn::new(),
        }
    }
}

impl Host {
    /// Brings `machine`'s state in line with the partitions of its topic this shard leads (see
    /// the module doc). Runs at start-up before clients are served, then after every image.
    pub async fn load(&self, shard: &Rc<Shard>, machine: &dyn StateMachine) -> std::io::Result<()> {
        let _turn = self.loading.lock().await;
        let topic = machine.topic();
        loop {
            let leading: BTreeMap<i32, (Rc<Partition>, i32)> = shard
                .partitions()
                .into_iter()
                .filter(|p| p.topic() == topic && p.is_leader())
                .map(|p| (p.index(), (p.clone(), p.leader_epoch().0)))
                .collect();
            let stale: Vec<i32> = self
                .coordinated
                .borrow()
                .iter()
                .filter(|(p, c)| leading.get(p).map(|(_, e)| Coordination::Active(*e)) != Some(**c))
                .map(|(p, _)| *p)
                .collect();
            for p in stale {
                self.unload(shard, machine, p);
            }
            let todo: Vec<(i32, Rc<Partition>, i32)> = leading
                .into_iter()
                .filter(|(p, _)| !self.coordinated.borrow().contains_key(p))
                .map(|(p, (partition, epoch))| (p, partition, epoch))
                .collect();
            if todo.is_empty() {
                return Ok(());
            }
            for (p, partition, epoch) in todo {
                // Whatever an operation in flight at the last unload left in memory goes
                // before the log is read back.
                self.unload(shard, machine, p);
                self.coordinated
                    .borrow_mut()
                    .insert(p, Coordination::Loading);
                if let Err(e) = read_back(shard, machine, &partition).await {
                    self.unload(shard, machine, p);
                    return Err(e);
                }
                if partition.is_leader() && partition.leader_epoch().0 == epoch {
                    self.coordinated
                        .borrow_mut()
                        .insert(p, Coordination::Active(epoch));
                } else {
                    // Leadership moved while reading: the next round forgets or reloads it.
                    self.unload(shard, machine, p);
                }
            }
        }
    }

    /// Whether this shard serves partition `p` now: Err(NOT_COORDINATOR) when this broker does
    /// not lead it, Err(COORDINATOR_LOAD_IN_PROGRESS) while it leads it but has not read its
    /// state back under the current leader epoch.
    pub fn serving(&self, shard: &Shard, topic: &str, p: i32) -> Result<(), i16> {
        let Some(partition) = shard
            .partition(topic, p)
            .filter(|partition| partition.is_leader())
        else {
            return Err(code::NOT_COORDINATOR);
        };
        let epoch = partition.leader_epoch().0;
        match self.coordinated.borrow().get(&p) {
            Some(Coordination::Active(e)) if *e == epoch => Ok(()),
            _ => Err(code::COORDINATOR_LOAD_IN_PROGRESS),
        }
    }

    fn unload(&self, shard: &Shard, machine: &dyn StateMachine, p: i32) {
        let was = self.coordinated.borrow_mut().remove(&p);
        let topic = machine.topic();
        let partitions = shard
            .image()
            .topics
            .get(topic)
            .map_or(1, |t| t.partitions as usize);
        let gone = machine.unload(p, partitions);
        if was.is_some() {
            tracing::info!(
                shard = shard.id,
                partition = p,
                gone,
                "no longer coordinating the {} of {topic}-{p}",
                machine.what()
            );
        }
    }

    /// Appends `records` to partition `p` of `topic` on this shard and waits until they are
    /// committed (covered by the high watermark), as a produce with acks=all would. Err is
    /// the code the request answers, as Kafka maps its coordinators' append errors:
    /// NOT_COORDINATOR when the partition is not led here or its state is not loaded under the
    /// current leader epoch, or leadership moved before the records committed;
    /// COORDINATOR_NOT_AVAILABLE when too few replicas are in sync (checked before the
    /// append) or the write did not commit in `timeout`; UNKNOWN_SERVER_ERROR for a storage
    /// failure. Ok is the offset of the first record.
    pub async fn append(
        &self,
        shard: &Shard,
        place: (&str, i32),
        records: &[NewRecord],
        timeout: Duration,
    ) -> Result<i64, i16> {
        self.write(shard, place, records, None, timeout, |_| {})
            .await
    }

    /// As [`Host::append`], and `appended` runs with the first record's offset as soon as the
    /// records are in the local log, before the wait for their commit. Nothing is awaited
    /// between the call and the local append, so a machine that plans a record from its
    /// memory, calls this and applies the record in `appended` keeps its memory in log order
    /// with nothing held across the wait (`crate::share_state`).
    pub async fn append_then(
        &self,
        shard: &Shard,
        place: (&str, i32),
        records: &[NewRecord],
        timeout: Duration,
        appended: impl FnOnce(i64),
    ) -> Result<i64, i16> {
        self.write(shard, place, records, None, timeout, appended)
            .await
    }

    /// As [`Host::append`], for records in the transaction of `producer` (id, epoch): a
    /// transactional batch whose COMMIT or ABORT marker comes later (a producer with an older
    /// epoch than the partition knows: INVALID_PRODUCER_EPOCH). `appended` runs with the first
    /// record's offset as soon as the batch is in the local log, before the wait for its
    /// commit: the marker may be written, and answered, before that wait ends.
    pub async fn append_transactional(
        &self,
        shard: &Shard,
        place: (&str, i32),
        records: &[NewRecord],
        producer: (i64, i16),
        timeout: Duration,
        appended: impl FnOnce(i64),
    ) -> Result<i64, i16> {
        self.write(shard, place, records, Some(producer), timeout, appended)
            .await
    }

    async fn write(
        &self,
        shard: &Shard,
        (topic, p): (&str, i32),
        records: &[NewRecord],
        producer: Option<(i64, i16)>,
        timeout: Duration,
        on_appended: impl FnOnce(i64),
    ) -> Result<i64, i16> {
        let fail = |error: i16, why: &dyn std::fmt::Display| {
            tracing::warn!(partition = p, error, "writing {topic}-{p}: {why}");
            error
        };
        let Some(log) = shard.partition(topic, p) else {
            return Err(fail(code::NOT_COORDINATOR, &"not on this shard"));
        };
        if !log.is_leader() {
            // A follower's log is the leader's copy: only the leader writes it.
            return Err(fail(code::NOT_COORDINATOR, &"not led by this broker"));
        }
        let epoch = log.leader_epoch();
        if self.coordinated.borrow().get(&p).copied() != Some(Coordination::Active(epoch.0)) {
            return Err(fail(
                code::NOT_COORDINATOR,
                &"its state is not loaded under the current leader epoch",
            ));
        }
        if log.check_acks_all().is_err() {
            return Err(fail(
                code::COORDINATOR_NOT_AVAILABLE,
                &"fewer in-sync replicas than min.insync.replicas",
            ));
        }
        let builder = match producer {
            Some((producer_id, producer_epoch)) => BatchBuilder {
                producer_id,
                producer_epoch,
                transactional: true,
                ..BatchBuilder::default()
            },
            None => BatchBuilder::default(),
        };
        let batch = builder.build(records);
        let now = millrace_shard::time::now_ms();
        let appended = log
            .append(BytesMut::from(&batch[..]), now, false)
            .map_err(|e| match e {
                // A fenced producer is answered as Kafka's coordinators answer it.
                millrace_storage::StorageError::InvalidProducerEpoch { .. } => {
                    fail(code::INVALID_PRODUCER_EPOCH, &e)
                }
                millrace_storage::StorageError::InvalidTxnState { .. } => {
                    fail(code::INVALID_TXN_STATE, &e)
                }
                _ => fail(code::UNKNOWN_SERVER_ERROR, &e),
            })?;
        let first = appended.last_offset + 1 - records.len() as i64;
        on_appended(first);
        let committed = log
            .committed(appended.last_offset, epoch, Acks::All, timeout)
            .await;
        committed.map_err(|e| {
            let error = match &e {
                CommitError::Refused(AcksRefusal::NotLeader) => code::NOT_COORDINATOR,
                CommitError::Storage(_) => code::UNKNOWN_SERVER_ERROR,
                CommitError::Refused(_) | CommitError::TimedOut => code::COORDINATOR_NOT_AVAILABLE,
            };
            fail(error, &e)
        })?;
        Ok(first)
    }
}

/// Re-runs `load` after every image this shard applies, until the broker stops.
pub async fn watch(
    shard: Rc<Shard>,
    what: &'static str,
    load: impl AsyncFn() -> std::io::Result<()>,
) {
    while !shard.stopping.get() {
        let seen = shard.metadata_applied.generation();
        if let Err(e) = load().await {
            tracing::error!(shard = shard.id, error = %e, "loading {what}; retrying");
            millrace_shard::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let changed = shard.metadata_applied.changed_since(seen);
        let _ = millrace_shard::time::timeout(Duration::from_millis(500), changed).await;
    }
}

/// Reads one partition back from its log start to its log end into `machine`. The end is
/// looked up again after each read, so a marker appended while the partition loads is
/// replayed here whenever it lands before the load completes (after that, the live path
/// applies it).
async fn read_back(
    shard: &Rc<Shard>,
    machine: &dyn StateMachine,
    log: &Rc<Partition>,
) -> std::io::Result<()> {
    let now = millrace_shard::time::now_ms();
    let (topic, partition) = (machine.topic(), log.index());
    let (mut applied, mut skipped) = (0usize, 0usize);
    let mut next = log.log_start_offset();
    loop {
        let end = log.log_end_offset();
        if next >= end {
            break;
        }
        let read = log.read(next, LOAD_READ_BYTES, true, Reader::Replica);
        let (read, _) = read
            .await
            .map_err(|e| std::io::Error::other(format!("reading {topic}-{partition}: {e}")))?;
        if read.bytes == 0 {
            break;
        }
        for chunk in read.chunks {
            let bytes = match chunk {
                ReadChunk::Memory(b) => b,
                ReadChunk::File {
                    file,
                    position,
                    len,
                } => file.read_at(position, len as usize).await?,
            };
            for step in BatchIter::new(&bytes) {
                let BatchStep::Batch { header, bytes, .. } = step else {
                    break;
                };
                if header.next_offset() > end {
                    break;
                }
                next = next.max(header.next_offset());
                if header.is_control() {
                    match txn_marker(bytes) {
                        Ok(Some(marker)) => {
                            machine.replay_marker(partition, header.producer_id, marker.commit);
                            applied += 1;
                        }
                        _ => skipped += 1,
                    }
                    continue;
                }
                let Ok(records) = decode_records(bytes, LOAD_READ_BYTES * 64) else {
                    tracing::warn!(
                        partition,
                        offset = header.base_offset,
                        "undecodable batch in {topic}"
                    );
                    continue;
                };
                for r in records {
                    let record = Replayed {
                        offset: r.offset,
                        producer_id: header.producer_id,
                        transactional: header.is_transactional(),
                        key: r.key.as_deref(),
                        value: r.value.as_deref(),
                    };
                    if machine.replay(partition, now, record) {
                        applied += 1;
                    } else {
                        skipped += 1;
                    }
                }
            }
        }
    }
    // One line per partition with state; empty partitions (most of 50 at first start) at
    // debug level, so they do not bury the rest of the log.
    if applied + skipped > 0 {
        tracing::info!(
            shard = shard.id,
            partition,
            epoch = log.leader_epoch().0,
            applied,
            skipped,
            "coordinating the {} of {topic}-{partition}",
            machine.what()
        );
    } else {
        tracing::debug!(
            shard = shard.id,
            partition,
            epoch = log.leader_epoch().0,
            "coordinating the {} of {topic}-{partition} (empty)",
            machine.what()
        );
    }
    Ok(())
}
