use super::*;
use crate::metadata::record::RemoveTopicRecord;
use crate::metadata::sample::RecordSource;

const SEEDS: u64 = 300;
const RECORDS: usize = 200;

/// `RECORDS` valid records for `seed`, each applied as it is made.
fn history(seed: u64) -> (Vec<MetadataRecord>, ClusterImage) {
    let mut source = RecordSource::new(seed);
    let mut image = ClusterImage::default();
    let mut records = Vec::with_capacity(RECORDS);
    for offset in 0..RECORDS {
        let record = source.next_valid(&image);
        image
            .apply(&record, offset as i64)
            .unwrap_or_else(|e| panic!("seed {seed}: valid {record:?} refused: {e}"));
        records.push(record);
    }
    (records, image)
}

#[test]
fn snapshot_at_k_plus_replay_equals_applying_everything() {
    for seed in 0..SEEDS {
        let (records, full) = history(seed);
        let mut image = ClusterImage::default();
        for (k, record) in records.iter().enumerate() {
            if k % 20 == 0 {
                let snapshot = image.encode_snapshot();
                let mut restored = ClusterImage::decode_snapshot(&snapshot)
                    .unwrap_or_else(|e| panic!("seed {seed}, k {k}: {e}"));
                assert_eq!(restored, image, "seed {seed}: snapshot at {k} differs");
                for (offset, rest) in records.iter().enumerate().skip(k) {
                    restored.apply(rest, offset as i64).unwrap();
                }
                assert_eq!(
                    restored, full,
                    "seed {seed}: snapshot at {k} + replay differs"
                );
            }
            image.apply(record, k as i64).unwrap();
        }
        assert_eq!(
            image, full,
            "seed {seed}: the same records gave another image"
        );
        assert_eq!(full.last_applied_offset(), RECORDS as i64 - 1);
    }
}

#[test]
fn invalid_records_are_refused_and_change_nothing() {
    let mut refused = 0;
    for seed in 0..SEEDS {
        let mut source = RecordSource::new(seed);
        let mut image = ClusterImage::default();
        for offset in 0..100 {
            if source.below(3) == 0 {
                let record = source.next_invalid(&image);
                let before = image.clone();
                let result = image.apply(&record, offset);
                assert!(result.is_err(), "seed {seed}: {record:?} was accepted");
                assert_eq!(
                    image, before,
                    "seed {seed}: refused {record:?} changed the image"
                );
                refused += 1;
            } else {
                let record = source.next_valid(&image);
                image.apply(&record, offset).unwrap();
            }
        }
    }
    assert!(refused > 1000, "only {refused} invalid records tried");
}

#[test]
fn offsets_must_increase() {
    let mut image = ClusterImage::default();
    image.apply(&MetadataRecord::NoOp, 5).unwrap();
    let before = image.clone();
    for offset in [5, 4, -1] {
        assert!(matches!(
            image.apply(&MetadataRecord::NoOp, offset),
            Err(ReplicationError::OffsetNotAfter {
                last_applied: 5,
                ..
            })
        ));
    }
    assert_eq!(image, before);
    image.apply(&MetadataRecord::NoOp, 9).unwrap();
    assert_eq!(image.last_applied_offset(), 9);
}

fn id(n: u8) -> TopicId {
    TopicId([n; 16])
}

fn topic(image: &mut ClusterImage, name: &str, n: u8, offset: i64) {
    let record = MetadataRecord::Topic(TopicRecord {
        name: name.into(),
        topic_id: id(n),
    });
    image.apply(&record, offset).unwrap();
}

fn partition(topic: u8, partition_id: i32, replicas: Vec<i32>, leader: i32) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRecord {
        topic_id: id(topic),
        partition_id,
        state: PartitionImage {
            isr: replicas.clone(),
            replicas,
            eligible_leader_replicas: vec![],
            last_known_elr: vec![],
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
        },
    })
}

fn change(leader: Option<i32>, isr: Option<Vec<i32>>) -> MetadataRecord {
    MetadataRecord::PartitionChange(PartitionChangeRecord {
        topic_id: id(1),
        partition_id: 0,
        leader,
        isr,
        replicas: None,
        eligible_leader_replicas: None,
        last_known_elr: None,
    })
}

#[test]
fn leader_changes_bump_the_leader_epoch_and_every_change_the_partition_epoch() {
    let mut image = ClusterImage::default();
    topic(&mut image, "t", 1, 0);
    image.apply(&partition(1, 0, vec![1, 2, 3], 1), 1).unwrap();
    image.apply(&change(None, Some(vec![1, 2])), 2).unwrap();
    let p = image.partition(&id(1), 0).unwrap();
    assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (1, 0, 1));
    assert_eq!(p.isr, vec![1, 2]);
    image.apply(&change(Some(2), Some(vec![2])), 3).unwrap();
    let p = image.partition(&id(1), 0).unwrap();
    assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (2, 1, 2));
    // Shrinking the ISR past the leader without naming a new one is refused.
    let before = image.clone();
    assert!(image.apply(&change(None, Some(vec![3])), 4).is_err());
    assert_eq!(image, before);
    image.apply(&change(Some(-1), Some(vec![])), 4).unwrap();
    let p = image.partition(&id(1), 0).unwrap();
    assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (-1, 2, 3));
}

