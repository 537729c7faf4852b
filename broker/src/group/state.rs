//! The classic group coordinator's state machine (Kafka's JoinGroup/SyncGroup protocol).
//!
//! Lives on the shard that owns the group's `__consumer_offsets` partition; nothing in it is
//! shared across shards. Every transition happens inside a call that carries `now_ms`; replies
//! that wait (JoinGroup until the rebalance completes, SyncGroup until the leader's assignment)
//! are held by their [`Token`] and handed back in the [`Outputs`] of whichever later call
//! releases them. Every token is answered exactly once: a member that is removed, fenced or
//! superseded while a reply is held gets an error reply.
//!
//! States, as Kafka names them:
//!
//! ```text
//!   Empty --join--> PreparingRebalance --all rejoined / timeout--> CompletingRebalance
//!     ^                 ^        |                                     |
//!     |                 |        +--no member left--> Empty            | leader's SyncGroup
//!     |                 +--join/leave/expiry-- Stable <----------------+
//!     +--last member leaves or expires (through a rebalance with nobody)
//! ```
//!
//! Choices where Kafka gives latitude, with their reasons:
//! - The initial delay of an empty group's first rebalance is extended by
//!   `group.initial.rebalance.delay.ms` each time a new member arrives, capped at the largest
//!   rebalance timeout from the rebalance's start, as Kafka does.
//! - A group that loses all its members keeps its generation (Kafka bumps it). Members are gone
//!   either way, so a stale commit gets UNKNOWN_MEMBER_ID whichever is chosen.
//! - Oversized metadata at join answers INCONSISTENT_GROUP_PROTOCOL; an oversized assignment at
//!   the leader's sync answers the leader INCONSISTENT_GROUP_PROTOCOL and restarts the rebalance
//!   (so held followers are released with REBALANCE_IN_PROGRESS). Kafka has no such bound.
//! - A second JoinGroup (or SyncGroup) from a member whose previous one is still held answers
//!   the previous one REBALANCE_IN_PROGRESS (Kafka drops it silently).
//! - Members that do not sync within the rebalance timeout after the join completes are removed
//!   and the group rebalances (Kafka's pending-sync timeout).
//!
//! Record layout, version 0 (integers big-endian; `str` = u16 length + UTF-8; `bytes` = u32
//! length + bytes; `opt` = u8 0/1 then the value when 1):
//!
//! ```text
//! u8 version=0 | str group_id | i32 generation_id | str protocol_type | opt str protocol_name
//! | opt str leader | u32 member_count | member_count x (
//!     str member_id | opt str group_instance_id | str client_id | str client_host
//!     | i32 session_timeout_ms | i32 rebalance_timeout_ms | bytes metadata | bytes assignment )
//! ```
//!
//! The record travels inside a `__consumer_offsets` record batch, whose CRC-32C covers it.

use std::collections::BTreeMap;

use bytes::Bytes;
use millrace_wire::codes::{
    COORDINATOR_NOT_AVAILABLE, FENCED_INSTANCE_ID, GROUP_ID_NOT_FOUND, GROUP_MAX_SIZE_REACHED,
    ILLEGAL_GENERATION, INCONSISTENT_GROUP_PROTOCOL, INVALID_SESSION_TIMEOUT, MEMBER_ID_REQUIRED,
    NONE, NON_EMPTY_GROUP, REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID,
};

use super::{
    GroupConfig, GroupDescription, GroupRecord, HeartbeatRequest, JoinMember, JoinRequest,
    JoinResponse, LeaveMember, MemberDescription, Outputs, SyncRequest, SyncResponse, Token,
};

const RECORD_VERSION: u8 = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

#[derive(Debug, Clone)]
struct Member {
    member_id: String,
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    /// (name, metadata) in the member's order of preference.
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    /// Generation the assignment was handed out in (-1: none yet).
    assignment_generation: i32,
    session_deadline_ms: i64,
    /// A JoinGroup reply held until the rebalance completes.
    join_token: Option<Token>,
    /// A SyncGroup reply held until the leader's assignment arrives.
    sync_token: Option<Token>,
    /// Sent SyncGroup in the current generation.
    synced: bool,
}

impl Member {
    fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(name, _)| name == protocol)
    }

    fn metadata_for(&self, protocol: Option<&str>) -> Bytes {
        let found = self
            .protocols
            .iter()
            .find(|(name, _)| Some(name.as_str()) == protocol);
        found
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }

    fn touch(&mut self, now_ms: i64) {
        self.session_deadline_ms = now_ms.saturating_add(i64::from(self.session_timeout_ms));
    }
}

/// A member id handed out with MEMBER_ID_REQUIRED that has not rejoined yet.
#[derive(Debug, Clone)]
struct PendingMember {
    member_id: String,
    deadline_ms: i64,
}

#[derive(Debug, Clone)]
struct Group {
    group_id: String,
    state: GroupState,
    generation_id: i32,
    protocol_type: String,
    protocol_name: Option<String>,
    leader: Option<String>,
    /// In join order: the first is the leader-in-waiting when the leader goes.
    members: Vec<Member>,
    pending: Vec<PendingMember>,
    /// PreparingRebalance: when members that have not rejoined are dropped.
    rebalance_deadline_ms: i64,
    /// PreparingRebalance of an empty group: nothing completes before this.
    initial_delay_until_ms: Option<i64>,
    /// PreparingRebalance: when it started (caps the initial delay's extensions).
    rebalance_start_ms: i64,
    /// CompletingRebalance: members that have not synced by then are removed.
    sync_deadline_ms: i64,
}

