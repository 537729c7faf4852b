//! Cluster metadata as this node's shards see it: the cluster image (built only by applying
//! the metadata log's records, `millrace_replication::metadata`) paired with this node's
//! placement table (partition → shard), the cluster id, and a name index for handlers.
//!
//! One writer: the controller (`crate::controller`, on the controller's shard) turns each
//! change into records, appends and flushes them to the metadata log, applies them, updates
//! the placement, then sends the new [`MetadataImage`] to every shard. Each shard keeps its
//! own `Arc` copy and ignores an image whose version is not newer than the one it holds.
//!
//! * `boot.rs`: start-up on the controller's shard (log, replay, `meta.properties`,
//!   placement, the upgrade of a pre-log data directory);
//! * `placement.rs`: the node-local placement table and its file;
//! * `legacy.rs`: the pre-log whole-file image, read once by the upgrade.
//!
//! Topic ids are `TopicId` in the image and `uuid::Uuid` on the wire: [`uuid_of`] and
//! [`topic_id_of`] convert at that edge.

pub mod boot;
mod legacy;
mod placement;

pub use placement::Placement;

use millrace_replication::metadata::{
    ClusterImage, ConfigRecord, ConfigResourceType, MetadataRecord, PartitionImage,
    PartitionRecord, TopicId, TopicRecord,
};
use millrace_replication::ReplicationError;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A partition's key: (topic, partition index).
pub type PartitionKey = (String, i32);

/// Producer ids are handed out in blocks; the block's end is committed to the metadata log
/// before any id in it is used, so no id is ever handed out twice across restarts.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

/// One topic, as handlers read it (derived from the image when the view is built).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    /// Topic name.
    pub name: String,
    /// Topic id as the wire carries it (Fetch v13+, Metadata v10+).
    pub id: uuid::Uuid,
    /// The same id as the image keys it.
    pub topic_id: TopicId,
    /// Number of partitions.
    pub partitions: i32,
    /// Topic-level configs.
    pub configs: BTreeMap<String, String>,
}

/// An immutable metadata view. Shared between shards through `Arc` (read-only). Build it with
/// [`MetadataImage::new`] (or, in tests, [`MetadataImage::for_topics`]): `topics` is an index
/// derived from `cluster`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataImage {
    /// Grows with every published view (not the log offset: a placement-only change at
    /// start-up publishes too).
    pub version: u64,
    /// The cluster id, from `meta.properties`.
    pub cluster_id: String,
    /// What the metadata log says.
    pub cluster: Arc<ClusterImage>,
    /// Which shard of this node holds each partition.
    pub placement: Arc<Placement>,
    /// Topics by name, derived from `cluster`.
    pub topics: BTreeMap<String, Arc<TopicMeta>>,
}

impl MetadataImage {
    /// The view of `cluster` and `placement`.
    pub fn new(
        version: u64,
        cluster_id: String,
        cluster: Arc<ClusterImage>,
        placement: Arc<Placement>,
    ) -> Self {
        let topics = cluster
            .topics()
            .map(|t| {
                let meta = TopicMeta {
                    name: t.name.clone(),
                    id: uuid_of(t.id),
                    topic_id: t.id,
                    partitions: t.partitions.len() as i32,
                    configs: t.configs.clone(),
                };
                (t.name.clone(), Arc::new(meta))
            })
            .collect();
        MetadataImage {
            version,
            cluster_id,
            cluster,
            placement,
            topics,
        }
    }

    /// A test or simulation view: `topics` (name, partition count) created in order with
    /// ordinary topic configs (internal ones get theirs), placed least-loaded over `shards`.
    #[cfg(test)]
    pub fn for_topics(cluster_id: &str, topics: &[(&str, i32)], shards: usize) -> Self {
        let mut image = MetadataImage {
            version: 1,
            cluster_id: cluster_id.to_string(),
            ..Default::default()
        };
        for (name, partitions) in topics {
            image.add_internal_topic(name, *partitions, shards);
        }
        image
    }

    /// Looks a topic up by its wire id.
    pub fn topic_by_id(&self, id: &uuid::Uuid) -> Option<&Arc<TopicMeta>> {
        let topic = self.cluster.topic_by_id(&topic_id_of(id))?;
        self.topics.get(&topic.name)
    }

