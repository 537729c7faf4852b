//! Model-based test: random sequences of produce, acquire (several members), acknowledge with
//! every type (valid and not), lock expiry on virtual time, member release, log-start moves,
//! start-offset resets, writes made durable or lost, and crashes that rebuild the partition from
//! the durable records only, checked against a per-offset model.
//!
//! Every run is seeded: `MILLRACE_SHARE_SEED=S` replays one seed, `MILLRACE_SHARE_SEEDS=N` runs
//! seeds 0..N (default 200). A failure names its seed.

use super::partition::*;
use super::record::StateRecord;
use super::record::StateWrite;
use super::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const MEMBERS: [&str; 3] = ["m0", "m1", "m2"];
const LOCK_MS: i64 = 1_000;
const BATCH_RECORDS_MAX: i64 = 6;
const STEPS: usize = 400;

/// What the model knows of one offset.
#[derive(Debug, Clone, Default)]
struct Rec {
    /// Deliveries so far, as the partition in memory counts them.
    count: u16,
    /// The member holding it and its lock deadline.
    holder: Option<(usize, i64)>,
    /// Acknowledged or archived (or gone below the start offset).
    done: bool,
    /// An ACCEPT, REJECT or GAP of it was answered: it must never be delivered again.
    answered: bool,
}

/// An acknowledgement waiting for its write to be durable.
struct Pending {
    seq: WriteSeq,
    offsets: Vec<i64>,
    generation: u32,
}

struct World {
    rng: SmallRng,
    config: ShareConfig,
    p: SharePartition,
    now_ms: i64,
    /// The log's batches, ascending; offsets between them were compacted away.
    log: Vec<(i64, i64)>,
    log_start: i64,
    log_end: i64,
    recs: Vec<Rec>,
    /// Durable records, in write order, across incarnations.
    durable: Vec<StateRecord>,
    /// Taken but not yet durable.
    unsynced: Vec<StateWrite>,
    pending: Vec<Pending>,
    /// Bumped by a reset: answers from before it no longer bind the new state.
    generation: u32,
    /// A reset not yet durable: a crash may bring back the state from before it.
    reset_seq: Option<WriteSeq>,
    delivered: usize,
    answered: usize,
    crashes: usize,
}

#[test]
fn share_partition_matches_its_model_across_crashes() {
    let seeds: Vec<u64> = match std::env::var("MILLRACE_SHARE_SEED") {
        Ok(s) => vec![s.parse().expect("MILLRACE_SHARE_SEED is a number")],
        Err(_) => {
            let n = std::env::var("MILLRACE_SHARE_SEEDS").map_or(200, |s| {
                s.parse().expect("MILLRACE_SHARE_SEEDS is a number")
            });
            (0..n).collect()
        }
    };
    let (mut delivered, mut answered, mut crashes) = (0, 0, 0);
    for seed in seeds {
        match std::panic::catch_unwind(|| run(seed)) {
            Ok(w) => {
                delivered += w.delivered;
                answered += w.answered;
                crashes += w.crashes;
            }
            Err(e) => {
                let why = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("seed {seed} failed (replay: MILLRACE_SHARE_SEED={seed}): {why}");
            }
        }
    }
    // A run that never delivers, answers or crashes tests nothing.
    assert!(delivered > 0 && answered > 0 && crashes > 0);
}

fn run(seed: u64) -> World {
    let mut rng = SmallRng::seed_from_u64(seed);
    let config = ShareConfig {
        record_lock_duration_ms: LOCK_MS,
        delivery_count_limit: rng.random_range(2..=5),
        partition_max_record_locks: rng.random_range(8..=40),
        snapshot_update_records_per_snapshot: rng.random_range(1..=4),
    };
    let p = SharePartition::new(config.clone(), 0, 0);
    let mut w = World {
        rng,
        config,
        p,
        now_ms: 0,
        log: Vec::new(),
        log_start: 0,
        log_end: 0,
        recs: Vec::new(),
        durable: Vec::new(),
        unsynced: Vec::new(),
        pending: Vec::new(),
        generation: 0,
        reset_seq: None,
        delivered: 0,
        answered: 0,
        crashes: 0,
    };
    w.take_write();
    w.sync();
    for _ in 0..STEPS {
        w.step();
        w.check();
    }
    w.drain();
    w
}

