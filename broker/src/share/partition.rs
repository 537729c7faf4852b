//! One share partition's in-flight records, as ranges of equal state. See the module docs of
//! [`super`] for the states and the durability rule.
//!
//! Invariants (checked by the model test after every step):
//! * the ranges cover `[start_offset, end_offset)` exactly, ascending, without overlap, and no
//!   two neighbours are equal (same state, member, lock deadline and delivery count);
//! * the first range is never Acknowledged or Archived (the SPSO moves past those);
//! * an Available range has a delivery count below the limit (a release at the limit archives).
//!
//! Costs are in ranges, not records: splitting happens only where an operation's offsets begin
//! or end, and neighbours merge back as soon as they are equal.

use super::record::{
    ShareSnapshotValue, ShareUpdateValue, StateBatch, StateRecord, StateWrite,
    DELIVERY_STATE_ACKNOWLEDGED, DELIVERY_STATE_ACQUIRED, DELIVERY_STATE_ARCHIVED,
    DELIVERY_STATE_AVAILABLE,
};
use super::{AcknowledgeType, ShareConfig, ShareError, WriteSeq};
use std::collections::BTreeMap;
use std::rc::Rc;

#[cfg_attr(not(test), allow(dead_code))]
/// The delivery state of an in-flight record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordState {
    /// May be acquired.
    Available,
    /// Locked by one member until its deadline.
    Acquired,
    /// Processed (terminal).
    Acknowledged,
    /// Given up on: rejected, a gap, out of deliveries, or below the log start (terminal).
    Archived,
}

/// Records acquired for a member in one delivery (ShareFetch's AcquiredRecords).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcquiredRecords {
    /// First offset.
    pub first_offset: i64,
    /// Last offset (inclusive).
    pub last_offset: i64,
    /// Which delivery this is for these records (1 the first time).
    pub delivery_count: i16,
}

/// One acknowledgement batch of a ShareAcknowledge (or ShareFetch) request, as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckBatch {
    /// First offset.
    pub first_offset: i64,
    /// Last offset (inclusive).
    pub last_offset: i64,
    /// One type for the whole range, or one per offset (0 gap, 1 accept, 2 release, 3 reject).
    pub acknowledge_types: Vec<i8>,
}

#[cfg_attr(not(test), allow(dead_code))]
/// One range of the in-flight window, for describing and testing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlightRange {
    /// First offset.
    pub first_offset: i64,
    /// Last offset (inclusive).
    pub last_offset: i64,
    /// State of every offset in the range.
    pub state: RecordState,
    /// Deliveries so far.
    pub delivery_count: u16,
    /// The member holding the lock (Acquired only).
    pub member_id: Option<Rc<str>>,
    /// When the lock expires (Acquired only).
    pub lock_deadline_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Available,
    Acquired { member: Rc<str>, deadline_ms: i64 },
    Acknowledged,
    Archived,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Run {
    last: i64,
    state: State,
    delivery_count: u16,
}

/// The delivery state of one (share group, topic-partition). See the module docs.
#[derive(Debug)]
pub struct SharePartition {
    config: ShareConfig,
    /// SPSO: every offset below is done.
    start_offset: i64,
    /// One past the last in-flight offset (Kafka's SPEO + 1).
    end_offset: i64,
    /// First offset -> range; covers `[start_offset, end_offset)`.
    runs: BTreeMap<i64, Run>,
    leader_epoch: i32,
    state_epoch: i32,
    /// Epoch of the last snapshot written or recovered; -1 before the first.
    snapshot_epoch: i32,
    updates_since_snapshot: u32,
    snapshot_due: bool,
    /// Offsets whose persisted state changed since the last write: first -> last, disjoint.
    dirty: BTreeMap<i64, i64>,
    start_moved: bool,
    next_seq: u64,
}

impl SharePartition {
    /// A share partition that starts consuming at `start_offset` (resolved by the caller from
    /// `share.auto.offset.reset`). Its first write is a snapshot, as Kafka initializes state.
    pub fn new(config: ShareConfig, start_offset: i64, leader_epoch: i32) -> Self {
        assert!(start_offset >= 0, "start offset {start_offset} is negative");
        SharePartition {
            config,
            start_offset,
            end_offset: start_offset,
            runs: BTreeMap::new(),
            leader_epoch,
            state_epoch: 0,
            snapshot_epoch: -1,
            updates_since_snapshot: 0,
            snapshot_due: true,
            dirty: BTreeMap::new(),
            start_moved: false,
            next_seq: 1,
        }
    }

