//! A partition replica on its owning shard: the only door to a partition's log.
//!
//! [`Partition`] pairs the storage log (which knows the log end and the durable end) with the
//! replica state machine from `millrace_replication::replica` (which owns the leader epoch,
//! the replica set, the ISR and the high watermark). Handlers, the group coordinator and the
//! maintenance tasks reach data only through it, so every single-node fact ("this broker
//! leads with ISR = [itself]") lives in the [`Replica`] it was opened with and nowhere else.
//!
//! Produce is two-staged, as in Redpanda: [`Partition::append`] assigns offsets synchronously
//! (so appends keep request order), then [`Partition::committed`] waits until the appended
//! records are covered by the consistency level the producer asked for: nothing for acks=0,
//! the local fsync for acks=1, the high watermark for acks=all. On one node the last two are
//! the same point.
//!
//! Lives on the shard that owns the partition; `!Send`.

use bytes::BytesMut;
use millrace_replication::follow::{self, FetchAnswer, FollowerPosition, FollowerStep};
use millrace_replication::metadata::PartitionImage;
use millrace_replication::metadata::{MetadataLog, PartitionStore};
use millrace_replication::replica::{
    AcksRefusal, AcksState, Action, Assignment, BrokerId, Event, Replica, ReplicaConfig, Role,
};
use millrace_replication::LeaderEpoch;
use millrace_shard::sync::Notify;
use millrace_storage::disk::Disk;
use millrace_storage::{
    AppendOutcome, BatchCache, CleanOutcome, LogConfig, PartitionLog, ReadResult, RetentionOutcome,
    SharedBuffer, StorageError, Throttle,
};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// What a producer waits for before its produce is answered (Kafka's `acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// acks=0: no answer; the append is still flushed.
    None,
    /// acks=1: the leader's own log has it on disk.
    Leader,
    /// acks=all: every in-sync replica has it on disk (the high watermark covers it).
    All,
}

impl Acks {
    /// From the request's value; None for anything but -1, 0 and 1.
    pub fn from_request(acks: i16) -> Option<Acks> {
        match acks {
            0 => Some(Acks::None),
            1 => Some(Acks::Leader),
            -1 => Some(Acks::All),
            _ => None,
        }
    }
}

/// Who reads, which decides how far a read may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// A consumer (or an internal reader): committed data only, up to the high watermark.
    Consumer,
    /// A read_committed consumer: up to the last stable offset (no open transaction's data).
    Committed,
    /// A follower replica: everything appended, up to the log end (flushed or not: its own
    /// fsync then runs alongside the leader's).
    Replica,
}

/// An ISR change this leader proposed and the controller has not answered yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    /// The proposed ISR, each member with the broker epoch its fetches carried (-1: none).
    pub isr: Vec<(BrokerId, i64)>,
    /// The leader epoch it is based on.
    pub leader_epoch: LeaderEpoch,
    /// The partition epoch it is based on.
    pub partition_epoch: i32,
}

/// The assignment a broker that is the only one in its cluster gives a new partition: itself
/// as leader, sole replica and sole ISR member, under the first leader epoch. The controller
/// records it in the partition's record; everything else reads the image.
pub fn sole_replica_assignment(local: BrokerId) -> Assignment {
    Assignment {
        leader_epoch: LeaderEpoch::INITIAL,
        partition_epoch: 0,
        leader: Some(local),
        replicas: vec![local],
        isr: vec![local],
    }
}

/// A partition's assignment as the metadata image records it.
pub fn assignment_of(state: &PartitionImage) -> Assignment {
    Assignment {
        leader_epoch: LeaderEpoch(state.leader_epoch),
        partition_epoch: state.partition_epoch,
        leader: (state.leader >= 0).then_some(state.leader),
        replicas: state.replicas.clone(),
        isr: state.isr.clone(),
    }
}

