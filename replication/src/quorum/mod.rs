//! The controller quorum: the metadata log replicated by Raft (raft-rs 0.7), sans-I/O.
//!
//! # Pieces
//!
//! * [`Quorum`] (`node.rs`): wraps raft-rs's `RawNode`. Inputs [`Quorum::tick`],
//!   [`Quorum::step`], [`Quorum::propose`]; outputs through raft-rs's Ready protocol, split in
//!   two halves: [`Quorum::ready`] gives messages to send now, committed batches to apply and a
//!   [`Persist`] to make durable; [`Quorum::on_persisted`] (raft-rs's `advance`, then its light
//!   ready) gives the messages that may leave only after persistence (votes, append
//!   responses) and more committed batches. Status for DescribeQuorum: [`Quorum::leader_id`],
//!   [`Quorum::term`], [`Quorum::commit_index`], [`Quorum::role`], [`Quorum::voter_progress`].
//! * [`open`], [`persist`], [`run_ready_cycle`] (`persist.rs`): the quorum's I/O, as async
//!   functions over a [`LogStore`](crate::metadata::LogStore) and a [`QuorumStateStore`] (both
//!   implemented by [`PartitionStore`](crate::metadata::PartitionStore)), for the controller's
//!   task to run on its executor; over `SimDisk` they complete when polled.
//! * [`RaftLog`] (`raft_log.rs`): raft-rs's `Storage`, served from memory, starting after a
//!   snapshot once the log was cut.
//! * [`encode_message`] / [`decode_message`] (`codec.rs`): the bounded wire codec for Raft
//!   messages; protobuf never parses network input.
//! * `entry.rs`: entry data = the records of one batch.
//! * [`Observer`], [`Quorum::plan_fetch`], [`read_for_fetch`] (`observer.rs`): nodes that
//!   fetch the committed log from the leader and apply it without voting (broker-only nodes).
//!
//! # Raft log = metadata log
//!
//! One Raft entry is one record batch of the metadata log (`__cluster_metadata-0`):
//!
//! ```text
//! Raft index i (1-based)  <->  the i-th batch; batch i spans offsets end(i-1) .. end(i),
//!                              end(0) = 0, end(i) = end(i-1) + records in batch i
//! entry term              <->  the batch's partition_leader_epoch
//! entry data              <->  the batch's records (an empty entry <-> one NoOp record)
//! ```
//!
//! Offsets and indexes differ as soon as a batch holds two records, so the quorum keeps the
//! table `index -> (entry, end offset)` in memory, rebuilt at [`open`] by replaying the log. A
//! follower's entries that conflict with its leader's are cut with the storage crate's
//! crash-safe `truncate_to` at the first conflicting batch's base offset. Batches are stamped
//! with the persisting node's clock, so replicas agree on records, offsets and terms, not on
//! batch timestamps (nor, therefore, CRCs).
//!
//! Hard state (term, vote, commit) lives in `quorum-state` beside the segments (layout in
//! `persist.rs`). Order of a Ready's persistence: the hard-state file first, then cut, append,
//! flush (fsync). So at every crash point the durable term is at least the term of every
//! durable entry; the commit index written is clamped to the entries durable before the Ready,
//! so it never points past the durable log. The commit index is therefore durable with a lag,
//! and the one a light ready raises is kept in memory only: Raft does not need it durable, a
//! restarted node learns it again from the leader.
//!
//! Voters are static: given by config, handed to raft-rs as the `ConfState` at every start,
//! never changed by a conf-change entry (the codec and [`Quorum::step`] refuse those).
//!
//! # Snapshots and compaction
//!
//! The caller writes snapshots of its applied image (`metadata::snapshot_file`), offers each
//! to the quorum ([`Quorum::offer_snapshot`]) and may cut its log below one
//! (`MetadataLog::delete_before`, then [`Quorum::compact_to`]): the table then starts after
//! that snapshot's batch (its [`LogBase`]). raft-rs sends a follower that needs compacted
//! entries the offered snapshot (MsgSnapshot, whose data is the snapshot file body, checked by
//! [`Quorum::step`]); the follower's Ready then carries an [`Install`], persisted in this
//! order: hard state (commit clamped to the durable one), snapshot file, the log emptied to
//! start at the snapshot's end (storage's crash-safe `reset_to`), later batches, flush. The
//! caller replaces its image with the installed one ([`ReadyCycle::installed`]). [`open`]
//! finishes an install a crash interrupted (a newest snapshot the log does not end a batch at
//! with its index and term) and starts the table after the snapshot where the log starts. A
//! snapshot whose MsgSnapshot got lost is retried after two election timeouts.
//!
//! # Determinism
//!
//! raft-rs draws the randomized election timeout from `thread_rng`. Set
//! [`QuorumConfig::max_election_tick`] to `election_tick + 1` (see
//! [`QuorumConfig::deterministic`]) so the range holds one value, and jitter tick delivery from
//! a seed instead, as the simulation test does. raft-rs keeps peer progress in a `HashMap`
//! but its decisions do not depend on the iteration order; [`Quorum::voter_progress`] sorts.
//!
//! # Use
//!
//! The controller's task, on its shard (the quorum is `!Send`; keep it in a `RefCell` and
//! never hold a borrow across an `.await`):
//!
//! ```text
//! open(&config, &log, log.store()).await?            // at start
//! every tick_ms:    quorum.borrow_mut().tick()?
//! on a message:     quorum.borrow_mut().step(decode_message(&bytes)?)?
//! on a request:     quorum.borrow_mut().propose(&records)   // NotLeader { leader_hint }
//! after any input:  for batch in run_ready_cycle(&quorum, &log, log.store(), now_ms,
//!                                                &mut send).await? { apply(batch) }
//! ```
//!
//! Inputs between `ready` and `on_persisted` are refused with
//! [`ReplicationError::QuorumBusy`](crate::ReplicationError::QuorumBusy) (raft-rs forbids
//! them); a persistence error means: drop the quorum and [`open`] it again.