    /// The shard owning a partition, if the topic and partition exist.
    pub fn owner(&self, topic: &str, partition: i32) -> Option<usize> {
        let t = self.topics.get(topic)?;
        self.placement.owner(&t.topic_id, partition)
    }

    /// The error for a partition no shard of this node holds: NOT_LEADER_OR_FOLLOWER when the
    /// image has it (other brokers hold it; the client refreshes its metadata and goes
    /// there), UNKNOWN_TOPIC_OR_PARTITION when the topic or partition does not exist.
    pub fn not_here_code(&self, topic: &str, partition: i32) -> i16 {
        use millrace_wire::codes;
        let exists = self
            .topics
            .get(topic)
            .is_some_and(|t| (0..t.partitions).contains(&partition));
        if exists {
            codes::NOT_LEADER_OR_FOLLOWER
        } else {
            codes::UNKNOWN_TOPIC_OR_PARTITION
        }
    }

    /// The partitions placed on `shard`, with their topics.
    pub fn owned_by(&self, shard: usize) -> Vec<(PartitionKey, Arc<TopicMeta>)> {
        let mut owned = Vec::new();
        for t in self.topics.values() {
            let shards = self.placement.shards_of(&t.topic_id).unwrap_or(&[]);
            for (p, _) in shards
                .iter()
                .enumerate()
                .filter(|(_, s)| **s == Some(shard))
            {
                if (p as i32) < t.partitions {
                    owned.push(((t.name.clone(), p as i32), t.clone()));
                }
            }
        }
        owned
    }

    /// Adds a topic (with the internal topic's configs if `name` is internal) as records
    /// applied to this view's image, placed over `shards`; node 0 is its sole replica. For
    /// tests and the simulation, which build images without a controller.
    #[cfg(test)]
    pub fn add_internal_topic(&mut self, name: &str, partitions: i32, shards: usize) {
        let configs = if name == SHARE_STATE_TOPIC {
            share_state_topic_configs()
        } else if is_internal(name) {
            internal_topic_configs()
        } else {
            BTreeMap::new()
        };
        let id = topic_id_of(&uuid::Uuid::new_v4());
        let records = topic_records(name, id, partitions, &configs, 0);
        let mut cluster = (*self.cluster).clone();
        let mut placement = (*self.placement).clone();
        for record in &records {
            let offset = cluster.last_applied_offset() + 1;
            cluster.apply(record, offset).expect("a valid new topic");
            placement.follow(record, shards, 0);
        }
        *self = MetadataImage::new(
            self.version,
            std::mem::take(&mut self.cluster_id),
            Arc::new(cluster),
            Arc::new(placement),
        );
    }
}

/// Records the controller appends while it works out one change, applied as it goes to a
/// copy of the image and the placement so later checks in the same request see them.
pub struct Draft {
    /// The image with the draft's records applied.
    pub cluster: ClusterImage,
    /// The placement following them.
    pub placement: Placement,
    /// The records, in order.
    pub records: Vec<MetadataRecord>,
    shards: usize,
    /// This node's broker id (the sole replica of new partitions).
    pub node_id: i32,
}

impl Draft {
    /// An empty draft over `image` on a node with `shards` shards.
    pub fn new(image: &MetadataImage, shards: usize, node_id: i32) -> Self {
        Draft {
            cluster: (*image.cluster).clone(),
            placement: (*image.placement).clone(),
            records: Vec::new(),
            shards,
            node_id,
        }
    }

    /// Applies `records` in order, all or none: on an error the draft is unchanged.
    pub fn push_all(&mut self, records: Vec<MetadataRecord>) -> Result<(), ReplicationError> {
        let mut cluster = self.cluster.clone();
        let mut placement = self.placement.clone();
        for record in &records {
            let offset = cluster.last_applied_offset() + 1;
            cluster.apply(record, offset)?;
            placement.follow(record, self.shards, self.node_id);
        }
        self.cluster = cluster;
        self.placement = placement;
        self.records.extend(records);
        Ok(())
    }
}

