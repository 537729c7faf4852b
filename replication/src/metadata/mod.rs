//! Cluster metadata as a log of records applied in order to an image, as KRaft does.
//!
//! * [`record`]: [`MetadataRecord`] and its versioned binary codec (the value of one Kafka
//!   record in a batch of the metadata log).
//!
//! Every node that applies the same records at the same offsets holds the same image: the
//! controller appends records (today to a local single-voter log, later through Raft, where
//! term = the batch's partition leader epoch and Raft index = offset + 1), and only committed
//! records are applied. Changing who commits a record does not change what a record is.
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
//! once when the directory is formatted and checked at start-up.
//!
//! Types here are plain values. The log and its image live on the controller's shard (today
//! shard 0); images are cloned to other shards read-only.

mod codec;
pub mod record;

pub use record::{
    ConfigRecord, ConfigResourceType, MetadataRecord, PartitionChangeRecord, PartitionRecord,
    ProducerIdsRecord, RemoveTopicRecord, TopicId, TopicRecord,
};