/// One partition replica on this shard.
pub struct Partition<D: Disk> {
    topic: String,
    index: i32,
    log: PartitionLog<D>,
    replica: RefCell<Replica>,
    /// The owning shard's "a high watermark advanced" signal.
    advanced: Rc<Notify>,
    /// The high watermark in the partition's replication checkpoint.
    checkpointed: Cell<Option<i64>>,
    /// Leader: the broker epoch each follower's last fetch carried.
    follower_epochs: RefCell<std::collections::BTreeMap<BrokerId, i64>>,
    /// Leader: an ISR change waiting to be sent to the controller (taken by the sender).
    isr_proposal: RefCell<Option<IsrProposal>>,
    /// The owning shard's "an ISR change was proposed" signal.
    isr_proposed: Rc<Notify>,
    /// Batches of idempotent producers waiting their turn to append (and batches waiting for
    /// buffer space).
    append_order: Rc<AppendOrder>,
}

/// Batches waiting their turn to append, per key in arrival order: a ticket is taken before
/// any wait and appends go in ticket order, each once the one before it is in the log (or gave
/// up). A producer with several requests in flight sends its next batches before the first is
/// appended; appending a later one first would break its sequence
/// (OUT_OF_ORDER_SEQUENCE_NUMBER, fatal to a transaction). A produce request takes a ticket per
/// batch of an idempotent producer (keyed by producer id) before it waits for anything (KIP-890
/// verification, a full pending buffer, its own earlier items); batches waiting for buffer
/// space also queue among themselves (one queue, [`SPACE`]).
#[derive(Default)]
pub struct AppendOrder {
    queues: RefCell<std::collections::HashMap<i64, std::collections::VecDeque<u64>>>,
    next: Cell<u64>,
    moved: Notify,
}

/// The key of the queue of batches waiting for buffer space.
const SPACE: i64 = i64::MIN;

impl AppendOrder {
    fn ticket(self: &Rc<Self>, key: i64) -> AppendTicket {
        let id = self.next.get();
        self.next.set(id + 1);
        self.queues
            .borrow_mut()
            .entry(key)
            .or_default()
            .push_back(id);
        AppendTicket {
            order: self.clone(),
            producer_id: key,
            id,
        }
    }

    fn waiting(&self, key: i64) -> bool {
        self.queues.borrow().contains_key(&key)
    }
}

/// A batch's place in a queue on a partition; leaving it (drop) lets the next go.
pub struct AppendTicket {
    order: Rc<AppendOrder>,
    producer_id: i64,
    id: u64,
}

impl AppendTicket {
    /// Waits until every batch queued before this one has left the queue.
    pub async fn turn(&self) {
        loop {
            let seen = self.order.moved.generation();
            let first = self
                .order
                .queues
                .borrow()
                .get(&self.producer_id)
                .and_then(|q| q.front().copied());
            if first == Some(self.id) {
                return;
            }
            self.order.moved.changed_since(seen).await;
        }
    }
}

impl Drop for AppendTicket {
    fn drop(&mut self) {
        let mut queues = self.order.queues.borrow_mut();
        if let Some(q) = queues.get_mut(&self.producer_id) {
            q.retain(|id| *id != self.id);
            if q.is_empty() {
                queues.remove(&self.producer_id);
            }
        }
        drop(queues);
        self.order.moved.notify_all();
    }
}

