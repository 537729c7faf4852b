//! Start-up and the upgrade of a pre-log data directory, on the simulation's disk.

use super::*;
use crate::metadata::legacy::{LegacyMetadata, LegacyTopicMeta};
use futures_lite::future::block_on;
use millrace_replication::metadata::{ConfigRecord, ConfigResourceType, TopicId};
use millrace_storage::sim::SimDisk;
use std::collections::BTreeMap;
use std::sync::Arc;

const DATA: &str = "/data";
const ORDERS: uuid::Uuid = uuid::Uuid::from_u128(0x1111);
const OFFSETS: uuid::Uuid = uuid::Uuid::from_u128(0x2222);

fn old_image() -> LegacyMetadata {
    let topic = |name: &str, id, shards: Vec<usize>, configs: &[(&str, &str)]| {
        let configs: BTreeMap<String, String> = configs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let meta = LegacyTopicMeta {
            name: name.into(),
            id,
            shards,
            configs,
        };
        (name.to_string(), Arc::new(meta))
    };
    LegacyMetadata {
        version: 12,
        topics: BTreeMap::from([
            topic(
                "orders",
                ORDERS,
                vec![1, 0, 1],
                &[("retention.ms", "60000")],
            ),
            topic(
                "__consumer_offsets",
                OFFSETS,
                vec![0, 1],
                &[
                    ("cleanup.policy", "compact"),
                    ("segment.bytes", "104857600"),
                ],
            ),
        ]),
        producer_id_block_end: 3000,
        cluster_id: "old-cluster-id".into(),
    }
}

fn disk_with_old_file() -> SimDisk {
    let disk = SimDisk::new(4096);
    let legacy = legacy_path(Path::new(DATA));
    disk.create_dir_all(legacy.parent().unwrap()).unwrap();
    disk.put_file(&legacy, &old_image().encode());
    disk
}

fn start(disk: &SimDisk, shards: usize) -> Result<Boot<SimDisk>, String> {
    let quorum = millrace_replication::quorum::QuorumConfig::new(1, &[1]);
    block_on(load(
        disk,
        Path::new(DATA),
        0,
        shards,
        Some(&quorum),
        1_700_000_000_000,
        "c".into(),
    ))
}

fn id(uuid: uuid::Uuid) -> TopicId {
    TopicId(*uuid.as_bytes())
}

/// The image, placement and cluster id an upgraded directory must have.
fn check_upgraded(boot: &Boot<SimDisk>) {
    let orders = boot.cluster.topic("orders").expect("orders survives");
    assert_eq!(orders.id, id(ORDERS));
    assert_eq!(orders.partitions.len(), 3);
    assert_eq!(orders.configs["retention.ms"], "60000");
    let offsets = boot.cluster.topic_by_id(&id(OFFSETS)).unwrap();
    assert_eq!(offsets.name, "__consumer_offsets");
    assert_eq!(offsets.configs["cleanup.policy"], "compact");
    assert_eq!(boot.cluster.topic_count(), 2);
    assert_eq!(boot.cluster.next_producer_id(), 3000);
    assert_eq!(
        boot.placement.shards_of(&id(ORDERS)),
        Some(&[Some(1), Some(0), Some(1)][..])
    );
    assert_eq!(
        boot.placement.shards_of(&id(OFFSETS)),
        Some(&[Some(0), Some(1)][..])
    );
    assert_eq!(boot.cluster_id, "old-cluster-id");
}

#[test]
fn an_old_data_directory_is_upgraded_on_start() {
    let disk = disk_with_old_file();
    let boot = start(&disk, 2).unwrap();
    check_upgraded(&boot);
    assert!(!boot.placement_dirty, "the upgrade wrote the old placement");
    let data = Path::new(DATA);
    assert!(disk.file_bytes(&legacy_path(data)).is_none());
    let migrated = legacy_path(data).with_file_name("metadata.migrated");
    assert_eq!(disk.file_bytes(&migrated).unwrap(), old_image().encode());
    let props = disk.file_bytes(&meta_properties_path(data)).unwrap();
    let props = MetaProperties::decode(&props).unwrap();
    assert_eq!(
        (props.cluster_id.as_str(), props.node_id),
        ("old-cluster-id", 0)
    );
    let stored = Placement::decode(&disk.file_bytes(&placement_path(data)).unwrap()).unwrap();
    assert_eq!(stored, boot.placement);
    let records = boot.cluster.last_applied_offset();
    drop(boot);

    // A restart (after a power loss: everything above was synced) replays the same image.
    disk.crash(7);
    let again = start(&disk, 2).unwrap();
    check_upgraded(&again);
    assert_eq!(again.cluster.last_applied_offset(), records);
}

