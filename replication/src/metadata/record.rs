//! Metadata records: the changes the controller commits to the metadata log, named and shaped
//! like Kafka's KRaft records (KIP-631), in Millrace's own versioned binary encoding.
//!
//! One record is the *value* of one Kafka record in a record batch of the metadata log:
//!
//! ```text
//! record value = type u16 | version u16 | payload          (big-endian)
//!
//! type  name                   payload (version 0)
//!  2    TopicRecord            name string | topic_id uuid
//!  3    PartitionRecord        topic_id uuid | partition_id i32 | replicas [i32] | isr [i32]
//!                              | eligible_leader_replicas [i32] | last_known_elr [i32]
//!                              | leader i32 | leader_epoch i32 | partition_epoch i32
//!  4    ConfigRecord           resource_type i8 | resource_name string | name string
//!                              | value nullable string (null = delete the key)
//!  5    PartitionChangeRecord  topic_id uuid | partition_id i32 | leader i32 (-2 = unchanged,
//!                              -1 = none) | isr, replicas, eligible_leader_replicas,
//!                              last_known_elr: nullable [i32] each (null = unchanged)
//!  9    RemoveTopicRecord      topic_id uuid
//! 15    ProducerIdsRecord      broker_id i32 | broker_epoch i64 | next_producer_id i64
//! 20    NoOpRecord             (empty)
//!
//!  0    RegisterBrokerRecord   broker_id i32 | incarnation_id uuid | broker_epoch i64
//!                              | endpoint_count u32 | endpoint × endpoint_count
//!                              | rack nullable string | fenced bool
//!       endpoint =             name string | host string | port u16 | security_protocol i16
//!  1    UnregisterBrokerRecord broker_id i32 | broker_epoch i64
//!  7    FenceBrokerRecord      id i32 | epoch i64
//!  8    UnfenceBrokerRecord    id i32 | epoch i64
//! 17    BrokerRegistration-    broker_id i32 | broker_epoch i64 | fenced i8
//!       ChangeRecord           | in_controlled_shutdown i8
//!                              (each i8: 1 = set, -1 = clear, 0 = unchanged)
//! ```
//!
//! The type numbers are Kafka's metadata record API keys, so a reader of both logs sees the same
//! numbers; the payloads are not Kafka's (no tagged fields, fixed-width integers; primitives in
//! `codec.rs`). A payload is versioned per type: a new field means a new version, and a build
//! refuses a version it does not know instead of guessing. Decoding takes untrusted bytes: every
//! length is checked against the bytes present, trailing bytes are an error, nothing panics.
//!
//! Broker records keep Kafka's field names, including its inconsistency (`id`/`epoch` in
//! Fence/Unfence, `broker_id`/`broker_epoch` elsewhere). Kafka's RegisterBrokerRecord fields not
//! here yet (features, log dirs, in_controlled_shutdown: a registration always starts outside
//! controlled shutdown) arrive as a new version when code needs them.
//!
//! Security records (issue 21), version 0:
//!
//! ```text
//! 11    UserScramCredentialRecord       name string | mechanism i8 | salt, stored_key,
//!                                       server_key: (u16 length | bytes) each | iterations i32
//! 12    RemoveUserScramCredentialRecord name string | mechanism i8
//! 14    ClientQuotaRecord               entity_count u32 | (entity_type string
//!                                       | entity_name nullable string) × entity_count
//!                                       | key string | value f64 | remove bool
//! 23    AccessControlEntryRecord        id uuid | resource_type i8 | resource_name string
//!                                       | pattern_type i8 | principal string | host string
//!                                       | operation i8 | permission_type i8
//! 24    RemoveAccessControlEntryRecord  id uuid
//! ```
//!
//! Not yet here, because no code needs them: feature levels and PartitionRecord's
//! adding/removing replicas and directories (each arrives as a new type or a new version).

use super::codec::{Reader, Writer};
use super::image::PartitionImage;
use crate::error::ReplicationError;
use std::fmt;

/// A topic id: a UUID, as in Kafka's TopicRecord (all zeros is Kafka's "no id" and is refused).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TopicId(pub [u8; 16]);

