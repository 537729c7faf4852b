//! The share coordinator's state, sans-I/O: the merged state of every share partition whose
//! `__share_group_state` partition this shard coordinates, the records a request turns into
//! ([`States::plan_write`], [`States::plan_initialize`], [`States::plan_leader_epoch`]) and
//! their application ([`States::apply`]), the same for a record read back at load and one just
//! appended, so memory and log cannot disagree. Time comes in as `now_ms` arguments.
//!
//! Per share partition the machine keeps, besides the [`PersistedState`], the snapshot epoch of
//! the last ShareSnapshot and how many ShareUpdate records followed it: a write is a snapshot
//! again once `share.coordinator.snapshot.update.records.per.snapshot` updates followed the
//! last one (so a load replays at most that many updates per share partition).
//!
//! Lives on the shard leading the `__share_group_state` partition (`RefCell` in
//! `super::ShardShareStates`).

use super::{PersistedState, StateWriteRequest};
use crate::errors::code;
use crate::share::record::{
    ShareSnapshotValue, ShareStateKey, ShareUpdateValue, StateBatch, StateRecord,
};
use std::collections::BTreeMap;

/// (group id, topic id, partition): a share partition, as a map key.
type Key = (String, uuid::Uuid, i32);

fn key_of(k: &ShareStateKey) -> Key {
    (k.group_id.clone(), k.topic_id, k.partition)
}

/// One share partition's state and its place in the snapshot cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// The `__share_group_state` partition it lives in (what an unload forgets by).
    partition: i32,
    state: PersistedState,
    /// Epoch of the last ShareSnapshot record.
    snapshot_epoch: i32,
    /// ShareUpdate records since then.
    updates_since_snapshot: u32,
}

/// The share partitions' states on one shard.
#[derive(Debug, Default)]
pub struct States {
    entries: BTreeMap<Key, Entry>,
}

impl States {
    /// The state of `key`, None if it was never written (or was deleted).
    pub fn get(&self, key: &ShareStateKey) -> Option<&PersistedState> {
        self.entries.get(&key_of(key)).map(|e| &e.state)
    }

    #[cfg_attr(not(test), allow(dead_code))]
    /// Share partitions in memory.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The record a write turns into, or why it is refused: FENCED_LEADER_EPOCH below the
    /// stored leader epoch, FENCED_STATE_EPOCH below the stored state epoch. A first write, a
    /// write with a newer state epoch (the state was reset: its batches alone are the state),
    /// and a write after `updates_per_snapshot` updates are snapshots of the merged state; any
    /// other is an update carrying the write's own batches. The start offset never moves back
    /// under one state epoch (a write's -1, or a smaller one, keeps the stored one). The
    /// leader epoch recorded is the larger of the stored one and the write's.
    pub fn plan_write(
        &self,
        key: &ShareStateKey,
        req: &StateWriteRequest,
        updates_per_snapshot: u32,
        now_ms: i64,
    ) -> Result<StateRecord, i16> {
        let Some(e) = self.entries.get(&key_of(key)) else {
            let start = req.start_offset;
            let batches = merge(&[], &req.batches, start);
            let state = (req.state_epoch, req.leader_epoch, start);
            return Ok(snapshot(0, state, batches, now_ms));
        };
        let stored = &e.state;
        if req.leader_epoch < stored.leader_epoch {
            return Err(code::FENCED_LEADER_EPOCH);
        }
        if req.state_epoch < stored.state_epoch {
            return Err(code::FENCED_STATE_EPOCH);
        }
        let leader_epoch = req.leader_epoch.max(stored.leader_epoch);
        let next_snapshot = e.snapshot_epoch.saturating_add(1);
        if req.state_epoch > stored.state_epoch {
            let start = if req.start_offset >= 0 {
                req.start_offset
            } else {
                stored.start_offset
            };
            let batches = merge(&[], &req.batches, start);
            let state = (req.state_epoch, leader_epoch, start);
            return Ok(snapshot(next_snapshot, state, batches, now_ms));
        }
        let start = req.start_offset.max(stored.start_offset);
        if e.updates_since_snapshot >= updates_per_snapshot {
            let batches = merge(&stored.batches, &req.batches, start);
            let state = (stored.state_epoch, leader_epoch, start);
            return Ok(snapshot(next_snapshot, state, batches, now_ms));
        }
        Ok(StateRecord::Update(ShareUpdateValue {
            snapshot_epoch: e.snapshot_epoch,
            leader_epoch,
            start_offset: start,
            state_batches: merge(&[], &req.batches, start),
            unknown_tagged_fields: Vec::new(),
        }))
    }

