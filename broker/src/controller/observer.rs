//! Broker-only nodes (`process.roles=broker`): observers of the metadata quorum, as Kafka's
//! brokers are. An observer holds its own copy of `__cluster_metadata-0`, filled by fetching
//! from the active controller with Kafka's Fetch on the CONTROLLER listener, and applies each
//! batch to its view exactly as a voter applies a committed batch ([`Controller::apply`]).
//! It never votes and never proposes: metadata changes reaching it are forwarded
//! ([`super::lifecycle::Forward`]) to the controller it learned of from the fetch answers.
//!
//! ```text
//! observer (run)                                     active controller (MetadataFetch)
//!   Fetch v16 __cluster_metadata-0                   the answer of Quorum::plan_fetch:
//!     fetch_offset, last_fetched_epoch,   ──────>      committed batches + high watermark,
//!     replica_state (node.id, broker epoch),           long-polled up to max_wait_ms, or
//!     max_wait_ms, cluster_id                          diverging_epoch, or
//!                                         <──────      NOT_LEADER_OR_FOLLOWER + current_leader
//! ```
//!
//! The leader serves only committed batches (see `millrace_replication::quorum::Observer`),
//! so an observer applies what it appends. Its high watermark in DescribeQuorum is the end of
//! what it applied. A fetch with a broker epoch older than the broker's registration is
//! refused with STALE_BROKER_EPOCH (a stale process of a restarted broker); -1 means "not
//! registered yet", which is how a broker starts (it catches up before it registers).
//!
//! [`Member`] is what the controller drives: the Raft voter's [`Driver`] or an
//! [`ObserverMember`], behind the same few methods.

use super::Controller;
use crate::errors::code;
use crate::mesh::Call;
use crate::peer::{PeerClient, PeerConfig};
use crate::quorum::{node_id_of, Driver, MetaLog, ProposeError, QuorumStatus};
use crate::shard::Shard;
use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::fetch_snapshot_request::{self, PartitionSnapshot, TopicSnapshot};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, FetchSnapshotRequest, TopicName,
};
use millrace_replication::metadata::snapshot_file;
use millrace_replication::metadata::{MetadataRecord, SnapshotId, SnapshotStore};
use millrace_replication::quorum::{self, CommittedBatch, Cut, FetchPlan, Message, Observer};
use millrace_shard::time::Instant;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

/// The Fetch version observers send (KIP-903's replica state, KIP-951's leader endpoints).
pub const FETCH_VERSION: i16 = 16;
/// The metadata log's topic, as Kafka names it.
pub const METADATA_TOPIC: &str = "__cluster_metadata";
/// The metadata log's topic id (Kafka's fixed `AAAAAAAAAAAAAAAAAAAAAQ`).
pub const METADATA_TOPIC_ID: uuid::Uuid = uuid::Uuid::from_u128(1);
/// Bytes of batches one fetch answer carries at most (Kafka's raft fetch uses 8 MiB; a
/// metadata batch is at most 1 MiB, and one is always sent whole).
pub const FETCH_MAX_BYTES: usize = 1 << 20;

/// The FetchSnapshot version sent (v1 only adds a directory id this node does not have).
const FETCH_SNAPSHOT_VERSION: i16 = 0;

/// This node's part in the metadata quorum.
pub enum Member {
    /// A voter: raft-rs through its driver. Observers' progress as this node saw it while
    /// leading: `node.id` → (fetch offset, when, term).
    Voter(Rc<Driver>, RefCell<BTreeMap<i32, (i64, i64, u64)>>),
    /// A broker-only node.
    Observer(Rc<ObserverMember>),
}

impl Member {
    /// A voter over `driver`.
    pub fn voter(driver: Rc<Driver>) -> Self {
        Member::Voter(driver, RefCell::new(BTreeMap::new()))
    }

    /// The quorum as this node knows it.
    pub fn status(&self) -> QuorumStatus {
        match self {
            Member::Voter(driver, observers) => {
                let mut status = driver.status();
                if status.leading {
                    status.observers = observers
                        .borrow()
                        .iter()
                        .filter(|(_, &(_, _, term))| term == status.term)
                        .map(|(&id, &(offset, at, _))| (id, offset, at))
                        .collect();
                }
                status
            }
            Member::Observer(o) => QuorumStatus {
                leader: o.leader.get(),
                leading: false,
                term: o.term.get(),
                high_watermark: o.state.borrow().position().fetch_offset,
                voters: Vec::new(),
                observers: Vec::new(),
            },
        }
    }

