//! The share coordinator (KIP-932): share partitions' delivery state, kept durably in
//! `__share_group_state` and served by the leader of the state partition a share partition
//! maps to, as Kafka's share coordinator does.
//!
//! Placement: share partition (group, topic id, partition) lives on partition
//! `abs(java_hash("group:topicId:partition")) % share.coordinator.state.topic.num.partitions`,
//! the topic id written as Kafka's `Uuid.toString` (URL-safe base64 of its 16 bytes, no
//! padding) ([`state_partition`]). The broker leading that partition is the share partition's
//! coordinator, and inside it the shard holding the partition. The partitions are hosted by
//! `crate::state_log`, as the group and transaction coordinators': read back when this broker
//! starts leading them, forgotten when it stops.
//!
//! Records are Kafka's, byte for byte (`crate::share::record`): a ShareSnapshot holds a share
//! partition's whole state, a ShareUpdate the batches one write changed, applied over the state
//! before it; a tombstone (ShareSnapshot key, no value) deletes it. A write is a snapshot when
//! it is the first, when its state epoch is newer than the stored one, or after
//! `share.coordinator.snapshot.update.records.per.snapshot` updates (the snapshot epoch counts
//! them); otherwise an update ([`machine::States::plan_write`]). The topic is not compacted
//! (an update needs every record before it), as in Kafka.
//!
//! ```text
//! share-partition leader (any shard, any broker)
//!   read / write / delete / initialize / summary
//!     ├─ this broker leads the state partition ─ mesh call ─► owning shard
//!     └─ another broker leads it ─ Read/Write/Delete/InitializeShareGroupState, ReadShareGroup-
//!                                  StateSummary (keys 83-87, v0) ─► its handler ─► owning shard
//! owning shard: check (load, fencing, topic) ─ plan the record ─ append (acks=all, fsync)
//!   ─ apply it to memory as soon as it is in the local log ─ answer once it is committed
//! ```
//!
//! A record is applied to memory when it reaches the local log, before its commit, in log
//! order, so the next request of the same share partition plans over it (two writes in flight
//! merge as their records replay) and memory always equals what a load of the local log would
//! build. A write is answered only once committed; one that fails after its local append leaves
//! the record in the log (it may still commit, and a leadership change reloads the partition
//! from whatever the log then holds), as a timed-out produce does.
//!
//! Errors: the state topic missing: COORDINATOR_NOT_AVAILABLE, and the topic is created
//! (through the controller, once per shard at a time); a state partition led elsewhere:
//! NOT_COORDINATOR; not read back yet: COORDINATOR_LOAD_IN_PROGRESS; a leader epoch below the
//! stored one: FENCED_LEADER_EPOCH; a state epoch below it: FENCED_STATE_EPOCH; a topic or
//! partition the image does not have: UNKNOWN_TOPIC_OR_PARTITION; a negative partition or
//! epoch, an empty group id, batches that are not ranges: INVALID_REQUEST. [`read`], [`write`],
//! [`initialize`], [`summary`] and [`delete`] retry NOT_COORDINATOR,
//! COORDINATOR_LOAD_IN_PROGRESS and COORDINATOR_NOT_AVAILABLE themselves for up to
//! [`RETRY_BUDGET`] (the topic being created, its leaders elected, the image or the load
//! catching up), then return them: Kafka's persister retries the same three the same way, so a
//! request that arrives while the state topic is still being made waits for it instead of
//! failing (AlterShareGroupOffsets as a group's first share-state request did, under load).
//!
//! Lives on every shard: [`ShardShareStates`] in the shard's subsystem slots.

mod machine;
mod remote;
#[cfg(test)]
mod tests;

pub use crate::metadata::SHARE_STATE_TOPIC;

use crate::errors::code;
use crate::mesh::{Call, Split};
use crate::peer::{PeerConfig, PeerPool};
use crate::shard::Shard;
use crate::share::record::{decode_key, SNAPSHOT_KEY_VERSION};
use crate::share::record::{encode_key, ShareStateKey, StateBatch, StateRecord};
use crate::state_log::{Host, Replayed, StateMachine};
use base64::Engine;
use millrace_wire::records::NewRecord;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