#[test]
fn an_interrupted_upgrade_is_finished_without_repeating_records() {
    let disk = disk_with_old_file();
    let first = start(&disk, 2).unwrap();
    let records = first.cluster.last_applied_offset();
    drop(first);
    // A crash after the log's flush but before the rename: the old file is still there, and
    // so are the placement and meta.properties (rewritten to the same bytes).
    disk.put_file(&legacy_path(Path::new(DATA)), &old_image().encode());
    let again = start(&disk, 2).unwrap();
    check_upgraded(&again);
    assert_eq!(again.cluster.last_applied_offset(), records);
    drop(again);
    // A crash before anything of the upgrade was synced: the log is empty, start over.
    let disk = disk_with_old_file();
    disk.fail_next_syncs(1);
    assert!(start(&disk, 2).is_err());
    assert!(disk.file_bytes(&legacy_path(Path::new(DATA))).is_some());
    disk.crash(3);
    check_upgraded(&start(&disk, 2).unwrap());
}

#[test]
fn an_old_file_beside_an_unrelated_log_is_refused() {
    let disk = SimDisk::new(4096);
    let fresh = start(&disk, 2).unwrap();
    let record = MetadataRecord::Topic(millrace_replication::metadata::TopicRecord {
        name: "other".into(),
        topic_id: TopicId([9; 16]),
    });
    fresh.log.append(&[record], 0, 0).unwrap();
    block_on(fresh.log.flush()).unwrap();
    drop(fresh);
    let legacy = legacy_path(Path::new(DATA));
    disk.create_dir_all(legacy.parent().unwrap()).unwrap();
    disk.put_file(&legacy, &old_image().encode());
    let refused = start(&disk, 2).err().expect("refused");
    assert!(refused.contains("disagree"), "{refused}");
    assert!(disk.file_bytes(&legacy_path(Path::new(DATA))).is_some());
}

#[test]
fn fewer_shards_move_only_the_partitions_of_missing_shards() {
    let disk = disk_with_old_file();
    let boot = start(&disk, 1).unwrap();
    assert!(
        boot.placement_dirty,
        "shard 1 is gone: the table must be rewritten"
    );
    assert_eq!(
        boot.placement.shards_of(&id(ORDERS)),
        Some(&[Some(0), Some(0), Some(0)][..])
    );
    assert_eq!(boot.cluster.topic_count(), 2);
}

#[test]
fn a_fresh_directory_gets_a_cluster_id_that_stays() {
    let disk = SimDisk::new(4096);
    let first = start(&disk, 2).unwrap();
    assert_eq!(first.cluster.topic_count(), 0);
    assert!(!first.cluster_id.is_empty());
    let cluster_id = first.cluster_id.clone();
    let config = broker_config("k");
    first.log.append(&[config], 0, 0).unwrap();
    block_on(first.log.flush()).unwrap();
    drop(first);
    let again = start(&disk, 2).unwrap();
    assert_eq!(again.cluster_id, cluster_id);
    assert_eq!(again.cluster.broker_configs("").unwrap()["k"], "v");
    drop(again);
    // Another node's directory, or a log whose cluster id was lost, is refused.
    let quorum = millrace_replication::quorum::QuorumConfig::new(6, &[6]);
    let other = block_on(load(
        &disk,
        Path::new(DATA),
        5,
        2,
        Some(&quorum),
        0,
        "c".into(),
    ));
    assert!(other.err().unwrap().contains("node.id=0"));
    block_on(disk.remove_file(&meta_properties_path(Path::new(DATA)))).unwrap();
    assert!(start(&disk, 2).err().unwrap().contains("missing"));
}

#[test]
fn a_broker_only_node_replays_every_batch_and_refuses_a_voters_directory() {
    let observer =
        |disk: &SimDisk| block_on(load(disk, Path::new(DATA), 4, 2, None, 0, "c".into()));
    let disk = SimDisk::new(4096);
    let first = observer(&disk).unwrap();
    assert!(first.quorum.is_none());
    let config = broker_config("k");
    first.log.append(&[config], 3, 0).unwrap();
    block_on(first.log.flush()).unwrap();
    drop(first);
    // Everything an observer holds is committed: all of it is applied at start.
    let again = observer(&disk).unwrap();
    assert_eq!(again.cluster.broker_configs("").unwrap()["k"], "v");
    drop(again);
    // A directory a voter wrote (it has quorum-state) may hold uncommitted batches.
    let voter = SimDisk::new(4096);
    let state = Path::new(DATA).join(LOG_DIR).join("quorum-state");
    voter.create_dir_all(state.parent().unwrap()).unwrap();
    voter.put_file(&state, b"not a valid state file");
    let refused = observer(&voter).err().expect("refused");
    assert!(refused.contains("quorum-state"), "{refused}");
}

fn broker_config(name: &str) -> MetadataRecord {
    MetadataRecord::Config(ConfigRecord {
        resource_type: ConfigResourceType::Broker,
        resource_name: String::new(),
        name: name.into(),
        value: Some("v".into()),
    })
}

