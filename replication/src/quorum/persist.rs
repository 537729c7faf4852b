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
use super::raft_log::RaftLog;
use super::{CommittedBatch, QuorumConfig, QuorumStateStore};
use crate::error::ReplicationError;
use crate::metadata::codec::{Reader, Writer};
use crate::metadata::log::store_error;
use crate::metadata::{LogStore, MetadataLog};
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

/// Opens the quorum from what is durable: replays the metadata log (one Raft entry per batch,
/// term = the batch's leader epoch) and reads the hard state. Refuses a log or state that
/// breaks Raft's rules (a batch under term 0, terms going down, a commit index past the log,
/// `config.applied` past the commit index).
pub async fn open<S: LogStore, H: QuorumStateStore>(
    config: &QuorumConfig,
    log: &MetadataLog<S>,
    state: &H,
) -> Result<Quorum, ReplicationError> {
    config.validate()?;
    if log.durable_end() != log.log_end_offset() {
        return Err(quorum_log(
            "the metadata log has unflushed appends: open the quorum on a recovered log".into(),
        ));
    }
    let mut entries = Vec::new();
    let mut last_term = 0u64;
    let mut pre_raft_only = true;
    for (i, batch) in log.replay_batches(0).await?.into_iter().enumerate() {
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
            index: i as u64 + 1,
            data: super::entry::encode_entry_data(&batch.records).into(),
            ..Default::default()
        };
        entries.push((entry, batch.next_offset));
    }
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
    let last_index = entries.len() as u64;
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
    Quorum::new(config, RaftLog::new(entries, hard_state, conf_state))
}

/// Makes `persist` durable in its order: hard state, cut, append (each batch must land at its
/// planned offset), flush. Any error leaves the quorum unusable: drop it and
/// [`open`] again from the recovered store, which holds a consistent state.
pub async fn persist<S: LogStore, H: QuorumStateStore>(
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
    if persist.truncate_to.is_some() || !persist.batches.is_empty() {
        log.flush().await?;
    }
    Ok(())
}

/// Runs one whole Ready cycle, the way the controller's task drives the quorum: take the
/// Ready, hand its messages to `send` at once, persist (the only await; no borrow of the
/// quorum is held across it), advance, hand the later messages to `send`. Returns every batch
/// committed in the cycle, in order, for the caller to apply; empty when raft-rs had nothing.
pub async fn run_ready_cycle<S: LogStore, H: QuorumStateStore>(
    quorum: &RefCell<Quorum>,
    log: &MetadataLog<S>,
    state: &H,
    now_ms: i64,
    send: &mut impl FnMut(Vec<Message>),
) -> Result<Vec<CommittedBatch>, ReplicationError> {
    let Some(ready) = quorum.borrow_mut().ready()? else {
        return Ok(Vec::new());
    };
    if !ready.messages.is_empty() {
        send(ready.messages);
    }
    let mut committed = ready.committed;
    persist(log, state, &ready.persist, now_ms).await?;
    let advance = quorum.borrow_mut().on_persisted()?;
    if !advance.messages.is_empty() {
        send(advance.messages);
    }
    committed.extend(advance.committed);
    Ok(committed)
}
