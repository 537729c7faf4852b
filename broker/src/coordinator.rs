//! Group coordination on the shard that owns the group's `__consumer_offsets` partition.
//!
//! A group lives on partition `abs(java_hash(group_id)) % offsets.topic.num.partitions` of
//! `__consumer_offsets`, as Kafka places it, and so on that partition's shard: its membership
//! state machine ([`crate::group::GroupCoordinator`]), its committed offsets and their log are
//! all touched only there. Committed offsets and completed rebalances are appended to that
//! partition through the normal storage path and flushed (fsync) before the request is
//! answered; at start-up each shard replays its partitions to rebuild both.
//!
//! Records in `__consumer_offsets` (our own versioned layout, key and value as record bytes):
//! ```text
//! key    = version:u8 (1) | kind:u8 (0 offset, 1 group, 2 consumer group) | group: u16 len
//!          + bytes
//!          | [offset] topic: u16 len + bytes | partition: i32
//! offset = version:u8 (1) | offset:i64 | leader_epoch:i32 | commit_timestamp:i64
//!          | metadata: i32 len (-1 null) + bytes
//! group  = GroupRecord::encode()                (classic group)
//! consumer group = ConsumerGroups::record()     (KIP-848 group: epochs, members, target)
//! a null value deletes the key (offset deleted, group deleted)
//! ```

use crate::consumer_group::{
    ConsumerGroupConfig, ConsumerGroups, GroupView, OffsetCheck, TopicInfo,
};
use crate::errors::code;
use crate::group::{
    GroupConfig, GroupCoordinator, GroupDescription, GroupRecord, HeartbeatRequest, JoinRequest,
    JoinResponse, LeaveMember, Outputs, SyncRequest, SyncResponse, Token,
};
use crate::partition::{Acks, CommitError, Reader};
use crate::shard::Shard;
use bytes::{Bytes, BytesMut};
use millrace_replication::replica::AcksRefusal;
use millrace_shard::sync::{oneshot, OneshotSender, Turn};
use millrace_storage::disk::DiskFile;
use millrace_storage::ReadChunk;
use millrace_wire::records::{decode_records, BatchBuilder, BatchIter, BatchStep, NewRecord};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Duration;

/// The internal topic holding offsets and group state.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Longest group id accepted.
pub const GROUP_ID_BYTES_MAX: usize = 1024;
/// Longest offset metadata string accepted (Kafka's `offset.metadata.max.bytes`).
pub const OFFSET_METADATA_BYTES_MAX: usize = 4096;
/// How often session timeouts and rebalance deadlines are checked.
const TICK_INTERVAL: Duration = Duration::from_millis(100);
const KEY_VERSION: u8 = 1;
const VALUE_VERSION: u8 = 1;
const KIND_OFFSET: u8 = 0;
const KIND_GROUP: u8 = 1;
const KIND_CONSUMER_GROUP: u8 = 2;
const LOAD_READ_BYTES: usize = 1 << 20;
/// How long a commit waits for its records to be replicated (Kafka's
/// `offsets.commit.timeout.ms` default) before it fails.
const OFFSETS_COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Kafka's `String.hashCode` over UTF-16 code units, wrapping.
pub fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The `__consumer_offsets` partition of a group (Kafka's `Utils.abs(hash) % partitions`).
pub fn offsets_partition(group_id: &str, partitions: usize) -> i32 {
    let h = java_hash(group_id);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1) as i32
}

/// One committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The offset.
    pub offset: i64,
    /// Leader epoch the consumer saw, or -1.
    pub leader_epoch: i32,
    /// Client metadata.
    pub metadata: Option<String>,
    /// When it was committed.
    pub commit_timestamp: i64,
}

/// A group operation, run on the group's coordinating shard (see [`OnCoordinator`]).
pub trait GroupOperation: Send + 'static {
    /// The coordinator's answer.
    type Answer: Send + 'static;
    /// Runs on the coordinating shard at `now` (ms).
    fn execute(self, shard: Rc<Shard>, now: i64)
        -> impl std::future::Future<Output = Self::Answer>;
}

/// Carries a [`GroupOperation`] to a shard over the mesh (ListGroups: to every shard).
pub struct OnCoordinator<O>(pub O);

/// Carries a [`GroupOperation`] on one group to the shard holding its offsets partition,
/// which runs it only while it coordinates that partition: Err(NOT_COORDINATOR) when this
/// broker does not lead it, Err(COORDINATOR_LOAD_IN_PROGRESS) while its groups are being read
/// back from the log.
pub struct ForGroup<O> {
    /// The group the operation is about.
    pub group_id: String,
    /// The operation.
    pub op: O,
}

impl<O: GroupOperation> crate::mesh::Call<Shard> for ForGroup<O> {
    type Reply = Result<O::Answer, i16>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        coordinating(&shard, &self.group_id)?;
        Ok(self.op.execute(shard, millrace_shard::time::now_ms()).await)
    }
}

impl<O: GroupOperation> crate::mesh::Call<Shard> for OnCoordinator<O> {
    type Reply = O::Answer;

    async fn run(self, shard: Rc<Shard>) -> O::Answer {
        self.0.execute(shard, millrace_shard::time::now_ms()).await
    }
}

/// LeaveGroup: per-member codes.
pub struct Leave {
    /// Group.
    pub group_id: String,
    /// Members leaving.
    pub members: Vec<LeaveMember>,
}

/// OffsetCommit: one code per partition.
pub struct Commit {
    /// Group.
    pub group_id: String,
    /// Request version (v9+: the member epoch of a consumer-protocol member).
    pub version: i16,
    /// Generation or member epoch (-1 for a simple consumer).
    pub generation_id: i32,
    /// Member id ("" for a simple consumer).
    pub member_id: String,
    /// Static id.
    pub group_instance_id: Option<String>,
    /// (topic, partition, offset) to commit.
    pub offsets: Vec<(String, i32, CommittedOffset)>,
}

