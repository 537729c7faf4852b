//! Share-group membership (KIP-932: ShareGroupHeartbeat, ShareGroupDescribe), as a sans-I/O
//! state machine beside the KIP-848 consumer groups: the handler feeds it a heartbeat with the
//! current time and a view of the topic metadata and gets the answer at once. Time only moves
//! through `now_ms` arguments and [`ShareGroups::tick`].
//!
//! One `ShareGroups` per shard holds the share groups whose `__consumer_offsets` partition that
//! shard owns; a group id names one kind of group only (classic, consumer or share).
//!
//! The model is Kafka's share-group membership, which is simpler than a consumer group's:
//!
//! ```text
//!  group epoch ── bumped when a member joins, leaves (or its session expires), changes its
//!                 subscription, or a subscribed topic's metadata (id, partition count) changes
//!  assignment epoch ── the group epoch the target assignment was computed for (the `simple`
//!                 assignor, below), recomputed whenever it lags the group epoch
//!  member epoch ── set to the assignment epoch at the member's next heartbeat, together with
//!                 its new assignment: no revocation step, because a share partition may be
//!                 consumed by several members at once (the share-partition leader, not the
//!                 assignment, keeps two members from taking the same records)
//! ```
//!
//! The `simple` assignor gives every subscribed partition at least one member and every
//! member at least one partition of what it subscribes to: with no more members than
//! partitions, a topic's partitions are dealt round-robin among its subscribers; with more
//! members, each member gets one partition and partitions are shared.
//!
//! Group state is exported with [`ShareGroups::record`] after each change and fed back with
//! [`ShareGroups::restore`] at start-up, so running members keep their epochs across a restart.

mod assignor;
mod record;
#[cfg(test)]
mod tests;

use crate::consumer_group::{Assignment, TopicInfo, MEMBER_ID_BYTES_MAX, SUBSCRIBED_TOPICS_MAX};
use millrace_wire::codes as code;
use std::collections::{BTreeMap, BTreeSet};

/// Epoch a member sends to leave.
pub const LEAVE_EPOCH: i32 = -1;
/// Kafka's name for the only share-group assignor.
pub const ASSIGNOR: &str = "simple";

/// Limits and timers, from the broker configuration (Kafka's names).
#[derive(Debug, Clone)]
pub struct ShareGroupConfig {
    /// `group.share.session.timeout.ms` (default 45000).
    pub session_timeout_ms: i32,
    /// `group.share.heartbeat.interval.ms` (default 5000).
    pub heartbeat_interval_ms: i32,
    /// `group.share.max.size` (members per group, default 200).
    pub max_size: usize,
}

impl Default for ShareGroupConfig {
    fn default() -> Self {
        ShareGroupConfig {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            max_size: 200,
        }
    }
}

/// A ShareGroupHeartbeat, version-independent. `None` fields mean "unchanged".
#[derive(Debug, Clone, Default)]
pub struct ShareHeartbeat {
    /// Group id.
    pub group_id: String,
    /// Member id (the client makes it).
    pub member_id: String,
    /// 0 joins, -1 leaves, otherwise the member's epoch.
    pub member_epoch: i32,
    /// Rack (recorded, not used for assignment).
    pub rack_id: Option<String>,
    /// Subscribed topics.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// Client id from the request header.
    pub client_id: String,
    /// Client address.
    pub client_host: String,
}

/// A ShareGroupHeartbeat answer has a ConsumerGroupHeartbeat answer's fields.
pub type ShareHeartbeatResponse = crate::consumer_group::HeartbeatResponse;

/// One member as ShareGroupDescribe reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareMemberView {
    /// Member id.
    pub member_id: String,
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
    /// Current assignment.
    pub assignment: Assignment,
}

/// What ShareGroupDescribe (and ListGroups) report about a share group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareGroupView {
    /// "Empty" or "Stable" (Kafka's names for share groups).
    pub state: &'static str,
    /// Group epoch.
    pub group_epoch: i32,
    /// Assignment epoch.
    pub assignment_epoch: i32,
    /// Members by id.
    pub members: Vec<ShareMemberView>,
    /// Partitions with share state (see `Group::initialized`).
    pub initialized: Assignment,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    member_id: String,
    member_epoch: i32,
    rack_id: Option<String>,
    client_id: String,
    client_host: String,
    subscribed: BTreeSet<String>,
    assigned: Assignment,
    session_deadline_ms: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Group {
    group_epoch: i32,
    assignment_epoch: i32,
    /// Subscribed topics as the metadata showed them when the epoch was last bumped.
    topics: BTreeMap<String, TopicInfo>,
    members: BTreeMap<String, Member>,
    target: BTreeMap<String, Assignment>,
    /// Partitions whose share state exists (Kafka's initialized partitions): every partition
    /// ever assigned, and those AlterShareGroupOffsets set; DeleteShareGroupOffsets and
    /// DeleteGroups delete their state.
    initialized: Assignment,
}

