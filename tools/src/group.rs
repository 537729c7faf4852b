//! Consumer-group membership for `consume --group`: Kafka's classic protocol, as its console
//! consumer uses it.
//!
//! ```text
//! FindCoordinator(group) -> coordinator broker
//! JoinGroup(protocol "consumer", assignor "range", subscription [topic]) -> generation, leader
//!   leader: range-assigns the topic's partitions over the members (sorted by member id)
//! SyncGroup(assignments if leader) -> this member's partitions
//! OffsetFetch(partitions) -> committed offsets (-1: none, reset to earliest or latest)
//! loop: Heartbeat every HEARTBEAT_INTERVAL, OffsetCommit every COMMIT_INTERVAL;
//!       REBALANCE_IN_PROGRESS -> commit, join again
//! exit: OffsetCommit, LeaveGroup
//! ```
//!
//! The subscription and assignment blobs inside JoinGroup and SyncGroup are the consumer
//! protocol's own messages, each prefixed by its i16 version; version 0 is written, which every
//! broker and client reads. A broker without a coordinator (millrace today) answers
//! FindCoordinator with COORDINATOR_NOT_AVAILABLE, reported as one line.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    consumer_protocol_assignment::TopicPartition as AssignedPartitions,
    join_group_request::JoinGroupRequestProtocol,
    leave_group_request::MemberIdentity,
    offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
    offset_fetch_request::OffsetFetchRequestTopic,
    sync_group_request::SyncGroupRequestAssignment,
    ApiKey, ConsumerProtocolAssignment, ConsumerProtocolSubscription, FindCoordinatorRequest,
    GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest,
    OffsetFetchRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::admin::topic_name;
use crate::client::Client;
use crate::error::{check, error_name, ToolError};
use millrace_wire::codes::{
    COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, ILLEGAL_GENERATION,
    MEMBER_ID_REQUIRED, NONE, REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID,
};

const FIND_COORDINATOR_VERSIONS: std::ops::RangeInclusive<i16> = 1..=3;
const JOIN_GROUP_VERSIONS: std::ops::RangeInclusive<i16> = 2..=9;
const SYNC_GROUP_VERSIONS: std::ops::RangeInclusive<i16> = 0..=5;
const HEARTBEAT_VERSIONS: std::ops::RangeInclusive<i16> = 0..=4;
const OFFSET_FETCH_VERSIONS: std::ops::RangeInclusive<i16> = 1..=7;
const OFFSET_COMMIT_VERSIONS: std::ops::RangeInclusive<i16> = 2..=8;
const LEAVE_GROUP_VERSIONS: std::ops::RangeInclusive<i16> = 0..=5;
const SESSION_TIMEOUT_MS: i32 = 10_000;
const REBALANCE_TIMEOUT_MS: i32 = 30_000;
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);
const COMMIT_INTERVAL: Duration = Duration::from_secs(5);
const PROTOCOL_TYPE: &str = "consumer";
const ASSIGNOR: &str = "range";
const CONSUMER_PROTOCOL_VERSION: i16 = 0;
/// JoinGroup attempts before giving up (each MEMBER_ID_REQUIRED or rebalance costs one).
const JOIN_ATTEMPTS_MAX: usize = 10;
/// How long to wait for a coordinator that is loading, and how often to ask.
const COORDINATOR_WAIT: Duration = Duration::from_secs(30);
const RETRY_BACKOFF: Duration = Duration::from_millis(250);

/// COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE: a moment later may work.
fn is_retriable(code: i16) -> bool {
    matches!(
        code,
        COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE
    )
}

/// This process as a member of a consumer group, talking to the group's coordinator.
pub struct GroupMember {
    coordinator: Client,
    group: String,
    topic: String,
    member_id: String,
    generation_id: i32,
    last_heartbeat: Instant,
    last_commit: Instant,
    /// Offsets last committed, to skip commits that change nothing.
    committed: BTreeMap<i32, i64>,
}

