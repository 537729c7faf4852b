//! The shard's batch cache: the most recently appended batches of all its partitions, so that
//! tailing consumers are served from memory without I/O.
//!
//! One FIFO over every partition of the shard, bounded by `limit_bytes`: inserting past the
//! bound evicts the oldest batches first, whichever partition they belong to. Per partition the
//! cached batches are always a contiguous run ending at the newest append (eviction is oldest
//! first and appends are in offset order), so a lookup is a binary search in that run.
//!
//! Lives on one shard, shared by its logs through `Rc`.
//!
//! A batch is usually a slice of the produce request it came in: the request's buffer was
//! stamped in place, not copied ([`SharedBuffer`]). The cache then charges the whole buffer,
//! once, for as long as any of its batches is cached: slices keep all of it allocated,
//! including the parts that were refused or were duplicates, so charging only the batches would
//! let a client pin memory the bound does not see.

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
    /// Memory the cached batches hold: their bytes, or the buffers they share.
    used_bytes: usize,
    /// Insertion order over all logs: the log id of each cached batch.
    fifo: VecDeque<u64>,
    logs: HashMap<u64, VecDeque<Cached>>,
}

struct Cached {
    base_offset: i64,
    last_offset: i64,
    bytes: Bytes,
    /// The buffer `bytes` is a slice of, when several batches share one.
    shared: Option<Rc<SharedBuffer>>,
}

/// A buffer whose slices are several batches (a produce request's, stamped in place), charged
/// to the cache whole while any of them is cached. One per buffer per shard.
pub struct SharedBuffer {
    bytes: usize,
    /// Cached batches that are slices of it.
    holders: Cell<usize>,
}

impl SharedBuffer {
    /// A buffer of `bytes` (its whole allocation).
    pub fn new(bytes: usize) -> Rc<Self> {
        Rc::new(SharedBuffer {
            bytes,
            holders: Cell::new(0),
        })
    }
}

impl Cached {
    /// What caching this batch adds to the cache's memory (without caching it).
    fn cost(bytes: &Bytes, shared: Option<&Rc<SharedBuffer>>) -> usize {
        match shared {
            None => bytes.len(),
            Some(s) if s.holders.get() == 0 => s.bytes,
            Some(_) => 0,
        }
    }

    fn admit(&self) {
        if let Some(s) = &self.shared {
            s.holders.set(s.holders.get() + 1);
        }
    }

    /// What dropping this batch frees.
    fn release(&self) -> usize {
        match &self.shared {
            None => self.bytes.len(),
            Some(s) => {
                s.holders.set(s.holders.get() - 1);
                if s.holders.get() == 0 {
                    s.bytes
                } else {
                    0
                }
            }
        }
    }
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

