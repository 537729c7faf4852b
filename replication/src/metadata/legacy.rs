//! Upgrading a data directory written before the metadata log: the records that rebuild the
//! broker's old whole-file image (`<data>/__cluster_metadata/metadata`, format 1).
//!
//! The caller (the broker at start-up) parses the old file with its own parser, hands the plain
//! values here, appends the records to a fresh metadata log, flushes, writes the cluster id to
//! its node-local properties file, and only then retires the old file: a crash before that
//! point finds the old file again and redoes the migration into an empty log.

use super::image::{ClusterImage, PartitionImage};
use super::record::{
    ConfigRecord, ConfigResourceType, MetadataRecord, PartitionRecord, ProducerIdsRecord, TopicId,
    TopicRecord,
};
use crate::error::ReplicationError;
use std::collections::BTreeMap;

/// One topic of the old image. Its per-partition shard list is not taken: placement is
/// node-local and stays in the broker's placement table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyTopic {
    /// Name.
    pub name: String,
    /// Id (the UUID's 16 bytes).
    pub id: TopicId,
    /// Number of partitions (the length of the old shard list).
    pub partition_count: i32,
    /// Topic configs.
    pub configs: BTreeMap<String, String>,
}

/// The old image's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyImage {
    /// Topics.
    pub topics: Vec<LegacyTopic>,
    /// Producer ids below this may have been handed out.
    pub producer_id_block_end: i64,
    /// The cluster id.
    pub cluster_id: String,
}

/// What a migration produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyMigration {
    /// Records that rebuild the old image from an empty one, in order.
    pub records: Vec<MetadataRecord>,
    /// The cluster id, for the node-local properties file (not a record: see the module doc of
    /// `metadata`).
    pub cluster_id: String,
}

/// Records that rebuild `legacy` on a single node with broker id `node_id`.
///
/// Every partition gets `replicas = isr = [node_id]`, `leader = node_id` and leader and
/// partition epoch 0: the single-node broker stamped epoch 0 into every batch it wrote, so the
/// image agrees with the leader-epoch checkpoints already on disk. The producer-id block is
/// recorded as handed to `node_id` with broker epoch -1 (the old file kept no broker epoch).
/// The records are checked by applying them to an empty image: an old file that breaks an
/// image invariant (a duplicate name, an invalid name) is refused here, before anything is
/// written.
pub fn from_legacy(
    legacy: &LegacyImage,
    node_id: i32,
) -> Result<LegacyMigration, ReplicationError> {
    let mut topics: Vec<&LegacyTopic> = legacy.topics.iter().collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let mut records = Vec::new();
    for topic in topics {
        push_topic(&mut records, topic, node_id)?;
    }
    if legacy.producer_id_block_end > 0 {
        records.push(MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id: node_id,
            broker_epoch: -1,
            next_producer_id: legacy.producer_id_block_end,
        }));
    }
    let mut check = ClusterImage::default();
    for (offset, record) in records.iter().enumerate() {
        check.apply(record, offset as i64)?;
    }
    Ok(LegacyMigration {
        records,
        cluster_id: legacy.cluster_id.clone(),
    })
}

fn push_topic(
    records: &mut Vec<MetadataRecord>,
    topic: &LegacyTopic,
    node_id: i32,
) -> Result<(), ReplicationError> {
    if topic.partition_count < 0 {
        return Err(ReplicationError::InvalidRecord {
            reason: "legacy topic with a negative partition count",
        });
    }
    records.push(MetadataRecord::Topic(TopicRecord {
        name: topic.name.clone(),
        topic_id: topic.id,
    }));
    for partition_id in 0..topic.partition_count {
        records.push(MetadataRecord::Partition(PartitionRecord {
            topic_id: topic.id,
            partition_id,
            state: PartitionImage {
                replicas: vec![node_id],
                isr: vec![node_id],
                eligible_leader_replicas: vec![],
                last_known_elr: vec![],
                leader: node_id,
                leader_epoch: 0,
                partition_epoch: 0,
            },
        }));
    }
    for (name, value) in &topic.configs {
        records.push(MetadataRecord::Config(ConfigRecord {
            resource_type: ConfigResourceType::Topic,
            resource_name: topic.name.clone(),
            name: name.clone(),
            value: Some(value.clone()),
        }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> TopicId {
        TopicId([n; 16])
    }

    fn legacy() -> LegacyImage {
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("retention.ms".to_string(), "-1".to_string()),
        ]);
        LegacyImage {
            topics: vec![
                LegacyTopic {
                    name: "orders".into(),
                    id: id(2),
                    partition_count: 3,
                    configs: BTreeMap::new(),
                },
                LegacyTopic {
                    name: "__consumer_offsets".into(),
                    id: id(1),
                    partition_count: 2,
                    configs,
                },
            ],
            producer_id_block_end: 3000,
            cluster_id: "MkU3OEVBNTcwNTJENDM2Qk".into(),
        }
    }

    #[test]
    fn records_rebuild_the_old_image() {
        let migration = from_legacy(&legacy(), 7).unwrap();
        assert_eq!(migration.cluster_id, "MkU3OEVBNTcwNTJENDM2Qk");
        // 2 topics, 5 partitions, 2 configs, 1 producer-id block.
        assert_eq!(migration.records.len(), 10);
        let mut image = ClusterImage::default();
        for (offset, record) in migration.records.iter().enumerate() {
            let bytes = record.encode();
            let record = MetadataRecord::decode(&bytes).unwrap();
            image.apply(&record, offset as i64).unwrap();
        }
        assert_eq!(image.topic_count(), 2);
        assert_eq!(image.next_producer_id(), 3000);
        let orders = image.topic("orders").unwrap();
        assert_eq!(orders.id, id(2));
        assert_eq!(orders.partitions.len(), 3);
        assert!(orders.configs.is_empty());
        let offsets = image.topic_by_id(&id(1)).unwrap();
        assert_eq!(offsets.name, "__consumer_offsets");
        assert_eq!(offsets.configs["cleanup.policy"], "compact");
        assert_eq!(offsets.configs["retention.ms"], "-1");
        for p in &offsets.partitions {
            assert_eq!(
                (&p.replicas[..], &p.isr[..], p.leader),
                (&[7][..], &[7][..], 7)
            );
            assert_eq!((p.leader_epoch, p.partition_epoch), (0, 0));
        }
        // Migrating the same file twice gives the same records, whatever the topic order.
        let mut shuffled = legacy();
        shuffled.topics.reverse();
        assert_eq!(from_legacy(&shuffled, 7).unwrap(), migration);
    }

    #[test]
    fn an_empty_directory_migrates_to_no_records() {
        let empty = LegacyImage {
            topics: vec![],
            producer_id_block_end: 0,
            cluster_id: "c".into(),
        };
        assert!(from_legacy(&empty, 0).unwrap().records.is_empty());
    }

    #[test]
    fn a_broken_old_file_is_refused() {
        let mut twice = legacy();
        twice.topics[1].name = "orders".into();
        assert!(matches!(
            from_legacy(&twice, 0),
            Err(ReplicationError::TopicNameExists { .. })
        ));
        let mut same_id = legacy();
        same_id.topics[1].id = id(2);
        assert!(matches!(
            from_legacy(&same_id, 0),
            Err(ReplicationError::TopicIdExists { .. })
        ));
        let mut negative = legacy();
        negative.topics[0].partition_count = -1;
        assert!(from_legacy(&negative, 0).is_err());
    }
}
