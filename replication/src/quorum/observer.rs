//! Observers of the metadata log: nodes that hold and apply the committed metadata log without
//! voting (Kafka's broker-only nodes, `process.roles=broker`). Sans-I/O, both halves.
//!
//! An observer fetches `__cluster_metadata-0` from the quorum leader with Kafka's Fetch
//! (KIP-595's shape: fetch offset + the epoch of the last batch it holds); the leader answers
//! with whole batches, the high watermark, or the point where the observer's log diverges
//! from its own:
//!
//! ```text
//! observer                                       leader (Quorum::plan_fetch, read_for_fetch)
//!   Fetch(fetch_offset, last_fetched_epoch) ──>  fetch_offset is the end of its batch i and
//!                                                term(i) == last_fetched_epoch?
//!                                                  yes: committed batches from fetch_offset,
//!                                                       high watermark
//!                                                  no:  diverging (epoch, end_offset): the
//!                                                       last batch boundary <= fetch_offset
//!                                                       whose term <= last_fetched_epoch
//!                                                not leading: NOT_LEADER (leader hint)
//!                                                fetch_offset below the leader's log
//!                                                start (or its epoch older than the
//!                                                start's): SNAPSHOT (its id)
//!   append + flush, apply (Observer::on_records)
//!   or truncate to end_offset (Observer::on_diverging)
//!   or FetchSnapshot the id, install it (Observer::on_snapshot), fetch from its end
//! ```
//!
//! Kafka's leader also sends uncommitted batches, which its observers then hold without
//! applying until the high watermark passes them. Here the leader sends committed batches
//! only (what `Quorum::committed_end_offset` covers), so everything an observer's log holds is
//! committed: it applies each batch as soon as it is durable, and never has to cut an
//! applied batch again in a healthy cluster. The price is that an observer learns of a batch
//! one replication round after the voters, which is what Kafka's observers wait for anyway
//! (they apply at the high watermark). A divergence can then only come from a foreign log
//! (a cluster rebuilt under the same voters, a lying peer); when it cuts below what was
//! applied, [`Observer::on_diverging`] says so and the caller rebuilds its image from the
//! log that remains.

use super::node::{quorum_log, CommittedBatch, Quorum};
use super::persist::{log_base, snapshot_base, PRE_RAFT_TERM};
use super::raft_log::LogBase;
use crate::error::ReplicationError;
use crate::metadata::log::{decode_whole_batches, store_error, LogBatch};
use crate::metadata::snapshot_file::{self, SnapshotStore};
use crate::metadata::{LogStore, MetadataLog, MetadataSnapshot, SnapshotId};
use millrace_wire::records::{BatchIter, BatchStep};

/// What the leader does with an observer's fetch ([`Quorum::plan_fetch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchPlan {
    /// The observer's log matches: send the committed batches from its fetch offset on
    /// ([`read_for_fetch`]), up to `high_watermark` (the offset after the last committed
    /// batch); nothing when it is there already.
    Read {
        /// The committed end offset.
        high_watermark: i64,
    },
    /// The observer's log diverges: it must cut its log to `end_offset` (a batch boundary
    /// of the leader's log whose batch has term `epoch`, 0 for the log start) and fetch again.
    Diverging {
        /// The term of the leader's batch ending at `end_offset`.
        epoch: i32,
        /// Where the observer's log agrees with the leader's at most.
        end_offset: i64,
        /// The committed end offset.
        high_watermark: i64,
    },
    /// The observer needs batches the leader's log no longer holds: it must fetch the
    /// snapshot `id` (FetchSnapshot) and go on from its end.
    Snapshot {
        /// The snapshot to fetch.
        id: SnapshotId,
        /// The committed end offset.
        high_watermark: i64,
    },
    /// This node does not lead: fetch from `leader` (a Raft id) if one is known.
    NotLeader {
        /// The leader this node knows of.
        leader: Option<u64>,
        /// Its term.
        term: u64,
    },
}

