//! The share-partition rules, one at a time, on virtual time.

use super::partition::*;
use super::record::StateWrite;
use super::record::{StateBatch, StateRecord};
use super::*;

const LOCK_MS: i64 = 30_000;

fn config() -> ShareConfig {
    ShareConfig::default()
}

fn ack(first: i64, last: i64, types: &[i8]) -> AckBatch {
    AckBatch {
        first_offset: first,
        last_offset: last,
        acknowledge_types: types.to_vec(),
    }
}

const GAP: i8 = 0;
const ACCEPT: i8 = 1;
const RELEASE: i8 = 2;
const REJECT: i8 = 3;

fn acquired(first: i64, last: i64, delivery_count: i16) -> AcquiredRecords {
    AcquiredRecords {
        first_offset: first,
        last_offset: last,
        delivery_count,
    }
}

/// (first, last, state, delivery count) of every range.
fn states(p: &SharePartition) -> Vec<(i64, i64, RecordState, u16)> {
    p.ranges()
        .map(|r| (r.first_offset, r.last_offset, r.state, r.delivery_count))
        .collect()
}

use RecordState::{Acknowledged, Acquired, Archived, Available};

/// A partition with its initial snapshot taken, so later writes are updates.
fn fresh(config: ShareConfig) -> SharePartition {
    let mut p = SharePartition::new(config, 0, 1);
    assert!(matches!(
        p.take_write(0).map(|w| w.record),
        Some(StateRecord::Snapshot(_))
    ));
    p
}

fn batches_of(w: Option<StateWrite>) -> Vec<(i64, i64, i8, i16)> {
    let batches = match w.expect("a write").record {
        StateRecord::Snapshot(s) => s.state_batches,
        StateRecord::Update(u) => u.state_batches,
    };
    batches
        .iter()
        .map(|b| {
            (
                b.first_offset,
                b.last_offset,
                b.delivery_state,
                b.delivery_count,
            )
        })
        .collect()
}

#[test]
fn a_new_partition_starts_at_the_given_offset_and_writes_a_snapshot_first() {
    let mut p = SharePartition::new(config(), 42, 3);
    assert_eq!(
        (p.start_offset(), p.end_offset(), p.next_fetch_offset()),
        (42, 42, 42)
    );
    let w = p.take_write(7).expect("the initial snapshot");
    assert_eq!(w.seq, WriteSeq(1));
    let StateRecord::Snapshot(s) = w.record else {
        panic!("not a snapshot")
    };
    assert_eq!((s.snapshot_epoch, s.state_epoch, s.leader_epoch), (0, 0, 3));
    assert_eq!(
        (s.start_offset, s.create_timestamp, s.write_timestamp),
        (42, 7, 7)
    );
    assert!(s.state_batches.is_empty());
    assert!(p.take_write(8).is_none(), "nothing changed since");
}

#[test]
fn new_records_are_acquired_whole_with_delivery_count_one() {
    let mut p = fresh(config());
    let got = p.acquire("a", 0, &[(0, 9), (10, 19)], 500, 0);
    assert_eq!(got, vec![acquired(0, 19, 1)]);
    assert_eq!(states(&p), vec![(0, 19, Acquired, 1)]);
    assert_eq!((p.next_fetch_offset(), p.in_flight_records()), (20, 20));
    let r = p.ranges().next().unwrap();
    assert_eq!(r.member_id.as_deref(), Some("a"));
    assert_eq!(r.lock_deadline_ms, Some(LOCK_MS));
    assert_eq!(p.next_deadline_ms(), Some(LOCK_MS));
    assert!(p.take_write(0).is_none(), "acquisitions are not written");
}

#[test]
fn max_records_is_soft_the_batch_reaching_it_is_taken_whole() {
    let mut p = fresh(config());
    let got = p.acquire("a", 0, &[(0, 4), (5, 9), (10, 14)], 7, 0);
    assert_eq!(got, vec![acquired(0, 9, 1)]);
    // Offsets missing from the log inside and between batches count as records (Kafka).
    let got = p.acquire("a", 10, &[(10, 11), (14, 20)], 3, 0);
    assert_eq!(
        got,
        vec![acquired(10, 12, 1)],
        "13 lies between batches: cut there"
    );
}