impl TopicId {
    /// Kafka's `Uuid.ZERO`: never a real topic's id.
    pub const ZERO: TopicId = TopicId([0; 16]);
}

impl fmt::Display for TopicId {
    /// The usual 8-4-4-4-12 hex form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicId({self})")
    }
}

/// Kafka's `ConfigResource.Type` values that metadata carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigResourceType {
    /// A topic's config; the resource name is the topic name.
    Topic,
    /// A broker's config; the resource name is the broker id, or empty for the cluster default.
    Broker,
    /// A consumer, share or streams group's config (KIP-848, KIP-932); the resource name is
    /// the group id, which need not name an existing group.
    Group,
}

impl ConfigResourceType {
    /// Kafka's number for it.
    pub fn code(self) -> i8 {
        match self {
            ConfigResourceType::Topic => 2,
            ConfigResourceType::Broker => 4,
            ConfigResourceType::Group => 32,
        }
    }

    /// The type for Kafka's number, if metadata carries it.
    pub fn from_code(code: i8) -> Result<Self, ReplicationError> {
        match code {
            2 => Ok(ConfigResourceType::Topic),
            4 => Ok(ConfigResourceType::Broker),
            32 => Ok(ConfigResourceType::Group),
            resource_type => Err(ReplicationError::UnknownConfigResourceType { resource_type }),
        }
    }
}

/// A topic was created. Its partitions follow as [`PartitionRecord`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRecord {
    /// Topic name.
    pub name: String,
    /// Topic id.
    pub topic_id: TopicId,
}

/// A partition was created (with the topic, or later by CreatePartitions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRecord {
    /// The topic.
    pub topic_id: TopicId,
    /// Partition index; partitions of a topic are created 0, 1, 2, ... in order.
    pub partition_id: i32,
    /// Its replicas, ISR, ELR, leader and epochs, as the image will hold them.
    pub state: PartitionImage,
}

/// A change to an existing partition: a new leader, ISR, replica set or ELR. `None` fields
/// keep their value. Naming a leader (even the same one, or -1) starts a new leader epoch;
/// every change starts a new partition epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionChangeRecord {
    /// The topic.
    pub topic_id: TopicId,
    /// The partition.
    pub partition_id: i32,
    /// New leader (-1 for none), or `None` to keep it. Encoded as Kafka does, with -2 for
    /// `None`, so `Some(x)` for any x below -1 is invalid (the image refuses it, and
    /// `Some(-2)` would read back as `None`).
    pub leader: Option<i32>,
    /// New ISR.
    pub isr: Option<Vec<i32>>,
    /// New replica set.
    pub replicas: Option<Vec<i32>>,
    /// New eligible leader replicas.
    pub eligible_leader_replicas: Option<Vec<i32>>,
    /// New last known ELR.
    pub last_known_elr: Option<Vec<i32>>,
}

/// A config key was set (`value: Some`) or deleted (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRecord {
    /// What the config belongs to.
    pub resource_type: ConfigResourceType,
    /// The topic name, the broker id ("" for the cluster-wide broker default), or the group id.
    pub resource_name: String,
    /// Config key.
    pub name: String,
    /// New value, or `None` to delete the key.
    pub value: Option<String>,
}

/// A user's SCRAM credential for one mechanism was set (Kafka's UserScramCredentialRecord):
/// the salted form only, never the password.
#[derive(Clone, PartialEq, Eq)]
pub struct UserScramCredentialRecord {
    /// The user name.
    pub name: String,
    /// Kafka's ScramMechanism: 1 = SCRAM-SHA-256, 2 = SCRAM-SHA-512.
    pub mechanism: i8,
    /// The salt.
    pub salt: Vec<u8>,
    /// H(ClientKey).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: i32,
}

impl std::fmt::Debug for UserScramCredentialRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserScramCredentialRecord")
            .field("name", &self.name)
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// A user's SCRAM credential for one mechanism was deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveUserScramCredentialRecord {
    /// The user name.
    pub name: String,
    /// Kafka's ScramMechanism.
    pub mechanism: i8,
}

