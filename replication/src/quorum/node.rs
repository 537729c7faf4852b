//! [`Quorum`]: the sans-I/O driver around raft-rs's `RawNode`.

use super::codec::check_entry;
use super::entry::{decode_entry_data, encode_entry_data};
use super::raft_log::{LogBase, RaftLog};
use super::{QuorumConfig, QuorumRole, VoterProgress};
use crate::error::ReplicationError;
use crate::metadata::log::BATCH_BYTES_MAX;
use crate::metadata::{LogEntry, MetadataRecord, MetadataSnapshot};
use millrace_wire::records::{BatchBuilder, NewRecord};
use raft::eraftpb::{Entry, HardState, Message, MessageType};
use raft::{ProgressState, RawNode, Ready, SnapshotStatus, StateRole};
use std::collections::BTreeMap;

/// One controller's Raft node over the metadata log. Lives on the controller's shard.
///
/// Inputs: [`Quorum::tick`], [`Quorum::step`], [`Quorum::propose`]. Outputs come from
/// [`Quorum::ready`] (send these messages now, apply these batches, persist this) and, once the
/// caller has persisted, from [`Quorum::on_persisted`] (send these, apply these). Between the
/// two no input is accepted ([`ReplicationError::QuorumBusy`]): raft-rs forbids stepping while
/// a Ready is out.
pub struct Quorum {
    node: RawNode<RaftLog>,
    log: RaftLog,
    id: u64,
    voters: Vec<u64>,
    pending: Option<Pending>,
    /// The snapshot of the last MsgSnapshot stepped, decoded (checked there, used by the
    /// Ready that installs it).
    received: Option<MetadataSnapshot>,
    /// Leader: ticks each follower has spent waiting for a snapshot it was sent.
    snapshot_ticks: BTreeMap<u64, usize>,
    /// The last index handed out as committed (or installed): raft-rs never reads entries
    /// up to it again, so the log may be compacted up to it.
    handed_out: u64,
    election_tick: usize,
}

/// A Ready handed out and not yet persisted.
struct Pending {
    ready: Ready,
    entries: Vec<Entry>,
    ends: Vec<i64>,
    hard_state: Option<HardState>,
    install: Option<Install>,
}

/// What [`Quorum::ready`] hands out.
#[derive(Debug)]
pub struct QuorumReady {
    /// Send now, before persisting (a leader's appends and heartbeats: it replicates while its
    /// own disk syncs).
    pub messages: Vec<Message>,
    /// Committed batches to apply, in order, before [`Quorum::on_persisted`].
    pub committed: Vec<CommittedBatch>,
    /// What to make durable before [`Quorum::on_persisted`] (possibly nothing).
    pub persist: Persist,
}

/// What [`Quorum::on_persisted`] hands out.
#[derive(Debug, Default)]
pub struct QuorumAdvance {
    /// Send now: votes and append responses, which promise what is now durable, and a
    /// leader's messages made after its own append became durable.
    pub messages: Vec<Message>,
    /// More committed batches to apply, in order.
    pub committed: Vec<CommittedBatch>,
}

/// Durable work of one Ready, in this order: write the hard state, install the snapshot
/// (write its file, then empty the log and start it at the snapshot's end), cut the log,
/// append the batches, flush. `persist::persist` does exactly that. Hard state first, so that
/// at every crash point the durable term is at least every durable entry's term (a node never
/// holds entries of a term it could still vote in afresh), and its commit index is clamped to
/// what was durable before this Ready, so it never points past the durable log (with a
/// snapshot to install, to the commit index already durable: the old log may disagree with
/// the snapshot below it). A crash after the snapshot file and before the log is emptied is
/// finished at the next open (`persist::open`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Persist {
    /// A leader's snapshot to install in place of the whole log.
    pub install: Option<Install>,
    /// Remove every batch from this offset on first: a follower's entries that conflict with
    /// the leader's (never committed ones).
    pub truncate_to: Option<i64>,
    /// Batches to append at the log end, in order.
    pub batches: Vec<BatchToWrite>,
    /// The hard state to write, if it changed (commit clamped, see above).
    pub hard_state: Option<QuorumHardState>,
}

impl Persist {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.install.is_none()
            && self.truncate_to.is_none()
            && self.batches.is_empty()
            && self.hard_state.is_none()
    }
}