    /// Rebuilds a share partition from its durable records: the last snapshot, then the updates
    /// written after it, in order. Locks are not persisted, so nothing is Acquired; records that
    /// were are Available with the delivery count of their last persisted release.
    pub fn recover(
        config: ShareConfig,
        leader_epoch: i32,
        snapshot: &ShareSnapshotValue,
        updates: &[ShareUpdateValue],
    ) -> Result<Self, ShareError> {
        if snapshot.start_offset < 0 {
            return Err(invalid_state("snapshot start offset is negative"));
        }
        let mut p = SharePartition::new(config, snapshot.start_offset, leader_epoch);
        p.snapshot_due = false;
        p.state_epoch = snapshot.state_epoch;
        p.snapshot_epoch = snapshot.snapshot_epoch;
        p.updates_since_snapshot = u32::try_from(updates.len()).unwrap_or(u32::MAX);
        p.overlay(&snapshot.state_batches)?;
        for u in updates {
            if u.start_offset >= 0 {
                if u.start_offset < p.start_offset {
                    return Err(invalid_state("an update moves the start offset backwards"));
                }
                p.log_start_advanced(u.start_offset);
            }
            p.overlay(&u.state_batches)?;
        }
        p.start_moved = false;
        p.archive_exhausted();
        p.merge_between(p.start_offset, p.end_offset - 1);
        p.advance_start();
        Ok(p)
    }

    #[cfg_attr(not(test), allow(dead_code))]
    /// SPSO: the first offset not yet done.
    pub fn start_offset(&self) -> i64 {
        self.start_offset
    }

    #[cfg_attr(not(test), allow(dead_code))]
    /// One past the last in-flight offset (Kafka's SPEO + 1).
    pub fn end_offset(&self) -> i64 {
        self.end_offset
    }

    /// Offsets in the window, whatever their state (what `partition_max_record_locks` bounds).
    pub fn in_flight_records(&self) -> u64 {
        (self.end_offset - self.start_offset) as u64
    }

    #[cfg_attr(not(test), allow(dead_code))]
    /// Offsets in the window that are done (Acknowledged or Archived): KIP-1226's
    /// DeliveryCompleteCount, from which the share-partition lag is computed.
    pub fn delivery_complete_count(&self) -> u64 {
        self.runs
            .iter()
            .filter(|(_, r)| matches!(r.state, State::Acknowledged | State::Archived))
            .map(|(first, r)| (r.last - first + 1) as u64)
            .sum()
    }

    /// The state epoch (bumped by [`SharePartition::reset_start_offset`]).
    pub fn state_epoch(&self) -> i32 {
        self.state_epoch
    }

    /// Where the next log read for this share partition starts: the lowest Available offset,
    /// or the end of the window if none is.
    pub fn next_fetch_offset(&self) -> i64 {
        self.runs
            .iter()
            .find(|(_, r)| r.state == State::Available)
            .map_or(self.end_offset, |(first, _)| *first)
    }

    /// Whether an acquisition could return anything: a record is Available, or the window has
    /// room for new ones.
    pub fn can_acquire(&self) -> bool {
        self.next_fetch_offset() < self.end_offset
            || self.in_flight_records() < u64::from(self.config.partition_max_record_locks)
    }