/// One part of a client-quota entity: its type (`user`, `client-id`, `ip`) and name, `None`
/// for the type's default entity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QuotaEntityPart {
    /// `user`, `client-id` or `ip`.
    pub entity_type: String,
    /// The name, or `None` for the default.
    pub entity_name: Option<String>,
}

/// A quota value. Compared by its bits, so records and images stay `Eq` (the controller never
/// stores a NaN).
#[derive(Debug, Clone, Copy)]
pub struct QuotaValue(pub f64);

impl PartialEq for QuotaValue {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for QuotaValue {}

/// A client quota was set or removed (Kafka's ClientQuotaRecord): `key` of the entity becomes
/// `value`, or is removed when `remove`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientQuotaRecord {
    /// The entity's parts, in the order the controller sorted them (by type).
    pub entity: Vec<QuotaEntityPart>,
    /// The quota key, e.g. `producer_byte_rate`.
    pub key: String,
    /// The value (ignored when `remove`).
    pub value: QuotaValue,
    /// Whether the key is removed.
    pub remove: bool,
}

/// An ACL binding was created (Kafka's AccessControlEntryRecord). The enum fields carry
/// Kafka's wire codes (`millrace_security::acl`); the id names the binding for its removal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccessControlEntryRecord {
    /// The binding's id, a UUID.
    pub id: [u8; 16],
    /// ResourceType code (2 topic, 3 group, 4 cluster, 5 transactional id, ...).
    pub resource_type: i8,
    /// The resource name or prefix.
    pub resource_name: String,
    /// PatternType code (3 literal, 4 prefixed).
    pub pattern_type: i8,
    /// `User:alice`, `User:*`.
    pub principal: String,
    /// `*`, an address or a CIDR block.
    pub host: String,
    /// AclOperation code.
    pub operation: i8,
    /// PermissionType code (2 deny, 3 allow).
    pub permission_type: i8,
}

/// An ACL binding was deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveAccessControlEntryRecord {
    /// The id its AccessControlEntryRecord gave it.
    pub id: [u8; 16],
}

/// A topic was deleted, with its partitions and configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveTopicRecord {
    /// The topic.
    pub topic_id: TopicId,
}

/// A block of producer ids was handed to a broker: every id below `next_producer_id` may be in
/// use, and the next block starts there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerIdsRecord {
    /// The broker the block went to.
    pub broker_id: i32,
    /// That broker's epoch when it asked.
    pub broker_epoch: i64,
    /// The first producer id not yet handed out.
    pub next_producer_id: i64,
}

/// Kafka's `SecurityProtocol` ids, the values an endpoint's `security_protocol` may take.
pub mod security_protocol {
    /// PLAINTEXT.
    pub const PLAINTEXT: i16 = 0;
    /// SSL.
    pub const SSL: i16 = 1;
    /// SASL_PLAINTEXT.
    pub const SASL_PLAINTEXT: i16 = 2;
    /// SASL_SSL.
    pub const SASL_SSL: i16 = 3;
}

/// One listener of a broker, as it registered it (Kafka's `BrokerEndpoint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerEndpoint {
    /// Listener name, e.g. `PLAINTEXT` or `INTERNAL`; unique within one registration.
    pub name: String,
    /// Host clients connect to.
    pub host: String,
    /// Port clients connect to.
    pub port: u16,
    /// The listener's security protocol, one of [`security_protocol`].
    pub security_protocol: i16,
}

/// A broker registered (or registered again after a restart): who it is, where it listens.
/// The controller writes it with `broker_epoch` = the offset the record gets in the log, so
/// every registration of a broker has a larger epoch than the one before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterBrokerRecord {
    /// Broker id (`node.id`), non-negative.
    pub broker_id: i32,
    /// A random id the broker process picks at start-up: a new one means a new process.
    pub incarnation_id: [u8; 16],
    /// The broker epoch this registration starts.
    pub broker_epoch: i64,
    /// Its listeners.
    pub endpoints: Vec<BrokerEndpoint>,
    /// `broker.rack`, if set (never the empty string).
    pub rack: Option<String>,
    /// Whether the broker starts fenced (Kafka: always, until it has caught up).
    pub fenced: bool,
}

