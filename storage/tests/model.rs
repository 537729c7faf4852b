//! Model-based test of the partition log: seeded random sequences of append (plain and
//! idempotent, some with LogAppendTime, some under a new leader epoch), flush, reads at random
//! offsets and sizes, producer retries, time lookups, disk-full periods, crashes with torn
//! writes (sometimes with a damaged index file), and clean restarts, on segments small enough
//! to roll often. The model is the list of batches appended, and how many of them a flush
//! acknowledged.
//!
//! Invariants checked after every step:
//! * the high watermark is the end of the last acknowledged batch; nothing past it is readable;
//! * a read returns whole batches, the first holding the offset asked for, consecutive and
//!   byte-for-byte equal to the model, within `max_bytes` unless one batch is allowed over;
//! * after a crash the log holds every acknowledged batch byte for byte, then possibly a
//!   prefix of the unacknowledged ones, offsets dense;
//! * a retried idempotent batch is answered with its original offsets and appends nothing.
//!
//! `MODEL_SEEDS=n` runs n seeds (default 300); `MODEL_SEED=s` runs one. A failure names its seed.

mod common;

use common::*;
use futures_lite::future::block_on;
use millrace_replication::LeaderEpoch;
use millrace_storage::sim::SimDisk;
use millrace_storage::{LogConfig, StorageError};
use millrace_wire::records::{
    decode_records, set_base_offset, set_partition_leader_epoch, stamp_log_append_time, BatchHeader,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::panic::{catch_unwind, AssertUnwindSafe};

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
    if let Ok(seed) = std::env::var("MODEL_SEED") {
        run(seed.parse().expect("MODEL_SEED is a number"));
        return;
    }
    let seeds: u64 = std::env::var("MODEL_SEEDS").map_or(300, |n| n.parse().expect("a number"));
    for seed in 0..seeds {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| run(seed))) {
            eprintln!("model test failed with seed {seed}; rerun with MODEL_SEED={seed}");
            std::panic::resume_unwind(panic);
        }
    }
}

fn run(seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let config = LogConfig {
        segment_bytes: rng.random_range(300..6000),
        segment_ms: rng.random_range(100..5000),
        index_interval_bytes: rng.random_range(1..800),
        fsync: rng.random_ratio(9, 10),
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
        match h.rng.random_range(0..100) {
            0..40 => h.append(),
            40..50 => h.flush(),
            50..55 => h.concurrent_append_and_flush(),
            55..75 => h.read(),
            75..80 => h.retry(),
            80..83 => h.time_lookup(),
            83..89 => h.crash(),
            89..92 => h.restart(),
            _ => h.toggle_disk_full(),
        }
        h.check_watermarks();
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
        let out = self
            .log()
            .append(
                bytes_mut(&sent),
                LeaderEpoch(self.epoch),
                self.now_ms,
                log_append_time,
            )
            .expect("append");
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
        let hw = self.log().high_watermark();
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
        assert_eq!(log.high_watermark(), self.durable_end(), "high watermark");
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
        let hw = self.log().high_watermark();
        let offset = self.rng.random_range(start..=hw + 2);
        let max_bytes = self.rng.random_range(1..3000);
        let min_one = self.rng.random_bool(0.7);
        let result = block_on(self.log().read(offset, max_bytes, min_one));
        if offset > hw {
            assert!(
                matches!(result, Err(StorageError::OffsetOutOfRange { .. })),
                "offset {offset} > hw {hw}"
            );
            return;
        }
        let result = result.expect("read");
        assert_eq!(result.high_watermark, hw);
        let got = split_batches(&materialize(&result));
        if offset == hw {
            assert!(got.is_empty());
            return;
        }
        let first = self
            .batches
            .iter()
            .position(|b| b.next_offset > offset)
            .expect("offset below hw");
        assert!(first < self.acked, "unacknowledged data visible");
        if got.is_empty() {
            assert!(
                !min_one && self.batches[first].stored.len() > max_bytes,
                "empty read at {offset}"
            );
            return;
        }
        for (i, bytes) in got.iter().enumerate() {
            let expected = &self.batches[first + i];
            assert!(first + i < self.acked, "read past the high watermark");
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
