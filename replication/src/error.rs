//! The crate's one error type. Untrusted bytes (a record, a batch, a snapshot) and records that do
//! not fit the image return one of these; a broken invariant inside the crate asserts instead.

use crate::metadata::TopicId;
use millrace_wire::WireError;

/// Everything the replication crate can refuse.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    /// Fewer bytes than a field needs.
    #[error("{what}: truncated: needed {needed} bytes at {at}, {available} available")]
    Truncated {
        /// What was being decoded.
        what: &'static str,
        /// Byte position of the field.
        at: usize,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// A declared length or count that the bytes present cannot hold (or a negative one).
    #[error("{what}: bad length {declared} at {at}, {available} bytes left")]
    BadLength {
        /// What was being decoded.
        what: &'static str,
        /// Byte position of the length.
        at: usize,
        /// The length as declared.
        declared: i64,
        /// Bytes left after it.
        available: usize,
    },
    /// Bytes that are present but not a valid value.
    #[error("{what}: malformed at {at}: {reason}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// Byte position.
        at: usize,
        /// Why.
        reason: &'static str,
    },
    /// A record type this build does not know (written by a newer one, or garbage).
    #[error("unknown metadata record type {record_type}")]
    UnknownRecordType {
        /// The type on the wire.
        record_type: u16,
    },
    /// A known record type at a version this build cannot read.
    #[error("metadata record type {record_type} has unsupported version {version}")]
    UnsupportedRecordVersion {
        /// The record type.
        record_type: u16,
        /// The version on the wire.
        version: u16,
    },
    /// A config resource type other than topic (2) or broker (4).
    #[error("unknown config resource type {resource_type}")]
    UnknownConfigResourceType {
        /// The type on the wire.
        resource_type: i8,
    },
    /// A snapshot whose magic, version or checksum is wrong.
    #[error("image snapshot: {reason}")]
    BadSnapshot {
        /// Why it was refused.
        reason: String,
    },
    /// A record whose fields contradict each other or Kafka's rules, whatever the image.
    #[error("invalid metadata record: {reason}")]
    InvalidRecord {
        /// Why.
        reason: &'static str,
    },
    /// Records are applied at strictly increasing offsets.
    #[error("record at offset {offset} is not after the last applied offset {last_applied}")]
    OffsetNotAfter {
        /// The offset given.
        offset: i64,
        /// The image's last applied offset.
        last_applied: i64,
    },
    /// A topic with this name already exists.
    #[error("topic {name} already exists")]
    TopicNameExists {
        /// The name.
        name: String,
    },
    /// A topic with this id already exists.
    #[error("topic id {topic_id} already exists")]
    TopicIdExists {
        /// The id.
        topic_id: TopicId,
    },
    /// No topic has this id.
    #[error("unknown topic id {topic_id}")]
    UnknownTopicId {
        /// The id.
        topic_id: TopicId,
    },
    /// No topic has this name.
    #[error("unknown topic {name}")]
    UnknownTopicName {
        /// The name.
        name: String,
    },
    /// Partitions are created in order, without gaps: 0, 1, 2, ...
    #[error(
        "topic {topic_id}: partition {partition_id} created out of order (next is {expected})"
    )]
    PartitionOutOfOrder {
        /// The topic.
        topic_id: TopicId,
        /// The partition in the record.
        partition_id: i32,
        /// The partition the topic expects next.
        expected: i32,
    },
    /// A change to a partition that does not exist.
    #[error("topic {topic_id} has no partition {partition_id}")]
    UnknownPartition {
        /// The topic.
        topic_id: TopicId,
        /// The partition.
        partition_id: i32,
    },
    /// A producer-id block that does not move past the current one.
    #[error("next producer id {next_producer_id} does not advance past {current}")]
    ProducerIdNotAdvancing {
        /// The value in the record.
        next_producer_id: i64,
        /// The image's current block end.
        current: i64,
    },
    /// A broker record names a broker with no registration.
    #[error("broker {broker_id} is not registered")]
    UnknownBroker {
        /// The broker.
        broker_id: i32,
    },
    /// A broker record whose epoch is not the registration's current one (Fence, Unfence,
    /// Unregister, RegistrationChange), or a registration whose epoch does not exceed it.
    #[error("broker {broker_id}: epoch {epoch} does not fit the current epoch {current}")]
    StaleBrokerEpoch {
        /// The broker.
        broker_id: i32,
        /// The epoch in the record.
        epoch: i64,
        /// The registration's epoch in the image.
        current: i64,
    },
    /// A registration from another process while the current one still holds a session
    /// (Kafka's DUPLICATE_BROKER_REGISTRATION).
    #[error("broker {broker_id} is already registered by another live incarnation")]
    DuplicateBrokerRegistration {
        /// The broker.
        broker_id: i32,
    },
    /// A replication factor below 1 or above the usable brokers (Kafka's
    /// INVALID_REPLICATION_FACTOR).
    #[error(
        "replication factor {replication_factor} cannot be reached with {usable_brokers} \
         unfenced broker(s)"
    )]
    InvalidReplicationFactor {
        /// The factor asked for.
        replication_factor: i16,
        /// Unfenced brokers not in controlled shutdown.
        usable_brokers: usize,
    },
    /// A partition count below 1 (Kafka's INVALID_PARTITIONS).
    #[error("invalid partition count {partitions}")]
    InvalidPartitions {
        /// The count asked for.
        partitions: i32,
    },
    /// `append` with no records: a record batch holds at least one.
    #[error("a metadata append needs at least one record")]
    EmptyAppend,
    /// One append's batch would exceed the bound.
    #[error("metadata batch of {bytes} bytes exceeds {max} bytes")]
    BatchTooLarge {
        /// Encoded size.
        bytes: usize,
        /// The bound.
        max: usize,
    },
    /// A batch read back from the log is not valid.
    #[error("metadata log batch: {0}")]
    Batch(#[from] WireError),
    /// A batch read back from the log does not continue the offsets before it.
    #[error("metadata log: record at offset {offset} where at least {expected} was expected")]
    OffsetGap {
        /// The offset found.
        offset: i64,
        /// The smallest offset it could have.
        expected: i64,
    },
    /// The log underneath failed.
    #[error("metadata log {op}: {source}")]
    Store {
        /// The operation.
        op: &'static str,
        /// The store's error.
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A proposal reached a node that is not the quorum's leader.
    #[error("not the quorum leader (leader hint {leader_hint:?})")]
    NotLeader {
        /// The leader this node knows of, if any: where the caller should go instead.
        leader_hint: Option<u64>,
    },
    /// The leader refused a proposal (a leadership transfer is under way, or too many bytes
    /// are proposed and not yet committed); retry later.
    #[error("the quorum leader dropped the proposal")]
    ProposalDropped,
    /// An input reached the quorum while a Ready was out: the caller must finish the cycle
    /// (persist, then [`crate::quorum::Quorum::on_persisted`]) first.
    #[error("a quorum Ready is being persisted; finish the cycle first")]
    QuorumBusy,
    /// `on_persisted` without an outstanding Ready.
    #[error("no quorum Ready is outstanding")]
    NoReadyOutstanding,
    /// A quorum configuration that cannot work.
    #[error("quorum config: {reason}")]
    QuorumConfig {
        /// Why.
        reason: &'static str,
    },
    /// A Raft message or entry this node does not accept (a kind it never uses, a sender that
    /// is not a voter, a bound exceeded).
    #[error("quorum message refused: {reason}")]
    QuorumMessage {
        /// Why.
        reason: &'static str,
    },
    /// The metadata log or the hard state on disk contradicts Raft's rules or the quorum's
    /// own table of entries: a damaged directory, or a store changed behind the quorum's back.
    #[error("quorum log: {reason}")]
    QuorumLog {
        /// What does not hold.
        reason: String,
    },
    /// raft-rs refused an operation.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
}