impl World {
    fn step(&mut self) {
        match self.rng.random_range(0..100) {
            0..=14 => self.produce(),
            15..=39 => self.fetch(),
            40..=64 => self.acknowledge(),
            65..=72 => self.advance_time(),
            73..=76 => self.release_member(),
            77..=79 => self.move_log_start(),
            80 => self.reset(),
            81..=92 => {
                self.take_write();
                if self.rng.random_bool(0.7) {
                    self.sync();
                }
            }
            93..=96 => self.sync(),
            _ => self.crash(),
        }
    }

    fn produce(&mut self) {
        // Sometimes offsets before the batch were compacted away.
        let gap = if self.rng.random_bool(0.2) {
            self.rng.random_range(1..=3)
        } else {
            0
        };
        let first = self.log_end + gap;
        let last = first + self.rng.random_range(0..BATCH_RECORDS_MAX);
        self.log.push((first, last));
        self.log_end = last + 1;
        self.recs.resize(self.log_end as usize, Rec::default());
    }

    /// A log read from `from`: whole batches, the first one holding `from` or after it.
    fn read(&mut self, from: i64) -> Vec<(i64, i64)> {
        let from = from.max(self.log_start);
        let n = self.rng.random_range(1..=4);
        self.log
            .iter()
            .filter(|(_, last)| *last >= from)
            .take(n)
            .copied()
            .collect()
    }

    fn fetch(&mut self) {
        let member = self.rng.random_range(0..MEMBERS.len());
        let from = if self.rng.random_bool(0.8) {
            self.p.next_fetch_offset()
        } else {
            // Anywhere in the window (a read past its end would claim the offsets skipped
            // are missing from the log).
            self.rng
                .random_range(self.p.start_offset()..=self.p.end_offset())
        };
        let batches = self.read(from);
        let max_records = self.rng.random_range(1..=12);
        self.expire_model(self.now_ms);
        let expected = self.expected_acquisition(from, &batches, max_records);
        let start_before = self.p.start_offset();
        let before: Vec<_> = self.p.ranges().collect();
        let (end_before, now) = (self.p.end_offset(), self.now_ms);
        let got = self
            .p
            .acquire(MEMBERS[member], from, &batches, max_records, self.now_ms);
        let mut offsets = Vec::new();
        for a in &got {
            assert!(a.first_offset <= a.last_offset);
            for o in a.first_offset..=a.last_offset {
                offsets.push(o);
                let r = &self.recs[o as usize];
                assert!(
                    o >= start_before && o >= self.log_start,
                    "{o} is below the SPSO"
                );
                assert!(!r.answered, "{o} was answered done, yet delivered again");
                assert!(r.holder.is_none(), "{o} is held by another member");
                assert_eq!(
                    i64::from(a.delivery_count),
                    i64::from(r.count) + 1,
                    "count of {o}"
                );
                assert!(a.delivery_count as u16 <= self.config.delivery_count_limit);
            }
        }
        assert_eq!(
            offsets, expected.0,
            "acquired offsets for {batches:?} max {max_records} from {from} \
             window {start_before}..{end_before} at {now}: {before:?}"
        );
        for o in expected.1 {
            self.recs[o as usize].done = true; // archived: not in the log any more
        }
        let deadline = self.now_ms + LOCK_MS;
        for o in offsets {
            let r = &mut self.recs[o as usize];
            r.count += 1;
            r.holder = Some((member, deadline));
            self.delivered += 1;
        }
        self.check_below_start();
    }