/// OffsetFetch: the group's error and (topic, partition, offset or None, code).
pub struct FetchOffsets {
    /// Group.
    pub group_id: String,
    /// Partitions asked for; None = every partition the group has offsets for.
    pub partitions: Option<Vec<(String, i32)>>,
    /// v9+: the asking member's id and epoch, checked against a consumer group.
    pub member: Option<(String, i32)>,
}

/// ListGroups on one shard: (group, protocol type, state, group type "classic" or
/// "consumer") of the groups it coordinates.
pub struct ListGroups;

/// DescribeGroups for one group: Err for a consumer-protocol group (GROUP_ID_NOT_FOUND, as
/// Kafka).
pub struct DescribeGroup(pub String);

/// ConsumerGroupHeartbeat (KIP-848).
pub struct ConsumerHeartbeat {
    /// Request version.
    pub version: i16,
    /// The heartbeat (boxed: it is the largest group operation).
    pub request: Box<crate::consumer_group::Heartbeat>,
}

/// ConsumerGroupDescribe for one group: Err(GROUP_ID_NOT_FOUND) if not a consumer group here.
pub struct ConsumerDescribe(pub String);

/// DeleteGroups for one group: its code.
pub struct DeleteGroup(pub String);

/// OffsetDelete: the group's code and per-partition codes.
pub struct OffsetDelete {
    /// Group.
    pub group_id: String,
    /// Partitions.
    pub partitions: Vec<(String, i32)>,
}

/// One group's committed offsets by (topic, partition).
type GroupOffsets = BTreeMap<(String, i32), CommittedOffset>;

/// Per-shard group state: the state machine, waiting requests, committed offsets.
/// The groups coordinated on `shard` (created with the configured limits on first use).
pub fn groups_of(shard: &Shard) -> Rc<ShardGroups> {
    shard.subsystems.get_or_install(|| {
        let c = &shard.config;
        ShardGroups::new(
            crate::group::GroupConfig {
                min_session_timeout_ms: c.group_min_session_timeout_ms,
                max_session_timeout_ms: c.group_max_session_timeout_ms,
                initial_rebalance_delay_ms: c.group_initial_rebalance_delay_ms,
                max_size: c.group_max_size,
                ..crate::group::GroupConfig::default()
            },
            ConsumerGroupConfig {
                session_timeout_ms: c.group_consumer_session_timeout_ms,
                heartbeat_interval_ms: c.group_consumer_heartbeat_interval_ms,
                max_size: c.group_consumer_max_size,
            },
        )
    })
}

pub struct ShardGroups {
    machine: RefCell<GroupCoordinator>,
    consumer: RefCell<ConsumerGroups>,
    /// Joins and syncs waiting for their answer, with their group.
    waiting_joins: RefCell<HashMap<Token, (String, OneshotSender<JoinResponse>)>>,
    waiting_syncs: RefCell<HashMap<Token, (String, OneshotSender<SyncResponse>)>>,
    next_token: Cell<Token>,
    offsets: RefCell<HashMap<String, GroupOffsets>>,
    /// The offsets partitions of this shard this broker coordinates, by partition index.
    coordinated: RefCell<BTreeMap<i32, Coordination>>,
    /// One [`load`] at a time.
    loading: Turn,
}

/// Where a shard stands with one of its `__consumer_offsets` partitions while leading it
/// (a partition it does not lead has no entry, and none of its groups are in memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coordination {
    /// Its groups are being read back from the log (COORDINATOR_LOAD_IN_PROGRESS).
    Loading,
    /// Its groups are in memory, read under this leader epoch.
    Active(i32),
}

impl ShardGroups {
    /// Empty state with the configured limits.
    pub fn new(config: GroupConfig, consumer: ConsumerGroupConfig) -> Self {
        ShardGroups {
            machine: RefCell::new(GroupCoordinator::new(config)),
            consumer: RefCell::new(ConsumerGroups::new(consumer)),
            waiting_joins: RefCell::new(HashMap::new()),
            waiting_syncs: RefCell::new(HashMap::new()),
            next_token: Cell::new(1),
            offsets: RefCell::new(HashMap::new()),
            coordinated: RefCell::new(BTreeMap::new()),
            loading: Turn::new(),
        }
    }

    fn token(&self) -> Token {
        let t = self.next_token.get();
        self.next_token.set(t + 1);
        t
    }
}

/// The shard coordinating `group_id`, if `__consumer_offsets` exists.
pub fn coordinator_shard(image: &crate::metadata::MetadataImage, group_id: &str) -> Option<usize> {
    let topic = image.topics.get(OFFSETS_TOPIC)?;
    let p = offsets_partition(group_id, topic.partitions as usize);
    image.placement.owner(&topic.topic_id, p)
}

impl GroupOperation for JoinRequest {
    type Answer = JoinResponse;

    async fn execute(self, shard: Rc<Shard>, now: i64) -> JoinResponse {
        let groups = groups_of(&shard);
        let req = self;
        let was_consumer = groups.consumer.borrow().contains(&req.group_id);
        if !groups.consumer.borrow_mut().remove_if_empty(&req.group_id) {
            // Kafka: a classic member cannot join a live consumer-protocol group.
            return JoinResponse {
                error_code: code::INCONSISTENT_GROUP_PROTOCOL,
                generation_id: -1,
                protocol_type: None,
                protocol_name: None,
                leader: String::new(),
                member_id: req.member_id.clone(),
                members: Vec::new(),
                skip_assignment: false,
            };
        }
        if was_consumer {
            // An empty consumer group becomes a classic one: forget it durably.
            persist_consumer_groups(&shard, std::slice::from_ref(&req.group_id)).await;
        }
        let token = groups.token();
        let (tx, rx) = oneshot();
        let group_id = req.group_id.clone();
        groups
            .waiting_joins
            .borrow_mut()
            .insert(token, (group_id.clone(), tx));
        let out = groups.machine.borrow_mut().join(now, req, token);
        deliver(&shard, out).await;
        rx.await
            .unwrap_or_else(|| join_error(&group_id, code::UNKNOWN_SERVER_ERROR))
    }
}

