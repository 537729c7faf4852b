//! The quorum on disk: opening it from the metadata log and the hard-state file, and making a
//! Ready durable.
//!
//! `quorum-state`, beside the metadata log's segments, in the storage crate's framed envelope
//! (`magic "MRQS" | version 1 | length | body | CRC-32C`), replaced atomically (temporary
//! file, sync, rename, directory sync):
//!
//! ```text
//! body = term u64 | vote u64 | commit u64          (big-endian)
//! ```
//!
//! A damaged file is an error, never "no state": a voter that forgot its vote could vote twice
//! in one term.

use super::node::{quorum_log, Persist, Quorum, QuorumHardState};
use super::raft_log::{LogBase, RaftLog};
use super::{CommittedBatch, QuorumConfig, QuorumStateStore};
use crate::error::ReplicationError;
use crate::metadata::codec::{Reader, Writer};
use crate::metadata::log::store_error;
use crate::metadata::snapshot_file::{self, LoadedSnapshot, SnapshotStore};
use crate::metadata::{LogStore, MetadataLog, MetadataSnapshot};
use raft::eraftpb::{ConfState, Entry, HardState, Message};
use std::cell::RefCell;

/// Encodes the hard-state file's body.
pub fn encode_hard_state(hs: &QuorumHardState) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    let mut w = Writer(&mut out);
    w.u64(hs.term);
    w.u64(hs.vote);
    w.u64(hs.commit);
    out
}

/// Decodes the hard-state file's body.
pub fn decode_hard_state(body: &[u8]) -> Result<QuorumHardState, ReplicationError> {
    let mut r = Reader::new(body, "quorum-state");
    let hs = QuorumHardState {
        term: r.u64()?,
        vote: r.u64()?,
        commit: r.u64()?,
    };
    r.finish()?;
    Ok(hs)
}

/// The Raft term of the batches a single-voter controller wrote before the quorum existed
/// (stored with leader epoch 0).
pub const PRE_RAFT_TERM: u64 = 1;

/// Opens the quorum from what is durable: the snapshot where the log starts (when it was
/// cut below one), then the metadata log (one Raft entry per batch, term = the batch's leader
/// epoch) and the hard state. Refuses a log or state that breaks Raft's rules (a batch under
/// term 0, terms going down, a commit index past the log, `config.applied` past the commit
/// index), and a log cut below a snapshot that is no longer readable.
///
/// Finishes a snapshot install a crash interrupted: when the newest valid snapshot is not
/// a batch boundary of the log with its index and term (its file was written, the log was not
/// yet emptied), the log is emptied and starts at the snapshot's end (the snapshot is
/// committed; what the old log held past it disagreed with it, so was never committed).
/// `now_ms` stamps what that rebuilds.
pub async fn open<S: LogStore + SnapshotStore, H: QuorumStateStore>(
    config: &QuorumConfig,
    log: &MetadataLog<S>,
    state: &H,
    now_ms: i64,
) -> Result<Quorum, ReplicationError> {
    config.validate()?;
    if log.durable_end() != log.log_end_offset() {
        return Err(quorum_log(
            "the metadata log has unflushed appends: open the quorum on a recovered log".into(),
        ));
    }
    let (newest, skipped) = snapshot_file::load_newest(log.store(), |_| true).await?;
    for why in skipped {
        tracing::warn!(reason = %why, "skipping a metadata snapshot");
    }
    let mut base = log_base(log, newest.as_ref()).await?;
    let (mut entries, mut pre_raft_only) = replay_entries(log, base).await?;
    if let Some(newest) = &newest {
        let s = &newest.snapshot;
        let end = s.id().end_offset;
        let holds = |index: u64| {
            let at = index.checked_sub(base.index + 1)? as usize;
            entries
                .get(at)
                .map(|(e, end): &(Entry, i64)| (e.term, *end))
        };
        let consistent =
            (s.index == base.index && end == base.offset) || holds(s.index) == Some((s.term, end));
        if !consistent {
            tracing::info!(
                end_offset = end,
                index = s.index,
                "finishing the install of a leader's metadata snapshot"
            );
            log.reset_to(end, now_ms).await?;
            base = snapshot_base(s);
            entries.clear();
            pre_raft_only = base.term <= PRE_RAFT_TERM;
        }
    }
    let last_term = entries.last().map_or(base.term, |(e, _)| e.term);
    let hs = match state
        .read_quorum_state()
        .await
        .map_err(store_error("read quorum-state"))?
    {
        Some(body) => decode_hard_state(&body)?,
        // A log from before the quorum has no state file: its voter was alone and is in
        // the term its batches count as, having voted for nobody and committed nothing yet
        // as far as Raft knows (its first election commits the whole log again).
        None if pre_raft_only && last_term == PRE_RAFT_TERM => QuorumHardState {
            term: PRE_RAFT_TERM,
            ..QuorumHardState::default()
        },
        None => QuorumHardState::default(),
    };
    // What a snapshot covers is committed, whatever the durable commit index says.
    let hs = QuorumHardState {
        commit: hs.commit.max(base.index),
        ..hs
    };
    let last_index = base.index + entries.len() as u64;
    if hs.commit > last_index || config.applied > hs.commit {
        return Err(quorum_log(format!(
            "commit {} / applied {} beyond the log's last index {last_index} or the commit",
            hs.commit, config.applied
        )));
    }
    if hs.term < last_term {
        return Err(quorum_log(format!(
            "hard state term {} below the log's last term {last_term}",
            hs.term
        )));
    }
    let conf_state = ConfState {
        voters: config.voters.clone(),
        ..Default::default()
    };
    let hard_state = HardState {
        term: hs.term,
        vote: hs.vote,
        commit: hs.commit,
        ..Default::default()
    };
    let raft_log = RaftLog::new(base, entries, hard_state, conf_state);
    if let Some(LoadedSnapshot { snapshot, body }) = newest {
        if snapshot.index >= base.index && snapshot.index <= last_index {
            raft_log.set_snapshot(snapshot_base(&snapshot), body);
        }
    }
    Quorum::new(config, raft_log)
}