#[test]
fn a_large_batch_costs_one_range() {
    let mut config = config();
    config.partition_max_record_locks = 10_000;
    let mut p = fresh(config);
    assert_eq!(
        p.acquire("a", 0, &[(0, 99_999)], 500, 0),
        vec![acquired(0, 99_999, 1)]
    );
    assert_eq!(p.ranges().count(), 1);
    assert_eq!(
        p.acknowledge("a", &[ack(0, 99_999, &[ACCEPT])], 1),
        Ok(WriteSeq(2))
    );
    assert_eq!((p.start_offset(), p.ranges().count()), (100_000, 0));
    let StateRecord::Update(u) = p.take_write(1).unwrap().record else {
        panic!("an update")
    };
    assert_eq!(
        u.start_offset, 100_000,
        "the SPSO alone says 0..99999 are done"
    );
    assert!(u.state_batches.is_empty());
}

#[test]
fn records_held_or_done_are_not_acquired_again() {
    let mut p = fresh(config());
    p.acquire("a", 0, &[(0, 9)], 500, 0);
    assert!(p.acquire("b", 0, &[(0, 9)], 500, 0).is_empty());
    p.acknowledge("a", &[ack(0, 4, &[ACCEPT])], 1).unwrap();
    assert!(p.acquire("b", 0, &[(0, 9)], 500, 1).is_empty());
    assert_eq!(p.start_offset(), 5);
}

#[test]
fn a_partial_acknowledgement_splits_and_the_rest_merges_back() {
    let mut p = fresh(config());
    p.acquire("a", 0, &[(0, 99)], 500, 0);
    p.acknowledge("a", &[ack(10, 19, &[ACCEPT])], 1).unwrap();
    assert_eq!(
        states(&p),
        vec![
            (0, 9, Acquired, 1),
            (10, 19, Acknowledged, 1),
            (20, 99, Acquired, 1)
        ]
    );
    p.acknowledge("a", &[ack(0, 9, &[REJECT])], 1).unwrap();
    assert_eq!(p.start_offset(), 20, "0..19 are done: the SPSO moves past");
    assert_eq!(states(&p), vec![(20, 99, Acquired, 1)]);
}

#[test]
fn per_offset_types_settle_each_offset() {
    let mut p = fresh(config());
    p.acquire("a", 0, &[(0, 5)], 500, 0);
    let types = [RELEASE, ACCEPT, RELEASE, REJECT, GAP, ACCEPT];
    p.acknowledge("a", &[ack(0, 5, &types)], 1).unwrap();
    assert_eq!(
        states(&p),
        vec![
            (0, 0, Available, 1),
            (1, 1, Acknowledged, 1),
            (2, 2, Available, 1),
            (3, 4, Archived, 1),
            (5, 5, Acknowledged, 1)
        ]
    );
    assert_eq!(p.next_fetch_offset(), 0);
    assert_eq!(p.delivery_complete_count(), 4);
}

#[test]
fn a_released_record_comes_back_with_its_next_delivery_count() {
    let mut p = fresh(config());
    p.acquire("a", 0, &[(0, 9)], 500, 0);
    p.acknowledge("a", &[ack(3, 4, &[RELEASE])], 1).unwrap();
    assert_eq!(p.next_fetch_offset(), 3);
    let got = p.acquire("b", 0, &[(0, 9)], 500, 2);
    assert_eq!(got, vec![acquired(3, 4, 2)], "only the released offsets");
}