impl GroupOperation for SyncRequest {
    type Answer = SyncResponse;

    async fn execute(self, shard: Rc<Shard>, now: i64) -> SyncResponse {
        let groups = groups_of(&shard);
        let token = groups.token();
        let (tx, rx) = oneshot();
        groups
            .waiting_syncs
            .borrow_mut()
            .insert(token, (self.group_id.clone(), tx));
        let out = groups.machine.borrow_mut().sync(now, self, token);
        deliver(&shard, out).await;
        rx.await
            .unwrap_or_else(|| sync_error(code::UNKNOWN_SERVER_ERROR))
    }
}

impl GroupOperation for HeartbeatRequest {
    type Answer = i16;

    async fn execute(self, shard: Rc<Shard>, now: i64) -> i16 {
        groups_of(&shard).machine.borrow_mut().heartbeat(now, &self)
    }
}

impl GroupOperation for Leave {
    type Answer = Vec<i16>;

    async fn execute(self, shard: Rc<Shard>, now: i64) -> Vec<i16> {
        let left = groups_of(&shard)
            .machine
            .borrow_mut()
            .leave(now, &self.group_id, &self.members);
        let (codes, out) = left;
        deliver(&shard, out).await;
        codes
    }
}

impl GroupOperation for Commit {
    type Answer = Vec<i16>;

    async fn execute(self, shard: Rc<Shard>, now: i64) -> Vec<i16> {
        let groups = groups_of(&shard);
        let consumer_check = groups.consumer.borrow().validate_commit(
            &self.group_id,
            self.version,
            &self.member_id,
            self.generation_id,
        );
        match consumer_check {
            OffsetCheck::Ok => return commit(&shard, &self.group_id, self.offsets).await,
            OffsetCheck::Refused(c) => return vec![c; self.offsets.len()],
            OffsetCheck::NotConsumerGroup => {}
        }
        let check = groups.machine.borrow_mut().validate_commit(
            now,
            &self.group_id,
            self.generation_id,
            &self.member_id,
            self.group_instance_id.as_deref(),
        );
        if check != code::NONE {
            return vec![check; self.offsets.len()];
        }
        commit(&shard, &self.group_id, self.offsets).await
    }
}

impl GroupOperation for FetchOffsets {
    type Answer = (i16, Vec<(String, i32, Option<CommittedOffset>, i16)>);

    async fn execute(self, shard: Rc<Shard>, _now: i64) -> Self::Answer {
        let (member_id, epoch) = match &self.member {
            Some((m, e)) => (Some(m.as_str()), *e),
            None => (None, -1),
        };
        let check =
            groups_of(&shard)
                .consumer
                .borrow()
                .validate_fetch(&self.group_id, member_id, epoch);
        match check {
            OffsetCheck::Refused(c) => (c, Vec::new()),
            OffsetCheck::Ok | OffsetCheck::NotConsumerGroup => {
                (code::NONE, fetch(&shard, &self.group_id, self.partitions))
            }
        }
    }
}

impl GroupOperation for ListGroups {
    type Answer = Vec<(String, String, &'static str, &'static str)>;

    async fn execute(self, shard: Rc<Shard>, _now: i64) -> Self::Answer {
        // Only the groups of the offsets partitions this shard coordinates now (Kafka's
        // ListGroups is per broker).
        let mut groups = list(&shard);
        groups.retain(|(g, ..)| coordinating(&shard, g).is_ok());
        groups
    }
}

impl GroupOperation for DescribeGroup {
    type Answer = Result<Option<GroupDescription>, i16>;

    async fn execute(self, shard: Rc<Shard>, _now: i64) -> Self::Answer {
        if groups_of(&shard).consumer.borrow().contains(&self.0) {
            return Err(code::GROUP_ID_NOT_FOUND);
        }
        Ok(describe(&shard, &self.0))
    }
}

impl GroupOperation for ConsumerHeartbeat {
    type Answer = crate::consumer_group::HeartbeatResponse;

    async fn execute(self, shard: Rc<Shard>, now: i64) -> Self::Answer {
        consumer_heartbeat(&shard, now, self.version, *self.request).await
    }
}

impl GroupOperation for ConsumerDescribe {
    type Answer = Result<GroupView, i16>;

    async fn execute(self, shard: Rc<Shard>, _now: i64) -> Self::Answer {
        let described = groups_of(&shard).consumer.borrow().describe(&self.0);
        described.ok_or(code::GROUP_ID_NOT_FOUND)
    }
}

impl GroupOperation for DeleteGroup {
    type Answer = i16;

    async fn execute(self, shard: Rc<Shard>, _now: i64) -> i16 {
        delete_group(&shard, &self.0).await
    }
}

impl GroupOperation for OffsetDelete {
    type Answer = (i16, Vec<i16>);

    async fn execute(self, shard: Rc<Shard>, _now: i64) -> Self::Answer {
        offset_delete(&shard, &self.group_id, self.partitions).await
    }
}

