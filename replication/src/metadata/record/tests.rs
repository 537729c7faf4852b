use super::*;

fn id() -> TopicId {
    TopicId(std::array::from_fn(|i| i as u8 + 1))
}

/// Hex with spaces and `|` allowed for reading; written by hand from the layout in the module
/// doc, not captured from the encoder.
fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    assert_eq!(digits.len() % 2, 0, "odd hex digits in {text}");
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

const ID: &str = "0102030405060708090a0b0c0d0e0f10";

/// One record of each type with its bytes.
fn golden() -> Vec<(MetadataRecord, Vec<u8>)> {
    vec![
        (
            MetadataRecord::Topic(TopicRecord {
                name: "t".into(),
                topic_id: id(),
            }),
            hex(&format!("0002 0000 | 00000001 74 | {ID}")),
        ),
        (
            MetadataRecord::Partition(PartitionRecord {
                topic_id: id(),
                partition_id: 1,
                state: PartitionImage {
                    replicas: vec![1, 2],
                    isr: vec![1],
                    eligible_leader_replicas: vec![],
                    last_known_elr: vec![2],
                    leader: 1,
                    leader_epoch: 3,
                    partition_epoch: 4,
                },
            }),
            hex(&format!(
                "0003 0000 | {ID} | 00000001 | 00000002 00000001 00000002 | 00000001 00000001 \
                 | 00000000 | 00000001 00000002 | 00000001 | 00000003 | 00000004"
            )),
        ),
        (
            MetadataRecord::PartitionChange(PartitionChangeRecord {
                topic_id: id(),
                partition_id: 0,
                leader: Some(2),
                isr: Some(vec![2]),
                replicas: None,
                eligible_leader_replicas: Some(vec![]),
                last_known_elr: None,
            }),
            hex(&format!(
                "0005 0000 | {ID} | 00000000 | 00000002 | 00000001 00000002 | ffffffff \
                 | 00000000 | ffffffff"
            )),
        ),
        (
            MetadataRecord::Config(ConfigRecord {
                resource_type: ConfigResourceType::Topic,
                resource_name: "t".into(),
                name: "k".into(),
                value: Some("v".into()),
            }),
            hex("0004 0000 | 02 | 00000001 74 | 00000001 6b | 00000001 76"),
        ),
        (
            MetadataRecord::Config(ConfigRecord {
                resource_type: ConfigResourceType::Broker,
                resource_name: String::new(),
                name: "k".into(),
                value: None,
            }),
            hex("0004 0000 | 04 | 00000000 | 00000001 6b | ffffffff"),
        ),
        (
            // A group config: Kafka's ConfigResource.Type.GROUP is 32 (0x20).
            MetadataRecord::Config(ConfigRecord {
                resource_type: ConfigResourceType::Group,
                resource_name: "g".into(),
                name: "k".into(),
                value: Some("v".into()),
            }),
            hex("0004 0000 | 20 | 00000001 67 | 00000001 6b | 00000001 76"),
        ),
        (
            MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id: id() }),
            hex(&format!("0009 0000 | {ID}")),
        ),
        (
            MetadataRecord::ProducerIds(ProducerIdsRecord {
                broker_id: 1,
                broker_epoch: 5,
                next_producer_id: 2000,
            }),
            hex("000f 0000 | 00000001 | 0000000000000005 | 00000000000007d0"),
        ),
        (MetadataRecord::NoOp, hex("0014 0000")),
        (
            MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                broker_id: 1,
                incarnation_id: id().0,
                broker_epoch: 7,
                endpoints: vec![BrokerEndpoint {
                    name: "P".into(),
                    host: "h".into(),
                    port: 9092,
                    security_protocol: security_protocol::SASL_SSL,
                }],
                rack: Some("r".into()),
                fenced: true,
            }),
            hex(&format!(
                "0000 0000 | 00000001 | {ID} | 0000000000000007 | 00000001 | 00000001 50 \
                 | 00000001 68 | 2384 | 0003 | 00000001 72 | 01"
            )),
        ),
        (
            MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                broker_id: 2,
                incarnation_id: id().0,
                broker_epoch: 0,
                endpoints: vec![],
                rack: None,
                fenced: false,
            }),
            hex(&format!(
                "0000 0000 | 00000002 | {ID} | 0000000000000000 | 00000000 | ffffffff | 00"
            )),
        ),
        (
            MetadataRecord::UnregisterBroker(UnregisterBrokerRecord {
                broker_id: 1,
                broker_epoch: 7,
            }),
            hex("0001 0000 | 00000001 | 0000000000000007"),
        ),
        (
            MetadataRecord::FenceBroker(FenceBrokerRecord { id: 1, epoch: 7 }),
            hex("0007 0000 | 00000001 | 0000000000000007"),
        ),
        (
            MetadataRecord::UnfenceBroker(UnfenceBrokerRecord { id: 1, epoch: 7 }),
            hex("0008 0000 | 00000001 | 0000000000000007"),
        ),
        (
            MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord {
                broker_id: 1,
                broker_epoch: 7,
                fenced: Some(false),
                in_controlled_shutdown: Some(true),
            }),
            hex("0011 0000 | 00000001 | 0000000000000007 | ff | 01"),
        ),
        (
            MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord {
                broker_id: 1,
                broker_epoch: 7,
                fenced: None,
                in_controlled_shutdown: None,
            }),
            hex("0011 0000 | 00000001 | 0000000000000007 | 00 | 00"),
        ),
        (
            MetadataRecord::UserScramCredential(UserScramCredentialRecord {
                name: "al".into(),
                mechanism: 2,
                salt: vec![1, 2],
                stored_key: vec![3],
                server_key: vec![4, 5, 6],
                iterations: 4096,
            }),
            hex("000b 0000 | 00000002 616c | 02 | 0002 0102 | 0001 03 | 0003 040506 | 00001000"),
        ),
        (
            MetadataRecord::RemoveUserScramCredential(RemoveUserScramCredentialRecord {
                name: "al".into(),
                mechanism: 1,
            }),
            hex("000c 0000 | 00000002 616c | 01"),
        ),
        (
            MetadataRecord::ClientQuota(ClientQuotaRecord {
                entity: vec![
                    QuotaEntityPart {
                        entity_type: "client-id".into(),
                        entity_name: None,
                    },
                    QuotaEntityPart {
                        entity_type: "user".into(),
                        entity_name: Some("al".into()),
                    },
                ],
                key: "k".into(),
                value: QuotaValue(1048576.0),
                remove: false,
            }),
            hex(
                "000e 0000 | 00000002 | 00000009 636c69656e742d6964 | ffffffff \
                 | 00000004 75736572 | 00000002 616c | 00000001 6b | 4130000000000000 | 00",
            ),
        ),
        (
            MetadataRecord::AccessControlEntry(AccessControlEntryRecord {
                id: [0xab; 16],
                resource_type: 2,
                resource_name: "t".into(),
                pattern_type: 4,
                principal: "U:a".into(),
                host: "*".into(),
                operation: 3,
                permission_type: 3,
            }),
            hex(
                "0017 0000 | abababababababababababababababab | 02 | 00000001 74 | 04 \
                 | 00000003 553a61 | 00000001 2a | 03 | 03",
            ),
        ),
        (
            MetadataRecord::RemoveAccessControlEntry(RemoveAccessControlEntryRecord {
                id: [0xab; 16],
            }),
            hex("0018 0000 | abababababababababababababababab"),
        ),
    ]
}

