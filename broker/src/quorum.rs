//! The controller's Raft node at work: the task that drives a
//! [`Quorum`](millrace_replication::quorum::Quorum) on the controller's shard.
//!
//! Everything that reaches the quorum goes through one queue and one loop, because raft-rs
//! takes no input while a Ready is out (being persisted):
//!
//! ```text
//! propose(records) ─┐
//! campaign ─────────┼─> inputs ─> loop: drain inputs into the quorum
//! tick (timer) ─────┘                   run one Ready cycle (send, persist + fsync, advance)
//!                                       apply each committed batch (the controller's image)
//!                                       answer the proposals whose index committed
//! ```
//!
//! A proposal is answered only once its batch is committed **and applied**, so the caller
//! that waited sees its change in the controller's image. If another batch committed at the
//! proposal's index (leadership changed before it replicated), the proposal is answered
//! with [`ProposeError::Lost`]. A failure to persist leaves the log in an unknown state: the
//! driver stops (every later proposal fails) and the broker must restart, as a Kafka
//! controller halts on a log write failure.
//!
//! Raft ids: raft-rs reserves 0, Kafka's `node.id` starts at 0, so a node's Raft id is its
//! `node.id + 1` ([`raft_id`]).

use crate::disk::BrokerDisk;
use millrace_replication::metadata::{
    MetadataLog, MetadataRecord, MetadataSnapshot, PartitionStore,
};
use millrace_replication::quorum::{self, CommittedBatch, Message, Quorum};
use millrace_replication::ReplicationError;
use millrace_shard::sync::{oneshot, Notify, OneshotSender};
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::time::Duration;

/// The metadata log the quorum replicates.
pub type MetaLog = MetadataLog<PartitionStore<BrokerDisk>>;

/// The Raft id of a Kafka `node.id`.
pub fn raft_id(node_id: i32) -> u64 {
    u64::try_from(node_id).expect("node.id is not negative") + 1
}

/// The Kafka `node.id` of a Raft id.
pub fn node_id_of(raft_id: u64) -> i32 {
    i32::try_from(raft_id - 1).expect("raft ids come from node ids")
}

/// Why a proposal was not committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProposeError {
    /// This node does not lead the quorum; the leader's `node.id` if known.
    NotLeader(Option<i32>),
    /// Leadership changed and another batch took the proposal's place.
    Lost,
    /// This node stopped leading the proposal's term before it committed (it lost touch with
    /// a majority, or another node was elected). The batch may still be committed by a later
    /// leader that holds it, as after a Kafka request timeout.
    Abandoned,
    /// The driver stopped (a persistence failure); the text says why.
    Stopped(String),
    /// The quorum refused the records (too large, empty).
    Refused(String),
}

impl std::fmt::Display for ProposeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProposeError::NotLeader(Some(id)) => {
                write!(f, "not the active controller (node {id} is)")
            }
            ProposeError::NotLeader(None) => write!(f, "no active controller is known"),
            ProposeError::Lost => write!(f, "the change was lost to a controller election"),
            ProposeError::Abandoned => write!(
                f,
                "this node stopped being the active controller before the change committed; \
                 it may still take effect"
            ),
            ProposeError::Stopped(why) => write!(f, "the metadata log stopped: {why}"),
            ProposeError::Refused(why) => write!(f, "the metadata change was refused: {why}"),
        }
    }
}

type Answer = Result<CommittedBatch, ProposeError>;

/// The quorum as one node sees it (Kafka's DescribeQuorum).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumStatus {
    /// The leader's `node.id`, if known.
    pub leader: Option<i32>,
    /// True when this node leads.
    pub leading: bool,
    /// The current term (Kafka's leader epoch of the metadata partition).
    pub term: u64,
    /// Offset after the last committed batch this node holds.
    pub high_watermark: i64,
    /// Leader only: each voter's `node.id` and the log end offset it is known to hold.
    pub voters: Vec<(i32, i64)>,
    /// Leader only: each observer that fetched from it (`node.id`, the offset it fetched
    /// from last, when, in ms since the epoch), filled by the controller.
    pub observers: Vec<(i32, i64, i64)>,
}

enum Input {
    Propose(Vec<MetadataRecord>, OneshotSender<Answer>),
    Tick,
    Campaign,
    Step(Message),
}

/// The driver of one controller's quorum. Lives on the controller's shard.
pub struct Driver {
    quorum: RefCell<Quorum>,
    log: Rc<MetaLog>,
    inputs: RefCell<VecDeque<Input>>,
    /// Proposals waiting for their index: index → (term proposed in, answer).
    waiting: RefCell<BTreeMap<u64, (u64, OneshotSender<Answer>)>>,
    wake: Notify,
    /// Notified after committed batches are applied (observers' fetches wait on it).
    committed: Notify,
    stopped: RefCell<Option<String>>,
    tick: Duration,
}

