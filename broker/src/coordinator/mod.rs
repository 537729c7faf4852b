//! Group coordination on the shard that owns the group's `__consumer_offsets` partition.
//!
//! A group lives on partition `abs(java_hash(group_id)) % offsets.topic.num.partitions` of
//! `__consumer_offsets`, as Kafka places it, and so on that partition's shard: its membership
//! state machine ([`crate::group::GroupCoordinator`]), its committed offsets and their log are
//! all touched only there. Committed offsets and completed rebalances are appended to that
//! partition through the normal storage path and flushed (fsync) before the request is
//! answered. The partitions are served by `crate::state_log`: a shard reads a partition's
//! groups back when it starts leading it and forgets them when it stops.
//!
//! Records in `__consumer_offsets` (our own versioned layout, key and value as record bytes):
//! ```text
//! key    = version:u8 (1) | kind:u8 (0 offset, 1 group, 2 consumer group, 3 share group)
//!          | group: u16 len
//!          + bytes
//!          | [offset] topic: u16 len + bytes | partition: i32
//! offset = version:u8 (1) | offset:i64 | leader_epoch:i32 | commit_timestamp:i64
//!          | metadata: i32 len (-1 null) + bytes
//! group  = GroupRecord::encode()                (classic group)
//! consumer group = ConsumerGroups::record()     (KIP-848 group: epochs, members, target)
//! share group = ShareGroups::record()           (KIP-932 group: epochs, members, target)
//! a null value deletes the key (offset deleted, group deleted)
//! ```
//! Offsets a transaction commits (TxnOffsetCommit) are the same records in a transactional
//! batch of the producer, settled by its marker: see [`txn_offsets`].

use crate::consumer_group::{
    ConsumerGroupConfig, ConsumerGroups, GroupView, OffsetCheck, TopicInfo, TopicView,
};
use crate::errors::code;
use crate::group::{
    GroupConfig, GroupCoordinator, GroupDescription, GroupRecord, HeartbeatRequest, JoinRequest,
    JoinResponse, LeaveMember, Outputs, SyncRequest, SyncResponse, Token,
};
use crate::shard::Shard;
use crate::share_group::ShareGroups;
use bytes::Bytes;
use millrace_security::acl::{AclOperation, ResourceType};
use millrace_shard::sync::{oneshot, Notify, OneshotSender};
use millrace_wire::records::NewRecord;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Duration;

mod share_groups;
mod txn_offsets;
pub use share_groups::{ShareDescribe, ShareHeartbeatOp, ShareInitialize, ShareUninitialize};
pub use txn_offsets::{on_marker, TxnCommit};

/// The internal topic holding offsets and group state.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Longest group id accepted.
pub const GROUP_ID_BYTES_MAX: usize = 1024;
/// Longest offset metadata string accepted (Kafka's `offset.metadata.max.bytes`).
pub const OFFSET_METADATA_BYTES_MAX: usize = 4096;
/// The shortest time between two ticks of a shard's groups.
const MIN_TICK_GAP: Duration = Duration::from_millis(10);
const KEY_VERSION: u8 = 1;
const VALUE_VERSION: u8 = 1;
const KIND_OFFSET: u8 = 0;
const KIND_GROUP: u8 = 1;
const KIND_CONSUMER_GROUP: u8 = 2;
const KIND_SHARE_GROUP: u8 = 3;
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
    /// v7+: a partition with a transactional commit pending answers UNSTABLE_OFFSET_COMMIT
    /// instead of its last committed offset.
    pub require_stable: bool,
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

/// A committed offset with the log offset of the record that carries it (when a transaction
/// commits, its offsets replace only those written before them: Kafka's rule).
#[derive(Debug, Clone)]
struct Held {
    offset: CommittedOffset,
    record: i64,
}