#[test]
fn golden_bytes_encode_and_decode() {
    for (record, bytes) in golden() {
        assert_eq!(record.encode(), bytes, "encoding {record:?}");
        assert_eq!(MetadataRecord::decode(&bytes).unwrap(), record);
    }
}

#[test]
fn every_proper_prefix_is_an_error() {
    for (record, bytes) in golden() {
        for n in 0..bytes.len() {
            assert!(
                MetadataRecord::decode(&bytes[..n]).is_err(),
                "{n}-byte prefix of {record:?} decoded"
            );
        }
    }
}

#[test]
fn trailing_bytes_are_an_error() {
    for (_, mut bytes) in golden() {
        bytes.push(0);
        assert!(matches!(
            MetadataRecord::decode(&bytes),
            Err(ReplicationError::Malformed {
                reason: "trailing bytes",
                ..
            })
        ));
    }
}

#[test]
fn generated_records_round_trip() {
    for seed in 0..200 {
        let mut source = crate::metadata::sample::RecordSource::new(seed);
        let mut image = crate::metadata::ClusterImage::default();
        for offset in 0..50 {
            let record = source.next_valid(&image);
            let bytes = record.encode();
            let back = MetadataRecord::decode(&bytes)
                .unwrap_or_else(|e| panic!("seed {seed}: {record:?} did not decode: {e}"));
            assert_eq!(back, record, "seed {seed}");
            image.apply(&record, offset).unwrap();
        }
    }
}