impl GroupMember {
    /// Finds the coordinator of `group` through `bootstrap` and connects to it.
    pub fn connect(bootstrap: &mut Client, group: &str, topic: &str) -> Result<Self, ToolError> {
        if !bootstrap.supports(ApiKey::JoinGroup) {
            return Err(ToolError::Usage(format!(
                "consumer group {group}: this broker has no group coordinator (JoinGroup is not \
                 in its ApiVersions; millrace does not serve consumer groups yet): consume \
                 without --group"
            )));
        }
        let coordinator = find_coordinator(bootstrap, group)?;
        Ok(GroupMember {
            coordinator,
            group: group.to_string(),
            topic: topic.to_string(),
            member_id: String::new(),
            generation_id: -1,
            last_heartbeat: Instant::now(),
            last_commit: Instant::now(),
            committed: BTreeMap::new(),
        })
    }

    /// Joins (or rejoins) the group; returns this member's partitions of the topic and their
    /// committed offsets (-1 where nothing is committed). `partitions` is the topic's count.
    pub fn join(&mut self, partitions: i32) -> Result<BTreeMap<i32, i64>, ToolError> {
        for _ in 0..JOIN_ATTEMPTS_MAX {
            match self.try_join(partitions)? {
                Some(assigned) => {
                    self.last_heartbeat = Instant::now();
                    self.last_commit = Instant::now();
                    let offsets = self.fetch_offsets(&assigned)?;
                    self.committed = offsets.clone();
                    return Ok(offsets);
                }
                None => continue,
            }
        }
        Err(ToolError::Protocol(format!(
            "consumer group {}: no stable membership after {JOIN_ATTEMPTS_MAX} joins",
            self.group
        )))
    }

    /// One JoinGroup + SyncGroup round; None when the coordinator asks to join again.
    fn try_join(&mut self, partitions: i32) -> Result<Option<Vec<i32>>, ToolError> {
        let mut protocol = JoinGroupRequestProtocol::default();
        protocol.name = StrBytes::from_static_str(ASSIGNOR);
        protocol.metadata = subscription(&self.topic)?;
        let mut request = JoinGroupRequest::default();
        request.group_id = GroupId(StrBytes::from_string(self.group.clone()));
        request.session_timeout_ms = SESSION_TIMEOUT_MS;
        request.rebalance_timeout_ms = REBALANCE_TIMEOUT_MS;
        request.member_id = StrBytes::from_string(self.member_id.clone());
        request.protocol_type = StrBytes::from_static_str(PROTOCOL_TYPE);
        request.protocols = vec![protocol];
        let response = self.coordinator.call(&request, JOIN_GROUP_VERSIONS)?;
        match response.error_code {
            MEMBER_ID_REQUIRED => {
                self.member_id = response.member_id.to_string();
                return Ok(None);
            }
            UNKNOWN_MEMBER_ID => {
                self.member_id.clear();
                return Ok(None);
            }
            REBALANCE_IN_PROGRESS => return Ok(None),
            code if is_retriable(code) => {
                std::thread::sleep(RETRY_BACKOFF);
                return Ok(None);
            }
            code => check(code, || format!("join group {}", self.group), None)?,
        }
        self.member_id = response.member_id.to_string();
        self.generation_id = response.generation_id;
        let assignments = if response.leader == response.member_id {
            let members: Vec<(String, Vec<String>)> = response
                .members
                .iter()
                .map(|m| Ok((m.member_id.to_string(), subscribed_topics(&m.metadata)?)))
                .collect::<Result<_, ToolError>>()?;
            range_assign(&self.topic, partitions, &members)
                .into_iter()
                .map(|(member, parts)| {
                    let mut a = SyncGroupRequestAssignment::default();
                    a.member_id = StrBytes::from_string(member);
                    a.assignment = assignment(&self.topic, &parts)?;
                    Ok(a)
                })
                .collect::<Result<Vec<_>, ToolError>>()?
        } else {
            Vec::new()
        };
        let mut sync = SyncGroupRequest::default();
        sync.group_id = GroupId(StrBytes::from_string(self.group.clone()));
        sync.generation_id = self.generation_id;
        sync.member_id = StrBytes::from_string(self.member_id.clone());
        sync.protocol_type = Some(StrBytes::from_static_str(PROTOCOL_TYPE));
        sync.protocol_name = Some(StrBytes::from_static_str(ASSIGNOR));
        sync.assignments = assignments;
        let response = self.coordinator.call(&sync, SYNC_GROUP_VERSIONS)?;
        if response.error_code == REBALANCE_IN_PROGRESS || is_retriable(response.error_code) {
            return Ok(None);
        }
        check(
            response.error_code,
            || format!("sync group {}", self.group),
            None,
        )?;
        Ok(Some(assigned_partitions(
            &response.assignment,
            &self.topic,
        )?))
    }