#[test]
fn a_release_at_the_delivery_limit_archives() {
    let mut config = config();
    config.delivery_count_limit = 2;
    let mut p = fresh(config);
    p.acquire("a", 0, &[(0, 0)], 500, 0);
    p.acknowledge("a", &[ack(0, 0, &[RELEASE])], 1).unwrap();
    assert_eq!(
        p.acquire("a", 0, &[(0, 0)], 500, 2),
        vec![acquired(0, 0, 2)]
    );
    p.acknowledge("a", &[ack(0, 0, &[RELEASE])], 3).unwrap();
    assert_eq!(
        (p.start_offset(), p.ranges().count()),
        (1, 0),
        "archived and passed"
    );
}

#[test]
fn an_expired_lock_makes_the_records_available_and_refuses_their_acknowledgement() {
    let mut p = fresh(config());
    p.acquire("a", 0, &[(0, 9)], 500, 100);
    let deadline = 100 + LOCK_MS;
    assert_eq!(p.next_deadline_ms(), Some(deadline));
    assert_eq!(p.expire(deadline - 1), 0);
    let late = p.acknowledge("a", &[ack(0, 9, &[ACCEPT])], deadline);
    assert_eq!(late.map_err(|e| e.code()), Err(code::INVALID_RECORD_STATE));
    assert_eq!(p.expire(deadline), 10);
    assert_eq!(states(&p), vec![(0, 9, Available, 1)]);
    assert_eq!(p.next_deadline_ms(), None);
    assert_eq!(batches_of(p.take_write(deadline)), vec![(0, 9, 0, 1)]);
}

#[test]
fn a_renewed_lock_runs_again_from_the_renewal() {
    const RENEW: i8 = 4;
    let mut p = fresh(config());
    p.acquire("a", 0, &[(0, 9)], 500, 100);
    let renewed_at = 100 + LOCK_MS - 1;
    let renew = p.acknowledge("a", &[ack(0, 4, &[RENEW])], renewed_at);
    assert!(renew.is_ok(), "{renew:?}");
    assert_eq!(
        p.expire(100 + LOCK_MS),
        5,
        "the unrenewed half expires on time"
    );
    assert_eq!(states(&p), vec![(0, 4, Acquired, 1), (5, 9, Available, 1)]);
    assert_eq!(p.next_deadline_ms(), Some(renewed_at + LOCK_MS));
    let other = p.acknowledge("b", &[ack(0, 4, &[RENEW])], renewed_at + 1);
    assert_eq!(other.map_err(|e| e.code()), Err(code::INVALID_RECORD_STATE));
    assert!(p
        .acknowledge("a", &[ack(0, 4, &[ACCEPT])], renewed_at + LOCK_MS - 1)
        .is_ok());
    assert_eq!(states(&p), vec![(5, 9, Available, 1)]);
}

#[test]
fn lock_expiry_at_the_delivery_limit_archives() {
    let mut config = config();
    config.delivery_count_limit = 2;
    let mut p = fresh(config);
    p.acquire("a", 0, &[(0, 4)], 500, 0);
    p.expire(LOCK_MS);
    p.acquire("b", 0, &[(0, 4)], 500, LOCK_MS);
    assert_eq!(p.expire(2 * LOCK_MS), 5);
    assert_eq!(p.start_offset(), 5);
}

#[test]
fn acquire_expires_due_locks_first() {
    let mut p = fresh(config());
    p.acquire("a", 0, &[(0, 4)], 500, 0);
    assert_eq!(
        p.acquire("b", 0, &[(0, 4)], 500, LOCK_MS),
        vec![acquired(0, 4, 2)]
    );
}

#[test]
fn an_acknowledgement_is_all_or_nothing() {
    let mut p = fresh(config());
    p.acquire("a", 0, &[(0, 4)], 500, 0);
    p.acquire("b", 5, &[(5, 9)], 500, 0);
    let r = p.acknowledge("a", &[ack(0, 4, &[ACCEPT]), ack(5, 6, &[ACCEPT])], 1);
    let Err(e) = r else { panic!("b's records") };
    assert_eq!(e.code(), code::INVALID_RECORD_STATE);
    assert_eq!(
        e,
        ShareError::InvalidRecordState {
            offset: 5,
            reason: "acquired by another member"
        }
    );
    assert_eq!(
        states(&p)[0],
        (0, 4, Acquired, 1),
        "a's batch was not applied"
    );
    assert!(p.take_write(1).is_none());
}

