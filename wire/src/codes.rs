//! Kafka's numeric error codes, with Kafka's names: the one definition the broker, the tools
//! and the bench share.
//!
//! Plain `i16` constants rather than a newtype because every kafka-protocol message field that
//! carries a code is an `i16`; a newtype would need a conversion at each of those fields. Only
//! the codes some crate of this workspace sends or checks are listed; add one here (and to
//! [`ALL`]) before using it anywhere. The values are Kafka's protocol error table
//! (`org.apache.kafka.common.protocol.Errors`); a test checks each against kafka-protocol's
//! copy of that table.

/// The server hit an unexpected error.
pub const UNKNOWN_SERVER_ERROR: i16 = -1;
/// No error.
pub const NONE: i16 = 0;
/// The requested offset is outside the partition's log.
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
/// A record batch failed its CRC or is otherwise malformed.
pub const CORRUPT_MESSAGE: i16 = 2;
/// This broker does not host the topic or partition.
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// The partition has no leader now (e.g. it is closing).
pub const LEADER_NOT_AVAILABLE: i16 = 5;
/// The request did not complete in time.
pub const REQUEST_TIMED_OUT: i16 = 7;
/// This node does not lead the partition (nor follow it, for follower fetches).
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
/// A record batch is larger than the topic allows.
pub const MESSAGE_TOO_LARGE: i16 = 10;
/// The committed offset's metadata string is too long.
pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
/// The coordinator is still loading the group's state.
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
/// The coordinator cannot serve the group now.
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
/// This broker is not the group's coordinator.
pub const NOT_COORDINATOR: i16 = 16;
/// The topic name is invalid, or the operation is not allowed on an internal topic.
pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
/// The records in a produce request exceed the allowed size.
pub const RECORD_LIST_TOO_LARGE: i16 = 18;
/// `acks` is not -1, 0 or 1.
pub const INVALID_REQUIRED_ACKS: i16 = 21;
/// The generation is not the group's current one.
pub const ILLEGAL_GENERATION: i16 = 22;
/// Protocol type or protocols do not match the group's.
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
/// The group id is empty or otherwise invalid.
pub const INVALID_GROUP_ID: i16 = 24;
/// The member id is not a member of the group.
pub const UNKNOWN_MEMBER_ID: i16 = 25;
/// The session timeout is outside the broker's bounds.
pub const INVALID_SESSION_TIMEOUT: i16 = 26;
/// The group is rebalancing; rejoin.
pub const REBALANCE_IN_PROGRESS: i16 = 27;
/// A timestamp is out of the acceptable range.
pub const INVALID_TIMESTAMP: i16 = 32;
/// The API version is not supported.
pub const UNSUPPORTED_VERSION: i16 = 35;
/// The topic already exists.
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
/// The partition count is invalid.
pub const INVALID_PARTITIONS: i16 = 37;
/// The replication factor is invalid.
pub const INVALID_REPLICATION_FACTOR: i16 = 38;
/// The replica assignment is invalid.
pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
/// A config name or value is invalid.
pub const INVALID_CONFIG: i16 = 40;
/// The request is malformed or inconsistent.
pub const INVALID_REQUEST: i16 = 42;
/// The message format does not support the request.
pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
/// A producer's sequence number is not the next one expected.
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
/// A producer's epoch is older than the current one (it was fenced).
pub const INVALID_PRODUCER_EPOCH: i16 = 47;
/// A disk error on the broker.
pub const KAFKA_STORAGE_ERROR: i16 = 56;
/// The group still has members.
pub const NON_EMPTY_GROUP: i16 = 68;
/// The group does not exist.
pub const GROUP_ID_NOT_FOUND: i16 = 69;
/// Rejoin with the member id given in this response.
pub const MEMBER_ID_REQUIRED: i16 = 79;
/// The group has `group.max.size` members.
pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
/// Another member now holds this static instance id.
pub const FENCED_INSTANCE_ID: i16 = 82;
/// The group still has offsets committed for a topic it is subscribed to.
pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
/// A record failed a per-record check (e.g. a missing key on a compacted topic).
pub const INVALID_RECORD: i16 = 87;
/// This broker does not know the topic id.
pub const UNKNOWN_TOPIC_ID: i16 = 100;
/// The member epoch is fenced; the member must rejoin with epoch 0.
pub const FENCED_MEMBER_EPOCH: i16 = 110;
/// A static member's instance id is still held by another member.
pub const UNRELEASED_INSTANCE_ID: i16 = 111;
/// The named server-side assignor is not supported.
pub const UNSUPPORTED_ASSIGNOR: i16 = 112;
/// The member epoch is stale; retry with the epoch from the last heartbeat.
pub const STALE_MEMBER_EPOCH: i16 = 113;
/// A share acknowledgement named records not acquired by the member (or whose lock expired).
pub const INVALID_RECORD_STATE: i16 = 121;
/// The share session named by a ShareFetch/ShareAcknowledge is not in this broker's cache.
pub const SHARE_SESSION_NOT_FOUND: i16 = 122;
/// The share session epoch is not the one the broker expects next.
pub const INVALID_SHARE_SESSION_EPOCH: i16 = 123;
/// A share-group state write carried an older state epoch than the stored one.
pub const FENCED_STATE_EPOCH: i16 = 124;
/// A subscription's regular expression does not compile.
pub const INVALID_REGULAR_EXPRESSION: i16 = 128;
/// The broker's share-session cache is full.
pub const SHARE_SESSION_LIMIT_REACHED: i16 = 133;