impl<D: Disk> Partition<D> {
    /// Opens (and recovers) the partition's log in `dir` as replica `local` under
    /// `assignment` (the metadata image's: leader, epoch, replicas, ISR).
    pub async fn open(
        (topic, index): (String, i32),
        disk: D,
        dir: std::path::PathBuf,
        (config, cache): (LogConfig, Rc<BatchCache>),
        (local, assignment): (BrokerId, Assignment),
        (advanced, isr_proposed): (Rc<Notify>, Rc<Notify>),
    ) -> Result<Self, StorageError> {
        let now = millrace_shard::time::now_ms();
        let log = PartitionLog::open(disk, dir, config, cache, now).await?;
        let durable = log.durable_end();
        let checkpoint = log.read_replication_checkpoint().await?;
        let checkpointed = checkpoint.as_deref().and_then(decode_high_watermark);
        // A sole replica commits whatever is durable; with followers, the checkpoint is the
        // last high watermark known to be committed.
        let hw = checkpointed.unwrap_or(durable).min(durable);
        let replica =
            Replica::new(local, assignment, log.log_end_offset(), durable, hw).started_at(now);
        Ok(Partition {
            topic,
            index,
            log,
            replica: RefCell::new(replica),
            advanced,
            checkpointed: Cell::new(checkpointed),
            follower_epochs: RefCell::new(std::collections::BTreeMap::new()),
            isr_proposal: RefCell::new(None),
            isr_proposed,
            append_order: Rc::default(),
        })
    }

    /// Takes a new assignment from the metadata image (an older epoch than the one in force
    /// is ignored by the replica).
    pub fn assign(&self, assignment: Assignment) {
        let (was_leader, before) = (self.is_leader(), self.assignment());
        // The replica's clock first: a follower taking over leadership counts its ISR as
        // caught up from now, not from the last time it ticked.
        self.feed(Event::Tick(millrace_shard::time::now_ms()));
        let (epoch, isr) = (assignment.leader_epoch, assignment.isr.len());
        self.feed(Event::Assigned(assignment));
        // An ISR change under the same leadership, whoever decided it (this leader's
        // AlterPartition or the controller fencing a member), as Kafka's leader counts it.
        if was_leader && self.is_leader() && before.leader_epoch == epoch {
            if isr < before.isr.len() {
                crate::stats::isr_changed(true);
            } else if isr > before.isr.len() {
                crate::stats::isr_changed(false);
            }
        }
        // Long polls re-check: one that waits on a replica that stopped leading answers now.
        self.advanced.notify_all();
    }

    /// True when this replica leads the partition (only a leader takes produce and serves
    /// consumers).
    pub fn is_leader(&self) -> bool {
        self.replica.borrow().is_leader()
    }

    /// The leader this replica follows, when it is a follower of a live leader.
    pub fn following(&self) -> Option<BrokerId> {
        match self.replica.borrow().role() {
            Role::Follower { leader } if leader >= 0 => Some(leader),
            _ => None,
        }
    }

    /// The assignment in force (leader, epochs, replicas, ISR).
    pub fn assignment(&self) -> Assignment {
        self.replica.borrow().assignment().clone()
    }

    /// True when other replicas copy this one's log (its appends wake their fetches).
    fn has_followers(&self) -> bool {
        self.replica.borrow().assignment().replicas.len() > 1
    }

    /// Bytes of the log's segments.
    pub fn size_in_bytes(&self) -> u64 {
        self.log.size_in_bytes()
    }

    /// The cleaner's backlog of a compacted log: (dirty bytes, closed segment bytes).
    pub fn cleaner_backlog(&self) -> Option<(u64, u64)> {
        self.log.cleaner_backlog()
    }

    /// The offset the next append gets.
    pub fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    /// Everything below this offset is on the local disk.
    pub fn durable_end(&self) -> i64 {
        self.log.durable_end()
    }

    /// The epoch of the last batch in the log (a follower's `last_fetched_epoch`), -1 for
    /// an empty log.
    pub fn last_epoch(&self) -> i32 {
        follow::last_epoch(&self.log)
    }

    /// Leader: where a follower fetching at `fetch_offset` stands against this log
    /// (`millrace_replication::follow`).
    pub fn check_follower(&self, fetch_offset: i64, last_fetched_epoch: i32) -> FollowerPosition {
        follow::follower_position(&self.log, fetch_offset, last_fetched_epoch)
    }