/// One shard's classic group coordinator. See the module docs.
#[derive(Debug)]
pub struct GroupCoordinator {
    config: GroupConfig,
    groups: BTreeMap<String, Group>,
    member_seq: u64,
}

impl GroupCoordinator {
    /// A coordinator with no groups.
    pub fn new(config: GroupConfig) -> Self {
        GroupCoordinator {
            config,
            groups: BTreeMap::new(),
            member_seq: 0,
        }
    }

    /// Handles a JoinGroup; its answer for `token` is in these outputs or in a later call's.
    pub fn join(&mut self, now_ms: i64, req: JoinRequest, token: Token) -> Outputs {
        let mut out = Outputs::default();
        if let Err(code) = self.join_inner(now_ms, &req, token, &mut out) {
            out.joins.push((token, join_error(code, &req.member_id)));
        }
        out
    }

    /// Handles a SyncGroup; its answer for `token` is in these outputs or in a later call's.
    pub fn sync(&mut self, now_ms: i64, req: SyncRequest, token: Token) -> Outputs {
        let mut out = Outputs::default();
        if let Err(code) = self.sync_inner(now_ms, &req, token, &mut out) {
            out.syncs.push((token, sync_error(code)));
        }
        out
    }

    /// Handles a Heartbeat and returns its error code.
    pub fn heartbeat(&mut self, now_ms: i64, req: &HeartbeatRequest) -> i16 {
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return UNKNOWN_MEMBER_ID;
        };
        if group.state == GroupState::Dead {
            return COORDINATOR_NOT_AVAILABLE;
        }
        let idx = match group.check_member(&req.member_id, req.group_instance_id.as_deref()) {
            Ok(idx) => idx,
            Err(code) => return code,
        };
        if req.generation_id != group.generation_id {
            return ILLEGAL_GENERATION;
        }
        match group.state {
            GroupState::Empty | GroupState::Dead => UNKNOWN_MEMBER_ID,
            GroupState::PreparingRebalance => {
                group.members[idx].touch(now_ms);
                REBALANCE_IN_PROGRESS
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                group.members[idx].touch(now_ms);
                NONE
            }
        }
    }

    /// Handles a LeaveGroup: one error code per member, in order, and the replies it released.
    pub fn leave(
        &mut self,
        now_ms: i64,
        group_id: &str,
        members: &[LeaveMember],
    ) -> (Vec<i16>, Outputs) {
        let mut out = Outputs::default();
        let Some(group) = self.groups.get_mut(group_id) else {
            return (vec![UNKNOWN_MEMBER_ID; members.len()], out);
        };
        let mut codes = Vec::with_capacity(members.len());
        let mut removed_any = false;
        for leaving in members {
            let code = group.leave_one(leaving, &mut out);
            removed_any |= code == NONE;
            codes.push(code);
        }
        if removed_any {
            group.after_removal(now_ms, &self.config, &mut out);
        }
        (codes, out)
    }

    /// Checks an OffsetCommit against the group; a valid one counts as a heartbeat.
    ///
    /// Generation -1 with no member id is a standalone ("simple") consumer: allowed when the
    /// group does not exist or is Empty.
    pub fn validate_commit(
        &mut self,
        now_ms: i64,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> i16 {
        let member = (generation_id, member_id, group_instance_id);
        self.validate_offset_commit(now_ms, group_id, member, false)
    }

    /// Checks a TxnOffsetCommit (KIP-447) against the group, as Kafka does: like an
    /// OffsetCommit, except that a request without member and generation (TxnOffsetCommit
    /// before v3) is accepted whatever the group's state, and a group completing a rebalance
    /// is not refused (the transaction is fenced by the generation instead).
    pub fn validate_txn_commit(
        &mut self,
        now_ms: i64,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> i16 {
        let member = (generation_id, member_id, group_instance_id);
        self.validate_offset_commit(now_ms, group_id, member, true)
    }

    fn validate_offset_commit(
        &mut self,
        now_ms: i64,
        group_id: &str,
        (generation_id, member_id, group_instance_id): (i32, &str, Option<&str>),
        transactional: bool,
    ) -> i16 {
        let Some(group) = self.groups.get_mut(group_id) else {
            return if generation_id < 0 {
                NONE
            } else {
                ILLEGAL_GENERATION
            };
        };
        if group.state == GroupState::Dead {
            return COORDINATOR_NOT_AVAILABLE;
        }
        let group_managed =
            generation_id >= 0 || !member_id.is_empty() || group_instance_id.is_some();
        if !group_managed {
            return if group.state == GroupState::Empty || transactional {
                NONE
            } else {
                UNKNOWN_MEMBER_ID
            };
        }
        let idx = match group.check_member(member_id, group_instance_id) {
            Ok(idx) => idx,
            Err(code) => return code,
        };
        if generation_id != group.generation_id {
            return ILLEGAL_GENERATION;
        }
        if group.state == GroupState::CompletingRebalance && !transactional {
            return REBALANCE_IN_PROGRESS;
        }
        group.members[idx].touch(now_ms);
        NONE
    }

    /// ListGroups: (group id, protocol type, state name) for every group, by group id.
    pub fn list(&self) -> Vec<(String, String, &'static str)> {
        let groups = self.groups.values();
        groups
            .map(|g| (g.group_id.clone(), g.protocol_type.clone(), g.state.name()))
            .collect()
    }

    /// DescribeGroups for one group; None if the coordinator does not know it.
    ///
    /// As in Kafka, the protocol name, metadata and assignments are reported only when Stable.
    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let group = self.groups.get(group_id)?;
        let stable = group.state == GroupState::Stable;
        let members = group.members.iter().map(|m| {
            let mut description = group.member_description(m);
            if !stable {
                description.metadata = Bytes::new();
                description.assignment = Bytes::new();
            }
            description
        });
        Some(GroupDescription {
            state: group.state.name(),
            protocol_type: group.protocol_type.clone(),
            protocol_name: if stable {
                group.protocol_name.clone().unwrap_or_default()
            } else {
                String::new()
            },
            members: members.collect(),
        })
    }

    /// DeleteGroups for one group. On NONE the caller persists the tombstone
    /// ([`GroupCoordinator::record`] now returns None).
    pub fn delete(&mut self, group_id: &str) -> i16 {
        let Some(group) = self.groups.get(group_id) else {
            return GROUP_ID_NOT_FOUND;
        };
        if group.state != GroupState::Empty || !group.members.is_empty() {
            return NON_EMPTY_GROUP;
        }
        // Pending member ids (MEMBER_ID_REQUIRED) hold no reply; they rejoin as unknown.
        self.groups.remove(group_id);
        NONE
    }

    /// Forgets every group `doomed` names, members or not (their offsets partition moved to
    /// another coordinator; pending joins and syncs are the caller's to answer). Returns how
    /// many went.
    pub fn unload(&mut self, doomed: &dyn Fn(&str) -> bool) -> usize {
        let before = self.groups.len();
        self.groups.retain(|id, _| !doomed(id));
        before - self.groups.len()
    }

    /// Runs timers due at `now_ms`: session expiry, pending-member expiry, rebalance and
    /// initial-delay completion, sync timeout.
    pub fn tick(&mut self, now_ms: i64) -> Outputs {
        let mut out = Outputs::default();
        for group in self.groups.values_mut() {
            group.tick(now_ms, &self.config, &mut out);
        }
        // A group created only for MEMBER_ID_REQUIRED that never formed has nothing to keep;
        // listed as changed so that a record written for it, if any, gets its tombstone.
        self.groups.retain(|id, g| {
            let unformed = g.is_unformed();
            if unformed {
                out.changed_groups.push(id.clone());
            }
            !unformed
        });
        out
    }

    /// The earliest time [`GroupCoordinator::tick`] has work to do, if any.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.groups
            .values()
            .filter_map(Group::next_deadline_ms)
            .min()
    }

    /// The durable state of a group; None if it is gone (the caller writes a tombstone).
    pub fn record(&self, group_id: &str) -> Option<GroupRecord> {
        let group = self.groups.get(group_id)?;
        Some(GroupRecord {
            group_id: group.group_id.clone(),
            generation_id: group.generation_id,
            protocol_type: group.protocol_type.clone(),
            protocol_name: group.protocol_name.clone(),
            leader: group.leader.clone(),
            members: group
                .members
                .iter()
                .map(|m| group.member_description(m))
                .collect(),
        })
    }

    /// Loads a persisted group (at start-up); replaces any group with the same id. Restored
    /// members get a fresh session from `now_ms`, so they expire unless they heartbeat.
    pub fn restore(&mut self, now_ms: i64, record: GroupRecord) {
        let mut members: Vec<Member> = Vec::with_capacity(record.members.len());
        for m in record.members {
            if members.iter().any(|x| x.member_id == m.member_id) {
                continue;
            }
            let protocol = record.protocol_name.clone().unwrap_or_default();
            let mut member = Member {
                member_id: m.member_id,
                group_instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout_ms: m.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                protocols: vec![(protocol, m.metadata)],
                assignment: m.assignment,
                assignment_generation: record.generation_id,
                session_deadline_ms: 0,
                join_token: None,
                sync_token: None,
                synced: true,
            };
            member.touch(now_ms);
            members.push(member);
        }
        let leader = match record.leader {
            Some(l) if members.iter().any(|m| m.member_id == l) => Some(l),
            _ => members.first().map(|m| m.member_id.clone()),
        };
        let state = if members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        let mut group = Group::new(record.group_id, now_ms);
        group.state = state;
        group.generation_id = record.generation_id;
        group.protocol_type = record.protocol_type;
        group.protocol_name = if members.is_empty() {
            None
        } else {
            record.protocol_name
        };
        group.leader = leader;
        group.members = members;
        self.groups.insert(group.group_id.clone(), group);
    }

    fn new_member_id(&mut self, now_ms: i64, client_id: &str) -> String {
        self.member_seq += 1;
        format!("{client_id}-{now_ms:x}-{:x}", self.member_seq)
    }

    fn join_inner(
        &mut self,
        now_ms: i64,
        req: &JoinRequest,
        token: Token,
        out: &mut Outputs,
    ) -> Result<(), i16> {
        let cfg = &self.config;
        if req.session_timeout_ms < cfg.min_session_timeout_ms
            || req.session_timeout_ms > cfg.max_session_timeout_ms
        {
            return Err(INVALID_SESSION_TIMEOUT);
        }
        let oversized = req
            .protocols
            .iter()
            .any(|(_, m)| m.len() > cfg.member_metadata_bytes_max);
        if req.protocol_type.is_empty() || req.protocols.is_empty() || oversized {
            return Err(INCONSISTENT_GROUP_PROTOCOL);
        }
        let group = self.groups.get(&req.group_id);
        if group.is_some_and(|g| g.state == GroupState::Dead) {
            return Err(COORDINATOR_NOT_AVAILABLE);
        }
        let instance = req.group_instance_id.as_deref();
        let existing = group.and_then(|g| match instance.and_then(|i| g.find_instance(i)) {
            Some(idx) => Some(idx),
            None => g.find(&req.member_id),
        });
        if !group.is_none_or(|g| g.accepts_protocols(req, existing)) {
            return Err(INCONSISTENT_GROUP_PROTOCOL);
        }
        let static_idx = group.and_then(|g| instance.and_then(|i| g.find_instance(i)));
        if let (Some(g), Some(idx)) = (group, static_idx) {
            if req.member_id.is_empty() {
                let new_id = self.new_member_id(now_ms, &req.client_id);
                let group = group_mut(&mut self.groups, &req.group_id);
                group.static_rejoin(idx, new_id, now_ms, req, token, &self.config, out);
                return Ok(());
            }
            if g.members[idx].member_id != req.member_id {
                return Err(FENCED_INSTANCE_ID);
            }
        }
        if req.member_id.is_empty() {
            return self.new_member_join(now_ms, req, token, out);
        }
        let group = self
            .groups
            .get_mut(&req.group_id)
            .ok_or(UNKNOWN_MEMBER_ID)?;
        if let Some(p) = group
            .pending
            .iter()
            .position(|p| p.member_id == req.member_id)
        {
            group.pending.remove(p);
            group.add_member(req.member_id.clone(), now_ms, req, token, &self.config, out);
            return Ok(());
        }
        let idx = group.find(&req.member_id).ok_or(UNKNOWN_MEMBER_ID)?;
        group.known_member_join(idx, now_ms, req, token, &self.config, out);
        Ok(())
    }

    fn new_member_join(
        &mut self,
        now_ms: i64,
        req: &JoinRequest,
        token: Token,
        out: &mut Outputs,
    ) -> Result<(), i16> {
        let size = self
            .groups
            .get(&req.group_id)
            .map_or(0, |g| g.members.len() + g.pending.len());
        if size >= self.config.max_size {
            return Err(GROUP_MAX_SIZE_REACHED);
        }
        let member_id = self.new_member_id(now_ms, &req.client_id);
        let group = group_mut(&mut self.groups, &req.group_id);
        if req.require_known_member_id && req.group_instance_id.is_none() {
            let deadline_ms = now_ms.saturating_add(i64::from(req.session_timeout_ms));
            group.pending.push(PendingMember {
                member_id: member_id.clone(),
                deadline_ms,
            });
            out.joins
                .push((token, join_error(MEMBER_ID_REQUIRED, &member_id)));
            return Ok(());
        }
        group.add_member(member_id, now_ms, req, token, &self.config, out);
        Ok(())
    }

    fn sync_inner(
        &mut self,
        now_ms: i64,
        req: &SyncRequest,
        token: Token,
        out: &mut Outputs,
    ) -> Result<(), i16> {
        let group = self
            .groups
            .get_mut(&req.group_id)
            .ok_or(UNKNOWN_MEMBER_ID)?;
        if group.state == GroupState::Dead {
            return Err(COORDINATOR_NOT_AVAILABLE);
        }
        let idx = group.check_member(&req.member_id, req.group_instance_id.as_deref())?;
        if req.generation_id != group.generation_id {
            return Err(ILLEGAL_GENERATION);
        }
        let type_differs = req
            .protocol_type
            .as_ref()
            .is_some_and(|t| *t != group.protocol_type);
        let name_differs = req.protocol_name.is_some() && req.protocol_name != group.protocol_name;
        if type_differs || name_differs {
            return Err(INCONSISTENT_GROUP_PROTOCOL);
        }
        match group.state {
            GroupState::Empty | GroupState::Dead => Err(UNKNOWN_MEMBER_ID),
            GroupState::PreparingRebalance => Err(REBALANCE_IN_PROGRESS),
            GroupState::Stable => {
                let member = &mut group.members[idx];
                member.touch(now_ms);
                let assignment = member.assignment.clone();
                out.syncs.push((token, group.sync_ok(assignment)));
                Ok(())
            }
            GroupState::CompletingRebalance => {
                group.completing_sync(idx, now_ms, req, token, &self.config, out);
                Ok(())
            }
        }
    }
}