#[test]
fn malformed_acknowledgements_are_invalid_requests() {
    let mut p = fresh(config());
    p.acquire("a", 0, &[(0, 9)], 500, 0);
    let cases = [
        vec![ack(5, 4, &[ACCEPT])],
        vec![ack(-1, 4, &[ACCEPT])],
        vec![ack(0, 4, &[ACCEPT]), ack(4, 6, &[ACCEPT])],
        vec![ack(5, 6, &[ACCEPT]), ack(0, 1, &[ACCEPT])],
        vec![ack(0, 3, &[ACCEPT, ACCEPT])],
        vec![ack(0, 1, &[])],
        vec![ack(0, 1, &[5])],
        vec![ack(0, 1, &[ACCEPT, -1])],
    ];
    for batches in cases {
        let r = p.acknowledge("a", &batches, 1).map_err(|e| e.code());
        assert_eq!(r, Err(code::INVALID_REQUEST), "{batches:?}");
    }
    let past = p
        .acknowledge("a", &[ack(8, 10, &[ACCEPT])], 1)
        .map_err(|e| e.code());
    assert_eq!(
        past,
        Err(code::INVALID_REQUEST),
        "offset 10 was never delivered"
    );
    assert_eq!(states(&p), vec![(0, 9, Acquired, 1)]);
}

#[test]
fn available_or_done_records_cannot_be_acknowledged() {
    let mut p = fresh(config());
    p.acquire("a", 0, &[(0, 9)], 500, 0);
    p.acknowledge("a", &[ack(5, 5, &[RELEASE]), ack(7, 7, &[ACCEPT])], 1)
        .unwrap();
    for (offset, reason) in [(5, "not acquired"), (7, "already acknowledged")] {
        let r = p.acknowledge("a", &[ack(offset, offset, &[ACCEPT])], 1);
        assert_eq!(r, Err(ShareError::InvalidRecordState { offset, reason }));
    }
}

#[test]
fn offsets_below_the_start_offset_are_skipped() {
    let mut p = fresh(config());
    p.acquire("a", 0, &[(0, 9)], 500, 0);
    p.acknowledge("a", &[ack(0, 4, &[ACCEPT])], 1).unwrap();
    assert_eq!(p.take_write(1).unwrap().seq, WriteSeq(2));
    assert_eq!(
        p.acknowledge("a", &[ack(0, 4, &[REJECT])], 1),
        Ok(WriteSeq(2))
    );
    assert!(
        p.take_write(1).is_none(),
        "nothing to write: the last write covers it"
    );
    let straddling = p.acknowledge(
        "a",
        &[ack(2, 6, &[ACCEPT, ACCEPT, ACCEPT, ACCEPT, REJECT])],
        1,
    );
    assert_eq!(straddling, Ok(WriteSeq(3)));
    assert_eq!(p.start_offset(), 7);
    assert_eq!(
        batches_of(p.take_write(1)),
        vec![],
        "5..6 are below the new SPSO"
    );
}

#[test]
fn a_departing_member_releases_only_its_records() {
    let mut p = fresh(config());
    p.acquire("a", 0, &[(0, 4)], 500, 0);
    p.acquire("b", 5, &[(5, 9)], 500, 0);
    assert_eq!(p.release_member("a"), 5);
    assert_eq!(states(&p), vec![(0, 4, Available, 1), (5, 9, Acquired, 1)]);
    assert_eq!(p.release_member("a"), 0);
}

