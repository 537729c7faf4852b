//! [`RaftLog`]: raft-rs's `Storage`, served from memory, mirroring the metadata log on disk.
//!
//! The log may begin after a snapshot (its *base*: the index, term and end offset of the last
//! batch the snapshot covers; index 0, term 0, offset 0 for a log never cut). Raft index
//! `i > base` is the `(i - base)`-th record batch from the log start. The table keeps, per
//! index, the entry (term and data) and the offset after its batch, so the batch of index `i`
//! spans `end(i - 1) .. end(i)` with `end(base) = ` the base offset. The table is rebuilt at
//! start by replaying the log, and changes only after the disk did (see `persist.rs`): what
//! raft-rs reads here is durable.
//!
//! Indexes at or below the base are compacted: raft-rs then sends the newest snapshot this
//! log holds ([`RaftLog::set_snapshot`]) instead of entries. No snapshot yet: raft-rs hears
//! "temporarily unavailable" and retries later.

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};
use std::cell::RefCell;
use std::rc::Rc;

/// Where a log begins: the last batch a snapshot covers (all zero for a log never cut).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogBase {
    /// Its Raft index.
    pub index: u64,
    /// Its term.
    pub term: u64,
    /// The offset after it: where the log's first batch starts.
    pub offset: i64,
}

/// The in-memory Raft log. Cheap to clone (shared): the quorum holds one handle and raft-rs
/// another. Lives on the controller's shard.
#[derive(Clone, Default)]
pub struct RaftLog {
    core: Rc<RefCell<Core>>,
}

#[derive(Default)]
struct Core {
    base: LogBase,
    /// Entry of index base + i at `entries[i - 1]`.
    entries: Vec<Entry>,
    /// The offset after the batch of index base + i at `ends[i - 1]`.
    ends: Vec<i64>,
    hard_state: HardState,
    conf_state: ConfState,
    /// The newest snapshot, what raft-rs sends a follower behind the base, and the last
    /// batch it covers.
    snapshot: Option<(Snapshot, LogBase)>,
}

impl Core {
    /// Position in `entries` of `index`, when the table holds it.
    fn slot(&self, index: u64) -> Option<usize> {
        let i = index.checked_sub(self.base.index + 1)? as usize;
        (i < self.entries.len()).then_some(i)
    }

    fn last_index(&self) -> u64 {
        self.base.index + self.entries.len() as u64
    }
}

impl RaftLog {
    /// A log starting after `base`, holding `entries` (indexes base + 1, base + 2, ... with
    /// their batch ends), `hard_state` and the static voters of `conf_state`.
    pub(crate) fn new(
        base: LogBase,
        entries: Vec<(Entry, i64)>,
        hard_state: HardState,
        conf_state: ConfState,
    ) -> Self {
        let (entries, ends) = entries.into_iter().unzip();
        RaftLog {
            core: Rc::new(RefCell::new(Core {
                base,
                entries,
                ends,
                hard_state,
                conf_state,
                snapshot: None,
            })),
        }
    }

    /// Where the log begins.
    pub fn base(&self) -> LogBase {
        self.core.borrow().base
    }

    /// The last index (the base's when the table is empty).
    pub fn last_index(&self) -> u64 {
        self.core.borrow().last_index()
    }

    /// The offset where the batch of `index` starts (for `index = last + 1`, the log end).
    /// None at or below the base, or past the end.
    pub fn base_offset(&self, index: u64) -> Option<i64> {
        let core = self.core.borrow();
        let base = core.base;
        if index <= base.index || index > core.last_index() + 1 {
            return None;
        }
        Some(match index - base.index {
            1 => base.offset,
            n => core.ends[n as usize - 2],
        })
    }

    /// The offset after the batch of `index` (the base offset for the base). None below the
    /// base or past the end.
    pub fn end_offset(&self, index: u64) -> Option<i64> {
        let core = self.core.borrow();
        if index == core.base.index {
            return Some(core.base.offset);
        }
        core.slot(index).map(|i| core.ends[i])
    }

    /// The term of `index`, for the base too. None below the base or past the end.
    pub fn term_of(&self, index: u64) -> Option<u64> {
        let core = self.core.borrow();
        if index == core.base.index {
            return Some(core.base.term);
        }
        core.slot(index).map(|i| core.entries[i].term)
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
        assert!(
            first.index > core.base.index && first.index <= core.last_index() + 1,
            "entry {} outside the log after {} up to {}",
            first.index,
            core.base.index,
            core.last_index()
        );
        let keep = (first.index - core.base.index - 1) as usize;
        core.entries.truncate(keep);
        core.ends.truncate(keep);
        core.entries.extend(entries);
        core.ends.extend(ends);
    }

    /// Forgets every index up to `index` (at most the last): the disk no longer needs to
    /// hold them, a snapshot covers them.
    pub(crate) fn compact_to(&self, index: u64) {
        let mut core = self.core.borrow_mut();
        if index <= core.base.index {
            return;
        }
        let i = core.slot(index).expect("compaction within the log");
        core.base = LogBase {
            index,
            term: core.entries[i].term,
            offset: core.ends[i],
        };
        core.entries.drain(..=i);
        core.ends.drain(..=i);
    }