/// The share groups of one shard.
#[derive(Debug)]
pub struct ShareGroups {
    config: ShareGroupConfig,
    groups: BTreeMap<String, Group>,
}

impl ShareGroups {
    /// No groups yet.
    pub fn new(config: ShareGroupConfig) -> Self {
        ShareGroups {
            config,
            groups: BTreeMap::new(),
        }
    }

    /// Whether `group_id` is a share group here.
    pub fn contains(&self, group_id: &str) -> bool {
        self.groups.contains_key(group_id)
    }

    /// Whether `group_id` is a share group with members.
    pub fn has_members(&self, group_id: &str) -> bool {
        self.groups
            .get(group_id)
            .is_some_and(|g| !g.members.is_empty())
    }

    /// Removes an empty group (DeleteGroups). Returns false if it has members.
    pub fn remove_if_empty(&mut self, group_id: &str) -> bool {
        if self.has_members(group_id) {
            return false;
        }
        self.groups.remove(group_id);
        true
    }

    /// Handles one ShareGroupHeartbeat. `topic` resolves a topic name in the current metadata.
    pub fn heartbeat(
        &mut self,
        now_ms: i64,
        req: ShareHeartbeat,
        topic: &dyn Fn(&str) -> Option<TopicInfo>,
    ) -> ShareHeartbeatResponse {
        if let Err(message) = validate(&req) {
            return ShareHeartbeatResponse::error(code::INVALID_REQUEST, message);
        }
        if req.member_epoch == LEAVE_EPOCH {
            return self.leave(req, topic);
        }
        let joining = req.member_epoch == 0;
        let full = self.config.max_size;
        let group = match self.groups.get_mut(&req.group_id) {
            Some(g) => g,
            None if joining => self.groups.entry(req.group_id.clone()).or_default(),
            None => {
                return ShareHeartbeatResponse::error(
                    code::UNKNOWN_MEMBER_ID,
                    format!(
                        "share group {} has no member {}",
                        req.group_id, req.member_id
                    ),
                )
            }
        };
        let before = match group.members.get(&req.member_id) {
            Some(m) if !joining && m.member_epoch != req.member_epoch => {
                return ShareHeartbeatResponse::error(
                    code::FENCED_MEMBER_EPOCH,
                    format!(
                        "member epoch {} is not the member's current epoch {}",
                        req.member_epoch, m.member_epoch
                    ),
                )
            }
            Some(m) => Some(m.clone()),
            None if !joining => {
                return ShareHeartbeatResponse::error(
                    code::UNKNOWN_MEMBER_ID,
                    format!(
                        "share group {} has no member {}",
                        req.group_id, req.member_id
                    ),
                )
            }
            None if group.members.len() >= full => {
                return ShareHeartbeatResponse::error(
                    code::GROUP_MAX_SIZE_REACHED,
                    format!("share group {} has {full} members", req.group_id),
                )
            }
            None => None,
        };
        let member = updated_member(before.as_ref(), &req, now_ms, &self.config);
        let subscription_changed = before
            .as_ref()
            .is_none_or(|b| b.subscribed != member.subscribed);
        group.members.insert(member.member_id.clone(), member);
        refresh_target(group, topic, subscription_changed);
        let member = group
            .members
            .get_mut(&req.member_id)
            .expect("inserted above");
        member.member_epoch = group.assignment_epoch;
        member.assigned = group
            .target
            .get(&req.member_id)
            .cloned()
            .unwrap_or_default();
        let changed = before
            .as_ref()
            .is_none_or(|b| b.assigned != member.assigned);
        ShareHeartbeatResponse {
            error_code: code::NONE,
            error_message: None,
            member_id: Some(member.member_id.clone()),
            member_epoch: member.member_epoch,
            heartbeat_interval_ms: self.config.heartbeat_interval_ms,
            assignment: (joining || changed).then(|| member.assigned.clone()),
        }
    }