mod codec;
mod entry;
mod node;
mod observer;
mod persist;
mod raft_log;

pub use codec::{
    decode_message, encode_message, CONTEXT_BYTES_MAX, ENTRIES_PER_MESSAGE_MAX, MESSAGE_BYTES_MAX,
    SNAPSHOT_BYTES_MAX, VOTERS_MAX,
};
pub use entry::{decode_entry_data, encode_entry_data};
pub use node::{
    BatchToWrite, CommittedBatch, Install, Persist, Quorum, QuorumAdvance, QuorumHardState,
    QuorumReady,
};
pub use observer::{read_for_fetch, Cut, FetchPlan, FetchPosition, Observer};
pub use persist::{
    decode_hard_state, encode_hard_state, open, persist, run_ready_cycle, ReadyCycle, PRE_RAFT_TERM,
};
pub use raft::eraftpb::Message;
pub use raft_log::{LogBase, RaftLog};

use crate::error::ReplicationError;
use std::future::Future;

/// The hard-state file's name in the metadata log's directory.
pub const QUORUM_STATE_FILE: &str = "quorum-state";
/// Its envelope's magic.
pub const QUORUM_STATE_MAGIC: &[u8; 4] = b"MRQS";
/// Its envelope's version.
pub const QUORUM_STATE_VERSION: u16 = 1;

/// raft-rs's `max_size_per_msg`: bytes of entries one append carries (plus at most one more
/// entry). Far below [`MESSAGE_BYTES_MAX`], and few enough entries for
/// [`ENTRIES_PER_MESSAGE_MAX`] even when they are empty.
pub const APPEND_BYTES_MAX: u64 = 128 << 10;

/// Where the quorum keeps its hard state: a small file written atomically and durably.
/// Implemented by [`PartitionStore`](crate::metadata::PartitionStore) (`quorum-state` in the
/// metadata log's directory).
pub trait QuorumStateStore {
    /// The store's error.
    type Error: std::error::Error + Send + Sync + 'static;
    /// The body last written; None when there is none. A damaged file is an error.
    fn read_quorum_state(&self) -> impl Future<Output = Result<Option<Vec<u8>>, Self::Error>>;
    /// Replaces the body, atomically and durably.
    fn write_quorum_state(&self, body: &[u8]) -> impl Future<Output = Result<(), Self::Error>>;
}