    /// Memory the cached batches hold now (their bytes, or the whole buffers they are slices
    /// of); never above the limit.
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
            inner.used_bytes -= run.iter().map(Cached::release).sum::<usize>();
            inner.fifo.retain(|e| *e != log);
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
            dropped_bytes += c.release();
        }
        if run.is_empty() {
            inner.logs.remove(&log);
        }
        inner.used_bytes -= dropped_bytes;
        // The log's fifo entries are in its offset order: its first `dropped` ones go.
        let mut left = dropped;
        inner.fifo.retain(|e| {
            if left > 0 && *e == log {
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
            dropped_bytes += run.pop_back().expect("back exists").release();
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
            if *e != log {
                return true;
            }
            seen += 1;
            seen <= kept
        });
    }

    /// Adds a batch that `log` just appended after every batch it added before; `shared` is
    /// the buffer it is a slice of, if it shares one with other batches.
    pub(crate) fn insert(
        &self,
        log: u64,
        base_offset: i64,
        last_offset: i64,
        bytes: Bytes,
        shared: Option<Rc<SharedBuffer>>,
    ) {
        let fits_alone = match &shared {
            None => bytes.len() <= self.limit_bytes,
            Some(s) => s.bytes <= self.limit_bytes,
        };
        if !fits_alone {
            // Keep the run contiguous: anything older than this batch is now useless.
            self.unregister(log);
            return;
        }
        let mut inner = self.inner.borrow_mut();
        // Evicting may drop the last other batch of the same buffer, which makes this one
        // charge it again: the cost is looked at anew after each eviction.
        while inner.used_bytes + Cached::cost(&bytes, shared.as_ref()) > self.limit_bytes {
            let victim = inner.fifo.pop_front().expect("used bytes imply entries");
            let run = inner
                .logs
                .get_mut(&victim)
                .expect("fifo entries have a run");
            let evicted = run.pop_front().expect("run matches fifo");
            if run.is_empty() {
                inner.logs.remove(&victim);
            }
            inner.used_bytes -= evicted.release();
        }
        let cost = Cached::cost(&bytes, shared.as_ref());
        let run = inner.logs.entry(log).or_default();
        debug_assert!(run.back().is_none_or(|c| c.last_offset + 1 == base_offset));
        let cached = Cached {
            base_offset,
            last_offset,
            bytes,
            shared,
        };
        cached.admit();
        run.push_back(cached);
        inner.fifo.push_back(log);
        inner.used_bytes += cost;
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
        cache.insert(a, 0, 0, Bytes::from(vec![0; 40]), None);
        cache.insert(b, 0, 4, Bytes::from(vec![1; 40]), None);
        cache.insert(a, 1, 1, Bytes::from(vec![2; 40]), None);
        assert_eq!(cache.used_bytes(), 80);
        assert!(cache.read(a, 0, 10, 1000, false).is_none());
        let hit = cache.read(b, 3, 10, 1000, false).unwrap();
        assert_eq!(hit.bytes, 40);
        let hit = cache.read(a, 1, 10, 1000, false).unwrap();
        assert_eq!(hit.batches[0][0], 2);
        assert!(cache.read(a, 1, 1, 1000, false).unwrap().batches.is_empty());
        assert_eq!(cache.read(b, 0, 10, 10, true).unwrap().bytes, 40);
        assert_eq!(cache.read(b, 0, 10, 10, false).unwrap().bytes, 0);
        cache.insert(b, 5, 6, Bytes::from(vec![4; 10]), None);
        cache.forget_below(b, 5);
        assert!(
            cache.read(b, 3, 10, 1000, false).is_none(),
            "forgotten batch served"
        );
        assert_eq!(cache.read(b, 5, 10, 1000, false).unwrap().bytes, 10);
        assert_eq!(cache.used_bytes(), 50);
        cache.forget_below(b, 7);
        assert_eq!(cache.used_bytes(), 40);
        cache.insert(b, 7, 7, Bytes::from(vec![5; 10]), None);
        assert_eq!(cache.read(b, 7, 10, 1000, false).unwrap().bytes, 10);
        cache.unregister(b);
        assert_eq!(cache.used_bytes(), 40);
        cache.insert(a, 2, 2, Bytes::from(vec![3; 101]), None);
        assert_eq!(cache.used_bytes(), 0);
    }

    #[test]
    fn batches_sharing_a_buffer_charge_it_once_while_any_is_cached() {
        let cache = BatchCache::new(100);
        let (a, b) = (cache.register(), cache.register());
        // Two batches of one 60-byte request buffer on two logs, a third of another buffer.
        let request = SharedBuffer::new(60);
        cache.insert(a, 0, 0, Bytes::from(vec![0; 10]), Some(request.clone()));
        cache.insert(b, 0, 0, Bytes::from(vec![1; 20]), Some(request.clone()));
        assert_eq!(cache.used_bytes(), 60);
        assert_eq!(cache.read(b, 0, 10, 1000, false).unwrap().bytes, 20);
        // The first batch goes, the second still holds the whole buffer.
        cache.forget_below(a, 1);
        assert_eq!(cache.used_bytes(), 60);
        let other = SharedBuffer::new(50);
        // 60 + 50 is over the bound: the oldest batch (b's) goes, and the buffer with it.
        cache.insert(a, 1, 1, Bytes::from(vec![2; 5]), Some(other.clone()));
        assert_eq!(cache.used_bytes(), 50);
        assert!(cache.read(b, 0, 10, 1000, false).is_none());
        cache.insert(a, 2, 2, Bytes::from(vec![3; 5]), Some(other.clone()));
        cache.insert(a, 3, 3, Bytes::from(vec![4; 40]), None);
        assert_eq!(cache.used_bytes(), 90);
        // Evicting a's batch 1 leaves batch 2 holding `other`: nothing is freed until both go.
        cache.insert(b, 1, 1, Bytes::from(vec![5; 10]), None);
        assert_eq!(cache.used_bytes(), 100);
        cache.insert(b, 2, 2, Bytes::from(vec![6; 1]), None);
        assert_eq!(cache.used_bytes(), 51);
        assert_eq!(cache.read(a, 3, 10, 1000, false).unwrap().bytes, 40);
        // A buffer larger than the bound is not cached, even for a small batch.
        cache.insert(
            a,
            4,
            4,
            Bytes::from(vec![7; 1]),
            Some(SharedBuffer::new(101)),
        );
        assert!(cache.read(a, 3, 10, 1000, false).is_none());
        cache.unregister(b);
        assert_eq!(cache.used_bytes(), 0);
    }

    #[test]
    fn forget_from_drops_the_newest_batches_of_one_log() {
        let cache = BatchCache::new(100);
        let (a, b) = (cache.register(), cache.register());
        cache.insert(a, 0, 1, Bytes::from(vec![0; 10]), None);
        cache.insert(b, 0, 0, Bytes::from(vec![1; 10]), None);
        cache.insert(a, 2, 4, Bytes::from(vec![2; 10]), None);
        cache.insert(a, 5, 5, Bytes::from(vec![3; 10]), None);
        cache.forget_from(a, 3);
        assert_eq!(cache.used_bytes(), 20);
        assert!(
            cache.read(a, 2, 10, 1000, false).is_none(),
            "truncated batch served"
        );
        assert_eq!(cache.read(a, 0, 10, 1000, false).unwrap().bytes, 10);
        cache.insert(a, 2, 2, Bytes::from(vec![4; 10]), None);
        assert_eq!(cache.read(a, 0, 10, 1000, false).unwrap().bytes, 20);
        // Eviction still pairs fifo entries with runs: a's oldest batch goes first.
        cache.insert(b, 1, 1, Bytes::from(vec![5; 80]), None);
        assert_eq!(cache.used_bytes(), 100);
        assert!(cache.read(a, 0, 10, 1000, false).is_none());
        assert_eq!(cache.read(a, 2, 10, 1000, false).unwrap().bytes, 10);
        assert_eq!(cache.read(b, 0, 10, 1000, false).unwrap().bytes, 90);
        cache.forget_from(b, 0);
        assert_eq!(cache.used_bytes(), 10);
    }
}