    #[cfg_attr(not(test), allow(dead_code))]
    /// The in-flight ranges, ascending.
    pub fn ranges(&self) -> impl Iterator<Item = InFlightRange> + '_ {
        self.runs.iter().map(|(first, r)| {
            let (state, member_id, lock_deadline_ms) = match &r.state {
                State::Available => (RecordState::Available, None, None),
                State::Acquired {
                    member,
                    deadline_ms,
                } => (
                    RecordState::Acquired,
                    Some(member.clone()),
                    Some(*deadline_ms),
                ),
                State::Acknowledged => (RecordState::Acknowledged, None, None),
                State::Archived => (RecordState::Archived, None, None),
            };
            InFlightRange {
                first_offset: *first,
                last_offset: r.last,
                state,
                delivery_count: r.delivery_count,
                member_id,
                lock_deadline_ms,
            }
        })
    }

    /// The earliest lock deadline, for the expiry timer.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.runs
            .values()
            .filter_map(|r| match r.state {
                State::Acquired { deadline_ms, .. } => Some(deadline_ms),
                _ => None,
            })
            .min()
    }

    /// Acquires records for `member_id` from a log read at `fetch_offset` (normally
    /// [`SharePartition::next_fetch_offset`]): `batches` are the (first, last) offsets of the
    /// record batches it returned, ascending, the first holding `fetch_offset` or after it.
    /// Offsets missing inside a batch or between batches count as records (as in Kafka: the
    /// consumer acknowledges them as GAP); offsets from `fetch_offset` to the first batch are
    /// not in the log (compacted or deleted) and are archived. Available offsets in the window
    /// and new offsets past it are locked until `now_ms` + the lock duration and their delivery
    /// count goes up by one; anything else is skipped. Locks due at `now_ms` expire first. A
    /// read from past the window's end (the window was reset meanwhile) acquires nothing.
    ///
    /// `max_records` is a soft limit, as in Kafka: the batch holding the record that reaches
    /// it is taken whole. New records are taken only while the window is below
    /// `partition_max_record_locks` (with the same rounding up to a whole batch).
    pub fn acquire(
        &mut self,
        member_id: &str,
        fetch_offset: i64,
        batches: &[(i64, i64)],
        max_records: u32,
        now_ms: i64,
    ) -> Vec<AcquiredRecords> {
        check_log_batches(fetch_offset, batches);
        self.expire(now_ms);
        let (Some(&(first, _)), Some(&(_, hi))) = (batches.first(), batches.last()) else {
            return Vec::new();
        };
        if max_records == 0 || fetch_offset > self.end_offset {
            return Vec::new();
        }
        let read_from = fetch_offset.max(self.start_offset);
        if first > read_from && read_from < self.end_offset {
            self.archive_missing(read_from, (first - 1).min(self.end_offset - 1));
        }
        let lo = first.max(self.start_offset);
        if hi < lo {
            self.advance_start();
            return Vec::new();
        }
        let lock = State::Acquired {
            member: Rc::from(member_id),
            deadline_ms: now_ms.saturating_add(self.config.record_lock_duration_ms),
        };
        let mut out = Vec::new();
        let budget = i64::from(max_records);
        let (mut taken, mut stop) = (0, None);
        if lo < self.end_offset {
            let window_hi = hi.min(self.end_offset - 1);
            (taken, stop) =
                self.acquire_in_window(&lock, batches, (lo, window_hi), budget, &mut out);
        }
        if hi >= self.end_offset {
            let from = lo.max(self.end_offset);
            let budget_last = match stop {
                Some(stop) => stop,
                None => budget_end(batches, from, hi, budget - taken),
            };
            self.acquire_new(&lock, batches, (from, hi.min(budget_last)), &mut out);
        }
        self.advance_start();
        out
    }

    /// Applies `member_id`'s acknowledgements for this partition, all or nothing (as Kafka
    /// rolls a partition's acknowledgement back on the first failure). Offsets below the SPSO
    /// are skipped (they are done already); every other offset must be Acquired by the member
    /// under a lock that has not expired at `now_ms`. Returns the write to wait for before
    /// answering.
    pub fn acknowledge(
        &mut self,
        member_id: &str,
        batches: &[AckBatch],
        now_ms: i64,
    ) -> Result<WriteSeq, ShareError> {
        check_ack_shape(batches)?;
        for b in batches {
            self.check_ack_locks(member_id, b, now_ms)?;
        }
        let mut changed = false;
        for b in batches {
            changed |= self.apply_ack(b, now_ms);
        }
        self.advance_start();
        Ok(self.seq_covering(changed))
    }

    /// Releases every lock due at `now_ms` (deadline <= now); returns how many records.
    pub fn expire(&mut self, now_ms: i64) -> u64 {
        self.release_where(|_, deadline_ms| deadline_ms <= now_ms)
    }

    /// Releases every record `member_id` holds (it left the group or its session closed);
    /// returns how many.
    pub fn release_member(&mut self, member_id: &str) -> u64 {
        self.release_where(|member, _| member == member_id)
    }

    /// The log start moved to `offset` (retention, DeleteRecords): everything below is gone,
    /// whatever its state, and the SPSO moves up to it.
    pub fn log_start_advanced(&mut self, offset: i64) {
        if offset <= self.start_offset {
            return;
        }
        if offset >= self.end_offset {
            self.runs.clear();
            self.end_offset = offset;
        } else {
            self.split_at(offset);
            self.runs = self.runs.split_off(&offset);
        }
        self.start_offset = offset;
        self.start_moved = true;
        self.advance_start();
    }

    #[cfg_attr(not(test), allow(dead_code))]
    /// AlterShareGroupOffsets: forgets every in-flight state and starts again at `offset`, with
    /// a new state epoch and a snapshot as the next write. Refused while records are acquired.
    pub fn reset_start_offset(&mut self, offset: i64) -> Result<WriteSeq, ShareError> {
        if offset < 0 {
            return Err(ShareError::InvalidRequest {
                reason: "start offset is negative",
            });
        }
        let acquired: u64 = self
            .runs
            .iter()
            .filter(|(_, r)| matches!(r.state, State::Acquired { .. }))
            .map(|(first, r)| (r.last - first + 1) as u64)
            .sum();
        if acquired > 0 {
            return Err(ShareError::RecordsAcquired { acquired });
        }
        self.runs.clear();
        self.start_offset = offset;
        self.end_offset = offset;
        self.state_epoch += 1;
        self.snapshot_due = true;
        self.dirty.clear();
        self.start_moved = false;
        Ok(WriteSeq(self.next_seq))
    }

    /// Whether [`SharePartition::take_write`] has something to write.
    pub fn write_pending(&self) -> bool {
        self.snapshot_due || self.start_moved || !self.dirty.is_empty()
    }

    /// The next record to make durable, if anything changed since the last one: an update with
    /// the changed ranges, or a full snapshot for a new or reset partition and after
    /// `snapshot_update_records_per_snapshot` updates. Acquired records are written as
    /// Available with the delivery count before their current delivery.
    pub fn take_write(&mut self, now_ms: i64) -> Option<StateWrite> {
        if !self.write_pending() {
            return None;
        }
        let seq = WriteSeq(self.next_seq);
        self.next_seq += 1;
        let snapshot = self.snapshot_due
            || self.updates_since_snapshot >= self.config.snapshot_update_records_per_snapshot;
        let record = if snapshot {
            self.snapshot_epoch += 1;
            self.updates_since_snapshot = 0;
            self.snapshot_due = false;
            StateRecord::Snapshot(ShareSnapshotValue {
                snapshot_epoch: self.snapshot_epoch,
                state_epoch: self.state_epoch,
                leader_epoch: self.leader_epoch,
                start_offset: self.start_offset,
                create_timestamp: now_ms,
                write_timestamp: now_ms,
                state_batches: self.persisted_batches(self.start_offset, self.end_offset - 1),
                unknown_tagged_fields: Vec::new(),
            })
        } else {
            self.updates_since_snapshot += 1;
            let dirty = std::mem::take(&mut self.dirty);
            let state_batches = dirty
                .into_iter()
                .flat_map(|(a, b)| self.persisted_batches(a.max(self.start_offset), b))
                .collect();
            StateRecord::Update(ShareUpdateValue {
                snapshot_epoch: self.snapshot_epoch,
                leader_epoch: self.leader_epoch,
                start_offset: self.start_offset,
                state_batches,
                unknown_tagged_fields: Vec::new(),
            })
        };
        self.dirty.clear();
        self.start_moved = false;
        Some(StateWrite { seq, record })
    }

    /// Locks Available offsets of `lo..=hi` (inside the window) up to `budget`, the batch
    /// holding the last one whole. Returns how many were locked and, if the budget was
    /// reached, the offset acquisition stops at (the end of that batch).
    fn acquire_in_window(
        &mut self,
        lock: &State,
        batches: &[(i64, i64)],
        (lo, hi): (i64, i64),
        budget: i64,
        out: &mut Vec<AcquiredRecords>,
    ) -> (i64, Option<i64>) {
        let (mut taken, mut stop) = (0, None);
        let mut offset = lo;
        while offset <= stop.map_or(hi, |s: i64| s.min(hi)) {
            let (piece_last, available) = {
                let (_, run) = self.run_at(offset);
                let limit = stop.map_or(hi, |s: i64| s.min(hi));
                (run.last.min(limit), run.state == State::Available)
            };
            if !available {
                offset = piece_last + 1;
                continue;
            }
            let mut last = piece_last;
            if stop.is_none() && piece_last - offset + 1 >= budget - taken {
                // The budget is reached inside this range: finish that record's batch.
                let reached = batch_end(batches, offset + (budget - taken) - 1);
                stop = Some(reached);
                last = last.min(reached);
            }
            let count = self.lock_range(offset, last, lock);
            push_acquired(out, offset, last, count);
            taken += last - offset + 1;
            offset = last + 1;
        }
        self.merge_between(lo, hi);
        (taken, stop)
    }

    /// Appends offsets `from..=hi` past the window as Acquired (delivery 1), as far as the
    /// record-lock limit allows (the batch reaching it whole). Offsets between the window's end
    /// and `from` are not in the log any more (compacted or deleted): they are archived.
    fn acquire_new(
        &mut self,
        lock: &State,
        batches: &[(i64, i64)],
        (from, hi): (i64, i64),
        out: &mut Vec<AcquiredRecords>,
    ) {
        let room = i64::from(self.config.partition_max_record_locks) - (from - self.start_offset);
        if room <= 0 || hi < from {
            return;
        }
        let last = budget_end(batches, from, hi, room).min(hi);
        let gap_first = self.end_offset;
        if from > gap_first {
            self.push_run(from - 1, State::Archived, 0);
        }
        self.push_run(last, lock.clone(), 1);
        push_acquired(out, from, last, 1);
        self.merge_between(gap_first, last);
    }

    /// Archives the Available offsets of `a..=b` (in the window): a log read showed they are
    /// not records any more.
    fn archive_missing(&mut self, a: i64, b: i64) {
        self.isolate(a, b);
        let mut changed = Vec::new();
        for (first, run) in self.runs.range_mut(a..=b) {
            if run.state == State::Available {
                run.state = State::Archived;
                changed.push((*first, run.last));
            }
        }
        for (first, last) in changed {
            self.mark_dirty(first, last);
        }
        self.merge_between(a, b);
    }

    /// Checks that every offset of `batch` at or above the SPSO is held by `member_id`.
    fn check_ack_locks(
        &self,
        member_id: &str,
        batch: &AckBatch,
        now_ms: i64,
    ) -> Result<(), ShareError> {
        let lo = batch.first_offset.max(self.start_offset);
        if batch.last_offset < lo {
            return Ok(());
        }
        if batch.last_offset >= self.end_offset {
            return Err(ShareError::InvalidRequest {
                reason: "offsets past the in-flight records",
            });
        }
        let from = self.run_at(lo).0;
        for (first, run) in self.runs.range(from..=batch.last_offset) {
            let reason = match &run.state {
                State::Acquired {
                    member,
                    deadline_ms,
                } => match (&**member == member_id, *deadline_ms > now_ms) {
                    (true, true) => continue,
                    (false, _) => "acquired by another member",
                    (true, false) => "the acquisition lock expired",
                },
                State::Available => "not acquired",
                State::Acknowledged => "already acknowledged",
                State::Archived => "archived",
            };
            return Err(ShareError::InvalidRecordState {
                offset: (*first).max(lo),
                reason,
            });
        }
        Ok(())
    }

    /// Applies one checked acknowledgement batch; false if it was wholly below the SPSO.
    fn apply_ack(&mut self, batch: &AckBatch, now_ms: i64) -> bool {
        let lo = batch.first_offset.max(self.start_offset);
        if batch.last_offset < lo {
            return false;
        }
        let types = &batch.acknowledge_types;
        if types.len() == 1 {
            self.settle(lo, batch.last_offset, types[0], now_ms);
        } else {
            // One type per offset: settle each run of equal types at once.
            let mut i = (lo - batch.first_offset) as usize;
            while i < types.len() {
                let j = i + types[i..].iter().take_while(|t| **t == types[i]).count() - 1;
                let first = batch.first_offset + i as i64;
                self.settle(first, batch.first_offset + j as i64, types[i], now_ms);
                i = j + 1;
            }
        }
        self.mark_dirty(lo, batch.last_offset);
        true
    }

    /// Moves the (acquired) offsets `a..=b` to where `ack_type` sends them.
    fn settle(&mut self, a: i64, b: i64, ack_type: i8, now_ms: i64) {
        let ack_type = AcknowledgeType::from_wire(ack_type).expect("types were checked");
        let limit = self.config.delivery_count_limit;
        let renewed = now_ms.saturating_add(self.config.record_lock_duration_ms);
        self.isolate(a, b);
        for (_, run) in self.runs.range_mut(a..=b) {
            run.state = match (ack_type, &run.state) {
                (AcknowledgeType::Accept, _) => State::Acknowledged,
                (AcknowledgeType::Release, _) => released(run.delivery_count, limit),
                (AcknowledgeType::Reject | AcknowledgeType::Gap, _) => State::Archived,
                (AcknowledgeType::Renew, State::Acquired { member, .. }) => State::Acquired {
                    member: member.clone(),
                    deadline_ms: renewed,
                },
                (AcknowledgeType::Renew, other) => unreachable!("checked acquired: {other:?}"),
            };
        }
        self.merge_between(a, b);
    }

    /// Releases the Acquired ranges `release(member, deadline_ms)` picks; returns how many
    /// records.
    fn release_where(&mut self, release: impl Fn(&str, i64) -> bool) -> u64 {
        let limit = self.config.delivery_count_limit;
        let mut changed = Vec::new();
        for (first, run) in self.runs.iter_mut() {
            let State::Acquired {
                member,
                deadline_ms,
            } = &run.state
            else {
                continue;
            };
            if release(member, *deadline_ms) {
                run.state = released(run.delivery_count, limit);
                changed.push((*first, run.last));
            }
        }
        if changed.is_empty() {
            return 0;
        }
        for (a, b) in &changed {
            self.mark_dirty(*a, *b);
        }
        self.merge_between(self.start_offset, self.end_offset - 1);
        self.advance_start();
        changed.iter().map(|(a, b)| (b - a + 1) as u64).sum()
    }

    /// Applies persisted state batches over the current state (later batches win).
    fn overlay(&mut self, batches: &[StateBatch]) -> Result<(), ShareError> {
        for s in batches {
            if s.first_offset < 0 || s.first_offset > s.last_offset || s.delivery_count < 0 {
                return Err(invalid_state(
                    "a state batch has bad offsets or delivery count",
                ));
            }
            let state = match s.delivery_state {
                DELIVERY_STATE_AVAILABLE | DELIVERY_STATE_ACQUIRED => State::Available,
                DELIVERY_STATE_ACKNOWLEDGED => State::Acknowledged,
                DELIVERY_STATE_ARCHIVED => State::Archived,
                _ => return Err(invalid_state("unknown delivery state")),
            };
            let a = s.first_offset.max(self.start_offset);
            if s.last_offset < a {
                continue;
            }
            if s.last_offset >= self.end_offset {
                // Offsets never written are records not yet delivered: Available, count 0.
                self.push_run(s.last_offset, State::Available, 0);
            }
            self.isolate(a, s.last_offset);
            let inner: Vec<i64> = self
                .runs
                .range(a..=s.last_offset)
                .map(|(k, _)| *k)
                .collect();
            for k in inner {
                self.runs.remove(&k);
            }
            let delivery_count = s.delivery_count as u16;
            let run = Run {
                last: s.last_offset,
                state,
                delivery_count,
            };
            self.runs.insert(a, run);
        }
        Ok(())
    }

    /// Archives Available records at or over the delivery limit (a lowered limit, or state
    /// written under another configuration).
    fn archive_exhausted(&mut self) {
        let limit = self.config.delivery_count_limit;
        let mut changed = Vec::new();
        for (first, run) in self.runs.iter_mut() {
            if run.state == State::Available && run.delivery_count >= limit {
                run.state = State::Archived;
                changed.push((*first, run.last));
            }
        }
        for (a, b) in changed {
            self.mark_dirty(a, b);
        }
    }

    /// The persisted form of `a..=b`, coalesced.
    fn persisted_batches(&self, a: i64, b: i64) -> Vec<StateBatch> {
        let mut out: Vec<StateBatch> = Vec::new();
        if b < a {
            return out;
        }
        let from = self.run_at(a).0;
        for (first, run) in self.runs.range(from..=b) {
            let (delivery_state, count) = match run.state {
                State::Available => (DELIVERY_STATE_AVAILABLE, run.delivery_count),
                // Not yet delivered as far as a restart is concerned.
                State::Acquired { .. } => (DELIVERY_STATE_AVAILABLE, run.delivery_count - 1),
                State::Acknowledged => (DELIVERY_STATE_ACKNOWLEDGED, run.delivery_count),
                State::Archived => (DELIVERY_STATE_ARCHIVED, run.delivery_count),
            };
            let batch = StateBatch {
                first_offset: (*first).max(a),
                last_offset: run.last.min(b),
                delivery_state,
                delivery_count: i16::try_from(count).expect("delivery counts are at most 10"),
            };
            match out.last_mut() {
                Some(prev)
                    if prev.delivery_state == delivery_state
                        && prev.delivery_count == batch.delivery_count =>
                {
                    prev.last_offset = batch.last_offset;
                }
                _ => out.push(batch),
            }
        }
        out
    }

    /// The write that will carry a change just made (or, with none, the last one taken).
    fn seq_covering(&self, changed: bool) -> WriteSeq {
        WriteSeq(if changed {
            self.next_seq
        } else {
            self.next_seq - 1
        })
    }

    /// Locks `a..=b`, which lies inside one Available range; returns the new delivery count.
    fn lock_range(&mut self, a: i64, b: i64, lock: &State) -> u16 {
        self.isolate(a, b);
        let run = self.runs.get_mut(&a).expect("isolated");
        assert!(
            run.last == b && run.state == State::Available,
            "lock_range spans one range"
        );
        assert!(run.delivery_count < self.config.delivery_count_limit);
        run.state = lock.clone();
        run.delivery_count += 1;
        run.delivery_count
    }

    /// Appends a range ending at `last` right after the window, which grows to cover it.
    fn push_run(&mut self, last: i64, state: State, delivery_count: u16) {
        assert!(last >= self.end_offset, "push_run extends the window");
        let run = Run {
            last,
            state,
            delivery_count,
        };
        self.runs.insert(self.end_offset, run);
        self.end_offset = last + 1;
    }

    /// The range holding `offset`, which must be in the window.
    fn run_at(&self, offset: i64) -> (i64, &Run) {
        let (first, run) = self
            .runs
            .range(..=offset)
            .next_back()
            .expect("the ranges cover the window");
        assert!(run.last >= offset, "offset {offset} is in the window");
        (*first, run)
    }

    /// Makes a range start at `offset` (a no-op at the window's edges or a range boundary).
    fn split_at(&mut self, offset: i64) {
        if offset <= self.start_offset || offset >= self.end_offset {
            return;
        }
        let (first, tail) = {
            let (first, run) = self.run_at(offset);
            (first, run.clone())
        };
        if first == offset {
            return;
        }
        self.runs.get_mut(&first).expect("found").last = offset - 1;
        self.runs.insert(offset, tail);
    }

    /// Makes `a..=b` a whole number of ranges.
    fn isolate(&mut self, a: i64, b: i64) {
        self.split_at(a);
        self.split_at(b + 1);
    }

    /// Merges equal neighbours among the ranges touching `a - 1 ..= b + 1`.
    fn merge_between(&mut self, a: i64, b: i64) {
        let Some((&at_a, _)) = self.runs.range(..=a).next_back() else {
            return;
        };
        let mut cur = self
            .runs
            .range(..at_a)
            .next_back()
            .map_or(at_a, |(k, _)| *k);
        loop {
            let next = self.runs[&cur].last + 1;
            if next >= self.end_offset || next > b.saturating_add(1) {
                return;
            }
            let equal = {
                let (r, n) = (&self.runs[&cur], &self.runs[&next]);
                r.state == n.state && r.delivery_count == n.delivery_count
            };
            if equal {
                let n = self.runs.remove(&next).expect("next exists");
                self.runs.get_mut(&cur).expect("cur exists").last = n.last;
            } else {
                cur = next;
            }
        }
    }

    /// Moves the SPSO past leading Acknowledged/Archived ranges, dropping their state.
    fn advance_start(&mut self) {
        while let Some(entry) = self.runs.first_entry() {
            if !matches!(entry.get().state, State::Acknowledged | State::Archived) {
                break;
            }
            self.start_offset = entry.remove().last + 1;
            self.start_moved = true;
        }
        if self.runs.is_empty() && self.start_offset != self.end_offset {
            // Defensive: an empty window starts where it ends.
            self.start_offset = self.end_offset;
        }
    }

    /// Records that the persisted state of `a..=b` changed.
    fn mark_dirty(&mut self, a: i64, b: i64) {
        let (mut lo, mut hi) = (a, b);
        let touching: Vec<i64> = self
            .dirty
            .range(..=b.saturating_add(1))
            .rev()
            .take_while(|(_, last)| **last >= a - 1)
            .map(|(first, _)| *first)
            .collect();
        for first in touching {
            let last = self.dirty.remove(&first).expect("listed");
            lo = lo.min(first);
            hi = hi.max(last);
        }
        self.dirty.insert(lo, hi);
    }
}