fn group_mut<'a>(groups: &'a mut BTreeMap<String, Group>, group_id: &str) -> &'a mut Group {
    groups
        .entry(group_id.to_string())
        .or_insert_with(|| Group::new(group_id.to_string(), 0))
}

impl Group {
    fn new(group_id: String, now_ms: i64) -> Self {
        Group {
            group_id,
            state: GroupState::Empty,
            generation_id: 0,
            protocol_type: String::new(),
            protocol_name: None,
            leader: None,
            members: Vec::new(),
            pending: Vec::new(),
            rebalance_deadline_ms: now_ms,
            initial_delay_until_ms: None,
            rebalance_start_ms: now_ms,
            sync_deadline_ms: now_ms,
        }
    }

    fn find(&self, member_id: &str) -> Option<usize> {
        if member_id.is_empty() {
            return None;
        }
        self.members.iter().position(|m| m.member_id == member_id)
    }

    fn find_instance(&self, instance_id: &str) -> Option<usize> {
        self.members
            .iter()
            .position(|m| m.group_instance_id.as_deref() == Some(instance_id))
    }

    /// The member a request names: FENCED_INSTANCE_ID if its static id now belongs to another
    /// member id, UNKNOWN_MEMBER_ID if the member id is not in the group.
    fn check_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<usize, i16> {
        if let Some(idx) = instance_id.and_then(|i| self.find_instance(i)) {
            if self.members[idx].member_id != member_id {
                return Err(FENCED_INSTANCE_ID);
            }
        }
        self.find(member_id).ok_or(UNKNOWN_MEMBER_ID)
    }