/// A broker's registration was removed (UnregisterBroker, or decommissioning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnregisterBrokerRecord {
    /// The broker.
    pub broker_id: i32,
    /// The epoch of the registration removed; any other epoch is refused.
    pub broker_epoch: i64,
}

/// A broker was fenced: its session expired (or it asked), it may not lead partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceBrokerRecord {
    /// The broker.
    pub id: i32,
    /// The epoch of the registration fenced; any other epoch is refused.
    pub epoch: i64,
}

/// A broker was unfenced: it caught up with the metadata log and may lead partitions again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnfenceBrokerRecord {
    /// The broker.
    pub id: i32,
    /// The epoch of the registration unfenced; any other epoch is refused.
    pub epoch: i64,
}

/// A change to a registration's state; `None` fields keep their value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistrationChangeRecord {
    /// The broker.
    pub broker_id: i32,
    /// The epoch of the registration changed; any other epoch is refused.
    pub broker_epoch: i64,
    /// New fenced state.
    pub fenced: Option<bool>,
    /// `Some(true)`: the broker entered controlled shutdown. `Some(false)` is encodable but
    /// refused by the image: as in Kafka, only a new registration leaves controlled shutdown.
    pub in_controlled_shutdown: Option<bool>,
}

/// One metadata record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataRecord {
    /// See [`TopicRecord`].
    Topic(TopicRecord),
    /// See [`PartitionRecord`].
    Partition(PartitionRecord),
    /// See [`PartitionChangeRecord`].
    PartitionChange(PartitionChangeRecord),
    /// See [`ConfigRecord`].
    Config(ConfigRecord),
    /// See [`RemoveTopicRecord`].
    RemoveTopic(RemoveTopicRecord),
    /// See [`ProducerIdsRecord`].
    ProducerIds(ProducerIdsRecord),
    /// Changes nothing; a Raft leader writes one to commit its term (Kafka's NoOpRecord).
    NoOp,
    /// See [`RegisterBrokerRecord`].
    RegisterBroker(RegisterBrokerRecord),
    /// See [`UnregisterBrokerRecord`].
    UnregisterBroker(UnregisterBrokerRecord),
    /// See [`FenceBrokerRecord`].
    FenceBroker(FenceBrokerRecord),
    /// See [`UnfenceBrokerRecord`].
    UnfenceBroker(UnfenceBrokerRecord),
    /// See [`BrokerRegistrationChangeRecord`].
    BrokerRegistrationChange(BrokerRegistrationChangeRecord),
    /// See [`UserScramCredentialRecord`].
    UserScramCredential(UserScramCredentialRecord),
    /// See [`RemoveUserScramCredentialRecord`].
    RemoveUserScramCredential(RemoveUserScramCredentialRecord),
    /// See [`ClientQuotaRecord`].
    ClientQuota(ClientQuotaRecord),
    /// See [`AccessControlEntryRecord`].
    AccessControlEntry(AccessControlEntryRecord),
    /// See [`RemoveAccessControlEntryRecord`].
    RemoveAccessControlEntry(RemoveAccessControlEntryRecord),
}

/// Bytes of the `type | version` prefix.
pub const RECORD_HEADER_BYTES: usize = 4;

const TOPIC: u16 = 2;
const PARTITION: u16 = 3;
const CONFIG: u16 = 4;
const PARTITION_CHANGE: u16 = 5;
const REMOVE_TOPIC: u16 = 9;
const PRODUCER_IDS: u16 = 15;
const NO_OP: u16 = 20;
const USER_SCRAM_CREDENTIAL: u16 = 11;
const REMOVE_USER_SCRAM_CREDENTIAL: u16 = 12;
const CLIENT_QUOTA: u16 = 14;
const ACCESS_CONTROL_ENTRY: u16 = 23;
const REMOVE_ACCESS_CONTROL_ENTRY: u16 = 24;
const REGISTER_BROKER: u16 = 0;
const UNREGISTER_BROKER: u16 = 1;
const FENCE_BROKER: u16 = 7;
const UNFENCE_BROKER: u16 = 8;
const BROKER_REGISTRATION_CHANGE: u16 = 17;

