//! The shard's batch cache: the most recently appended batches of all its partitions, so that
//! tailing consumers are served from memory without I/O.
//!
//! One FIFO over every partition of the shard, bounded by `limit_bytes`: inserting past the
//! bound evicts the oldest batches first, whichever partition they belong to. Per partition the
//! cached batches are always a contiguous run ending at the newest append (eviction is oldest
//! first and appends are in offset order), so a lookup is a binary search in that run.
//!
//! Lives on one shard, shared by its logs through `Rc`.

use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

/// Recently appended batches of every partition on a shard, bounded in bytes.
pub struct BatchCache {
    limit_bytes: usize,
    next_log_id: Cell<u64>,
    inner: RefCell<Inner>,
}

#[derive(Default)]
struct Inner {
    used_bytes: usize,
    /// Insertion order over all logs: (log id, batch bytes).
    fifo: VecDeque<(u64, usize)>,
    logs: HashMap<u64, VecDeque<Cached>>,
}

struct Cached {
    base_offset: i64,
    last_offset: i64,
    bytes: Bytes,
}

/// Batches found in the cache for a read.
pub(crate) struct CacheHit {
    pub batches: Vec<Bytes>,
    pub bytes: usize,
}

impl BatchCache {
    /// A cache holding at most `limit_bytes` of batches (0 disables it).
    pub fn new(limit_bytes: usize) -> Rc<Self> {
        Rc::new(BatchCache {
            limit_bytes,
            next_log_id: Cell::new(0),
            inner: RefCell::new(Inner::default()),
        })
    }

    /// Bytes of batches held now; never above the limit.
    pub fn used_bytes(&self) -> usize {
        self.inner.borrow().used_bytes
    }

    /// The configured bound.
    pub fn limit_bytes(&self) -> usize {
        self.limit_bytes
    }

    pub(crate) fn register(&self) -> u64 {
        let id = self.next_log_id.get();
        self.next_log_id.set(id + 1);
        id
    }

    pub(crate) fn unregister(&self, log: u64) {
        let mut inner = self.inner.borrow_mut();
        if let Some(run) = inner.logs.remove(&log) {
            inner.used_bytes -= run.iter().map(|c| c.bytes.len()).sum::<usize>();
            inner.fifo.retain(|e| e.0 != log);
        }
    }

    /// Drops `log`'s cached batches that start below `offset` (their segment was cleaned or
    /// deleted: the cache must not serve the old bytes). The run stays contiguous.
    pub(crate) fn forget_below(&self, log: u64, offset: i64) {
        let mut inner = self.inner.borrow_mut();
        let Some(run) = inner.logs.get_mut(&log) else {
            return;
        };
        let mut dropped = 0usize;
        let mut dropped_bytes = 0usize;
        while run.front().is_some_and(|c| c.base_offset < offset) {
            let c = run.pop_front().expect("front exists");
            dropped += 1;
            dropped_bytes += c.bytes.len();
        }
        if run.is_empty() {
            inner.logs.remove(&log);
        }
        inner.used_bytes -= dropped_bytes;
        // The log's fifo entries are in its offset order: its first `dropped` ones go.
        let mut left = dropped;
        inner.fifo.retain(|e| {
            if left > 0 && e.0 == log {
                left -= 1;
                false
            } else {
                true
            }
        });
    }

    /// Drops `log`'s cached batches that end at or above `offset` (the log was truncated
    /// there). The run stays contiguous, ending at the log's new end.
    pub(crate) fn forget_from(&self, log: u64, offset: i64) {
        let mut inner = self.inner.borrow_mut();
        let Some(run) = inner.logs.get_mut(&log) else {
            return;
        };
        let before = run.len();
        let mut dropped_bytes = 0usize;
        while run.back().is_some_and(|c| c.last_offset >= offset) {
            dropped_bytes += run.pop_back().expect("back exists").bytes.len();
        }
        let kept = run.len();
        if kept == 0 {
            inner.logs.remove(&log);
        }
        inner.used_bytes -= dropped_bytes;
        if kept == before {
            return;
        }
        // The log's fifo entries are in its offset order: all but its first `kept` ones go.
        let mut seen = 0;
        inner.fifo.retain(|e| {
            if e.0 != log {
                return true;
            }
            seen += 1;
            seen <= kept
        });
    }

    /// Adds a batch that `log` just appended after every batch it added before.
    pub(crate) fn insert(&self, log: u64, base_offset: i64, last_offset: i64, bytes: Bytes) {
        let len = bytes.len();
        if len > self.limit_bytes {
            // Keep the run contiguous: anything older than this batch is now useless.
            self.unregister(log);
            return;
        }
        let mut inner = self.inner.borrow_mut();
        while inner.used_bytes + len > self.limit_bytes {
            let (victim, victim_len) = inner.fifo.pop_front().expect("used bytes imply entries");
            let run = inner
                .logs
                .get_mut(&victim)
                .expect("fifo entries have a run");
            let evicted = run.pop_front().expect("run matches fifo");
            debug_assert_eq!(evicted.bytes.len(), victim_len);
            if run.is_empty() {
                inner.logs.remove(&victim);
            }
            inner.used_bytes -= victim_len;
        }
        let run = inner.logs.entry(log).or_default();
        debug_assert!(run.back().is_none_or(|c| c.last_offset + 1 == base_offset));
        run.push_back(Cached {
            base_offset,
            last_offset,
            bytes,
        });
        inner.fifo.push_back((log, len));
        inner.used_bytes += len;
    }