#[test]
fn new_records_stop_at_the_record_lock_limit_rounded_to_a_batch() {
    let mut config = config();
    config.partition_max_record_locks = 10;
    let mut p = fresh(config);
    let got = p.acquire("a", 0, &[(0, 7), (8, 15), (16, 20)], 500, 0);
    assert_eq!(
        got,
        vec![acquired(0, 15, 1)],
        "the batch holding the 10th record is whole"
    );
    assert!(!p.can_acquire());
    assert!(p.acquire("b", 16, &[(16, 20)], 500, 0).is_empty());
    p.acknowledge("a", &[ack(0, 12, &[ACCEPT])], 1).unwrap();
    assert_eq!(p.in_flight_records(), 3);
    // Room for 7 (16..22): the batch holding 22 is taken whole.
    assert_eq!(
        p.acquire("b", 16, &[(16, 20), (21, 30)], 500, 1),
        vec![acquired(16, 30, 1)]
    );
    assert_eq!(p.in_flight_records(), 18);
}

#[test]
fn released_records_are_acquired_even_when_the_window_is_full() {
    let mut config = config();
    config.partition_max_record_locks = 10;
    let mut p = fresh(config);
    p.acquire("a", 0, &[(0, 9)], 500, 0);
    p.release_member("a");
    assert!(p.can_acquire());
    assert_eq!(
        p.acquire("b", 0, &[(0, 9), (10, 19)], 500, 1),
        vec![acquired(0, 9, 2)]
    );
}

#[test]
fn re_acquisition_respects_max_records_by_batch() {
    let mut p = fresh(config());
    p.acquire("a", 0, &[(0, 19)], 500, 0);
    p.release_member("a");
    let got = p.acquire("b", 0, &[(0, 4), (5, 9), (10, 19)], 3, 1);
    assert_eq!(got, vec![acquired(0, 4, 2)]);
    assert_eq!(states(&p), vec![(0, 4, Acquired, 2), (5, 19, Available, 1)]);
}

#[test]
fn offsets_missing_before_the_read_are_archived() {
    let mut p = fresh(config());
    p.acquire("a", 0, &[(0, 4)], 500, 0);
    let got = p.acquire("b", p.next_fetch_offset(), &[(8, 9)], 500, 0);
    assert_eq!(got, vec![acquired(8, 9, 1)]);
    assert_eq!(
        states(&p),
        vec![
            (0, 4, Acquired, 1),
            (5, 7, Archived, 0),
            (8, 9, Acquired, 1)
        ]
    );
    p.acknowledge("a", &[ack(0, 4, &[ACCEPT])], 1).unwrap();
    assert_eq!(p.start_offset(), 8);
}

#[test]
fn the_log_start_moving_drops_state_below_it() {
    let mut p = fresh(config());
    p.acquire("a", 0, &[(0, 9)], 500, 0);
    p.log_start_advanced(4);
    assert_eq!(
        (p.start_offset(), states(&p)),
        (4, vec![(4, 9, Acquired, 1)])
    );
    // The dropped records' acknowledgement is skipped, the rest applies.
    p.acknowledge("a", &[ack(0, 5, &[ACCEPT])], 1).unwrap();
    assert_eq!(p.start_offset(), 6);
    assert!(
        p.acquire("a", 0, &[(0, 3)], 500, 1).is_empty(),
        "below the SPSO"
    );
    p.log_start_advanced(50);
    assert_eq!(
        (p.start_offset(), p.end_offset(), p.ranges().count()),
        (50, 50, 0)
    );
    assert_eq!(
        p.acquire("b", 50, &[(50, 51)], 500, 2),
        vec![acquired(50, 51, 1)]
    );
    let StateRecord::Update(u) = p.take_write(2).unwrap().record else {
        panic!("an update")
    };
    assert_eq!(u.start_offset, 50);
}