    fn fetch_offsets(&mut self, partitions: &[i32]) -> Result<BTreeMap<i32, i64>, ToolError> {
        let mut topic = OffsetFetchRequestTopic::default();
        topic.name = topic_name(&self.topic);
        topic.partition_indexes = partitions.to_vec();
        let mut request = OffsetFetchRequest::default();
        request.group_id = GroupId(StrBytes::from_string(self.group.clone()));
        request.topics = Some(vec![topic]);
        let response = self.coordinator.call(&request, OFFSET_FETCH_VERSIONS)?;
        check(
            response.error_code,
            || format!("fetch offsets of group {}", self.group),
            None,
        )?;
        let mut offsets: BTreeMap<i32, i64> = partitions.iter().map(|&p| (p, -1)).collect();
        for t in response.topics {
            for p in t.partitions {
                check(
                    p.error_code,
                    || format!("fetch offsets of group {}", self.group),
                    None,
                )?;
                offsets.insert(p.partition_index, p.committed_offset);
            }
        }
        Ok(offsets)
    }

    /// Heartbeats and commits when due. Returns true when the group is rebalancing and this
    /// member must [`GroupMember::join`] again (its positions have been committed).
    pub fn tick(&mut self, positions: &BTreeMap<i32, i64>) -> Result<bool, ToolError> {
        if self.last_commit.elapsed() >= COMMIT_INTERVAL {
            self.commit(positions)?;
        }
        if self.last_heartbeat.elapsed() < HEARTBEAT_INTERVAL {
            return Ok(false);
        }
        let mut request = HeartbeatRequest::default();
        request.group_id = GroupId(StrBytes::from_string(self.group.clone()));
        request.generation_id = self.generation_id;
        request.member_id = StrBytes::from_string(self.member_id.clone());
        let response = self.coordinator.call(&request, HEARTBEAT_VERSIONS)?;
        self.last_heartbeat = Instant::now();
        match response.error_code {
            NONE => Ok(false),
            REBALANCE_IN_PROGRESS => {
                self.commit(positions)?;
                Ok(true)
            }
            UNKNOWN_MEMBER_ID | ILLEGAL_GENERATION => {
                self.member_id.clear();
                Ok(true)
            }
            code => {
                check(code, || format!("heartbeat to group {}", self.group), None).map(|_| false)
            }
        }
    }

