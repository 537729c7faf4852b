use super::*;
use crate::metadata::record::{
    security_protocol, BrokerEndpoint, BrokerRegistrationChangeRecord, FenceBrokerRecord,
    RegisterBrokerRecord, RemoveAccessControlEntryRecord, RemoveTopicRecord,
    RemoveUserScramCredentialRecord, UnfenceBrokerRecord, UnregisterBrokerRecord,
    UserScramCredentialRecord,
};
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

fn group_config(group: &str, name: &str, value: Option<&str>) -> MetadataRecord {
    MetadataRecord::Config(ConfigRecord {
        resource_type: ConfigResourceType::Group,
        resource_name: group.into(),
        name: name.into(),
        value: value.map(str::to_string),
    })
}

#[test]
fn group_configs_set_and_delete_without_a_group() {
    let mut image = ClusterImage::default();
    let lock = "share.record.lock.duration.ms";
    image
        .apply(&group_config("g", lock, Some("20000")), 0)
        .unwrap();
    image
        .apply(
            &group_config("g", "share.auto.offset.reset", Some("earliest")),
            1,
        )
        .unwrap();
    image
        .apply(&group_config("h", lock, Some("40000")), 2)
        .unwrap();
    assert_eq!(image.group_configs("g").unwrap()[lock], "20000");
    assert_eq!(image.group_configs("h").unwrap()[lock], "40000");
    // A later set replaces the value; a delete removes only that key.
    image
        .apply(&group_config("g", lock, Some("25000")), 3)
        .unwrap();
    image.apply(&group_config("g", lock, None), 4).unwrap();
    let g = image.group_configs("g").unwrap();
    assert_eq!(g.len(), 1);
    assert_eq!(g["share.auto.offset.reset"], "earliest");
    let ids: Vec<&str> = image.groups_with_configs().map(|(id, _)| id).collect();
    assert_eq!(ids, ["g", "h"]);
    // Deleting the last key removes the entry: the image equals one that never had it.
    image
        .apply(&group_config("g", "share.auto.offset.reset", None), 5)
        .unwrap();
    image.apply(&group_config("h", lock, None), 6).unwrap();
    assert!(image.group_configs("g").is_none());
    assert_eq!(image.groups_with_configs().count(), 0);
    let mut fresh = ClusterImage::default();
    fresh.apply(&MetadataRecord::NoOp, 6).unwrap();
    assert_eq!(image, fresh);
    // Group configs are not topic or broker configs.
    image.apply(&group_config("3", lock, Some("1")), 7).unwrap();
    assert!(image.broker_configs("3").is_none());
    assert!(image.topic("3").is_none());
}

#[test]
fn group_config_with_an_empty_group_id_is_refused() {
    let mut image = ClusterImage::default();
    let before = image.clone();
    assert!(matches!(
        image.apply(
            &group_config("", "share.isolation.level", Some("read_committed")),
            0
        ),
        Err(ReplicationError::InvalidRecord { .. })
    ));
    assert_eq!(image, before);
}

#[test]
fn scram_credentials_apply_remove_and_round_trip_in_format_4() {
    let mut image = small_image();
    let cred = |name: &str, mechanism: i8, iterations: i32| {
        MetadataRecord::UserScramCredential(UserScramCredentialRecord {
            name: name.into(),
            mechanism,
            salt: vec![7; 16],
            stored_key: vec![8; 32],
            server_key: vec![9; 32],
            iterations,
        })
    };
    image.apply(&cred("bob", 1, 4096), 5).unwrap();
    image.apply(&cred("alice", 2, 8192), 6).unwrap();
    image.apply(&cred("alice", 1, 4096), 7).unwrap();
    assert_eq!(image.scram_credential("alice", 2).unwrap().iterations, 8192);
    let bytes = image.encode_snapshot();
    assert_eq!(&bytes[4..6], &[0, 4]);
    let back = ClusterImage::decode_snapshot(&bytes).unwrap();
    assert_eq!(back, image);
    for n in 0..bytes.len() {
        assert!(
            ClusterImage::decode_snapshot(&bytes[..n]).is_err(),
            "{n}-byte prefix"
        );
    }
    let remove = |name: &str, mechanism: i8| {
        MetadataRecord::RemoveUserScramCredential(RemoveUserScramCredentialRecord {
            name: name.into(),
            mechanism,
        })
    };
    image.apply(&remove("bob", 1), 8).unwrap();
    assert!(image.scram_credential("bob", 1).is_none());
    assert!(
        image.apply(&remove("bob", 1), 9).is_err(),
        "nothing to remove"
    );
    assert!(image.apply(&cred("", 1, 4096), 10).is_err(), "empty user");
    assert!(
        image.apply(&cred("x", 3, 4096), 11).is_err(),
        "unknown mechanism"
    );
    let users: Vec<_> = image.scram_credentials().map(|(u, m, _)| (u, m)).collect();
    assert_eq!(users, vec![("alice", 1), ("alice", 2)]);
}

