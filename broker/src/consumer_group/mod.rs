//! The KIP-848 consumer group coordinator (ConsumerGroupHeartbeat, ConsumerGroupDescribe), as
//! a sans-I/O state machine: the handler feeds it a heartbeat with the current time and a view
//! of the topic metadata, and gets the answer at once (nothing in this protocol waits). Time
//! only moves through the `now_ms` arguments and [`ConsumerGroups::tick`], so every behaviour
//! is testable without a clock or sockets.
//!
//! One `ConsumerGroups` per shard holds the consumer-protocol groups whose `__consumer_offsets`
//! partition that shard owns (the classic groups of the same shard live in
//! [`crate::group::GroupCoordinator`]; a group id is one or the other).
//!
//! The model follows Kafka's:
//!
//! ```text
//!  group epoch ── bumped when a member joins/leaves/changes its subscription or assignor, or
//!                 the subscribed topics' metadata (id, partition count) changes
//!  assignment epoch ── the group epoch the target assignment was computed for; recomputed
//!                 (server assignor `uniform` or `range`) whenever it lags the group epoch
//!  member epoch ── advances to the assignment epoch as the member reconciles:
//!
//!    Stable ──target changed──> UnrevokedPartitions (epoch kept; assignment = current ∩ target)
//!      ^                          │ heartbeat shows the revoked partitions are no longer owned
//!      │                          v
//!      └──all free── UnreleasedPartitions (epoch = assignment epoch; partitions still owned by
//!                    another member are withheld until that member's heartbeat releases them)
//! ```
//!
//! A partition is never in two members' (assigned ∪ pending revocation) sets at once, so it is
//! never handed to a new owner before the old owner has revoked it.
//!
//! A member subscribes by topic names, by a regular expression (`SubscribedTopicRegex`, v1), or
//! both: its topics are the names plus what the expression matched that the member's principal
//! may describe. The broker resolves the expressions itself, against the metadata view each
//! heartbeat brings (whole names, internal topics included, re-resolved when topics come and
//! go): see [`topic_regex`]. Each member's matches are filtered by its own rights, again when
//! the ACLs change.
//!
//! Choices (see docs/ARCHITECTURE.md): a heartbeat with a non-zero epoch for a group this shard
//! does not know answers UNKNOWN_MEMBER_ID (the client rejoins with epoch 0 instead of failing);
//! rack ids are recorded and ignored by the assignors. Group state is exported with
//! [`ConsumerGroups::record`] after each change and fed back with [`ConsumerGroups::restore`] at
//! start-up.

mod assignor;
pub(crate) mod record;
#[cfg(test)]
mod tests;
mod topic_regex;

use std::collections::{BTreeMap, BTreeSet};

pub use assignor::ASSIGNORS;

/// Partitions by topic id.
pub type Assignment = BTreeMap<uuid::Uuid, BTreeSet<i32>>;

use millrace_wire::codes as code;

/// Epoch a member sends to leave.
pub const LEAVE_EPOCH: i32 = -1;
/// Epoch a static member sends to leave temporarily (it keeps its assignment for a session).
pub const STATIC_LEAVE_EPOCH: i32 = -2;
/// Longest member id, instance id, rack id, assignor name or topic name list accepted.
pub const MEMBER_ID_BYTES_MAX: usize = 1024;
/// Most subscribed topic names accepted from one member.
pub const SUBSCRIBED_TOPICS_MAX: usize = 10_000;
/// Longest subscription regex accepted (it is stored in the group's record with a u16 length).
pub const SUBSCRIBED_TOPIC_REGEX_BYTES_MAX: usize = 32 * 1024;