    /// The term this node leads, if it does (an observer never does).
    pub fn leading_term(&self) -> Option<u64> {
        match self {
            Member::Voter(driver, _) => driver.leading_term(),
            Member::Observer(_) => None,
        }
    }

    /// Proposes `records`; an observer answers NOT_CONTROLLER with the leader it knows.
    pub async fn propose(
        &self,
        records: Vec<MetadataRecord>,
    ) -> Result<CommittedBatch, ProposeError> {
        match self {
            Member::Voter(driver, _) => driver.propose(records).await,
            Member::Observer(o) => Err(ProposeError::NotLeader(o.leader.get())),
        }
    }

    /// A Raft message from a voter: an observer takes no part in Raft and drops it.
    pub fn step(&self, message: Message) {
        match self {
            Member::Voter(driver, _) => driver.step(message),
            Member::Observer(_) => {
                tracing::debug!(from = message.from, "a raft message reached an observer")
            }
        }
    }

    /// The metadata log this node holds.
    pub fn log(&self) -> Rc<MetaLog> {
        match self {
            Member::Voter(driver, _) => driver.log().clone(),
            Member::Observer(o) => o.log.clone(),
        }
    }

    /// A snapshot was written: a voter offers it to followers behind its log start; either
    /// cuts its log below it when the retention limits say so.
    pub async fn after_snapshot(&self, written: super::snapshots::Written) {
        let log = self.log();
        match self {
            Member::Voter(driver, _) => {
                driver.offer_snapshot(written.point, written.body);
                if written.cut && super::snapshots::cut_log(&log, written.point).await {
                    driver.compact_to(written.point.index);
                }
            }
            Member::Observer(_) => {
                if written.cut {
                    super::snapshots::cut_log(&log, written.point).await;
                }
            }
        }
    }

    /// The offset the next batch gets, as far as this node knows.
    pub fn next_offset(&self) -> i64 {
        match self {
            Member::Voter(driver, _) => driver.next_offset(),
            Member::Observer(o) => o.state.borrow().position().fetch_offset,
        }
    }
}

/// A broker-only node's side of the quorum. Lives on the controller's shard.
pub struct ObserverMember {
    state: RefCell<Observer>,
    log: Rc<MetaLog>,
    /// The active controller learned from the last answer.
    leader: Cell<Option<i32>>,
    /// Its term.
    term: Cell<u64>,
}

impl ObserverMember {
    /// The observer over its opened log.
    pub async fn open(log: MetaLog, now_ms: i64) -> Result<Rc<Self>, String> {
        let state = Observer::open(&log, now_ms)
            .await
            .map_err(|e| format!("opening the metadata log as an observer: {e}"))?;
        Ok(Rc::new(ObserverMember {
            state: RefCell::new(state),
            log: Rc::new(log),
            leader: Cell::new(None),
            term: Cell::new(0),
        }))
    }
}