/// Where the log starts: after the snapshot ending at the log start (`newest` when it is
/// that one), or at the very beginning.
pub(crate) async fn log_base<S: LogStore + SnapshotStore>(
    log: &MetadataLog<S>,
    newest: Option<&LoadedSnapshot>,
) -> Result<LogBase, ReplicationError> {
    let start = log.log_start_offset();
    if start == 0 {
        return Ok(LogBase::default());
    }
    if let Some(n) = newest.filter(|n| n.snapshot.id().end_offset == start) {
        return Ok(snapshot_base(&n.snapshot));
    }
    let (at_start, _) =
        snapshot_file::load_newest(log.store(), |id| id.end_offset == start).await?;
    match at_start {
        Some(s) => Ok(snapshot_base(&s.snapshot)),
        None => Err(quorum_log(format!(
            "the metadata log starts at offset {start} but no readable snapshot ends there: \
             the node cannot know the index and term it starts after (wipe this node's \
             metadata log directory to rejoin from the leader's snapshot)"
        ))),
    }
}

pub(crate) fn snapshot_base(s: &MetadataSnapshot) -> LogBase {
    LogBase {
        index: s.index,
        term: s.term,
        offset: s.id().end_offset,
    }
}

/// The log's batches after `base` as Raft entries with their ends, checked: terms never go
/// down, term 0 only in the prefix a single voter wrote before Raft. Also whether the whole
/// log is such a prefix.
async fn replay_entries<S: LogStore>(
    log: &MetadataLog<S>,
    base: LogBase,
) -> Result<(Vec<(Entry, i64)>, bool), ReplicationError> {
    let mut entries = Vec::new();
    let mut last_term = base.term;
    let mut pre_raft_only = base.term <= PRE_RAFT_TERM;
    for (i, batch) in log
        .replay_batches(base.offset)
        .await?
        .into_iter()
        .enumerate()
    {
        // Term 0 is the single-voter controller's from before Raft: those batches form a
        // prefix of the log and count as term 1 (raft-rs reserves term 0 for "no entry").
        let term = match u64::try_from(batch.term) {
            Ok(0) if last_term <= PRE_RAFT_TERM => PRE_RAFT_TERM,
            Ok(t) => t,
            Err(_) => 0,
        };
        if term == 0 || term < last_term {
            return Err(quorum_log(format!(
                "batch at offset {} has term {} after term {last_term}",
                batch.base_offset, batch.term
            )));
        }
        pre_raft_only &= batch.term == 0;
        last_term = term;
        let entry = Entry {
            term,
            index: base.index + i as u64 + 1,
            data: super::entry::encode_entry_data(&batch.records).into(),
            ..Default::default()
        };
        entries.push((entry, batch.next_offset));
    }
    Ok((entries, pre_raft_only))
}