/// Where a released record goes: Available for another delivery, or Archived at the limit.
fn released(delivery_count: u16, limit: u16) -> State {
    if delivery_count >= limit {
        State::Archived
    } else {
        State::Available
    }
}

fn invalid_state(reason: &'static str) -> ShareError {
    ShareError::InvalidState { reason }
}

/// The last offset of the batch holding `offset`, or `offset` itself if none does.
fn batch_end(batches: &[(i64, i64)], offset: i64) -> i64 {
    let i = batches.partition_point(|(first, _)| *first <= offset);
    match i.checked_sub(1).map(|i| batches[i]) {
        Some((_, last)) if last >= offset => last,
        _ => offset,
    }
}

/// Where taking `budget` offsets from `from` (at most to `hi`) stops: `hi` if they all fit,
/// else the end of the batch holding the last one taken (Kafka's soft limit).
fn budget_end(batches: &[(i64, i64)], from: i64, hi: i64, budget: i64) -> i64 {
    if hi - from < budget {
        hi
    } else {
        batch_end(batches, from + budget - 1)
    }
}

fn push_acquired(out: &mut Vec<AcquiredRecords>, first: i64, last: i64, count: u16) {
    let delivery_count = i16::try_from(count).expect("delivery counts are at most 10");
    match out.last_mut() {
        Some(prev) if prev.last_offset + 1 == first && prev.delivery_count == delivery_count => {
            prev.last_offset = last;
        }
        _ => out.push(AcquiredRecords {
            first_offset: first,
            last_offset: last,
            delivery_count,
        }),
    }
}