#[test]
fn the_start_offset_resets_only_when_no_record_is_acquired() {
    let mut p = fresh(config());
    p.acquire("a", 0, &[(0, 9)], 500, 0);
    let refused = p.reset_start_offset(100);
    assert_eq!(refused, Err(ShareError::RecordsAcquired { acquired: 10 }));
    assert_eq!(refused.unwrap_err().code(), code::NON_EMPTY_GROUP);
    p.release_member("a");
    assert_eq!(p.reset_start_offset(3), Ok(WriteSeq(2)));
    assert_eq!(
        (p.start_offset(), p.end_offset(), p.state_epoch()),
        (3, 3, 1)
    );
    let w = p.take_write(5).unwrap();
    let StateRecord::Snapshot(s) = w.record else {
        panic!("a reset writes a snapshot")
    };
    assert_eq!(
        (w.seq, s.state_epoch, s.snapshot_epoch, s.start_offset),
        (WriteSeq(2), 1, 1, 3)
    );
    assert!(s.state_batches.is_empty());
}

#[test]
fn updates_carry_the_changed_ranges_and_snapshots_follow_every_n_updates() {
    let mut config = config();
    config.snapshot_update_records_per_snapshot = 2;
    let mut p = fresh(config);
    p.acquire("a", 0, &[(0, 9)], 500, 0);
    assert_eq!(
        p.acknowledge("a", &[ack(2, 3, &[RELEASE])], 1),
        Ok(WriteSeq(2))
    );
    assert_eq!(
        p.acknowledge("a", &[ack(6, 6, &[ACCEPT])], 1),
        Ok(WriteSeq(2))
    );
    let w = p.take_write(1).unwrap();
    assert_eq!(w.seq, WriteSeq(2));
    let StateRecord::Update(u) = &w.record else {
        panic!("an update")
    };
    assert_eq!((u.snapshot_epoch, u.start_offset), (0, 0));
    assert_eq!(batches_of(Some(w)), vec![(2, 3, 0, 1), (6, 6, 2, 1)]);
    // 2..3 are acquired again: written as not yet redelivered (Available, count 1).
    p.acquire("b", 0, &[(0, 9)], 500, 2);
    p.acknowledge("b", &[ack(3, 3, &[REJECT])], 2).unwrap();
    assert_eq!(batches_of(p.take_write(2)), vec![(3, 3, 4, 2)]);
    p.acknowledge("a", &[ack(0, 0, &[ACCEPT])], 3).unwrap();
    let w = p.take_write(3).unwrap();
    let StateRecord::Snapshot(s) = &w.record else {
        panic!("the third write after a snapshot is a snapshot")
    };
    assert_eq!(
        (w.seq, s.snapshot_epoch, s.start_offset),
        (WriteSeq(4), 1, 1)
    );
    assert_eq!(
        batches_of(Some(w)),
        vec![
            (1, 1, 0, 0),
            (2, 2, 0, 1),
            (3, 3, 4, 2),
            (4, 5, 0, 0),
            (6, 6, 2, 1),
            (7, 9, 0, 0)
        ]
    );
}

#[test]
fn recovery_rebuilds_the_persisted_state_with_locks_released() {
    let mut config = config();
    config.snapshot_update_records_per_snapshot = 100;
    let mut p = SharePartition::new(config.clone(), 0, 1);
    let mut writes = vec![p.take_write(0).unwrap().record];
    p.acquire("a", 0, &[(0, 9)], 500, 0);
    p.acknowledge("a", &[ack(0, 1, &[ACCEPT]), ack(4, 5, &[RELEASE])], 1)
        .unwrap();
    writes.push(p.take_write(1).unwrap().record);
    p.acquire("b", 4, &[(4, 5)], 500, 2);
    p.acknowledge("b", &[ack(5, 5, &[REJECT])], 2).unwrap();
    writes.push(p.take_write(2).unwrap().record);
    let (snapshot, updates) = split(&writes);
    let r = SharePartition::recover(config, 2, &snapshot, &updates).unwrap();
    assert_eq!(r.start_offset(), 2);
    assert_eq!(
        states(&r),
        vec![
            (2, 3, Available, 0),
            (4, 4, Available, 1),
            (5, 5, Archived, 2)
        ],
        "2..3 were only acquired; 4 was acquired a second time, which is lost"
    );
    assert_eq!(
        r.end_offset(),
        6,
        "6..9 were never written: new records again"
    );
    assert_eq!(r.next_fetch_offset(), 2);
}