impl Quorum {
    /// How the leader answers an observer at `fetch_offset` whose last batch has term
    /// `last_fetched_epoch` (0 for an empty log; the pre-Raft term 0 counts as
    /// [`PRE_RAFT_TERM`], as in the Raft log). See the module doc.
    pub fn plan_fetch(&self, fetch_offset: i64, last_fetched_epoch: i32) -> FetchPlan {
        if self.role() != super::QuorumRole::Leader {
            return FetchPlan::NotLeader {
                leader: self.leader_id(),
                term: self.term(),
            };
        }
        let high_watermark = self.committed_end_offset();
        let log = self.raft_log();
        let epoch = u64::try_from(last_fetched_epoch).unwrap_or(0);
        let epoch = if epoch == 0 && fetch_offset > 0 {
            PRE_RAFT_TERM
        } else {
            epoch
        };
        let term_of = |index: u64| log.term_of(index).unwrap_or(0);
        // The largest index whose batch ends at or before `fetch_offset` with a term at most
        // the observer's epoch. Ends increase and terms do not decrease along the log, so the
        // condition holds on a prefix of the indexes: binary search.
        let fits = |index: u64| {
            index == 0
                || (log.end_offset(index).is_some_and(|end| end <= fetch_offset)
                    && term_of(index) <= epoch)
        };
        let base = log.base();
        if !fits(base.index) {
            // Below the log start: only a snapshot can bring the observer on.
            let point = log.snapshot_point().unwrap_or(base);
            return FetchPlan::Snapshot {
                id: SnapshotId {
                    end_offset: point.offset,
                    epoch: i32::try_from(point.term).unwrap_or(i32::MAX),
                },
                high_watermark,
            };
        }
        let (mut lo, mut hi) = (base.index, log.last_index());
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if fits(mid) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        let end = log.end_offset(lo).unwrap_or(0);
        let term = term_of(lo);
        if end == fetch_offset && (fetch_offset == 0 || term == epoch) {
            return FetchPlan::Read { high_watermark };
        }
        FetchPlan::Diverging {
            epoch: i32::try_from(term).unwrap_or(i32::MAX),
            end_offset: end,
            high_watermark,
        }
    }
}

/// The bytes of the whole batches from `from` (a batch boundary) below `high_watermark`,
/// about `max_bytes` of them (at least one batch when there is one): what a Fetch answer to
/// an observer carries.
pub async fn read_for_fetch<S: LogStore>(
    log: &MetadataLog<S>,
    from: i64,
    high_watermark: i64,
    max_bytes: usize,
) -> Result<Vec<u8>, ReplicationError> {
    if from >= high_watermark {
        return Ok(Vec::new());
    }
    let mut bytes = log
        .store()
        .read(from, max_bytes)
        .await
        .map_err(store_error("read"))?;
    let mut keep = 0;
    for step in BatchIter::new(&bytes) {
        match step {
            BatchStep::Batch {
                position,
                header,
                bytes: batch,
            } if header.next_offset() <= high_watermark => keep = position + batch.len(),
            _ => break,
        }
    }
    bytes.truncate(keep);
    Ok(bytes)
}

/// Where an observer is: what its next fetch asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchPosition {
    /// The offset after its last batch.
    pub fetch_offset: i64,
    /// The term of its last batch (0 when its log is empty).
    pub last_fetched_epoch: i32,
}

/// What [`Observer::on_diverging`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Nothing applied was removed: fetch on.
    Kept,
    /// Batches already applied were removed: rebuild the image from the log, then fetch on.
    Rebuild,
}

/// An observer's side: its position in its own copy of the metadata log. Lives with the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observer {
    position: FetchPosition,
    /// The number of batches its log holds: the Raft index of its last batch.
    last_index: u64,
}

impl Observer {
    /// The position at the end of `log` (recovered from disk, every batch committed). A
    /// log cut below a snapshot starts after it; a snapshot install a crash interrupted
    /// (its file is there, past the log end) is finished: the log is emptied and starts at
    /// the snapshot's end. `now_ms` stamps what that rebuilds.
    pub async fn open<S: LogStore + SnapshotStore>(
        log: &MetadataLog<S>,
        now_ms: i64,
    ) -> Result<Self, ReplicationError> {
        let durable = log.durable_end();
        let (newest, _) =
            snapshot_file::load_newest(log.store(), |id| id.end_offset > durable).await?;
        if let Some(newest) = newest {
            let end = newest.snapshot.id().end_offset;
            log.reset_to(end, now_ms).await?;
        }
        let base = log_base(log, None).await?;
        let batches = log.replay_batches(base.offset).await?;
        Ok(Observer {
            position: position_after(batches.last(), base),
            last_index: base.index + batches.len() as u64,
        })
    }

    /// The leader's snapshot `body` (fetched whole with FetchSnapshot, untrusted) of the
    /// snapshot `id` the leader named: checked, written, and the log emptied to start at its
    /// end, crash-safely (the file first; [`Observer::open`] finishes what a crash
    /// interrupts). Returns it: its image replaces the caller's.
    pub async fn on_snapshot<S: LogStore + SnapshotStore>(
        &mut self,
        log: &MetadataLog<S>,
        id: SnapshotId,
        body: &[u8],
        now_ms: i64,
    ) -> Result<MetadataSnapshot, ReplicationError> {
        let snapshot = MetadataSnapshot::decode(id, body)?;
        let base = snapshot_base(&snapshot);
        if base.offset <= self.position.fetch_offset && base.index <= self.last_index {
            return Err(quorum_log(format!(
                "snapshot ending at {} is not past the observer's log end {}",
                base.offset, self.position.fetch_offset
            )));
        }
        snapshot_file::write_body(log.store(), id, body, base.offset).await?;
        log.reset_to(base.offset, now_ms).await?;
        self.position = position_after(None, base);
        self.last_index = base.index;
        Ok(snapshot)
    }

    /// The Raft index of the last batch its log holds (of the snapshot it starts after,
    /// when it holds none).
    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    /// What to fetch next.
    pub fn position(&self) -> FetchPosition {
        self.position
    }