/// How long a write waits for its record to be replicated (Kafka's
/// `share.coordinator.write.timeout.ms` default).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request answered NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS or
/// COORDINATOR_NOT_AVAILABLE is tried again before that answer is returned: long enough for
/// `__share_group_state`'s 50 partitions to be created and led on a busy host.
pub const RETRY_BUDGET: Duration = Duration::from_secs(10);
/// Pause before the first retry; doubles for each further one, up to [`RETRY_BACKOFF_MAX`].
const RETRY_BACKOFF: Duration = Duration::from_millis(50);
/// Longest pause between two attempts.
const RETRY_BACKOFF_MAX: Duration = Duration::from_millis(500);
/// Most state batches one write may carry: far beyond what a share-partition leader writes
/// (its window is at most `group.share.max.partition.max.record.locks`, 10,000 records, so as
/// many runs). A state is not refused for its size (that would wedge its share partition);
/// it holds what its writers' windows hold.
pub const STATE_BATCHES_MAX: usize = 65_536;

/// One share partition's state as stored: the merged result of its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistedState {
    /// Bumped when the state is reset (InitializeShareGroupState, AlterShareGroupOffsets).
    pub state_epoch: i32,
    /// The highest leader epoch of the topic-partition a read or write came with.
    pub leader_epoch: i32,
    /// The share-partition start offset; -1 when initialized without one.
    pub start_offset: i64,
    /// Ascending, disjoint, none below `start_offset`.
    pub batches: Vec<StateBatch>,
}

/// A write of a share partition's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateWriteRequest {
    /// The state epoch the writer works under.
    pub state_epoch: i32,
    /// The writer's leader epoch of the topic-partition.
    pub leader_epoch: i32,
    /// The new share-partition start offset; -1: unchanged.
    pub start_offset: i64,
    /// Batches whose state changed; they replace what they overlap.
    pub batches: Vec<StateBatch>,
}

/// What ReadShareGroupStateSummary tells of a share partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateSummary {
    /// Its state epoch (0 when never initialized).
    pub state_epoch: i32,
    /// Its leader epoch (0 when never initialized).
    pub leader_epoch: i32,
    /// Its start offset (-1 when never initialized or initialized without one).
    pub start_offset: i64,
}

impl StateSummary {
    /// Kafka's answer for a share partition with no state.
    pub const NONE: StateSummary = StateSummary {
        state_epoch: 0,
        leader_epoch: 0,
        start_offset: -1,
    };

    /// The summary of `state` (None: no state).
    pub fn of(state: Option<&PersistedState>) -> Self {
        state.map_or(Self::NONE, |s| StateSummary {
            state_epoch: s.state_epoch,
            leader_epoch: s.leader_epoch,
            start_offset: s.start_offset,
        })
    }
}

/// Kafka's coordinator key of a share partition: `groupId:topicId:partition`, the topic id in
/// `Uuid.toString` form (URL-safe base64, no padding).
pub fn coordinator_key(key: &ShareStateKey) -> String {
    let topic = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.topic_id.as_bytes());
    format!("{}:{topic}:{}", key.group_id, key.partition)
}