/// One group's committed offsets by (topic, partition).
type GroupOffsets = BTreeMap<(String, i32), Held>;

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
                session_timeout_ms: c.group.consumer_session_timeout_ms,
                heartbeat_interval_ms: c.group.consumer_heartbeat_interval_ms,
                max_size: c.group_consumer_max_size,
                regex_refresh_min_interval_ms: c.group_consumer_regex_refresh_min_interval_ms,
            },
            crate::share_group::ShareGroupConfig {
                session_timeout_ms: c.group.share_session_timeout_ms,
                heartbeat_interval_ms: c.group.share_heartbeat_interval_ms,
                max_size: c.group.share_max_size as usize,
            },
        )
    })
}

pub struct ShardGroups {
    machine: Watched<GroupCoordinator>,
    consumer: Watched<ConsumerGroups>,
    share: Watched<ShareGroups>,
    /// Fires on every mutable borrow of the three state machines: their deadlines may have
    /// moved, so the tick loop looks again.
    changed: Rc<Notify>,
    /// Joins and syncs waiting for their answer, with their group.
    waiting_joins: RefCell<HashMap<Token, (String, OneshotSender<JoinResponse>)>>,
    waiting_syncs: RefCell<HashMap<Token, (String, OneshotSender<SyncResponse>)>>,
    next_token: Cell<Token>,
    offsets: RefCell<HashMap<String, GroupOffsets>>,
    /// Transactional offset commits waiting for their producer's marker.
    pending: RefCell<txn_offsets::Pending>,
    /// Which offsets partitions of this shard are loaded, under which leader epoch.
    host: crate::state_log::Host,
}

impl ShardGroups {
    /// Empty state with the configured limits.
    pub fn new(
        config: GroupConfig,
        consumer: ConsumerGroupConfig,
        share: crate::share_group::ShareGroupConfig,
    ) -> Self {
        let changed = Rc::new(Notify::new());
        ShardGroups {
            machine: Watched::new(GroupCoordinator::new(config), &changed),
            consumer: Watched::new(ConsumerGroups::new(consumer), &changed),
            share: Watched::new(ShareGroups::new(share), &changed),
            changed,
            waiting_joins: RefCell::new(HashMap::new()),
            waiting_syncs: RefCell::new(HashMap::new()),
            next_token: Cell::new(1),
            offsets: RefCell::new(HashMap::new()),
            pending: RefCell::new(txn_offsets::Pending::default()),
            host: crate::state_log::Host::default(),
        }
    }

    fn token(&self) -> Token {
        let t = self.next_token.get();
        self.next_token.set(t + 1);
        t
    }
}

/// A group state machine whose every mutable borrow fires a shared [`Notify`]. Whatever can
/// move a deadline (a join, a heartbeat, a load, an unload, a tick) borrows mutably, so the
/// tick loop can sleep until the earliest deadline, or with none until something changes,
/// instead of waking every 100 ms on an idle broker.
struct Watched<T> {
    cell: RefCell<T>,
    changed: Rc<Notify>,
}

impl<T> Watched<T> {
    fn new(value: T, changed: &Rc<Notify>) -> Self {
        Self {
            cell: RefCell::new(value),
            changed: changed.clone(),
        }
    }