    /// Follower: what to do with the leader's answer to a fetch sent at `fetch_offset`.
    pub fn follower_step(&self, fetch_offset: i64, answer: FetchAnswer) -> FollowerStep {
        follow::follower_step(&self.log, fetch_offset, answer)
    }

    /// Leader: a follower fetched at `fetch_offset` (which, as followers here fetch only
    /// after syncing, is its durable end) carrying `broker_epoch`.
    pub fn follower_fetched(&self, replica: BrokerId, broker_epoch: i64, fetch_offset: i64) {
        self.follower_epochs
            .borrow_mut()
            .insert(replica, broker_epoch);
        self.feed(Event::FollowerFetch {
            replica,
            durable_end: fetch_offset,
            now_ms: millrace_shard::time::now_ms(),
        });
    }

    /// The clock moved: on a leader, an ISR member may have fallen behind for too long.
    pub fn tick(&self, now_ms: i64) {
        self.feed(Event::Tick(now_ms));
    }

    /// The brokers that may not join an ISR now (fenced, shutting down, unregistered).
    pub fn set_ineligible(&self, brokers: Vec<BrokerId>) {
        let actions = self.replica.borrow_mut().set_ineligible(brokers);
        self.act(actions);
    }

    /// Leader: takes the ISR change waiting to be sent, if any.
    pub fn take_isr_proposal(&self) -> Option<IsrProposal> {
        self.isr_proposal.borrow_mut().take()
    }

    /// Leader: the controller refused the ISR change (or did not answer): it may be proposed
    /// again.
    pub fn isr_change_failed(&self) {
        self.feed(Event::AlterIsrFailed);
    }

    /// Follower: appends batches the leader sent, as they are.
    pub fn append_as_follower(
        &self,
        records: BytesMut,
        now_ms: i64,
    ) -> Result<AppendOutcome, StorageError> {
        let outcome = self.log.append_as_follower(records, now_ms)?;
        self.feed(Event::LogEnd(self.log.log_end_offset()));
        Ok(outcome)
    }

    /// Follower: removes everything from `offset` on (a log that diverged from the
    /// leader's). Returns the new log end.
    pub async fn truncate_to(&self, offset: i64) -> Result<i64, StorageError> {
        let now = millrace_shard::time::now_ms();
        let end = self.log.truncate_to(offset, now).await?;
        self.feed(Event::LogEnd(end));
        self.feed(Event::Durable(self.log.durable_end()));
        Ok(end)
    }

    /// Follower: empties the log and starts it at `offset` (the leader's log start is past
    /// this log's end).
    pub async fn reset_to(&self, offset: i64) -> Result<(), StorageError> {
        let now = millrace_shard::time::now_ms();
        self.log.reset_to(offset, now).await?;
        self.feed(Event::LogEnd(self.log.log_end_offset()));
        self.feed(Event::Durable(self.log.durable_end()));
        Ok(())
    }

    /// Follower: the leader's high watermark from a fetch answer.
    pub fn leader_high_watermark(&self, high_watermark: i64) {
        self.feed(Event::LeaderHighWatermark(high_watermark));
    }

    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition number.
    pub fn index(&self) -> i32 {
        self.index
    }

    /// Offsets below this are committed and visible to consumers.
    pub fn high_watermark(&self) -> i64 {
        self.replica.borrow().high_watermark()
    }

    /// Consumers reading committed transactions stop here: the high watermark, or the first
    /// offset of an open transaction (or of one whose marker is not yet below the high
    /// watermark) when lower.
    pub fn last_stable_offset(&self) -> i64 {
        self.log.last_stable_offset(self.high_watermark())
    }

    /// The aborted transactions a read_committed fetch of `[from, upper)` reports:
    /// `(producer_id, first_offset)`.
    pub fn aborted_transactions(&self, from: i64, upper: i64) -> Vec<(i64, i64)> {
        self.log
            .aborted_transactions(from, upper)
            .into_iter()
            .map(|a| (a.producer_id, a.first_offset))
            .collect()
    }