/// Limits and timers, from the broker configuration (Kafka's names).
#[derive(Debug, Clone)]
pub struct ConsumerGroupConfig {
    /// `group.consumer.session.timeout.ms` (default 45000).
    pub session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms` (default 5000).
    pub heartbeat_interval_ms: i32,
    /// `group.consumer.max.size` (members per group).
    pub max_size: usize,
    /// `millrace.group.consumer.regex.refresh.min.interval.ms` (default 10000, Kafka's fixed
    /// interval): the least time between two resolutions of a group's regexes after the
    /// metadata changed.
    pub regex_refresh_min_interval_ms: i64,
}

impl Default for ConsumerGroupConfig {
    fn default() -> Self {
        ConsumerGroupConfig {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            max_size: 1_000,
            regex_refresh_min_interval_ms: 10_000,
        }
    }
}

/// The topic metadata a heartbeat sees (the broker's current metadata image).
pub trait TopicView {
    /// The topic named `name`, if it exists.
    fn topic(&self, name: &str) -> Option<TopicInfo>;
    /// Calls `f` with every topic name, internal ones included (regex subscriptions).
    fn for_each_name(&self, f: &mut dyn FnMut(&str));
    /// Changes whenever the set of topics may have changed.
    fn version(&self) -> u64;
    /// Whether `principal` connecting from `host` may describe `topic`: a regex subscription
    /// gives a member only the matches it may describe, as Kafka filters them. Always true
    /// without an authorizer.
    fn may_describe(&self, principal: &str, host: &str, topic: &str) -> bool {
        let _ = (principal, host, topic);
        true
    }
    /// Changes whenever [`TopicView::may_describe`]'s answers may have changed (the ACLs).
    fn access_version(&self) -> u64 {
        0
    }
}

/// One topic as the metadata image describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicInfo {
    /// Topic id.
    pub id: uuid::Uuid,
    /// Partition count.
    pub partitions: i32,
}

/// A ConsumerGroupHeartbeat, version-independent. `None` fields mean "unchanged".
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    /// Group id (validated non-empty by the handler).
    pub group_id: String,
    /// Member id; empty only from v0 clients joining (the coordinator then makes one).
    pub member_id: String,
    /// 0 joins, -1 leaves, -2 leaves temporarily (static), otherwise the member's epoch.
    pub member_epoch: i32,
    /// Static membership id.
    pub instance_id: Option<String>,
    /// Rack (recorded, not used for assignment).
    pub rack_id: Option<String>,
    /// Rebalance timeout; -1 unchanged.
    pub rebalance_timeout_ms: i32,
    /// Subscribed topics.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// Subscription regex (v1+); empty means no regex (librdkafka sends one with its names).
    pub subscribed_topic_regex: Option<String>,
    /// Preferred server assignor.
    pub server_assignor: Option<String>,
    /// Partitions the member owns now.
    pub owned: Option<Assignment>,
    /// Client id from the request header.
    pub client_id: String,
    /// Client address.
    pub client_host: String,
    /// The connection's principal (`User:alice`): what its regex may match.
    pub principal: String,
}

/// A ConsumerGroupHeartbeat answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatResponse {
    /// Kafka error code.
    pub error_code: i16,
    /// Message for errors.
    pub error_message: Option<String>,
    /// The member's id (generated for v0 joins).
    pub member_id: Option<String>,
    /// The member's epoch after this heartbeat.
    pub member_epoch: i32,
    /// How often the member should heartbeat.
    pub heartbeat_interval_ms: i32,
    /// The member's assignment, when it changed or the member's view differs.
    pub assignment: Option<Assignment>,
}

impl HeartbeatResponse {
    /// A refusal: no member, epoch -1.
    pub(crate) fn error(error_code: i16, message: impl Into<String>) -> Self {
        HeartbeatResponse {
            error_code,
            error_message: Some(message.into()),
            member_id: None,
            member_epoch: -1,
            heartbeat_interval_ms: 0,
            assignment: None,
        }
    }
}

/// One member as ConsumerGroupDescribe reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    /// Member id.
    pub member_id: String,
    /// Static id.
    pub instance_id: Option<String>,
    /// Rack.
    pub rack_id: Option<String>,
    /// Epoch.
    pub member_epoch: i32,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Subscribed topics.
    pub subscribed_topic_names: Vec<String>,
    /// Subscription regex, if any.
    pub subscribed_topic_regex: Option<String>,
    /// Current assignment.
    pub assignment: Assignment,
    /// Target assignment.
    pub target_assignment: Assignment,
}

/// What ConsumerGroupDescribe (and ListGroups) report about a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    /// "Empty", "Assigning", "Reconciling" or "Stable" (Kafka's names).
    pub state: &'static str,
    /// Group epoch.
    pub group_epoch: i32,
    /// Assignment epoch.
    pub assignment_epoch: i32,
    /// Assignor in use.
    pub assignor_name: String,
    /// Members by id.
    pub members: Vec<MemberView>,
}

/// Offset commit/fetch checks against a consumer group (OffsetCommit v9, OffsetFetch v9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetCheck {
    /// The group is not a consumer group here: the classic rules apply.
    NotConsumerGroup,
    /// Allowed.
    Ok,
    /// Refused with this code.
    Refused(i16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MemberState {
    Stable,
    UnrevokedPartitions,
    UnreleasedPartitions,
}

#[derive(Debug, Clone)]
struct Member {
    member_id: String,
    instance_id: Option<String>,
    rack_id: Option<String>,
    client_id: String,
    client_host: String,
    subscribed: BTreeSet<String>,
    /// Never empty (an empty regex from the client means none).
    subscribed_regex: Option<String>,
    /// The principal of the member's last heartbeat (`User:alice`).
    principal: String,
    /// What its regex matched that its principal may describe: the regex part of its
    /// subscription.
    regex_topics: BTreeSet<String>,
    /// (access version, resolutions generation) `regex_topics` was filtered at; None: filter
    /// again (new member, changed regex, principal or host, or just restored).
    regex_filtered_at: Option<(u64, u64)>,
    server_assignor: Option<String>,
    rebalance_timeout_ms: i32,
    state: MemberState,
    member_epoch: i32,
    previous_member_epoch: i32,
    assigned: Assignment,
    pending_revocation: Assignment,
    session_deadline_ms: i64,
    /// UnrevokedPartitions: when a member that has not revoked is removed.
    revocation_deadline_ms: Option<i64>,
    /// Sent epoch -2: kept (with its partitions) until its instance rejoins or the session ends.
    left_static: bool,
}

#[derive(Debug, Clone, Default)]
struct Group {
    group_epoch: i32,
    assignment_epoch: i32,
    members: BTreeMap<String, Member>,
    target: BTreeMap<String, Assignment>,
    /// Subscribed topics' metadata the target was computed from.
    topics: BTreeMap<String, TopicInfo>,
    assignor: String,
    /// Membership or subscriptions changed: the next refresh bumps the group epoch (once).
    dirty: bool,
    /// The members' regexes with the topics each matched.
    regexes: topic_regex::Resolutions,
}

/// One shard's consumer-protocol groups. See the module docs.
#[derive(Debug)]
pub struct ConsumerGroups {
    config: ConsumerGroupConfig,
    groups: BTreeMap<String, Group>,
    member_seq: u64,
}

impl ConsumerGroups {
    /// No groups yet.
    pub fn new(config: ConsumerGroupConfig) -> Self {
        ConsumerGroups {
            config,
            groups: BTreeMap::new(),
            member_seq: 0,
        }
    }

    /// Whether `group_id` is a consumer-protocol group here.
    pub fn contains(&self, group_id: &str) -> bool {
        self.groups.contains_key(group_id)
    }

    /// Members of consumer group `group_id` (alive or static-left); 0 if it is not one.
    pub fn member_count(&self, group_id: &str) -> usize {
        self.groups.get(group_id).map_or(0, |g| g.members.len())
    }

    /// Whether `group_id` is a consumer group with members (alive or static-left).
    pub fn has_members(&self, group_id: &str) -> bool {
        self.groups
            .get(group_id)
            .is_some_and(|g| !g.members.is_empty())
    }

    /// Removes an empty group (conversion to classic, DeleteGroups). Returns false if it has
    /// members.
    pub fn remove_if_empty(&mut self, group_id: &str) -> bool {
        if self.has_members(group_id) {
            return false;
        }
        self.groups.remove(group_id);
        true
    }

    /// Handles one ConsumerGroupHeartbeat against the current metadata `view`; `version` is the
    /// request version (v0 lets the coordinator make member ids).
    pub fn heartbeat(
        &mut self,
        now_ms: i64,
        version: i16,
        req: Heartbeat,
        view: &dyn TopicView,
    ) -> HeartbeatResponse {
        if let Err((code, message)) = self.validate(version, &req) {
            return HeartbeatResponse::error(code, message);
        }
        match req.member_epoch {
            LEAVE_EPOCH | STATIC_LEAVE_EPOCH => self.leave(now_ms, req, view),
            0 => self.join(now_ms, req, view),
            _ => self.beat(now_ms, req, view),
        }
    }

    /// The group's durable record ([`record`] layout); None if there is no such group (write
    /// a tombstone).
    pub fn record(&self, group_id: &str) -> Option<Vec<u8>> {
        self.groups
            .get(group_id)
            .map(|g| record::encode(group_id, g))
    }

    /// Loads a record written by [`ConsumerGroups::record`] (start-up replay; a later record
    /// of the same group replaces an earlier one). Members get a fresh session from `now_ms`.
    /// False if the bytes are not a valid record.
    pub fn restore(&mut self, now_ms: i64, bytes: &[u8]) -> bool {
        match record::decode(bytes, now_ms, self.config.session_timeout_ms) {
            Some((group_id, group)) => {
                self.groups.insert(group_id, group);
                true
            }
            None => false,
        }
    }

    /// Forgets a group (a tombstone replayed at start-up).
    pub fn forget(&mut self, group_id: &str) {
        self.groups.remove(group_id);
    }

    /// Forgets every group `doomed` names, members or not (their offsets partition moved to
    /// another coordinator). Returns how many went.
    pub fn unload(&mut self, doomed: &dyn Fn(&str) -> bool) -> usize {
        let before = self.groups.len();
        self.groups.retain(|id, _| !doomed(id));
        before - self.groups.len()
    }

    /// Members whose session or revocation deadline has passed are removed and the group's
    /// epoch bumped; their partitions become free for the next owners. Returns the groups
    /// that changed.
    pub fn tick(&mut self, now_ms: i64, view: &dyn TopicView) -> Vec<String> {
        let mut changed = Vec::new();
        let ids: Vec<String> = self.groups.keys().cloned().collect();
        for group_id in ids {
            let Some(group) = self.groups.get_mut(&group_id) else {
                continue;
            };
            let expired: Vec<String> = group
                .members
                .values()
                .filter(|m| {
                    m.session_deadline_ms <= now_ms
                        || m.revocation_deadline_ms.is_some_and(|d| d <= now_ms)
                })
                .map(|m| m.member_id.clone())
                .collect();
            if expired.is_empty() {
                continue;
            }
            for id in &expired {
                tracing::info!(group = %group_id, member = %id, "consumer group member expired");
                group.members.remove(id);
                group.target.remove(id);
            }
            group.dirty = true;
            refresh_target(group, view);
            changed.push(group_id);
        }
        changed
    }

    /// The earliest session or revocation deadline, for the tick loop.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.groups
            .values()
            .flat_map(|g| g.members.values())
            .flat_map(|m| [Some(m.session_deadline_ms), m.revocation_deadline_ms])
            .flatten()
            .min()
    }

    /// ConsumerGroupDescribe; None if the id is not a consumer group here.
    pub fn describe(&self, group_id: &str) -> Option<GroupView> {
        let g = self.groups.get(group_id)?;
        let members = g
            .members
            .values()
            .map(|m| MemberView {
                member_id: m.member_id.clone(),
                instance_id: m.instance_id.clone(),
                rack_id: m.rack_id.clone(),
                member_epoch: m.member_epoch,
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                subscribed_topic_names: m.subscribed.iter().cloned().collect(),
                subscribed_topic_regex: m.subscribed_regex.clone(),
                assignment: m.assigned.clone(),
                target_assignment: g.target.get(&m.member_id).cloned().unwrap_or_default(),
            })
            .collect();
        Some(GroupView {
            state: group_state(g),
            group_epoch: g.group_epoch,
            assignment_epoch: g.assignment_epoch,
            assignor_name: g.assignor.clone(),
            members,
        })
    }

    /// (group id, state) of every consumer group here, for ListGroups.
    pub fn list(&self) -> Vec<(String, &'static str)> {
        self.groups
            .iter()
            .map(|(id, g)| (id.clone(), group_state(g)))
            .collect()
    }

    /// OffsetCommit against a consumer group: an empty group takes commits from anyone (admin
    /// tools); otherwise the member must exist and send its current epoch (v9+).
    pub fn validate_commit(
        &self,
        group_id: &str,
        version: i16,
        member_id: &str,
        member_epoch: i32,
    ) -> OffsetCheck {
        self.validate_offset_commit(group_id, Some(version), member_id, member_epoch)
    }

    /// TxnOffsetCommit (KIP-447) against a consumer group: as an OffsetCommit, with any
    /// request version, and a stale member epoch answered ILLEGAL_GENERATION (what Kafka's
    /// transactional producers understand).
    pub fn validate_txn_commit(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
    ) -> OffsetCheck {
        match self.validate_offset_commit(group_id, None, member_id, member_epoch) {
            OffsetCheck::Refused(code::STALE_MEMBER_EPOCH) => {
                OffsetCheck::Refused(code::ILLEGAL_GENERATION)
            }
            other => other,
        }
    }

    /// `version` is the OffsetCommit version (None: transactional).
    fn validate_offset_commit(
        &self,
        group_id: &str,
        version: Option<i16>,
        member_id: &str,
        member_epoch: i32,
    ) -> OffsetCheck {
        let Some(g) = self.groups.get(group_id) else {
            return OffsetCheck::NotConsumerGroup;
        };
        if member_epoch < 0 && g.members.is_empty() {
            return OffsetCheck::Ok;
        }
        let Some(m) = g.members.get(member_id) else {
            return OffsetCheck::Refused(code::UNKNOWN_MEMBER_ID);
        };
        if version.is_some_and(|v| v < 9) {
            return OffsetCheck::Refused(code::UNSUPPORTED_VERSION);
        }
        if member_epoch != m.member_epoch {
            return OffsetCheck::Refused(code::STALE_MEMBER_EPOCH);
        }
        OffsetCheck::Ok
    }

    /// OffsetFetch v9 against a consumer group: with a member id, it must be a member at
    /// that epoch; without one (admin), anything is readable.
    pub fn validate_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> OffsetCheck {
        let Some(g) = self.groups.get(group_id) else {
            return OffsetCheck::NotConsumerGroup;
        };
        let Some(member_id) = member_id.filter(|_| member_epoch >= 0) else {
            return OffsetCheck::Ok;
        };
        match g.members.get(member_id) {
            None => OffsetCheck::Refused(code::UNKNOWN_MEMBER_ID),
            Some(m) if m.member_epoch != member_epoch => {
                OffsetCheck::Refused(code::STALE_MEMBER_EPOCH)
            }
            Some(_) => OffsetCheck::Ok,
        }
    }

    fn validate(&self, version: i16, req: &Heartbeat) -> Result<(), (i16, String)> {
        let invalid = |m: &str| Err((code::INVALID_REQUEST, m.to_string()));
        if req.member_id.len() > MEMBER_ID_BYTES_MAX
            || req
                .instance_id
                .as_ref()
                .is_some_and(|s| s.len() > MEMBER_ID_BYTES_MAX)
            || req
                .rack_id
                .as_ref()
                .is_some_and(|s| s.len() > MEMBER_ID_BYTES_MAX)
        {
            return invalid("member id, instance id or rack id is too long");
        }
        if let Some(names) = &req.subscribed_topic_names {
            if names.len() > SUBSCRIBED_TOPICS_MAX {
                return invalid("too many subscribed topics");
            }
            if names.iter().any(|n| n.len() > MEMBER_ID_BYTES_MAX) {
                return invalid("a subscribed topic name is too long");
            }
        }
        if req
            .subscribed_topic_regex
            .as_ref()
            .is_some_and(|r| r.len() > SUBSCRIBED_TOPIC_REGEX_BYTES_MAX)
        {
            return invalid("SubscribedTopicRegex is too long");
        }
        if req.member_id.is_empty() && (version >= 1 || req.member_epoch != 0) {
            return invalid("MemberId can't be empty.");
        }
        if req.member_epoch < STATIC_LEAVE_EPOCH {
            return invalid("MemberEpoch is invalid.");
        }
        if req.member_epoch == STATIC_LEAVE_EPOCH && req.instance_id.is_none() {
            return invalid("InstanceId can't be null when leaving with epoch -2.");
        }
        if req.member_epoch == 0 {
            if req.rebalance_timeout_ms < 0 {
                return invalid("RebalanceTimeoutMs must be provided in first request.");
            }
            // librdkafka 2.16 sends null here, the Java client an empty list; Kafka takes both.
            if req.owned.as_ref().is_some_and(|o| !o.is_empty()) {
                return invalid("TopicPartitions must be empty when (re-)joining.");
            }
            // Kafka 4.x: either may be empty (subscribed to nothing), not both null.
            if req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none() {
                return invalid(
                    "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when \
                     (re-)joining.",
                );
            }
        }
        if let Some(name) = &req.server_assignor {
            if !ASSIGNORS.contains(&name.as_str()) {
                return Err((
                    code::UNSUPPORTED_ASSIGNOR,
                    format!("ServerAssignor {name} is not supported. Supported: uniform, range"),
                ));
            }
        }
        Ok(())
    }

    fn join(&mut self, now_ms: i64, mut req: Heartbeat, view: &dyn TopicView) -> HeartbeatResponse {
        let fresh = match new_pattern(self.groups.get(&req.group_id), &req) {
            Ok(fresh) => fresh,
            Err(resp) => return resp,
        };
        if req.member_id.is_empty() {
            self.member_seq += 1;
            req.member_id = format!("{}-{}", uuid::Uuid::new_v4().simple(), self.member_seq);
        }
        let session_ms = i64::from(self.config.session_timeout_ms);
        let group = self.groups.entry(req.group_id.clone()).or_default();
        let mut inherited: Option<Member> = None;
        if let Some(instance) = &req.instance_id {
            let holder = group
                .members
                .values()
                .find(|m| m.instance_id.as_ref() == Some(instance))
                .map(|m| (m.member_id.clone(), m.left_static));
            match holder {
                Some((_, false)) => {
                    return HeartbeatResponse::error(
                        code::UNRELEASED_INSTANCE_ID,
                        format!("Static member with instance id {instance} is still active"),
                    )
                }
                Some((old_id, true)) => {
                    inherited = group.members.remove(&old_id);
                    if let Some(t) = group.target.remove(&old_id) {
                        group.target.insert(req.member_id.clone(), t);
                    }
                }
                None => {}
            }
        }
        // A member rejoining with epoch 0 under its own id starts over: what it owned is free.
        if inherited.is_none() && group.members.remove(&req.member_id).is_some() {
            group.dirty = true;
        }
        if inherited.is_none() && group.members.len() >= self.config.max_size {
            if group.members.is_empty() {
                self.groups.remove(&req.group_id);
            }
            return HeartbeatResponse::error(
                code::GROUP_MAX_SIZE_REACHED,
                format!(
                    "The consumer group has reached its maximum capacity of {} members",
                    self.config.max_size
                ),
            );
        }
        let mut member = inherited.unwrap_or_else(|| Member {
            member_id: String::new(),
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            subscribed: BTreeSet::new(),
            subscribed_regex: None,
            principal: String::new(),
            regex_topics: BTreeSet::new(),
            regex_filtered_at: None,
            server_assignor: None,
            rebalance_timeout_ms: 0,
            state: MemberState::Stable,
            member_epoch: 0,
            previous_member_epoch: 0,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            session_deadline_ms: 0,
            revocation_deadline_ms: None,
            left_static: false,
        });
        let is_new = member.member_id.is_empty();
        member.member_id = req.member_id.clone();
        member.left_static = false;
        member.session_deadline_ms = now_ms.saturating_add(session_ms);
        if update_member(&mut member, &req) || is_new {
            group.dirty = true;
        }
        group.members.insert(member.member_id.clone(), member);
        let epoch_before = -1;
        self.finish(now_ms, req, epoch_before, fresh, view, true)
    }

    fn beat(&mut self, now_ms: i64, req: Heartbeat, view: &dyn TopicView) -> HeartbeatResponse {
        let session_ms = i64::from(self.config.session_timeout_ms);
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return unknown_member(&req);
        };
        let Some(member) = group.members.get(&req.member_id) else {
            return unknown_member(&req);
        };
        if member.left_static {
            return unknown_member(&req);
        }
        if req.instance_id.is_some() && req.instance_id != member.instance_id {
            return HeartbeatResponse::error(
                code::FENCED_INSTANCE_ID,
                "The instance id does not match the member's",
            );
        }
        if let Err(message) = check_epoch(member, &req) {
            return HeartbeatResponse::error(code::FENCED_MEMBER_EPOCH, message);
        }
        let fresh = match new_pattern(Some(&*group), &req) {
            Ok(fresh) => fresh,
            Err(resp) => return resp,
        };
        let member = group
            .members
            .get_mut(&req.member_id)
            .expect("checked above");
        member.session_deadline_ms = now_ms.saturating_add(session_ms);
        let epoch_before = member.member_epoch;
        if update_member(member, &req) {
            group.dirty = true;
        }
        self.finish(now_ms, req, epoch_before, fresh, view, false)
    }

    /// Resolves the group's regexes (`fresh`: one the member brought, new to the group),
    /// refreshes its metadata and target, reconciles the member, builds the answer.
    fn finish(
        &mut self,
        now_ms: i64,
        req: Heartbeat,
        epoch_before: i32,
        fresh: Option<(String, topic_regex::Pattern)>,
        view: &dyn TopicView,
        joining: bool,
    ) -> HeartbeatResponse {
        let interval = self.config.heartbeat_interval_ms;
        let refresh_ms = self.config.regex_refresh_min_interval_ms;
        let group = self
            .groups
            .get_mut(&req.group_id)
            .expect("the member's group exists");
        if let Some((re, pattern)) = fresh {
            group.regexes.insert(re, pattern, view, now_ms);
        }
        // New matches move the group epoch only if some member may see them (refresh_target).
        group.regexes.refresh(view, now_ms, refresh_ms);
        refresh_target(group, view);
        let before = group.members[&req.member_id].assigned.clone();
        reconcile(group, &req.member_id, req.owned.as_ref(), now_ms);
        let member = &group.members[&req.member_id];
        let changed = member.assigned != before || member.member_epoch != epoch_before;
        let differs = req.owned.as_ref().is_some_and(|o| *o != member.assigned);
        HeartbeatResponse {
            error_code: code::NONE,
            error_message: None,
            member_id: Some(member.member_id.clone()),
            member_epoch: member.member_epoch,
            heartbeat_interval_ms: interval,
            assignment: (joining || changed || differs).then(|| member.assigned.clone()),
        }
    }

    fn leave(&mut self, now_ms: i64, req: Heartbeat, view: &dyn TopicView) -> HeartbeatResponse {
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return unknown_member(&req);
        };
        let found = match &req.instance_id {
            Some(instance) => group
                .members
                .values()
                .find(|m| m.instance_id.as_ref() == Some(instance))
                .map(|m| m.member_id.clone()),
            None => group
                .members
                .get(&req.member_id)
                .map(|m| m.member_id.clone()),
        };
        let Some(member_id) = found else {
            return unknown_member(&req);
        };
        if member_id != req.member_id {
            return HeartbeatResponse::error(
                code::FENCED_INSTANCE_ID,
                "The instance id is held by another member",
            );
        }
        if req.member_epoch == STATIC_LEAVE_EPOCH {
            // Keeps its partitions and target for one session, for its instance to come back.
            let member = group.members.get_mut(&member_id).expect("found above");
            member.left_static = true;
            member.session_deadline_ms =
                now_ms.saturating_add(i64::from(self.config.session_timeout_ms));
            member.revocation_deadline_ms = None;
        } else {
            group.members.remove(&member_id);
            group.target.remove(&member_id);
            group.dirty = true;
            refresh_target(group, view);
        }
        HeartbeatResponse {
            error_code: code::NONE,
            error_message: None,
            member_id: Some(member_id),
            member_epoch: req.member_epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        }
    }
}

fn unknown_member(req: &Heartbeat) -> HeartbeatResponse {
    HeartbeatResponse::error(
        code::UNKNOWN_MEMBER_ID,
        format!(
            "Member {} is not a member of group {}",
            req.member_id, req.group_id
        ),
    )
}

/// Kafka's rule: a newer epoch than the member's is fenced; an older one is accepted only if
/// it is the member's previous epoch and what it owns is within its assignment (the member
/// missed the answer that advanced it).
fn check_epoch(member: &Member, req: &Heartbeat) -> Result<(), String> {
    if req.member_epoch == member.member_epoch {
        return Ok(());
    }
    let lost_answer = req.member_epoch == member.previous_member_epoch
        && req.member_epoch < member.member_epoch
        && req
            .owned
            .as_ref()
            .is_some_and(|o| is_subset(o, &member.assigned));
    if lost_answer {
        Ok(())
    } else {
        Err(format!(
            "The consumer group member has a member epoch ({}) different from the broker's ({})",
            req.member_epoch, member.member_epoch
        ))
    }
}

/// Applies the request's non-null fields; true if the subscription or assignor changed (the
/// group epoch must move).
fn update_member(member: &mut Member, req: &Heartbeat) -> bool {
    let mut changed = false;
    if req.instance_id.is_some() {
        member.instance_id = req.instance_id.clone();
    }
    if req.rack_id.is_some() {
        member.rack_id = req.rack_id.clone();
    }
    if req.rebalance_timeout_ms >= 0 {
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
    }
    member.client_id = req.client_id.clone();
    if member.client_host != req.client_host || member.principal != req.principal {
        // What the regex may match depends on who asks, and from where.
        member.regex_filtered_at = None;
    }
    member.client_host = req.client_host.clone();
    member.principal = req.principal.clone();
    if let Some(names) = &req.subscribed_topic_names {
        let set: BTreeSet<String> = names.iter().cloned().collect();
        if set != member.subscribed {
            member.subscribed = set;
            changed = true;
        }
    }
    if let Some(re) = &req.subscribed_topic_regex {
        let re = Some(re).filter(|r| !r.is_empty());
        if re != member.subscribed_regex.as_ref() {
            member.subscribed_regex = re.cloned();
            member.regex_filtered_at = None;
            changed = true;
        }
    }
    if req.server_assignor.is_some() && req.server_assignor != member.server_assignor {
        member.server_assignor = req.server_assignor.clone();
        changed = true;
    }
    changed
}

fn is_subset(small: &Assignment, big: &Assignment) -> bool {
    small
        .iter()
        .all(|(t, ps)| ps.is_empty() || big.get(t).is_some_and(|b| ps.is_subset(b)))
}

fn group_state(g: &Group) -> &'static str {
    if g.members.is_empty() {
        "Empty"
    } else if g.group_epoch > g.assignment_epoch {
        "Assigning"
    } else if g
        .members
        .values()
        .any(|m| m.member_epoch != g.assignment_epoch || m.state != MemberState::Stable)
    {
        "Reconciling"
    } else {
        "Stable"
    }
}

/// Bumps the group epoch if the subscribed topics' metadata changed, and recomputes the
/// target assignment if it lags the group epoch. A member's topics are its names and what its
/// regex matched that it may describe (Kafka's union); regexes no member uses any more are
/// dropped.
fn refresh_target(group: &mut Group, view: &dyn TopicView) {
    let used: BTreeSet<&str> = group
        .members
        .values()
        .filter_map(|m| m.subscribed_regex.as_deref())
        .collect();
    group.regexes.retain(&used);
    filter_regex_topics(group, view);
    let subscriptions: BTreeMap<String, BTreeSet<String>> = group
        .members
        .iter()
        .map(|(id, m)| (id.clone(), subscription(m)))
        .collect();
    let names: BTreeSet<&String> = subscriptions.values().flatten().collect();
    let topics: BTreeMap<String, TopicInfo> = names
        .into_iter()
        .filter_map(|n| view.topic(n).map(|info| (n.clone(), info)))
        .collect();
    if topics != group.topics || group.dirty {
        group.topics = topics;
        group.group_epoch += 1;
        group.dirty = false;
    }
    if group.group_epoch <= group.assignment_epoch {
        return;
    }
    group.assignor = choose_assignor(group);
    group.target = assignor::assign(
        &group.assignor,
        &subscriptions,
        &group.topics,
        &group.target,
    );
    group.assignment_epoch = group.group_epoch;
}

/// Limits each member's regex matches to the topics its principal may describe. Kafka filters
/// a regex's matches once, with the rights of the member whose heartbeat resolved it, so a
/// member with fewer rights can be assigned topics it may not see (KAFKA-19147's open part);
/// here each member is filtered with its own, again whenever the matches or the ACLs changed.
/// A change in what a member may see bumps the group epoch.
fn filter_regex_topics(group: &mut Group, view: &dyn TopicView) {
    let at = (view.access_version(), group.regexes.generation());
    for m in group.members.values_mut() {
        if m.regex_filtered_at == Some(at) {
            continue;
        }
        let visible: BTreeSet<String> = m
            .subscribed_regex
            .as_deref()
            .and_then(|re| group.regexes.topics(re))
            .into_iter()
            .flatten()
            .filter(|t| view.may_describe(&m.principal, &m.client_host, t))
            .cloned()
            .collect();
        if visible != m.regex_topics {
            m.regex_topics = visible;
            group.dirty = true;
        }
        m.regex_filtered_at = Some(at);
    }
}

/// The member's topic names and what its regex matched that it may describe.
fn subscription(m: &Member) -> BTreeSet<String> {
    let mut topics = m.subscribed.clone();
    topics.extend(m.regex_topics.iter().cloned());
    topics
}

/// A regex the member brings that its group does not hold yet, compiled (Kafka checks it only
/// then too); None if there is none. Err: INVALID_REGULAR_EXPRESSION.
fn new_pattern(
    group: Option<&Group>,
    req: &Heartbeat,
) -> Result<Option<(String, topic_regex::Pattern)>, HeartbeatResponse> {
    let Some(re) = req
        .subscribed_topic_regex
        .as_ref()
        .filter(|r| !r.is_empty())
    else {
        return Ok(None);
    };
    if group.is_some_and(|g| g.regexes.contains(re)) {
        return Ok(None);
    }
    match topic_regex::Pattern::compile(re) {
        Ok(pattern) => Ok(Some((re.clone(), pattern))),
        Err(message) => Err(HeartbeatResponse::error(
            code::INVALID_REGULAR_EXPRESSION,
            message,
        )),
    }
}

/// The assignor most members ask for (ties: by name), `uniform` if none asks.
fn choose_assignor(group: &Group) -> String {
    let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
    for m in group.members.values() {
        if let Some(a) = &m.server_assignor {
            *votes.entry(a.as_str()).or_default() += 1;
        }
    }
    let best = votes.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)));
    best.map_or("uniform", |(name, _)| name).to_string()
}

/// Moves one member towards its target (Kafka's CurrentAssignmentBuilder): revoke first,
/// then assign only partitions no other member holds.
fn reconcile(group: &mut Group, member_id: &str, owned: Option<&Assignment>, now_ms: i64) {
    let target = group.target.get(member_id).cloned().unwrap_or_default();
    let epoch = group.assignment_epoch;
    let held_by_others: BTreeSet<(uuid::Uuid, i32)> = group
        .members
        .values()
        .filter(|m| m.member_id != member_id)
        .flat_map(|m| pairs(&m.assigned).chain(pairs(&m.pending_revocation)))
        .collect();
    let m = group.members.get_mut(member_id).expect("member exists");
    match m.state {
        MemberState::UnrevokedPartitions => {
            let still_owned = owned.is_none_or(|o| intersects(o, &m.pending_revocation));
            if still_owned {
                return;
            }
        }
        MemberState::Stable if m.member_epoch == epoch => return,
        _ => {}
    }
    let current = m.assigned.clone();
    let keep: BTreeSet<(uuid::Uuid, i32)> =
        pairs(&current).filter(|p| contains(&target, *p)).collect();
    let revoke: BTreeSet<(uuid::Uuid, i32)> =
        pairs(&current).filter(|p| !contains(&target, *p)).collect();
    let add: BTreeSet<(uuid::Uuid, i32)> =
        pairs(&target).filter(|p| !contains(&current, *p)).collect();
    let (free, unreleased): (BTreeSet<_>, BTreeSet<_>) =
        add.into_iter().partition(|p| !held_by_others.contains(p));
    m.pending_revocation = Assignment::new();
    m.revocation_deadline_ms = None;
    if !revoke.is_empty() {
        m.state = MemberState::UnrevokedPartitions;
        m.assigned = from_pairs(keep);
        m.pending_revocation = from_pairs(revoke);
        m.revocation_deadline_ms =
            Some(now_ms.saturating_add(i64::from(m.rebalance_timeout_ms.max(0))));
        return;
    }
    if m.member_epoch != epoch {
        m.previous_member_epoch = m.member_epoch;
        m.member_epoch = epoch;
    }
    m.assigned = from_pairs(keep.into_iter().chain(free));
    m.state = if unreleased.is_empty() {
        MemberState::Stable
    } else {
        MemberState::UnreleasedPartitions
    };
}

fn pairs(a: &Assignment) -> impl Iterator<Item = (uuid::Uuid, i32)> + '_ {
    a.iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
}

fn contains(a: &Assignment, (t, p): (uuid::Uuid, i32)) -> bool {
    a.get(&t).is_some_and(|ps| ps.contains(&p))
}

fn intersects(a: &Assignment, b: &Assignment) -> bool {
    pairs(a).any(|p| contains(b, p))
}

fn from_pairs(it: impl IntoIterator<Item = (uuid::Uuid, i32)>) -> Assignment {
    let mut out = Assignment::new();
    for (t, p) in it {
        out.entry(t).or_default().insert(p);
    }
    out
}