    /// Commits `positions` (the next offset to read, Kafka's meaning of a committed offset).
    pub fn commit(&mut self, positions: &BTreeMap<i32, i64>) -> Result<(), ToolError> {
        self.last_commit = Instant::now();
        let changed: Vec<(i32, i64)> = positions
            .iter()
            .filter(|(p, o)| self.committed.get(p) != Some(o))
            .map(|(&p, &o)| (p, o))
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        let mut topic = OffsetCommitRequestTopic::default();
        topic.name = topic_name(&self.topic);
        topic.partitions = changed
            .iter()
            .map(|&(p, o)| {
                let mut cp = OffsetCommitRequestPartition::default();
                cp.partition_index = p;
                cp.committed_offset = o;
                cp.committed_leader_epoch = -1;
                cp
            })
            .collect();
        let mut request = OffsetCommitRequest::default();
        request.group_id = GroupId(StrBytes::from_string(self.group.clone()));
        request.generation_id_or_member_epoch = self.generation_id;
        request.member_id = StrBytes::from_string(self.member_id.clone());
        request.retention_time_ms = -1;
        request.topics = vec![topic];
        let response = self.coordinator.call(&request, OFFSET_COMMIT_VERSIONS)?;
        for t in &response.topics {
            for p in &t.partitions {
                check(
                    p.error_code,
                    || format!("commit offsets of group {}", self.group),
                    None,
                )?;
            }
        }
        self.committed.extend(changed);
        Ok(())
    }

    /// Commits and leaves the group, so the others rebalance at once.
    pub fn leave(mut self, positions: &BTreeMap<i32, i64>) -> Result<(), ToolError> {
        self.commit(positions)?;
        let version = self
            .coordinator
            .version(ApiKey::LeaveGroup, LEAVE_GROUP_VERSIONS)?;
        let mut request = LeaveGroupRequest::default();
        request.group_id = GroupId(StrBytes::from_string(self.group.clone()));
        if version >= 3 {
            let mut member = MemberIdentity::default();
            member.member_id = StrBytes::from_string(self.member_id.clone());
            request.members = vec![member];
        } else {
            request.member_id = StrBytes::from_string(self.member_id.clone());
        }
        let response = self.coordinator.call_at(&request, version)?;
        check(
            response.error_code,
            || format!("leave group {}", self.group),
            None,
        )
    }
}

/// Finds the coordinator of `group` through `bootstrap` and connects to it, waiting while the
/// coordinator is loading (a new cluster creates its offsets topic on first use).
pub fn find_coordinator(bootstrap: &mut Client, group: &str) -> Result<Client, ToolError> {
    let mut request = FindCoordinatorRequest::default();
    request.key = StrBytes::from_string(group.to_string());
    request.key_type = 0;
    let deadline = Instant::now() + COORDINATOR_WAIT;
    let response = loop {
        let response = bootstrap.call(&request, FIND_COORDINATOR_VERSIONS)?;
        if response.error_code == NONE || !is_retriable(response.error_code) {
            break response;
        }
        if Instant::now() > deadline {
            break response;
        }
        std::thread::sleep(RETRY_BACKOFF);
    };
    if response.error_code != NONE {
        return Err(ToolError::Usage(format!(
            "consumer group {group}: no coordinator ({})",
            error_name(response.error_code)
        )));
    }
    bootstrap.connect_to(&format!("{}:{}", response.host.as_str(), response.port))
}

/// A member's assignment blob as the consumer protocol carries it: (topic, partitions) pairs.
/// An empty blob (a member before its first SyncGroup) assigns nothing.
pub fn decode_assignment(blob: &Bytes) -> Result<Vec<(String, Vec<i32>)>, ToolError> {
    if blob.is_empty() {
        return Ok(Vec::new());
    }
    let a: ConsumerProtocolAssignment = decode_versioned(blob.clone(), "assignment")?;
    Ok(a.assigned_partitions
        .iter()
        .map(|tp| (tp.topic.to_string(), tp.partitions.clone()))
        .collect())
}

/// The range assignor for one topic: members sorted by id; the first `partitions % members`
/// get one partition more. Members not subscribed to the topic get nothing.
pub fn range_assign(
    topic: &str,
    partitions: i32,
    members: &[(String, Vec<String>)],
) -> BTreeMap<String, Vec<i32>> {
    let mut out: BTreeMap<String, Vec<i32>> = members
        .iter()
        .map(|(m, _)| (m.clone(), Vec::new()))
        .collect();
    let subscribed: Vec<&String> = out
        .keys()
        .filter(|m| {
            members
                .iter()
                .any(|(id, topics)| id == *m && topics.iter().any(|t| t == topic))
        })
        .collect();
    if subscribed.is_empty() || partitions <= 0 {
        return out;
    }
    let n = subscribed.len() as i32;
    let (per, extra) = (partitions / n, partitions % n);
    let mut plan = Vec::new();
    let mut next = 0;
    for (i, member) in subscribed.into_iter().enumerate() {
        let count = per + i32::from((i as i32) < extra);
        plan.push((member.clone(), (next..next + count).collect::<Vec<i32>>()));
        next += count;
    }
    out.extend(plan);
    out
}