/// Bytes an endpoint takes at least: two empty strings, port, protocol.
const ENDPOINT_MIN_BYTES: usize = 4 + 4 + 2 + 2;

/// `leader` in a PartitionChangeRecord when it does not change (Kafka's NO_LEADER_CHANGE).
const NO_LEADER_CHANGE: i32 = -2;

impl MetadataRecord {
    /// The record's type number.
    pub fn record_type(&self) -> u16 {
        match self {
            MetadataRecord::Topic(_) => TOPIC,
            MetadataRecord::Partition(_) => PARTITION,
            MetadataRecord::PartitionChange(_) => PARTITION_CHANGE,
            MetadataRecord::Config(_) => CONFIG,
            MetadataRecord::RemoveTopic(_) => REMOVE_TOPIC,
            MetadataRecord::ProducerIds(_) => PRODUCER_IDS,
            MetadataRecord::NoOp => NO_OP,
            MetadataRecord::RegisterBroker(_) => REGISTER_BROKER,
            MetadataRecord::UnregisterBroker(_) => UNREGISTER_BROKER,
            MetadataRecord::FenceBroker(_) => FENCE_BROKER,
            MetadataRecord::UnfenceBroker(_) => UNFENCE_BROKER,
            MetadataRecord::BrokerRegistrationChange(_) => BROKER_REGISTRATION_CHANGE,
            MetadataRecord::UserScramCredential(_) => USER_SCRAM_CREDENTIAL,
            MetadataRecord::RemoveUserScramCredential(_) => REMOVE_USER_SCRAM_CREDENTIAL,
            MetadataRecord::ClientQuota(_) => CLIENT_QUOTA,
            MetadataRecord::AccessControlEntry(_) => ACCESS_CONTROL_ENTRY,
            MetadataRecord::RemoveAccessControlEntry(_) => REMOVE_ACCESS_CONTROL_ENTRY,
        }
    }

    /// The payload version this build writes for the record's type.
    pub fn version(&self) -> u16 {
        0
    }