#[test]
fn unknown_type_and_version_are_named() {
    assert!(matches!(
        MetadataRecord::decode(&hex("0006 0000")),
        Err(ReplicationError::UnknownRecordType { record_type: 6 })
    ));
    assert!(matches!(
        MetadataRecord::decode(&hex(&format!("0009 0001 | {ID}"))),
        Err(ReplicationError::UnsupportedRecordVersion {
            record_type: 9,
            version: 1
        })
    ));
    assert!(matches!(
        MetadataRecord::decode(&hex("0004 0000 | 03 | 00000000 | 00000000 | ffffffff")),
        Err(ReplicationError::UnknownConfigResourceType { resource_type: 3 })
    ));
}

#[test]
fn declared_lengths_are_checked_before_allocating() {
    // A replica count of u32::MAX in a 40-byte record.
    let bytes = hex(&format!(
        "0003 0000 | {ID} | 00000000 | ffffffff | 00000001"
    ));
    assert!(matches!(
        MetadataRecord::decode(&bytes),
        Err(ReplicationError::BadLength {
            declared: 0xffff_ffff,
            ..
        })
    ));
    // A name of 2 GiB in a 12-byte record.
    let bytes = hex("0002 0000 | 7fffffff | 74");
    assert!(matches!(
        MetadataRecord::decode(&bytes),
        Err(ReplicationError::Truncated { .. })
    ));
    // A nullable value of length -2.
    let bytes = hex("0004 0000 | 02 | 00000000 | 00000000 | fffffffe");
    assert!(matches!(
        MetadataRecord::decode(&bytes),
        Err(ReplicationError::BadLength { declared: -2, .. })
    ));
}

#[test]
fn names_must_be_utf8() {
    let bytes = hex(&format!("0002 0000 | 00000001 ff | {ID}"));
    assert!(matches!(
        MetadataRecord::decode(&bytes),
        Err(ReplicationError::Malformed { .. })
    ));
}

#[test]
fn topic_id_prints_as_a_uuid() {
    assert_eq!(id().to_string(), "01020304-0506-0708-090a-0b0c0d0e0f10");
}

#[test]
fn broker_record_flags_and_counts_are_checked() {
    // fenced = 2 in a RegisterBrokerRecord.
    let bytes = hex(&format!(
        "0000 0000 | 00000002 | {ID} | 0000000000000000 | 00000000 | ffffffff | 02"
    ));
    assert!(matches!(
        MetadataRecord::decode(&bytes),
        Err(ReplicationError::Malformed { .. })
    ));
    // A change flag of 2.
    let bytes = hex("0011 0000 | 00000001 | 0000000000000007 | 02 | 00");
    assert!(matches!(
        MetadataRecord::decode(&bytes),
        Err(ReplicationError::Malformed { .. })
    ));
    // u32::MAX endpoints in a 45-byte record: refused before allocating.
    let bytes = hex(&format!(
        "0000 0000 | 00000002 | {ID} | 0000000000000000 | ffffffff | ffffffff | 00"
    ));
    assert!(matches!(
        MetadataRecord::decode(&bytes),
        Err(ReplicationError::BadLength {
            declared: 0xffff_ffff,
            ..
        })
    ));
    // A host of 2 GiB.
    let bytes = hex(&format!(
        "0000 0000 | 00000002 | {ID} | 0000000000000000 | 00000001 | 00000001 50 | 7fffffff 68 \
         | 0000 0000 | ffffffff | 00"
    ));
    assert!(matches!(
        MetadataRecord::decode(&bytes),
        Err(ReplicationError::Truncated { .. })
    ));
}

#[test]
fn garbage_never_panics() {
    // Random bytes behind every known type prefix, and random single-byte mutations of every
    // golden record: decoding returns, whatever it returns.
    let mut source = crate::metadata::sample::RecordSource::new(99);
    let types = [0u16, 1, 2, 3, 4, 5, 7, 8, 9, 15, 17, 20];
    for _ in 0..20_000 {
        let mut bytes = types[source.below(types.len() as u64) as usize]
            .to_be_bytes()
            .to_vec();
        bytes.extend_from_slice(&[0, 0]);
        let len = source.below(64) as usize;
        bytes.extend((0..len).map(|_| source.below(256) as u8));
        let _ = MetadataRecord::decode(&bytes);
    }
    for (_, bytes) in golden() {
        for _ in 0..500 {
            let mut bad = bytes.clone();
            let at = source.below(bad.len() as u64) as usize;
            bad[at] = source.below(256) as u8;
            if let Ok(record) = MetadataRecord::decode(&bad) {
                assert_eq!(
                    record.encode(),
                    bad,
                    "a decoded record re-encodes to its bytes"
                );
            }
        }
    }
}