    /// The offsets an acquisition must return, and the offsets it archives as missing.
    fn expected_acquisition(
        &self,
        from: i64,
        batches: &[(i64, i64)],
        max: u32,
    ) -> (Vec<i64>, Vec<i64>) {
        let end = self.p.end_offset();
        // Where the SPSO is once the locks due now have expired (maybe archiving some).
        let start = (self.p.start_offset()..end)
            .find(|o| !self.recs[*o as usize].done)
            .unwrap_or(end);
        let (Some(first), Some(last)) = (batches.first(), batches.last()) else {
            return (Vec::new(), Vec::new());
        };
        // Available offsets the read skipped are not in the log: archived.
        let mut missing: Vec<i64> = (from.max(start)..first.0.min(end))
            .filter(|o| !self.recs[*o as usize].done && self.recs[*o as usize].holder.is_none())
            .collect();
        let (lo, hi) = (first.0.max(start), last.1);
        let mut out = Vec::new();
        let mut stop: Option<i64> = None;
        // Takes `o`; the record reaching `max` ends the acquisition with its batch.
        let take = |o: i64, out: &mut Vec<i64>, stop: &mut Option<i64>| {
            out.push(o);
            if stop.is_none() && out.len() == max as usize {
                *stop = Some(batch_end(batches, o));
            }
        };
        for o in lo..=hi.min(end - 1) {
            let r = &self.recs[o as usize];
            if stop.is_some_and(|s| o > s) {
                break;
            }
            if r.holder.is_none() && !r.done {
                take(o, &mut out, &mut stop);
            }
        }
        let from = lo.max(end);
        let room = i64::from(self.config.partition_max_record_locks) - (from - start);
        if hi < from || room <= 0 || stop.is_some_and(|s| s < from) {
            return (out, missing);
        }
        let lock_stop = if hi - from < room {
            hi
        } else {
            batch_end(batches, from + room - 1)
        };
        for o in from..=hi.min(lock_stop) {
            if stop.is_some_and(|s| o > s) {
                break;
            }
            take(o, &mut out, &mut stop);
        }
        missing.extend(end..from);
        (out, missing)
    }

    fn acknowledge(&mut self) {
        let member = self.rng.random_range(0..MEMBERS.len());
        let batches = self.ack_batches(member);
        let expected = self.expected_ack(member, &batches);
        let start = self.p.start_offset();
        let got = self.p.acknowledge(MEMBERS[member], &batches, self.now_ms);
        assert_eq!(
            got.as_ref().err().map(ShareError::code),
            expected,
            "{batches:?}"
        );
        let Ok(seq) = got else {
            return;
        };
        let mut terminal = Vec::new();
        let limit = self.config.delivery_count_limit;
        for b in &batches {
            for o in b.first_offset.max(start)..=b.last_offset {
                let t = b.acknowledge_types[if b.acknowledge_types.len() == 1 {
                    0
                } else {
                    (o - b.first_offset) as usize
                }];
                let r = &mut self.recs[o as usize];
                r.holder = None;
                if t == 2 {
                    r.done = r.count >= limit;
                } else {
                    r.done = true;
                    terminal.push(o);
                }
            }
        }
        self.pending.push(Pending {
            seq,
            offsets: terminal,
            generation: self.generation,
        });
        self.check_below_start();
    }

    /// Acknowledgements around what the member holds, with every type, sometimes malformed.
    fn ack_batches(&mut self, member: usize) -> Vec<AckBatch> {
        let held: Vec<i64> = (self.p.start_offset()..self.p.end_offset())
            .filter(|o| {
                self.recs[*o as usize]
                    .holder
                    .is_some_and(|(m, _)| m == member)
            })
            .collect();
        let mut batches = Vec::new();
        let mut next = 0i64.max(self.p.start_offset() - 3);
        for _ in 0..self.rng.random_range(1..=3) {
            let first = match held.iter().find(|o| **o >= next) {
                Some(o) if self.rng.random_bool(0.85) => *o,
                _ => next + self.rng.random_range(0..4),
            };
            let last = first + self.rng.random_range(0..4);
            let n = (last - first + 1) as usize;
            let types: Vec<i8> = if self.rng.random_bool(0.5) {
                vec![self.rng.random_range(0..4)]
            } else {
                (0..n).map(|_| self.rng.random_range(0..4)).collect()
            };
            batches.push(AckBatch {
                first_offset: first,
                last_offset: last,
                acknowledge_types: types,
            });
            next = last + 1;
        }
        if self.rng.random_bool(0.05) {
            self.malform(&mut batches);
        }
        batches
    }

