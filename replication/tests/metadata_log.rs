//! The metadata log on the storage crate's partition log over `SimDisk`, with crashes that keep
//! a random part of the unsynced writes and tear the last one.
//!
//! Each seed runs random steps: append a batch of 1-4 valid records (under the current term),
//! flush, flush with a failing fdatasync, crash (and reopen), on small segments so they roll,
//! with or without a batch cache (without one, every read is a cold read of a file range).
//! After every crash:
//! * replay yields exactly a prefix of what was appended, at offsets 0, 1, 2, ...;
//! * that prefix holds every record a successful flush covered;
//! * the image built from the replay equals the image of that prefix, and a snapshot taken at a
//!   random point plus a replay from there gives the same image.
//!
//! `METADATA_LOG_SEEDS=n` runs n seeds (default 200); `METADATA_LOG_SEED=s` runs one. A failure
//! names its seed.

use futures_lite::future::block_on;
use millrace_replication::metadata::sample::RecordSource;
use millrace_replication::metadata::{
    ClusterImage, LogEntry, MetadataLog, MetadataRecord, PartitionStore,
};
use millrace_storage::sim::SimDisk;
use millrace_storage::{BatchCache, LogConfig, PartitionLog};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

type Log = MetadataLog<PartitionStore<SimDisk>>;

#[test]
fn crashes_keep_a_prefix_with_every_flushed_record() {
    let seeds: Vec<u64> = match std::env::var("METADATA_LOG_SEED") {
        Ok(s) => vec![s.parse().expect("METADATA_LOG_SEED")],
        Err(_) => {
            let n = std::env::var("METADATA_LOG_SEEDS").map_or(200, |n| n.parse().unwrap());
            (0..n).collect()
        }
    };
    let mut totals = Totals::default();
    for seed in seeds {
        let result = catch_unwind(AssertUnwindSafe(|| run(seed)));
        match result {
            Ok(t) => totals.add(t),
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("seed {seed} failed (rerun with METADATA_LOG_SEED={seed}): {msg}");
            }
        }
    }
    // The test must exercise what it claims: lost unflushed records and kept flushed ones.
    assert!(
        totals.crashes > 0 && totals.lost > 0 && totals.kept_unflushed > 0,
        "{totals:?}"
    );
}

#[derive(Debug, Default)]
struct Totals {
    crashes: u64,
    /// Records appended but gone after a crash.
    lost: u64,
    /// Records never covered by a successful flush that survived a crash anyway.
    kept_unflushed: u64,
}

impl Totals {
    fn add(&mut self, other: Totals) {
        self.crashes += other.crashes;
        self.lost += other.lost;
        self.kept_unflushed += other.kept_unflushed;
    }
}

struct Harness {
    source: RecordSource,
    disk: SimDisk,
    config: LogConfig,
    cache_bytes: usize,
    log: Option<Log>,
    /// Every record appended and not lost, at offset = index.
    appended: Vec<MetadataRecord>,
    /// The image of `appended`, which new records must fit.
    image: ClusterImage,
    /// How many of `appended` a successful flush covered.
    flushed: usize,
    term: i32,
    now_ms: i64,
    totals: Totals,
}

fn run(seed: u64) -> Totals {
    let mut source = RecordSource::new(seed);
    let config = LogConfig {
        segment_bytes: 300 + source.below(3000),
        index_interval_bytes: 1 + source.below(500) as u32,
        ..LogConfig::default()
    };
    let disk = SimDisk::new([512, 4096][source.below(2) as usize]);
    let cache_bytes = [0, 1 << 20][source.below(2) as usize];
    let mut h = Harness {
        source,
        disk,
        config,
        cache_bytes,
        log: None,
        appended: Vec::new(),
        image: ClusterImage::default(),
        flushed: 0,
        term: 0,
        now_ms: 1_000,
        totals: Totals::default(),
    };
    h.reopen();
    for _ in 0..80 {
        h.now_ms += 1 + h.source.below(50) as i64;
        match h.source.below(100) {
            0..=54 => h.append(),
            55..=74 => h.flush(),
            75..=84 => h.flush_with_failing_sync(),
            _ => h.crash(),
        }
    }
    h.crash();
    h.totals
}

impl Harness {
    fn log(&self) -> &Log {
        self.log.as_ref().expect("open")
    }

