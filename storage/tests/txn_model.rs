//! Model-based test of transactions in the partition log: seeded random sequences of
//! transactional appends by several producers (a producer's first batch opens its transaction
//! here), plain and idempotent appends, COMMIT and ABORT markers (some for producers with
//! nothing open: empty transactions), flushes, power losses with torn writes, clean restarts,
//! follower truncations, and damage to a `.txnindex`, `.snapshot` or `.index` file, on segments
//! small enough to roll every few batches. The model is the list of batches in the log and how
//! many a flush acknowledged; from it the test derives each producer's open transaction and the
//! aborted transactions, and after every step checks:
//! * the last stable offset under the high watermark (the durable end) is the first offset of
//!   the oldest open transaction, or of a completed one whose marker the high watermark has
//!   not passed since the log was opened, if lower;
//! * `aborted_transactions(from, upper)` is exactly every abort whose marker is at or after
//!   `from` and whose first offset is below `upper` (the early stop loses none), and each
//!   entry's stable offset is the model's;
//! * DescribeProducers' open-transaction offsets are the model's;
//! * a non-transactional batch from a producer with an open transaction is refused.
//!
//! `TXN_MODEL_SEEDS=n` runs n seeds (default 200); `TXN_MODEL_SEED=s` runs one.

mod common;

use common::*;
use futures_lite::future::block_on;
use millrace_storage::sim::SimDisk;
use millrace_storage::{AbortedTxn, LogConfig, StorageError};
use millrace_wire::epoch::LeaderEpoch;
use millrace_wire::records::{BatchBuilder, NewRecord, TxnMarker};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};

const PRODUCERS: i64 = 4;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Plain,
    /// A producer's batch: transactional or not, with its sequences.
    Data {
        pid: i64,
        txn: bool,
        seq: (i32, i32),
    },
    Marker {
        pid: i64,
        commit: bool,
    },
}

#[derive(Clone, Copy, Debug)]
struct Batch {
    base: i64,
    next: i64,
    kind: Kind,
}

struct Harness {
    rng: SmallRng,
    disk: SimDisk,
    config: LogConfig,
    log: Option<Log>,
    batches: Vec<Batch>,
    acked: usize,
    now_ms: i64,
    /// Completed transactions whose marker the high watermark had not passed when last asked
    /// (first offset -> marker offset), since the log was opened.
    unreplicated: BTreeMap<i64, i64>,
}

#[test]
fn transactions_model() {
    run_seeds("TXN_MODEL", "txn model", 200, run);
}

fn run(seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let config = LogConfig {
        segment_bytes: rng.random_range(200..2000),
        index_interval_bytes: rng.random_range(1..400),
        ..LogConfig::default()
    };
    let disk = SimDisk::new(512);
    let log = open(&disk, &config, 0, 0);
    let mut h = Harness {
        rng,
        disk,
        config,
        log: Some(log),
        batches: Vec::new(),
        acked: 0,
        now_ms: 0,
        unreplicated: BTreeMap::new(),
    };
    for _ in 0..h.rng.random_range(60..300) {
        h.now_ms += h.rng.random_range(0..20);
        match h.rng.random_range(0..100) {
            0..38 => h.append_txn(),
            38..48 => h.append_other(),
            48..62 => h.marker(),
            62..78 => h.flush(),
            78..82 => h.crash(),
            82..86 => h.restart(),
            86..88 => h.truncate(),
            _ => h.check_ranges(),
        }
        h.check();
    }
    if std::env::var_os("TXN_MODEL_TRACE").is_some() {
        let files = h
            .disk
            .paths()
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "txnindex"))
            .count();
        eprintln!(
            "seed {seed}: {} batches, {} aborts, {} open, {files} txnindex files",
            h.batches.len(),
            h.aborts().len(),
            h.open_txns().len()
        );
    }
}

impl Harness {
    fn log(&self) -> &Log {
        self.log.as_ref().expect("open")
    }

    fn end(&self) -> i64 {
        self.batches.last().map_or(0, |b| b.next)
    }

    fn next_seq(&self, pid: i64) -> i32 {
        self.batches
            .iter()
            .rev()
            .find_map(|b| match b.kind {
                Kind::Data { pid: p, seq, .. } if p == pid => Some(seq.1 + 1),
                _ => None,
            })
            .unwrap_or(0)
    }