/// The fetch loop of the module doc, until the broker stops.
pub async fn run(
    shard: Rc<Shard>,
    controller: Rc<Controller>,
    member: Rc<ObserverMember>,
    voters: Vec<(i32, SocketAddr)>,
) {
    let t = &shard.config.cluster.timings;
    let backoff = super::ms(t.retry_backoff_ms).max(Duration::from_millis(10));
    // Kafka's observers long-poll for half the fetch timeout.
    let max_wait = super::ms(t.fetch_timeout_ms / 2).max(Duration::from_millis(10));
    let request_timeout = super::ms(t.request_timeout_ms);
    let clients: BTreeMap<i32, Rc<PeerClient>> = voters
        .iter()
        .map(|&(id, addr)| {
            let config = PeerConfig {
                client_id: format!("millrace-observer-{}", shard.config.node_id),
                request_timeout: request_timeout + max_wait,
                connect_timeout: request_timeout,
                reconnect_backoff: backoff,
                reconnect_backoff_max: (backoff * 10)
                    .clamp(Duration::from_millis(50), Duration::from_secs(1)),
                route: crate::dial::Route::Controller,
                ..PeerConfig::default()
            };
            (id, Rc::new(PeerClient::new(addr, config)))
        })
        .collect();
    let ids: Vec<i32> = clients.keys().copied().collect();
    let mut next = 0usize;
    let mut caught_up_logged = false;
    while !shard.stopping.get() && !ids.is_empty() {
        let target = match member.leader.get().filter(|l| clients.contains_key(l)) {
            Some(leader) => leader,
            None => {
                next = (next + 1) % ids.len();
                ids[next]
            }
        };
        let request = fetch_request(&shard, &controller, &member, max_wait);
        let answer = clients[&target].request(FETCH_VERSION, &request).await;
        let pause = match answer {
            Ok(response) => {
                let client = &clients[&target];
                match on_answer(&shard, &controller, &member, client, target, response).await {
                    Ok(applied) => {
                        if applied > 0 && !caught_up_logged {
                            tracing::info!(
                                offset = member.state.borrow().position().fetch_offset,
                                "observer: fetching the metadata log from the active controller"
                            );
                            caught_up_logged = true;
                        }
                        None
                    }
                    Err(Failure::Retry(why)) => {
                        tracing::debug!(controller = target, error = %why, "metadata fetch");
                        Some(backoff)
                    }
                    Err(Failure::Stop(why)) => {
                        // The view no longer follows the log: as a voter's driver stops on
                        // an apply failure, stop; the broker is fenced until it restarts.
                        tracing::error!(error = %why, "observer: the metadata log stopped");
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::debug!(controller = target, error = %e, "metadata fetch failed");
                member.leader.set(None);
                Some(backoff)
            }
        };
        if let Some(pause) = pause {
            millrace_shard::time::sleep(pause).await;
        }
    }
}

fn fetch_request(
    shard: &Shard,
    controller: &Controller,
    member: &ObserverMember,
    max_wait: Duration,
) -> FetchRequest {
    let at = member.state.borrow().position();
    let epoch = shard
        .subsystems
        .get::<super::lifecycle::Lifecycle>()
        .and_then(|l| l.epoch())
        .unwrap_or(-1);
    FetchRequest::default()
        .with_cluster_id(Some(str_bytes(&controller.current().cluster_id)))
        .with_replica_state(
            ReplicaState::default()
                .with_replica_id(BrokerId(shard.config.node_id))
                .with_replica_epoch(epoch),
        )
        .with_max_wait_ms(i32::try_from(max_wait.as_millis()).unwrap_or(i32::MAX))
        .with_min_bytes(1)
        .with_max_bytes(FETCH_MAX_BYTES as i32)
        .with_topics(vec![FetchTopic::default()
            .with_topic_id(METADATA_TOPIC_ID)
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(at.fetch_offset)
                .with_last_fetched_epoch(at.last_fetched_epoch)
                .with_partition_max_bytes(FETCH_MAX_BYTES as i32)])])
}

/// Why an answer was not applied.
enum Failure {
    /// Try again after a pause.
    Retry(String),
    /// The view could not apply what the log holds: stop fetching.
    Stop(String),
}

impl From<String> for Failure {
    fn from(why: String) -> Self {
        Failure::Retry(why)
    }
}

impl From<&str> for Failure {
    fn from(why: &str) -> Self {
        Failure::Retry(why.to_string())
    }
}