    fn reopen(&mut self) {
        let log = block_on(PartitionLog::open(
            self.disk.clone(),
            PathBuf::from("/data/__cluster_metadata-0"),
            self.config.clone(),
            BatchCache::new(self.cache_bytes),
            self.now_ms,
        ))
        .expect("open");
        self.log = Some(MetadataLog::new(PartitionStore::new(log)));
    }

    fn append(&mut self) {
        let count = 1 + self.source.below(4) as usize;
        let mut batch = Vec::with_capacity(count);
        for _ in 0..count {
            let record = self.source.next_valid(&self.image);
            let offset = (self.appended.len() + batch.len()) as i64;
            self.image.apply(&record, offset).expect("a valid record");
            batch.push(record);
        }
        let base = self
            .log()
            .append(&batch, self.term, self.now_ms)
            .expect("append");
        assert_eq!(base, self.appended.len() as i64, "base offset");
        self.appended.extend(batch);
        assert_eq!(self.log().log_end_offset(), self.appended.len() as i64);
    }

    fn flush(&mut self) {
        block_on(self.log().flush()).expect("flush");
        self.flushed = self.appended.len();
        assert_eq!(self.log().durable_end(), self.flushed as i64);
        // A single voter commits what is durable: replay sees all of it now.
        let replayed = block_on(self.log().replay(0)).expect("replay");
        self.check_prefix(&replayed, self.flushed);
    }

    /// The writes reach the disk unsynced; the crash that follows keeps any part of them.
    fn flush_with_failing_sync(&mut self) {
        if self.appended.len() == self.flushed {
            return self.flush(); // nothing to write: no sync would be made
        }
        self.disk.fail_next_syncs(1);
        assert!(
            block_on(self.log().flush()).is_err(),
            "the sync was set to fail"
        );
        self.crash();
    }

    fn crash(&mut self) {
        drop(self.log.take());
        self.disk.crash(self.source.next_u64());
        self.totals.crashes += 1;
        self.reopen();
        let replayed = block_on(self.log().replay(0)).expect("replay after crash");
        assert!(
            replayed.len() >= self.flushed,
            "{} records after the crash, {} were flushed",
            replayed.len(),
            self.flushed
        );
        self.check_prefix(&replayed, replayed.len());
        self.totals.lost += (self.appended.len() - replayed.len()) as u64;
        self.totals.kept_unflushed += (replayed.len() - self.flushed) as u64;
        self.appended.truncate(replayed.len());
        self.flushed = replayed.len();
        self.image = self.check_images(&replayed);
        // A new incarnation leads under a new term (Raft would elect it).
        self.term += 1;
    }

    /// `replayed` is `appended[..len]`, at offsets 0..len, terms never decreasing.
    fn check_prefix(&self, replayed: &[LogEntry], len: usize) {
        assert_eq!(replayed.len(), len, "replay length");
        for (i, entry) in replayed.iter().enumerate() {
            assert_eq!(entry.offset, i as i64, "offsets are dense from 0");
            assert_eq!(entry.record, self.appended[i], "record at offset {i}");
            assert!(
                i == 0 || replayed[i - 1].term <= entry.term,
                "terms go back at {i}"
            );
        }
    }

    /// The image of the replay equals the image of the same prefix built in memory, and a
    /// snapshot at a random offset plus a replay from there agrees.
    fn check_images(&mut self, replayed: &[LogEntry]) -> ClusterImage {
        let mut from_log = ClusterImage::default();
        for e in replayed {
            from_log
                .apply(&e.record, e.offset)
                .expect("replayed record applies");
        }
        let mut expected = ClusterImage::default();
        for (i, record) in self.appended.iter().enumerate() {
            expected
                .apply(record, i as i64)
                .expect("model record applies");
        }
        assert_eq!(from_log, expected, "image from the log");
        let k = self.source.below(replayed.len() as u64 + 1) as usize;
        let mut at_k = ClusterImage::default();
        for e in &replayed[..k] {
            at_k.apply(&e.record, e.offset).unwrap();
        }
        let mut restored = ClusterImage::decode_snapshot(&at_k.encode_snapshot()).unwrap();
        for e in block_on(self.log().replay(k as i64)).expect("replay from k") {
            restored.apply(&e.record, e.offset).unwrap();
        }
        assert_eq!(restored, expected, "snapshot at {k} + replay");
        expected
    }
}