fn acl(id: u8, name: &str) -> AccessControlEntryRecord {
    AccessControlEntryRecord {
        id: [id; 16],
        resource_type: 2,
        resource_name: name.into(),
        pattern_type: 3,
        principal: "User:alice".into(),
        host: "*".into(),
        operation: 3,
        permission_type: 3,
    }
}

fn quota(parts: &[(&str, Option<&str>)], key: &str, value: f64, remove: bool) -> MetadataRecord {
    MetadataRecord::ClientQuota(ClientQuotaRecord {
        entity: parts
            .iter()
            .map(|(t, n)| QuotaEntityPart {
                entity_type: t.to_string(),
                entity_name: n.map(str::to_string),
            })
            .collect(),
        key: key.into(),
        value: QuotaValue(value),
        remove,
    })
}

#[test]
fn acls_apply_remove_and_share_their_map_until_changed() {
    let mut image = small_image();
    image
        .apply(&MetadataRecord::AccessControlEntry(acl(1, "t")), 5)
        .unwrap();
    let copy = image.clone();
    assert!(
        Arc::ptr_eq(copy.acls(), image.acls()),
        "a copy shares the ACLs"
    );
    image
        .apply(&MetadataRecord::AccessControlEntry(acl(2, "u")), 6)
        .unwrap();
    assert!(
        !Arc::ptr_eq(copy.acls(), image.acls()),
        "a change replaces them"
    );
    assert_eq!(copy.acls().len(), 1, "the copy is untouched");
    let before = image.clone();
    let again = MetadataRecord::AccessControlEntry(acl(2, "other"));
    assert!(image.apply(&again, 7).is_err(), "an id used twice");
    let mut bad = acl(3, "t");
    bad.pattern_type = 2; // MATCH is for filters only
    assert!(image
        .apply(&MetadataRecord::AccessControlEntry(bad), 7)
        .is_err());
    let mut bad = acl(3, "t");
    bad.principal = "alice".into();
    assert!(image
        .apply(&MetadataRecord::AccessControlEntry(bad), 7)
        .is_err());
    assert_eq!(image, before, "a refused record changes nothing");
    let remove = |id: u8| {
        MetadataRecord::RemoveAccessControlEntry(RemoveAccessControlEntryRecord { id: [id; 16] })
    };
    image.apply(&remove(1), 7).unwrap();
    assert!(image.apply(&remove(1), 8).is_err(), "nothing to remove");
    assert_eq!(image.acls().keys().collect::<Vec<_>>(), vec![&[2u8; 16]]);
}