impl Driver {
    /// A driver over an opened quorum and its log.
    pub fn new(quorum: Quorum, log: Rc<MetaLog>, tick: Duration) -> Rc<Self> {
        Rc::new(Driver {
            quorum: RefCell::new(quorum),
            log,
            inputs: RefCell::new(VecDeque::new()),
            waiting: RefCell::new(BTreeMap::new()),
            wake: Notify::new(),
            committed: Notify::new(),
            stopped: RefCell::new(None),
            tick,
        })
    }

    /// Proposes `records` as one batch; answers once it is committed and applied.
    pub async fn propose(&self, records: Vec<MetadataRecord>) -> Answer {
        if let Some(why) = self.stopped.borrow().clone() {
            return Err(ProposeError::Stopped(why));
        }
        let (tx, rx) = oneshot();
        self.inputs
            .borrow_mut()
            .push_back(Input::Propose(records, tx));
        self.wake.notify_all();
        rx.await
            .unwrap_or_else(|| Err(ProposeError::Stopped("the driver ended".into())))
    }

    /// Hands a peer's message to the quorum.
    pub fn step(&self, message: Message) {
        self.inputs.borrow_mut().push_back(Input::Step(message));
        self.wake.notify_all();
    }

    /// The offset the next proposed batch gets if nothing else is appended first (the end of
    /// the log this node holds).
    pub fn next_offset(&self) -> i64 {
        let q = self.quorum.borrow();
        q.raft_log().end_offset(q.last_index()).unwrap_or(0)
    }

    /// Offers a snapshot just written (the batch it ends after, the file's body) to
    /// followers behind the log start.
    pub fn offer_snapshot(&self, point: quorum::LogBase, body: bytes::Bytes) {
        self.quorum.borrow().offer_snapshot(point, body);
    }

    /// The snapshot held for followers: the batch it ends after, and its file body.
    pub fn snapshot_file(&self) -> Option<(quorum::LogBase, bytes::Bytes)> {
        self.quorum.borrow().raft_log().snapshot_file()
    }

    /// The log on disk was cut below the batch after `index`: raft-rs's table forgets it.
    pub fn compact_to(&self, index: u64) {
        if let Err(e) = self.quorum.borrow().compact_to(index) {
            tracing::warn!(error = %e, "compacting the quorum's log table");
        }
    }

    /// The current term while this node leads it.
    pub fn leading_term(&self) -> Option<u64> {
        let q = self.quorum.borrow();
        (q.role() == quorum::QuorumRole::Leader).then(|| q.term())
    }

    /// What DescribeQuorum reports, as this node knows it.
    pub fn status(&self) -> QuorumStatus {
        let q = self.quorum.borrow();
        let log = q.raft_log();
        let end_of = |index: u64| log.end_offset(index).unwrap_or(-1);
        QuorumStatus {
            leader: q.leader_id().map(node_id_of),
            leading: q.role() == quorum::QuorumRole::Leader,
            term: q.term(),
            high_watermark: q.committed_end_offset(),
            voters: q
                .voter_progress()
                .into_iter()
                .map(|p| (node_id_of(p.id), end_of(p.match_index)))
                .collect(),
            observers: Vec::new(),
        }
    }

    /// How this node answers an observer's fetch (see `quorum::Quorum::plan_fetch`).
    pub fn plan_fetch(&self, fetch_offset: i64, last_fetched_epoch: i32) -> quorum::FetchPlan {
        self.quorum
            .borrow()
            .plan_fetch(fetch_offset, last_fetched_epoch)
    }

    /// The metadata log this node holds.
    pub fn log(&self) -> &Rc<MetaLog> {
        &self.log
    }

    /// Notified each time committed batches have been applied.
    pub fn committed(&self) -> &Notify {
        &self.committed
    }

    /// This node's role in the quorum.
    #[cfg(test)]
    pub fn role(&self) -> quorum::QuorumRole {
        self.quorum.borrow().role()
    }

    /// Stands for election now (a lone voter at start: it leads at once).
    pub fn campaign(&self) {
        self.inputs.borrow_mut().push_back(Input::Campaign);
        self.wake.notify_all();
    }

    /// Ticks the quorum every tick until `stop()` says so.
    pub async fn run_ticks(self: Rc<Self>, stop: impl Fn() -> bool) {
        while !stop() && self.stopped.borrow().is_none() {
            millrace_shard::time::sleep(self.tick).await;
            self.inputs.borrow_mut().push_back(Input::Tick);
            self.wake.notify_all();
        }
    }