    /// The record a read under `leader_epoch` writes when that epoch is newer than the stored
    /// one (so a share-partition leader of an older epoch is fenced afterwards, as Kafka's
    /// read does); None when nothing needs writing. The caller checked the epoch is not older.
    pub fn plan_leader_epoch(
        &self,
        key: &ShareStateKey,
        leader_epoch: i32,
        updates_per_snapshot: u32,
        now_ms: i64,
    ) -> Option<StateRecord> {
        let stored = self.get(key)?;
        if stored.leader_epoch >= leader_epoch {
            return None;
        }
        let req = StateWriteRequest {
            state_epoch: stored.state_epoch,
            leader_epoch,
            start_offset: -1,
            batches: Vec::new(),
        };
        self.plan_write(key, &req, updates_per_snapshot, now_ms)
            .ok()
    }

    /// InitializeShareGroupState: a snapshot with `state_epoch`, `start_offset` and no
    /// batches (a new state, or a reset of the old one); FENCED_STATE_EPOCH below the stored
    /// state epoch. The stored leader epoch stays (Kafka writes 0 there and keeps fencing with
    /// the larger of the epochs it has seen, which is the same).
    pub fn plan_initialize(
        &self,
        key: &ShareStateKey,
        state_epoch: i32,
        start_offset: i64,
        now_ms: i64,
    ) -> Result<StateRecord, i16> {
        let Some(e) = self.entries.get(&key_of(key)) else {
            return Ok(snapshot(
                0,
                (state_epoch, 0, start_offset),
                Vec::new(),
                now_ms,
            ));
        };
        if state_epoch < e.state.state_epoch {
            return Err(code::FENCED_STATE_EPOCH);
        }
        let state = (state_epoch, e.state.leader_epoch, start_offset);
        let next_snapshot = e.snapshot_epoch.saturating_add(1);
        Ok(snapshot(next_snapshot, state, Vec::new(), now_ms))
    }

    /// Applies a record of `key` in `__share_group_state` partition `partition`: a snapshot
    /// replaces the state (its batches normalised), an update is merged over it (an update
    /// with no state before it starts one, as Kafka's replay does). Leader epochs only grow.
    pub fn apply(&mut self, partition: i32, key: &ShareStateKey, record: &StateRecord) {
        let k = key_of(key);
        match record {
            StateRecord::Snapshot(v) => {
                let leader_epoch = self
                    .entries
                    .get(&k)
                    .map_or(v.leader_epoch, |e| e.state.leader_epoch.max(v.leader_epoch));
                let state = PersistedState {
                    state_epoch: v.state_epoch,
                    leader_epoch,
                    start_offset: v.start_offset,
                    batches: merge(&[], &v.state_batches, v.start_offset),
                };
                let entry = Entry {
                    partition,
                    state,
                    snapshot_epoch: v.snapshot_epoch,
                    updates_since_snapshot: 0,
                };
                self.entries.insert(k, entry);
            }
            StateRecord::Update(v) => {
                let entry = self.entries.entry(k).or_insert_with(|| Entry {
                    partition,
                    state: PersistedState {
                        state_epoch: 0,
                        leader_epoch: v.leader_epoch,
                        start_offset: -1,
                        batches: Vec::new(),
                    },
                    snapshot_epoch: v.snapshot_epoch,
                    updates_since_snapshot: 0,
                });
                let s = &mut entry.state;
                if v.start_offset != -1 {
                    s.start_offset = v.start_offset;
                }
                s.leader_epoch = s.leader_epoch.max(v.leader_epoch);
                s.batches = merge(&s.batches, &v.state_batches, s.start_offset);
                entry.partition = partition;
                entry.updates_since_snapshot = entry.updates_since_snapshot.saturating_add(1);
            }
        }
    }