/// Applies one answer; Ok(batches applied).
async fn on_answer(
    shard: &Rc<Shard>,
    controller: &Controller,
    member: &ObserverMember,
    client: &PeerClient,
    target: i32,
    response: FetchResponse,
) -> Result<usize, Failure> {
    if response.error_code != code::NONE {
        if response.error_code == code::INCONSISTENT_CLUSTER_ID {
            tracing::error!(
                controller = target,
                "the controller belongs to another cluster (INCONSISTENT_CLUSTER_ID)"
            );
        }
        member.leader.set(None);
        return Err(format!("error {}", response.error_code).into());
    }
    let partition = response
        .responses
        .iter()
        .find(|t| t.topic_id == METADATA_TOPIC_ID)
        .and_then(|t| t.partitions.iter().find(|p| p.partition_index == 0))
        .ok_or("the answer lacks __cluster_metadata-0")?;
    let leader = partition.current_leader.leader_id.0;
    if leader >= 0 {
        member.leader.set(Some(leader));
        member
            .term
            .set(u64::try_from(partition.current_leader.leader_epoch).unwrap_or(0));
    }
    match partition.error_code {
        code::NONE => {}
        code::NOT_LEADER_OR_FOLLOWER => {
            if leader < 0 || leader == target {
                member.leader.set(None);
                return Err("no active controller yet".into());
            }
            return Ok(0);
        }
        other => {
            member.leader.set(None);
            return Err(format!("partition error {other}").into());
        }
    }
    if partition.snapshot_id.end_offset >= 0 {
        let id = SnapshotId {
            end_offset: partition.snapshot_id.end_offset,
            epoch: partition.snapshot_id.epoch,
        };
        let body = fetch_snapshot(shard, controller, client, id).await?;
        let now_ms = millrace_shard::time::now_ms();
        let snapshot = {
            let mut state = member.state.borrow().clone();
            let snapshot = state
                .on_snapshot(&member.log, id, &body, now_ms)
                .await
                .map_err(|e| format!("installing metadata snapshot {}: {e}", id.file_name()))?;
            *member.state.borrow_mut() = state;
            snapshot
        };
        controller
            .install_snapshot(shard, snapshot)
            .await
            .map_err(Failure::Stop)?;
        return Ok(1);
    }
    let now_ms = millrace_shard::time::now_ms();
    if partition.diverging_epoch.epoch >= 0 || partition.diverging_epoch.end_offset >= 0 {
        let end = partition.diverging_epoch.end_offset;
        let cut = {
            let mut state = member.state.borrow().clone();
            let cut = state
                .on_diverging(&member.log, end, now_ms)
                .await
                .map_err(|e| format!("cutting the metadata log to {end}: {e}"))?;
            *member.state.borrow_mut() = state;
            cut
        };
        tracing::warn!(
            end_offset = end,
            "the active controller's metadata log diverges from this observer's: cut"
        );
        if cut == Cut::Rebuild {
            controller
                .rebuild_from_log(shard, &member.log)
                .await
                .map_err(Failure::Stop)?;
        }
        return Ok(0);
    }
    let records = partition.records.as_deref().unwrap_or_default();
    let applied = {
        let mut state = member.state.borrow().clone();
        let applied = state
            .on_records(&member.log, records, partition.high_watermark, now_ms)
            .await
            .map_err(|e| format!("appending fetched metadata: {e}"))?;
        *member.state.borrow_mut() = state;
        applied
    };
    for batch in &applied {
        controller
            .apply(shard, batch)
            .await
            .map_err(Failure::Stop)?;
    }
    Ok(applied.len())
}

/// The active controller's side: one observer's Fetch of the metadata log.
pub struct MetadataFetch {
    /// The observer's `node.id`.
    pub replica_id: i32,
    /// Its broker epoch, -1 before it registered.
    pub replica_epoch: i64,
    /// Where its log ends.
    pub fetch_offset: i64,
    /// The term of its last batch.
    pub last_fetched_epoch: i32,
    /// How long to wait for new committed batches when there are none.
    pub max_wait: Duration,
    /// Bytes of batches to send at most (one batch always goes whole).
    pub max_bytes: usize,
}

/// The answer to a [`MetadataFetch`].
#[derive(Debug)]
pub enum FetchAnswer {
    /// Committed batches from the fetch offset (possibly none), and the high watermark.
    Records {
        /// Whole batches.
        bytes: Vec<u8>,
        /// The committed end offset.
        high_watermark: i64,
        /// The leader's term.
        term: u64,
    },
    /// The observer's log diverges (see `quorum::FetchPlan::Diverging`).
    Diverging {
        /// The term of the batch ending at `end_offset`.
        epoch: i32,
        /// Where to cut.
        end_offset: i64,
        /// The committed end offset.
        high_watermark: i64,
        /// The leader's term.
        term: u64,
    },
    /// The fetch offset is below the log start: fetch snapshot `id` (FetchSnapshot).
    Snapshot {
        /// The snapshot to fetch.
        id: SnapshotId,
        /// The log start offset.
        log_start_offset: i64,
        /// The committed end offset.
        high_watermark: i64,
        /// The leader's term.
        term: u64,
    },
    /// Not the active controller; who is, if known.
    NotLeader {
        /// The leader's `node.id`.
        leader: Option<i32>,
        /// Its term.
        term: u64,
    },
    /// The broker epoch is older than the broker's registration.
    StaleBrokerEpoch,
    /// Reading the log failed.
    Failed(String),
}

impl Call<Shard> for MetadataFetch {
    type Reply = FetchAnswer;