    /// Encodes the record as a record value.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoded record to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut w = Writer(out);
        w.u16(self.record_type());
        w.u16(self.version());
        match self {
            MetadataRecord::Topic(r) => {
                w.string(&r.name);
                w.bytes16(&r.topic_id.0);
            }
            MetadataRecord::Partition(r) => encode_partition(&mut w, r),
            MetadataRecord::PartitionChange(r) => encode_partition_change(&mut w, r),
            MetadataRecord::Config(r) => {
                w.i8(r.resource_type.code());
                w.string(&r.resource_name);
                w.string(&r.name);
                w.nullable_string(r.value.as_deref());
            }
            MetadataRecord::RemoveTopic(r) => w.bytes16(&r.topic_id.0),
            MetadataRecord::ProducerIds(r) => {
                w.i32(r.broker_id);
                w.i64(r.broker_epoch);
                w.i64(r.next_producer_id);
            }
            MetadataRecord::NoOp => {}
            MetadataRecord::RegisterBroker(r) => encode_register_broker(&mut w, r),
            MetadataRecord::UnregisterBroker(r) => {
                w.i32(r.broker_id);
                w.i64(r.broker_epoch);
            }
            MetadataRecord::FenceBroker(r) => {
                w.i32(r.id);
                w.i64(r.epoch);
            }
            MetadataRecord::UnfenceBroker(r) => {
                w.i32(r.id);
                w.i64(r.epoch);
            }
            MetadataRecord::BrokerRegistrationChange(r) => {
                w.i32(r.broker_id);
                w.i64(r.broker_epoch);
                w.i8(tri_state(r.fenced));
                w.i8(tri_state(r.in_controlled_shutdown));
            }
            MetadataRecord::UserScramCredential(r) => {
                w.string(&r.name);
                w.i8(r.mechanism);
                for bytes in [&r.salt, &r.stored_key, &r.server_key] {
                    w.u16(u16::try_from(bytes.len()).expect("SCRAM fields are short"));
                    w.raw(bytes);
                }
                w.i32(r.iterations);
            }
            MetadataRecord::RemoveUserScramCredential(r) => {
                w.string(&r.name);
                w.i8(r.mechanism);
            }
            MetadataRecord::ClientQuota(r) => {
                encode_quota_entity(&mut w, &r.entity);
                w.string(&r.key);
                w.u64(r.value.0.to_bits());
                w.bool(r.remove);
            }
            MetadataRecord::AccessControlEntry(r) => encode_acl(&mut w, r),
            MetadataRecord::RemoveAccessControlEntry(r) => w.bytes16(&r.id),
        }
    }

    /// Decodes one record value (all of `bytes`, nothing after it).
    pub fn decode(bytes: &[u8]) -> Result<Self, ReplicationError> {
        let mut r = Reader::new(bytes, "metadata record");
        let record_type = r.u16()?;
        let version = r.u16()?;
        if !matches!(
            record_type,
            TOPIC
                | PARTITION
                | CONFIG
                | PARTITION_CHANGE
                | REMOVE_TOPIC
                | PRODUCER_IDS
                | NO_OP
                | REGISTER_BROKER
                | UNREGISTER_BROKER
                | FENCE_BROKER
                | UNFENCE_BROKER
                | BROKER_REGISTRATION_CHANGE
                | USER_SCRAM_CREDENTIAL
                | REMOVE_USER_SCRAM_CREDENTIAL
                | CLIENT_QUOTA
                | ACCESS_CONTROL_ENTRY
                | REMOVE_ACCESS_CONTROL_ENTRY
        ) {
            return Err(ReplicationError::UnknownRecordType { record_type });
        }
        if version != 0 {
            return Err(ReplicationError::UnsupportedRecordVersion {
                record_type,
                version,
            });
        }
        let record = match record_type {
            TOPIC => MetadataRecord::Topic(TopicRecord {
                name: r.string()?,
                topic_id: TopicId(r.bytes16()?),
            }),
            PARTITION => MetadataRecord::Partition(decode_partition(&mut r)?),
            PARTITION_CHANGE => MetadataRecord::PartitionChange(decode_partition_change(&mut r)?),
            CONFIG => MetadataRecord::Config(ConfigRecord {
                resource_type: ConfigResourceType::from_code(r.i8()?)?,
                resource_name: r.string()?,
                name: r.string()?,
                value: r.nullable_string()?,
            }),
            REMOVE_TOPIC => MetadataRecord::RemoveTopic(RemoveTopicRecord {
                topic_id: TopicId(r.bytes16()?),
            }),
            PRODUCER_IDS => MetadataRecord::ProducerIds(ProducerIdsRecord {
                broker_id: r.i32()?,
                broker_epoch: r.i64()?,
                next_producer_id: r.i64()?,
            }),
            REGISTER_BROKER => MetadataRecord::RegisterBroker(decode_register_broker(&mut r)?),
            UNREGISTER_BROKER => MetadataRecord::UnregisterBroker(UnregisterBrokerRecord {
                broker_id: r.i32()?,
                broker_epoch: r.i64()?,
            }),
            FENCE_BROKER => MetadataRecord::FenceBroker(FenceBrokerRecord {
                id: r.i32()?,
                epoch: r.i64()?,
            }),
            UNFENCE_BROKER => MetadataRecord::UnfenceBroker(UnfenceBrokerRecord {
                id: r.i32()?,
                epoch: r.i64()?,
            }),
            BROKER_REGISTRATION_CHANGE => {
                MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord {
                    broker_id: r.i32()?,
                    broker_epoch: r.i64()?,
                    fenced: read_tri_state(&mut r)?,
                    in_controlled_shutdown: read_tri_state(&mut r)?,
                })
            }
            USER_SCRAM_CREDENTIAL => {
                let name = r.string()?;
                let mechanism = r.i8()?;
                let mut short = || -> Result<Vec<u8>, ReplicationError> {
                    let n = usize::from(r.u16()?);
                    Ok(r.raw(n)?.to_vec())
                };
                let (salt, stored_key, server_key) = (short()?, short()?, short()?);
                MetadataRecord::UserScramCredential(UserScramCredentialRecord {
                    name,
                    mechanism,
                    salt,
                    stored_key,
                    server_key,
                    iterations: r.i32()?,
                })
            }
            REMOVE_USER_SCRAM_CREDENTIAL => {
                MetadataRecord::RemoveUserScramCredential(RemoveUserScramCredentialRecord {
                    name: r.string()?,
                    mechanism: r.i8()?,
                })
            }
            CLIENT_QUOTA => MetadataRecord::ClientQuota(ClientQuotaRecord {
                entity: decode_quota_entity(&mut r)?,
                key: r.string()?,
                value: QuotaValue(f64::from_bits(r.u64()?)),
                remove: r.bool()?,
            }),
            ACCESS_CONTROL_ENTRY => MetadataRecord::AccessControlEntry(decode_acl(&mut r)?),
            REMOVE_ACCESS_CONTROL_ENTRY => {
                MetadataRecord::RemoveAccessControlEntry(RemoveAccessControlEntryRecord {
                    id: r.bytes16()?,
                })
            }
            _ => MetadataRecord::NoOp,
        };
        r.finish()?;
        Ok(record)
    }
}