/// A snapshot received from the leader, to install: the log afterwards starts after `base`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Install {
    /// The snapshot (its image replaces the caller's once persisted).
    pub snapshot: MetadataSnapshot,
    /// Its file body, as the leader sent it.
    pub body: bytes::Bytes,
    /// Where the log starts afterwards.
    pub base: LogBase,
}

/// One Raft entry as the metadata log batch that stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchToWrite {
    /// Its Raft index.
    pub index: u64,
    /// Its term: the batch's partition leader epoch.
    pub term: i32,
    /// The offset its first record must get (the append is checked against it).
    pub base_offset: i64,
    /// Its records.
    pub records: Vec<MetadataRecord>,
}

/// Raft's hard state: what a voter must never forget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuorumHardState {
    /// The current term.
    pub term: u64,
    /// Who this node voted for in `term` (0: nobody).
    pub vote: u64,
    /// The commit index known when written (may lag: the commit index need not be durable).
    pub commit: u64,
}

/// A committed batch: one Raft entry, its records at their offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedBatch {
    /// Its Raft index.
    pub index: u64,
    /// Its term.
    pub term: i32,
    /// The offset of its first record.
    pub base_offset: i64,
    /// Its records (one `NoOp` for a leader's empty entry).
    pub records: Vec<MetadataRecord>,
}

impl CommittedBatch {
    /// Its records as log entries, at offsets `base_offset`, `base_offset + 1`, ...
    pub fn log_entries(&self) -> impl Iterator<Item = LogEntry> + '_ {
        self.records
            .iter()
            .enumerate()
            .map(move |(i, record)| LogEntry {
                offset: self.base_offset + i as i64,
                term: self.term,
                record: record.clone(),
            })
    }
}

impl Quorum {
    /// A node over `log` (rebuilt from disk by `persist::open`, which is how callers get one).
    pub(crate) fn new(config: &QuorumConfig, log: RaftLog) -> Result<Self, ReplicationError> {
        let raft_config = config.raft_config()?;
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let node = RawNode::new(&raft_config, log.clone(), &logger)?;
        Ok(Quorum {
            node,
            log,
            id: config.node_id,
            voters: config.voters.clone(),
            pending: None,
            received: None,
            snapshot_ticks: BTreeMap::new(),
            handed_out: 0,
            election_tick: config.election_tick,
        })
    }

    /// One clock tick (`tick_ms` of the config, 100 ms in production).
    pub fn tick(&mut self) -> Result<(), ReplicationError> {
        self.check_idle()?;
        self.node.tick();
        self.expire_snapshots();
        Ok(())
    }

    /// raft-rs stops sending to a follower it sent a snapshot until the follower answers or
    /// the snapshot is reported failed; a lost snapshot message would stall it for good.
    /// After two election timeouts without an answer the snapshot counts as failed, and
    /// raft-rs probes the follower again (sending a fresh snapshot if it still needs one).
    fn expire_snapshots(&mut self) {
        if self.node.raft.state != StateRole::Leader {
            self.snapshot_ticks.clear();
            return;
        }
        let waiting: Vec<u64> = self
            .node
            .raft
            .prs()
            .iter()
            .filter(|(_, pr)| pr.state == ProgressState::Snapshot)
            .map(|(&id, _)| id)
            .collect();
        self.snapshot_ticks.retain(|id, _| waiting.contains(id));
        for id in waiting {
            let ticks = self.snapshot_ticks.entry(id).or_default();
            *ticks += 1;
            if *ticks > 2 * self.election_tick {
                self.snapshot_ticks.remove(&id);
                self.node.report_snapshot(id, SnapshotStatus::Failure);
            }
        }
    }

    /// A message from a peer (decoded by `codec::decode_message`). Refused: a message for
    /// another node, from a node that is not a voter, or carrying entries this log never
    /// holds (conf changes, contexts, data that is not a list of records).
    pub fn step(&mut self, message: Message) -> Result<(), ReplicationError> {
        self.check_idle()?;
        if message.to != self.id {
            return Err(refused("addressed to another node"));
        }
        if message.from == self.id || !self.voters.contains(&message.from) {
            return Err(refused("sender is not another voter"));
        }
        for entry in message.entries.iter() {
            check_entry(entry)?;
            decode_entry_data(&entry.data)?;
        }
        if message.get_msg_type() == MessageType::MsgSnapshot {
            self.received = Some(self.check_snapshot(&message)?);
        }
        let mut message = message;
        self.forget_lost_entries(&mut message);
        self.node.step(message)?;
        Ok(())
    }

