//! Cluster metadata as a log of records applied in order to an image, as KRaft does.
//!
//! * [`record`]: [`MetadataRecord`] and its versioned binary codec (the value of one Kafka
//!   record in a batch of the metadata log).
//! * [`image`]: [`ClusterImage`], built only by [`ClusterImage::apply`]; `snapshot.rs` encodes
//!   and decodes the whole image.
//! * [`log`]: [`MetadataLog`], the records as record batches in a Kafka log over a
//!   [`LogStore`] (the storage crate's partition log), with append, flush and replay.
//! * [`legacy`]: [`from_legacy`], the records that rebuild a pre-log data directory's image.
//! * [`sample`]: seeded generators of valid and invalid records for tests and simulators.
//! * [`placement`]: which brokers get the replicas of new partitions (rack-aware, striped).
//! * [`control`]: the controller's decisions as pure functions returning the records to
//!   commit: broker registration, fencing and unfencing (with the leader elections and ISR
//!   changes they cause), topic and partition creation.
//!
//! Every node that applies the same records at the same offsets holds the same image: the
//! controller appends records (today to a local single-voter log, later through Raft, where
//! term = the batch's partition leader epoch and Raft index = offset + 1), and only committed
//! records are applied. Changing who commits a record does not change what a record is.
//!
//! # From today's image to records
//!
//! The broker's old whole-file image (`broker/src/metadata/legacy.rs`, format 1) maps as
//! follows:
//!
//! * `topic <name> <uuid> <shards>`: `TopicRecord {name, topic_id}`, then one
//!   `PartitionRecord` per partition (`replicas = isr = [node]`, `leader = node`, epochs 0).
//! * `config <topic> <key> <value>`: `ConfigRecord {Topic, topic, key, Some(value)}`
//!   (`None` deletes a key).
//! * `producer_id_block_end <n>`: `ProducerIdsRecord {broker_id, broker_epoch,
//!   next_producer_id: n}`.
//! * topic deletion (an image diff today): `RemoveTopicRecord {topic_id}`, which drops the
//!   topic's partitions and configs.
//! * CreatePartitions (a diff today): `PartitionRecord`s numbered from the current count.
//! * `version <u64>`: the offset of the last applied record
//!   ([`ClusterImage::last_applied_offset`]).
//! * the shard list of a topic: nothing, see placement below.
//! * `cluster_id <string>`: nothing, see the cluster id below.
//!
//! **Placement is not metadata.** Which shard of a node holds a partition depends on that
//! node's core count and load; two nodes with different cores must still hold equal images, and
//! a node that restarts with fewer cores must not need a cluster-wide change. The partition →
//! shard table is node-local (the broker's placement table, with its own revision), derived
//! from the image plus local state.
//!
//! **The cluster id is not a record**, as in Kafka, which keeps `cluster.id` in each log
//! directory's `meta.properties`. A node must know which cluster a metadata log belongs to
//! *before* it trusts or replays that log (a disk from another cluster, or a broker pointed at
//! the wrong quorum, must be refused, not merged), and the id never changes, so it is written
//! once when the directory is formatted and checked at start-up; [`from_legacy`] hands it back
//! for that file rather than turning it into a record.
//!
//! # Use
//!
//! ```
//! use millrace_replication::metadata::{ClusterImage, MetadataRecord, TopicId, TopicRecord};
//!
//! let mut image = ClusterImage::default();
//! let id = TopicId([7; 16]);
//! let topic = MetadataRecord::Topic(TopicRecord { name: "orders".into(), topic_id: id });
//! let bytes = topic.encode(); // the value of one record in a metadata log batch
//! image.apply(&MetadataRecord::decode(&bytes).unwrap(), 0).unwrap();
//! assert!(image.apply(&topic, 1).is_err()); // the name is taken: refused, image unchanged
//! assert_eq!(image.topic_by_id(&id).unwrap().name, "orders");
//!
//! let snapshot = image.encode_snapshot(); // versioned, CRC-32C
//! assert_eq!(ClusterImage::decode_snapshot(&snapshot).unwrap(), image);
//! ```
//!
//! Types here are plain values. The log and its image live on the controller's shard (today
//! shard 0); images are cloned to other shards read-only.

pub(crate) mod codec;
pub mod control;
pub mod image;
pub mod legacy;
pub mod log;
mod partition_store;
pub mod placement;
pub mod record;
pub mod sample;
mod snapshot;
pub mod snapshot_file;

pub use image::{
    AclImages, BrokerImage, ClusterImage, Configs, PartitionImage, QuotaEntity, ScramImage,
    TopicImage,
};
pub use legacy::{from_legacy, LegacyImage, LegacyMigration, LegacyTopic};
pub use log::{LogBatch, LogEntry, LogStore, MetadataLog};
pub use partition_store::PartitionStore;
pub use record::{
    AccessControlEntryRecord, BrokerEndpoint, BrokerRegistrationChangeRecord, ClientQuotaRecord,
    ConfigRecord, ConfigResourceType, FenceBrokerRecord, MetadataRecord, PartitionChangeRecord,
    PartitionRecord, ProducerIdsRecord, QuotaEntityPart, QuotaValue, RegisterBrokerRecord,
    RemoveAccessControlEntryRecord, RemoveTopicRecord, RemoveUserScramCredentialRecord, TopicId,
    TopicRecord, UnfenceBrokerRecord, UnregisterBrokerRecord, UserScramCredentialRecord,
};
pub use snapshot::{
    SNAPSHOT_FORMAT_VERSION, SNAPSHOT_FORMAT_VERSION_V1, SNAPSHOT_FORMAT_VERSION_V2, SNAPSHOT_MAGIC,
};
pub use snapshot_file::{MetadataSnapshot, SnapshotId, SnapshotStore};