#[test]
fn client_quotas_set_replace_and_remove() {
    let mut image = small_image();
    let alice = [("user", Some("alice"))];
    image
        .apply(&quota(&alice, "producer_byte_rate", 1e6, false), 5)
        .unwrap();
    image
        .apply(&quota(&alice, "producer_byte_rate", 2e6, false), 6)
        .unwrap();
    image
        .apply(&quota(&alice, "consumer_byte_rate", 3e6, false), 7)
        .unwrap();
    let both = [("client-id", None), ("user", Some("alice"))];
    image
        .apply(&quota(&both, "request_percentage", 50.0, false), 8)
        .unwrap();
    let keys = &image.client_quotas()[&vec![QuotaEntityPart {
        entity_type: "user".into(),
        entity_name: Some("alice".into()),
    }]];
    assert_eq!(keys["producer_byte_rate"], QuotaValue(2e6));
    assert_eq!(keys.len(), 2);
    image
        .apply(&quota(&alice, "producer_byte_rate", 0.0, true), 9)
        .unwrap();
    image
        .apply(&quota(&alice, "consumer_byte_rate", 0.0, true), 10)
        .unwrap();
    assert_eq!(
        image.client_quotas().len(),
        1,
        "the last key removed the entity"
    );
    let before = image.clone();
    let unordered = [("user", Some("a")), ("client-id", Some("c"))];
    assert!(image
        .apply(&quota(&unordered, "k", 1.0, false), 11)
        .is_err());
    assert!(image
        .apply(&quota(&[("group", Some("g"))], "k", 1.0, false), 11)
        .is_err());
    assert!(image
        .apply(&quota(&alice, "k", f64::NAN, false), 11)
        .is_err());
    assert!(image.apply(&quota(&[], "k", 1.0, false), 11).is_err());
    assert_eq!(image, before);
}

#[test]
fn acls_and_quotas_round_trip_in_format_5() {
    let mut image = small_image();
    image
        .apply(&MetadataRecord::AccessControlEntry(acl(9, "t")), 5)
        .unwrap();
    image
        .apply(&MetadataRecord::AccessControlEntry(acl(3, "pre")), 6)
        .unwrap();
    image
        .apply(
            &quota(&[("user", None)], "producer_byte_rate", 1024.5, false),
            7,
        )
        .unwrap();
    image
        .apply(
            &quota(
                &[("ip", Some("10.0.0.1"))],
                "connection_creation_rate",
                5.0,
                false,
            ),
            8,
        )
        .unwrap();
    let bytes = image.encode_snapshot();
    assert_eq!(&bytes[4..6], &[0, 5]);
    let back = ClusterImage::decode_snapshot(&bytes).unwrap();
    assert_eq!(back, image);
    for n in 0..bytes.len() {
        assert!(
            ClusterImage::decode_snapshot(&bytes[..n]).is_err(),
            "{n}-byte prefix"
        );
    }
    // Without ACLs and quotas the older format is written.
    let plain = small_image().encode_snapshot();
    assert!(plain[5] < 5);
}

#[test]
fn snapshot_round_trips_group_configs_in_format_3() {
    let mut image = small_image();
    image
        .apply(
            &group_config(
                "share-b",
                "share.auto.offset.reset",
                Some("by_duration:PT1H"),
            ),
            5,
        )
        .unwrap();
    image
        .apply(
            &group_config("share-a", "share.record.lock.duration.ms", Some("20000")),
            6,
        )
        .unwrap();
    image
        .apply(
            &group_config("share-a", "consumer.session.timeout.ms", Some("50000")),
            7,
        )
        .unwrap();
    let bytes = image.encode_snapshot();
    assert_eq!(&bytes[4..6], &[0, 3]);
    let back = ClusterImage::decode_snapshot(&bytes).unwrap();
    assert_eq!(back, image);
    assert_eq!(
        back.group_configs("share-a").unwrap()["consumer.session.timeout.ms"],
        "50000"
    );
    assert_eq!(
        back.group_configs("share-b").unwrap()["share.auto.offset.reset"],
        "by_duration:PT1H"
    );
    for n in 0..bytes.len() {
        assert!(
            ClusterImage::decode_snapshot(&bytes[..n]).is_err(),
            "{n}-byte prefix"
        );
    }
    // Deleting the last group config goes back to format 2, which older nodes read.
    for (offset, (group, key)) in [
        ("share-b", "share.auto.offset.reset"),
        ("share-a", "share.record.lock.duration.ms"),
        ("share-a", "consumer.session.timeout.ms"),
    ]
    .into_iter()
    .enumerate()
    {
        image
            .apply(&group_config(group, key, None), 8 + offset as i64)
            .unwrap();
    }
    let v2 = image.encode_snapshot();
    assert_eq!(&v2[4..6], &[0, 2]);
    assert_eq!(ClusterImage::decode_snapshot(&v2).unwrap(), image);
}