    fn malform(&mut self, batches: &mut [AckBatch]) {
        let b = &mut batches[0];
        match self.rng.random_range(0..4) {
            0 => std::mem::swap(&mut b.first_offset, &mut b.last_offset),
            1 => b.acknowledge_types.push(1),
            2 => b.acknowledge_types[0] = 7,
            _ => b.acknowledge_types.clear(),
        }
    }

    /// The error code the model expects for an acknowledgement, None for success.
    fn expected_ack(&self, member: usize, batches: &[AckBatch]) -> Option<i16> {
        for (i, b) in batches.iter().enumerate() {
            let n = (b.last_offset - b.first_offset + 1).max(0) as usize;
            let shape_ok = b.first_offset >= 0
                && b.first_offset <= b.last_offset
                && (i == 0 || batches[i - 1].last_offset < b.first_offset)
                && (b.acknowledge_types.len() == 1 || b.acknowledge_types.len() == n)
                && b.acknowledge_types.iter().all(|t| (0..4).contains(t));
            if !shape_ok {
                return Some(code::INVALID_REQUEST);
            }
        }
        let (start, end) = (self.p.start_offset(), self.p.end_offset());
        for b in batches {
            let lo = b.first_offset.max(start);
            if b.last_offset < lo {
                continue;
            }
            if b.last_offset >= end {
                return Some(code::INVALID_REQUEST);
            }
            let held = |o: i64| {
                self.recs[o as usize]
                    .holder
                    .is_some_and(|(m, d)| m == member && d > self.now_ms)
            };
            if !(lo..=b.last_offset).all(held) {
                return Some(code::INVALID_RECORD_STATE);
            }
        }
        None
    }

    fn advance_time(&mut self) {
        self.now_ms += self.rng.random_range(0..=LOCK_MS * 3 / 2);
        if self.rng.random_bool(0.3) {
            return; // the expiry timer has not fired yet: locks past their deadline linger
        }
        let released = self.p.expire(self.now_ms);
        assert_eq!(released, self.expire_model(self.now_ms));
        self.check_below_start();
    }

    /// Releases the model's locks due at `now_ms`; returns how many.
    fn expire_model(&mut self, now_ms: i64) -> u64 {
        self.release_model(|_, deadline| deadline <= now_ms)
    }

    fn release_model(&mut self, release: impl Fn(usize, i64) -> bool) -> u64 {
        let limit = self.config.delivery_count_limit;
        let mut n = 0;
        for r in &mut self.recs {
            if let Some((m, d)) = r.holder {
                if release(m, d) {
                    r.holder = None;
                    r.done = r.count >= limit;
                    n += 1;
                }
            }
        }
        n
    }

    fn release_member(&mut self) {
        let member = self.rng.random_range(0..MEMBERS.len());
        let released = self.p.release_member(MEMBERS[member]);
        assert_eq!(released, self.release_model(|m, _| m == member));
        self.check_below_start();
    }

    fn move_log_start(&mut self) {
        if self.log_start >= self.log_end {
            return;
        }
        self.log_start = self.rng.random_range(self.log_start + 1..=self.log_end);
        self.p.log_start_advanced(self.log_start);
        self.forget_below(self.log_start);
    }

    fn forget_below(&mut self, offset: i64) {
        for r in &mut self.recs[..offset as usize] {
            r.holder = None;
            r.done = true;
        }
    }