    fn leave(
        &mut self,
        req: ShareHeartbeat,
        topic: &dyn Fn(&str) -> Option<TopicInfo>,
    ) -> ShareHeartbeatResponse {
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return ShareHeartbeatResponse::error(
                code::UNKNOWN_MEMBER_ID,
                format!(
                    "share group {} has no member {}",
                    req.group_id, req.member_id
                ),
            );
        };
        if group.members.remove(&req.member_id).is_none() {
            return ShareHeartbeatResponse::error(
                code::UNKNOWN_MEMBER_ID,
                format!(
                    "share group {} has no member {}",
                    req.group_id, req.member_id
                ),
            );
        }
        group.target.remove(&req.member_id);
        refresh_target(group, topic, true);
        ShareHeartbeatResponse {
            error_code: code::NONE,
            error_message: None,
            member_id: Some(req.member_id),
            member_epoch: LEAVE_EPOCH,
            heartbeat_interval_ms: 0,
            assignment: None,
        }
    }

    /// The group's durable record; None if there is no such group (write a tombstone).
    pub fn record(&self, group_id: &str) -> Option<Vec<u8>> {
        self.groups
            .get(group_id)
            .map(|g| record::encode(group_id, g))
    }

    /// Loads a record written by [`ShareGroups::record`] (a later record of the same group
    /// replaces an earlier one). Members get a fresh session from `now_ms`. False if the bytes
    /// are not a valid record.
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

    /// Forgets every group `doomed` names (their offsets partition moved away). Returns how
    /// many went.
    pub fn unload(&mut self, doomed: &dyn Fn(&str) -> bool) -> usize {
        let before = self.groups.len();
        self.groups.retain(|id, _| !doomed(id));
        before - self.groups.len()
    }

    /// Members whose session has expired are removed and their groups' epochs bumped.
    /// Returns (group id, members removed) for each group that changed.
    pub fn tick(
        &mut self,
        now_ms: i64,
        topic: &dyn Fn(&str) -> Option<TopicInfo>,
    ) -> Vec<(String, Vec<String>)> {
        let mut changed = Vec::new();
        for (group_id, group) in &mut self.groups {
            let expired: Vec<String> = group
                .members
                .values()
                .filter(|m| m.session_deadline_ms <= now_ms)
                .map(|m| m.member_id.clone())
                .collect();
            if expired.is_empty() {
                continue;
            }
            for id in &expired {
                tracing::info!(group = %group_id, member = %id, "share group member expired");
                group.members.remove(id);
                group.target.remove(id);
            }
            refresh_target(group, topic, true);
            changed.push((group_id.clone(), expired));
        }
        changed
    }

    /// The earliest session deadline, for the tick loop.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.groups
            .values()
            .flat_map(|g| g.members.values())
            .map(|m| m.session_deadline_ms)
            .min()
    }

    /// ShareGroupDescribe; None if the id is not a share group here.
    pub fn describe(&self, group_id: &str) -> Option<ShareGroupView> {
        let g = self.groups.get(group_id)?;
        let members = g
            .members
            .values()
            .map(|m| ShareMemberView {
                member_id: m.member_id.clone(),
                rack_id: m.rack_id.clone(),
                member_epoch: m.member_epoch,
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                subscribed_topic_names: m.subscribed.iter().cloned().collect(),
                assignment: m.assigned.clone(),
            })
            .collect();
        Some(ShareGroupView {
            state: group_state(g),
            group_epoch: g.group_epoch,
            assignment_epoch: g.assignment_epoch,
            members,
            initialized: g.initialized.clone(),
        })
    }

    /// AlterShareGroupOffsets: records that `partitions` have share state, creating the group
    /// (empty) if it does not exist, as Kafka does. Err(NON_EMPTY_GROUP) while it has members.
    pub fn initialize(&mut self, group_id: &str, partitions: &Assignment) -> Result<(), i16> {
        if self.has_members(group_id) {
            return Err(code::NON_EMPTY_GROUP);
        }
        let g = self.groups.entry(group_id.to_string()).or_default();
        for (topic, ps) in partitions {
            g.initialized
                .entry(*topic)
                .or_default()
                .extend(ps.iter().copied());
        }
        Ok(())
    }

    /// DeleteShareGroupOffsets: forgets that `topics` have share state; returns the partitions
    /// that had, whose state the caller deletes. Err(NON_EMPTY_GROUP) while it has members,
    /// Err(GROUP_ID_NOT_FOUND) if it is not a share group.
    pub fn uninitialize(
        &mut self,
        group_id: &str,
        topics: &[uuid::Uuid],
    ) -> Result<Assignment, i16> {
        if self.has_members(group_id) {
            return Err(code::NON_EMPTY_GROUP);
        }
        let g = self
            .groups
            .get_mut(group_id)
            .ok_or(code::GROUP_ID_NOT_FOUND)?;
        Ok(topics
            .iter()
            .filter_map(|t| g.initialized.remove_entry(t))
            .collect())
    }

    /// (group id, state) of every share group here, for ListGroups.
    pub fn list(&self) -> Vec<(String, &'static str)> {
        self.groups
            .iter()
            .map(|(id, g)| (id.clone(), group_state(g)))
            .collect()
    }
}