    /// The first offset of the log.
    pub fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }

    /// The leader epoch in force.
    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.replica.borrow().leader_epoch()
    }

    /// True when a long poll waiting past `offset` should wake: committed data beyond it, or
    /// the log start moved past it (the next read answers OFFSET_OUT_OF_RANGE).
    pub fn has_data_past(&self, offset: i64) -> bool {
        self.high_watermark() > offset || self.log_start_offset() > offset || !self.is_leader()
    }

    /// [`Partition::has_data_past`] for a read_committed consumer: stable data past it.
    pub fn has_stable_data_past(&self, offset: i64) -> bool {
        self.last_stable_offset() > offset || self.log_start_offset() > offset || !self.is_leader()
    }

    /// True when a follower's long poll waiting past `offset` should wake: records past it
    /// (committed or not), a high watermark past the one it was last sent (`sent_hw`), the
    /// log start past it, or this replica no longer leading.
    pub fn has_replica_data_past(&self, offset: i64, sent_hw: i64) -> bool {
        self.log.log_end_offset() > offset
            || self.high_watermark() > sent_hw
            || self.log_start_offset() > offset
            || !self.is_leader()
    }

    /// Stage one of a produce: checks producer sequences, assigns offsets and stamps the
    /// leader epoch. The records are in the log (and its cache) but not yet committed.
    pub fn append(
        &self,
        mut records: BytesMut,
        now_ms: i64,
        log_append_time: bool,
    ) -> Result<AppendOutcome, StorageError> {
        self.append_in_place(&mut records, None, now_ms, log_append_time)
    }

    /// [`Partition::append`] of records stamped where they are
    /// ([`PartitionLog::append_in_place`]): taken once appended, left as they were on an error.
    fn append_in_place(
        &self,
        records: &mut BytesMut,
        shared: Option<&Rc<SharedBuffer>>,
        now_ms: i64,
        log_append_time: bool,
    ) -> Result<AppendOutcome, StorageError> {
        let epoch = self.leader_epoch();
        let outcome = self
            .log
            .append_in_place(records, shared, epoch, now_ms, log_append_time)?;
        self.feed(Event::LogEnd(self.log.log_end_offset()));
        if self.has_followers() {
            // Followers long-polling for data past their offset wake up.
            self.advanced.notify_all();
        }
        Ok(outcome)
    }

    /// A place in `producer_id`'s queue of batches to append here ([`AppendOrder`]); take it
    /// before any wait, in the order the batches arrived.
    pub fn append_ticket(&self, producer_id: i64) -> AppendTicket {
        self.append_order.ticket(producer_id)
    }

    /// Appends a client's batch as [`Partition::append`] does, but when the pending buffer is
    /// full, flushes and waits in arrival order with the other batches waiting for space (a
    /// batch arriving while some wait queues behind them), so that no batch overtakes an
    /// earlier one of the same producer ([`AppendOrder`]). The records are stamped where they
    /// are and taken when appended ([`PartitionLog::append_in_place`]); `shared` is the buffer
    /// they are a slice of, if batches of other partitions are slices of it too.
    pub async fn append_in_order(
        &self,
        records: &mut BytesMut,
        shared: Option<&Rc<SharedBuffer>>,
        now_ms: i64,
        log_append_time: bool,
    ) -> Result<AppendOutcome, StorageError> {
        if !self.append_order.waiting(SPACE) {
            match self.append_in_place(records, shared, now_ms, log_append_time) {
                Err(StorageError::BufferFull { .. }) => {}
                other => return other,
            }
        }
        let ticket = self.append_order.ticket(SPACE);
        ticket.turn().await;
        loop {
            match self.append_in_place(records, shared, now_ms, log_append_time) {
                Err(StorageError::BufferFull { .. }) => self.flush().await?,
                other => return other,
            }
        }
    }

    /// The producers this partition has state for (DescribeProducers).
    pub fn producers(&self) -> Vec<millrace_storage::ProducerInfo> {
        self.log.producers()
    }

    /// Whether `producer_id` has a transaction open on this partition under `producer_epoch`
    /// (its transactional batches need no verification with the coordinator).
    pub fn has_open_transaction(&self, producer_id: i64, producer_epoch: i16) -> bool {
        self.log.has_open_transaction(producer_id, producer_epoch)
    }

    /// The epoch this partition last saw from `producer_id` (a marker's included), if any.
    pub fn producer_epoch(&self, producer_id: i64) -> Option<i16> {
        self.log.producer_epoch(producer_id)
    }

    /// Leader: appends a transaction marker for `producer_id` (WriteTxnMarkers), under the
    /// current leader epoch; commit it with [`Partition::committed`].
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        marker: millrace_wire::records::TxnMarker,
        now_ms: i64,
    ) -> Result<AppendOutcome, StorageError> {
        let epoch = self.leader_epoch();
        let outcome = self
            .log
            .append_marker(producer_id, producer_epoch, marker, epoch, now_ms)?;
        self.feed(Event::LogEnd(self.log.log_end_offset()));
        if self.has_followers() {
            self.advanced.notify_all();
        }
        Ok(outcome)
    }

    /// Stage two: waits until everything up to `last_offset` is covered by `acks`. Flushes the
    /// log (one group commit covers every append made before it, from any request).
    /// With acks=all, the wait for the high watermark after the local flush lasts at most
    /// `timeout` ([`CommitError::TimedOut`]; the write stays in the log and may still commit).
    pub async fn committed(
        &self,
        last_offset: i64,
        leader_epoch: LeaderEpoch,
        acks: Acks,
        timeout: std::time::Duration,
    ) -> Result<(), CommitError> {
        self.flush().await.map_err(CommitError::Storage)?;
        if acks != Acks::All {
            return Ok(());
        }
        let replicated = async {
            loop {
                let seen = self.advanced.generation();
                let state = self
                    .replica
                    .borrow()
                    .acks_all_state(last_offset + 1, leader_epoch);
                match state {
                    AcksState::Done => return Ok(()),
                    AcksState::Failed(refusal) => return Err(CommitError::Refused(refusal)),
                    AcksState::Waiting => self.advanced.changed_since(seen).await,
                }
            }
        };
        millrace_shard::time::timeout(timeout, replicated)
            .await
            .unwrap_or(Err(CommitError::TimedOut))
    }

    /// Whether an acks=all write may be appended now (`min.insync.replicas` in sync).
    pub fn check_acks_all(&self) -> Result<(), AcksRefusal> {
        self.replica.borrow().check_acks_all()
    }

    /// Applies the replication settings (`min.insync.replicas`, `replica.lag.time.max.ms`).
    pub fn set_replica_config(&self, config: ReplicaConfig) {
        let actions = self.replica.borrow_mut().set_config(config);
        self.act(actions);
    }

    /// Makes everything appended so far durable and advances the high watermark with it.
    pub async fn flush(&self) -> Result<(), StorageError> {
        self.log.flush().await?;
        self.feed(Event::Durable(self.log.durable_end()));
        Ok(())
    }

    /// True when records up to `last_offset` are committed already (a producer retry of a
    /// batch that is in the log needs no flush).
    pub fn is_committed(&self, last_offset: i64) -> bool {
        self.high_watermark() > last_offset
    }

    /// Whole batches from the one holding `offset`, within `max_bytes` (at least one batch if
    /// `min_one_batch`), never past what `reader` may see: for a consumer, the high watermark
    /// as it was when the read started (returned with the read).
    pub async fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        reader: Reader,
    ) -> Result<(ReadResult<D::File>, i64), StorageError> {
        let bound = match reader {
            Reader::Consumer => self.high_watermark(),
            Reader::Committed => self.last_stable_offset(),
            Reader::Replica => self.log.log_end_offset(),
        };
        let read = self.log.read(offset, max_bytes, min_one_batch, bound);
        Ok((read.await?, bound))
    }

    /// ListOffsets: `(offset, timestamp)` for LATEST (-1), EARLIEST (-2, -4), MAX_TIMESTAMP
    /// (-3) or the first record at or after a timestamp; `(-1, -1)` when there is none. A
    /// read_committed asker (`committed`) sees the last stable offset as the end.
    pub async fn list_offset(
        &self,
        timestamp: i64,
        committed: bool,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        let hw = match committed {
            true => self.last_stable_offset(),
            false => self.high_watermark(),
        };
        Ok(match timestamp {
            -1 => Some((hw, -1)),
            -2 | -4 => Some((self.log_start_offset(), -1)),
            -3 => Some(
                self.log
                    .max_timestamp()
                    .map_or((-1, -1), |(ts, offset)| (offset, ts)),
            ),
            ts if ts >= 0 => match self.log.offset_for_timestamp(ts).await? {
                Some((offset, found)) if offset < hw => Some((offset, found)),
                _ => Some((-1, -1)),
            },
            _ => None,
        })
    }

    /// DeleteRecords: moves the log start offset to `offset` (-1: the high watermark) and
    /// returns the new log start offset.
    pub async fn delete_records(&self, offset: i64) -> Result<i64, StorageError> {
        self.log.delete_records(offset, self.high_watermark()).await
    }

    /// Retention: deletes whole segments past the topic's limits (never committed data a
    /// reader could still be given that it has not been told is gone).
    pub async fn enforce_retention(&self, now_ms: i64) -> Result<RetentionOutcome, StorageError> {
        self.log
            .enforce_retention(now_ms, self.high_watermark())
            .await
    }

    /// Compaction (with `cleanup.policy=compact`).
    pub async fn clean<T: Throttle>(
        &self,
        now_ms: i64,
        throttle: &T,
    ) -> Result<CleanOutcome, StorageError> {
        self.log.clean(now_ms, throttle).await
    }

    /// The log settings in force.
    pub fn config(&self) -> LogConfig {
        self.log.config()
    }

    /// Applies new settings (a topic config change).
    pub fn set_config(&self, config: LogConfig) -> Result<(), StorageError> {
        self.log.set_config(config)
    }

    /// Persists the high watermark if it moved since the last checkpoint (Kafka's
    /// `replication-offset-checkpoint`, one per partition here): after a restart a follower
    /// must not expose more than was known to be committed.
    pub async fn checkpoint_high_watermark(&self) -> Result<(), StorageError> {
        let hw = self.high_watermark();
        if self.checkpointed.get() == Some(hw) {
            return Ok(());
        }
        let body = encode_high_watermark(hw, self.leader_epoch());
        self.log.write_replication_checkpoint(&body).await?;
        self.checkpointed.set(Some(hw));
        Ok(())
    }

    /// Final flush, the high-watermark checkpoint and the log's clean-shutdown files.
    pub async fn close(&self) -> Result<(), StorageError> {
        self.flush().await?;
        self.checkpoint_high_watermark().await?;
        self.log.close().await
    }

    /// Removes the partition's files.
    pub async fn delete(self) -> Result<(), StorageError> {
        self.log.delete().await
    }

    fn feed(&self, event: Event) {
        let actions = self.replica.borrow_mut().handle(event);
        self.act(actions);
    }

    fn act(&self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::HighWatermarkAdvanced { .. } => self.advanced.notify_all(),
                Action::AlterIsr {
                    isr,
                    leader_epoch,
                    partition_epoch,
                } => {
                    tracing::info!(topic = %self.topic, partition = self.index, ?isr,
                        leader_epoch = leader_epoch.0, partition_epoch, "proposing an ISR change");
                    let epochs = self.follower_epochs.borrow();
                    let isr = isr
                        .into_iter()
                        .map(|m| (m, epochs.get(&m).copied().unwrap_or(-1)))
                        .collect();
                    *self.isr_proposal.borrow_mut() = Some(IsrProposal {
                        isr,
                        leader_epoch,
                        partition_epoch,
                    });
                    self.isr_proposed.notify_all();
                }
            }
        }
    }
}