    /// The loop of the module doc. `send` gets the messages for peers (grouped by nothing:
    /// each message names its target); `install` replaces the applied state with a leader's
    /// snapshot this node installed in place of its log; `apply` applies one committed
    /// batch, in order.
    pub async fn run(
        self: Rc<Self>,
        mut send: impl FnMut(Vec<Message>),
        install: impl AsyncFn(MetadataSnapshot) -> Result<(), String>,
        apply: impl AsyncFn(&CommittedBatch) -> Result<(), String>,
        stop: impl Fn() -> bool,
    ) {
        while !stop() {
            let seen = self.wake.generation();
            self.drain_inputs();
            let now_ms = millrace_shard::time::now_ms();
            let cycle = quorum::run_ready_cycle(
                &self.quorum,
                &self.log,
                self.log.store(),
                now_ms,
                &mut send,
            )
            .await;
            let quorum::ReadyCycle {
                installed,
                committed,
            } = match cycle {
                Ok(cycle) => cycle,
                Err(e) => return self.stop(format!("persisting the metadata log: {e}")),
            };
            if let Some(snapshot) = installed {
                let index = snapshot.index;
                if let Err(e) = install(snapshot).await {
                    return self.stop(format!("installing the leader's snapshot at {index}: {e}"));
                }
                self.committed.notify_all();
            }
            for batch in &committed {
                if let Err(e) = apply(batch).await {
                    return self.stop(format!("applying metadata batch {}: {e}", batch.index));
                }
                self.answer(batch);
            }
            if !committed.is_empty() {
                self.committed.notify_all();
            }
            self.abandon_if_not_leading();
            if committed.is_empty()
                && self.inputs.borrow().is_empty()
                && !self.quorum.borrow().has_ready()
            {
                self.wake.changed_since(seen).await;
            }
        }
        self.stop("the broker is stopping".into());
    }

    fn drain_inputs(&self) {
        loop {
            let Some(input) = self.inputs.borrow_mut().pop_front() else {
                return;
            };
            let mut quorum = self.quorum.borrow_mut();
            match input {
                Input::Tick => {
                    if let Err(e) = quorum.tick() {
                        tracing::warn!(error = %e, "quorum tick refused");
                    }
                }
                Input::Step(message) => {
                    if let Err(e) = quorum.step(message) {
                        tracing::debug!(error = %e, "quorum message refused");
                    }
                }
                Input::Campaign => {
                    if let Err(e) = quorum.campaign() {
                        tracing::warn!(error = %e, "campaign refused");
                    }
                }
                Input::Propose(records, answer) => {
                    let term = quorum.term();
                    match quorum.propose(&records) {
                        Ok(index) => {
                            self.waiting.borrow_mut().insert(index, (term, answer));
                        }
                        Err(ReplicationError::NotLeader { leader_hint }) => {
                            answer.send(Err(ProposeError::NotLeader(leader_hint.map(node_id_of))))
                        }
                        Err(e) => answer.send(Err(ProposeError::Refused(e.to_string()))),
                    }
                }
            }
        }
    }

    /// Answers the proposal waiting for `batch.index`, if any, and fails the ones below it
    /// that another leader's batches replaced.
    fn answer(&self, batch: &CommittedBatch) {
        let mut waiting = self.waiting.borrow_mut();
        while let Some(entry) = waiting.first_entry() {
            if *entry.key() > batch.index {
                break;
            }
            let index = *entry.key();
            let (term, answer) = entry.remove();
            if index == batch.index && u64::try_from(batch.term).ok() == Some(term) {
                answer.send(Ok(batch.clone()));
            } else {
                answer.send(Err(ProposeError::Lost));
            }
        }
    }

    /// Fails the waiting proposals of a term this node no longer leads: without a majority no
    /// batch may commit at their index for as long as the majority is gone, and their callers
    /// must not wait that long.
    fn abandon_if_not_leading(&self) {
        let leading = self.leading_term();
        let mut waiting = self.waiting.borrow_mut();
        if waiting.is_empty() {
            return;
        }
        let lost: Vec<u64> = waiting
            .iter()
            .filter(|(_, (term, _))| leading != Some(*term))
            .map(|(index, _)| *index)
            .collect();
        for index in lost {
            if let Some((_, answer)) = waiting.remove(&index) {
                answer.send(Err(ProposeError::Abandoned));
            }
        }
    }

    fn stop(&self, why: String) {
        if self.stopped.borrow().is_none() {
            tracing::error!(reason = %why, "the controller's quorum stopped");
            *self.stopped.borrow_mut() = Some(why.clone());
        }
        for (_, (_, answer)) in std::mem::take(&mut *self.waiting.borrow_mut()) {
            answer.send(Err(ProposeError::Stopped(why.clone())));
        }
        for input in std::mem::take(&mut *self.inputs.borrow_mut()) {
            if let Input::Propose(_, answer) = input {
                answer.send(Err(ProposeError::Stopped(why.clone())));
            }
        }
    }
}