/// Batches from our own log read are ascending, well formed and end at or after the offset
/// read from; anything else is a bug.
fn check_log_batches(fetch_offset: i64, batches: &[(i64, i64)]) {
    if let Some((_, last)) = batches.first() {
        assert!(
            *last >= fetch_offset,
            "the first batch ends before the read offset"
        );
    }
    for (i, (first, last)) in batches.iter().enumerate() {
        assert!(first <= last && *first >= 0, "log batch {first}..={last}");
        assert!(i == 0 || batches[i - 1].1 < *first, "log batches ascend");
    }
}

/// Kafka's request checks: ranges ordered and disjoint, one type or one per offset, known
/// types.
fn check_ack_shape(batches: &[AckBatch]) -> Result<(), ShareError> {
    let invalid = |reason| Err(ShareError::InvalidRequest { reason });
    for (i, b) in batches.iter().enumerate() {
        if b.first_offset < 0 || b.first_offset > b.last_offset {
            return invalid("first offset is negative or after the last offset");
        }
        if i > 0 && b.first_offset <= batches[i - 1].last_offset {
            return invalid("acknowledgement batches overlap or are not ascending");
        }
        let offsets = (b.last_offset - b.first_offset) as u64 + 1;
        let n = b.acknowledge_types.len() as u64;
        if n != 1 && n != offsets {
            return invalid("acknowledge types are neither one nor one per offset");
        }
        if b.acknowledge_types
            .iter()
            .any(|t| AcknowledgeType::from_wire(*t).is_none())
        {
            return invalid("unknown acknowledge type");
        }
    }
    Ok(())
}