/// Why an append was not acknowledged.
#[derive(Debug)]
pub enum CommitError {
    /// The log could not make it durable.
    Storage(StorageError),
    /// The replication rules refused it (acks=all: the ISR fell below
    /// `min.insync.replicas`, or leadership moved).
    Refused(AcksRefusal),
    /// acks=all: not replicated within the request's timeout.
    TimedOut,
}

impl std::fmt::Display for CommitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommitError::Storage(e) => write!(f, "{e}"),
            CommitError::Refused(AcksRefusal::NotLeader) => {
                write!(f, "leadership moved before the write committed")
            }
            CommitError::Refused(_) => {
                write!(f, "the in-sync replicas fell below min.insync.replicas")
            }
            CommitError::TimedOut => {
                write!(
                    f,
                    "not replicated to the in-sync replicas within timeout_ms"
                )
            }
        }
    }
}

/// The term under which a single-voter controller appends to the metadata log: it is the only
/// voter and never changed leader. Under Raft the term comes from the quorum instead.
pub const SINGLE_VOTER_TERM: i32 = 0;

/// The metadata log on the storage crate's partition log in `dir` (`__cluster_metadata-0`),
/// opened and recovered like a partition's (torn tails cut at the first bad CRC). Its own
/// small batch cache: replay reads it once, and partition data must not evict it or the
/// reverse. Always fsync'd, never deleted by retention, whatever the topic defaults say.
pub async fn open_metadata_log<D: Disk>(
    disk: D,
    dir: std::path::PathBuf,
    now_ms: i64,
) -> Result<MetadataLog<PartitionStore<D>>, StorageError> {
    let config = LogConfig {
        segment_bytes: METADATA_SEGMENT_BYTES,
        fsync: true,
        retention_ms: -1,
        retention_bytes: -1,
        cleanup_delete: false,
        cleanup_compact: false,
        ..LogConfig::default()
    };
    let cache = BatchCache::new(METADATA_CACHE_BYTES);
    let log = PartitionLog::open(disk, dir, config, cache, now_ms).await?;
    Ok(MetadataLog::new(PartitionStore::new(log)))
}

