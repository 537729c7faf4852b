//! The `__share_group_state` codec: golden bytes from the schema, round trips, truncation and
//! garbage never panicking.

use super::record::*;
use rand::{Rng, SeedableRng};

const TOPIC: uuid::Uuid = uuid::Uuid::from_u128(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10);

fn key() -> ShareStateKey {
    ShareStateKey {
        group_id: "gs1".into(),
        topic_id: TOPIC,
        partition: 7,
    }
}

fn snapshot() -> ShareSnapshotValue {
    ShareSnapshotValue {
        snapshot_epoch: 1,
        state_epoch: 2,
        leader_epoch: 3,
        start_offset: 100,
        create_timestamp: 5,
        write_timestamp: 6,
        state_batches: vec![
            StateBatch {
                first_offset: 100,
                last_offset: 109,
                delivery_state: DELIVERY_STATE_AVAILABLE,
                delivery_count: 1,
            },
            StateBatch {
                first_offset: 110,
                last_offset: 110,
                delivery_state: DELIVERY_STATE_ACKNOWLEDGED,
                delivery_count: 3,
            },
        ],
        unknown_tagged_fields: Vec::new(),
    }
}

fn update() -> ShareUpdateValue {
    ShareUpdateValue {
        snapshot_epoch: 1,
        leader_epoch: 3,
        start_offset: -1,
        state_batches: Vec::new(),
        unknown_tagged_fields: Vec::new(),
    }
}

fn be64(v: i64) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

#[test]
fn keys_match_the_schema_byte_for_byte() {
    let mut want = vec![0, 0, 0, 3, b'g', b's', b'1'];
    want.extend_from_slice(TOPIC.as_bytes());
    want.extend_from_slice(&[0, 0, 0, 7]);
    let record = StateRecord::Snapshot(snapshot());
    assert_eq!(record.encode_key(&key()).unwrap(), want);
    assert_eq!(decode_key(&want).unwrap(), (SNAPSHOT_KEY_VERSION, key()));
    want[1] = 1;
    let record = StateRecord::Update(update());
    assert_eq!(record.encode_key(&key()).unwrap(), want);
    assert_eq!(decode_key(&want).unwrap(), (UPDATE_KEY_VERSION, key()));
}

#[test]
fn a_snapshot_value_matches_the_schema_byte_for_byte() {
    let mut want = vec![0, 0]; // value version
    want.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]); // epochs
    want.extend(be64(100)); // start offset
    want.extend(be64(5)); // create timestamp
    want.extend(be64(6)); // write timestamp
    want.push(3); // two batches, compact
    want.extend(be64(100));
    want.extend(be64(109));
    want.extend_from_slice(&[0, 0, 1, 0]); // state, count, no tags
    want.extend(be64(110));
    want.extend(be64(110));
    want.extend_from_slice(&[2, 0, 3, 0]);
    want.push(0); // no tagged fields
    let record = StateRecord::Snapshot(snapshot());
    assert_eq!(record.encode_value(), want);
    assert_eq!(StateRecord::decode_value(0, &want).unwrap(), record);
}

#[test]
fn an_update_value_matches_the_schema_byte_for_byte() {
    let mut want = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 3];
    want.extend(be64(-1)); // start offset unchanged
    want.extend_from_slice(&[1, 0]); // no batches, no tagged fields
    let record = StateRecord::Update(update());
    assert_eq!(record.encode_value(), want);
    assert_eq!(StateRecord::decode_value(1, &want).unwrap(), record);
}