/// A DescribeCluster asked a listener for endpoints of the other kind (KIP-919).
pub const MISMATCHED_ENDPOINT_TYPE: i16 = 114;

/// This node is not the active controller (retriable: find it and ask again).
pub const NOT_CONTROLLER: i16 = 41;

/// A broker request carried a broker epoch that is not its current registration's.
pub const STALE_BROKER_EPOCH: i16 = 77;

/// Another process holds this broker id's live registration.
pub const DUPLICATE_BROKER_REGISTRATION: i16 = 101;

/// The broker id has no registration.
pub const BROKER_ID_NOT_REGISTERED: i16 = 102;

/// The request's cluster id is not this cluster's.
pub const INCONSISTENT_CLUSTER_ID: i16 = 104;

/// acks=all refused before the append: the ISR is smaller than `min.insync.replicas`.
pub const NOT_ENOUGH_REPLICAS: i16 = 19;

/// acks=all written but not acknowledged: the ISR fell below `min.insync.replicas`.
pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;

/// The request's leader epoch is not the current one.
pub const FENCED_LEADER_EPOCH: i16 = 74;

/// The request's leader epoch is newer than the one this broker knows (its metadata lags).
pub const UNKNOWN_LEADER_EPOCH: i16 = 75;

/// AlterPartition was based on an older partition epoch.
pub const INVALID_UPDATE_VERSION: i16 = 95;

/// A proposed ISR member is fenced, shutting down, or of a stale broker epoch.
pub const INELIGIBLE_REPLICA: i16 = 107;

/// ElectLeaders: the preferred replica cannot lead (not in the ISR, or not active).
pub const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;

/// ElectLeaders (unclean): no replica of the partition is on an active broker.
pub const ELIGIBLE_LEADERS_NOT_AVAILABLE: i16 = 83;

/// ElectLeaders: the partition already has the leader the election would give it.
pub const ELECTION_NOT_NEEDED: i16 = 84;

/// FetchSnapshot named a snapshot the leader no longer (or never) had.
pub const SNAPSHOT_NOT_FOUND: i16 = 98;

/// FetchSnapshot asked for a position past the snapshot's end.
pub const POSITION_OUT_OF_RANGE: i16 = 99;

/// The producer attempted a transactional operation in an invalid state.
pub const INVALID_TXN_STATE: i16 = 48;

/// The producer id is not the one the transactional id is mapped to.
pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;

/// `transaction.timeout.ms` is above the broker's `transaction.max.timeout.ms`.
pub const INVALID_TRANSACTION_TIMEOUT: i16 = 50;

/// The previous transaction of this producer is still completing (retriable).
pub const CONCURRENT_TRANSACTIONS: i16 = 51;

/// A marker came from an older transaction coordinator epoch.
pub const TRANSACTION_COORDINATOR_FENCED: i16 = 52;

