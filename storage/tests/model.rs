//! Model-based test of the partition log: seeded random sequences of append (plain and
//! idempotent, some with LogAppendTime, some under a new leader epoch), follower appends (the
//! leader's offsets and epochs, idempotent ones with sequence gaps the leader allowed, some at
//! a wrong offset), flush, reads at random offsets and sizes below the durable end or a bound
//! up to the log end, producer retries, time lookups, truncations (at batch boundaries, inside
//! batches, out of range; some interrupted at a random poll and followed by a power loss),
//! resets to an offset below, at or past the log end (some interrupted the same way),
//! disk-full periods, crashes with torn writes (sometimes with a damaged index file), and clean
//! restarts, on segments small enough to roll often. The model is the list of batches
//! appended, and how many of them a flush acknowledged.
//!
//! Invariants checked after every step:
//! * the durable end is the end of the last acknowledged batch;
//! * a read returns whole batches, the first holding the offset asked for, consecutive and
//!   byte-for-byte equal to the model, none starting at or above its bound, within
//!   `max_bytes` unless one batch is allowed over; from the files, nothing past the durable
//!   end;
//! * the leader-epoch entries are the model's (each epoch's first batch), and
//!   `last_offset_for_epoch` answers as Kafka's OffsetForLeaderEpoch does;
//! * a truncation ends the log at the first offset of the batch holding the offset asked for,
//!   and a crash at any point of one leaves the old log (its acknowledged part at least) or
//!   exactly the truncated one;
//! * a reset leaves the empty log at its offset (start, end and durable end; no epochs, no
//!   timestamps, the idempotent producer unknown again), and a crash at any point of one
//!   leaves the old log (its acknowledged part at least) or exactly the empty one;
//! * after a crash the log holds every acknowledged batch byte for byte, then possibly a
//!   prefix of the unacknowledged ones, offsets dense;
//! * a retried idempotent batch is answered with its original offsets and appends nothing,
//!   also when a follower append or a truncation set the producer's state.
//!
//! `MODEL_SEEDS=n` runs n seeds (default 300); `MODEL_SEED=s` runs one; `MODEL_TRACE=1` prints
//! each step. A failure names its seed.

mod common;