    /// A tombstone: forgets `key`; whether it had a state.
    pub fn remove(&mut self, key: &ShareStateKey) -> bool {
        self.entries.remove(&key_of(key)).is_some()
    }

    /// Forgets every share partition of `__share_group_state` partition `partition`; how many.
    pub fn unload(&mut self, partition: i32) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, e| e.partition != partition);
        before - self.entries.len()
    }

    /// The snapshot epoch and updates since it of `key` (tests).
    #[cfg(test)]
    pub fn cycle(&self, key: &ShareStateKey) -> Option<(i32, u32)> {
        let e = self.entries.get(&key_of(key))?;
        Some((e.snapshot_epoch, e.updates_since_snapshot))
    }
}

/// A ShareSnapshot record of (state epoch, leader epoch, start offset) and `batches`.
fn snapshot(
    snapshot_epoch: i32,
    (state_epoch, leader_epoch, start_offset): (i32, i32, i64),
    batches: Vec<StateBatch>,
    now_ms: i64,
) -> StateRecord {
    StateRecord::Snapshot(ShareSnapshotValue {
        snapshot_epoch,
        state_epoch,
        leader_epoch,
        start_offset,
        create_timestamp: now_ms,
        write_timestamp: now_ms,
        state_batches: batches,
        unknown_tagged_fields: Vec::new(),
    })
}

/// `old` (ascending, disjoint) with `new` written over it in order: each new batch replaces
/// whatever it overlaps (later batches of `new` win over earlier ones), then everything below
/// `start_offset` is dropped (a batch across it is cut there) and neighbours in the same state
/// with the same delivery count are joined. The result is ascending and disjoint. Batches that
/// are not ranges (first after last, a negative first, a last of `i64::MAX`) are ignored.
///
/// Kafka's combiner settles an overlap by priority instead (the higher delivery count, then
/// the higher state); the two agree whenever delivery counts only grow, as they do under one
/// share-partition leader, and otherwise this follows the latest writer.
pub fn merge(old: &[StateBatch], new: &[StateBatch], start_offset: i64) -> Vec<StateBatch> {
    let mut runs: BTreeMap<i64, StateBatch> = BTreeMap::new();
    for b in old.iter().chain(new).filter(|b| is_range(b)) {
        paint(&mut runs, *b);
    }
    let mut out: Vec<StateBatch> = Vec::with_capacity(runs.len());
    for mut b in runs.into_values() {
        if b.last_offset < start_offset {
            continue;
        }
        b.first_offset = b.first_offset.max(start_offset);
        match out.last_mut() {
            Some(prev)
                if prev.last_offset + 1 == b.first_offset
                    && prev.delivery_state == b.delivery_state
                    && prev.delivery_count == b.delivery_count =>
            {
                prev.last_offset = b.last_offset;
            }
            _ => out.push(b),
        }
    }
    out
}

fn is_range(b: &StateBatch) -> bool {
    0 <= b.first_offset && b.first_offset <= b.last_offset && b.last_offset < i64::MAX
}

/// Writes `b` over the disjoint runs (keyed by first offset), cutting what it overlaps. Each
/// run is inserted once and removed at most once, so a merge costs O(n log n).
fn paint(runs: &mut BTreeMap<i64, StateBatch>, b: StateBatch) {
    let before = runs
        .range(..b.first_offset)
        .next_back()
        .map(|(_, r)| *r)
        .filter(|r| r.last_offset >= b.first_offset);
    if let Some(head) = before {
        let cut = StateBatch {
            last_offset: b.first_offset - 1,
            ..head
        };
        runs.insert(head.first_offset, cut);
        if head.last_offset > b.last_offset {
            let tail = StateBatch {
                first_offset: b.last_offset + 1,
                ..head
            };
            runs.insert(tail.first_offset, tail);
        }
    }
    let inside: Vec<i64> = runs
        .range(b.first_offset..=b.last_offset)
        .map(|(first, _)| *first)
        .collect();
    for first in inside {
        let r = runs.remove(&first).expect("listed above");
        if r.last_offset > b.last_offset {
            let tail = StateBatch {
                first_offset: b.last_offset + 1,
                ..r
            };
            runs.insert(tail.first_offset, tail);
        }
    }
    runs.insert(b.first_offset, b);
}