    async fn run(self, shard: Rc<Shard>) -> FetchAnswer {
        let Some(controller) = shard.subsystems.get::<Controller>() else {
            return FetchAnswer::NotLeader {
                leader: None,
                term: 0,
            };
        };
        let (driver, observers) = match &controller.driver {
            Member::Voter(driver, observers) => (driver.clone(), observers),
            Member::Observer(o) => {
                return FetchAnswer::NotLeader {
                    leader: o.leader.get(),
                    term: o.term.get(),
                }
            }
        };
        if self.replica_epoch >= 0 {
            let current = controller.current();
            let registered = current
                .cluster
                .broker(self.replica_id)
                .map(|b| b.broker_epoch);
            if registered.is_some_and(|epoch| epoch > self.replica_epoch) {
                return FetchAnswer::StaleBrokerEpoch;
            }
        }
        let deadline = Instant::now() + self.max_wait;
        loop {
            let seen = driver.committed().generation();
            // Read only when leading (plan_fetch answers NotLeader with its own term else).
            let term = driver.leading_term().unwrap_or(0);
            match driver.plan_fetch(self.fetch_offset, self.last_fetched_epoch) {
                FetchPlan::NotLeader { leader, term } => {
                    return FetchAnswer::NotLeader {
                        leader: leader.map(node_id_of),
                        term,
                    }
                }
                FetchPlan::Snapshot { id, high_watermark } => {
                    observers.borrow_mut().insert(
                        self.replica_id,
                        (self.fetch_offset, millrace_shard::time::now_ms(), term),
                    );
                    return FetchAnswer::Snapshot {
                        id,
                        log_start_offset: driver.log().log_start_offset(),
                        high_watermark,
                        term,
                    };
                }
                FetchPlan::Diverging {
                    epoch,
                    end_offset,
                    high_watermark,
                } => {
                    return FetchAnswer::Diverging {
                        epoch,
                        end_offset,
                        high_watermark,
                        term,
                    }
                }
                FetchPlan::Read { high_watermark } => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if high_watermark <= self.fetch_offset && !left.is_zero() {
                        // Long poll: wait for the next commit (or the deadline).
                        let commit = driver.committed().changed_since(seen);
                        millrace_shard::time::timeout(left, commit).await;
                        if shard.stopping.get() {
                            return FetchAnswer::Failed("the broker is stopping".into());
                        }
                        continue;
                    }
                    let read = quorum::read_for_fetch(
                        driver.log(),
                        self.fetch_offset,
                        high_watermark,
                        self.max_bytes,
                    )
                    .await;
                    observers.borrow_mut().insert(
                        self.replica_id,
                        (self.fetch_offset, millrace_shard::time::now_ms(), term),
                    );
                    return match read {
                        Ok(bytes) => FetchAnswer::Records {
                            bytes,
                            high_watermark,
                            term,
                        },
                        Err(e) => FetchAnswer::Failed(e.to_string()),
                    };
                }
            }
        }
    }
}

/// The active controller's side of FetchSnapshot: a chunk of one snapshot file.
pub struct ReadSnapshot {
    /// The snapshot the observer was told to fetch.
    pub id: SnapshotId,
    /// Where in its file body to start.
    pub position: i64,
    /// Bytes to send at most.
    pub max_bytes: usize,
}

/// What [`ReadSnapshot`] answers.
pub enum SnapshotChunk {
    /// `bytes` from the position on, of a body of `size` bytes.
    Chunk {
        /// The whole body's size.
        size: i64,
        /// The chunk.
        bytes: Bytes,
        /// The leader's term.
        term: u64,
    },
    /// Not the active controller; who is, if known.
    NotLeader {
        /// The leader's `node.id`.
        leader: Option<i32>,
        /// Its term.
        term: u64,
    },
    /// No such snapshot (any more): fetch again to learn the current one.
    NotFound,
    /// The position is past the body's end.
    PositionOutOfRange,
    /// Reading it failed.
    Failed(String),
}

impl Call<Shard> for ReadSnapshot {
    type Reply = SnapshotChunk;

    async fn run(self, shard: Rc<Shard>) -> SnapshotChunk {
        let driver = match shard
            .subsystems
            .get::<Controller>()
            .map(|c| c.driver.clone_voter())
        {
            Some(Ok(driver)) => driver,
            Some(Err((leader, term))) => return SnapshotChunk::NotLeader { leader, term },
            None => {
                return SnapshotChunk::NotLeader {
                    leader: None,
                    term: 0,
                }
            }
        };
        let Some(term) = driver.leading_term() else {
            let status = driver.status();
            return SnapshotChunk::NotLeader {
                leader: status.leader,
                term: status.term,
            };
        };
        // The snapshot raft-rs holds is in memory; an older one is read from its file.
        let held = driver
            .snapshot_file()
            .filter(|(point, _)| point.offset == self.id.end_offset)
            .map(|(_, body)| body);
        let body = match held {
            Some(body) => body,
            None => match driver.log().store().read_snapshot(self.id).await {
                Ok(Some(body)) => Bytes::from(body),
                Ok(None) => return SnapshotChunk::NotFound,
                Err(e) => return SnapshotChunk::Failed(e.to_string()),
            },
        };
        let size = body.len() as i64;
        if self.position < 0 || self.position > size {
            return SnapshotChunk::PositionOutOfRange;
        }
        let from = self.position as usize;
        let to = (from + self.max_bytes).min(body.len());
        SnapshotChunk::Chunk {
            size,
            bytes: body.slice(from..to),
            term,
        }
    }
}