use common::*;
use futures_lite::future::block_on;
use millrace_storage::sim::SimDisk;
use millrace_storage::{LogConfig, StorageError};
use millrace_wire::epoch::LeaderEpoch;
use millrace_wire::records::{
    decode_records, set_base_offset, set_partition_leader_epoch, stamp_log_append_time, BatchHeader,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::future::Future;

const PRODUCER_ID: i64 = 77;

#[derive(Clone)]
struct Expected {
    /// As the producer sent it (for retries).
    sent: Vec<u8>,
    /// As the log must hold it.
    stored: Vec<u8>,
    base_offset: i64,
    next_offset: i64,
    /// (first, last) sequence for the idempotent producer's batches.
    sequences: Option<(i32, i32)>,
}

struct Harness {
    rng: SmallRng,
    disk: SimDisk,
    config: LogConfig,
    cache_bytes: usize,
    log: Option<Log>,
    batches: Vec<Expected>,
    acked: usize,
    now_ms: i64,
    epoch: i32,
    disk_full: bool,
}

#[test]
fn model_based_random_operations() {
    run_seeds("MODEL", "model test", 300, run);
}

fn run(seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let config = LogConfig {
        segment_bytes: rng.random_range(300..6000),
        segment_ms: rng.random_range(100..5000),
        index_interval_bytes: rng.random_range(1..800),
        fsync: rng.random_ratio(9, 10),
        prepare_ahead_bytes: [0, 512, 1024, 4096, 4 << 20][rng.random_range(0..5)],
        ..LogConfig::default()
    };
    let disk = SimDisk::new([512, 4096][rng.random_range(0..2)]);
    let cache_bytes = [0, 2000, 1 << 20][rng.random_range(0..3)];
    let log = open(&disk, &config, cache_bytes, 0);
    disk.set_yield(rng.random_bool(0.5));
    let mut h = Harness {
        rng,
        disk,
        config,
        cache_bytes,
        log: Some(log),
        batches: Vec::new(),
        acked: 0,
        now_ms: 0,
        epoch: 0,
        disk_full: false,
    };
    let steps = h.rng.random_range(40..160);
    for _ in 0..steps {
        h.now_ms += h.rng.random_range(0..40);
        let op = h.rng.random_range(0..124);
        if std::env::var_os("MODEL_TRACE").is_some() {
            let log = h.log();
            eprintln!(
                "op {op} durable {} end {} acked {} batches {}",
                log.durable_end(),
                log.log_end_offset(),
                h.acked,
                h.batches.len()
            );
        }
        match op {
            0..40 => h.append(),
            40..50 => h.flush(),
            50..55 => h.concurrent_append_and_flush(),
            55..75 => h.read(),
            75..80 => h.retry(),
            80..83 => h.time_lookup(),
            83..89 => h.crash(),
            89..92 => h.restart(),
            92..100 => h.toggle_disk_full(),
            100..105 => h.follower_append(),
            105..109 => h.truncate(),
            109..112 => h.crash_during_truncate(),
            112..115 => h.reset(),
            115..118 => h.crash_during_reset(),
            _ => h.dropped_flush(),
        }
        h.check_watermarks();
        h.check_epochs();
    }
    h.disk.set_disk_full(false);
    h.disk_full = false;
    h.flush();
    h.crash();
}

impl Harness {
    fn log(&self) -> &Log {
        self.log.as_ref().expect("log open")
    }

    fn next_sequence(&self) -> i32 {
        self.batches
            .iter()
            .rev()
            .find_map(|b| b.sequences)
            .map_or(0, |s| s.1 + 1)
    }

    fn append(&mut self) {
        let records = self.rng.random_range(1..6);
        let value_bytes = self.rng.random_range(0..250);
        let idempotent = self.rng.random_ratio(1, 3);
        let log_append_time = self.rng.random_ratio(1, 5);
        if self.rng.random_ratio(1, 20) {
            self.epoch += 1;
        }
        let seq = self.next_sequence();
        let sent = match idempotent {
            true => idempotent_batch(records, value_bytes, self.now_ms, PRODUCER_ID, 0, seq),
            false => batch(records, value_bytes, self.now_ms),
        };
        let end = self
            .batches
            .last()
            .map_or(self.log().log_start_offset(), |b| b.next_offset);
        let epoch = LeaderEpoch(self.epoch);
        let out = if self.rng.random_ratio(1, 2) {
            self.log()
                .append(bytes_mut(&sent), epoch, self.now_ms, log_append_time)
                .expect("append")
        } else {
            // As the produce handler appends: stamped in place, a slice of a larger request
            // buffer that the cache charges whole.
            let pad = self.rng.random_range(0..300);
            let request = [vec![0xaa; pad], sent.clone(), vec![0xbb; pad]].concat();
            let mut request = bytes_mut(&request);
            bytes::Buf::advance(&mut request, pad);
            let mut records = request.split_to(sent.len());
            let shared = millrace_storage::SharedBuffer::new(2 * pad + sent.len());
            let out = self
                .log()
                .append_in_place(
                    &mut records,
                    Some(&shared),
                    epoch,
                    self.now_ms,
                    log_append_time,
                )
                .expect("append");
            assert!(records.is_empty(), "appended records are taken");
            out
        };
        assert!(!out.duplicate);
        assert_eq!(
            (out.base_offset, out.last_offset),
            (end, end + records as i64 - 1)
        );
        let mut stored = sent.clone();
        set_base_offset(&mut stored, out.base_offset);
        set_partition_leader_epoch(&mut stored, self.epoch);
        if log_append_time {
            stamp_log_append_time(&mut stored, self.now_ms);
        }
        self.batches.push(Expected {
            sent,
            stored,
            base_offset: out.base_offset,
            next_offset: out.last_offset + 1,
            sequences: idempotent.then_some((seq, seq + records as i32 - 1)),
        });
    }

    fn flush(&mut self) {
        let pending = self.acked < self.batches.len();
        match block_on(self.log().flush()) {
            Ok(()) => self.acked = self.batches.len(),
            Err(e) => {
                assert!(
                    self.disk_full && pending && e.is_disk_full(),
                    "unexpected flush error {e}"
                );
            }
        }
    }

    /// A flush dropped after a few polls (each disk operation yields once when the disk
    /// yields), as when its caller goes away mid-round: the tails its round took to write are
    /// put back, and a later flush writes them (the final flush and crash check that).
    fn dropped_flush(&mut self) {
        let pending = self.acked < self.batches.len();
        let polls = self.rng.random_range(1..8);
        match poll_up_to(self.log().flush(), polls) {
            Some(Ok(())) => self.acked = self.batches.len(),
            Some(Err(e)) => assert!(
                self.disk_full && pending && e.is_disk_full(),
                "unexpected flush error {e}"
            ),
            // Dropped after its round committed (while writing indexes or the checkpoint),
            // the durable end has moved all the same.
            None => self.acked = self.acked_by_durable_end(),
        }
    }

    /// A flush racing with appends and a second flush: every append made before a flush call
    /// is durable when that call returns Ok.
    fn concurrent_append_and_flush(&mut self) {
        let before = self.acked;
        self.append();
        let first_target = self.batches.last().expect("appended").next_offset;
        let (a, b) = {
            let log = self.log.as_ref().expect("log open");
            let sent = batch(2, 40, self.now_ms);
            let epoch = LeaderEpoch(self.epoch);
            let now = self.now_ms;
            let late = async move {
                futures_lite::future::yield_now().await;
                let out = log
                    .append(bytes_mut(&sent), epoch, now, false)
                    .expect("append");
                (out, sent, log.flush().await)
            };
            block_on(futures_lite::future::zip(log.flush(), late))
        };
        let (out, sent, b) = b;
        let mut stored = sent.clone();
        set_base_offset(&mut stored, out.base_offset);
        set_partition_leader_epoch(&mut stored, self.epoch);
        let next_offset = out.last_offset + 1;
        let base_offset = out.base_offset;
        let sequences = None;
        self.batches.push(Expected {
            sent,
            stored,
            base_offset,
            next_offset,
            sequences,
        });
        let hw = self.log().durable_end();
        if a.is_ok() {
            assert!(
                hw >= first_target,
                "flush returned before its append was durable"
            );
        }
        if b.is_ok() {
            assert_eq!(
                hw, next_offset,
                "second flush returned before its append was durable"
            );
        }
        for e in [a, b].into_iter().filter_map(Result::err) {
            assert!(
                self.disk_full && e.is_disk_full(),
                "unexpected flush error {e}"
            );
        }
        self.acked = self
            .batches
            .iter()
            .take_while(|b| b.next_offset <= hw)
            .count();
        assert!(self.acked >= before, "the high watermark moved back");
    }

    fn durable_end(&self) -> i64 {
        self.batches[..self.acked]
            .last()
            .map_or(self.log().log_start_offset(), |b| b.next_offset)
    }

    fn check_watermarks(&self) {
        let log = self.log();
        assert_eq!(log.durable_end(), self.durable_end(), "high watermark");
        let end = self
            .batches
            .last()
            .map_or(log.log_start_offset(), |b| b.next_offset);
        assert_eq!(log.log_end_offset(), end, "log end offset");
        let max = self.batches[..self.acked]
            .iter()
            .map(|b| BatchHeader::parse(&b.stored).unwrap().max_timestamp)
            .max();
        assert_eq!(log.max_timestamp().map(|m| m.0), max, "max timestamp");
    }

    fn read(&mut self) {
        let start = self.log().log_start_offset();
        let durable_end = self.log().durable_end();
        let end = self.log().log_end_offset();
        // A consumer's bound (the high watermark: here the durable end) or a follower's (up
        // to the log end; above it counts as the log end).
        let bound = match self.rng.random_bool(0.7) {
            true => durable_end,
            false => self.rng.random_range(durable_end..=end + 2),
        };
        let offset = self.rng.random_range(start..=bound.min(end) + 2);
        let max_bytes = self.rng.random_range(1..3000);
        let min_one = self.rng.random_bool(0.7);
        let result = block_on(self.log().read(offset, max_bytes, min_one, bound));
        let bound = bound.min(end);
        if offset > bound {
            assert!(
                matches!(result, Err(StorageError::OffsetOutOfRange { .. })),
                "offset {offset} > bound {bound}"
            );
            return;
        }
        let result = result.expect("read");
        assert_eq!(result.durable_end, durable_end);
        let got = split_batches(&materialize(&result));
        if offset == bound {
            assert!(got.is_empty());
            return;
        }
        let first = self
            .batches
            .iter()
            .position(|b| b.next_offset > offset)
            .expect("offset below the log end");
        if got.is_empty() {
            assert_eq!(result.next_offset, offset, "an empty read's next offset");
            // Above the durable end only the batch cache serves, if it still holds the batch.
            assert!(
                (!min_one && self.batches[first].stored.len() > max_bytes) || offset >= durable_end,
                "empty read at {offset}"
            );
            return;
        }
        for (i, bytes) in got.iter().enumerate() {
            let expected = &self.batches[first + i];
            assert!(
                expected.base_offset < bound,
                "read past its bound {bound}: batch at {}",
                expected.base_offset
            );
            assert_eq!(
                bytes, &expected.stored,
                "batch at offset {} differs",
                expected.base_offset
            );
        }
        assert!(
            result.bytes <= max_bytes || (got.len() == 1 && min_one),
            "read over max_bytes"
        );
        assert_eq!(
            result.next_offset,
            self.batches[first + got.len() - 1].next_offset,
            "next offset after the read"
        );
    }

    /// Batches a leader wrote: its offsets (from the log end) and epochs stamped, an
    /// idempotent producer's sequences sometimes skipping ahead (the leader decided). Now and
    /// then one starts at a wrong offset, and the whole append must be refused.
    fn follower_append(&mut self) {
        if self.rng.random_ratio(1, 3) {
            self.epoch += 1;
        }
        let end = self.log().log_end_offset();
        let mut next = end;
        let mut sequence = self.next_sequence();
        let mut planned = Vec::new();
        let mut batches = Vec::new();
        let mut wrong = None;
        for _ in 0..self.rng.random_range(1..4) {
            let records = self.rng.random_range(1..5);
            let value_bytes = self.rng.random_range(0..200);
            let mut batch = match self.rng.random_ratio(1, 2) {
                true => {
                    sequence += self.rng.random_range(0..3);
                    let seq = sequence;
                    sequence += records as i32;
                    let b =
                        idempotent_batch(records, value_bytes, self.now_ms, PRODUCER_ID, 0, seq);
                    planned.push(Some((seq, seq + records as i32 - 1)));
                    b
                }
                false => {
                    planned.push(None);
                    batch(records, value_bytes, self.now_ms)
                }
            };
            let mut base = next;
            if wrong.is_none() && self.rng.random_ratio(1, 12) {
                base += [-1, 1, 3][self.rng.random_range(0..3)];
                wrong = Some((next, base));
            }
            set_base_offset(&mut batch, base);
            set_partition_leader_epoch(&mut batch, self.epoch);
            next = base + records as i64;
            batches.push(batch);
        }
        let bytes: Vec<u8> = batches.concat();
        let result = self
            .log()
            .append_as_follower(bytes_mut(&bytes), self.now_ms);
        if let Some((expected, received)) = wrong {
            match result {
                Err(StorageError::UnexpectedAppendOffset {
                    expected: e,
                    received: r,
                }) => assert_eq!((e, r), (expected, received)),
                other => panic!("follower append at {received} (end {end}): {other:?}"),
            }
            assert_eq!(
                self.log().log_end_offset(),
                end,
                "a refused append appended"
            );
            return;
        }
        let out = result.expect("follower append");
        assert_eq!((out.base_offset, out.last_offset + 1), (end, next));
        for (stored, sequences) in batches.into_iter().zip(planned) {
            let h = BatchHeader::parse(&stored).unwrap();
            self.batches.push(Expected {
                sent: stored.clone(),
                base_offset: h.base_offset,
                next_offset: h.next_offset(),
                stored,
                sequences,
            });
        }
    }

    /// Where a truncation to `offset` must end the log: the index of the first batch it
    /// removes and that batch's first offset (the log end when none goes).
    fn cut_for(&self, offset: i64) -> (usize, i64) {
        let keep = self
            .batches
            .iter()
            .position(|b| b.next_offset > offset)
            .unwrap_or(self.batches.len());
        let end = self.log().log_end_offset();
        (keep, self.batches.get(keep).map_or(end, |b| b.base_offset))
    }

    fn truncation_offset(&mut self) -> i64 {
        let (start, end) = (self.log().log_start_offset(), self.log().log_end_offset());
        match self.rng.random_range(0..10) {
            0..3 => self.rng.random_range(start..=end),
            _ if self.batches.is_empty() => end,
            _ => self.batches[self.rng.random_range(0..self.batches.len())].base_offset,
        }
    }

    fn truncate(&mut self) {
        let (start, end) = (self.log().log_start_offset(), self.log().log_end_offset());
        let offset = match self.rng.random_range(0..10) {
            0 => start - self.rng.random_range(1..3),
            1 => end + self.rng.random_range(1..3),
            _ => self.truncation_offset(),
        };
        let result = block_on(self.log().truncate_to(offset, self.now_ms));
        if offset < start || offset > end {
            assert!(
                matches!(result, Err(StorageError::TruncateOutOfRange { .. })),
                "truncate_to({offset}) outside [{start}, {end}]: {result:?}"
            );
            return;
        }
        let (keep, cut) = self.cut_for(offset);
        match result {
            Ok(new_end) => {
                assert_eq!(new_end, cut, "truncate_to({offset})");
                if keep < self.batches.len() {
                    // Everything below the cut was flushed first.
                    self.batches.truncate(keep);
                    self.acked = keep;
                }
            }
            Err(e) => {
                assert!(self.disk_full && e.is_disk_full(), "truncate error {e}");
                if self.log().log_end_offset() < end {
                    // Failed after its commit point: the log is closed, reopening completes it.
                    self.batches.truncate(keep);
                    self.acked = keep;
                    self.crash();
                } else {
                    self.acked = self.acked_by_durable_end();
                }
            }
        }
    }

    /// A truncation dropped after a random number of polls (every disk operation yields
    /// once), then a power loss: the log comes back whole (at least its acknowledged part) or
    /// truncated, nothing in between.
    fn crash_during_truncate(&mut self) {
        let end = self.log().log_end_offset();
        let offset = self.truncation_offset();
        let (keep, cut) = self.cut_for(offset);
        let polls = self.rng.random_range(1..60);
        self.disk.set_yield(true);
        let finished = poll_up_to(self.log().truncate_to(offset, self.now_ms), polls);
        self.disk.set_yield(false);
        if std::env::var_os("MODEL_TRACE").is_some() {
            let log = self.log();
            let (end, durable) = (log.log_end_offset(), log.durable_end());
            eprintln!(
                "  truncate_to({offset}): cut {cut}, {finished:?}, end {end} durable {durable}"
            );
        }
        match finished {
            Some(Ok(new_end)) => assert_eq!(new_end, cut),
            Some(Err(e)) => assert!(self.disk_full && e.is_disk_full(), "truncate error {e}"),
            None => {}
        }
        if self.log().log_end_offset() < end {
            self.batches.truncate(keep);
            self.acked = keep;
        } else {
            self.acked = self.acked_by_durable_end();
        }
        self.crash();
    }

    /// Where a reset goes: past the end, at it, below it, sometimes below the start.
    fn reset_offset(&mut self) -> i64 {
        let (start, end) = (self.log().log_start_offset(), self.log().log_end_offset());
        self.rng.random_range((start - 10).max(0)..=end + 20)
    }

    /// A reset with unflushed appends pending perhaps: they go with the rest.
    fn reset(&mut self) {
        let offset = self.reset_offset();
        let result = block_on(self.log().reset_to(offset, self.now_ms));
        let log = self.log();
        let ends = (log.log_start_offset(), log.log_end_offset());
        match result {
            Ok(()) => {
                assert_eq!(ends, (offset, offset), "reset_to({offset})");
                self.batches.clear();
                self.acked = 0;
            }
            Err(e) => {
                assert!(self.disk_full && e.is_disk_full(), "reset error {e}");
                if ends == (offset, offset) {
                    // Failed after its commit point: the log is closed, reopening completes
                    // it (or it never started, on a log already empty at the offset).
                    self.batches.clear();
                    self.acked = 0;
                    self.crash();
                }
            }
        }
    }

    /// A reset dropped after a random number of polls (every disk operation yields once),
    /// then a power loss: the log comes back whole (at least its acknowledged part) or empty
    /// at the offset, nothing in between.
    fn crash_during_reset(&mut self) {
        let offset = self.reset_offset();
        let polls = self.rng.random_range(1..40);
        self.disk.set_yield(true);
        let finished = poll_up_to(self.log().reset_to(offset, self.now_ms), polls);
        self.disk.set_yield(false);
        if let Some(Err(e)) = &finished {
            assert!(self.disk_full && e.is_disk_full(), "reset error {e}");
        }
        self.log = None;
        if self.config.fsync {
            self.disk.crash(self.rng.random());
        }
        self.disk_full = false;
        self.disk.set_disk_full(false);
        // Which side of the commit point: the reopened log says, and `reopen` checks the rest.
        let log = open(&self.disk, &self.config, self.cache_bytes, self.now_ms);
        let reset = (log.log_start_offset(), log.log_end_offset()) == (offset, offset);
        drop(log);
        if std::env::var_os("MODEL_TRACE").is_some() {
            eprintln!("  reset_to({offset}): {finished:?}, reset {reset}");
        }
        assert!(
            reset || !matches!(finished, Some(Ok(()))),
            "a finished reset came back"
        );
        if reset {
            self.batches.clear();
            self.acked = 0;
        }
        self.reopen(false);
    }

    fn acked_by_durable_end(&self) -> usize {
        let durable_end = self.log().durable_end();
        self.batches
            .iter()
            .take_while(|b| b.next_offset <= durable_end)
            .count()
    }

    /// Each epoch's first batch, epochs increasing (a batch under an older epoch than the
    /// latest adds nothing), as the leader-epoch cache must hold them.
    fn model_epochs(&self) -> Vec<(i32, i64)> {
        let mut entries: Vec<(i32, i64)> = Vec::new();
        for b in &self.batches {
            let h = BatchHeader::parse(&b.stored).unwrap();
            let epoch = h.partition_leader_epoch;
            if epoch >= 0 && entries.last().is_none_or(|e| e.0 < epoch) {
                entries.push((epoch, h.base_offset));
            }
        }
        entries
    }

    fn check_epochs(&mut self) {
        let entries = self.model_epochs();
        let got: Vec<(i32, i64)> = self
            .log()
            .epoch_entries()
            .iter()
            .map(|e| (e.epoch.0, e.start_offset))
            .collect();
        assert_eq!(got, entries, "leader-epoch entries");
        let end = self.log().log_end_offset();
        let newest = entries.last().map_or(0, |e| e.0);
        for _ in 0..3 {
            let requested = self.rng.random_range(-1..=newest + 2);
            // Kafka's OffsetForLeaderEpoch, spelled out case by case.
            let expected = match entries.last() {
                _ if requested < 0 => None,
                None => None,
                Some(&(latest, _)) if requested == latest => Some((requested, end)),
                Some(&(latest, _)) if requested > latest => None,
                Some(_) => {
                    let next = entries.iter().find(|e| e.0 > requested).unwrap();
                    let floor = entries.iter().rev().find(|e| e.0 <= requested);
                    Some((floor.map_or(requested, |f| f.0), next.1))
                }
            };
            let answer = self.log().last_offset_for_epoch(LeaderEpoch(requested));
            assert_eq!(
                answer.map(|(e, o)| (e.0, o)),
                expected,
                "last_offset_for_epoch({requested}) with entries {entries:?}, end {end}"
            );
        }
    }

    fn retry(&mut self) {
        // Kafka remembers the producer's last five batches.
        let recent: Vec<Expected> = self
            .batches
            .iter()
            .rev()
            .filter(|b| b.sequences.is_some())
            .take(5)
            .cloned()
            .collect();
        if recent.is_empty() {
            return;
        }
        let pick = &recent[self.rng.random_range(0..recent.len())];
        let end = self.log().log_end_offset();
        let out = self
            .log()
            .append(
                bytes_mut(&pick.sent),
                LeaderEpoch(self.epoch),
                self.now_ms,
                false,
            )
            .expect("retry");
        assert!(
            out.duplicate,
            "retry of offset {} not detected",
            pick.base_offset
        );
        assert_eq!(
            (out.base_offset, out.last_offset + 1),
            (pick.base_offset, pick.next_offset)
        );
        assert_eq!(
            self.log().log_end_offset(),
            end,
            "a duplicate appended something"
        );
    }

    fn time_lookup(&mut self) {
        let target = self.rng.random_range(-5..self.now_ms + 20);
        let expected = self.batches[..self.acked].iter().find_map(|b| {
            let records = decode_records(&b.stored, 1 << 20).unwrap();
            records
                .iter()
                .find(|r| r.timestamp >= target)
                .map(|r| (r.offset, r.timestamp))
        });
        assert_eq!(
            block_on(self.log().offset_for_timestamp(target)).unwrap(),
            expected,
            "timestamp {target}"
        );
    }

    fn toggle_disk_full(&mut self) {
        self.disk_full = !self.disk_full;
        self.disk.set_disk_full(self.disk_full);
    }

    /// Power loss (or, without fsync, a process restart: the relaxed mode promises nothing
    /// across power loss).
    fn crash(&mut self) {
        self.log = None;
        if self.config.fsync {
            self.disk.crash(self.rng.random());
        }
        if self.rng.random_ratio(1, 4) {
            self.damage_an_index();
        }
        self.disk_full = false;
        self.disk.set_disk_full(false);
        self.reopen(false);
    }

    fn restart(&mut self) {
        let closed = block_on(self.log().close());
        match closed {
            Ok(()) => {
                self.acked = self.batches.len();
                self.log = None;
                self.reopen(true);
            }
            Err(e) => {
                assert!(self.disk_full, "close failed: {e}");
                self.crash();
            }
        }
    }

    fn damage_an_index(&mut self) {
        let indexes: Vec<_> = self
            .disk
            .paths()
            .into_iter()
            .filter(|p| {
                p.extension()
                    .is_some_and(|e| e == "index" || e == "timeindex")
            })
            .collect();
        if indexes.is_empty() {
            return;
        }
        let path = &indexes[self.rng.random_range(0..indexes.len())];
        let mut bytes = self.disk.file_bytes(path).unwrap();
        if bytes.is_empty() {
            return;
        }
        let at = self.rng.random_range(0..bytes.len());
        bytes[at] ^= 1 << self.rng.random_range(0..8);
        self.disk.put_file(path, &bytes);
    }

    fn reopen(&mut self, everything: bool) {
        let log = open(&self.disk, &self.config, self.cache_bytes, self.now_ms);
        let recovered = read_all(&log);
        assert!(
            recovered.len() >= self.acked,
            "lost acknowledged batches: {} of {}",
            recovered.len(),
            self.acked
        );
        assert!(
            recovered.len() <= self.batches.len(),
            "batches from nowhere"
        );
        if everything {
            assert_eq!(
                recovered.len(),
                self.batches.len(),
                "a clean restart keeps everything"
            );
        }
        for (got, expected) in recovered.iter().zip(&self.batches) {
            assert_eq!(
                got, &expected.stored,
                "recovered batch at {} differs",
                expected.base_offset
            );
        }
        self.batches.truncate(recovered.len());
        self.acked = recovered.len();
        self.log = Some(log);
        let epochs = self.log().epoch_entries();
        assert!(epochs
            .windows(2)
            .all(|w| w[0].epoch < w[1].epoch && w[0].start_offset <= w[1].start_offset));
        if let Some(last) = self.batches.last() {
            let epoch = BatchHeader::parse(&last.stored)
                .unwrap()
                .partition_leader_epoch;
            assert_eq!(
                epochs.last().map(|e| e.epoch.0),
                Some(epoch),
                "leader-epoch cache"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Retention, DeleteRecords and compaction under crashes.
//
// A second model, at record granularity because compaction rewrites batches: every record
// appended (offset -> key, value, timestamp), the acknowledged end and the log start. Steps mix
// appends (plain and idempotent, some tombstones), flushes, retention, DeleteRecords, cleans,
// cleans interrupted at a random poll and followed by a power loss, cleans racing DeleteRecords
// or retention, plain crashes and clean restarts, with small segments, and after each step
// check:
// * the high watermark is the acknowledged end (after a crash: at least it);
// * the log start never goes backwards, across restarts too, and never passes the high
//   watermark;
// * every record read from the log start is the model's record at that offset, offsets
//   increasing;
// * a record at or above the log start that is missing was legally dropped by compaction (the
//   log is compacted, and a later record with its key exists, or it is a tombstone older
//   than delete_retention_ms);
// * right after a clean, the cleaned range holds exactly the latest record per key (tombstones
//   past delete_retention_ms may be gone);
// * an idempotent producer's next sequence is accepted after every crash and restart;
// * a truncation (anywhere from just below the log start to just above the log end) ends the
//   log after the last batch below the offset asked for, as the log's batches (gaps included)
//   say, is refused only when that end would be below the log start, and keeps the start;
// * a reset (from the log start to past the log end) leaves the empty log there, which
//   keeps that start across crashes and restarts before any record is appended, and takes
//   the idempotent producer's first sequence again.

use millrace_storage::{NoThrottle, RetentionOutcome};
use std::collections::BTreeMap;

const KEYED_PRODUCER: i64 = 88;

#[derive(Clone, Debug, PartialEq)]
struct Rec {
    key: Vec<u8>,
    value: Option<Vec<u8>>,
    timestamp: i64,
}

struct Model {
    rng: SmallRng,
    disk: SimDisk,
    config: LogConfig,
    cache_bytes: usize,
    log: Option<Log>,
    recs: BTreeMap<i64, Rec>,
    end: i64,
    acked: i64,
    start: i64,
    now_ms: i64,
    /// Idempotent batches appended: (base offset, first sequence, last sequence).
    idempotent: Vec<(i64, i32, i32)>,
    /// The idempotent producer's epoch: bumped after a truncation (see `truncate`).
    producer_epoch: i16,
    /// Records compaction had dropped when a truncation removed what superseded them.
    dropped_before_truncation: std::collections::BTreeSet<i64>,
}

#[test]
fn model_retention_delete_records_and_compaction_with_crashes() {
    run_seeds("MODEL", "retention/compaction model", 300, run_model);
}

fn run_model(seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let compact = rng.random_ratio(2, 3);
    let config = LogConfig {
        segment_bytes: rng.random_range(250..1500),
        segment_ms: rng.random_range(100..3000),
        index_interval_bytes: rng.random_range(1..500),
        cleanup_compact: compact,
        cleanup_delete: !compact || rng.random_bool(0.5),
        retention_ms: [-1, rng.random_range(100..2000)][rng.random_range(0..2)],
        retention_bytes: [-1, rng.random_range(300..4000)][rng.random_range(0..2)],
        delete_retention_ms: rng.random_range(0..600),
        min_compaction_lag_ms: [0, 0, rng.random_range(1..200)][rng.random_range(0..3)],
        max_compaction_lag_ms: [i64::MAX, rng.random_range(200..1000)][rng.random_range(0..2)],
        min_cleanable_dirty_ratio: [0.0, 0.3, 0.6][rng.random_range(0..3)],
        prepare_ahead_bytes: [0, 512, 4 << 20][rng.random_range(0..3)],
        ..LogConfig::default()
    };
    let disk = SimDisk::new([512, 4096][rng.random_range(0..2)]);
    let cache_bytes = [0, 1500, 1 << 20][rng.random_range(0..3)];
    let log = open(&disk, &config, cache_bytes, 0);
    let mut m = Model {
        rng,
        disk,
        config,
        cache_bytes,
        log: Some(log),
        recs: BTreeMap::new(),
        end: 0,
        acked: 0,
        start: 0,
        now_ms: 0,
        idempotent: Vec::new(),
        producer_epoch: 0,
        dropped_before_truncation: Default::default(),
    };
    let steps = m.rng.random_range(60..200);
    for _ in 0..steps {
        m.now_ms += m.rng.random_range(0..30);
        let op = m.rng.random_range(0..109);
        if std::env::var_os("MODEL_TRACE").is_some() {
            let log = m.log();
            eprintln!(
                "op {op} now {} start {} hw {} end {} files {:?}",
                m.now_ms,
                log.log_start_offset(),
                log.durable_end(),
                log.log_end_offset(),
                m.disk.paths()
            );
        }
        match op {
            0..40 => m.append(),
            40..55 => m.flush(),
            55..63 => m.retention(),
            63..68 => m.delete_records(),
            68..80 => m.clean(),
            80..86 => m.crash_during_clean(),
            86..92 => m.crash(),
            92..96 => m.clean_racing_deletion(),
            96..100 => m.restart(),
            100..105 => m.truncate(),
            _ => m.reset(),
        }
        m.check();
    }
    m.flush();
    m.clean();
    m.check();
    m.crash();
    m.check();
}

impl Model {
    fn log(&self) -> &Log {
        self.log.as_ref().expect("log open")
    }

    fn next_sequence(&self) -> i32 {
        self.idempotent.last().map_or(0, |b| b.2 + 1)
    }

    fn append(&mut self) {
        let n = self.rng.random_range(1..5);
        let compact = self.config.cleanup_compact;
        let recs: Vec<Rec> = (0..n)
            .map(|i| Rec {
                key: format!("k{}", self.rng.random_range(0..8)).into_bytes(),
                value: match compact && self.rng.random_ratio(1, 8) {
                    true => None,
                    false => Some(vec![self.rng.random(); self.rng.random_range(0..60)]),
                },
                timestamp: self.now_ms + i,
            })
            .collect();
        let idempotent = self.rng.random_ratio(1, 3);
        let seq = self.next_sequence();
        let builder = millrace_wire::records::BatchBuilder {
            producer_id: if idempotent { KEYED_PRODUCER } else { -1 },
            producer_epoch: if idempotent { self.producer_epoch } else { -1 },
            base_sequence: if idempotent { seq } else { -1 },
            ..Default::default()
        };
        let batch = builder.build(
            &recs
                .iter()
                .map(|r| millrace_wire::records::NewRecord {
                    timestamp: r.timestamp,
                    key: Some(r.key.clone()),
                    value: r.value.clone(),
                    headers: Vec::new(),
                })
                .collect::<Vec<_>>(),
        );
        let out = self
            .log()
            .append(bytes_mut(&batch), LeaderEpoch(0), self.now_ms, false)
            .expect("append");
        assert!(!out.duplicate);
        assert_eq!(out.base_offset, self.end, "offsets continue at the log end");
        for (i, r) in recs.into_iter().enumerate() {
            self.recs.insert(self.end + i as i64, r);
        }
        if idempotent {
            self.idempotent.push((self.end, seq, seq + n as i32 - 1));
        }
        self.end += n;
    }

    fn flush(&mut self) {
        block_on(self.log().flush()).expect("flush");
        self.acked = self.end;
    }

    fn retention(&mut self) {
        let before = self.log().log_start_offset();
        let out: RetentionOutcome = block_on(
            self.log()
                .enforce_retention(self.now_ms, self.log().durable_end()),
        )
        .expect("retention");
        assert!(
            out.log_start_offset >= before,
            "retention moved the start back"
        );
        assert_eq!(out.log_start_offset, self.log().log_start_offset());
        if !self.config.cleanup_delete {
            assert_eq!(
                out.segments_deleted, 0,
                "retention without the delete policy"
            );
        }
        if out.segments_deleted == 0 {
            assert_eq!(
                out.log_start_offset, before,
                "the start moved with nothing deleted"
            );
        }
        assert!(
            out.log_start_offset <= self.acked,
            "retention passed the high watermark"
        );
        self.start = out.log_start_offset;
    }

    fn delete_records(&mut self) {
        let offset = match self.rng.random_range(0..6) {
            0 => -1,
            1 => self.rng.random_range(-5..-1),
            _ => self.rng.random_range(self.start - 2..=self.acked + 2),
        };
        let result = block_on(self.log().delete_records(offset, self.log().durable_end()));
        let target = if offset == -1 { self.acked } else { offset };
        if target < 0 || target > self.acked {
            assert!(
                matches!(result, Err(StorageError::OffsetOutOfRange { .. })),
                "delete_records({offset}) with hw {}: {result:?}",
                self.acked
            );
            return;
        }
        let start = result.expect("delete_records");
        assert_eq!(start, self.start.max(target), "delete_records({offset})");
        self.start = start;
    }

    fn clean(&mut self) {
        // An earlier clean, perhaps over a longer range, may have dropped records this one
        // keeps: only records present before it must survive it.
        let before: std::collections::BTreeSet<i64> = self.read_log().iter().map(|r| r.0).collect();
        let out = block_on(self.log().clean(self.now_ms, &NoThrottle)).expect("clean");
        if !self.config.cleanup_compact {
            assert!(
                !out.cleaned && out.records_removed == 0,
                "clean without the policy"
            );
            return;
        }
        if !out.cleaned {
            return;
        }
        let end = out.cleaned_end_offset;
        let present: Vec<i64> = self.read_log().iter().map(|r| r.0).collect();
        let start = self.log().log_start_offset();
        for (&offset, rec) in self.recs.range(start..end) {
            let latest = self
                .recs
                .range(..end)
                .filter(|(_, r)| r.key == rec.key)
                .map(|(&o, _)| o)
                .max()
                .expect("the record itself");
            let is_present = present.binary_search(&offset).is_ok();
            let expired = rec.value.is_none()
                && self.now_ms - rec.timestamp > self.config.delete_retention_ms;
            if offset == latest && !expired && before.contains(&offset) {
                assert!(is_present, "latest record of its key at {offset} dropped");
            } else if offset != latest {
                assert!(
                    !is_present,
                    "superseded record at {offset} kept by a clean to {end}"
                );
            }
        }
    }

    /// Truncation on a log that retention, DeleteRecords and compaction shaped: a start
    /// inside a batch, gaps between batches.
    fn truncate(&mut self) {
        self.flush();
        let start = self.log().log_start_offset();
        let offset = self.rng.random_range(start - 2..=self.end + 2);
        // Where a cut falls depends on the batches compaction kept.
        let batches: Vec<(i64, i64)> = read_all(self.log())
            .iter()
            .map(|b| {
                let h = BatchHeader::parse(b).unwrap();
                (h.base_offset, h.next_offset())
            })
            .collect();
        let present: std::collections::BTreeSet<i64> =
            self.read_log().iter().map(|r| r.0).collect();
        let result = block_on(self.log().truncate_to(offset, self.now_ms));
        if offset < start || offset > self.end {
            assert!(
                matches!(result, Err(StorageError::TruncateOutOfRange { .. })),
                "truncate_to({offset}) outside [{start}, {}]: {result:?}",
                self.end
            );
            return;
        }
        let holding = batches.iter().position(|b| b.1 > offset);
        let new_end = match (result, holding) {
            (Ok(new_end), None) => {
                assert_eq!((offset, new_end), (self.end, self.end), "nothing to cut");
                return;
            }
            (Ok(new_end), Some(0)) => {
                assert!(new_end >= start && new_end <= batches[0].0.max(start));
                new_end
            }
            (Ok(new_end), Some(i)) => {
                assert_eq!(new_end, batches[i - 1].1, "truncate_to({offset})");
                new_end
            }
            (Err(StorageError::TruncateOutOfRange { .. }), Some(0)) => return,
            (other, _) => panic!(
                "truncate_to({offset}) in [{start}, {}]: {other:?}",
                self.end
            ),
        };
        assert_eq!(
            self.log().log_start_offset(),
            start,
            "truncation moved the start"
        );
        let dropped = self.recs.range(start..new_end).map(|(&o, _)| o);
        let dropped: Vec<i64> = dropped.filter(|o| !present.contains(o)).collect();
        self.dropped_before_truncation.retain(|&o| o < new_end);
        self.dropped_before_truncation.extend(dropped);
        self.recs.split_off(&new_end);
        self.end = new_end;
        self.acked = new_end;
        // Compaction may have dropped the producer's batches that the truncation makes its
        // last ones again, so its sequence is lost (in Kafka as well): a producer would bump
        // its epoch.
        self.idempotent.clear();
        self.producer_epoch += 1;
    }

    /// A reset on a log that retention, DeleteRecords and compaction shaped, unflushed
    /// appends perhaps pending.
    fn reset(&mut self) {
        let offset = self.rng.random_range(self.start..=self.end + 10);
        block_on(self.log().reset_to(offset, self.now_ms)).expect("reset");
        let log = self.log();
        let ends = (
            log.log_start_offset(),
            log.durable_end(),
            log.log_end_offset(),
        );
        assert_eq!(ends, (offset, offset, offset), "reset_to({offset})");
        assert!(log.epoch_entries().is_empty(), "epochs after a reset");
        assert_eq!(log.size_in_bytes(), 0, "bytes after a reset");
        self.recs.clear();
        self.dropped_before_truncation.clear();
        // The producer is unknown again: its next batch must start at sequence 0.
        self.idempotent.clear();
        (self.start, self.acked, self.end) = (offset, offset, offset);
    }

    /// The record was already compacted away (legally, `check` said so then) when a
    /// truncation removed the record that superseded it. (Compaction is bounded by the
    /// durable end, so a truncation can remove what made a compacted record obsolete; with
    /// replication, clean must stay below the high watermark, which followers do not
    /// truncate.)
    fn superseded_before_truncation(&self, offset: i64) -> bool {
        self.dropped_before_truncation.contains(&offset)
    }

    /// A clean and a DeleteRecords (or retention) interleaved at a random point.
    fn clean_racing_deletion(&mut self) {
        let delay = self.rng.random_range(0..60);
        let offset = self.rng.random_range(self.start..=self.acked);
        let use_retention = self.rng.random_bool(0.5);
        self.disk.set_yield(true);
        let log = self.log.as_ref().expect("log open");
        let (cleaned, start) = block_on(futures_lite::future::zip(
            log.clean(self.now_ms, &NoThrottle),
            async {
                for _ in 0..delay {
                    futures_lite::future::yield_now().await;
                }
                match use_retention {
                    true => log
                        .enforce_retention(self.now_ms, log.durable_end())
                        .await
                        .map(|o| o.log_start_offset),
                    false => log.delete_records(offset, log.durable_end()).await,
                }
            },
        ));
        self.disk.set_yield(false);
        cleaned.expect("clean");
        let start = start.expect("deletion");
        assert!(start >= self.start, "the start went back");
        self.start = start;
    }

    /// A clean interrupted after a random number of polls (every disk operation yields once),
    /// then a power loss.
    fn crash_during_clean(&mut self) {
        let polls = self.rng.random_range(1..80);
        self.disk.set_yield(true);
        {
            let fut = self.log().clean(self.now_ms, &NoThrottle);
            let mut fut = std::pin::pin!(fut);
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            for _ in 0..polls {
                if fut.as_mut().poll(&mut cx).is_ready() {
                    break;
                }
            }
        }
        self.disk.set_yield(false);
        self.crash();
    }

    fn crash(&mut self) {
        self.log = None;
        self.disk.crash(self.rng.random());
        self.reopen();
    }

    fn restart(&mut self) {
        block_on(self.log().close()).expect("close");
        self.acked = self.end;
        self.log = None;
        self.reopen();
        assert_eq!(
            self.log().log_end_offset(),
            self.end,
            "a clean restart keeps everything"
        );
    }

    fn reopen(&mut self) {
        let log = open(&self.disk, &self.config, self.cache_bytes, self.now_ms);
        let end = log.log_end_offset();
        assert!(
            end >= self.acked,
            "lost acknowledged records: end {end} < {}",
            self.acked
        );
        assert!(end <= self.end, "records from nowhere");
        assert!(
            log.log_start_offset() >= self.start,
            "the log start went back across a restart: {} < {}",
            log.log_start_offset(),
            self.start
        );
        self.recs.split_off(&end);
        self.dropped_before_truncation.retain(|&o| o < end);
        self.idempotent.retain(|b| b.0 < end);
        self.end = end;
        self.acked = end;
        self.start = log.log_start_offset();
        self.log = Some(log);
        // The producer's next sequence is accepted (its state survived, from a snapshot or
        // from its last batch, kept by compaction even when emptied).
        if !self.idempotent.is_empty() {
            self.append_idempotent_next();
        }
    }

    fn append_idempotent_next(&mut self) {
        let before = self.idempotent.len();
        loop {
            self.append();
            if self.idempotent.len() > before {
                return;
            }
        }
    }

    /// (offset, record) for every record from the log start to the high watermark.
    fn read_log(&self) -> Vec<(i64, Rec)> {
        read_all(self.log())
            .iter()
            .flat_map(|b| decode_records(b, 1 << 20).expect("decode"))
            .filter(|r| r.offset >= self.log().log_start_offset())
            .map(|r| {
                let rec = Rec {
                    key: r.key.expect("keyed").to_vec(),
                    value: r.value.map(|v| v.to_vec()),
                    timestamp: r.timestamp,
                };
                (r.offset, rec)
            })
            .collect()
    }

    fn check(&mut self) {
        let log = self.log();
        assert_eq!(log.durable_end(), self.acked, "high watermark");
        assert_eq!(log.log_end_offset(), self.end, "log end offset");
        let start = log.log_start_offset();
        assert!(
            start >= self.start,
            "log start went back: {start} < {}",
            self.start
        );
        assert!(start <= self.acked, "log start above the high watermark");
        assert!(
            log.epoch_entries().iter().all(|e| e.start_offset >= start),
            "leader-epoch entries below the log start"
        );
        self.start = start;
        let got = self.read_log();
        assert!(
            got.windows(2).all(|w| w[0].0 < w[1].0),
            "offsets not increasing"
        );
        for (offset, rec) in &got {
            assert_eq!(
                self.recs.get(offset),
                Some(rec),
                "record at {offset} differs"
            );
        }
        let mut present = got.iter().map(|r| r.0).peekable();
        for (&offset, rec) in self.recs.range(start..self.acked) {
            while present.peek().is_some_and(|&o| o < offset) {
                present.next();
            }
            if present.peek() == Some(&offset) {
                continue;
            }
            assert!(
                self.config.cleanup_compact,
                "record at {offset} lost (not compacted)"
            );
            let superseded = self
                .recs
                .range(offset + 1..self.acked)
                .any(|(_, r)| r.key == rec.key);
            let expired = rec.value.is_none()
                && self.now_ms - rec.timestamp > self.config.delete_retention_ms;
            assert!(
                superseded || expired || self.superseded_before_truncation(offset),
                "record at {offset} dropped illegally"
            );
        }
    }
}

/// Polls `fut` at most `polls` times: its output if it finished, None if it was still pending
/// (the caller then drops it, as a process dies at that await point).
fn poll_up_to<F: std::future::Future>(fut: F, polls: u32) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    (0..polls).find_map(|_| match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(r) => Some(r),
        std::task::Poll::Pending => None,
    })
}