    /// A leader's snapshot must hold a metadata image whose index and term are the
    /// message's, for these voters.
    fn check_snapshot(&self, message: &Message) -> Result<MetadataSnapshot, ReplicationError> {
        let snapshot = message.get_snapshot();
        let metadata = snapshot.get_metadata();
        if metadata.get_conf_state().voters != self.voters {
            return Err(refused("snapshot for other voters"));
        }
        let decoded = MetadataSnapshot::decode_body(&snapshot.data)?;
        if decoded.index != metadata.index || decoded.term != metadata.term {
            return Err(refused("snapshot image at another index or term"));
        }
        Ok(decoded)
    }

    /// Handles a voter that lost entries it had acknowledged (its data directory was wiped and
    /// it restarted empty), which Raft itself assumes never happens:
    ///
    /// * on that voter, a heartbeat commits up to what the leader believes it holds, past its
    ///   log end (raft-rs panics on that): the commit is cut to the log end;
    /// * on the leader, the voter's refusal of the next append names its log end below what
    ///   the leader recorded as matched (raft-rs ignores such a refusal as stale and would
    ///   never send the missing entries): the leader forgets the match and probes from the
    ///   voter's log end, so the whole log is replicated to it again.
    ///
    /// A wiped voter can still vote for a candidate that lacks committed entries; Kafka's
    /// static quorums share that hazard (KIP-853 removes it with directory ids). Rebuild at
    /// most one voter at a time, after the others are caught up.
    fn forget_lost_entries(&mut self, message: &mut Message) {
        match message.get_msg_type() {
            MessageType::MsgHeartbeat => {
                let last = self.node.raft.raft_log.last_index();
                message.commit = message.commit.min(last);
            }
            MessageType::MsgAppendResponse
                if message.reject && self.node.raft.state == StateRole::Leader =>
            {
                if let Some(pr) = self.node.raft.mut_prs().get_mut(message.from) {
                    if message.reject_hint < pr.matched {
                        pr.matched = message.reject_hint;
                        pr.become_probe();
                    }
                }
            }
            _ => {}
        }
    }

    /// Proposes `records` as one batch (one Raft entry). Accepted only on the leader; the
    /// batch is committed when a later Ready hands it out as committed (its index is then
    /// the last index at the time of this call + 1, unless leadership changed). Returns that
    /// expected index. [`ReplicationError::NotLeader`] elsewhere, with a leader hint.
    pub fn propose(&mut self, records: &[MetadataRecord]) -> Result<u64, ReplicationError> {
        self.check_idle()?;
        if records.is_empty() {
            return Err(ReplicationError::EmptyAppend);
        }
        // raft-rs 0.7 would forward a follower's proposal to the leader (it has no switch to
        // turn that off); refusing here lets the caller redirect the client instead, as
        // Kafka's NOT_CONTROLLER does, and keeps MsgPropose off the wire.
        if self.node.raft.state != StateRole::Leader {
            return Err(ReplicationError::NotLeader {
                leader_hint: self.leader_id(),
            });
        }
        check_batch_size(records)?;
        let index = self.node.raft.raft_log.last_index() + 1;
        match self.node.propose(Vec::new(), encode_entry_data(records)) {
            Ok(()) => Ok(index),
            Err(raft::Error::ProposalDropped) => Err(ReplicationError::ProposalDropped),
            Err(e) => Err(e.into()),
        }
    }

    /// Starts an election now instead of after the election timeout: a lone voter becomes
    /// leader at once (its start-up then waits for no timer); with peers it is a normal
    /// (pre-)campaign.
    pub fn campaign(&mut self) -> Result<(), ReplicationError> {
        self.check_idle()?;
        self.node.campaign()?;
        Ok(())
    }

    /// True when [`Quorum::ready`] would hand out work (and no Ready is out).
    pub fn has_ready(&self) -> bool {
        self.pending.is_none() && self.node.has_ready()
    }

    /// The work raft-rs has for the caller, if any. The caller sends `messages`, applies
    /// `committed`, makes `persist` durable, then calls [`Quorum::on_persisted`].
    pub fn ready(&mut self) -> Result<Option<QuorumReady>, ReplicationError> {
        self.check_idle()?;
        if !self.node.has_ready() {
            return Ok(None);
        }
        let mut ready = self.node.ready();
        let install = self.install(&ready)?;
        let messages = ready.take_messages();
        let committed = self.committed(ready.take_committed_entries())?;
        let entries = ready.take_entries();
        let hard_state = ready.hs().cloned();
        let (persist, ends) = self.plan(&entries, hard_state.as_ref(), install.clone())?;
        self.pending = Some(Pending {
            ready,
            entries,
            ends,
            hard_state,
            install,
        });
        Ok(Some(QuorumReady {
            messages,
            committed,
            persist,
        }))
    }