    fn reset(&mut self) {
        let offset = self.rng.random_range(self.log_start..=self.log_end);
        let any_held = self.recs.iter().any(|r| r.holder.is_some());
        let got = self.p.reset_start_offset(offset);
        assert_eq!(
            got.is_err(),
            any_held,
            "a reset is refused exactly while records are held"
        );
        let Ok(seq) = got else {
            return;
        };
        self.reset_seq = Some(seq);
        // The administrator asked for redelivery: earlier answers no longer bind.
        self.generation += 1;
        for (o, r) in self.recs.iter_mut().enumerate() {
            *r = Rec {
                done: (o as i64) < offset,
                ..Rec::default()
            };
        }
    }

    fn take_write(&mut self) {
        if let Some(w) = self.p.take_write(self.now_ms) {
            assert!(self.unsynced.last().is_none_or(|u| u.seq < w.seq));
            // Every write goes through the codec, as it would through the log.
            let bytes = w.record.encode_value();
            let back = StateRecord::decode_value(w.record.key_version(), &bytes).unwrap();
            assert_eq!(back, w.record);
            self.unsynced.push(w);
        }
        assert!(!self.p.write_pending());
    }

    /// Makes the taken writes durable and answers the acknowledgements they cover.
    fn sync(&mut self) {
        let Some(last) = self.unsynced.last().map(|w| w.seq) else {
            return;
        };
        self.durable
            .extend(self.unsynced.drain(..).map(|w| w.record));
        let (ready, waiting): (Vec<Pending>, Vec<Pending>) =
            self.pending.drain(..).partition(|p| p.seq <= last);
        self.pending = waiting;
        if self.reset_seq.is_some_and(|r| r <= last) {
            self.reset_seq = None;
        }
        for p in ready
            .into_iter()
            .filter(|p| p.generation == self.generation)
        {
            for o in p.offsets {
                self.recs[o as usize].answered = true;
                self.answered += 1;
            }
        }
    }

    /// kill -9: unsynced writes are lost, their acknowledgements never answered, locks gone.
    fn crash(&mut self) {
        if self.rng.random_bool(0.5) {
            self.take_write();
            self.sync();
        }
        self.unsynced.clear();
        self.pending.clear();
        let last = self
            .durable
            .iter()
            .rposition(|r| matches!(r, StateRecord::Snapshot(_)))
            .expect("the initial snapshot is durable");
        let StateRecord::Snapshot(snapshot) = &self.durable[last] else {
            unreachable!()
        };
        let updates: Vec<_> = self.durable[last + 1..]
            .iter()
            .map(|r| match r {
                StateRecord::Update(u) => u.clone(),
                StateRecord::Snapshot(_) => unreachable!(),
            })
            .collect();
        self.p = SharePartition::recover(self.config.clone(), 1, snapshot, &updates).unwrap();
        self.p.log_start_advanced(self.log_start);
        self.crashes += 1;
        // A lost reset brings back older state, with counts the model forgot.
        let counts_known = self.reset_seq.take().is_none();
        self.adopt_recovered(counts_known);
    }

    /// Checks the recovered state against what was answered, then takes it as the model.
    fn adopt_recovered(&mut self, counts_known: bool) {
        let (start, end) = (self.p.start_offset(), self.p.end_offset());
        let mut recs = vec![Rec::default(); self.recs.len()];
        for (o, r) in recs.iter_mut().enumerate().take(start as usize) {
            r.done = true;
            r.answered = self.recs[o].answered;
        }
        for range in self.p.ranges() {
            assert_ne!(
                range.state,
                RecordState::Acquired,
                "locks do not survive a crash"
            );
            for o in range.first_offset..=range.last_offset {
                let old = &self.recs[o as usize];
                let done = range.state != RecordState::Available;
                assert!(done || !old.answered, "{o} was answered done but came back");
                let lower = range.delivery_count <= old.count;
                assert!(lower || !counts_known, "{o}'s count went up");
                recs[o as usize] = Rec {
                    count: range.delivery_count,
                    holder: None,
                    done,
                    answered: old.answered,
                };
            }
        }
        for (o, old) in self.recs.iter().enumerate().skip(end as usize) {
            assert!(!old.answered, "{o} was answered done but came back");
        }
        self.recs = recs;
    }