/// Makes `persist` durable in its order: hard state, cut, append (each batch must land at its
/// planned offset), flush. Any error leaves the quorum unusable: drop it and
/// [`open`] again from the recovered store, which holds a consistent state.
pub async fn persist<S: LogStore + SnapshotStore, H: QuorumStateStore>(
    log: &MetadataLog<S>,
    state: &H,
    persist: &Persist,
    now_ms: i64,
) -> Result<(), ReplicationError> {
    if let Some(hs) = &persist.hard_state {
        state
            .write_quorum_state(&encode_hard_state(hs))
            .await
            .map_err(store_error("write quorum-state"))?;
    }
    if let Some(install) = &persist.install {
        let (id, start) = (install.snapshot.id(), install.base.offset);
        snapshot_file::write_body(log.store(), id, &install.body, start).await?;
        log.reset_to(start, now_ms).await?;
    }
    if let Some(offset) = persist.truncate_to {
        let end = log.truncate_to(offset, now_ms).await?;
        if end != offset {
            return Err(quorum_log(format!(
                "truncation to {offset} ended the log at {end}"
            )));
        }
    }
    for batch in &persist.batches {
        let base = log.append(&batch.records, batch.term, now_ms)?;
        if base != batch.base_offset {
            return Err(quorum_log(format!(
                "entry {} landed at offset {base}, not {}",
                batch.index, batch.base_offset
            )));
        }
    }
    if persist.truncate_to.is_some() || !persist.batches.is_empty() || persist.install.is_some() {
        log.flush().await?;
    }
    Ok(())
}

/// What one Ready cycle leaves for the caller to apply, in order: an installed leader's
/// snapshot (its image replaces the caller's), then committed batches.
#[derive(Debug, Default)]
pub struct ReadyCycle {
    /// A snapshot installed in place of the log: its image is the new applied state.
    pub installed: Option<MetadataSnapshot>,
    /// Batches committed in the cycle, after the snapshot if there is one.
    pub committed: Vec<CommittedBatch>,
}

impl ReadyCycle {
    /// True when there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.installed.is_none() && self.committed.is_empty()
    }
}

/// Runs one whole Ready cycle, the way the controller's task drives the quorum: take the
/// Ready, hand its messages to `send` at once, persist (the only await; no borrow of the
/// quorum is held across it), advance, hand the later messages to `send`. Returns what to
/// apply (see [`ReadyCycle`]); empty when raft-rs had nothing.
pub async fn run_ready_cycle<S: LogStore + SnapshotStore, H: QuorumStateStore>(
    quorum: &RefCell<Quorum>,
    log: &MetadataLog<S>,
    state: &H,
    now_ms: i64,
    send: &mut impl FnMut(Vec<Message>),
) -> Result<ReadyCycle, ReplicationError> {
    let Some(ready) = quorum.borrow_mut().ready()? else {
        return Ok(ReadyCycle::default());
    };
    if !ready.messages.is_empty() {
        send(ready.messages);
    }
    let mut committed = ready.committed;
    persist(log, state, &ready.persist, now_ms).await?;
    let installed = ready.persist.install.map(|i| i.snapshot);
    let advance = quorum.borrow_mut().on_persisted()?;
    if !advance.messages.is_empty() {
        send(advance.messages);
    }
    committed.extend(advance.committed);
    Ok(ReadyCycle {
        installed,
        committed,
    })
}