/// A coordinator key back into its share partition, as Kafka parses it (the group id is
/// everything before the last two `:`, and must not be blank); None if it is not one.
pub fn parse_coordinator_key(s: &str) -> Option<ShareStateKey> {
    let mut parts = s.rsplitn(3, ':');
    let partition = parts.next()?.parse::<i32>().ok()?;
    let topic = parts.next()?;
    let group_id = parts.next()?;
    if group_id.trim().is_empty() || topic.len() > 24 {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(topic)
        .ok()?;
    let topic_id = uuid::Uuid::from_slice(&bytes).ok()?;
    Some(ShareStateKey {
        group_id: group_id.to_string(),
        topic_id,
        partition,
    })
}

/// The `__share_group_state` partition of a share partition (of `partitions`), as Kafka's
/// `ShareCoordinatorService.partitionFor`: `Utils.abs(key.hashCode()) % partitions`.
pub fn state_partition(key: &ShareStateKey, partitions: usize) -> i32 {
    crate::coordinator::offsets_partition(&coordinator_key(key), partitions)
}

/// Reads a share partition's state as its leader under `leader_epoch` (at least 0): Ok(None)
/// when it was never initialized (nor written). A leader epoch newer than the stored one is
/// recorded first, so an older leader is fenced from then on.
pub async fn read(
    shard: &Rc<Shard>,
    key: &ShareStateKey,
    leader_epoch: i32,
) -> Result<Option<PersistedState>, i16> {
    let op = StateOp::Read { leader_epoch };
    check(key, &op)?;
    with_retries(shard, key, op).await
}

/// Writes a share partition's state; Ok only once the record is committed (acks=all on the
/// state partition). A share partition with no state yet starts with this write (Kafka
/// requires an InitializeShareGroupState first).
pub async fn write(
    shard: &Rc<Shard>,
    key: &ShareStateKey,
    req: StateWriteRequest,
) -> Result<(), i16> {
    let op = StateOp::Write(req);
    check(key, &op)?;
    with_retries(shard, key, op).await.map(|_| ())
}

/// Deletes the states of `keys` (tombstones), for DeleteGroups and DeleteShareGroupOffsets.
/// A key with no state is done already, also when its topic is gone. The first error, if any.
pub async fn delete(shard: &Rc<Shard>, keys: &[ShareStateKey]) -> Result<(), i16> {
    for key in keys {
        check(key, &StateOp::Delete)?;
    }
    let deletes = keys.iter().map(|key| {
        let (shard, key) = (shard.clone(), key.clone());
        async move { with_retries(&shard, &key, StateOp::Delete).await }
    });
    for result in crate::mesh::join_all(deletes.collect()).await {
        match result {
            Ok(_) | Err(code::UNKNOWN_TOPIC_OR_PARTITION) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Starts (or resets) a share partition's state under `state_epoch` with `start_offset` (-1:
/// none yet) and no batches; FENCED_STATE_EPOCH below the stored state epoch.
pub async fn initialize(
    shard: &Rc<Shard>,
    key: &ShareStateKey,
    state_epoch: i32,
    start_offset: i64,
) -> Result<(), i16> {
    let op = StateOp::Initialize {
        state_epoch,
        start_offset,
    };
    check(key, &op)?;
    with_retries(shard, key, op).await.map(|_| ())
}

/// A share partition's epochs and start offset, without fencing anyone
/// ([`StateSummary::NONE`] when it has no state).
pub async fn summary(shard: &Rc<Shard>, key: &ShareStateKey) -> Result<StateSummary, i16> {
    check(key, &StateOp::Summary)?;
    let state = with_retries(shard, key, StateOp::Summary).await?;
    Ok(StateSummary::of(state.as_ref()))
}

/// What one request does to one share partition's state on its coordinating shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateOp {
    /// ReadShareGroupState: the state (None: uninitialized), recording a newer leader epoch.
    Read {
        /// The reader's leader epoch.
        leader_epoch: i32,
    },
    /// WriteShareGroupState.
    Write(StateWriteRequest),
    /// InitializeShareGroupState.
    Initialize {
        /// The state epoch to start.
        state_epoch: i32,
        /// The start offset, -1 for none.
        start_offset: i64,
    },
    /// DeleteShareGroupState.
    Delete,
    /// ReadShareGroupStateSummary: the state (None: uninitialized), fencing no one.
    Summary,
}

/// One op's answer: the state for Read and Summary (None: there is none), None otherwise.
pub type OpResult = Result<Option<PersistedState>, i16>;

/// Kafka's INVALID_REQUEST checks of one op: an empty (or unencodable) group id, a negative
/// partition, leader epoch or state epoch, a start offset below -1, batches that are not
/// ranges or too many of them.
pub fn check(key: &ShareStateKey, op: &StateOp) -> Result<(), i16> {
    let group_ok = !key.group_id.is_empty() && key.group_id.len() <= i16::MAX as usize;
    if !group_ok || key.partition < 0 {
        return Err(code::INVALID_REQUEST);
    }
    let ok = match op {
        StateOp::Read { leader_epoch } => *leader_epoch >= 0,
        StateOp::Write(w) => {
            w.leader_epoch >= 0
                && w.state_epoch >= 0
                && w.start_offset >= -1
                && w.batches.len() <= STATE_BATCHES_MAX
                && w.batches.iter().all(|b| {
                    0 <= b.first_offset
                        && b.first_offset <= b.last_offset
                        && b.last_offset < i64::MAX
                })
        }
        StateOp::Initialize {
            state_epoch,
            start_offset,
        } => *state_epoch >= 0 && *start_offset >= -1,
        StateOp::Delete | StateOp::Summary => true,
    };
    if ok {
        Ok(())
    } else {
        Err(code::INVALID_REQUEST)
    }
}

/// Runs `op` where `key`'s state partition is led, retrying NOT_COORDINATOR,
/// COORDINATOR_LOAD_IN_PROGRESS and COORDINATOR_NOT_AVAILABLE for up to [`RETRY_BUDGET`] (a
/// write retried after an unknown outcome writes the same batches again, which merges to the
/// same state).
async fn with_retries(shard: &Rc<Shard>, key: &ShareStateKey, op: StateOp) -> OpResult {
    let give_up = millrace_shard::time::Instant::now() + RETRY_BUDGET;
    let mut backoff = RETRY_BACKOFF;
    loop {
        let result = route(shard, key, op.clone()).await;
        let retriable = matches!(
            result,
            Err(code::NOT_COORDINATOR
                | code::COORDINATOR_LOAD_IN_PROGRESS
                | code::COORDINATOR_NOT_AVAILABLE)
        );
        let now = millrace_shard::time::Instant::now();
        if !retriable || now + backoff > give_up || shard.stopping.get() {
            return result;
        }
        millrace_shard::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
    }
}

/// One attempt: through the mesh when this broker leads the state partition, else to the
/// broker that does.
async fn route(shard: &Rc<Shard>, key: &ShareStateKey, op: StateOp) -> OpResult {
    let image = shard.image();
    let Some(topic) = image.topics.get(SHARE_STATE_TOPIC) else {
        ensure_topic(shard);
        return Err(code::COORDINATOR_NOT_AVAILABLE);
    };
    let p = state_partition(key, topic.partitions as usize);
    let leader = image
        .cluster
        .partition(&topic.topic_id, p)
        .map_or(-1, |s| s.leader);
    if leader < 0 {
        return Err(code::COORDINATOR_NOT_AVAILABLE);
    }
    if leader != shard.config.node_id {
        return remote::send(shard, leader, key, op).await;
    }
    let Some(owner) = image.placement.owner(&topic.topic_id, p) else {
        return Err(code::COORDINATOR_LOAD_IN_PROGRESS);
    };
    let call = StateOps {
        items: vec![(0, (key.clone(), op))],
    };
    match shard.call(owner, call).await {
        Ok(mut answers) => answers
            .pop()
            .map_or(Err(code::UNKNOWN_SERVER_ERROR), |(_, r)| r),
        Err(_) => Err(code::COORDINATOR_NOT_AVAILABLE),
    }
}

/// The handlers' side: runs each op on this broker's shard coordinating its share partition,
/// one call per shard. An op failing [`check`] is INVALID_REQUEST; a share partition another
/// broker coordinates NOT_COORDINATOR; all are COORDINATOR_NOT_AVAILABLE (and the topic is
/// created) while `__share_group_state` does not exist.
pub async fn on_this_broker(
    shard: &Rc<Shard>,
    items: Vec<(ShareStateKey, StateOp)>,
) -> Vec<OpResult> {
    let mut results: Vec<OpResult> = items
        .iter()
        .map(|(key, op)| check(key, op).and(Err(code::NOT_COORDINATOR)))
        .collect();
    let image = shard.image();
    let Some(topic) = image.topics.get(SHARE_STATE_TOPIC) else {
        ensure_topic(shard);
        for r in results
            .iter_mut()
            .filter(|r| *r == &Err(code::NOT_COORDINATOR))
        {
            *r = Err(code::COORDINATOR_NOT_AVAILABLE);
        }
        return results;
    };
    let mut split = Split::default();
    for (slot, (key, op)) in items.into_iter().enumerate() {
        if results[slot] != Err(code::NOT_COORDINATOR) {
            continue;
        }
        let p = state_partition(&key, topic.partitions as usize);
        let leads = image
            .cluster
            .partition(&topic.topic_id, p)
            .is_some_and(|s| s.leader == shard.config.node_id);
        match image.placement.owner(&topic.topic_id, p) {
            Some(owner) if leads => split.push(owner, slot, (key, op)),
            _ => {}
        }
    }
    let unavailable = || Err(code::COORDINATOR_NOT_AVAILABLE);
    split
        .fan_out(shard, &mut results, |items| StateOps { items }, unavailable)
        .await;
    results
}

/// Asks the controller for `__share_group_state` unless a request of this shard is already
/// on its way; returns at once.
pub fn ensure_topic(shard: &Rc<Shard>) {
    let states = states_of(shard);
    if states.ensuring.replace(true) {
        return;
    }
    let shard = shard.clone();
    millrace_shard::spawn_detached(async move {
        let target = Shard::controller_shard();
        let made = shard
            .call(target, crate::controller::EnsureShareStateTopic)
            .await;
        states.ensuring.set(false);
        match made {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "creating {SHARE_STATE_TOPIC}"),
            Err(_) => tracing::debug!("creating {SHARE_STATE_TOPIC}: controller shard stopping"),
        }
    });
}

/// Ops for share partitions the target shard coordinates, run concurrently (their writes
/// share group commits), answered by slot.
pub struct StateOps {
    /// (slot, (share partition, op)).
    pub items: Vec<(usize, (ShareStateKey, StateOp))>,
}

impl Call<Shard> for StateOps {
    type Reply = Vec<(usize, OpResult)>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let ops = self.items.into_iter().map(|(slot, (key, op))| {
            let shard = shard.clone();
            async move { (slot, run_op(&shard, &key, op).await) }
        });
        crate::mesh::join_all(ops.collect()).await
    }
}

/// One op on the shard coordinating `key`'s state partition. Checks in Kafka's order: loaded,
/// (a read:) initialized, fencing, the topic-partition known.
async fn run_op(shard: &Rc<Shard>, key: &ShareStateKey, op: StateOp) -> OpResult {
    let states = states_of(shard);
    let image = shard.image();
    let topic = image
        .topics
        .get(SHARE_STATE_TOPIC)
        .ok_or(code::COORDINATOR_NOT_AVAILABLE)?;
    let p = state_partition(key, topic.partitions as usize);
    states.host.serving(shard, SHARE_STATE_TOPIC, p)?;
    let known = image
        .topic_by_id(&key.topic_id)
        .is_some_and(|t| key.partition < t.partitions);
    let per_snapshot = shard
        .config
        .group
        .share_snapshot_update_records_per_snapshot
        .max(0) as u32;
    let now = millrace_shard::time::now_ms();
    let record = {
        let machine = states.machine.borrow();
        let exists = machine.get(key).is_some();
        match &op {
            StateOp::Read { leader_epoch } => match machine.get(key) {
                None => return Ok(None),
                Some(s) if s.leader_epoch > *leader_epoch => return Err(code::FENCED_LEADER_EPOCH),
                Some(_) if !known => return Err(code::UNKNOWN_TOPIC_OR_PARTITION),
                Some(_) => machine.plan_leader_epoch(key, *leader_epoch, per_snapshot, now),
            },
            StateOp::Write(w) => {
                let record = machine.plan_write(key, w, per_snapshot, now)?;
                Some(record).filter(|_| known)
            }
            StateOp::Initialize {
                state_epoch,
                start_offset,
            } => {
                let record = machine.plan_initialize(key, *state_epoch, *start_offset, now)?;
                Some(record).filter(|_| known)
            }
            // A share partition whose topic is gone may still be deleted (Kafka drops such
            // state when the topic is deleted; here DeleteGroups does).
            StateOp::Delete if !exists && !known => return Err(code::UNKNOWN_TOPIC_OR_PARTITION),
            StateOp::Delete | StateOp::Summary => None,
        }
    };
    let needs_topic = matches!(
        op,
        StateOp::Write(_) | StateOp::Initialize { .. } | StateOp::Summary
    );
    if needs_topic && !known {
        return Err(code::UNKNOWN_TOPIC_OR_PARTITION);
    }
    match op {
        StateOp::Read { .. } | StateOp::Summary => {
            if let Some(record) = record {
                append(shard, &states, p, key, Some(record)).await?;
            }
            Ok(states.machine.borrow().get(key).cloned())
        }
        StateOp::Write(_) | StateOp::Initialize { .. } => {
            append(shard, &states, p, key, record).await?;
            Ok(None)
        }
        StateOp::Delete => {
            if states.machine.borrow().get(key).is_some() {
                append(shard, &states, p, key, None).await?;
            }
            Ok(None)
        }
    }
}

/// Appends `record` of `key` (None: a tombstone) to state partition `p`, applies it to memory
/// as soon as it is in the local log and waits for its commit.
async fn append(
    shard: &Rc<Shard>,
    states: &ShardShareStates,
    p: i32,
    key: &ShareStateKey,
    record: Option<StateRecord>,
) -> Result<(), i16> {
    let version = record
        .as_ref()
        .map_or(SNAPSHOT_KEY_VERSION, StateRecord::key_version);
    let key_bytes = encode_key(version, key).map_err(|_| code::INVALID_REQUEST)?;
    let new = NewRecord {
        timestamp: millrace_shard::time::now_ms(),
        key: Some(key_bytes),
        value: record.as_ref().map(StateRecord::encode_value),
        headers: Vec::new(),
    };
    let apply = |_first: i64| {
        let mut machine = states.machine.borrow_mut();
        match &record {
            Some(r) => machine.apply(p, key, r),
            None => {
                machine.remove(key);
            }
        }
    };
    let place = (SHARE_STATE_TOPIC, p);
    states
        .host
        .append_then(shard, place, &[new], WRITE_TIMEOUT, apply)
        .await
        .map(|_| ())
}

/// The share coordinator's state on one shard.
pub struct ShardShareStates {
    host: Host,
    machine: RefCell<machine::States>,
    /// Clients of other brokers' listeners, for state partitions they lead.
    peers: PeerPool,
    /// A request for `__share_group_state` is on its way to the controller.
    ensuring: Cell<bool>,
}

/// The share coordinator state of `shard` (installed on first use).
fn states_of(shard: &Shard) -> Rc<ShardShareStates> {
    shard.subsystems.get_or_install(|| ShardShareStates {
        host: Host::default(),
        machine: RefCell::new(machine::States::default()),
        peers: PeerPool::new(PeerConfig {
            client_id: format!("millrace-share-state-{}", shard.config.node_id),
            request_timeout: WRITE_TIMEOUT + Duration::from_secs(1),
            route: crate::dial::Route::InterBroker,
            ..PeerConfig::default()
        }),
        ensuring: Cell::new(false),
    })
}

impl StateMachine for ShardShareStates {
    fn topic(&self) -> &'static str {
        SHARE_STATE_TOPIC
    }

    fn what(&self) -> &'static str {
        "share-group state"
    }

    fn replay(&self, partition: i32, _now: i64, record: Replayed<'_>) -> bool {
        let Some(Ok((version, key))) = record.key.map(decode_key) else {
            return false;
        };
        let mut machine = self.machine.borrow_mut();
        match record.value {
            None => {
                machine.remove(&key);
                true
            }
            Some(value) => match StateRecord::decode_value(version, value) {
                Ok(r) => {
                    machine.apply(partition, &key, &r);
                    true
                }
                Err(_) => false,
            },
        }
    }

    fn unload(&self, partition: i32, _partitions: usize) -> usize {
        self.machine.borrow_mut().unload(partition)
    }
}

/// Reads back the `__share_group_state` partitions this shard leads (and forgets those it no
/// longer leads).
pub async fn load(shard: &Rc<Shard>) -> std::io::Result<()> {
    let states = states_of(shard);
    states.host.load(shard, &*states).await
}

/// Loads at start-up, then again after every image, until the broker stops.
pub async fn watch(shard: Rc<Shard>) {
    let again = shard.clone();
    crate::state_log::watch(shard, "share-group state", async || load(&again).await).await;
}