/// A quota entity: count, then (type, nullable name) each. Shared with snapshots.
pub(super) fn encode_quota_entity(w: &mut Writer<'_>, entity: &[QuotaEntityPart]) {
    w.u32(u32::try_from(entity.len()).expect("a quota entity has a few parts"));
    for part in entity {
        w.string(&part.entity_type);
        w.nullable_string(part.entity_name.as_deref());
    }
}

/// Reads what [`encode_quota_entity`] wrote.
pub(super) fn decode_quota_entity(
    r: &mut Reader<'_>,
) -> Result<Vec<QuotaEntityPart>, ReplicationError> {
    let mut entity = Vec::new();
    for _ in 0..r.count(8)? {
        entity.push(QuotaEntityPart {
            entity_type: r.string()?,
            entity_name: r.nullable_string()?,
        });
    }
    Ok(entity)
}

/// An ACL binding with its id. Shared with snapshots.
pub(super) fn encode_acl(w: &mut Writer<'_>, r: &AccessControlEntryRecord) {
    w.bytes16(&r.id);
    w.i8(r.resource_type);
    w.string(&r.resource_name);
    w.i8(r.pattern_type);
    w.string(&r.principal);
    w.string(&r.host);
    w.i8(r.operation);
    w.i8(r.permission_type);
}

/// Reads what [`encode_acl`] wrote.
pub(super) fn decode_acl(r: &mut Reader<'_>) -> Result<AccessControlEntryRecord, ReplicationError> {
    Ok(AccessControlEntryRecord {
        id: r.bytes16()?,
        resource_type: r.i8()?,
        resource_name: r.string()?,
        pattern_type: r.i8()?,
        principal: r.string()?,
        host: r.string()?,
        operation: r.i8()?,
        permission_type: r.i8()?,
    })
}

fn encode_partition(w: &mut Writer<'_>, r: &PartitionRecord) {
    w.bytes16(&r.topic_id.0);
    w.i32(r.partition_id);
    encode_partition_state(w, &r.state);
}

fn decode_partition(r: &mut Reader<'_>) -> Result<PartitionRecord, ReplicationError> {
    Ok(PartitionRecord {
        topic_id: TopicId(r.bytes16()?),
        partition_id: r.i32()?,
        state: decode_partition_state(r)?,
    })
}

/// A partition's state, as a PartitionRecord carries it and an image snapshot stores it:
/// replicas, isr, elr, last known elr (i32 arrays), leader, leader epoch, partition epoch.
pub(super) fn encode_partition_state(w: &mut Writer<'_>, p: &PartitionImage) {
    w.i32_array(&p.replicas);
    w.i32_array(&p.isr);
    w.i32_array(&p.eligible_leader_replicas);
    w.i32_array(&p.last_known_elr);
    w.i32(p.leader);
    w.i32(p.leader_epoch);
    w.i32(p.partition_epoch);
}