#[test]
fn snapshot_with_a_valid_crc_still_checks_group_configs() {
    // Two groups whose ids are made equal, with the CRC recomputed: refused as repeated.
    let mut image = ClusterImage::default();
    image.apply(&group_config("ga", "k", Some("v")), 0).unwrap();
    image.apply(&group_config("gb", "k", Some("v")), 1).unwrap();
    let mut bytes = image.encode_snapshot();
    let at = bytes.windows(2).rposition(|w| w == b"gb").unwrap();
    bytes[at + 1] = b'a';
    let crc_at = bytes.len() - 4;
    let crc = crc32c::crc32c(&bytes[..crc_at]);
    bytes[crc_at..].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(
        ClusterImage::decode_snapshot(&bytes),
        Err(ReplicationError::BadSnapshot { .. })
    ));
}

#[test]
fn generated_histories_exercise_group_configs() {
    let with_groups = (0..SEEDS)
        .filter(|&seed| history(seed).1.groups_with_configs().count() > 0)
        .count();
    assert!(with_groups > 0, "no generated history set a group config");
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
    assert_eq!(&bytes[4..6], &[0, 2]);
    // Empty image: offset -1, next producer id 0, no topics, no broker configs, no brokers.
    assert_eq!(
        u32::from_be_bytes(bytes[6..10].try_into().unwrap()),
        8 + 8 + 4 + 4 + 4
    );
    let negative = ClusterImage {
        next_producer_id: -5,
        ..ClusterImage::default()
    };
    assert!(ClusterImage::decode_snapshot(&negative.encode_snapshot()).is_err());
    let mut newer = bytes.clone();
    newer[5] = 4;
    assert!(matches!(
        ClusterImage::decode_snapshot(&newer),
        Err(ReplicationError::BadSnapshot { .. })
    ));
    assert_eq!(
        ClusterImage::decode_snapshot(&bytes).unwrap(),
        ClusterImage::default()
    );
}

fn register(broker_id: i32, epoch: i64, incarnation: u8, rack: Option<&str>) -> MetadataRecord {
    MetadataRecord::RegisterBroker(RegisterBrokerRecord {
        broker_id,
        incarnation_id: [incarnation; 16],
        broker_epoch: epoch,
        endpoints: vec![
            BrokerEndpoint {
                name: "PLAINTEXT".into(),
                host: format!("b{broker_id}"),
                port: 9092,
                security_protocol: security_protocol::PLAINTEXT,
            },
            BrokerEndpoint {
                name: "CONTROLLER".into(),
                host: format!("b{broker_id}"),
                port: 9093,
                security_protocol: security_protocol::SSL,
            },
        ],
        rack: rack.map(str::to_string),
        fenced: true,
    })
}

fn fence(id: i32, epoch: i64) -> MetadataRecord {
    MetadataRecord::FenceBroker(FenceBrokerRecord { id, epoch })
}

fn unfence(id: i32, epoch: i64) -> MetadataRecord {
    MetadataRecord::UnfenceBroker(UnfenceBrokerRecord { id, epoch })
}

fn unregister(broker_id: i32, broker_epoch: i64) -> MetadataRecord {
    MetadataRecord::UnregisterBroker(UnregisterBrokerRecord {
        broker_id,
        broker_epoch,
    })
}

fn registration_change(
    epoch: i64,
    fenced: Option<bool>,
    in_controlled_shutdown: Option<bool>,
) -> MetadataRecord {
    MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord {
        broker_id: 1,
        broker_epoch: epoch,
        fenced,
        in_controlled_shutdown,
    })
}