fn subscription(topic: &str) -> Result<Bytes, ToolError> {
    let mut s = ConsumerProtocolSubscription::default();
    s.topics = vec![StrBytes::from_string(topic.to_string())];
    versioned(&s)
}

fn assignment(topic: &str, partitions: &[i32]) -> Result<Bytes, ToolError> {
    let mut tp = AssignedPartitions::default();
    tp.topic = topic_name(topic);
    tp.partitions = partitions.to_vec();
    let mut a = ConsumerProtocolAssignment::default();
    a.assigned_partitions = vec![tp];
    versioned(&a)
}

fn versioned<M: Encodable>(message: &M) -> Result<Bytes, ToolError> {
    let mut buf = BytesMut::new();
    buf.put_i16(CONSUMER_PROTOCOL_VERSION);
    message
        .encode(&mut buf, CONSUMER_PROTOCOL_VERSION)
        .map_err(|e| ToolError::Encode {
            api: "consumer protocol".into(),
            reason: e.to_string(),
        })?;
    Ok(buf.freeze())
}

fn decode_versioned<M: Decodable>(mut blob: Bytes, what: &str) -> Result<M, ToolError> {
    if blob.len() < 2 {
        return Err(ToolError::Protocol(format!("empty {what}")));
    }
    // Newer versions only add fields at the end; read what version 3 knows.
    let version = blob.get_i16().clamp(0, 3);
    M::decode(&mut blob, version).map_err(|e| ToolError::Protocol(format!("{what}: {e}")))
}

fn subscribed_topics(metadata: &Bytes) -> Result<Vec<String>, ToolError> {
    let s: ConsumerProtocolSubscription = decode_versioned(metadata.clone(), "subscription")?;
    Ok(s.topics.iter().map(|t| t.to_string()).collect())
}

fn assigned_partitions(blob: &Bytes, topic: &str) -> Result<Vec<i32>, ToolError> {
    if blob.is_empty() {
        return Ok(Vec::new());
    }
    let a: ConsumerProtocolAssignment = decode_versioned(blob.clone(), "assignment")?;
    let mut out: Vec<i32> = a
        .assigned_partitions
        .iter()
        .filter(|tp| tp.topic.as_str() == topic)
        .flat_map(|tp| tp.partitions.iter().copied())
        .collect();
    out.sort_unstable();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_assignment_spreads_the_remainder_over_the_first_members() {
        let members = vec![
            ("b".to_string(), vec!["t".to_string()]),
            ("a".to_string(), vec!["t".to_string()]),
            ("c".to_string(), vec!["other".to_string()]),
        ];
        let plan = range_assign("t", 5, &members);
        assert_eq!(plan["a"], vec![0, 1, 2]);
        assert_eq!(plan["b"], vec![3, 4]);
        assert!(plan["c"].is_empty());
    }

    #[test]
    fn consumer_protocol_blobs_round_trip() {
        let blob = subscription("orders").unwrap();
        assert_eq!(&blob[..2], &[0, 0]);
        assert_eq!(
            subscribed_topics(&blob).unwrap(),
            vec!["orders".to_string()]
        );
        let blob = assignment("orders", &[2, 0]).unwrap();
        assert_eq!(assigned_partitions(&blob, "orders").unwrap(), vec![0, 2]);
        assert!(assigned_partitions(&blob, "other").unwrap().is_empty());
    }
}