/// Reads what [`encode_partition_state`] wrote.
pub(super) fn decode_partition_state(
    r: &mut Reader<'_>,
) -> Result<PartitionImage, ReplicationError> {
    Ok(PartitionImage {
        replicas: r.i32_array()?,
        isr: r.i32_array()?,
        eligible_leader_replicas: r.i32_array()?,
        last_known_elr: r.i32_array()?,
        leader: r.i32()?,
        leader_epoch: r.i32()?,
        partition_epoch: r.i32()?,
    })
}

fn encode_partition_change(w: &mut Writer<'_>, r: &PartitionChangeRecord) {
    w.bytes16(&r.topic_id.0);
    w.i32(r.partition_id);
    w.i32(r.leader.unwrap_or(NO_LEADER_CHANGE));
    w.nullable_i32_array(r.isr.as_deref());
    w.nullable_i32_array(r.replicas.as_deref());
    w.nullable_i32_array(r.eligible_leader_replicas.as_deref());
    w.nullable_i32_array(r.last_known_elr.as_deref());
}

fn decode_partition_change(r: &mut Reader<'_>) -> Result<PartitionChangeRecord, ReplicationError> {
    let topic_id = TopicId(r.bytes16()?);
    let partition_id = r.i32()?;
    let leader = match r.i32()? {
        NO_LEADER_CHANGE => None,
        leader => Some(leader),
    };
    Ok(PartitionChangeRecord {
        topic_id,
        partition_id,
        leader,
        isr: r.nullable_i32_array()?,
        replicas: r.nullable_i32_array()?,
        eligible_leader_replicas: r.nullable_i32_array()?,
        last_known_elr: r.nullable_i32_array()?,
    })
}

pub(super) fn encode_register_broker(w: &mut Writer<'_>, r: &RegisterBrokerRecord) {
    w.i32(r.broker_id);
    w.bytes16(&r.incarnation_id);
    w.i64(r.broker_epoch);
    encode_endpoints(w, &r.endpoints);
    w.nullable_string(r.rack.as_deref());
    w.bool(r.fenced);
}

pub(super) fn decode_register_broker(
    r: &mut Reader<'_>,
) -> Result<RegisterBrokerRecord, ReplicationError> {
    Ok(RegisterBrokerRecord {
        broker_id: r.i32()?,
        incarnation_id: r.bytes16()?,
        broker_epoch: r.i64()?,
        endpoints: decode_endpoints(r)?,
        rack: r.nullable_string()?,
        fenced: r.bool()?,
    })
}

/// A broker's endpoints, as a RegisterBrokerRecord carries them and an image snapshot stores
/// them: count u32, then name, host, port, security protocol of each.
fn encode_endpoints(w: &mut Writer<'_>, endpoints: &[BrokerEndpoint]) {
    w.u32(u32::try_from(endpoints.len()).expect("more than u32::MAX endpoints"));
    for e in endpoints {
        w.string(&e.name);
        w.string(&e.host);
        w.u16(e.port);
        w.i16(e.security_protocol);
    }
}

/// Reads what [`encode_endpoints`] wrote; the count is checked against the bytes left first.
fn decode_endpoints(r: &mut Reader<'_>) -> Result<Vec<BrokerEndpoint>, ReplicationError> {
    let count = r.count(ENDPOINT_MIN_BYTES)?;
    let mut endpoints = Vec::with_capacity(count);
    for _ in 0..count {
        endpoints.push(BrokerEndpoint {
            name: r.string()?,
            host: r.string()?,
            port: r.u16()?,
            security_protocol: r.i16()?,
        });
    }
    Ok(endpoints)
}

/// `Some(true)` → 1, `Some(false)` → -1, `None` → 0, as Kafka encodes BrokerRegistrationChange's
/// `Fenced`.
fn tri_state(v: Option<bool>) -> i8 {
    match v {
        None => 0,
        Some(true) => 1,
        Some(false) => -1,
    }
}

fn read_tri_state(r: &mut Reader<'_>) -> Result<Option<bool>, ReplicationError> {
    let at = r.position();
    match r.i8()? {
        0 => Ok(None),
        1 => Ok(Some(true)),
        -1 => Ok(Some(false)),
        _ => Err(ReplicationError::Malformed {
            what: "metadata record",
            at,
            reason: "change flag is not -1, 0 or 1",
        }),
    }
}

#[cfg(test)]
mod tests;
