//! The share coordinator's pure parts: placement against Kafka 4.4, the merge against an
//! offset-by-offset model, and the state machine (records planned, replayed, fenced, cycled
//! through snapshots, deleted). The hosted path (topic creation, mesh, crash and reload) is in
//! `crate::sim_tests::share_state`.

use super::machine::{merge, States};
use super::*;
use crate::share::record::{
    decode_key, DELIVERY_STATE_ACKNOWLEDGED, DELIVERY_STATE_ARCHIVED, DELIVERY_STATE_AVAILABLE,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

fn key(group: &str, topic: u128, partition: i32) -> ShareStateKey {
    ShareStateKey {
        group_id: group.to_string(),
        topic_id: uuid::Uuid::from_u128(topic),
        partition,
    }
}

fn batch(first: i64, last: i64, state: i8, count: i16) -> StateBatch {
    StateBatch {
        first_offset: first,
        last_offset: last,
        delivery_state: state,
        delivery_count: count,
    }
}

fn write_req(
    state_epoch: i32,
    leader_epoch: i32,
    start: i64,
    b: &[StateBatch],
) -> StateWriteRequest {
    StateWriteRequest {
        state_epoch,
        leader_epoch,
        start_offset: start,
        batches: b.to_vec(),
    }
}

/// Values printed by Kafka 4.4's own `SharePartitionKey.asCoordinatorKey()` and
/// `Utils.abs(key.hashCode()) % n` (kafka-server-common and kafka-clients 4.4.0 jars).
#[test]
fn placement_matches_kafka() {
    let cases = [
        (
            key("group-1", 0, 0),
            "group-1:AAAAAAAAAAAAAAAAAAAAAA:0",
            21,
            1,
        ),
        (
            key("share-orders", 0x0123_4567_89ab_cdef_0011_2233_4455_6677, 3),
            "share-orders:ASNFZ4mrze8AESIzRFVmdw:3",
            42,
            1,
        ),
        (
            key("g", u128::MAX - 1, i32::MAX),
            "g:_____________________g:2147483647",
            1,
            6,
        ),
        (
            key(
                "grüppe:with:colons",
                0x5f3c_1a2b_9d8e_4f70_a1b2_c3d4_e5f6_0718,
                17,
            ),
            "grüppe:with:colons:XzwaK52OT3ChssPU5fYHGA:17",
            4,
            3,
        ),
    ];
    for (k, text, of50, of7) in cases {
        assert_eq!(coordinator_key(&k), text);
        assert_eq!(state_partition(&k, 50), of50, "{text}");
        assert_eq!(state_partition(&k, 7), of7, "{text}");
        assert_eq!(parse_coordinator_key(text), Some(k));
    }
}

#[test]
fn coordinator_keys_that_are_not_share_partitions_are_refused() {
    for bad in [
        "",
        "group-1",
        "group-1:AAAAAAAAAAAAAAAAAAAAAA",
        " :AAAAAAAAAAAAAAAAAAAAAA:0",
        ":AAAAAAAAAAAAAAAAAAAAAA:0",
        "g:AAAAAAAAAAAAAAAAAAAAA:0",
        "g:AAAAAAAAAAAAAAAAAAAAAAAA:0",
        "g:AAAAAAAAAAAAAAAAAAAA+A:0",
        "g:AAAAAAAAAAAAAAAAAAAAAA:x",
        "g:AAAAAAAAAAAAAAAAAAAAAA:2147483648",
    ] {
        assert_eq!(parse_coordinator_key(bad), None, "{bad:?}");
    }
}

#[test]
fn merge_overrides_cuts_prunes_and_joins() {
    let (a, k, x) = (
        DELIVERY_STATE_AVAILABLE,
        DELIVERY_STATE_ACKNOWLEDGED,
        DELIVERY_STATE_ARCHIVED,
    );
    let old = [batch(10, 19, a, 1), batch(20, 29, a, 2)];
    // A new batch inside one run splits it; one across two cuts both.
    assert_eq!(
        merge(&old, &[batch(12, 13, k, 1)], -1),
        vec![
            batch(10, 11, a, 1),
            batch(12, 13, k, 1),
            batch(14, 19, a, 1),
            batch(20, 29, a, 2),
        ]
    );
    assert_eq!(
        merge(&old, &[batch(15, 24, x, 3)], -1),
        vec![
            batch(10, 14, a, 1),
            batch(15, 24, x, 3),
            batch(25, 29, a, 2)
        ]
    );
    // The later of two overlapping new batches wins.
    assert_eq!(
        merge(&[], &[batch(0, 9, a, 1), batch(5, 14, k, 1)], -1),
        vec![batch(0, 4, a, 1), batch(5, 14, k, 1)]
    );
    // Below the start offset everything goes; a run across it is cut there.
    assert_eq!(
        merge(&old, &[], 15),
        vec![batch(15, 19, a, 1), batch(20, 29, a, 2)]
    );
    assert_eq!(merge(&old, &[batch(30, 31, a, 1)], 40), vec![]);
    // Equal neighbours join; not-ranges are ignored.
    assert_eq!(
        merge(
            &old,
            &[batch(20, 29, a, 1), batch(9, 3, k, 1), batch(-1, 2, k, 1)],
            -1
        ),
        vec![batch(10, 29, a, 1)]
    );
}

/// One state per offset: what `merge` must agree with.
fn model(old: &[StateBatch], new: &[StateBatch], start: i64) -> BTreeMap<i64, (i8, i16)> {
    let mut m = BTreeMap::new();
    for b in old.iter().chain(new) {
        for o in b.first_offset..=b.last_offset {
            m.insert(o, (b.delivery_state, b.delivery_count));
        }
    }
    m.retain(|o, _| *o >= start);
    m
}

fn expand(runs: &[StateBatch]) -> BTreeMap<i64, (i8, i16)> {
    let mut m = BTreeMap::new();
    for b in runs {
        for o in b.first_offset..=b.last_offset {
            assert!(m.insert(o, (b.delivery_state, b.delivery_count)).is_none());
        }
    }
    m
}

/// Up to `n_max - 1` random batches over offsets 0..230.
fn random_batches(rng: &mut SmallRng, n_max: usize) -> Vec<StateBatch> {
    let n = rng.random_range(0..n_max);
    let states = [
        DELIVERY_STATE_AVAILABLE,
        DELIVERY_STATE_ACKNOWLEDGED,
        DELIVERY_STATE_ARCHIVED,
    ];
    (0..n)
        .map(|_| {
            let first = rng.random_range(0..200);
            let len = rng.random_range(0..30);
            let state = states[rng.random_range(0..states.len())];
            batch(first, first + len, state, rng.random_range(0..3))
        })
        .collect()
}

#[test]
fn merge_agrees_with_an_offset_by_offset_model() {
    let mut rng = SmallRng::seed_from_u64(932);
    for round in 0..2_000 {
        let old = merge(&[], &random_batches(&mut rng, 12), -1);
        let new = random_batches(&mut rng, 12);
        let start = rng.random_range(-1..120);
        let out = merge(&old, &new, start);
        assert_eq!(expand(&out), model(&old, &new, start), "round {round}");
        for w in out.windows(2) {
            assert!(
                w[0].last_offset < w[1].first_offset,
                "round {round}: {out:?}"
            );
            let joinable = w[0].last_offset + 1 == w[1].first_offset
                && (w[0].delivery_state, w[0].delivery_count)
                    == (w[1].delivery_state, w[1].delivery_count);
            assert!(!joinable, "round {round}: not joined: {out:?}");
        }
    }
}

/// Plans a write, checks its record survives the codec, applies it as the host would.
fn write_through(
    states: &mut States,
    log: &mut Vec<(Vec<u8>, Option<Vec<u8>>)>,
    k: &ShareStateKey,
    req: &StateWriteRequest,
    per_snapshot: u32,
) -> Result<StateRecord, i16> {
    let record = states.plan_write(k, req, per_snapshot, 1_000)?;
    log.push((
        record.encode_key(k).expect("a short group id"),
        Some(record.encode_value()),
    ));
    states.apply(7, k, &record);
    Ok(record)
}

/// A fresh machine fed `log` as a load would feed it.
fn replay(log: &[(Vec<u8>, Option<Vec<u8>>)]) -> States {
    let mut states = States::default();
    for (k, v) in log {
        let (version, key) = decode_key(k).expect("a key written here");
        match v {
            None => {
                states.remove(&key);
            }
            Some(v) => {
                let record = StateRecord::decode_value(version, v).expect("a value written here");
                states.apply(7, &key, &record);
            }
        }
    }
    states
}

#[test]
fn replaying_snapshots_and_updates_rebuilds_the_merged_state() {
    let mut rng = SmallRng::seed_from_u64(84);
    let keys = [key("g1", 1, 0), key("g1", 1, 1), key("g2", 2, 0)];
    let mut states = States::default();
    let mut log = Vec::new();
    let mut start = [-1i64; 3];
    for _ in 0..400 {
        let i = rng.random_range(0..keys.len());
        if rng.random_range(0..40) == 0 {
            log.push((encode_key(SNAPSHOT_KEY_VERSION, &keys[i]).unwrap(), None));
            states.remove(&keys[i]);
            start[i] = -1;
            continue;
        }
        if rng.random_bool(0.3) {
            start[i] += rng.random_range(0..20);
        }
        let batches = random_batches(&mut rng, 4);
        let req = write_req(0, 1, start[i], &batches);
        write_through(&mut states, &mut log, &keys[i], &req, 3).expect("never fenced");
    }
    let back = replay(&log);
    for k in &keys {
        assert_eq!(back.get(k), states.get(k), "{k:?}");
        assert_eq!(back.cycle(k), states.cycle(k), "{k:?}");
    }
    assert_eq!(back.len(), states.len());
}

#[test]
fn a_snapshot_follows_every_n_updates() {
    let k = key("g", 9, 0);
    let mut states = States::default();
    let mut log = Vec::new();
    let mut kinds = Vec::new();
    for i in 0..7 {
        let req = write_req(0, 0, -1, &[batch(i, i, DELIVERY_STATE_ACKNOWLEDGED, 1)]);
        let record = write_through(&mut states, &mut log, &k, &req, 2).unwrap();
        kinds.push(match record {
            StateRecord::Snapshot(s) => format!("S{}", s.snapshot_epoch),
            StateRecord::Update(u) => format!("U{}", u.snapshot_epoch),
        });
    }
    assert_eq!(kinds, ["S0", "U0", "U0", "S1", "U1", "U1", "S2"]);
    // The last snapshot holds everything written so far, joined into one run.
    let state = states.get(&k).unwrap();
    assert_eq!(
        state.batches,
        vec![batch(0, 6, DELIVERY_STATE_ACKNOWLEDGED, 1)]
    );
    assert_eq!(replay(&log).get(&k), Some(state));
    // With 0 updates per snapshot every write is a snapshot.
    let req = write_req(0, 0, -1, &[]);
    let record = write_through(&mut states, &mut log, &k, &req, 0).unwrap();
    assert!(matches!(record, StateRecord::Snapshot(s) if s.snapshot_epoch == 3));
}

#[test]
fn stale_leader_and_state_epochs_are_fenced() {
    let k = key("g", 3, 1);
    let mut states = States::default();
    let mut log = Vec::new();
    let first = write_req(2, 5, 10, &[batch(10, 14, DELIVERY_STATE_AVAILABLE, 1)]);
    write_through(&mut states, &mut log, &k, &first, 500).unwrap();
    let older_leader = write_req(2, 4, -1, &[]);
    assert_eq!(
        states.plan_write(&k, &older_leader, 500, 0),
        Err(code::FENCED_LEADER_EPOCH)
    );
    let older_state = write_req(1, 5, -1, &[]);
    assert_eq!(
        states.plan_write(&k, &older_state, 500, 0),
        Err(code::FENCED_STATE_EPOCH)
    );
    // A newer leader epoch is recorded by its write, and fences the one before.
    let newer = write_req(2, 6, -1, &[batch(12, 12, DELIVERY_STATE_ACKNOWLEDGED, 1)]);
    write_through(&mut states, &mut log, &k, &newer, 500).unwrap();
    assert_eq!(states.get(&k).unwrap().leader_epoch, 6);
    assert_eq!(
        states.plan_write(&k, &first, 500, 0),
        Err(code::FENCED_LEADER_EPOCH)
    );
    // A read with a newer epoch writes it; with the stored one, nothing.
    assert_eq!(states.plan_leader_epoch(&k, 6, 500, 0), None);
    let record = states.plan_leader_epoch(&k, 9, 500, 0).expect("a record");
    states.apply(7, &k, &record);
    assert_eq!(states.get(&k).unwrap().leader_epoch, 9);
    assert_eq!(
        states.get(&k).unwrap().batches,
        vec![
            batch(10, 11, DELIVERY_STATE_AVAILABLE, 1),
            batch(12, 12, DELIVERY_STATE_ACKNOWLEDGED, 1),
            batch(13, 14, DELIVERY_STATE_AVAILABLE, 1),
        ]
    );
    // The start offset does not move back under one state epoch.
    let back = write_req(2, 9, 5, &[]);
    write_through(&mut states, &mut log, &k, &back, 500).unwrap();
    assert_eq!(states.get(&k).unwrap().start_offset, 10);
}

#[test]
fn a_newer_state_epoch_resets_the_state_with_a_snapshot() {
    let k = key("g", 4, 0);
    let mut states = States::default();
    let mut log = Vec::new();
    let first = write_req(0, 1, 100, &[batch(100, 120, DELIVERY_STATE_ARCHIVED, 2)]);
    write_through(&mut states, &mut log, &k, &first, 500).unwrap();
    let reset = write_req(1, 1, 50, &[batch(60, 61, DELIVERY_STATE_AVAILABLE, 1)]);
    let record = write_through(&mut states, &mut log, &k, &reset, 500).unwrap();
    assert!(matches!(record, StateRecord::Snapshot(ref s) if s.snapshot_epoch == 1));
    let expected = PersistedState {
        state_epoch: 1,
        leader_epoch: 1,
        start_offset: 50,
        batches: vec![batch(60, 61, DELIVERY_STATE_AVAILABLE, 1)],
    };
    assert_eq!(states.get(&k), Some(&expected));
    assert_eq!(replay(&log).get(&k), Some(&expected));
}

#[test]
fn initialize_starts_or_resets_and_is_fenced_by_an_older_state_epoch() {
    let k = key("g", 5, 2);
    let mut states = States::default();
    let record = states.plan_initialize(&k, 0, -1, 7).unwrap();
    states.apply(1, &k, &record);
    let state = states.get(&k).unwrap().clone();
    assert_eq!((state.state_epoch, state.start_offset), (0, -1));
    assert!(state.batches.is_empty());
    let req = write_req(0, 3, 40, &[batch(40, 49, DELIVERY_STATE_ACKNOWLEDGED, 1)]);
    let record = states.plan_write(&k, &req, 500, 8).unwrap();
    states.apply(1, &k, &record);
    let record = states.plan_initialize(&k, 2, 45, 9).unwrap();
    assert!(matches!(record, StateRecord::Snapshot(ref s) if s.snapshot_epoch == 1));
    states.apply(1, &k, &record);
    let state = states.get(&k).unwrap();
    assert_eq!(
        (state.state_epoch, state.leader_epoch, state.start_offset),
        (2, 3, 45)
    );
    assert!(state.batches.is_empty());
    assert_eq!(
        states.plan_initialize(&k, 1, 0, 10),
        Err(code::FENCED_STATE_EPOCH)
    );
}

#[test]
fn a_tombstone_deletes_and_the_next_write_starts_over() {
    let k = key("g", 6, 0);
    let other = key("g", 6, 1);
    let mut states = States::default();
    let mut log = Vec::new();
    for key in [&k, &other] {
        let req = write_req(3, 3, 0, &[batch(0, 4, DELIVERY_STATE_ACKNOWLEDGED, 1)]);
        write_through(&mut states, &mut log, key, &req, 500).unwrap();
        write_through(&mut states, &mut log, key, &req, 500).unwrap();
    }
    log.push((encode_key(SNAPSHOT_KEY_VERSION, &k).unwrap(), None));
    assert!(states.remove(&k));
    assert!(!states.remove(&k));
    let back = replay(&log);
    assert_eq!(back.get(&k), None);
    assert_eq!(back.get(&other), states.get(&other));
    // No epoch survives a delete: an older one starts a new state at snapshot epoch 0.
    let req = write_req(0, 0, -1, &[]);
    let record = write_through(&mut states, &mut log, &k, &req, 500).unwrap();
    assert!(matches!(record, StateRecord::Snapshot(s) if s.snapshot_epoch == 0));
}

#[test]
fn unload_forgets_one_state_partition() {
    let mut states = States::default();
    let req = write_req(0, 0, 0, &[]);
    for (p, k) in [
        (1, key("a", 1, 0)),
        (1, key("b", 1, 0)),
        (2, key("c", 1, 0)),
    ] {
        let record = states.plan_write(&k, &req, 500, 0).unwrap();
        states.apply(p, &k, &record);
    }
    assert_eq!(states.unload(1), 2);
    assert_eq!(states.len(), 1);
    assert!(states.get(&key("c", 1, 0)).is_some());
}

#[test]
fn requests_kafka_refuses_are_invalid() {
    let k = key("g", 1, 0);
    let ok = write_req(0, 0, -1, &[batch(0, 0, DELIVERY_STATE_AVAILABLE, 1)]);
    assert_eq!(check(&k, &StateOp::Write(ok.clone())), Ok(()));
    let bad_writes = [
        write_req(-1, 0, -1, &[]),
        write_req(0, -1, -1, &[]),
        write_req(0, 0, -2, &[]),
        write_req(0, 0, -1, &[batch(5, 4, DELIVERY_STATE_AVAILABLE, 1)]),
        write_req(0, 0, -1, &[batch(-1, 4, DELIVERY_STATE_AVAILABLE, 1)]),
        write_req(0, 0, -1, &[batch(0, i64::MAX, DELIVERY_STATE_AVAILABLE, 1)]),
        StateWriteRequest {
            batches: vec![batch(0, 0, 0, 1); STATE_BATCHES_MAX + 1],
            ..ok.clone()
        },
    ];
    for w in bad_writes {
        assert_eq!(check(&k, &StateOp::Write(w)), Err(code::INVALID_REQUEST));
    }
    let read = |leader_epoch| StateOp::Read { leader_epoch };
    assert_eq!(check(&k, &read(-1)), Err(code::INVALID_REQUEST));
    assert_eq!(check(&key("", 1, 0), &read(0)), Err(code::INVALID_REQUEST));
    assert_eq!(
        check(&key("g", 1, -1), &StateOp::Delete),
        Err(code::INVALID_REQUEST)
    );
    let init = |state_epoch, start_offset| StateOp::Initialize {
        state_epoch,
        start_offset,
    };
    assert_eq!(check(&k, &init(0, -1)), Ok(()));
    assert_eq!(check(&k, &init(-1, 0)), Err(code::INVALID_REQUEST));
    assert_eq!(check(&k, &StateOp::Summary), Ok(()));
}