/// The records that create a topic whose partitions have this node as sole replica (the
/// assignment from `crate::partition::sole_replica_assignment`).
pub fn topic_records(
    name: &str,
    topic_id: TopicId,
    partitions: i32,
    configs: &BTreeMap<String, String>,
    node_id: i32,
) -> Vec<MetadataRecord> {
    let mut records = vec![MetadataRecord::Topic(TopicRecord {
        name: name.to_string(),
        topic_id,
    })];
    records.extend(partition_records(topic_id, 0..partitions, node_id));
    records.extend(configs.iter().map(|(k, v)| {
        MetadataRecord::Config(ConfigRecord {
            resource_type: ConfigResourceType::Topic,
            resource_name: name.to_string(),
            name: k.clone(),
            value: Some(v.clone()),
        })
    }));
    records
}

/// Partition records for new partitions `range` of a topic, led by this node alone.
pub fn partition_records(
    topic_id: TopicId,
    range: std::ops::Range<i32>,
    node_id: i32,
) -> impl Iterator<Item = MetadataRecord> {
    let a = crate::partition::sole_replica_assignment(node_id);
    range.map(move |partition_id| {
        MetadataRecord::Partition(PartitionRecord {
            topic_id,
            partition_id,
            state: PartitionImage {
                replicas: a.replicas.clone(),
                isr: a.isr.clone(),
                eligible_leader_replicas: vec![],
                last_known_elr: vec![],
                leader: a.leader.unwrap_or(-1),
                leader_epoch: a.leader_epoch.0,
                partition_epoch: 0,
            },
        })
    })
}

/// Config records that turn `old` into `new` for a topic or a group (`None`: the key is
/// deleted).
pub fn config_records(
    resource_type: ConfigResourceType,
    resource_name: &str,
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Vec<MetadataRecord> {
    let record = |name: &str, value: Option<&String>| {
        MetadataRecord::Config(ConfigRecord {
            resource_type,
            resource_name: resource_name.to_string(),
            name: name.to_string(),
            value: value.cloned(),
        })
    };
    let removed = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .map(|k| record(k, None));
    let set = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(v))
        .map(|(k, v)| record(k, Some(v)));
    removed.chain(set).collect()
}

/// The wire's id of a topic.
pub fn uuid_of(id: TopicId) -> uuid::Uuid {
    uuid::Uuid::from_bytes(id.0)
}

/// The image's id of a wire topic id.
pub fn topic_id_of(id: &uuid::Uuid) -> TopicId {
    TopicId(*id.as_bytes())
}