/// A quorum member's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumConfig {
    /// This node's id (not 0).
    pub node_id: u64,
    /// Every voter's id, this node's included (static membership).
    pub voters: Vec<u64>,
    /// Ticks without a leader before a follower campaigns (10).
    pub election_tick: usize,
    /// Ticks between a leader's heartbeats (2).
    pub heartbeat_tick: usize,
    /// The randomized election timeout is drawn from `[election_tick, max_election_tick)`;
    /// 0 means raft-rs's default, `2 * election_tick`.
    pub max_election_tick: usize,
    /// How long a tick is, for the caller's timer (100 ms); the quorum itself counts ticks.
    pub tick_ms: u64,
    /// The last index the caller has already applied (from an image snapshot); 0 replays the
    /// whole committed log through the first Readies.
    pub applied: u64,
    /// Appends in flight per follower.
    pub max_inflight_msgs: usize,
}

impl QuorumConfig {
    /// Production settings: election 10 ticks, heartbeat 2 ticks, 100 ms ticks.
    pub fn new(node_id: u64, voters: &[u64]) -> Self {
        let mut voters = voters.to_vec();
        voters.sort_unstable();
        voters.dedup();
        QuorumConfig {
            node_id,
            voters,
            election_tick: 10,
            heartbeat_tick: 2,
            max_election_tick: 0,
            tick_ms: 100,
            applied: 0,
            max_inflight_msgs: 64,
        }
    }

    /// The same with a single election timeout (`election_tick + 1` as the exclusive
    /// maximum), so raft-rs draws nothing random; jitter tick delivery instead.
    pub fn deterministic(mut self) -> Self {
        self.max_election_tick = self.election_tick + 1;
        self
    }

    /// Refuses settings that cannot work.
    pub fn validate(&self) -> Result<(), ReplicationError> {
        let bad = |reason| Err(ReplicationError::QuorumConfig { reason });
        if self.node_id == 0 || !self.voters.contains(&self.node_id) {
            return bad("node_id must be a non-zero voter");
        }
        if self.voters.contains(&0) || !self.voters.windows(2).all(|w| w[0] < w[1]) {
            return bad("voters must be non-zero, sorted and distinct");
        }
        if self.heartbeat_tick == 0 || self.election_tick <= self.heartbeat_tick {
            return bad("election_tick must exceed heartbeat_tick > 0");
        }
        if self.max_election_tick != 0 && self.max_election_tick <= self.election_tick {
            return bad("max_election_tick must exceed election_tick");
        }
        if self.tick_ms == 0 || self.max_inflight_msgs == 0 {
            return bad("tick_ms and max_inflight_msgs must be positive");
        }
        Ok(())
    }

    fn raft_config(&self) -> Result<raft::Config, ReplicationError> {
        self.validate()?;
        let config = raft::Config {
            id: self.node_id,
            election_tick: self.election_tick,
            heartbeat_tick: self.heartbeat_tick,
            min_election_tick: self.election_tick,
            max_election_tick: if self.max_election_tick == 0 {
                2 * self.election_tick
            } else {
                self.max_election_tick
            },
            applied: self.applied,
            max_size_per_msg: APPEND_BYTES_MAX,
            max_inflight_msgs: self.max_inflight_msgs,
            check_quorum: true,
            pre_vote: true,
            // Bounds what a leader holds proposed and not yet committed.
            max_uncommitted_size: 32 << 20,
            ..raft::Config::default()
        };
        config.validate()?;
        Ok(config)
    }
}

/// A quorum member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum QuorumRole {
    /// Leads the current term: the active controller.
    Leader,
    /// Campaigning.
    Candidate,
    /// Asking whether it could win before campaigning (pre-vote).
    PreCandidate,
    /// Follows a leader, or waits for one.
    Follower,
}

/// What the leader knows of one voter's log (Kafka's DescribeQuorum replica state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoterProgress {
    /// The voter's id.
    pub id: u64,
    /// The highest index known to match the leader's log (Kafka's `log_end_offset` of a
    /// voter is the end offset of this index's batch: [`RaftLog::end_offset`]).
    pub match_index: u64,
    /// The next index the leader sends it.
    pub next_index: u64,
    /// Whether it answered within the last election timeout.
    pub recent_active: bool,
}