/// Segment size of the metadata log (KRaft's `metadata.log.segment.bytes` default is 1 GiB;
/// records are small, so smaller segments keep recovery's last-segment scan short).
const METADATA_SEGMENT_BYTES: u64 = 64 << 20;
/// Batch cache of the metadata log.
const METADATA_CACHE_BYTES: usize = 1 << 20;

/// The replication checkpoint's body: `high_watermark i64 | leader_epoch i32`, big-endian.
fn encode_high_watermark(high_watermark: i64, epoch: LeaderEpoch) -> Vec<u8> {
    let mut body = high_watermark.to_be_bytes().to_vec();
    body.extend_from_slice(&epoch.0.to_be_bytes());
    body
}

/// The high watermark of a checkpoint body; None for a body of another shape.
fn decode_high_watermark(body: &[u8]) -> Option<i64> {
    let hw: [u8; 8] = body.get(..8)?.try_into().ok()?;
    (body.len() == 12).then(|| i64::from_be_bytes(hw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checkpoint_body_round_trips_and_refuses_other_shapes() {
        let body = encode_high_watermark(1 << 40, LeaderEpoch(3));
        assert_eq!(decode_high_watermark(&body), Some(1 << 40));
        assert_eq!(decode_high_watermark(&body[..11]), None);
        assert_eq!(
            decode_high_watermark(&[body.clone(), vec![0]].concat()),
            None
        );
    }
}