    /// Each producer's open transaction (first offset), from the batches in the log.
    fn open_txns(&self) -> HashMap<i64, i64> {
        let mut open = HashMap::new();
        for b in &self.batches {
            match b.kind {
                Kind::Data { pid, txn: true, .. } => {
                    open.entry(pid).or_insert(b.base);
                }
                Kind::Marker { pid, .. } => {
                    open.remove(&pid);
                }
                _ => {}
            }
        }
        open
    }

    /// Every abort in the log, as the index must hold it.
    fn aborts(&self) -> Vec<AbortedTxn> {
        let mut open: BTreeMap<i64, i64> = BTreeMap::new(); // first offset -> pid
        let mut first_of: HashMap<i64, i64> = HashMap::new();
        let mut out = Vec::new();
        for b in &self.batches {
            match b.kind {
                Kind::Data { pid, txn: true, .. } => {
                    if let std::collections::hash_map::Entry::Vacant(e) = first_of.entry(pid) {
                        e.insert(b.base);
                        open.insert(b.base, pid);
                    }
                }
                Kind::Marker { pid, commit } => {
                    let first = first_of.remove(&pid);
                    if let Some(f) = first {
                        open.remove(&f);
                    }
                    if !commit {
                        out.push(AbortedTxn {
                            producer_id: pid,
                            first_offset: first.unwrap_or(b.base),
                            last_offset: b.base,
                            last_stable_offset: open.keys().next().copied().unwrap_or(b.base + 1),
                        });
                    }
                }
                _ => {}
            }
        }
        out
    }

    fn append_txn(&mut self) {
        let pid = self.rng.random_range(0..PRODUCERS);
        let records = self.rng.random_range(1..4);
        let seq = self.next_seq(pid);
        let batch = BatchBuilder {
            producer_id: pid,
            producer_epoch: 0,
            base_sequence: seq,
            transactional: true,
            ..Default::default()
        }
        .build(&vec![NewRecord::default(); records]);
        let base = self.end();
        let out = self
            .log()
            .append(bytes_mut(&batch), LeaderEpoch(0), self.now_ms, false)
            .expect("transactional append");
        assert_eq!(out.base_offset, base);
        self.batches.push(Batch {
            base,
            next: out.last_offset + 1,
            kind: Kind::Data {
                pid,
                txn: true,
                seq: (seq, seq + records as i32 - 1),
            },
        });
    }

    fn append_other(&mut self) {
        let base = self.end();
        if self.rng.random_bool(0.5) {
            let out = self
                .log()
                .append(
                    bytes_mut(&batch(2, 10, self.now_ms)),
                    LeaderEpoch(0),
                    self.now_ms,
                    false,
                )
                .expect("plain append");
            self.batches.push(Batch {
                base,
                next: out.last_offset + 1,
                kind: Kind::Plain,
            });
            return;
        }
        let pid = self.rng.random_range(0..PRODUCERS);
        let seq = self.next_seq(pid);
        let sent = idempotent_batch(1, 10, self.now_ms, pid, 0, seq);
        let result = self
            .log()
            .append(bytes_mut(&sent), LeaderEpoch(0), self.now_ms, false);
        if self.open_txns().contains_key(&pid) {
            assert!(
                matches!(result, Err(StorageError::InvalidTxnState { .. })),
                "non-transactional batch inside a transaction: {result:?}"
            );
            return;
        }
        let out = result.expect("idempotent append");
        self.batches.push(Batch {
            base,
            next: out.last_offset + 1,
            kind: Kind::Data {
                pid,
                txn: false,
                seq: (seq, seq),
            },
        });
    }

    fn marker(&mut self) {
        let open = self.open_txns();
        let pid = match open.keys().next() {
            Some(&pid) if self.rng.random_ratio(9, 10) => pid,
            _ => self.rng.random_range(0..PRODUCERS),
        };
        let commit = self.rng.random_bool(0.5);
        let marker = TxnMarker {
            commit,
            coordinator_epoch: 0,
        };
        let base = self.end();
        let out = self
            .log()
            .append_marker(pid, 0, marker, LeaderEpoch(0), self.now_ms)
            .expect("marker");
        assert_eq!((out.base_offset, out.last_offset), (base, base));
        if let Some(&first) = open.get(&pid) {
            self.unreplicated.insert(first, base);
        }
        self.batches.push(Batch {
            base,
            next: base + 1,
            kind: Kind::Marker { pid, commit },
        });
    }