    /// A leader's answer with `records` (whole batches from the fetch offset, untrusted
    /// bytes) and its high watermark: appends the batches below the high watermark, makes
    /// them durable and returns them to apply, in order. Batches that do not start at the
    /// fetch offset or do not decode are an error and nothing of them is kept.
    pub async fn on_records<S: LogStore>(
        &mut self,
        log: &MetadataLog<S>,
        records: &[u8],
        high_watermark: i64,
        now_ms: i64,
    ) -> Result<Vec<CommittedBatch>, ReplicationError> {
        let from = self.position.fetch_offset;
        if log.log_end_offset() != from {
            return Err(quorum_log(format!(
                "the observer's log ends at {}, not at its fetch offset {from}",
                log.log_end_offset()
            )));
        }
        let batches: Vec<LogBatch> = decode_whole_batches(records, from)?
            .into_iter()
            .take_while(|b| b.next_offset <= high_watermark)
            .collect();
        if batches.is_empty() {
            return Ok(Vec::new());
        }
        let appended = self.append(log, &batches, now_ms).await;
        if let Err(e) = appended {
            // Leave the log where the position says it ends (a failed truncation is the
            // caller's to report: the log is then in an unknown state).
            log.truncate_to(from, now_ms).await?;
            return Err(e);
        }
        self.position = position_after(batches.last(), LogBase::default());
        let mut out = Vec::with_capacity(batches.len());
        for batch in batches {
            self.last_index += 1;
            out.push(CommittedBatch {
                index: self.last_index,
                term: raft_term(batch.term),
                base_offset: batch.base_offset,
                records: batch.records,
            });
        }
        Ok(out)
    }

    async fn append<S: LogStore>(
        &self,
        log: &MetadataLog<S>,
        batches: &[LogBatch],
        now_ms: i64,
    ) -> Result<(), ReplicationError> {
        for batch in batches {
            let base = log.append(&batch.records, raft_term(batch.term), now_ms)?;
            if base != batch.base_offset {
                return Err(ReplicationError::OffsetGap {
                    offset: base,
                    expected: batch.base_offset,
                });
            }
        }
        log.flush().await
    }

    /// A leader's diverging answer: cuts the log to `end_offset` (or leaves it, when it ends
    /// there or before) and moves the position to the new end. Says whether applied batches
    /// went (every batch in the log has been applied).
    pub async fn on_diverging<S: LogStore + SnapshotStore>(
        &mut self,
        log: &MetadataLog<S>,
        end_offset: i64,
        now_ms: i64,
    ) -> Result<Cut, ReplicationError> {
        let end = end_offset.max(0);
        if end >= self.position.fetch_offset {
            // The leader says the log agrees up to at least where it ends, yet the epochs
            // differ: the last batch disagrees. Cut it, so the next fetch asks again below.
            let cut = self.last_batch_base(log).await?;
            return self.cut_to(log, cut, now_ms).await;
        }
        self.cut_to(log, end, now_ms).await
    }

    async fn last_batch_base<S: LogStore>(
        &self,
        log: &MetadataLog<S>,
    ) -> Result<i64, ReplicationError> {
        let start = log.log_start_offset();
        let batches = log.replay_batches(start).await?;
        Ok(batches.last().map_or(start, |b| b.base_offset))
    }

    async fn cut_to<S: LogStore + SnapshotStore>(
        &mut self,
        log: &MetadataLog<S>,
        offset: i64,
        now_ms: i64,
    ) -> Result<Cut, ReplicationError> {
        if offset >= self.position.fetch_offset {
            return Ok(Cut::Kept);
        }
        let start = log.log_start_offset();
        if offset < start {
            // Below what the log holds: the snapshots are of the same foreign history. Start
            // over empty (snapshots first, or the next open would install one again), to be
            // sent the leader's snapshot.
            let ids = log
                .store()
                .snapshot_ids()
                .map_err(store_error("list snapshots"))?;
            for id in ids {
                log.store()
                    .remove_snapshot(id)
                    .await
                    .map_err(store_error("remove snapshot"))?;
            }
            log.reset_to(0, now_ms).await?;
        } else {
            log.truncate_to(offset, now_ms).await?;
        }
        *self = Observer::open(log, now_ms).await?;
        Ok(Cut::Rebuild)
    }
}

/// The Raft term of a stored batch's leader epoch (the pre-Raft epoch 0 is term 1).
fn raft_term(epoch: i32) -> i32 {
    if epoch == 0 {
        PRE_RAFT_TERM as i32
    } else {
        epoch
    }
}

/// The position after `last`, or after `base` when the log holds no batch.
fn position_after(last: Option<&LogBatch>, base: LogBase) -> FetchPosition {
    match last {
        Some(b) => FetchPosition {
            fetch_offset: b.next_offset,
            last_fetched_epoch: raft_term(b.term),
        },
        None => FetchPosition {
            fetch_offset: base.offset,
            last_fetched_epoch: i32::try_from(base.term).unwrap_or(i32::MAX),
        },
    }
}