    /// Whole batches from the one holding `offset`, below `end_offset`, within `max_bytes`
    /// (at least one if `min_one`). None when the batch holding `offset` is not cached.
    pub(crate) fn read(
        &self,
        log: u64,
        offset: i64,
        end_offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Option<CacheHit> {
        let inner = self.inner.borrow();
        let run = inner.logs.get(&log)?;
        let i = run.partition_point(|c| c.last_offset < offset);
        let first = run.get(i)?;
        if first.base_offset > offset {
            return None;
        }
        let mut hit = CacheHit {
            batches: Vec::new(),
            bytes: 0,
        };
        for c in run.range(i..) {
            if c.base_offset >= end_offset {
                break;
            }
            let fits = hit.bytes + c.bytes.len() <= max_bytes;
            let first_anyway = min_one && hit.batches.is_empty();
            if !(fits || first_anyway) {
                break;
            }
            hit.bytes += c.bytes.len();
            hit.batches.push(c.bytes.clone());
        }
        Some(hit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_oldest_across_logs_and_stays_within_its_bound() {
        let cache = BatchCache::new(100);
        let (a, b) = (cache.register(), cache.register());
        cache.insert(a, 0, 0, Bytes::from(vec![0; 40]));
        cache.insert(b, 0, 4, Bytes::from(vec![1; 40]));
        cache.insert(a, 1, 1, Bytes::from(vec![2; 40]));
        assert_eq!(cache.used_bytes(), 80);
        assert!(cache.read(a, 0, 10, 1000, false).is_none());
        let hit = cache.read(b, 3, 10, 1000, false).unwrap();
        assert_eq!(hit.bytes, 40);
        let hit = cache.read(a, 1, 10, 1000, false).unwrap();
        assert_eq!(hit.batches[0][0], 2);
        assert!(cache.read(a, 1, 1, 1000, false).unwrap().batches.is_empty());
        assert_eq!(cache.read(b, 0, 10, 10, true).unwrap().bytes, 40);
        assert_eq!(cache.read(b, 0, 10, 10, false).unwrap().bytes, 0);
        cache.insert(b, 5, 6, Bytes::from(vec![4; 10]));
        cache.forget_below(b, 5);
        assert!(
            cache.read(b, 3, 10, 1000, false).is_none(),
            "forgotten batch served"
        );
        assert_eq!(cache.read(b, 5, 10, 1000, false).unwrap().bytes, 10);
        assert_eq!(cache.used_bytes(), 50);
        cache.forget_below(b, 7);
        assert_eq!(cache.used_bytes(), 40);
        cache.insert(b, 7, 7, Bytes::from(vec![5; 10]));
        assert_eq!(cache.read(b, 7, 10, 1000, false).unwrap().bytes, 10);
        cache.unregister(b);
        assert_eq!(cache.used_bytes(), 40);
        cache.insert(a, 2, 2, Bytes::from(vec![3; 101]));
        assert_eq!(cache.used_bytes(), 0);
    }

    #[test]
    fn forget_from_drops_the_newest_batches_of_one_log() {
        let cache = BatchCache::new(100);
        let (a, b) = (cache.register(), cache.register());
        cache.insert(a, 0, 1, Bytes::from(vec![0; 10]));
        cache.insert(b, 0, 0, Bytes::from(vec![1; 10]));
        cache.insert(a, 2, 4, Bytes::from(vec![2; 10]));
        cache.insert(a, 5, 5, Bytes::from(vec![3; 10]));
        cache.forget_from(a, 3);
        assert_eq!(cache.used_bytes(), 20);
        assert!(
            cache.read(a, 2, 10, 1000, false).is_none(),
            "truncated batch served"
        );
        assert_eq!(cache.read(a, 0, 10, 1000, false).unwrap().bytes, 10);
        cache.insert(a, 2, 2, Bytes::from(vec![4; 10]));
        assert_eq!(cache.read(a, 0, 10, 1000, false).unwrap().bytes, 20);
        // Eviction still pairs fifo entries with runs: a's oldest batch goes first.
        cache.insert(b, 1, 1, Bytes::from(vec![5; 80]));
        assert_eq!(cache.used_bytes(), 100);
        assert!(cache.read(a, 0, 10, 1000, false).is_none());
        assert_eq!(cache.read(a, 2, 10, 1000, false).unwrap().bytes, 10);
        assert_eq!(cache.read(b, 0, 10, 1000, false).unwrap().bytes, 90);
        cache.forget_from(b, 0);
        assert_eq!(cache.used_bytes(), 10);
    }
}