/// Groups with members, plus groups known only by their committed offsets (standalone
/// consumers), which Kafka lists as "Empty" classic groups.
fn list(shard: &Shard) -> Vec<(String, String, &'static str, &'static str)> {
    let mut out: Vec<(String, String, &'static str, &'static str)> = groups_of(shard)
        .consumer
        .borrow()
        .list()
        .into_iter()
        .map(|(g, state)| (g, "consumer".to_string(), state, "consumer"))
        .collect();
    for (g, protocol_type, state) in groups_of(shard).machine.borrow().list() {
        if !out.iter().any(|(o, ..)| *o == g) {
            out.push((g, protocol_type, state, "classic"));
        }
    }
    for group_id in groups_of(shard).offsets.borrow().keys() {
        if !out.iter().any(|(g, ..)| g == group_id) {
            out.push((group_id.clone(), String::new(), "Empty", "classic"));
        }
    }
    out
}

/// A KIP-848 heartbeat. A classic group with members keeps its id (GROUP_ID_NOT_FOUND, as
/// Kafka answers "not a consumer group"); an empty classic group is converted: its record is
/// deleted (durably) and the id becomes a consumer group.
async fn consumer_heartbeat(
    shard: &Rc<Shard>,
    now: i64,
    version: i16,
    request: crate::consumer_group::Heartbeat,
) -> crate::consumer_group::HeartbeatResponse {
    let group_id = request.group_id.clone();
    let classic = groups_of(shard).machine.borrow().describe(&group_id);
    if let Some(d) = classic {
        if !d.members.is_empty() {
            return crate::consumer_group::HeartbeatResponse {
                error_code: code::GROUP_ID_NOT_FOUND,
                error_message: Some(format!("Group {group_id} is not a consumer group.")),
                member_id: None,
                member_epoch: -1,
                heartbeat_interval_ms: 0,
                assignment: None,
            };
        }
        groups_of(shard).machine.borrow_mut().delete(&group_id);
        persist_groups(shard, std::slice::from_ref(&group_id)).await;
    }
    let image = shard.image();
    let lookup = |name: &str| topic_info(&image, name);
    let before = groups_of(shard).consumer.borrow().record(&group_id);
    let resp = groups_of(shard)
        .consumer
        .borrow_mut()
        .heartbeat(now, version, request, &lookup);
    if resp.error_code != code::NONE {
        tracing::debug!(group = %group_id, error = resp.error_code, message = ?resp.error_message,
            "consumer group heartbeat refused");
    }
    if groups_of(shard).consumer.borrow().record(&group_id) != before {
        // Durable before answered, as Kafka writes its group records before responding.
        persist_consumer_groups(shard, std::slice::from_ref(&group_id)).await;
    }
    resp
}

/// Appends the current record of each group (a tombstone for a group that is gone) and waits
/// for the fsync. The record is read just before the append, so the log's last record of a
/// group is always its latest state even when heartbeats interleave.
async fn persist_consumer_groups(shard: &Rc<Shard>, group_ids: &[String]) {
    let value = |g: &str| groups_of(shard).consumer.borrow().record(g);
    persist_records(shard, group_ids, consumer_group_key, &value).await;
}

/// Appends the current record of each group (`value`, None: a tombstone for a group that is
/// gone) under `key`, one append per offsets partition, and waits for each to commit. A
/// partition's records are read from memory right before its append, with no wait between,
/// so the log's last record of a group is always its latest state, and nothing read from a
/// state that was unloaded meanwhile is written (the append checks the coordination).
/// Failures are logged by the append; members learn them at their next request, answered
/// by whoever coordinates the group then.
async fn persist_records(
    shard: &Rc<Shard>,
    group_ids: &[String],
    key: fn(&str) -> Vec<u8>,
    value: &dyn Fn(&str) -> Option<Vec<u8>>,
) {
    let mut per_partition: BTreeMap<i32, Vec<&str>> = BTreeMap::new();
    for group_id in group_ids {
        per_partition
            .entry(offsets_partition_of(shard, group_id))
            .or_default()
            .push(group_id);
    }
    for (partition, ids) in per_partition {
        let records: Vec<NewRecord> = ids
            .iter()
            .map(|g| NewRecord {
                timestamp: millrace_shard::time::now_ms(),
                key: Some(key(g)),
                value: value(g),
                headers: Vec::new(),
            })
            .collect();
        let _ = append_durably(shard, partition, &records).await;
    }
}

fn topic_info(image: &crate::metadata::MetadataImage, name: &str) -> Option<TopicInfo> {
    image.topics.get(name).map(|t| TopicInfo {
        id: t.id,
        partitions: t.partitions,
    })
}

fn describe(shard: &Shard, group_id: &str) -> Option<GroupDescription> {
    let described = groups_of(shard).machine.borrow().describe(group_id);
    described.or_else(|| {
        groups_of(shard)
            .offsets
            .borrow()
            .contains_key(group_id)
            .then(|| GroupDescription {
                state: "Empty",
                protocol_type: String::new(),
                protocol_name: String::new(),
                members: Vec::new(),
            })
    })
}

fn join_error(group_id: &str, error_code: i16) -> JoinResponse {
    if error_code == code::UNKNOWN_SERVER_ERROR {
        tracing::warn!(group = %group_id, "join request dropped by the coordinator");
    }
    JoinResponse {
        error_code,
        generation_id: -1,
        protocol_type: None,
        protocol_name: None,
        leader: String::new(),
        member_id: String::new(),
        members: Vec::new(),
        skip_assignment: false,
    }
}

fn sync_error(error_code: i16) -> SyncResponse {
    SyncResponse {
        error_code,
        protocol_type: None,
        protocol_name: None,
        assignment: Bytes::new(),
    }
}

/// Persists the groups whose durable record changed, then hands out the responses that
/// became ready. Responses wait for the write, so a member never acts on state a crash could
/// take back.
async fn deliver(shard: &Rc<Shard>, out: Outputs) {
    if !out.changed_groups.is_empty() {
        persist_groups(shard, &out.changed_groups).await;
    }
    let groups = groups_of(shard);
    for (token, resp) in out.joins {
        if let Some((_, tx)) = groups.waiting_joins.borrow_mut().remove(&token) {
            tx.send(resp);
        }
    }
    for (token, resp) in out.syncs {
        if let Some((_, tx)) = groups.waiting_syncs.borrow_mut().remove(&token) {
            tx.send(resp);
        }
    }
}