    fn is_leader(&self, idx: usize) -> bool {
        self.leader.as_deref() == Some(self.members[idx].member_id.as_str())
    }

    fn is_unformed(&self) -> bool {
        self.state == GroupState::Empty
            && self.generation_id == 0
            && self.members.is_empty()
            && self.pending.is_empty()
    }

    /// Kafka's supportsProtocols: an empty group takes anything; otherwise the type must match
    /// and one of the joiner's protocols must be supported by every other member.
    fn accepts_protocols(&self, req: &JoinRequest, exclude: Option<usize>) -> bool {
        let mut others = self
            .members
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != exclude);
        if others.clone().next().is_none() {
            return true;
        }
        req.protocol_type == self.protocol_type
            && req
                .protocols
                .iter()
                .any(|(name, _)| others.all(|(_, m)| m.supports(name)))
    }

    /// Protocols every member supports; each member votes for its first such one; most votes
    /// wins, ties going to the earliest in the first member's order of preference.
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.first()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| self.members.iter().all(|m| m.supports(name)))
            .collect();
        let mut votes = vec![0usize; candidates.len()];
        for member in &self.members {
            let choice = member
                .protocols
                .iter()
                .find_map(|(name, _)| candidates.iter().position(|c| *c == name.as_str()));
            if let Some(i) = choice {
                votes[i] += 1;
            }
        }
        let mut best: Option<usize> = None;
        for (i, v) in votes.iter().enumerate() {
            if best.is_none_or(|b| *v > votes[b]) {
                best = Some(i);
            }
        }
        best.map(|i| candidates[i].to_string())
    }

    fn max_rebalance_timeout_ms(&self) -> i64 {
        let max = self
            .members
            .iter()
            .map(|m| m.rebalance_timeout_ms.max(0))
            .max();
        i64::from(max.unwrap_or(0))
    }

    fn member_description(&self, m: &Member) -> MemberDescription {
        MemberDescription {
            member_id: m.member_id.clone(),
            group_instance_id: m.group_instance_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            session_timeout_ms: m.session_timeout_ms,
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            metadata: m.metadata_for(self.protocol_name.as_deref()),
            assignment: m.assignment.clone(),
        }
    }

    /// A successful JoinGroup answer for the current generation.
    fn join_ok(&self, idx: usize, with_members: bool, skip_assignment: bool) -> JoinResponse {
        let members = if with_members {
            let protocol = self.protocol_name.as_deref();
            let all = self.members.iter().map(|m| JoinMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata_for(protocol),
            });
            all.collect()
        } else {
            Vec::new()
        };
        JoinResponse {
            error_code: NONE,
            generation_id: self.generation_id,
            protocol_type: Some(self.protocol_type.clone()),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: self.members[idx].member_id.clone(),
            members,
            skip_assignment,
        }
    }

    fn sync_ok(&self, assignment: Bytes) -> SyncResponse {
        SyncResponse {
            error_code: NONE,
            protocol_type: Some(self.protocol_type.clone()),
            protocol_name: self.protocol_name.clone(),
            assignment,
        }
    }

    fn set_join_token(&mut self, idx: usize, token: Token, out: &mut Outputs) {
        let member = &mut self.members[idx];
        if let Some(old) = member.join_token.replace(token) {
            out.joins
                .push((old, join_error(REBALANCE_IN_PROGRESS, &member.member_id)));
        }
    }

    fn update_member(&mut self, idx: usize, now_ms: i64, req: &JoinRequest) {
        let member = &mut self.members[idx];
        member.protocols = req.protocols.clone();
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        member.touch(now_ms);
    }

    fn add_member(
        &mut self,
        member_id: String,
        now_ms: i64,
        req: &JoinRequest,
        token: Token,
        cfg: &GroupConfig,
        out: &mut Outputs,
    ) {
        if self.members.is_empty() {
            self.protocol_type = req.protocol_type.clone();
        }
        let mut member = Member {
            member_id: member_id.clone(),
            group_instance_id: req.group_instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocols: req.protocols.clone(),
            assignment: Bytes::new(),
            assignment_generation: -1,
            session_deadline_ms: 0,
            join_token: Some(token),
            sync_token: None,
            synced: false,
        };
        member.touch(now_ms);
        self.members.push(member);
        if self.leader.is_none() {
            self.leader = Some(member_id);
        }
        match self.state {
            GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now_ms, cfg, out);
            }
            GroupState::PreparingRebalance => self.extend_initial_delay(now_ms, cfg),
            GroupState::Dead => {}
        }
        self.maybe_complete_join(now_ms, out);
    }

    fn known_member_join(
        &mut self,
        idx: usize,
        now_ms: i64,
        req: &JoinRequest,
        token: Token,
        cfg: &GroupConfig,
        out: &mut Outputs,
    ) {
        let unchanged = self.members[idx].protocols == req.protocols;
        self.update_member(idx, now_ms, req);
        match self.state {
            GroupState::CompletingRebalance if unchanged => {
                // It probably lost the JoinGroup answer: repeat it for the current generation.
                let leader = self.is_leader(idx);
                out.joins.push((token, self.join_ok(idx, leader, false)));
            }
            GroupState::Stable if unchanged && !self.is_leader(idx) => {
                out.joins.push((token, self.join_ok(idx, false, false)));
            }
            GroupState::PreparingRebalance => {
                self.set_join_token(idx, token, out);
                self.maybe_complete_join(now_ms, out);
            }
            _ => {
                self.set_join_token(idx, token, out);
                self.prepare_rebalance(now_ms, cfg, out);
                self.maybe_complete_join(now_ms, out);
            }
        }
    }

    /// KIP-345: a static member rejoining with an empty member id takes a new member id, the
    /// old id is fenced, and its assignment is kept; no rebalance when nothing changed.
    #[allow(clippy::too_many_arguments)]
    fn static_rejoin(
        &mut self,
        idx: usize,
        new_id: String,
        now_ms: i64,
        req: &JoinRequest,
        token: Token,
        cfg: &GroupConfig,
        out: &mut Outputs,
    ) {
        let member = &mut self.members[idx];
        let old_id = std::mem::replace(&mut member.member_id, new_id.clone());
        if let Some(old) = member.join_token.take() {
            out.joins
                .push((old, join_error(FENCED_INSTANCE_ID, &old_id)));
        }
        if let Some(old) = member.sync_token.take() {
            out.syncs.push((old, sync_error(FENCED_INSTANCE_ID)));
        }
        // The new incarnation has not synced yet (matters while CompletingRebalance).
        member.synced = false;
        if self.leader.as_deref() == Some(old_id.as_str()) {
            self.leader = Some(new_id);
        }
        let unchanged = self.members[idx].protocols == req.protocols;
        self.update_member(idx, now_ms, req);
        let leader = self.is_leader(idx);
        match self.state {
            GroupState::Stable if unchanged && self.select_protocol() == self.protocol_name => {
                out.joins.push((token, self.join_ok(idx, leader, leader)));
                out.changed_groups.push(self.group_id.clone());
            }
            GroupState::CompletingRebalance if unchanged => {
                out.joins.push((token, self.join_ok(idx, leader, false)));
            }
            GroupState::PreparingRebalance => {
                self.set_join_token(idx, token, out);
                self.maybe_complete_join(now_ms, out);
            }
            _ => {
                self.set_join_token(idx, token, out);
                self.prepare_rebalance(now_ms, cfg, out);
                self.maybe_complete_join(now_ms, out);
            }
        }
    }

    fn completing_sync(
        &mut self,
        idx: usize,
        now_ms: i64,
        req: &SyncRequest,
        token: Token,
        cfg: &GroupConfig,
        out: &mut Outputs,
    ) {
        let member = &mut self.members[idx];
        member.touch(now_ms);
        member.synced = true;
        if let Some(old) = member.sync_token.replace(token) {
            out.syncs.push((old, sync_error(REBALANCE_IN_PROGRESS)));
        }
        if !self.is_leader(idx) {
            return;
        }
        let max = cfg.member_metadata_bytes_max;
        if req.assignments.iter().any(|(_, a)| a.len() > max) {
            if let Some(t) = self.members[idx].sync_token.take() {
                out.syncs.push((t, sync_error(INCONSISTENT_GROUP_PROTOCOL)));
            }
            self.prepare_rebalance(now_ms, cfg, out);
            self.maybe_complete_join(now_ms, out);
            return;
        }
        let generation = self.generation_id;
        for m in &mut self.members {
            let given = req.assignments.iter().find(|(id, _)| *id == m.member_id);
            m.assignment = given.map(|(_, a)| a.clone()).unwrap_or_default();
            m.assignment_generation = generation;
        }
        self.state = GroupState::Stable;
        for i in 0..self.members.len() {
            if let Some(t) = self.members[i].sync_token.take() {
                let response = self.sync_ok(self.members[i].assignment.clone());
                out.syncs.push((t, response));
            }
        }
        out.changed_groups.push(self.group_id.clone());
    }

    fn leave_one(&mut self, leaving: &LeaveMember, out: &mut Outputs) -> i16 {
        let instance = leaving.group_instance_id.as_deref();
        let idx = match instance {
            Some(i) => match self.find_instance(i) {
                None => return UNKNOWN_MEMBER_ID,
                Some(idx) => {
                    let id = &self.members[idx].member_id;
                    if !leaving.member_id.is_empty() && *id != leaving.member_id {
                        return FENCED_INSTANCE_ID;
                    }
                    idx
                }
            },
            None => {
                if let Some(p) = self
                    .pending
                    .iter()
                    .position(|p| p.member_id == leaving.member_id)
                {
                    self.pending.remove(p);
                    return NONE;
                }
                match self.find(&leaving.member_id) {
                    Some(idx) => idx,
                    None => return UNKNOWN_MEMBER_ID,
                }
            }
        };
        self.remove_member(idx, out);
        NONE
    }

    /// Removes a member, answering whatever reply it has held with UNKNOWN_MEMBER_ID; the
    /// caller runs [`Group::after_removal`] once it has removed everyone it will.
    fn remove_member(&mut self, idx: usize, out: &mut Outputs) {
        let member = self.members.remove(idx);
        if let Some(t) = member.join_token {
            out.joins
                .push((t, join_error(UNKNOWN_MEMBER_ID, &member.member_id)));
        }
        if let Some(t) = member.sync_token {
            out.syncs.push((t, sync_error(UNKNOWN_MEMBER_ID)));
        }
        if self.leader.as_deref() == Some(member.member_id.as_str()) {
            self.leader = self.members.first().map(|m| m.member_id.clone());
        }
    }

    fn after_removal(&mut self, now_ms: i64, cfg: &GroupConfig, out: &mut Outputs) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now_ms, cfg, out);
                self.maybe_complete_join(now_ms, out);
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now_ms, out),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    fn prepare_rebalance(&mut self, now_ms: i64, cfg: &GroupConfig, out: &mut Outputs) {
        if self.state == GroupState::CompletingRebalance {
            // The assignment being synced is void: release the held syncs so members rejoin.
            for m in &mut self.members {
                if let Some(t) = m.sync_token.take() {
                    out.syncs.push((t, sync_error(REBALANCE_IN_PROGRESS)));
                }
            }
        }
        let from_empty = self.state == GroupState::Empty;
        self.state = GroupState::PreparingRebalance;
        self.rebalance_start_ms = now_ms;
        self.rebalance_deadline_ms = now_ms.saturating_add(self.max_rebalance_timeout_ms());
        self.initial_delay_until_ms =
            from_empty.then(|| now_ms.saturating_add(cfg.initial_rebalance_delay_ms.max(0)));
    }

    /// Each newcomer during the initial delay pushes it back by the delay, up to the largest
    /// rebalance timeout from the rebalance's start.
    fn extend_initial_delay(&mut self, now_ms: i64, cfg: &GroupConfig) {
        let Some(until) = self.initial_delay_until_ms else {
            return;
        };
        let cap = self
            .rebalance_start_ms
            .saturating_add(self.max_rebalance_timeout_ms());
        let wanted = now_ms
            .saturating_add(cfg.initial_rebalance_delay_ms.max(0))
            .min(cap);
        self.initial_delay_until_ms = Some(until.max(wanted));
        self.rebalance_deadline_ms = self.rebalance_deadline_ms.max(cap);
    }

    fn all_joined(&self) -> bool {
        self.pending.is_empty() && self.members.iter().all(|m| m.join_token.is_some())
    }

    /// When a PreparingRebalance completes: after the initial delay, once everyone has rejoined
    /// or the rebalance timeout has passed.
    fn join_completion_ms(&self) -> i64 {
        if self.members.is_empty() {
            // Nobody to wait for: pending ids rejoin as newcomers of the Empty group.
            return i64::MIN;
        }
        let delay = self.initial_delay_until_ms.unwrap_or(i64::MIN);
        let rejoin = if self.all_joined() {
            i64::MIN
        } else {
            self.rebalance_deadline_ms
        };
        delay.max(rejoin)
    }

    fn maybe_complete_join(&mut self, now_ms: i64, out: &mut Outputs) {
        if self.state == GroupState::PreparingRebalance && now_ms >= self.join_completion_ms() {
            self.complete_join(now_ms, out);
        }
    }

    fn complete_join(&mut self, now_ms: i64, out: &mut Outputs) {
        // Members that did not rejoin in time are out.
        self.members.retain(|m| m.join_token.is_some());
        self.initial_delay_until_ms = None;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.leader = None;
            self.protocol_name = None;
            out.changed_groups.push(self.group_id.clone());
            return;
        }
        self.generation_id = if self.generation_id == i32::MAX {
            1
        } else {
            self.generation_id + 1
        };
        self.protocol_name = self.select_protocol();
        if self.leader.as_ref().is_none_or(|l| self.find(l).is_none()) {
            self.leader = Some(self.members[0].member_id.clone());
        }
        self.state = GroupState::CompletingRebalance;
        self.sync_deadline_ms = now_ms.saturating_add(self.max_rebalance_timeout_ms());
        for idx in 0..self.members.len() {
            self.members[idx].synced = false;
            self.members[idx].touch(now_ms);
            if let Some(t) = self.members[idx].join_token.take() {
                let leader = self.is_leader(idx);
                out.joins.push((t, self.join_ok(idx, leader, false)));
            }
        }
    }

    fn tick(&mut self, now_ms: i64, cfg: &GroupConfig, out: &mut Outputs) {
        self.pending.retain(|p| p.deadline_ms > now_ms);
        let mut removed = false;
        let mut idx = 0;
        while idx < self.members.len() {
            let m = &self.members[idx];
            // A member waiting for a reply is kept alive; the rebalance/sync timeouts bound it.
            let waiting = m.join_token.is_some() || m.sync_token.is_some();
            if !waiting && m.session_deadline_ms <= now_ms {
                self.remove_member(idx, out);
                removed = true;
            } else {
                idx += 1;
            }
        }
        if self.state == GroupState::CompletingRebalance && now_ms >= self.sync_deadline_ms {
            while let Some(idx) = self.members.iter().position(|m| !m.synced) {
                self.remove_member(idx, out);
                removed = true;
            }
        }
        if removed {
            self.after_removal(now_ms, cfg, out);
        } else {
            self.maybe_complete_join(now_ms, out);
        }
    }

    fn next_deadline_ms(&self) -> Option<i64> {
        let sessions = self
            .members
            .iter()
            .filter(|m| m.join_token.is_none() && m.sync_token.is_none());
        let mut next = sessions.map(|m| m.session_deadline_ms).min();
        let mut consider = |t: i64| next = Some(next.map_or(t, |n: i64| n.min(t)));
        if let Some(p) = self.pending.iter().map(|p| p.deadline_ms).min() {
            consider(p);
        }
        match self.state {
            GroupState::PreparingRebalance => consider(self.join_completion_ms()),
            GroupState::CompletingRebalance => consider(self.sync_deadline_ms),
            _ => {}
        }
        next
    }
}