#[test]
fn topics_are_found_by_name_and_id_and_removal_frees_both() {
    let mut image = ClusterImage::default();
    topic(&mut image, "a", 1, 0);
    topic(&mut image, "b", 2, 1);
    image.apply(&partition(1, 0, vec![0], 0), 2).unwrap();
    let config = MetadataRecord::Config(ConfigRecord {
        resource_type: ConfigResourceType::Topic,
        resource_name: "a".into(),
        name: "retention.ms".into(),
        value: Some("5".into()),
    });
    image.apply(&config, 3).unwrap();
    assert_eq!(image.topic("a").unwrap().id, id(1));
    assert_eq!(image.topic_by_id(&id(2)).unwrap().name, "b");
    assert_eq!(image.topic("a").unwrap().configs["retention.ms"], "5");
    let names: Vec<&str> = image.topics().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    let remove = MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id: id(1) });
    image.apply(&remove, 4).unwrap();
    assert!(image.topic("a").is_none() && image.topic_by_id(&id(1)).is_none());
    // The name and the id are free again, without the old partitions or configs.
    topic(&mut image, "a", 1, 5);
    let a = image.topic("a").unwrap();
    assert!(a.partitions.is_empty() && a.configs.is_empty());
}

#[test]
fn broker_configs_set_and_delete() {
    let mut image = ClusterImage::default();
    let set = |value: Option<&str>, resource: &str| {
        MetadataRecord::Config(ConfigRecord {
            resource_type: ConfigResourceType::Broker,
            resource_name: resource.into(),
            name: "log.retention.ms".into(),
            value: value.map(str::to_string),
        })
    };
    image.apply(&set(Some("1"), ""), 0).unwrap();
    assert_eq!(image.broker_configs("").unwrap()["log.retention.ms"], "1");
    image.apply(&set(None, ""), 1).unwrap();
    assert!(image.broker_configs("").is_none());
    assert_eq!(image, {
        let mut fresh = ClusterImage::default();
        fresh.apply(&MetadataRecord::NoOp, 1).unwrap();
        fresh
    });
    assert!(image.apply(&set(Some("1"), "broker-1"), 2).is_err());
    assert!(image.apply(&set(Some("1"), "-1"), 2).is_err());
    image.apply(&set(Some("1"), "3"), 2).unwrap();
}

#[test]
fn snapshot_every_prefix_and_every_flipped_bit_is_refused() {
    let (_, image) = history(7);
    let bytes = image.encode_snapshot();
    assert!(image.topic_count() > 0, "the history should hold topics");
    for n in 0..bytes.len() {
        assert!(
            ClusterImage::decode_snapshot(&bytes[..n]).is_err(),
            "{n}-byte prefix"
        );
    }
    for bit in (0..bytes.len() * 8).step_by(7) {
        let mut bad = bytes.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(
            ClusterImage::decode_snapshot(&bad).is_err(),
            "bit {bit} flipped"
        );
    }
}

#[test]
fn snapshot_with_a_valid_crc_is_still_checked() {
    // Two topics with the same name, framed and checksummed correctly: refused by the image
    // invariants, not by the CRC.
    let mut image = ClusterImage::default();
    topic(&mut image, "aa", 1, 0);
    topic(&mut image, "ab", 2, 1);
    let mut bytes = image.encode_snapshot();
    let at = bytes.windows(2).rposition(|w| w == b"ab").unwrap();
    bytes[at + 1] = b'a';
    let crc_at = bytes.len() - 4;
    let crc = crc32c::crc32c(&bytes[..crc_at]);
    bytes[crc_at..].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(
        ClusterImage::decode_snapshot(&bytes),
        Err(ReplicationError::TopicNameExists { .. })
    ));
}

#[test]
fn snapshot_header_is_checked() {
    let bytes = ClusterImage::default().encode_snapshot();
    assert_eq!(&bytes[..4], b"MRCI");
    assert_eq!(&bytes[4..6], &[0, 1]);
    // Empty image: offset -1, next producer id 0, no topics, no broker configs.
    assert_eq!(
        u32::from_be_bytes(bytes[6..10].try_into().unwrap()),
        8 + 8 + 4 + 4
    );
    let negative = ClusterImage {
        next_producer_id: -5,
        ..ClusterImage::default()
    };
    assert!(ClusterImage::decode_snapshot(&negative.encode_snapshot()).is_err());
    let mut newer = bytes.clone();
    newer[5] = 2;
    assert!(matches!(
        ClusterImage::decode_snapshot(&newer),
        Err(ReplicationError::BadSnapshot { .. })
    ));
    assert_eq!(
        ClusterImage::decode_snapshot(&bytes).unwrap(),
        ClusterImage::default()
    );
}