#[test]
fn unknown_tagged_fields_of_a_value_round_trip_and_those_of_a_batch_are_skipped() {
    let mut s = snapshot();
    s.unknown_tagged_fields = vec![(0, vec![0, 0, 0, 9]), (300, vec![])];
    let record = StateRecord::Snapshot(s);
    let bytes = record.encode_value();
    // Two fields: tag 0 with four bytes, tag 300 (varint 0xac 0x02) empty.
    assert_eq!(
        &bytes[bytes.len() - 10..],
        &[2, 0, 4, 0, 0, 0, 9, 0xac, 2, 0]
    );
    assert_eq!(StateRecord::decode_value(0, &bytes).unwrap(), record);
    // An update whose one batch carries a tagged field (tag 5, two bytes).
    let mut bytes = StateRecord::Update(update()).encode_value();
    bytes.truncate(bytes.len() - 2);
    bytes.push(2);
    bytes.extend(be64(1));
    bytes.extend(be64(2));
    bytes.extend_from_slice(&[4, 0, 1, 1, 5, 2, 0xab, 0xcd, 0]);
    let StateRecord::Update(u) = StateRecord::decode_value(1, &bytes).unwrap() else {
        panic!("an update")
    };
    assert_eq!(u.state_batches.len(), 1);
    assert_eq!(u.state_batches[0].delivery_state, DELIVERY_STATE_ARCHIVED);
}

#[test]
fn every_prefix_of_a_valid_record_is_an_error() {
    let mut s = snapshot();
    s.unknown_tagged_fields = vec![(1, vec![1, 2, 3])];
    let values = [
        (0, StateRecord::Snapshot(s).encode_value()),
        (1, StateRecord::Update(update()).encode_value()),
    ];
    for (key_version, bytes) in values {
        for n in 0..bytes.len() {
            assert!(
                StateRecord::decode_value(key_version, &bytes[..n]).is_err(),
                "{n}"
            );
        }
    }
    let key = StateRecord::Update(update()).encode_key(&key()).unwrap();
    for n in 0..key.len() {
        assert!(decode_key(&key[..n]).is_err(), "{n}");
    }
}

#[test]
fn bad_versions_lengths_and_trailing_bytes_are_errors() {
    let mut key = StateRecord::Update(update()).encode_key(&key()).unwrap();
    key[1] = 2;
    let unknown = RecordError::UnknownVersion {
        what: "key",
        version: 2,
    };
    assert_eq!(decode_key(&key), Err(unknown));
    key[1] = 0;
    key[2] = 0xff; // negative group id length
    assert!(matches!(
        decode_key(&key),
        Err(RecordError::BadLength { .. })
    ));
    let value = StateRecord::Update(update()).encode_value();
    assert!(StateRecord::decode_value(2, &value).is_err());
    let mut v1 = value.clone();
    v1[1] = 1;
    assert!(matches!(
        StateRecord::decode_value(1, &v1),
        Err(RecordError::UnknownVersion { what: "value", .. })
    ));
    let mut null_batches = value.clone();
    let at = null_batches.len() - 2;
    null_batches[at] = 0;
    assert!(matches!(
        StateRecord::decode_value(1, &null_batches),
        Err(RecordError::BadLength { declared: -1, .. })
    ));
    let mut huge = value[..at].to_vec();
    huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // u32::MAX batches
    assert!(StateRecord::decode_value(1, &huge).is_err());
    let mut long = value;
    long.push(0);
    assert_eq!(
        StateRecord::decode_value(1, &long),
        Err(RecordError::TrailingBytes { extra: 1 })
    );
    let long_group = ShareStateKey {
        group_id: "x".repeat(40_000),
        ..self::key()
    };
    assert!(StateRecord::Update(update())
        .encode_key(&long_group)
        .is_err());
}

#[test]
fn garbage_and_mutated_records_never_panic() {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(932);
    let valid = StateRecord::Snapshot(snapshot()).encode_value();
    let key = StateRecord::Snapshot(snapshot())
        .encode_key(&key())
        .unwrap();
    for _ in 0..20_000 {
        let mut bytes = if rng.random_bool(0.5) {
            valid.clone()
        } else {
            key.clone()
        };
        for _ in 0..rng.random_range(1..4) {
            let i = rng.random_range(0..bytes.len());
            bytes[i] = rng.random();
        }
        bytes.truncate(rng.random_range(0..=bytes.len()));
        let _ = StateRecord::decode_value(rng.random_range(0..2), &bytes);
        let _ = decode_key(&bytes);
        let noise: Vec<u8> = (0..rng.random_range(0..64)).map(|_| rng.random()).collect();
        let _ = StateRecord::decode_value(0, &noise);
        let _ = decode_key(&noise);
    }
}