fn join_error(code: i16, member_id: &str) -> JoinResponse {
    JoinResponse {
        error_code: code,
        generation_id: -1,
        protocol_type: None,
        protocol_name: None,
        leader: String::new(),
        member_id: member_id.to_string(),
        members: Vec::new(),
        skip_assignment: false,
    }
}

fn sync_error(code: i16) -> SyncResponse {
    SyncResponse {
        error_code: code,
        protocol_type: None,
        protocol_name: None,
        assignment: Bytes::new(),
    }
}

/// Serialises a record in the layout drawn in the module docs.
pub(crate) fn encode_record(record: &GroupRecord) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64);
    buf.push(RECORD_VERSION);
    put_str(&mut buf, &record.group_id);
    buf.extend_from_slice(&record.generation_id.to_be_bytes());
    put_str(&mut buf, &record.protocol_type);
    put_opt_str(&mut buf, record.protocol_name.as_deref());
    put_opt_str(&mut buf, record.leader.as_deref());
    let count = u32::try_from(record.members.len()).expect("member count fits u32");
    buf.extend_from_slice(&count.to_be_bytes());
    for m in &record.members {
        put_str(&mut buf, &m.member_id);
        put_opt_str(&mut buf, m.group_instance_id.as_deref());
        put_str(&mut buf, &m.client_id);
        put_str(&mut buf, &m.client_host);
        buf.extend_from_slice(&m.session_timeout_ms.to_be_bytes());
        buf.extend_from_slice(&m.rebalance_timeout_ms.to_be_bytes());
        put_bytes(&mut buf, &m.metadata);
        put_bytes(&mut buf, &m.assignment);
    }
    buf
}