async fn persist_groups(shard: &Rc<Shard>, group_ids: &[String]) {
    let value = |g: &str| {
        let record = groups_of(shard).machine.borrow().record(g);
        record.map(|r| r.encode())
    };
    persist_records(shard, group_ids, group_key, &value).await;
}

fn offsets_partition_of(shard: &Shard, group_id: &str) -> i32 {
    let n = shard
        .image()
        .topics
        .get(OFFSETS_TOPIC)
        .map_or(1, |t| t.partitions as usize);
    offsets_partition(group_id, n)
}

/// Appends records to this shard's `__consumer_offsets` partition and waits until they are
/// committed (covered by the high watermark), as a produce with acks=all would. Err is the
/// code the group API answers, as Kafka maps its append errors: NOT_COORDINATOR when the
/// partition's leadership moved, COORDINATOR_NOT_AVAILABLE when too few replicas are in sync
/// or the write did not commit in time, UNKNOWN_SERVER_ERROR for a storage failure.
async fn append_durably(
    shard: &Rc<Shard>,
    partition: i32,
    records: &[NewRecord],
) -> Result<(), i16> {
    let fail = |error: i16, why: &dyn std::fmt::Display| {
        tracing::warn!(
            partition,
            error,
            "writing {OFFSETS_TOPIC}-{partition}: {why}"
        );
        error
    };
    let Some(offsets) = shard.partition(OFFSETS_TOPIC, partition) else {
        return Err(fail(code::NOT_COORDINATOR, &"not on this shard"));
    };
    if !offsets.is_leader() {
        // A follower's log is the leader's copy: only the leader writes it.
        return Err(fail(code::NOT_COORDINATOR, &"not led by this broker"));
    }
    let epoch = offsets.leader_epoch();
    let loaded = groups_of(shard)
        .coordinated
        .borrow()
        .get(&partition)
        .copied();
    if loaded != Some(Coordination::Active(epoch.0)) {
        // Records computed from groups that were unloaded (or not yet read back) under this
        // epoch must not reach the log.
        return Err(fail(
            code::NOT_COORDINATOR,
            &"its groups are not loaded under the current leader epoch",
        ));
    }
    if offsets.check_acks_all().is_err() {
        // Nothing is written that could not be acknowledged (Kafka checks the same before
        // appending group records).
        return Err(fail(
            code::COORDINATOR_NOT_AVAILABLE,
            &"fewer in-sync replicas than min.insync.replicas",
        ));
    }
    let batch = BatchBuilder::default().build(records);
    let now = millrace_shard::time::now_ms();
    let appended = offsets
        .append(BytesMut::from(&batch[..]), now, false)
        .map_err(|e| fail(code::UNKNOWN_SERVER_ERROR, &e))?;
    let committed = offsets
        .committed(
            appended.last_offset,
            epoch,
            Acks::All,
            OFFSETS_COMMIT_TIMEOUT,
        )
        .await;
    committed.map_err(|e| {
        let error = match &e {
            CommitError::Refused(AcksRefusal::NotLeader) => code::NOT_COORDINATOR,
            CommitError::Storage(_) => code::UNKNOWN_SERVER_ERROR,
            CommitError::Refused(_) | CommitError::TimedOut => code::COORDINATOR_NOT_AVAILABLE,
        };
        fail(error, &e)
    })
}

async fn commit(
    shard: &Rc<Shard>,
    group_id: &str,
    offsets: Vec<(String, i32, CommittedOffset)>,
) -> Vec<i16> {
    let image = shard.image();
    let mut codes = Vec::with_capacity(offsets.len());
    let mut records = Vec::new();
    let mut accepted = Vec::new();
    for (topic, partition, committed) in offsets {
        let exists = image
            .topics
            .get(&topic)
            .is_some_and(|t| partition >= 0 && partition < t.partitions);
        let too_big = committed
            .metadata
            .as_ref()
            .is_some_and(|m| m.len() > OFFSET_METADATA_BYTES_MAX);
        codes.push(if !exists {
            code::UNKNOWN_TOPIC_OR_PARTITION
        } else if too_big {
            code::OFFSET_METADATA_TOO_LARGE
        } else {
            records.push(NewRecord {
                timestamp: committed.commit_timestamp,
                key: Some(offset_key(group_id, &topic, partition)),
                value: Some(offset_value(&committed)),
                headers: Vec::new(),
            });
            accepted.push((codes.len(), topic, partition, committed));
            code::NONE
        });
    }
    if records.is_empty() {
        return codes;
    }
    if let Err(error) = append_durably(shard, offsets_partition_of(shard, group_id), &records).await
    {
        for (i, ..) in &accepted {
            codes[*i] = error;
        }
        return codes;
    }
    let groups = groups_of(shard);
    let mut all = groups.offsets.borrow_mut();
    let group = all.entry(group_id.to_string()).or_default();
    for (_, topic, partition, committed) in accepted {
        group.insert((topic, partition), committed);
    }
    codes
}

