//! The classic consumer-group coordinator (JoinGroup, SyncGroup, Heartbeat, LeaveGroup), as a
//! sans-I/O state machine: the handlers feed it requests with the current time and a reply
//! token, and it returns the responses that are ready, now or later (a JoinGroup is answered
//! when the rebalance completes). Time only moves through the `now_ms` arguments and
//! [`GroupCoordinator::tick`], so every behaviour is testable without a clock or sockets.
//!
//! One `GroupCoordinator` per shard holds the groups whose `__consumer_offsets` partition that
//! shard owns. Group state that must survive restarts (generation, protocol, leader, members
//! with their assignments) is exported as a [`GroupRecord`] after each completed rebalance and
//! fed back with [`GroupCoordinator::restore`] at start-up.

mod state;

pub use state::GroupCoordinator;

use bytes::Bytes;

/// Identifies a request waiting for its answer (the broker's reply slot).
pub type Token = u64;

/// Coordinator limits, from the broker configuration (Kafka's names).
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms` (Kafka default 6000).
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms` (Kafka default 1800000).
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms` (Kafka default 3000): how long the first rebalance of
    /// an empty group waits for more members.
    pub initial_rebalance_delay_ms: i64,
    /// `group.max.size`: members per group.
    pub max_size: usize,
    /// Largest protocol metadata or assignment accepted from a member, in bytes.
    pub member_metadata_bytes_max: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            max_size: 1_000,
            member_metadata_bytes_max: 1 << 20,
        }
    }
}

/// A JoinGroup request, version-independent.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// Group id (already validated non-empty by the handler).
    pub group_id: String,
    /// Empty for a member joining for the first time.
    pub member_id: String,
    /// Static membership id (KIP-345), v5+.
    pub group_instance_id: Option<String>,
    /// "consumer" for consumers.
    pub protocol_type: String,
    /// (protocol name, subscription metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Rebalance timeout (v1+; equals the session timeout for v0).
    pub rebalance_timeout_ms: i32,
    /// v4+: an unknown member must first get MEMBER_ID_REQUIRED with its new id.
    pub require_known_member_id: bool,
    /// The client's id.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
}

/// One member as the leader sees it in a JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinMember {
    /// Member id.
    pub member_id: String,
    /// Static id, if any.
    pub group_instance_id: Option<String>,
    /// Its metadata for the chosen protocol.
    pub metadata: Bytes,
}

/// A JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    /// Kafka error code.
    pub error_code: i16,
    /// Generation, -1 on error.
    pub generation_id: i32,
    /// Chosen protocol type.
    pub protocol_type: Option<String>,
    /// Chosen protocol name.
    pub protocol_name: Option<String>,
    /// Leader's member id.
    pub leader: String,
    /// This member's id (also set with MEMBER_ID_REQUIRED).
    pub member_id: String,
    /// Every member with metadata, for the leader only; empty for followers.
    pub members: Vec<JoinMember>,
    /// v9+: the leader must not run the assignment (a static leader rejoining).
    pub skip_assignment: bool,
}

/// A SyncGroup request.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    /// Group id.
    pub group_id: String,
    /// Generation the member believes in.
    pub generation_id: i32,
    /// Member id.
    pub member_id: String,
    /// Static id, if any.
    pub group_instance_id: Option<String>,
    /// v5+: must match the group's, when given.
    pub protocol_type: Option<String>,
    /// v5+: must match the group's, when given.
    pub protocol_name: Option<String>,
    /// The leader's assignment: (member id, assignment bytes); empty from followers.
    pub assignments: Vec<(String, Bytes)>,
}

/// A SyncGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    /// Kafka error code.
    pub error_code: i16,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The group's protocol name.
    pub protocol_name: Option<String>,
    /// This member's assignment.
    pub assignment: Bytes,
}

/// A Heartbeat request.
#[derive(Debug, Clone)]
pub struct HeartbeatRequest {
    /// Group id.
    pub group_id: String,
    /// Generation.
    pub generation_id: i32,
    /// Member id.
    pub member_id: String,
    /// Static id, if any.
    pub group_instance_id: Option<String>,
}

/// One member leaving (LeaveGroup v3+ carries several).
#[derive(Debug, Clone)]
pub struct LeaveMember {
    /// Member id (may be empty when only the static id is known).
    pub member_id: String,
    /// Static id, if any.
    pub group_instance_id: Option<String>,
}

/// Responses that became ready.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outputs {
    /// JoinGroup answers.
    pub joins: Vec<(Token, JoinResponse)>,
    /// SyncGroup answers.
    pub syncs: Vec<(Token, SyncResponse)>,
    /// Groups whose durable record changed (completed rebalance, emptied, deleted): persist
    /// [`GroupCoordinator::record`] for each.
    pub changed_groups: Vec<String>,
}

/// One member in a [`GroupDescription`] or [`GroupRecord`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// Member id.
    pub member_id: String,
    /// Static id.
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Metadata for the group's protocol.
    pub metadata: Bytes,
    /// Current assignment.
    pub assignment: Bytes,
}

/// What DescribeGroups reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// Kafka's state name: "Empty", "PreparingRebalance", "CompletingRebalance", "Stable",
    /// "Dead".
    pub state: &'static str,
    /// Protocol type ("" if none).
    pub protocol_type: String,
    /// Protocol name ("" unless stable).
    pub protocol_name: String,
    /// Members.
    pub members: Vec<MemberDescription>,
}

/// The durable part of a group, persisted in `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    /// Group id.
    pub group_id: String,
    /// Generation.
    pub generation_id: i32,
    /// Protocol type.
    pub protocol_type: String,
    /// Protocol name (None when empty).
    pub protocol_name: Option<String>,
    /// Leader member id.
    pub leader: Option<String>,
    /// Members with their assignments.
    pub members: Vec<MemberDescription>,
}

impl GroupRecord {
    /// Serialises the record (versioned; see `state.rs` for the layout).
    pub fn encode(&self) -> Vec<u8> {
        state::encode_record(self)
    }

    /// Parses what [`GroupRecord::encode`] wrote; None if the bytes are not a valid record.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        state::decode_record(bytes)
    }
}