    /// Empties the table and starts it after `base` (an installed snapshot's last batch).
    pub(crate) fn reset(&self, base: LogBase) {
        let mut core = self.core.borrow_mut();
        core.base = base;
        core.entries.clear();
        core.ends.clear();
    }

    /// Keeps `body` (a snapshot file's) as the snapshot of the batch `point` (its index,
    /// term and end offset), what raft-rs sends followers behind the base. An older one than
    /// the one held is ignored.
    pub(crate) fn set_snapshot(&self, point: LogBase, body: bytes::Bytes) {
        let mut core = self.core.borrow_mut();
        if core
            .snapshot
            .as_ref()
            .is_some_and(|s| s.1.index >= point.index)
        {
            return;
        }
        let metadata = SnapshotMetadata {
            conf_state: Some(core.conf_state.clone()).into(),
            index: point.index,
            term: point.term,
            ..Default::default()
        };
        let snapshot = Snapshot {
            data: body,
            metadata: Some(metadata).into(),
            ..Default::default()
        };
        core.snapshot = Some((snapshot, point));
    }

    /// The snapshot held for followers: the last batch it covers and its file body.
    pub fn snapshot_file(&self) -> Option<(LogBase, bytes::Bytes)> {
        let core = self.core.borrow();
        core.snapshot
            .as_ref()
            .map(|(s, point)| (*point, s.data.clone()))
    }

    /// The last batch the snapshot held for followers covers, if one is held.
    pub fn snapshot_point(&self) -> Option<LogBase> {
        self.core.borrow().snapshot.as_ref().map(|s| s.1)
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
        core.slot(index).map(|i| core.entries[i].clone())
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
        if low <= core.base.index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > core.last_index() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let from = (low - core.base.index - 1) as usize;
        let to = (high - core.base.index - 1) as usize;
        let mut out = core.entries[from..to].to_vec();
        raft::util::limit_size(&mut out, max_size.into());
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let core = self.core.borrow();
        if idx == core.base.index {
            return Ok(core.base.term);
        }
        if idx < core.base.index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        core.slot(idx)
            .map(|i| core.entries[i].term)
            .ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.core.borrow().base.index + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.core.borrow().last_index())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let core = self.core.borrow();
        match &core.snapshot {
            Some((s, point)) if point.index >= request_index.max(core.base.index) => Ok(s.clone()),
            _ => Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            )),
        }
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
            LogBase::default(),
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
        assert!(log.snapshot(1, 2).is_err(), "no snapshot held yet");
    }

    #[test]
    fn a_compacted_log_answers_from_its_base_and_offers_its_snapshot() {
        let log = RaftLog::new(
            LogBase::default(),
            vec![(entry(1, 1), 2), (entry(2, 1), 4), (entry(3, 2), 7)],
            HardState::default(),
            ConfState::default(),
        );
        log.compact_to(2);
        let base = LogBase {
            index: 2,
            term: 1,
            offset: 4,
        };
        assert_eq!(log.base(), base);
        assert_eq!((log.first_index().unwrap(), log.last_index()), (3, 3));
        assert_eq!((log.term(2).unwrap(), log.term(3).unwrap()), (1, 2));
        let compacted = raft::Error::Store(StorageError::Compacted);
        assert_eq!(log.term(1).unwrap_err(), compacted);
        let ctx = GetEntriesContext::empty(false);
        assert_eq!(log.entries(2, 4, None, ctx).unwrap_err(), compacted);
        assert_eq!((log.base_offset(3), log.end_offset(2)), (Some(4), Some(4)));
        assert_eq!((log.base_offset(2), log.end_offset(1)), (None, None));
        log.append(vec![entry(4, 2)], vec![9]);
        assert_eq!(log.entry(4).map(|e| e.term), Some(2));
        assert!(log.snapshot(0, 2).is_err(), "no snapshot held yet");
        let point = |index, term, offset| LogBase {
            index,
            term,
            offset,
        };
        log.set_snapshot(point(3, 2, 7), bytes::Bytes::from_static(b"image"));
        log.set_snapshot(point(1, 1, 2), bytes::Bytes::from_static(b"older"));
        assert_eq!(log.snapshot_point(), Some(point(3, 2, 7)));
        let snap = log.snapshot(0, 2).unwrap();
        assert_eq!(
            (snap.get_metadata().index, &snap.data[..]),
            (3, &b"image"[..])
        );
        assert!(log.snapshot(4, 2).is_err(), "older than asked for");
        let installed = LogBase {
            index: 10,
            term: 3,
            offset: 20,
        };
        log.reset(installed);
        assert_eq!((log.last_index(), log.base_offset(11)), (10, Some(20)));
        assert!(log.snapshot(0, 2).is_err(), "older than the new base");
    }
}