fn fetch(
    shard: &Shard,
    group_id: &str,
    partitions: Option<Vec<(String, i32)>>,
) -> Vec<(String, i32, Option<CommittedOffset>, i16)> {
    let groups = groups_of(shard);
    let all = groups.offsets.borrow();
    let group = all.get(group_id);
    match partitions {
        Some(list) => list
            .into_iter()
            .map(|(t, p)| {
                let found = group.and_then(|g| g.get(&(t.clone(), p)).cloned());
                (t, p, found, code::NONE)
            })
            .collect(),
        None => group
            .map(|g| {
                g.iter()
                    .map(|((t, p), o)| (t.clone(), *p, Some(o.clone()), code::NONE))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

async fn delete_group(shard: &Rc<Shard>, group_id: &str) -> i16 {
    let was_consumer = groups_of(shard).consumer.borrow().contains(group_id);
    if was_consumer {
        if !groups_of(shard)
            .consumer
            .borrow_mut()
            .remove_if_empty(group_id)
        {
            return code::NON_EMPTY_GROUP;
        }
        // An empty consumer group exists even without offsets: deleting it succeeds.
        groups_of(shard)
            .offsets
            .borrow_mut()
            .entry(group_id.to_string())
            .or_default();
    }
    let has_offsets = groups_of(shard).offsets.borrow().contains_key(group_id);
    let state_code = groups_of(shard).machine.borrow_mut().delete(group_id);
    if state_code == code::NON_EMPTY_GROUP
        || (state_code == code::GROUP_ID_NOT_FOUND && !has_offsets)
    {
        return state_code;
    }
    let keys: Vec<(String, i32)> = groups_of(shard)
        .offsets
        .borrow()
        .get(group_id)
        .map(|g| g.keys().cloned().collect())
        .unwrap_or_default();
    let mut records: Vec<NewRecord> = keys
        .iter()
        .map(|(t, p)| tombstone(offset_key(group_id, t, *p)))
        .collect();
    records.push(tombstone(group_key(group_id)));
    if was_consumer {
        records.push(tombstone(consumer_group_key(group_id)));
    }
    if let Err(error) = append_durably(shard, offsets_partition_of(shard, group_id), &records).await
    {
        return error;
    }
    groups_of(shard).offsets.borrow_mut().remove(group_id);
    code::NONE
}

async fn offset_delete(
    shard: &Rc<Shard>,
    group_id: &str,
    partitions: Vec<(String, i32)>,
) -> (i16, Vec<i16>) {
    if groups_of(shard).consumer.borrow().has_members(group_id) {
        // As for live classic consumer groups below: refused for every partition.
        return (
            code::NONE,
            vec![code::GROUP_SUBSCRIBED_TO_TOPIC; partitions.len()],
        );
    }
    if let Some(d) = groups_of(shard).machine.borrow().describe(group_id) {
        if !d.members.is_empty() && d.protocol_type == "consumer" {
            // Kafka refuses to delete offsets of topics a live consumer group subscribes to;
            // without parsing subscriptions we refuse for any live consumer group.
            return (
                code::NONE,
                vec![code::GROUP_SUBSCRIBED_TO_TOPIC; partitions.len()],
            );
        }
    }
    if !groups_of(shard).offsets.borrow().contains_key(group_id) {
        return (code::GROUP_ID_NOT_FOUND, Vec::new());
    }
    let records: Vec<NewRecord> = partitions
        .iter()
        .map(|(t, p)| tombstone(offset_key(group_id, t, *p)))
        .collect();
    if !records.is_empty() {
        let partition = offsets_partition_of(shard, group_id);
        if let Err(error) = append_durably(shard, partition, &records).await {
            return (error, Vec::new());
        }
    }
    if let Some(g) = groups_of(shard).offsets.borrow_mut().get_mut(group_id) {
        for key in &partitions {
            g.remove(key);
        }
    }
    (code::NONE, vec![code::NONE; partitions.len()])
}

fn tombstone(key: Vec<u8>) -> NewRecord {
    NewRecord {
        timestamp: millrace_shard::time::now_ms(),
        key: Some(key),
        value: None,
        headers: Vec::new(),
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn group_key(group_id: &str) -> Vec<u8> {
    let mut k = vec![KEY_VERSION, KIND_GROUP];
    put_str(&mut k, group_id);
    k
}

fn consumer_group_key(group_id: &str) -> Vec<u8> {
    let mut k = vec![KEY_VERSION, KIND_CONSUMER_GROUP];
    put_str(&mut k, group_id);
    k
}

fn offset_key(group_id: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut k = vec![KEY_VERSION, KIND_OFFSET];
    put_str(&mut k, group_id);
    put_str(&mut k, topic);
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

fn offset_value(o: &CommittedOffset) -> Vec<u8> {
    let mut v = vec![VALUE_VERSION];
    v.extend_from_slice(&o.offset.to_be_bytes());
    v.extend_from_slice(&o.leader_epoch.to_be_bytes());
    v.extend_from_slice(&o.commit_timestamp.to_be_bytes());
    match &o.metadata {
        None => v.extend_from_slice(&(-1i32).to_be_bytes()),
        Some(m) => {
            v.extend_from_slice(&(m.len() as i32).to_be_bytes());
            v.extend_from_slice(m.as_bytes());
        }
    }
    v
}

/// A decoded `__consumer_offsets` key.
#[derive(Debug, PartialEq, Eq)]
enum Key {
    Offset(String, String, i32),
    Group(String),
    ConsumerGroup(String),
}

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn str(&mut self) -> Option<String> {
        let len = u16::from_be_bytes(self.take(2)?.try_into().ok()?) as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
}

fn decode_key(bytes: &[u8]) -> Option<Key> {
    let mut c = Cursor(bytes);
    if c.u8()? != KEY_VERSION {
        return None;
    }
    let key = match c.u8()? {
        KIND_OFFSET => Key::Offset(c.str()?, c.str()?, c.i32()?),
        KIND_GROUP => Key::Group(c.str()?),
        KIND_CONSUMER_GROUP => Key::ConsumerGroup(c.str()?),
        _ => return None,
    };
    c.0.is_empty().then_some(key)
}

fn decode_offset_value(bytes: &[u8]) -> Option<CommittedOffset> {
    let mut c = Cursor(bytes);
    if c.u8()? != VALUE_VERSION {
        return None;
    }
    let offset = c.i64()?;
    let leader_epoch = c.i32()?;
    let commit_timestamp = c.i64()?;
    let len = c.i32()?;
    let metadata = match len {
        -1 => None,
        n if n >= 0 => Some(String::from_utf8(c.take(n as usize)?.to_vec()).ok()?),
        _ => return None,
    };
    c.0.is_empty().then_some(CommittedOffset {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
    })
}

/// Brings the groups in memory in line with the `__consumer_offsets` partitions this shard
/// leads, as Kafka's coordinator loads and unloads with partition leadership: the groups of a
/// partition it now leads (or leads under a new leader epoch: its log may have changed
/// meanwhile) are read back from the log, those of a partition it no longer leads are
/// forgotten. Runs at start-up before clients are served, then after every image
/// ([`watch`]); one run at a time per shard.
pub async fn load(shard: &Rc<Shard>) -> std::io::Result<()> {
    let groups = groups_of(shard);
    let _turn = groups.loading.lock().await;
    loop {
        let leading: BTreeMap<i32, (Rc<crate::shard::Partition>, i32)> = shard
            .partitions()
            .into_iter()
            .filter(|p| p.topic() == OFFSETS_TOPIC && p.is_leader())
            .map(|p| (p.index(), (p.clone(), p.leader_epoch().0)))
            .collect();
        let stale: Vec<i32> = groups
            .coordinated
            .borrow()
            .iter()
            .filter(|(p, c)| leading.get(p).map(|(_, e)| Coordination::Active(*e)) != Some(**c))
            .map(|(p, _)| *p)
            .collect();
        for p in stale {
            unload(shard, p);
        }
        let todo: Vec<(i32, Rc<crate::shard::Partition>, i32)> = leading
            .into_iter()
            .filter(|(p, _)| !groups.coordinated.borrow().contains_key(p))
            .map(|(p, (partition, epoch))| (p, partition, epoch))
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        for (p, partition, epoch) in todo {
            // Whatever an operation that was in flight at the last unload left in memory goes
            // before the log is read back.
            unload(shard, p);
            groups
                .coordinated
                .borrow_mut()
                .insert(p, Coordination::Loading);
            if let Err(e) = load_partition(shard, &partition).await {
                unload(shard, p);
                return Err(e);
            }
            if partition.is_leader() && partition.leader_epoch().0 == epoch {
                groups
                    .coordinated
                    .borrow_mut()
                    .insert(p, Coordination::Active(epoch));
            } else {
                // Leadership moved while reading: the next round forgets or reloads it.
                unload(shard, p);
            }
        }
    }
}

/// Re-runs [`load`] after every image this shard applies, until the broker stops.
pub async fn watch(shard: Rc<Shard>) {
    while !shard.stopping.get() {
        let seen = shard.metadata_applied.generation();
        if let Err(e) = load(&shard).await {
            tracing::error!(shard = shard.id, error = %e, "loading consumer groups; retrying");
            millrace_shard::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let changed = shard.metadata_applied.changed_since(seen);
        let _ = millrace_shard::time::timeout(Duration::from_millis(500), changed).await;
    }
}

/// Whether this shard serves `group_id` now: Err(NOT_COORDINATOR) when this broker does not
/// lead its offsets partition, Err(COORDINATOR_LOAD_IN_PROGRESS) while it leads it but has not
/// read its groups back under the current leader epoch.
fn coordinating(shard: &Shard, group_id: &str) -> Result<(), i16> {
    let p = offsets_partition_of(shard, group_id);
    let Some(partition) = shard
        .partition(OFFSETS_TOPIC, p)
        .filter(|partition| partition.is_leader())
    else {
        return Err(code::NOT_COORDINATOR);
    };
    let epoch = partition.leader_epoch().0;
    match groups_of(shard).coordinated.borrow().get(&p) {
        Some(Coordination::Active(e)) if *e == epoch => Ok(()),
        _ => Err(code::COORDINATOR_LOAD_IN_PROGRESS),
    }
}

/// Forgets the groups of offsets partition `p` (their state is the new leader's now) and
/// answers their waiting joins and syncs with NOT_COORDINATOR, so their members find the new
/// coordinator.
fn unload(shard: &Shard, p: i32) {
    let groups = groups_of(shard);
    let was = groups.coordinated.borrow_mut().remove(&p);
    let n = shard
        .image()
        .topics
        .get(OFFSETS_TOPIC)
        .map_or(1, |t| t.partitions as usize);
    let theirs = |g: &str| offsets_partition(g, n) == p;
    let classic = groups.machine.borrow_mut().unload(&theirs);
    let consumer = groups.consumer.borrow_mut().unload(&theirs);
    groups.offsets.borrow_mut().retain(|g, _| !theirs(g));
    let joins: Vec<(String, OneshotSender<JoinResponse>)> = {
        let mut waiting = groups.waiting_joins.borrow_mut();
        let tokens: Vec<Token> = waiting
            .iter()
            .filter(|(_, (g, _))| theirs(g))
            .map(|(t, _)| *t)
            .collect();
        tokens.iter().filter_map(|t| waiting.remove(t)).collect()
    };
    for (g, tx) in joins {
        tx.send(join_error(&g, code::NOT_COORDINATOR));
    }
    let syncs: Vec<OneshotSender<SyncResponse>> = {
        let mut waiting = groups.waiting_syncs.borrow_mut();
        let tokens: Vec<Token> = waiting
            .iter()
            .filter(|(_, (g, _))| theirs(g))
            .map(|(t, _)| *t)
            .collect();
        tokens
            .iter()
            .filter_map(|t| waiting.remove(t))
            .map(|(_, tx)| tx)
            .collect()
    };
    for tx in syncs {
        tx.send(sync_error(code::NOT_COORDINATOR));
    }
    if was.is_some() {
        tracing::info!(
            shard = shard.id,
            partition = p,
            classic,
            consumer,
            "no longer coordinating the groups of {OFFSETS_TOPIC}-{p}"
        );
    }
}

/// Reads the groups of one offsets partition back from its log, to its log end: everything
/// a new leader holds becomes committed once its followers catch up (they truncate to it),
/// as Kafka's coordinator loads to the log end.
async fn load_partition(
    shard: &Rc<Shard>,
    offsets: &Rc<crate::shard::Partition>,
) -> std::io::Result<()> {
    let now = millrace_shard::time::now_ms();
    let partition = offsets.index();
    let (mut offsets_loaded, mut groups_loaded) = (0usize, 0usize);
    let mut next = offsets.log_start_offset();
    let end = offsets.log_end_offset();
    while next < end {
        let read = offsets.read(next, LOAD_READ_BYTES, true, Reader::Replica);
        let (read, _) = read.await.map_err(|e| {
            std::io::Error::other(format!("reading {OFFSETS_TOPIC}-{partition}: {e}"))
        })?;
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
                let Ok(records) = decode_records(bytes, LOAD_READ_BYTES * 64) else {
                    tracing::warn!(
                        partition,
                        offset = header.base_offset,
                        "undecodable batch in {OFFSETS_TOPIC}"
                    );
                    continue;
                };
                for r in records {
                    match apply_record(shard, now, r.key.as_deref(), r.value.as_deref()) {
                        Some(Key::Offset(..)) => offsets_loaded += 1,
                        Some(Key::Group(_) | Key::ConsumerGroup(_)) => groups_loaded += 1,
                        None => {}
                    }
                }
            }
        }
    }
    tracing::info!(
        shard = shard.id,
        partition,
        epoch = offsets.leader_epoch().0,
        offsets_loaded,
        groups_loaded,
        "coordinating the groups of {OFFSETS_TOPIC}-{partition}"
    );
    Ok(())
}

fn apply_record(shard: &Shard, now: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Option<Key> {
    let key = decode_key(key?)?;
    match (&key, value) {
        (Key::Offset(g, t, p), Some(v)) => {
            let o = decode_offset_value(v)?;
            groups_of(shard)
                .offsets
                .borrow_mut()
                .entry(g.clone())
                .or_default()
                .insert((t.clone(), *p), o);
        }
        (Key::Offset(g, t, p), None) => {
            if let Some(group) = groups_of(shard).offsets.borrow_mut().get_mut(g) {
                group.remove(&(t.clone(), *p));
            }
        }
        (Key::Group(_), Some(v)) => {
            let record = GroupRecord::decode(v)?;
            groups_of(shard).machine.borrow_mut().restore(now, record);
        }
        (Key::Group(g), None) => {
            groups_of(shard).machine.borrow_mut().delete(g);
            groups_of(shard).offsets.borrow_mut().remove(g);
        }
        (Key::ConsumerGroup(g), Some(v)) => {
            if !groups_of(shard).consumer.borrow_mut().restore(now, v) {
                tracing::warn!(group = %g, "undecodable consumer group record in {OFFSETS_TOPIC}");
                return None;
            }
        }
        (Key::ConsumerGroup(g), None) => groups_of(shard).consumer.borrow_mut().forget(g),
    }
    Some(key)
}

/// Checks session timeouts and rebalance deadlines until the broker stops.
pub async fn tick_loop(shard: Rc<Shard>) {
    while !shard.stopping.get() {
        millrace_shard::time::sleep(TICK_INTERVAL).await;
        let now = millrace_shard::time::now_ms();
        let due = groups_of(&shard)
            .machine
            .borrow()
            .next_deadline_ms()
            .is_some_and(|d| d <= now);
        if due {
            let out = groups_of(&shard).machine.borrow_mut().tick(now);
            deliver(&shard, out).await;
        }
        let consumer_due = groups_of(&shard)
            .consumer
            .borrow()
            .next_deadline_ms()
            .is_some_and(|d| d <= now);
        if consumer_due {
            let image = shard.image();
            let lookup = |name: &str| topic_info(&image, name);
            let changed = groups_of(&shard).consumer.borrow_mut().tick(now, &lookup);
            persist_consumer_groups(&shard, &changed).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_placement_matches_kafka() {
        // Values printed by Java 17's jshell for String.hashCode and Kafka's placement formula.
        assert_eq!(java_hash(""), 0);
        assert_eq!(java_hash("my-group"), -1_906_497_762);
        assert_eq!(java_hash("orders-consumers"), 1_307_682_389);
        assert_eq!(offsets_partition("orders-consumers", 50), 39);
        for g in ["", "a", "my-group", "orders-consumers", "\u{e9}t\u{e9}"] {
            let p = offsets_partition(g, 50);
            assert!((0..50).contains(&p));
        }
    }

    #[test]
    fn keys_and_values_round_trip_and_reject_garbage() {
        let k = offset_key("g", "t", 7);
        assert_eq!(decode_key(&k), Some(Key::Offset("g".into(), "t".into(), 7)));
        assert_eq!(decode_key(&group_key("g")), Some(Key::Group("g".into())));
        assert_eq!(
            decode_key(&consumer_group_key("g")),
            Some(Key::ConsumerGroup("g".into()))
        );
        let o = CommittedOffset {
            offset: 42,
            leader_epoch: 3,
            metadata: Some("m".into()),
            commit_timestamp: 9,
        };
        assert_eq!(decode_offset_value(&offset_value(&o)), Some(o.clone()));
        for cut in 0..k.len() {
            assert_eq!(decode_key(&k[..cut]), None);
        }
        let v = offset_value(&o);
        for cut in 0..v.len() {
            assert_eq!(decode_offset_value(&v[..cut]), None);
        }
        assert_eq!(decode_key(&[9, 9, 9]), None);
    }
}