    /// The last Ready's `persist` is durable (and its committed batches applied): raft-rs
    /// advances, and hands out what may go only now.
    pub fn on_persisted(&mut self) -> Result<QuorumAdvance, ReplicationError> {
        let Pending {
            mut ready,
            entries,
            ends,
            hard_state,
            install,
        } = self
            .pending
            .take()
            .ok_or(ReplicationError::NoReadyOutstanding)?;
        if let Some(install) = install {
            self.log.reset(install.base);
            self.log.set_snapshot(install.base, install.body);
        }
        self.log.append(entries, ends);
        if let Some(hs) = hard_state {
            self.log.set_hard_state(hs);
        }
        let mut messages = ready.take_persisted_messages();
        let mut light = self.node.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.log.set_commit(commit);
        }
        messages.extend(light.take_messages());
        let committed = self.committed(light.take_committed_entries())?;
        self.node.advance_apply();
        Ok(QuorumAdvance {
            messages,
            committed,
        })
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The static voters, sorted.
    pub fn voters(&self) -> &[u64] {
        &self.voters
    }

    /// The leader this node knows of.
    pub fn leader_id(&self) -> Option<u64> {
        Some(self.node.raft.leader_id).filter(|&id| id != raft::INVALID_ID)
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.node.raft.term
    }

    /// The commit index: entries up to it are committed (as far as this node knows).
    pub fn commit_index(&self) -> u64 {
        self.node.raft.raft_log.committed
    }

    /// The offset after the last committed batch this node holds durably: observers may
    /// read the metadata log below it.
    pub fn committed_end_offset(&self) -> i64 {
        let index = self.commit_index().min(self.log.last_index());
        self.log.end_offset(index).expect("index within the log")
    }

    /// The last index in the durable log.
    pub fn last_index(&self) -> u64 {
        self.log.last_index()
    }

    /// This node's role.
    pub fn role(&self) -> QuorumRole {
        match self.node.raft.state {
            StateRole::Leader => QuorumRole::Leader,
            StateRole::Candidate => QuorumRole::Candidate,
            StateRole::PreCandidate => QuorumRole::PreCandidate,
            StateRole::Follower => QuorumRole::Follower,
        }
    }

    /// Per voter, what the leader knows of its log, sorted by id; empty unless this node
    /// leads (only the leader tracks progress, as only it answers DescribeQuorum).
    pub fn voter_progress(&self) -> Vec<VoterProgress> {
        if self.node.raft.state != StateRole::Leader {
            return Vec::new();
        }
        let mut out: Vec<VoterProgress> = self
            .node
            .raft
            .prs()
            .iter()
            .map(|(&id, p)| VoterProgress {
                id,
                match_index: p.matched,
                next_index: p.next_idx,
                recent_active: p.recent_active,
            })
            .collect();
        out.sort_by_key(|p| p.id);
        out
    }

    /// The in-memory Raft log (read-only use: offsets of indexes, entries).
    pub fn raft_log(&self) -> &RaftLog {
        &self.log
    }

    /// A snapshot of the image after the batch `point` was written, as the file `body`:
    /// offered to followers (and observers) that need entries the log no longer holds.
    pub fn offer_snapshot(&self, point: LogBase, body: bytes::Bytes) {
        self.log.set_snapshot(point, body);
    }

    /// The log on disk was cut below the batch after `index` (a snapshot covers it): the
    /// table forgets those entries. `index` must have been handed out as committed (so
    /// raft-rs will not read it again) and be in the durable log.
    pub fn compact_to(&self, index: u64) -> Result<(), ReplicationError> {
        if index > self.handed_out || index > self.log.last_index() {
            return Err(quorum_log(format!(
                "compaction to {index} past the committed index handed out {} or the log's \
                 last {}",
                self.handed_out,
                self.log.last_index()
            )));
        }
        self.log.compact_to(index);
        Ok(())
    }

    fn check_idle(&self) -> Result<(), ReplicationError> {
        match self.pending {
            Some(_) => Err(ReplicationError::QuorumBusy),
            None => Ok(()),
        }
    }