    fn borrow(&self) -> std::cell::Ref<'_, T> {
        self.cell.borrow()
    }

    fn borrow_mut(&self) -> std::cell::RefMut<'_, T> {
        // Waiters run only once this task yields, after the mutation.
        self.changed.notify_all();
        self.cell.borrow_mut()
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
        let is_share = groups.share.borrow().contains(&req.group_id);
        if is_share || !groups.consumer.borrow_mut().remove_if_empty(&req.group_id) {
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
                let groups = groups_of(&shard);
                let rows = fetch_rows(
                    &groups,
                    &self.group_id,
                    self.partitions,
                    self.require_stable,
                );
                (code::NONE, rows)
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
        let groups = groups_of(&shard);
        if groups.consumer.borrow().contains(&self.0) || groups.share.borrow().contains(&self.0) {
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
    let share = groups_of(shard).share.borrow().list();
    out.extend(
        share
            .into_iter()
            .map(|(g, state)| (g, "share".to_string(), state, "share")),
    );
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

/// One group this shard coordinates, for the metrics: its state, members and committed
/// offsets.
#[derive(Debug, Clone)]
pub struct GroupStat {
    /// Group id.
    pub group_id: String,
    /// State as ListGroups names it.
    pub state: &'static str,
    /// "classic", "consumer" or "share".
    pub group_type: &'static str,
    /// Members now.
    pub members: usize,
    /// Committed offsets: (topic, partition, offset).
    pub offsets: Vec<(String, i32, i64)>,
}

/// The groups this shard coordinates now (those of offsets partitions it serves).
pub fn group_stats(shard: &Shard) -> Vec<GroupStat> {
    let groups = groups_of(shard);
    let mut out = Vec::new();
    for (group_id, _, state, group_type) in list(shard) {
        if coordinating(shard, &group_id).is_err() {
            continue;
        }
        let members = if group_type == "consumer" {
            groups.consumer.borrow().member_count(&group_id)
        } else if group_type == "share" {
            groups
                .share
                .borrow()
                .describe(&group_id)
                .map_or(0, |d| d.members.len())
        } else {
            groups
                .machine
                .borrow()
                .describe(&group_id)
                .map_or(0, |d| d.members.len())
        };
        let offsets = groups
            .offsets
            .borrow()
            .get(&group_id)
            .map(|held| {
                held.iter()
                    .map(|((t, p), h)| (t.clone(), *p, h.offset.offset))
                    .collect()
            })
            .unwrap_or_default();
        out.push(GroupStat {
            group_id,
            state,
            group_type,
            members,
            offsets,
        });
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
    let not_ours = || {
        crate::consumer_group::HeartbeatResponse::error(
            code::GROUP_ID_NOT_FOUND,
            format!("Group {group_id} is not a consumer group."),
        )
    };
    if groups_of(shard).share.borrow().contains(&group_id) {
        return not_ours();
    }
    let classic = groups_of(shard).machine.borrow().describe(&group_id);
    if let Some(d) = classic {
        if !d.members.is_empty() {
            return not_ours();
        }
        groups_of(shard).machine.borrow_mut().delete(&group_id);
        persist_groups(shard, std::slice::from_ref(&group_id)).await;
    }
    let image = shard.image();
    let before = groups_of(shard).consumer.borrow().record(&group_id);
    let resp = groups_of(shard).consumer.borrow_mut().heartbeat(
        now,
        version,
        request,
        &ImageTopics::new(shard, &image),
    );
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

/// The metadata image as the consumer groups see it, with the shard's authorizer (if one is
/// configured) and its generation for regex subscriptions.
struct ImageTopics<'a>(
    &'a crate::metadata::MetadataImage,
    Option<(Rc<millrace_security::acl::Authorizer>, u64)>,
);

impl<'a> ImageTopics<'a> {
    fn new(shard: &Shard, image: &'a crate::metadata::MetadataImage) -> Self {
        ImageTopics(image, crate::acls::authorizer_with_generation(shard))
    }
}

impl TopicView for ImageTopics<'_> {
    fn topic(&self, name: &str) -> Option<TopicInfo> {
        self.0.topics.get(name).map(|t| TopicInfo {
            id: t.id,
            partitions: t.partitions,
        })
    }

    fn for_each_name(&self, f: &mut dyn FnMut(&str)) {
        for name in self.0.topics.keys() {
            f(name);
        }
    }

    fn version(&self) -> u64 {
        self.0.version
    }

    fn may_describe(&self, principal: &str, host: &str, topic: &str) -> bool {
        let Some((authorizer, _)) = &self.1 else {
            return true;
        };
        let host = host.trim_start_matches('/');
        authorizer.authorize(
            principal,
            host,
            AclOperation::Describe,
            ResourceType::Topic,
            topic,
        )
    }

    fn access_version(&self) -> u64 {
        self.1.as_ref().map_or(0, |(_, generation)| *generation)
    }
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
/// committed, as [`crate::state_log::Host::append`] does (Err: the code the group API
/// answers).
async fn append_durably(
    shard: &Rc<Shard>,
    partition: i32,
    records: &[NewRecord],
) -> Result<i64, i16> {
    let place = (OFFSETS_TOPIC, partition);
    let groups = groups_of(shard);
    groups
        .host
        .append(shard, place, records, OFFSETS_COMMIT_TIMEOUT)
        .await
}

/// Offsets of a commit sorted into the answer's codes (UNKNOWN_TOPIC_OR_PARTITION,
/// OFFSET_METADATA_TOO_LARGE, or NONE for those to write), the records to write, and the
/// accepted ones with their place in `codes`.
struct Checked {
    codes: Vec<i16>,
    records: Vec<NewRecord>,
    accepted: Vec<(usize, String, i32, CommittedOffset)>,
}

fn check_offsets(
    shard: &Shard,
    group_id: &str,
    offsets: Vec<(String, i32, CommittedOffset)>,
) -> Checked {
    let image = shard.image();
    let mut out = Checked {
        codes: Vec::with_capacity(offsets.len()),
        records: Vec::new(),
        accepted: Vec::new(),
    };
    for (topic, partition, committed) in offsets {
        let exists = image
            .topics
            .get(&topic)
            .is_some_and(|t| partition >= 0 && partition < t.partitions);
        let too_big = committed
            .metadata
            .as_ref()
            .is_some_and(|m| m.len() > OFFSET_METADATA_BYTES_MAX);
        out.codes.push(if !exists {
            code::UNKNOWN_TOPIC_OR_PARTITION
        } else if too_big {
            code::OFFSET_METADATA_TOO_LARGE
        } else {
            out.records.push(NewRecord {
                timestamp: committed.commit_timestamp,
                key: Some(offset_key(group_id, &topic, partition)),
                value: Some(offset_value(&committed)),
                headers: Vec::new(),
            });
            out.accepted
                .push((out.codes.len(), topic, partition, committed));
            code::NONE
        });
    }
    out
}

async fn commit(
    shard: &Rc<Shard>,
    group_id: &str,
    offsets: Vec<(String, i32, CommittedOffset)>,
) -> Vec<i16> {
    let Checked {
        mut codes,
        records,
        accepted,
    } = check_offsets(shard, group_id, offsets);
    if records.is_empty() {
        return codes;
    }
    let first = match append_durably(shard, offsets_partition_of(shard, group_id), &records).await {
        Ok(first) => first,
        Err(error) => {
            for (i, ..) in &accepted {
                codes[*i] = error;
            }
            return codes;
        }
    };
    let groups = groups_of(shard);
    let mut all = groups.offsets.borrow_mut();
    let group = all.entry(group_id.to_string()).or_default();
    for (record, (_, topic, partition, offset)) in (first..).zip(accepted) {
        group.insert((topic, partition), Held { offset, record });
    }
    codes
}

/// OffsetFetch rows for `group_id` (`require_stable`: a partition with a transactional commit
/// pending answers UNSTABLE_OFFSET_COMMIT and no offset).
fn fetch_rows(
    groups: &ShardGroups,
    group_id: &str,
    partitions: Option<Vec<(String, i32)>>,
    require_stable: bool,
) -> Vec<(String, i32, Option<CommittedOffset>, i16)> {
    let all = groups.offsets.borrow();
    let group = all.get(group_id);
    let mut rows: Vec<_> = match partitions {
        Some(list) => list
            .into_iter()
            .map(|(t, p)| {
                let found = group.and_then(|g| g.get(&(t.clone(), p)).map(|h| h.offset.clone()));
                (t, p, found, code::NONE)
            })
            .collect(),
        None => group
            .map(|g| {
                g.iter()
                    .map(|((t, p), h)| (t.clone(), *p, Some(h.offset.clone()), code::NONE))
                    .collect()
            })
            .unwrap_or_default(),
    };
    if require_stable {
        let pending = groups.pending.borrow();
        for (topic, partition, offset, error) in &mut rows {
            if pending.holds(group_id, topic, *partition) {
                *offset = None;
                *error = code::UNSTABLE_OFFSET_COMMIT;
            }
        }
    }
    rows
}

async fn delete_group(shard: &Rc<Shard>, group_id: &str) -> i16 {
    if groups_of(shard).share.borrow().contains(group_id) {
        return share_groups::delete(shard, group_id).await;
    }
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
    groups_of(shard).pending.borrow_mut().forget_group(group_id);
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
    let groups = groups_of(shard);
    let mut pending = groups.pending.borrow_mut();
    for (topic, partition) in &partitions {
        pending.forget(group_id, topic, *partition);
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

fn share_group_key(group_id: &str) -> Vec<u8> {
    let mut k = vec![KEY_VERSION, KIND_SHARE_GROUP];
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
    ShareGroup(String),
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
        KIND_SHARE_GROUP => Key::ShareGroup(c.str()?),
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
/// leads ([`crate::state_log::Host::load`]): runs at start-up before clients are served, then
/// after every image ([`watch`]).
pub async fn load(shard: &Rc<Shard>) -> std::io::Result<()> {
    let groups = groups_of(shard);
    groups.host.load(shard, &*groups).await
}

/// Re-runs [`load`] after every image this shard applies, until the broker stops.
pub async fn watch(shard: Rc<Shard>) {
    let again = shard.clone();
    crate::state_log::watch(shard, "consumer groups", async || load(&again).await).await;
}

/// Whether this shard serves `group_id` now: Err(NOT_COORDINATOR) when this broker does not
/// lead its offsets partition, Err(COORDINATOR_LOAD_IN_PROGRESS) while it leads it but has not
/// read its groups back under the current leader epoch.
fn coordinating(shard: &Shard, group_id: &str) -> Result<(), i16> {
    let p = offsets_partition_of(shard, group_id);
    groups_of(shard).host.serving(shard, OFFSETS_TOPIC, p)
}

/// Removes and returns the waiting requests of the groups `theirs` names.
fn drain_where<T>(
    waiting: &RefCell<HashMap<Token, (String, T)>>,
    theirs: &dyn Fn(&str) -> bool,
) -> Vec<(String, T)> {
    let mut waiting = waiting.borrow_mut();
    let tokens: Vec<Token> = waiting
        .iter()
        .filter(|(_, (g, _))| theirs(g))
        .map(|(t, _)| *t)
        .collect();
    tokens.iter().filter_map(|t| waiting.remove(t)).collect()
}

impl crate::state_log::StateMachine for ShardGroups {
    fn topic(&self) -> &'static str {
        OFFSETS_TOPIC
    }

    fn what(&self) -> &'static str {
        "groups"
    }

    fn replay(&self, partition: i32, now: i64, record: crate::state_log::Replayed<'_>) -> bool {
        if record.transactional {
            return self.hold_record(partition, &record);
        }
        self.apply_record(now, record.offset, record.key, record.value)
            .is_some()
    }

    fn replay_marker(&self, partition: i32, producer_id: i64, commit: bool) {
        self.complete_txn(partition, producer_id, commit);
    }

    /// Forgets the groups of offsets partition `p` (their state is the new leader's now) and
    /// answers their waiting joins and syncs with NOT_COORDINATOR, so their members find the
    /// new coordinator.
    fn unload(&self, p: i32, partitions: usize) -> usize {
        let theirs = |g: &str| offsets_partition(g, partitions) == p;
        let classic = self.machine.borrow_mut().unload(&theirs);
        let consumer = self.consumer.borrow_mut().unload(&theirs);
        let share = self.share.borrow_mut().unload(&theirs);
        self.offsets.borrow_mut().retain(|g, _| !theirs(g));
        self.pending.borrow_mut().unload(p);
        for (g, tx) in drain_where(&self.waiting_joins, &theirs) {
            tx.send(join_error(&g, code::NOT_COORDINATOR));
        }
        let syncs = drain_where(&self.waiting_syncs, &theirs);
        for (_, tx) in syncs {
            tx.send(sync_error(code::NOT_COORDINATOR));
        }
        classic + consumer + share
    }
}

impl ShardGroups {
    /// Applies one record of `__consumer_offsets` read back from the log (at offset
    /// `record`), outside any transaction.
    fn apply_record(
        &self,
        now: i64,
        record: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Option<Key> {
        let key = decode_key(key?)?;
        match (&key, value) {
            (Key::Offset(g, t, p), Some(v)) => {
                let offset = decode_offset_value(v)?;
                self.offsets
                    .borrow_mut()
                    .entry(g.clone())
                    .or_default()
                    .insert((t.clone(), *p), Held { offset, record });
            }
            (Key::Offset(g, t, p), None) => {
                if let Some(group) = self.offsets.borrow_mut().get_mut(g) {
                    group.remove(&(t.clone(), *p));
                }
                // A deleted offset takes any transactional commit pending for it along.
                self.pending.borrow_mut().forget(g, t, *p);
            }
            (Key::Group(_), Some(v)) => {
                let record = GroupRecord::decode(v)?;
                self.machine.borrow_mut().restore(now, record);
            }
            (Key::Group(g), None) => {
                self.machine.borrow_mut().delete(g);
                self.offsets.borrow_mut().remove(g);
                self.pending.borrow_mut().forget_group(g);
            }
            (Key::ConsumerGroup(g), Some(v)) => {
                if !self.consumer.borrow_mut().restore(now, v) {
                    tracing::warn!(group = %g, "undecodable consumer group record in {OFFSETS_TOPIC}");
                    return None;
                }
            }
            (Key::ConsumerGroup(g), None) => self.consumer.borrow_mut().forget(g),
            (Key::ShareGroup(g), Some(v)) => {
                if !self.share.borrow_mut().restore(now, v) {
                    tracing::warn!(group = %g, "undecodable share group record in {OFFSETS_TOPIC}");
                    return None;
                }
            }
            (Key::ShareGroup(g), None) => self.share.borrow_mut().forget(g),
        }
        Some(key)
    }
}

/// Checks session timeouts and rebalance deadlines until the broker stops. It sleeps until the
/// earliest deadline of the three state machines; with none (no groups, or only empty ones) it
/// sleeps until one of them changes. Ticks are at least [`MIN_TICK_GAP`] apart, so a deadline
/// that a tick cannot clear yet is retried at that pace, not in a spin.
pub async fn tick_loop(shard: Rc<Shard>) {
    let groups = groups_of(&shard);
    while !shard.stopping.get() {
        let now = millrace_shard::time::now_ms();
        let due = groups
            .machine
            .borrow()
            .next_deadline_ms()
            .is_some_and(|d| d <= now);
        if due {
            let out = groups.machine.borrow_mut().tick(now);
            deliver(&shard, out).await;
        }
        let consumer_due = groups
            .consumer
            .borrow()
            .next_deadline_ms()
            .is_some_and(|d| d <= now);
        if consumer_due {
            let image = shard.image();
            let changed = groups
                .consumer
                .borrow_mut()
                .tick(now, &ImageTopics::new(&shard, &image));
            persist_consumer_groups(&shard, &changed).await;
        }
        share_groups::tick(&shard, now).await;

        // Seen before the deadlines are read: a change after this wakes the wait below.
        let seen = groups.changed.generation();
        let next = [
            groups.machine.borrow().next_deadline_ms(),
            groups.consumer.borrow().next_deadline_ms(),
            groups.share.borrow().next_deadline_ms(),
        ]
        .into_iter()
        .flatten()
        .min();
        let changed = futures_lite::future::or(
            groups.changed.changed_since(seen),
            shard.stopped.changed_since(shard.stopped.generation()),
        );
        match next {
            None => changed.await,
            Some(deadline) => {
                let at = deadline.max(now + MIN_TICK_GAP.as_millis() as i64);
                let wait = at.saturating_sub(millrace_shard::time::now_ms()).max(0) as u64;
                let _ = millrace_shard::time::timeout(Duration::from_millis(wait), changed).await;
            }
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
        assert_eq!(
            decode_key(&share_group_key("g")),
            Some(Key::ShareGroup("g".into()))
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