impl Member {
    /// The voter's driver, or (an observer) the leader it knows and its term.
    fn clone_voter(&self) -> Result<Rc<Driver>, (Option<i32>, u64)> {
        match self {
            Member::Voter(driver, _) => Ok(driver.clone()),
            Member::Observer(o) => Err((o.leader.get(), o.term.get())),
        }
    }
}

/// Reads snapshot `id` whole from the active controller with FetchSnapshot, chunk by chunk.
/// Refuses a snapshot larger than a Raft message may carry (the same bound for voters and
/// observers) or chunks that do not follow each other.
async fn fetch_snapshot(
    shard: &Shard,
    controller: &Controller,
    client: &PeerClient,
    id: SnapshotId,
) -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    loop {
        let request = FetchSnapshotRequest::default()
            .with_cluster_id(Some(str_bytes(&controller.current().cluster_id)))
            .with_replica_id(BrokerId(shard.config.node_id))
            .with_max_bytes(FETCH_MAX_BYTES as i32)
            .with_topics(vec![TopicSnapshot::default()
                .with_name(TopicName(str_bytes(METADATA_TOPIC)))
                .with_partitions(vec![PartitionSnapshot::default()
                    .with_partition(0)
                    .with_snapshot_id(
                        fetch_snapshot_request::SnapshotId::default()
                            .with_end_offset(id.end_offset)
                            .with_epoch(id.epoch),
                    )
                    .with_position(body.len() as i64)])]);
        let response = client
            .request(FETCH_SNAPSHOT_VERSION, &request)
            .await
            .map_err(|e| format!("FetchSnapshot: {e}"))?;
        if response.error_code != code::NONE {
            return Err(format!("FetchSnapshot error {}", response.error_code).into());
        }
        let part = response
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.index == 0)
            .ok_or("the FetchSnapshot answer lacks partition 0")?;
        if part.error_code != code::NONE {
            return Err(format!("FetchSnapshot partition error {}", part.error_code).into());
        }
        let size = usize::try_from(part.size).unwrap_or(usize::MAX);
        if size > quorum::SNAPSHOT_BYTES_MAX {
            return Err(format!("snapshot of {} bytes is over the bound", part.size).into());
        }
        if part.position != body.len() as i64
            || body.len() + part.unaligned_records.len() > size
            || (part.unaligned_records.is_empty() && body.len() < size)
        {
            return Err("FetchSnapshot chunks do not follow each other".into());
        }
        body.extend_from_slice(&part.unaligned_records);
        if body.len() == size {
            return Ok(body);
        }
    }
}

impl Controller {
    /// Rebuilds the view from the metadata log after an observer cut batches it had applied
    /// (a foreign log: see `quorum::Observer::on_diverging`).
    async fn rebuild_from_log(&self, shard: &Rc<Shard>, log: &MetaLog) -> Result<(), String> {
        // Snapshots of what was cut would bring it back at the next start.
        let ids = log.store().snapshot_ids().map_err(|e| e.to_string())?;
        for id in ids
            .into_iter()
            .filter(|id| id.end_offset > log.durable_end())
        {
            log.store()
                .remove_snapshot(id)
                .await
                .map_err(|e| format!("removing snapshot {}: {e}", id.file_name()))?;
        }
        let (start, _) = snapshot_file::load_latest(log.store(), log.durable_end())
            .await
            .map_err(|e| e.to_string())?;
        let (cluster, _) =
            crate::metadata::boot::replay_from(log, start.map(|s| s.image), log.durable_end())
                .await?;
        let mut placement = (*self.current().placement).clone();
        placement.reconcile(&cluster, shard.shards, shard.config.node_id);
        self.publish_view(shard, cluster, placement, true).await
    }
}

fn str_bytes(s: &str) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.to_string())
}