    /// The SPSO moves past done offsets; below it everything is done in the model too.
    fn check_below_start(&mut self) {
        for r in &mut self.recs[..self.p.start_offset() as usize] {
            assert!(r.done, "the SPSO passed an offset that is not done");
            assert!(r.holder.is_none());
        }
    }

    /// The partition agrees with the model offset by offset, and its ranges are canonical.
    fn check(&self) {
        let (start, end) = (self.p.start_offset(), self.p.end_offset());
        let limit = self.config.delivery_count_limit;
        let window_max = i64::from(self.config.partition_max_record_locks) + BATCH_RECORDS_MAX;
        assert!(
            start <= end && end - start <= window_max,
            "window {start}..{end}"
        );
        assert!(start >= self.log_start);
        let mut expect_first = start;
        let mut prev: Option<InFlightRange> = None;
        for range in self.p.ranges() {
            assert_eq!(range.first_offset, expect_first, "ranges are contiguous");
            assert!(range.first_offset <= range.last_offset);
            assert!(range.delivery_count <= limit);
            if let Some(prev) = &prev {
                let same = prev.state == range.state
                    && prev.delivery_count == range.delivery_count
                    && prev.member_id == range.member_id
                    && prev.lock_deadline_ms == range.lock_deadline_ms;
                assert!(!same, "equal neighbours are merged: {prev:?} {range:?}");
            } else {
                let terminal = matches!(
                    range.state,
                    RecordState::Acknowledged | RecordState::Archived
                );
                assert!(!terminal, "the SPSO stops only at an unfinished offset");
            }
            if range.state == RecordState::Available {
                assert!(range.delivery_count < limit);
            }
            for o in range.first_offset..=range.last_offset {
                self.check_offset(o, &range);
            }
            expect_first = range.last_offset + 1;
            prev = Some(range);
        }
        assert_eq!(expect_first, end, "ranges cover the window");
        for r in &self.recs[end.max(0) as usize..] {
            assert!(r.holder.is_none() && !r.done, "past the window: new");
        }
    }

    fn check_offset(&self, o: i64, range: &InFlightRange) {
        let r = &self.recs[o as usize];
        assert_eq!(r.count, range.delivery_count, "count of {o}");
        let holder = range.member_id.as_ref().map(|m| {
            let m = MEMBERS.iter().position(|x| **x == **m).unwrap();
            (m, range.lock_deadline_ms.unwrap())
        });
        assert_eq!(r.holder, holder, "holder of {o}");
        let done = matches!(
            range.state,
            RecordState::Acknowledged | RecordState::Archived
        );
        assert_eq!(r.done, done, "done-ness of {o}");
        assert!(
            !r.answered || done,
            "{o} answered done but is {:?}",
            range.state
        );
    }

    /// Liveness: with every lock expired and a diligent member, every offset gets done.
    fn drain(&mut self) {
        for _ in 0..10_000 {
            if self.p.start_offset() >= self.log_end {
                return;
            }
            self.now_ms += LOCK_MS;
            self.p.expire(self.now_ms);
            self.expire_model(self.now_ms);
            let from = self.p.next_fetch_offset();
            let batches = self.read(from);
            let got = self.p.acquire("drain", from, &batches, 100, self.now_ms);
            let acks: Vec<AckBatch> = got
                .iter()
                .map(|a| AckBatch {
                    first_offset: a.first_offset,
                    last_offset: a.last_offset,
                    acknowledge_types: vec![1],
                })
                .collect();
            self.p.acknowledge("drain", &acks, self.now_ms).unwrap();
        }
        panic!(
            "offsets {}.. never got done (log end {}, log {:?}, ranges {:?})",
            self.p.start_offset(),
            self.log_end,
            self.log,
            self.p.ranges().collect::<Vec<_>>()
        );
    }
}

fn batch_end(batches: &[(i64, i64)], offset: i64) -> i64 {
    batches
        .iter()
        .find(|(first, last)| *first <= offset && offset <= *last)
        .map_or(offset, |(_, last)| *last)
}