/// `__consumer_offsets` is compacted (only the latest commit per group, topic and partition,
/// and the latest group record, matter) in 100 MiB segments, as Kafka creates it.
pub fn internal_topic_configs() -> BTreeMap<String, String> {
    [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "104857600"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// `__share_group_state` is not compacted: a ShareUpdate record means something only after
/// every record before it of its share partition, so all of them stay (`retention.ms` -1), as
/// Kafka creates the topic (`cleanup.policy=delete`, 100 MiB segments).
pub fn share_state_topic_configs() -> BTreeMap<String, String> {
    [
        ("cleanup.policy", "delete"),
        ("retention.ms", "-1"),
        ("segment.bytes", "104857600"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Internal topics: clients may read them but not write or delete them.
pub fn is_internal(name: &str) -> bool {
    name == "__consumer_offsets" || name == TXN_TOPIC || name == SHARE_STATE_TOPIC
}

/// The internal topic holding transaction coordinators' state (`crate::txn`).
pub const TXN_TOPIC: &str = "__transaction_state";

/// The internal topic holding share groups' delivery state (`crate::share_state`).
pub const SHARE_STATE_TOPIC: &str = "__share_group_state";

/// Names no topic may take: the metadata log's directory is `__cluster_metadata-0`, where a
/// topic of that name would keep its partition 0.
pub fn is_reserved(name: &str) -> bool {
    name == "__cluster_metadata"
}

/// Kafka's topic name rule: 1-249 characters of `[a-zA-Z0-9._-]`, not "." or "..".
pub fn valid_topic_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("topic name is empty");
    }
    if name == "." || name == ".." {
        return Err("topic name cannot be \".\" or \"..\"");
    }
    if name.len() > 249 {
        return Err("topic name is longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err("topic name may only contain ASCII alphanumerics, '.', '_' and '-'");
    }
    Ok(())
}

/// Ends a node-local text file with `crc32c <hex>` over everything above it (the placement
/// table, and the pre-log metadata file the migration reads).
fn seal_text(mut text: String) -> Vec<u8> {
    let crc = crc32c::crc32c(text.as_bytes());
    text.push_str(&format!("crc32c {crc:08x}\n"));
    text.into_bytes()
}

/// The body of a file [`seal_text`] wrote, once its checksum line matches.
fn open_text(bytes: &[u8]) -> Result<&str, &'static str> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8")?;
    let body_end = text.rfind("crc32c ").ok_or("no checksum line")?;
    let (body, crc_line) = text.split_at(body_end);
    let stored = u32::from_str_radix(crc_line.trim_start_matches("crc32c ").trim(), 16)
        .map_err(|_| "bad checksum line")?;
    if crc32c::crc32c(body.as_bytes()) != stored {
        return Err("checksum mismatch");
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(valid_topic_name("orders.v1_x-2").is_ok());
        for bad in ["", ".", "..", "bad topic!", "é", &"a".repeat(250)] {
            assert!(valid_topic_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_test_view_places_and_indexes_topics() {
        let image = MetadataImage::for_topics("c", &[("__consumer_offsets", 3), ("a", 2)], 2);
        assert_eq!(image.cluster.topic_count(), 2);
        let offsets = &image.topics["__consumer_offsets"];
        assert_eq!(offsets.partitions, 3);
        assert_eq!(offsets.configs["cleanup.policy"], "compact");
        assert_eq!(image.topic_by_id(&offsets.id).unwrap().name, offsets.name);
        let owners: Vec<_> = (0..3)
            .map(|p| image.owner("__consumer_offsets", p))
            .collect();
        assert_eq!(owners, [Some(0), Some(1), Some(0)]);
        assert_eq!(image.owner("a", 0), Some(1));
        assert_eq!(image.owned_by(1).len(), 2);
        assert_eq!(image.owner("a", 2), None);
    }

    #[test]
    fn a_partition_without_a_local_shard_is_not_here_only_if_it_exists() {
        use millrace_wire::codes::{NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION};
        let mut cluster = ClusterImage::default();
        let mut placement = Placement::default();
        let records = topic_records("theirs", TopicId([7; 16]), 2, &BTreeMap::new(), 7);
        for (offset, r) in records.iter().enumerate() {
            cluster.apply(r, offset as i64).unwrap();
            placement.follow(r, 2, 0);
        }
        let image = MetadataImage::new(1, "c".into(), Arc::new(cluster), Arc::new(placement));
        assert_eq!(
            (image.owner("theirs", 0), image.owner("theirs", 1)),
            (None, None)
        );
        assert!(image.owned_by(0).is_empty() && image.owned_by(1).is_empty());
        assert_eq!(image.not_here_code("theirs", 1), NOT_LEADER_OR_FOLLOWER);
        for (topic, partition) in [("theirs", 2), ("theirs", -1), ("none", 0)] {
            let code = image.not_here_code(topic, partition);
            assert_eq!(code, UNKNOWN_TOPIC_OR_PARTITION, "{topic}-{partition}");
        }
    }

    #[test]
    fn config_records_diff_two_sets() {
        let old = BTreeMap::from([("a".to_string(), "1".to_string()), ("b".into(), "2".into())]);
        let new = BTreeMap::from([("b".to_string(), "3".to_string()), ("c".into(), "4".into())]);
        let mut cluster = ClusterImage::default();
        let id = TopicId([1; 16]);
        for (offset, r) in topic_records("t", id, 1, &old, 0).iter().enumerate() {
            cluster.apply(r, offset as i64).unwrap();
        }
        let records = config_records(ConfigResourceType::Topic, "t", &old, &new);
        assert_eq!(records.len(), 3);
        for r in &records {
            let offset = cluster.last_applied_offset() + 1;
            cluster.apply(r, offset).unwrap();
        }
        assert_eq!(cluster.topic("t").unwrap().configs, new);
    }
}