/// Applies `record` at `offset`, expecting a refusal that leaves the image as it was.
fn refused(image: &mut ClusterImage, record: &MetadataRecord, offset: i64) -> ReplicationError {
    let before = image.clone();
    let error = image
        .apply(record, offset)
        .expect_err(&format!("{record:?} was accepted"));
    assert_eq!(*image, before, "refused {record:?} changed the image");
    error
}

#[test]
fn a_registration_starts_fenced_and_is_found_by_id_listener_and_rack() {
    let mut image = ClusterImage::default();
    image.apply(&register(1, 0, 0xa, Some("r1")), 0).unwrap();
    image.apply(&register(2, 1, 0xb, None), 1).unwrap();
    let b = image.broker(1).unwrap();
    assert_eq!(
        (b.broker_epoch, b.fenced, b.in_controlled_shutdown),
        (0, true, false)
    );
    assert_eq!(image.live_brokers().count(), 0);
    assert!(!image.is_active_broker(1));
    assert_eq!(image.broker_endpoint(1, "CONTROLLER").unwrap().port, 9093);
    assert_eq!(image.broker_endpoint(2, "PLAINTEXT").unwrap().host, "b2");
    assert!(image.broker_endpoint(1, "SASL").is_none());
    assert!(image.broker_endpoint(3, "PLAINTEXT").is_none());
    assert_eq!(image.broker_rack(1), Some("r1"));
    assert_eq!(image.broker_rack(2), None);
    image.apply(&unfence(2, 1), 2).unwrap();
    let live: Vec<i32> = image.live_brokers().map(|b| b.broker_id).collect();
    assert_eq!(live, [2]);
    assert!(image.is_active_broker(2));
    let all: Vec<i32> = image.brokers().map(|b| b.broker_id).collect();
    assert_eq!(all, [1, 2]);
}

#[test]
fn fence_unfence_and_unregister_with_a_stale_epoch_are_refused() {
    let mut image = ClusterImage::default();
    image.apply(&register(1, 0, 0xa, None), 0).unwrap();
    image.apply(&unfence(1, 0), 1).unwrap();
    // The broker restarts: a new registration at offset 2 starts epoch 2.
    image.apply(&register(1, 2, 0xb, None), 2).unwrap();
    for stale in [fence(1, 0), unfence(1, 0), unregister(1, 0)] {
        let error = refused(&mut image, &stale, 3);
        assert!(
            matches!(
                error,
                ReplicationError::StaleBrokerEpoch {
                    broker_id: 1,
                    epoch: 0,
                    current: 2
                }
            ),
            "{stale:?}: {error}"
        );
    }
    // A future epoch is no better than a past one.
    refused(&mut image, &fence(1, 3), 3);
    for unknown in [fence(7, 0), unfence(7, 0), unregister(7, 0)] {
        let error = refused(&mut image, &unknown, 3);
        assert!(matches!(
            error,
            ReplicationError::UnknownBroker { broker_id: 7 }
        ));
    }
    image.apply(&unfence(1, 2), 3).unwrap();
    assert!(!image.broker(1).unwrap().fenced);
    image.apply(&unfence(1, 2), 4).unwrap(); // idempotent, as in Kafka
    image.apply(&fence(1, 2), 5).unwrap();
    assert!(image.broker(1).unwrap().fenced);
    image.apply(&fence(1, 2), 6).unwrap();
    image.apply(&unregister(1, 2), 7).unwrap();
    assert!(image.broker(1).is_none());
    refused(&mut image, &unfence(1, 2), 8);
}