    fn flush(&mut self) {
        block_on(self.log().flush()).expect("flush");
        self.acked = self.batches.len();
    }

    fn crash(&mut self) {
        self.log = None;
        self.disk.crash(self.rng.random());
        if self.rng.random_ratio(1, 3) {
            self.damage_a_file();
        }
        self.reopen(false);
    }

    fn restart(&mut self) {
        block_on(self.log().close()).expect("close");
        self.acked = self.batches.len();
        self.log = None;
        if self.rng.random_ratio(1, 3) {
            self.damage_a_file();
        }
        self.reopen(true);
    }

    fn truncate(&mut self) {
        if self.batches.is_empty() {
            return;
        }
        let keep = self.rng.random_range(0..self.batches.len());
        let offset = self.batches[keep].base;
        let end = block_on(self.log().truncate_to(offset, self.now_ms)).expect("truncate");
        assert_eq!(end, offset);
        self.batches.truncate(keep);
        self.acked = self.batches.len();
        self.unreplicated.clear();
    }

    fn damage_a_file(&mut self) {
        let files: Vec<_> = self
            .disk
            .paths()
            .into_iter()
            .filter(|p| {
                p.extension()
                    .is_some_and(|e| e == "txnindex" || e == "snapshot" || e == "index")
            })
            .collect();
        if files.is_empty() {
            return;
        }
        let path = &files[self.rng.random_range(0..files.len())];
        let mut bytes = self.disk.file_bytes(path).unwrap();
        if bytes.is_empty() {
            return;
        }
        let at = self.rng.random_range(0..bytes.len());
        bytes[at] ^= 1 << self.rng.random_range(0..8);
        self.disk.put_file(path, &bytes);
    }

    fn reopen(&mut self, everything: bool) {
        let log = open(&self.disk, &self.config, 0, self.now_ms);
        let n = read_all(&log).len();
        assert!(n >= self.acked, "lost acknowledged batches");
        if everything {
            assert_eq!(n, self.batches.len(), "a clean restart keeps everything");
        }
        self.batches.truncate(n);
        self.acked = n;
        self.log = Some(log);
        self.unreplicated.clear();
    }

    fn check(&mut self) {
        let log = self.log();
        assert_eq!(log.log_end_offset(), self.end(), "log end");
        let hw = log.durable_end();
        let open = self.open_txns();
        self.unreplicated.retain(|_, marker| *marker >= hw);
        let expected_lso = open
            .values()
            .chain(self.unreplicated.keys())
            .copied()
            .fold(hw, i64::min);
        let log = self.log();
        assert_eq!(
            log.last_stable_offset(hw),
            expected_lso,
            "last stable offset"
        );
        let aborts = self.aborts();
        assert_eq!(
            log.aborted_transactions(0, self.end() + 1),
            aborts,
            "aborted transactions"
        );
        for p in log.producers() {
            let expected = open.get(&p.producer_id).copied().unwrap_or(-1);
            assert_eq!(
                p.current_txn_start_offset, expected,
                "producer {} open transaction",
                p.producer_id
            );
        }
        for (pid, first) in &open {
            assert!(
                log.producers()
                    .iter()
                    .any(|p| p.producer_id == *pid && p.current_txn_start_offset == *first),
                "producer {pid}'s open transaction at {first} is unknown"
            );
        }
    }

    /// Fetch ranges: the index's early stop never drops an abort a range needs.
    fn check_ranges(&mut self) {
        let aborts = self.aborts();
        let end = self.end();
        for _ in 0..5 {
            let from = self.rng.random_range(0..=end);
            let upper = self.rng.random_range(from..=end + 1);
            let expected: Vec<_> = aborts
                .iter()
                .filter(|a| a.last_offset >= from && a.first_offset < upper)
                .copied()
                .collect();
            assert_eq!(
                self.log().aborted_transactions(from, upper),
                expected,
                "aborts for [{from}, {upper})"
            );
        }
    }
}