/// Parses [`encode_record`]'s output; None for anything else (never panics; every length is
/// checked against the bytes present before it is used).
pub(crate) fn decode_record(bytes: &[u8]) -> Option<GroupRecord> {
    let mut r = Reader { buf: bytes };
    if r.u8()? != RECORD_VERSION {
        return None;
    }
    let group_id = r.str()?;
    let generation_id = r.i32()?;
    let protocol_type = r.str()?;
    let protocol_name = r.opt_str()?;
    let leader = r.opt_str()?;
    let count = r.u32()? as usize;
    let mut members = Vec::with_capacity(count.min(r.buf.len() / MEMBER_BYTES_MIN));
    for _ in 0..count {
        members.push(MemberDescription {
            member_id: r.str()?,
            group_instance_id: r.opt_str()?,
            client_id: r.str()?,
            client_host: r.str()?,
            session_timeout_ms: r.i32()?,
            rebalance_timeout_ms: r.i32()?,
            metadata: r.bytes()?,
            assignment: r.bytes()?,
        });
    }
    if !r.buf.is_empty() {
        return None;
    }
    Some(GroupRecord {
        group_id,
        generation_id,
        protocol_type,
        protocol_name,
        leader,
        members,
    })
}

/// The smallest encoded member: four empty strings' lengths minus one optional, a flag, two
/// i32 and two empty byte strings' lengths.
const MEMBER_BYTES_MIN: usize = 2 + 1 + 2 + 2 + 4 + 4 + 4 + 4;

fn put_str(buf: &mut Vec<u8>, s: &str) {
    // Kafka strings are at most i16::MAX bytes; longer ones are cut at a char boundary.
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    buf.extend_from_slice(&(end as u16).to_be_bytes());
    buf.extend_from_slice(&s.as_bytes()[..end]);
}

fn put_opt_str(buf: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => buf.push(0),
        Some(s) => {
            buf.push(1);
            put_str(buf, s);
        }
    }
}

fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    let len = u32::try_from(b.len()).expect("metadata is bounded far below 4 GiB");
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(b);
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    fn str(&mut self) -> Option<String> {
        let len = self.u16()? as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }

    fn opt_str(&mut self) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.str()?)),
            _ => None,
        }
    }

    fn bytes(&mut self) -> Option<Bytes> {
        let len = self.u32()? as usize;
        Some(Bytes::copy_from_slice(self.take(len)?))
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
