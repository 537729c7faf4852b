//! [`RaftLog`]: raft-rs's `Storage`, served from memory, mirroring the metadata log on disk.
//!
//! Raft index `i` (1-based) is the `i`-th record batch of the metadata log. The table keeps,
//! per index, the entry (term and data) and the offset after its batch, so the batch of index
//! `i` spans `end(i - 1) .. end(i)` with `end(0) = 0`. The table is rebuilt at start by
//! replaying the log, and changes only after the disk did (see `persist.rs`): what raft-rs
//! reads here is durable.
//!
//! No compaction yet: `first_index` is always 1 and [`raft::Storage::snapshot`] answers
//! "temporarily unavailable" (raft-rs then retries later; with the whole log kept it never
//! needs a snapshot, because no entry is ever reported compacted).

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};
use std::cell::RefCell;
use std::rc::Rc;

/// The in-memory Raft log. Cheap to clone (shared): the quorum holds one handle and raft-rs
/// another. Lives on the controller's shard.
#[derive(Clone, Default)]
pub struct RaftLog {
    core: Rc<RefCell<Core>>,
}

#[derive(Default)]
struct Core {
    /// Entry of index i at `entries[i - 1]`.
    entries: Vec<Entry>,
    /// The offset after the batch of index i at `ends[i - 1]`.
    ends: Vec<i64>,
    hard_state: HardState,
    conf_state: ConfState,
}

impl RaftLog {
    /// A log holding `entries` (indexes 1, 2, ... with their batch ends), `hard_state` and the
    /// static voters of `conf_state`.
    pub(crate) fn new(
        entries: Vec<(Entry, i64)>,
        hard_state: HardState,
        conf_state: ConfState,
    ) -> Self {
        let (entries, ends) = entries.into_iter().unzip();
        RaftLog {
            core: Rc::new(RefCell::new(Core {
                entries,
                ends,
                hard_state,
                conf_state,
            })),
        }
    }

    /// The last index (0 when empty).
    pub fn last_index(&self) -> u64 {
        self.core.borrow().entries.len() as u64
    }

    /// The offset where the batch of `index` starts (for `index = last + 1`, the log end).
    /// None when `index` is 0 or past the end.
    pub fn base_offset(&self, index: u64) -> Option<i64> {
        let core = self.core.borrow();
        match index {
            0 => None,
            1 => Some(0),
            i if i as usize <= core.ends.len() + 1 => Some(core.ends[i as usize - 2]),
            _ => None,
        }
    }

    /// The offset after the batch of `index` (0 for index 0). None past the end.
    pub fn end_offset(&self, index: u64) -> Option<i64> {
        let core = self.core.borrow();
        match index {
            0 => Some(0),
            i => core.ends.get(i as usize - 1).copied(),
        }
    }

    /// The hard state last persisted (with the commit index raised by later Readies).
    pub fn hard_state(&self) -> HardState {
        self.core.borrow().hard_state.clone()
    }

    /// Replaces everything from the first new entry's index on with `entries` (their batch
    /// ends alongside). Called only once the disk holds them.
    pub(crate) fn append(&self, entries: Vec<Entry>, ends: Vec<i64>) {
        let mut core = self.core.borrow_mut();
        let Some(first) = entries.first() else {
            return;
        };
        let keep = first.index as usize - 1;
        assert!(
            keep <= core.entries.len(),
            "a gap before index {}",
            first.index
        );
        core.entries.truncate(keep);
        core.ends.truncate(keep);
        core.entries.extend(entries);
        core.ends.extend(ends);
    }

    pub(crate) fn set_hard_state(&self, hard_state: HardState) {
        self.core.borrow_mut().hard_state = hard_state;
    }

    pub(crate) fn set_commit(&self, commit: u64) {
        self.core.borrow_mut().hard_state.commit = commit;
    }

    /// The entry at `index`, if the log holds it.
    pub fn entry(&self, index: u64) -> Option<Entry> {
        let core = self.core.borrow();
        index
            .checked_sub(1)
            .and_then(|i| core.entries.get(i as usize).cloned())
    }
}

impl Storage for RaftLog {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let core = self.core.borrow();
        Ok(RaftState::new(
            core.hard_state.clone(),
            core.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let core = self.core.borrow();
        if low < 1 {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > core.entries.len() as u64 + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let mut out = core.entries[low as usize - 1..high as usize - 1].to_vec();
        raft::util::limit_size(&mut out, max_size.into());
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == 0 {
            return Ok(0);
        }
        let core = self.core.borrow();
        core.entries
            .get(idx as usize - 1)
            .map(|e| e.term)
            .ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.core.borrow().entries.len() as u64)
    }

    fn snapshot(&self, _request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    #[test]
    fn indexes_map_to_batch_offsets_and_conflicts_replace_the_tail() {
        let log = RaftLog::new(
            vec![(entry(1, 1), 1), (entry(2, 1), 4), (entry(3, 2), 5)],
            HardState::default(),
            ConfState::default(),
        );
        assert_eq!(log.base_offset(1), Some(0));
        assert_eq!(log.base_offset(3), Some(4));
        assert_eq!(log.base_offset(4), Some(5), "the log end");
        assert_eq!(log.base_offset(5), None);
        assert_eq!((log.end_offset(0), log.end_offset(3)), (Some(0), Some(5)));
        assert_eq!(log.term(3).unwrap(), 2);
        assert!(log.term(4).is_err());
        let ctx = GetEntriesContext::empty(false);
        assert_eq!(log.entries(2, 4, None, ctx).unwrap().len(), 2);
        let ctx = GetEntriesContext::empty(false);
        assert!(
            log.entries(2, 5, None, ctx).is_err(),
            "past the end: an error"
        );
        log.append(vec![entry(3, 3), entry(4, 3)], vec![6, 9]);
        assert_eq!(log.last_index(), 2 + 2);
        assert_eq!((log.term(3).unwrap(), log.end_offset(4)), (3, Some(9)));
        assert!(log.snapshot(1, 2).is_err());
    }
}