/// The partition has no state for this producer id.
pub const UNKNOWN_PRODUCER_ID: i16 = 59;

/// The group has transactional offsets pending a marker (retriable).
pub const UNSTABLE_OFFSET_COMMIT: i16 = 88;

/// A newer producer with the same transactional id exists (v2+ of the txn APIs).
pub const PRODUCER_FENCED: i16 = 90;

/// The transactional id is not known to its coordinator.
pub const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;

/// The transaction must be aborted; the producer may go on (only at the versions that know it).
pub const TRANSACTION_ABORTABLE: i16 = 120;

/// A batch's sequence was already written.
pub const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;
/// The client asked for a SASL mechanism the listener does not enable.
pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
/// A SASL request out of the exchange's order.
pub const ILLEGAL_SASL_STATE: i16 = 34;
/// Wrong credentials (or an exchange that did not check out).
pub const SASL_AUTHENTICATION_FAILED: i16 = 58;
/// A SCRAM credential the broker refuses (too few or too many iterations).
pub const UNACCEPTABLE_CREDENTIAL: i16 = 93;
/// The named resource (e.g. a SCRAM credential) does not exist.
pub const RESOURCE_NOT_FOUND: i16 = 91;
/// The request names the same resource twice.
pub const DUPLICATE_RESOURCE: i16 = 92;
/// No authorizer is configured (ACL requests).
pub const SECURITY_DISABLED: i16 = 54;
/// The principal may not do this to the topic.
pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
/// The principal may not do this to the group.
pub const GROUP_AUTHORIZATION_FAILED: i16 = 30;
/// The principal may not do this to the cluster.
pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
/// The principal may not use the transactional id.
pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
/// A controller mutation quota refused the change (strict mode).
pub const THROTTLING_QUOTA_EXCEEDED: i16 = 89;