    /// The snapshot a Ready asks to install, checked when its message was stepped.
    fn install(&mut self, ready: &Ready) -> Result<Option<Install>, ReplicationError> {
        if ready.snapshot().get_metadata().index == 0 {
            return Ok(None);
        }
        let raw = ready.snapshot();
        let metadata = raw.get_metadata();
        let snapshot = match self.received.take() {
            Some(s) if s.index == metadata.index && s.term == metadata.term => s,
            _ => MetadataSnapshot::decode_body(&raw.data)?,
        };
        self.handed_out = self.handed_out.max(snapshot.index);
        let base = LogBase {
            index: snapshot.index,
            term: snapshot.term,
            offset: snapshot.id().end_offset,
        };
        Ok(Some(Install {
            snapshot,
            body: raw.data.clone(),
            base,
        }))
    }

    /// Where the new entries go on disk: a cut when they replace existing ones, then one
    /// batch each from the resulting log end (the installed snapshot's end, with one).
    fn plan(
        &self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
        install: Option<Install>,
    ) -> Result<(Persist, Vec<i64>), ReplicationError> {
        // The hard state is written first (see `Persist`), so its commit index may name only
        // entries already durable: those below this Ready's first new entry. Committed
        // entries are never cut, so the durable commit index never moves back. Before an
        // install only the commit already durable is safe: the old log's entries up to the
        // snapshot's index may not be the committed ones.
        let durable_last = match &install {
            Some(_) => self.log.hard_state().commit,
            None => entries
                .first()
                .map_or(self.log.last_index(), |e| e.index - 1),
        };
        let base = install.as_ref().map(|i| i.base);
        let mut persist = Persist {
            hard_state: hard_state.map(|hs| QuorumHardState {
                term: hs.term,
                vote: hs.vote,
                commit: hs.commit.min(durable_last),
            }),
            install,
            ..Persist::default()
        };
        let mut ends = Vec::with_capacity(entries.len());
        let Some(first) = entries.first() else {
            return Ok((persist, ends));
        };
        let mut offset = match base {
            Some(base) if first.index == base.index + 1 => Some(base.offset),
            Some(_) => None,
            None => self.log.base_offset(first.index),
        }
        .ok_or_else(|| quorum_log(format!("entry {} leaves a gap after the log", first.index)))?;
        if base.is_none() && first.index <= self.log.last_index() {
            persist.truncate_to = Some(offset);
        }
        for entry in entries {
            let records = decode_entry_data(&entry.data)?;
            let term = i32::try_from(entry.term)
                .map_err(|_| quorum_log(format!("term {} beyond i32", entry.term)))?;
            persist.batches.push(BatchToWrite {
                index: entry.index,
                term,
                base_offset: offset,
                records,
            });
            offset += persist.batches.last().expect("pushed").records.len() as i64;
            ends.push(offset);
        }
        Ok((persist, ends))
    }

    fn committed(&mut self, entries: Vec<Entry>) -> Result<Vec<CommittedBatch>, ReplicationError> {
        if let Some(last) = entries.last() {
            self.handed_out = self.handed_out.max(last.index);
        }
        entries
            .into_iter()
            .map(|entry| {
                let base_offset = self.log.base_offset(entry.index).ok_or_else(|| {
                    quorum_log(format!("committed entry {} is not durable", entry.index))
                })?;
                Ok(CommittedBatch {
                    index: entry.index,
                    term: entry.term as i32,
                    base_offset,
                    records: decode_entry_data(&entry.data)?,
                })
            })
            .collect()
    }
}

/// A proposal must fit one metadata log batch on every voter, or it could never be stored.
fn check_batch_size(records: &[MetadataRecord]) -> Result<(), ReplicationError> {
    let new: Vec<NewRecord> = records
        .iter()
        .map(|r| NewRecord {
            timestamp: 0,
            key: None,
            value: Some(r.encode()),
            headers: Vec::new(),
        })
        .collect();
    let bytes = BatchBuilder::default().build(&new).len();
    if bytes > BATCH_BYTES_MAX {
        return Err(ReplicationError::BatchTooLarge {
            bytes,
            max: BATCH_BYTES_MAX,
        });
    }
    Ok(())
}

fn refused(reason: &'static str) -> ReplicationError {
    ReplicationError::QuorumMessage { reason }
}

pub(crate) fn quorum_log(reason: String) -> ReplicationError {
    ReplicationError::QuorumLog { reason }
}