#[test]
fn re_registration_replaces_the_old_one_and_epochs_only_grow() {
    let mut image = ClusterImage::default();
    image.apply(&register(1, 5, 0xa, Some("r1")), 5).unwrap();
    image.apply(&unfence(1, 5), 6).unwrap();
    image
        .apply(&registration_change(5, None, Some(true)), 7)
        .unwrap();
    assert!(image.broker(1).unwrap().in_controlled_shutdown);
    // Not above the current epoch: refused, whatever the incarnation.
    for epoch in [5, 4] {
        let error = refused(&mut image, &register(1, epoch, 0xb, None), 8);
        assert!(matches!(error, ReplicationError::StaleBrokerEpoch { .. }));
    }
    image.apply(&register(1, 8, 0xb, Some("r2")), 8).unwrap();
    let b = image.broker(1).unwrap();
    assert_eq!(b.incarnation_id, [0xb; 16]);
    assert_eq!(
        (b.broker_epoch, b.fenced, b.in_controlled_shutdown),
        (8, true, false)
    );
    assert_eq!(image.broker_rack(1), Some("r2"));
    // The same incarnation may register again (a retried request), with a new epoch.
    image.apply(&register(1, 9, 0xb, Some("r2")), 9).unwrap();
    assert_eq!(image.broker(1).unwrap().broker_epoch, 9);
}

#[test]
fn registration_changes_need_the_current_epoch_and_never_clear_controlled_shutdown() {
    let mut image = ClusterImage::default();
    image.apply(&register(1, 0, 0xa, None), 0).unwrap();
    image
        .apply(&registration_change(0, Some(false), None), 1)
        .unwrap();
    assert!(image.is_active_broker(1));
    image
        .apply(&registration_change(0, None, Some(true)), 2)
        .unwrap();
    let b = image.broker(1).unwrap();
    assert!(!b.fenced && b.in_controlled_shutdown && !b.is_active());
    assert_eq!(image.live_brokers().count(), 1);
    refused(&mut image, &registration_change(0, None, Some(false)), 3);
    refused(&mut image, &registration_change(1, Some(true), None), 3);
    image
        .apply(&registration_change(0, Some(true), None), 3)
        .unwrap();
    assert!(image.broker(1).unwrap().fenced);
    image.apply(&registration_change(0, None, None), 4).unwrap();
}

#[test]
fn malformed_registrations_are_refused() {
    let mut image = ClusterImage::default();
    let with = |edit: &dyn Fn(&mut RegisterBrokerRecord)| {
        let MetadataRecord::RegisterBroker(mut r) = register(1, 0, 0xa, None) else {
            unreachable!()
        };
        edit(&mut r);
        MetadataRecord::RegisterBroker(r)
    };
    let bad = [
        with(&|r| r.broker_id = -1),
        with(&|r| r.broker_epoch = -1),
        with(&|r| r.rack = Some(String::new())),
        with(&|r| r.endpoints[1].name = "PLAINTEXT".into()),
        with(&|r| r.endpoints[0].name = String::new()),
        with(&|r| r.endpoints[0].security_protocol = 4),
    ];
    for record in &bad {
        let error = refused(&mut image, record, 0);
        assert!(
            matches!(error, ReplicationError::InvalidRecord { .. }),
            "{error}"
        );
    }
    image.apply(&with(&|r| r.endpoints.clear()), 0).unwrap();
}

/// A small image with every kind of state, as format 1 could hold it.
fn small_image() -> ClusterImage {
    let mut image = ClusterImage::default();
    topic(&mut image, "t", 1, 0);
    image.apply(&partition(1, 0, vec![1, 2], 1), 1).unwrap();
    let set = |resource_type, resource_name: &str, name: &str, value: &str| {
        MetadataRecord::Config(ConfigRecord {
            resource_type,
            resource_name: resource_name.into(),
            name: name.into(),
            value: Some(value.into()),
        })
    };
    let topic_config = set(ConfigResourceType::Topic, "t", "k", "v");
    image.apply(&topic_config, 2).unwrap();
    image
        .apply(&set(ConfigResourceType::Broker, "", "b", "c"), 3)
        .unwrap();
    let ids = MetadataRecord::ProducerIds(ProducerIdsRecord {
        broker_id: 1,
        broker_epoch: 0,
        next_producer_id: 10,
    });
    image.apply(&ids, 4).unwrap();
    image
}