/// Every code above with its name, for tests and for anything that prints a code's name.
pub const ALL: &[(&str, i16)] = &[
    ("UNSUPPORTED_SASL_MECHANISM", UNSUPPORTED_SASL_MECHANISM),
    ("ILLEGAL_SASL_STATE", ILLEGAL_SASL_STATE),
    ("SASL_AUTHENTICATION_FAILED", SASL_AUTHENTICATION_FAILED),
    ("UNACCEPTABLE_CREDENTIAL", UNACCEPTABLE_CREDENTIAL),
    ("SECURITY_DISABLED", SECURITY_DISABLED),
    ("THROTTLING_QUOTA_EXCEEDED", THROTTLING_QUOTA_EXCEEDED),
    ("TOPIC_AUTHORIZATION_FAILED", TOPIC_AUTHORIZATION_FAILED),
    ("GROUP_AUTHORIZATION_FAILED", GROUP_AUTHORIZATION_FAILED),
    ("CLUSTER_AUTHORIZATION_FAILED", CLUSTER_AUTHORIZATION_FAILED),
    (
        "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    ),
    ("RESOURCE_NOT_FOUND", RESOURCE_NOT_FOUND),
    ("DUPLICATE_RESOURCE", DUPLICATE_RESOURCE),
    ("UNKNOWN_SERVER_ERROR", UNKNOWN_SERVER_ERROR),
    ("NONE", NONE),
    ("OFFSET_OUT_OF_RANGE", OFFSET_OUT_OF_RANGE),
    ("CORRUPT_MESSAGE", CORRUPT_MESSAGE),
    ("UNKNOWN_TOPIC_OR_PARTITION", UNKNOWN_TOPIC_OR_PARTITION),
    ("LEADER_NOT_AVAILABLE", LEADER_NOT_AVAILABLE),
    ("NOT_LEADER_OR_FOLLOWER", NOT_LEADER_OR_FOLLOWER),
    ("MISMATCHED_ENDPOINT_TYPE", MISMATCHED_ENDPOINT_TYPE),
    ("REQUEST_TIMED_OUT", REQUEST_TIMED_OUT),
    ("MESSAGE_TOO_LARGE", MESSAGE_TOO_LARGE),
    ("OFFSET_METADATA_TOO_LARGE", OFFSET_METADATA_TOO_LARGE),
    ("COORDINATOR_LOAD_IN_PROGRESS", COORDINATOR_LOAD_IN_PROGRESS),
    ("COORDINATOR_NOT_AVAILABLE", COORDINATOR_NOT_AVAILABLE),
    ("NOT_COORDINATOR", NOT_COORDINATOR),
    ("INVALID_TOPIC_EXCEPTION", INVALID_TOPIC_EXCEPTION),
    ("RECORD_LIST_TOO_LARGE", RECORD_LIST_TOO_LARGE),
    ("INVALID_REQUIRED_ACKS", INVALID_REQUIRED_ACKS),
    ("ILLEGAL_GENERATION", ILLEGAL_GENERATION),
    ("INCONSISTENT_GROUP_PROTOCOL", INCONSISTENT_GROUP_PROTOCOL),
    ("INVALID_GROUP_ID", INVALID_GROUP_ID),
    ("UNKNOWN_MEMBER_ID", UNKNOWN_MEMBER_ID),
    ("INVALID_SESSION_TIMEOUT", INVALID_SESSION_TIMEOUT),
    ("REBALANCE_IN_PROGRESS", REBALANCE_IN_PROGRESS),
    ("INVALID_TIMESTAMP", INVALID_TIMESTAMP),
    ("UNSUPPORTED_VERSION", UNSUPPORTED_VERSION),
    ("TOPIC_ALREADY_EXISTS", TOPIC_ALREADY_EXISTS),
    ("INVALID_PARTITIONS", INVALID_PARTITIONS),
    ("INVALID_REPLICATION_FACTOR", INVALID_REPLICATION_FACTOR),
    ("INVALID_REPLICA_ASSIGNMENT", INVALID_REPLICA_ASSIGNMENT),
    ("INVALID_CONFIG", INVALID_CONFIG),
    ("INVALID_REQUEST", INVALID_REQUEST),
    (
        "UNSUPPORTED_FOR_MESSAGE_FORMAT",
        UNSUPPORTED_FOR_MESSAGE_FORMAT,
    ),
    ("OUT_OF_ORDER_SEQUENCE_NUMBER", OUT_OF_ORDER_SEQUENCE_NUMBER),
    ("INVALID_PRODUCER_EPOCH", INVALID_PRODUCER_EPOCH),
    ("KAFKA_STORAGE_ERROR", KAFKA_STORAGE_ERROR),
    ("NON_EMPTY_GROUP", NON_EMPTY_GROUP),
    ("GROUP_ID_NOT_FOUND", GROUP_ID_NOT_FOUND),
    ("MEMBER_ID_REQUIRED", MEMBER_ID_REQUIRED),
    ("GROUP_MAX_SIZE_REACHED", GROUP_MAX_SIZE_REACHED),
    ("FENCED_INSTANCE_ID", FENCED_INSTANCE_ID),
    ("GROUP_SUBSCRIBED_TO_TOPIC", GROUP_SUBSCRIBED_TO_TOPIC),
    ("INVALID_RECORD", INVALID_RECORD),
    ("UNKNOWN_TOPIC_ID", UNKNOWN_TOPIC_ID),
    ("FENCED_MEMBER_EPOCH", FENCED_MEMBER_EPOCH),
    ("UNRELEASED_INSTANCE_ID", UNRELEASED_INSTANCE_ID),
    ("UNSUPPORTED_ASSIGNOR", UNSUPPORTED_ASSIGNOR),
    ("STALE_MEMBER_EPOCH", STALE_MEMBER_EPOCH),
    ("INVALID_RECORD_STATE", INVALID_RECORD_STATE),
    ("SHARE_SESSION_NOT_FOUND", SHARE_SESSION_NOT_FOUND),
    ("INVALID_SHARE_SESSION_EPOCH", INVALID_SHARE_SESSION_EPOCH),
    ("FENCED_STATE_EPOCH", FENCED_STATE_EPOCH),
    ("INVALID_REGULAR_EXPRESSION", INVALID_REGULAR_EXPRESSION),
    ("SHARE_SESSION_LIMIT_REACHED", SHARE_SESSION_LIMIT_REACHED),
    ("NOT_CONTROLLER", NOT_CONTROLLER),
    ("STALE_BROKER_EPOCH", STALE_BROKER_EPOCH),
    (
        "DUPLICATE_BROKER_REGISTRATION",
        DUPLICATE_BROKER_REGISTRATION,
    ),
    ("BROKER_ID_NOT_REGISTERED", BROKER_ID_NOT_REGISTERED),
    ("INCONSISTENT_CLUSTER_ID", INCONSISTENT_CLUSTER_ID),
    ("NOT_ENOUGH_REPLICAS", NOT_ENOUGH_REPLICAS),
    (
        "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
        NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    ),
    ("FENCED_LEADER_EPOCH", FENCED_LEADER_EPOCH),
    ("UNKNOWN_LEADER_EPOCH", UNKNOWN_LEADER_EPOCH),
    ("INVALID_UPDATE_VERSION", INVALID_UPDATE_VERSION),
    ("INELIGIBLE_REPLICA", INELIGIBLE_REPLICA),
    (
        "PREFERRED_LEADER_NOT_AVAILABLE",
        PREFERRED_LEADER_NOT_AVAILABLE,
    ),
    (
        "ELIGIBLE_LEADERS_NOT_AVAILABLE",
        ELIGIBLE_LEADERS_NOT_AVAILABLE,
    ),
    ("ELECTION_NOT_NEEDED", ELECTION_NOT_NEEDED),
    ("SNAPSHOT_NOT_FOUND", SNAPSHOT_NOT_FOUND),
    ("POSITION_OUT_OF_RANGE", POSITION_OUT_OF_RANGE),
    ("INVALID_TXN_STATE", INVALID_TXN_STATE),
    ("INVALID_PRODUCER_ID_MAPPING", INVALID_PRODUCER_ID_MAPPING),
    ("INVALID_TRANSACTION_TIMEOUT", INVALID_TRANSACTION_TIMEOUT),
    ("CONCURRENT_TRANSACTIONS", CONCURRENT_TRANSACTIONS),
    (
        "TRANSACTION_COORDINATOR_FENCED",
        TRANSACTION_COORDINATOR_FENCED,
    ),
    ("UNKNOWN_PRODUCER_ID", UNKNOWN_PRODUCER_ID),
    ("UNSTABLE_OFFSET_COMMIT", UNSTABLE_OFFSET_COMMIT),
    ("PRODUCER_FENCED", PRODUCER_FENCED),
    ("TRANSACTIONAL_ID_NOT_FOUND", TRANSACTIONAL_ID_NOT_FOUND),
    ("TRANSACTION_ABORTABLE", TRANSACTION_ABORTABLE),
    ("DUPLICATE_SEQUENCE_NUMBER", DUPLICATE_SEQUENCE_NUMBER),
];

/// The name of `code` as Kafka spells it, or "UNKNOWN" for a code not in [`ALL`].
pub fn name(code: i16) -> &'static str {
    ALL.iter()
        .find(|(_, v)| *v == code)
        .map_or("UNKNOWN", |(n, _)| n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::ResponseError;
    use std::collections::BTreeSet;

    /// `UnknownTopicOrPartition` -> `UNKNOWN_TOPIC_OR_PARTITION`.
    fn screaming_snake(camel: &str) -> String {
        let mut out = String::new();
        for (i, c) in camel.chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_uppercase());
        }
        out
    }

    #[test]
    fn names_and_values_are_unique() {
        let names: BTreeSet<_> = ALL.iter().map(|(n, _)| *n).collect();
        let values: BTreeSet<_> = ALL.iter().map(|(_, v)| *v).collect();
        assert_eq!(names.len(), ALL.len(), "a name is listed twice");
        assert_eq!(values.len(), ALL.len(), "two names share a value");
    }

    /// An independent transcription of Kafka's `Errors` table (kafka-protocol's) must give each
    /// value the same name as ours: catches a mistyped value or a swapped pair.
    #[test]
    fn values_match_kafkas_table() {
        for &(name, value) in ALL {
            let kafka = match ResponseError::try_from_code(value) {
                None => "NONE".to_string(),
                Some(ResponseError::Unknown(c)) => panic!("{name}: {c} is not a Kafka code"),
                Some(e) => screaming_snake(&format!("{e:?}")),
            };
            assert_eq!(kafka, name, "code {value}");
        }
    }
}