#[test]
fn start_up_begins_at_the_newest_valid_snapshot_and_replays_only_after_it() {
    use millrace_replication::metadata::snapshot_file::{self, MetadataSnapshot, SnapshotStore};
    let disk = SimDisk::new(4096);
    let first = start(&disk, 2).unwrap();
    for name in ["a", "b", "c", "d"] {
        first.log.append(&[broker_config(name)], 0, 0).unwrap();
    }
    block_on(first.log.flush()).unwrap();
    // A snapshot after the second record whose image also holds a key the log never had:
    // only an image that started from the snapshot has it.
    let mut image = ClusterImage::default();
    image.apply(&broker_config("a"), 0).unwrap();
    image.apply(&broker_config("only-in-snapshot"), 1).unwrap();
    let at_two = MetadataSnapshot {
        index: 2,
        term: 1,
        image,
    };
    block_on(snapshot_file::write(first.log.store(), &at_two, 0)).unwrap();
    // A newer one whose file is damaged: passed over.
    let mut three = ClusterImage::default();
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        three.apply(&broker_config(name), i as i64).unwrap();
    }
    let damaged = MetadataSnapshot {
        index: 3,
        term: 1,
        image: three,
    };
    let body = damaged.encode();
    block_on(
        first
            .log
            .store()
            .write_snapshot(damaged.id(), &body[..body.len() - 3]),
    )
    .unwrap();
    assert_eq!(first.log.store().snapshot_ids().unwrap().len(), 2);
    drop(first);

    let again = start(&disk, 2).unwrap();
    let configs = again.cluster.broker_configs("").unwrap();
    assert!(
        configs.contains_key("only-in-snapshot"),
        "started from the snapshot at 2"
    );
    assert!(
        !configs.contains_key("b"),
        "record 1 is the snapshot's, not the log's"
    );
    assert!(
        configs.contains_key("c") && configs.contains_key("d"),
        "the log after it"
    );
    assert_eq!(again.cluster.last_applied_offset(), 3);
    assert_eq!(
        again.bytes_since_snapshot,
        (broker_config("c").encode().len() + broker_config("d").encode().len()) as i64
    );
    // A snapshot past the log's end is a leader's whose install a crash interrupted (its
    // file is written first): start-up finishes the install, and the image is its.
    let mut past = ClusterImage::default();
    for i in 0..10 {
        past.apply(&broker_config(&format!("x{i}")), i).unwrap();
    }
    let past = MetadataSnapshot {
        index: 10,
        term: 1,
        image: past,
    };
    block_on(snapshot_file::write(again.log.store(), &past, 0)).unwrap();
    drop(again);
    let installed = start(&disk, 2).unwrap();
    let log = &installed.log;
    assert_eq!((log.log_start_offset(), log.durable_end()), (10, 10));
    assert_eq!(installed.cluster.last_applied_offset(), 9);
    let configs = installed.cluster.broker_configs("").unwrap();
    assert!(configs.contains_key("x9") && !configs.contains_key("d"));
    // The node goes on from there: the log takes batches at the snapshot's end.
    installed.log.append(&[broker_config("y")], 0, 0).unwrap();
    block_on(installed.log.flush()).unwrap();
    drop(installed);
    let later = start(&disk, 2).unwrap();
    assert_eq!(later.cluster.last_applied_offset(), 10);
    assert!(later.cluster.broker_configs("").unwrap().contains_key("y"));
}

#[test]
fn a_log_cut_below_a_snapshot_that_is_gone_is_refused_with_the_way_out() {
    use millrace_replication::metadata::snapshot_file::{self, MetadataSnapshot, SnapshotStore};
    let disk = SimDisk::new(4096);
    let first = start(&disk, 2).unwrap();
    for name in ["a", "b", "c"] {
        first.log.append(&[broker_config(name)], 0, 0).unwrap();
    }
    block_on(first.log.flush()).unwrap();
    let mut image = ClusterImage::default();
    for (i, name) in ["a", "b"].iter().enumerate() {
        image.apply(&broker_config(name), i as i64).unwrap();
    }
    let two = MetadataSnapshot {
        index: 2,
        term: 1,
        image,
    };
    let (id, _) = block_on(snapshot_file::write(first.log.store(), &two, 0)).unwrap();
    assert_eq!(block_on(first.log.delete_before(2)).unwrap(), 2);
    drop(first);
    // Cut below the snapshot: the node starts from it and replays the rest.
    let again = start(&disk, 2).unwrap();
    assert_eq!(again.cluster.last_applied_offset(), 2);
    assert!(again.cluster.broker_configs("").unwrap().contains_key("c"));
    block_on(again.log.store().remove_snapshot(id)).unwrap();
    drop(again);
    let refused = start(&disk, 2)
        .err()
        .expect("no snapshot where the log starts");
    assert!(refused.contains("no readable snapshot"), "{refused}");
}

#[test]
fn meta_properties_reads_kafkas_file() {
    let kafka = b"#\n#Thu Dec 03 10:00:00 UTC 2026\nnode.id=3\ndirectory.id=abc\nversion=1\ncluster.id=MkU3OEVBNTcwNTJENDM2Qk\n";
    let props = MetaProperties::decode(kafka).unwrap();
    assert_eq!(props.node_id, 3);
    assert_eq!(props.cluster_id, "MkU3OEVBNTcwNTJENDM2Qk");
    assert_eq!(MetaProperties::decode(&props.encode()).unwrap(), props);
    assert!(MetaProperties::decode(b"version=0\ncluster.id=a\nnode.id=1\n").is_err());
    assert!(MetaProperties::decode(b"version=1\nnode.id=1\n").is_err());
}