#[test]
fn a_format_1_snapshot_still_decodes() {
    // Written by the format-1 encoder (before brokers) for `small_image`, kept as bytes.
    let v1 = hex(
        "4d524349 0001 0000007d | 0000000000000004 | 000000000000000a | 00000001 \
         | 01010101010101010101010101010101 | 00000001 74 | 00000001 \
         | 00000002 00000001 00000002 | 00000002 00000001 00000002 | 00000000 | 00000000 \
         | 00000001 | 00000000 | 00000000 | 00000001 00000001 6b 00000001 76 \
         | 00000001 | 00000000 | 00000001 00000001 62 00000001 63 | 83b2e6ab",
    );
    let image = ClusterImage::decode_snapshot(&v1).unwrap();
    assert_eq!(image, small_image());
    assert_eq!(image.brokers().count(), 0);
    // Written again, it is format 2.
    let v2 = image.encode_snapshot();
    assert_eq!(&v2[4..6], &[0, 2]);
    assert_eq!(ClusterImage::decode_snapshot(&v2).unwrap(), image);
}

#[test]
fn snapshot_round_trips_brokers() {
    let mut image = small_image();
    image.apply(&register(1, 5, 0xa, Some("r1")), 5).unwrap();
    image.apply(&register(2, 6, 0xb, None), 6).unwrap();
    image.apply(&register(3, 7, 0xc, Some("r2")), 7).unwrap();
    image.apply(&unfence(1, 5), 8).unwrap();
    image
        .apply(&registration_change(5, None, Some(true)), 9)
        .unwrap();
    image.apply(&unfence(3, 7), 10).unwrap();
    let bytes = image.encode_snapshot();
    let back = ClusterImage::decode_snapshot(&bytes).unwrap();
    assert_eq!(back, image);
    assert!(back.broker(1).unwrap().in_controlled_shutdown);
    assert!(back.broker(2).unwrap().fenced);
    assert_eq!(back.broker_endpoint(3, "CONTROLLER").unwrap().port, 9093);
    for n in 0..bytes.len() {
        assert!(
            ClusterImage::decode_snapshot(&bytes[..n]).is_err(),
            "{n}-byte prefix"
        );
    }
}

#[test]
fn snapshot_with_a_valid_crc_still_checks_brokers() {
    // A rack renamed to "" with the CRC recomputed: refused by the broker invariants.
    let mut image = ClusterImage::default();
    image.apply(&register(1, 0, 0xa, Some("x")), 0).unwrap();
    let mut bytes = image.encode_snapshot();
    // The rack is `00000001 78` just before the two flags and the CRC.
    let at = bytes.len() - 4 - 2 - 5;
    assert_eq!(&bytes[at..at + 5], &[0, 0, 0, 1, b'x']);
    bytes.splice(at..at + 5, [0, 0, 0, 0]);
    let body_len = (bytes.len() - 10 - 4) as u32;
    bytes[6..10].copy_from_slice(&body_len.to_be_bytes());
    let crc_at = bytes.len() - 4;
    let crc = crc32c::crc32c(&bytes[..crc_at]);
    bytes[crc_at..].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(
        ClusterImage::decode_snapshot(&bytes),
        Err(ReplicationError::InvalidRecord { .. })
    ));
}

/// Hex with spaces and `|` allowed for reading.
fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

#[test]
fn generated_histories_exercise_broker_records() {
    let (mut with_brokers, mut live, mut re_registered) = (0, 0, 0);
    for seed in 0..50 {
        let (records, image) = history(seed);
        with_brokers += usize::from(image.brokers().count() > 0);
        live += image.live_brokers().count();
        let registrations = records
            .iter()
            .filter(|r| matches!(r, MetadataRecord::RegisterBroker(_)))
            .count();
        re_registered += registrations.saturating_sub(image.brokers().count());
    }
    assert!(
        with_brokers > 40,
        "{with_brokers} of 50 histories register brokers"
    );
    assert!(
        live > 20 && re_registered > 20,
        "live {live}, re-registered {re_registered}"
    );
}