/// Kafka's checks of a ShareGroupHeartbeat, before any state is touched.
fn validate(req: &ShareHeartbeat) -> Result<(), String> {
    if req.group_id.is_empty() {
        return Err("GroupId can't be empty".into());
    }
    if req.rack_id.as_deref() == Some("") {
        return Err("RackId can't be empty".into());
    }
    if req.member_id.is_empty() {
        return Err("MemberId can't be empty: share consumers make their own".into());
    }
    if req.member_id.len() > MEMBER_ID_BYTES_MAX
        || req
            .rack_id
            .as_ref()
            .is_some_and(|r| r.len() > MEMBER_ID_BYTES_MAX)
    {
        return Err(format!(
            "member and rack ids are limited to {MEMBER_ID_BYTES_MAX} bytes"
        ));
    }
    let names = req.subscribed_topic_names.as_deref();
    if names.is_some_and(|n| n.len() > SUBSCRIBED_TOPICS_MAX) {
        return Err(format!("at most {SUBSCRIBED_TOPICS_MAX} subscribed topics"));
    }
    match req.member_epoch {
        0 if names.is_none_or(|n| n.is_empty()) => {
            Err("SubscribedTopicNames must be set in the first request".into())
        }
        e if e < LEAVE_EPOCH => Err(format!("MemberEpoch {e} is invalid")),
        _ => Ok(()),
    }
}

/// The member after this heartbeat's changes (subscription, rack, client), with a new
/// session.
fn updated_member(
    before: Option<&Member>,
    req: &ShareHeartbeat,
    now_ms: i64,
    config: &ShareGroupConfig,
) -> Member {
    let mut m = before.cloned().unwrap_or_else(|| Member {
        member_id: req.member_id.clone(),
        member_epoch: 0,
        rack_id: None,
        client_id: String::new(),
        client_host: String::new(),
        subscribed: BTreeSet::new(),
        assigned: Assignment::new(),
        session_deadline_ms: 0,
    });
    if let Some(names) = &req.subscribed_topic_names {
        m.subscribed = names.iter().cloned().collect();
    }
    if req.rack_id.is_some() {
        m.rack_id = req.rack_id.clone();
    }
    m.client_id = req.client_id.clone();
    m.client_host = req.client_host.clone();
    m.session_deadline_ms = now_ms.saturating_add(i64::from(config.session_timeout_ms));
    m
}

/// Re-reads the subscribed topics' metadata and bumps the group epoch once if it changed or
/// `bump` says the members did; recomputes the target assignment when it lags the epoch.
fn refresh_target(group: &mut Group, topic: &dyn Fn(&str) -> Option<TopicInfo>, bump: bool) {
    let subscribed: BTreeSet<&String> = group
        .members
        .values()
        .flat_map(|m| m.subscribed.iter())
        .collect();
    let topics: BTreeMap<String, TopicInfo> = subscribed
        .into_iter()
        .filter_map(|name| topic(name).map(|info| (name.clone(), info)))
        .collect();
    if bump || topics != group.topics {
        group.topics = topics;
        group.group_epoch += 1;
    }
    if group.assignment_epoch < group.group_epoch {
        let subscriptions: BTreeMap<&str, &BTreeSet<String>> = group
            .members
            .values()
            .map(|m| (m.member_id.as_str(), &m.subscribed))
            .collect();
        group.target = assignor::assign(&subscriptions, &group.topics);
        group.assignment_epoch = group.group_epoch;
        for assignment in group.target.values() {
            for (topic, partitions) in assignment {
                let known = group.initialized.entry(*topic).or_default();
                known.extend(partitions.iter().copied());
            }
        }
    }
}

fn group_state(g: &Group) -> &'static str {
    if g.members.is_empty() {
        "Empty"
    } else {
        "Stable"
    }
}