#[test]
fn recovery_refuses_bad_state_and_archives_exhausted_records() {
    let mut config = config();
    config.delivery_count_limit = 3;
    let batch = |state, count| StateBatch {
        first_offset: 10,
        last_offset: 12,
        delivery_state: state,
        delivery_count: count,
    };
    let snapshot = |batches: Vec<StateBatch>| record::ShareSnapshotValue {
        snapshot_epoch: 0,
        state_epoch: 0,
        leader_epoch: 0,
        start_offset: 10,
        create_timestamp: 0,
        write_timestamp: 0,
        state_batches: batches,
        unknown_tagged_fields: Vec::new(),
    };
    let bad = SharePartition::recover(config.clone(), 0, &snapshot(vec![batch(3, 0)]), &[]);
    assert!(matches!(bad, Err(ShareError::InvalidState { .. })));
    let backwards = record::ShareUpdateValue {
        snapshot_epoch: 0,
        leader_epoch: 0,
        start_offset: 5,
        state_batches: Vec::new(),
        unknown_tagged_fields: Vec::new(),
    };
    let bad = SharePartition::recover(config.clone(), 0, &snapshot(vec![]), &[backwards]);
    assert!(matches!(bad, Err(ShareError::InvalidState { .. })));
    let mut p = SharePartition::recover(config, 0, &snapshot(vec![batch(0, 3)]), &[]).unwrap();
    assert_eq!(
        (p.start_offset(), p.ranges().count()),
        (13, 0),
        "archived at the limit"
    );
    assert_eq!(batches_of(p.take_write(0)), vec![]);
}

fn split(writes: &[StateRecord]) -> (record::ShareSnapshotValue, Vec<record::ShareUpdateValue>) {
    let last = writes
        .iter()
        .rposition(|w| matches!(w, StateRecord::Snapshot(_)))
        .expect("a snapshot");
    let StateRecord::Snapshot(s) = &writes[last] else {
        unreachable!()
    };
    let updates = writes[last + 1..]
        .iter()
        .map(|w| match w {
            StateRecord::Update(u) => u.clone(),
            StateRecord::Snapshot(_) => unreachable!(),
        })
        .collect();
    (s.clone(), updates)
}

#[test]
fn released_offsets_a_read_skips_are_archived() {
    let mut p = fresh(config());
    // 5..7 lie between two batches: delivered as records (the consumer would say GAP).
    assert_eq!(
        p.acquire("a", 0, &[(0, 4), (8, 9)], 500, 0),
        vec![acquired(0, 9, 1)]
    );
    p.acknowledge("a", &[ack(0, 4, &[ACCEPT]), ack(5, 9, &[RELEASE])], 1)
        .unwrap();
    p.take_write(1);
    assert_eq!(p.next_fetch_offset(), 5);
    // A read from 5 starts at 8: 5..7 are not records, nothing will ever return them.
    assert_eq!(
        p.acquire("b", 5, &[(8, 9)], 500, 2),
        vec![acquired(8, 9, 2)]
    );
    assert_eq!(p.start_offset(), 8);
    assert_eq!(batches_of(p.take_write(2)), vec![], "below the SPSO now");
}

#[test]
fn a_read_from_past_the_window_acquires_nothing() {
    let mut p = fresh(config());
    p.acquire("a", 0, &[(0, 9)], 500, 0);
    p.release_member("a");
    p.reset_start_offset(2).unwrap();
    assert!(
        p.acquire("a", 10, &[(10, 12)], 500, 1).is_empty(),
        "read before the reset"
    );
    assert_eq!(
        p.acquire("a", 2, &[(0, 9)], 500, 1),
        vec![acquired(2, 9, 1)]
    );
}
