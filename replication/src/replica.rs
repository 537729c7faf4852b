//! The partition replica state machine: who leads, under which epoch, which replicas are in
//! sync, and the high watermark they have reached together.
//!
//! Sans-I/O, like the group coordinators: the shard that owns the partition feeds it [`Event`]s
//! (the local log grew, the local log became durable, a follower fetched, the clock ticked,
//! the metadata image changed) and carries out the [`Action`]s it returns (wake fetches and
//! produces waiting on the high watermark, ask the controller to change the ISR). It never
//! reads a clock or a disk, so a test drives it step by step.
//!
//! # The leader's rules (Kafka's ISR protocol, hardened)
//!
//! * **High watermark**: the smallest *durable* end among the in-sync replicas (followers
//!   report their durable end: "committed" means on disk on every ISR member, the one
//!   deliberate strengthening over Kafka), counting a member an ISR change in flight is about
//!   to remove or add (Kafka's "maximal ISR"). It advances only while the committed ISR has at
//!   least `min.insync.replicas` members, and never moves back while this replica leads.
//! * **Caught up** (Kafka's `lastCaughtUpTimeMs`): a follower whose fetch reaches the
//!   leader's log end is caught up at that fetch; one that reaches the log end the leader had
//!   at its previous fetch is caught up as of that previous fetch.
//! * **Shrink**: an ISR member not caught up for `replica.lag.time.max.ms` is proposed out.
//! * **Expand**: a replica outside the ISR whose durable end reached the high watermark and
//!   the offset where this leader's epoch began is proposed in.
//! * One ISR change in flight at a time ([`Action::AlterIsr`], Kafka's AlterPartition, checked
//!   by the controller against the partition epoch); the next metadata image, or
//!   [`Event::AlterIsrFailed`], ends it.
//! * **acks=all** ([`Replica::check_acks_all`], [`Replica::acks_all_state`]): refused before
//!   the append while the ISR is smaller than `min.insync.replicas`, capped at the replica
//!   count as Kafka's effective minimum is (NOT_ENOUGH_REPLICAS);
//!   waiting for the high watermark to pass the batch afterwards, failed if the ISR shrinks
//!   below the minimum meanwhile (NOT_ENOUGH_REPLICAS_AFTER_APPEND).
//!
//! A single-node broker leads every partition with ISR = [itself], so its high watermark is
//! its own durable end.
//!
//! Lives on the shard that owns the partition (`!Send` is not required, but nothing here is
//! shared across shards).

use crate::{HighWatermark, LeaderEpoch};
use std::collections::BTreeMap;

/// A broker id, as Kafka's `node.id`.
pub type BrokerId = i32;

/// This replica's role for its partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Accepts produces; decides the high watermark.
    Leader,
    /// Copies the leader's log; learns the high watermark from it.
    Follower {
        /// The current leader.
        leader: BrokerId,
    },
}

/// Something that happened to the partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The local log end moved (an append, or a truncation on a follower).
    LogEnd(i64),
    /// Everything below this offset is on the local disk.
    Durable(i64),
    /// A follower fetched at `now_ms` and reported that everything below `durable_end` is on
    /// its disk (its fetch offset).
    FollowerFetch {
        /// The follower.
        replica: BrokerId,
        /// Its durable end.
        durable_end: i64,
        /// When the fetch arrived.
        now_ms: i64,
    },
    /// The clock: the leader checks whether an ISR member fell behind for too long.
    Tick(i64),
    /// The controller refused (or never answered) the ISR change in flight: it may be
    /// proposed again.
    AlterIsrFailed,
    /// The leader's high watermark, as a follower learns it from a fetch response.
    LeaderHighWatermark(i64),
    /// The metadata image assigned the partition anew (leader, epochs, replicas, ISR). An
    /// assignment under an older leader epoch, or the same leader epoch and an older
    /// partition epoch, is ignored: images only move forward, and a stale one must not undo a
    /// newer leadership or ISR.
    Assigned(Assignment),
}

/// What the owner of the partition must do after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The high watermark moved forward: wake whatever waits for committed data.
    HighWatermarkAdvanced {
        /// The old value.
        from: i64,
        /// The new value.
        to: i64,
    },
    /// Ask the controller to make `isr` the partition's ISR (Kafka's AlterPartition), as of
    /// the epochs of the assignment in force.
    AlterIsr {
        /// The proposed ISR.
        isr: Vec<BrokerId>,
        /// The leader epoch in force.
        leader_epoch: LeaderEpoch,
        /// The partition epoch the change is based on.
        partition_epoch: i32,
    },
}

/// The replica set of a partition as the metadata image assigns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The leader epoch in force.
    pub leader_epoch: LeaderEpoch,
    /// The partition epoch (bumped by every change of the partition, ISR changes included).
    pub partition_epoch: i32,
    /// The leader, or `None` when the partition has none.
    pub leader: Option<BrokerId>,
    /// Every replica, preferred leader first.
    pub replicas: Vec<BrokerId>,
    /// The in-sync replicas.
    pub isr: Vec<BrokerId>,
}

/// The leader's settings for a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaConfig {
    /// `min.insync.replicas`: ISR members an acks=all write, and an advance of the high
    /// watermark, need.
    pub min_insync_replicas: usize,
    /// `replica.lag.time.max.ms`: how long an ISR member may stay behind.
    pub replica_lag_time_max_ms: i64,
}

impl Default for ReplicaConfig {
    /// One in-sync replica, Kafka's 30 s lag.
    fn default() -> Self {
        ReplicaConfig {
            min_insync_replicas: 1,
            replica_lag_time_max_ms: 30_000,
        }
    }
}

/// Why an acks=all write cannot (or can no longer) be acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcksRefusal {
    /// Before the append: the ISR is smaller than `min.insync.replicas`.
    NotEnoughReplicas,
    /// After the append: the ISR shrank below `min.insync.replicas` before the write
    /// committed.
    NotEnoughReplicasAfterAppend,
    /// This replica no longer leads.
    NotLeader,
}

/// Where an acks=all write stands ([`Replica::acks_all_state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcksState {
    /// The high watermark passed it: acknowledge.
    Done,
    /// Not committed yet: wait for the high watermark.
    Waiting,
    /// It cannot be acknowledged.
    Failed(AcksRefusal),
}

/// What the leader knows of one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Follower {
    /// Its durable end (0 until it fetched under this leadership).
    durable_end: i64,
    /// When it was last caught up.
    last_caught_up_ms: i64,
    /// When it last fetched, and the leader's log end then.
    last_fetch_ms: i64,
    last_fetch_leader_end: i64,
}

/// One partition replica's replication state.
#[derive(Debug, Clone)]
pub struct Replica {
    local: BrokerId,
    config: ReplicaConfig,
    assignment: Assignment,
    high_watermark: HighWatermark,
    log_end: i64,
    durable_end: i64,
    /// Leader only: what it knows of each other replica (in the ISR or not).
    followers: BTreeMap<BrokerId, Follower>,
    /// Leader only: the offset where its leadership's epoch began (its log end then).
    epoch_start_offset: i64,
    /// Leader only: the ISR change in flight.
    pending_isr: Option<Vec<BrokerId>>,
    /// Brokers that may not join an ISR now (fenced, shutting down, unregistered), as the
    /// owner learns them from the metadata image.
    ineligible: Vec<BrokerId>,
    /// The last clock reading seen.
    now_ms: i64,
}

impl Replica {
    /// A replica on broker `local` under `assignment`, whose log ends at `log_end` with
    /// everything below `durable_end` on disk and whose last known high watermark is
    /// `high_watermark` (a checkpoint, or the durable end when every replica is local).
    pub fn new(
        local: BrokerId,
        assignment: Assignment,
        log_end: i64,
        durable_end: i64,
        high_watermark: i64,
    ) -> Self {
        assert!(
            durable_end <= log_end,
            "durable end {durable_end} past log end {log_end}"
        );
        let mut replica = Replica {
            local,
            config: ReplicaConfig::default(),
            assignment: Assignment {
                isr: Vec::new(),
                leader: None,
                ..assignment.clone()
            },
            high_watermark: HighWatermark(high_watermark.min(durable_end)),
            log_end,
            durable_end,
            followers: BTreeMap::new(),
            epoch_start_offset: log_end,
            pending_isr: None,
            ineligible: Vec::new(),
            now_ms: 0,
        };
        replica.take_assignment(assignment);
        replica.recompute();
        replica
    }

    /// The replica with its clock set to `now_ms` (the owner's first reading): ISR members
    /// a new leader starts with count as caught up from then, not from time zero.
    pub fn started_at(mut self, now_ms: i64) -> Self {
        self.now_ms = self.now_ms.max(now_ms);
        for f in self.followers.values_mut() {
            f.last_caught_up_ms = f.last_caught_up_ms.max(self.now_ms);
            f.last_fetch_ms = f.last_fetch_ms.max(self.now_ms);
        }
        self
    }

    /// Sets the brokers that may not join an ISR now (fenced, in controlled shutdown, or
    /// unregistered): a leader does not propose them (the controller would refuse with
    /// INELIGIBLE_REPLICA).
    pub fn set_ineligible(&mut self, brokers: Vec<BrokerId>) -> Vec<Action> {
        self.ineligible = brokers;
        self.propose_isr_change().into_iter().collect()
    }

    /// A partition whose only replica is `local`: it leads with ISR = [itself].
    pub fn sole_replica(
        local: BrokerId,
        leader_epoch: LeaderEpoch,
        log_end: i64,
        durable_end: i64,
    ) -> Self {
        let assignment = Assignment {
            leader_epoch,
            partition_epoch: 0,
            leader: Some(local),
            replicas: vec![local],
            isr: vec![local],
        };
        Replica::new(local, assignment, log_end, durable_end, durable_end)
    }

    /// Sets the leader's settings (`min.insync.replicas`, `replica.lag.time.max.ms`); the
    /// high watermark follows at once.
    pub fn set_config(&mut self, config: ReplicaConfig) -> Vec<Action> {
        self.config = config;
        self.advance()
    }

    /// This replica's role.
    pub fn role(&self) -> Role {
        match self.assignment.leader {
            Some(l) if l == self.local => Role::Leader,
            Some(l) => Role::Follower { leader: l },
            None => Role::Follower { leader: -1 },
        }
    }

    /// True when this replica leads.
    pub fn is_leader(&self) -> bool {
        self.role() == Role::Leader
    }

    /// The leader epoch in force.
    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.assignment.leader_epoch
    }

    /// The assignment in force.
    pub fn assignment(&self) -> &Assignment {
        &self.assignment
    }

    /// The ISR change in flight, if any.
    pub fn pending_isr(&self) -> Option<&[BrokerId]> {
        self.pending_isr.as_deref()
    }

    /// Offsets below this are committed and visible to consumers.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.0
    }

    /// Whether an acks=all produce may append now (before the append).
    pub fn check_acks_all(&self) -> Result<(), AcksRefusal> {
        if !self.is_leader() {
            return Err(AcksRefusal::NotLeader);
        }
        if self.assignment.isr.len() < self.min_isr() {
            return Err(AcksRefusal::NotEnoughReplicas);
        }
        Ok(())
    }

    /// Where an acks=all write whose records end at `end` stands, after its append under
    /// `leader_epoch`.
    pub fn acks_all_state(&self, end: i64, leader_epoch: LeaderEpoch) -> AcksState {
        if !self.is_leader() || self.assignment.leader_epoch != leader_epoch {
            // Another leadership may have cut it: the client retries.
            return AcksState::Failed(AcksRefusal::NotLeader);
        }
        if self.high_watermark.0 >= end {
            return AcksState::Done;
        }
        if self.assignment.isr.len() < self.min_isr() {
            return AcksState::Failed(AcksRefusal::NotEnoughReplicasAfterAppend);
        }
        AcksState::Waiting
    }

    /// `min.insync.replicas` as it applies: never more than the replicas there are (Kafka's
    /// effective minimum ISR), so a partition with fewer replicas than the setting still
    /// takes acks=all writes once every replica is in sync.
    fn min_isr(&self) -> usize {
        self.config
            .min_insync_replicas
            .min(self.assignment.replicas.len().max(1))
    }

    /// Feeds one event and returns what the owner must do.
    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        match event {
            Event::LogEnd(end) => {
                self.log_end = end;
                // A follower's truncation can take durable data away with it.
                self.durable_end = self.durable_end.min(end);
            }
            Event::Durable(end) => {
                assert!(
                    end <= self.log_end,
                    "durable end {end} past log end {}",
                    self.log_end
                );
                self.durable_end = self.durable_end.max(end);
            }
            Event::FollowerFetch {
                replica,
                durable_end,
                now_ms,
            } => {
                self.now_ms = self.now_ms.max(now_ms);
                self.follower_fetched(replica, durable_end, now_ms);
            }
            Event::Tick(now_ms) => self.now_ms = self.now_ms.max(now_ms),
            Event::AlterIsrFailed => self.pending_isr = None,
            Event::Assigned(assignment) => self.take_assignment(assignment),
            Event::LeaderHighWatermark(hw) => {
                if !self.is_leader() {
                    let from = self.high_watermark.0;
                    let to = hw.min(self.log_end);
                    if self.high_watermark.advance_to(to) {
                        return vec![Action::HighWatermarkAdvanced { from, to }];
                    }
                }
                return Vec::new();
            }
        }
        let mut actions = self.advance();
        actions.extend(self.propose_isr_change());
        actions
    }

    fn follower_fetched(&mut self, replica: BrokerId, durable_end: i64, now_ms: i64) {
        if !self.is_leader()
            || replica == self.local
            || !self.assignment.replicas.contains(&replica)
        {
            return;
        }
        let leader_end = self.log_end;
        let f = self.followers.entry(replica).or_insert(Follower {
            durable_end: 0,
            last_caught_up_ms: i64::MIN,
            last_fetch_ms: now_ms,
            last_fetch_leader_end: i64::MAX,
        });
        // Durable ends only grow within one leadership (a follower cuts only below the high
        // watermark, which it already had).
        f.durable_end = f.durable_end.max(durable_end);
        if durable_end >= leader_end {
            f.last_caught_up_ms = f.last_caught_up_ms.max(now_ms);
        } else if durable_end >= f.last_fetch_leader_end {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.last_fetch_ms = now_ms;
        f.last_fetch_leader_end = leader_end;
    }

    fn take_assignment(&mut self, assignment: Assignment) {
        let current = (
            self.assignment.leader_epoch,
            self.assignment.partition_epoch,
        );
        let new = (assignment.leader_epoch, assignment.partition_epoch);
        if new < current {
            return;
        }
        let was_leader = self.is_leader();
        let new_leadership = new.0 != current.0 || !was_leader;
        self.assignment = assignment;
        if new > current {
            // The change in flight was applied, or overtaken: either way it is over.
            self.pending_isr = None;
        }
        if !self.is_leader() {
            self.followers.clear();
            return;
        }
        if new_leadership {
            // A new leader learns its followers afresh; ISR members count as caught up now,
            // so none is dropped before it had a chance to fetch.
            self.followers.clear();
            self.epoch_start_offset = self.log_end;
            for &member in self.assignment.isr.iter().filter(|&&m| m != self.local) {
                self.followers.insert(
                    member,
                    Follower {
                        // Unknown until it fetches: it holds the watermark where it is and
                        // cannot be proposed back in on this alone.
                        durable_end: -1,
                        last_caught_up_ms: self.now_ms,
                        last_fetch_ms: self.now_ms,
                        last_fetch_leader_end: i64::MAX,
                    },
                );
            }
        }
    }

    /// The members the high watermark waits for: the ISR with the change in flight (either
    /// way) counted in.
    fn maximal_isr(&self) -> Vec<BrokerId> {
        let mut isr = self.assignment.isr.clone();
        for &m in self.pending_isr.iter().flatten() {
            if !isr.contains(&m) {
                isr.push(m);
            }
        }
        isr
    }

    /// The high watermark after the rules of the module doc; the action when it moved.
    fn advance(&mut self) -> Vec<Action> {
        let from = self.high_watermark.0;
        if self.recompute() {
            vec![Action::HighWatermarkAdvanced {
                from,
                to: self.high_watermark.0,
            }]
        } else {
            Vec::new()
        }
    }

    /// On a leader: the high watermark becomes the smallest durable end in the maximal ISR
    /// (never smaller than it was), if the ISR holds `min.insync.replicas`. True if it moved.
    fn recompute(&mut self) -> bool {
        if !self.is_leader() || self.assignment.isr.len() < self.min_isr() {
            return false;
        }
        let mut candidate = self.durable_end;
        for member in self.maximal_isr() {
            if member == self.local {
                continue;
            }
            let reported = self
                .followers
                .get(&member)
                .map_or(i64::MIN, |f| f.durable_end);
            candidate = candidate.min(reported);
        }
        self.high_watermark.advance_to(candidate)
    }

    /// On a leader with no change in flight: the ISR change the rules call for, if any.
    fn propose_isr_change(&mut self) -> Option<Action> {
        if !self.is_leader() || self.pending_isr.is_some() {
            return None;
        }
        let isr = &self.assignment.isr;
        let lagging: Vec<BrokerId> = isr
            .iter()
            .copied()
            .filter(|&m| m != self.local)
            .filter(|m| {
                self.followers.get(m).is_none_or(|f| {
                    self.now_ms.saturating_sub(f.last_caught_up_ms)
                        > self.config.replica_lag_time_max_ms
                })
            })
            .collect();
        let joining: Vec<BrokerId> = self
            .assignment
            .replicas
            .iter()
            .copied()
            .filter(|m| !isr.contains(m) && *m != self.local && !self.ineligible.contains(m))
            .filter(|m| {
                self.followers.get(m).is_some_and(|f| {
                    // Fetching now: a follower that stopped fetching (dead, paused) is not
                    // taken back in on its old reports once the shrink rule dropped it.
                    let recent = self.now_ms.saturating_sub(f.last_fetch_ms)
                        <= self.config.replica_lag_time_max_ms;
                    recent
                        && f.durable_end >= self.high_watermark.0
                        && f.durable_end >= self.epoch_start_offset
                })
            })
            .collect();
        if lagging.is_empty() && joining.is_empty() {
            return None;
        }
        let mut proposed: Vec<BrokerId> = isr
            .iter()
            .copied()
            .filter(|m| !lagging.contains(m))
            .chain(joining)
            .collect();
        if !proposed.contains(&self.local) {
            proposed.insert(0, self.local);
        }
        self.pending_isr = Some(proposed.clone());
        Some(Action::AlterIsr {
            isr: proposed,
            leader_epoch: self.assignment.leader_epoch,
            partition_epoch: self.assignment.partition_epoch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advanced(actions: &[Action]) -> Option<i64> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::HighWatermarkAdvanced { to, .. } => Some(*to),
                Action::AlterIsr { .. } => None,
            })
            .next()
    }

    #[test]
    fn a_sole_replica_commits_what_is_durable_and_never_what_is_only_appended() {
        let mut r = Replica::sole_replica(1, LeaderEpoch(0), 10, 10);
        assert!(r.is_leader());
        assert_eq!(r.high_watermark(), 10);
        assert_eq!(advanced(&r.handle(Event::LogEnd(15))), None);
        assert_eq!(r.high_watermark(), 10);
        assert_eq!(advanced(&r.handle(Event::Durable(13))), Some(13));
        assert_eq!(
            advanced(&r.handle(Event::Durable(12))),
            None,
            "durable end went back"
        );
        assert_eq!(r.high_watermark(), 13);
        assert_eq!(advanced(&r.handle(Event::Durable(15))), Some(15));
    }

    #[test]
    fn a_leader_waits_for_every_isr_member_and_ignores_others() {
        let assignment = Assignment {
            leader_epoch: LeaderEpoch(3),
            partition_epoch: 0,
            leader: Some(1),
            replicas: vec![1, 2, 3],
            isr: vec![1, 2],
        };
        let mut r = Replica::new(1, assignment, 100, 100, 40);
        assert_eq!(r.high_watermark(), 40, "no follower has reported yet");
        assert_eq!(
            advanced(&r.handle(Event::FollowerFetch {
                replica: 3,
                durable_end: 100,
                now_ms: 0,
            })),
            None
        );
        assert_eq!(
            advanced(&r.handle(Event::FollowerFetch {
                replica: 2,
                durable_end: 70,
                now_ms: 0,
            })),
            Some(70)
        );
        assert_eq!(
            advanced(&r.handle(Event::FollowerFetch {
                replica: 2,
                durable_end: 60,
                now_ms: 0,
            })),
            None
        );
        assert_eq!(
            advanced(&r.handle(Event::FollowerFetch {
                replica: 9,
                durable_end: 500,
                now_ms: 0,
            })),
            None
        );
        assert_eq!(
            advanced(&r.handle(Event::FollowerFetch {
                replica: 2,
                durable_end: 120,
                now_ms: 0,
            })),
            Some(100)
        );
        assert_eq!(
            r.high_watermark(),
            100,
            "capped by the leader's own durable end"
        );
    }

    #[test]
    fn a_follower_takes_the_leaders_high_watermark_up_to_its_own_log_end() {
        let assignment = Assignment {
            leader_epoch: LeaderEpoch(1),
            partition_epoch: 0,
            leader: Some(2),
            replicas: vec![1, 2],
            isr: vec![1, 2],
        };
        let mut r = Replica::new(1, assignment, 50, 50, 0);
        assert_eq!(r.role(), Role::Follower { leader: 2 });
        assert_eq!(
            advanced(&r.handle(Event::LeaderHighWatermark(80))),
            Some(50)
        );
        assert_eq!(
            advanced(&r.handle(Event::Durable(50))),
            None,
            "followers do not decide"
        );
        r.handle(Event::LogEnd(90));
        assert_eq!(
            advanced(&r.handle(Event::LeaderHighWatermark(80))),
            Some(80)
        );
    }

    #[test]
    fn a_new_assignment_changes_the_epoch_and_a_stale_one_is_ignored() {
        let mut r = Replica::sole_replica(1, LeaderEpoch(0), 10, 10);
        let newer = Assignment {
            leader_epoch: LeaderEpoch(2),
            partition_epoch: 0,
            leader: Some(1),
            replicas: vec![1],
            isr: vec![1],
        };
        assert!(r.handle(Event::Assigned(newer.clone())).is_empty());
        assert_eq!(r.leader_epoch(), LeaderEpoch(2));
        let stale = Assignment {
            leader_epoch: LeaderEpoch(1),
            leader: None,
            ..newer.clone()
        };
        r.handle(Event::Assigned(stale));
        assert_eq!(
            r.assignment(),
            &newer,
            "an older epoch never undoes a newer one"
        );
        // Leadership taken away: no longer a leader, the high watermark stays where it was.
        let offline = Assignment {
            leader_epoch: LeaderEpoch(3),
            leader: None,
            ..newer
        };
        r.handle(Event::Assigned(offline));
        assert!(!r.is_leader());
        assert_eq!(r.high_watermark(), 10);
        r.handle(Event::Durable(10));
        assert_eq!(r.high_watermark(), 10);
    }

    fn three(isr: Vec<BrokerId>, partition_epoch: i32) -> Assignment {
        Assignment {
            leader_epoch: LeaderEpoch(5),
            partition_epoch,
            leader: Some(1),
            replicas: vec![1, 2, 3],
            isr,
        }
    }

    fn fetch(replica: BrokerId, durable_end: i64, now_ms: i64) -> Event {
        Event::FollowerFetch {
            replica,
            durable_end,
            now_ms,
        }
    }

    fn alter(actions: &[Action]) -> Option<Vec<BrokerId>> {
        actions.iter().find_map(|a| match a {
            Action::AlterIsr { isr, .. } => Some(isr.clone()),
            _ => None,
        })
    }

    const MIN2: ReplicaConfig = ReplicaConfig {
        min_insync_replicas: 2,
        replica_lag_time_max_ms: 1_000,
    };

    #[test]
    fn a_member_behind_for_the_lag_time_is_proposed_out_and_counts_until_the_change_applies() {
        let mut r = Replica::new(1, three(vec![1, 2, 3], 7), 0, 0, 0);
        r.set_config(MIN2);
        r.handle(Event::LogEnd(50));
        r.handle(Event::Durable(50));
        let mut now = 0;
        for k in 1..=10 {
            now = k * 100;
            let actions = r.handle(fetch(2, 50, now));
            assert_eq!(
                alter(&actions),
                None,
                "at {now}: 3 is not yet behind for long"
            );
        }
        assert_eq!(
            r.high_watermark(),
            0,
            "3 never fetched: it holds the watermark back"
        );
        let actions = r.handle(Event::Tick(now + 1));
        assert_eq!(alter(&actions), Some(vec![1, 2]));
        match &actions[..] {
            [Action::AlterIsr {
                leader_epoch,
                partition_epoch,
                ..
            }] => assert_eq!((*leader_epoch, *partition_epoch), (LeaderEpoch(5), 7)),
            other => panic!("{other:?}"),
        }
        assert_eq!(r.pending_isr(), Some(&[1, 2][..]));
        assert_eq!(
            alter(&r.handle(Event::Tick(now + 500))),
            None,
            "one change in flight"
        );
        assert_eq!(
            r.high_watermark(),
            0,
            "the member on its way out still counts"
        );
        // The controller applies it: the watermark follows the smaller ISR.
        let actions = r.handle(Event::Assigned(three(vec![1, 2], 8)));
        assert_eq!(advanced(&actions), Some(50));
        assert_eq!(r.pending_isr(), None);
    }

    #[test]
    fn a_replica_that_reaches_the_watermark_and_the_epoch_start_is_proposed_in() {
        let mut r = Replica::new(1, three(vec![1, 2], 3), 40, 40, 40);
        r.set_config(MIN2);
        r.handle(Event::LogEnd(60));
        r.handle(Event::Durable(60));
        assert_eq!(
            alter(&r.handle(fetch(3, 30, 10))),
            None,
            "below the epoch start (40)"
        );
        assert_eq!(advanced(&r.handle(fetch(2, 55, 20))), Some(55));
        assert_eq!(
            alter(&r.handle(fetch(3, 50, 30))),
            None,
            "past the epoch start, not yet at the watermark (55)"
        );
        let actions = r.handle(fetch(3, 58, 40));
        assert_eq!(alter(&actions), Some(vec![1, 2, 3]));
        // The joining member counts at once (maximal ISR): the watermark waits for it too.
        assert_eq!(advanced(&r.handle(fetch(2, 60, 50))), Some(58));
        // Refused by the controller (the owner feeds that after its retry backoff): 3 no
        // longer counts, the watermark moves past it, and it must reach the watermark again.
        let actions = r.handle(Event::AlterIsrFailed);
        assert_eq!((advanced(&actions), alter(&actions)), (Some(60), None));
        assert_eq!(alter(&r.handle(fetch(3, 60, 60))), Some(vec![1, 2, 3]));
        assert_eq!(alter(&r.handle(Event::Tick(70))), None, "in flight again");
        // A stale image (older partition epoch) changes nothing.
        r.handle(Event::Assigned(three(vec![1], 2)));
        assert_eq!(r.assignment().isr, vec![1, 2]);
        assert_eq!(r.pending_isr(), Some(&[1, 2, 3][..]));
    }

    #[test]
    fn below_min_insync_the_watermark_stops_and_acks_all_is_refused() {
        let mut r = Replica::new(1, three(vec![1, 2], 1), 10, 10, 10);
        r.set_config(MIN2);
        assert_eq!(r.check_acks_all(), Ok(()));
        r.handle(Event::LogEnd(20));
        r.handle(Event::Durable(20));
        assert_eq!(r.acks_all_state(20, LeaderEpoch(5)), AcksState::Waiting);
        // The ISR shrinks to the leader alone while the write waits.
        r.handle(Event::Assigned(three(vec![1], 2)));
        assert_eq!(r.high_watermark(), 10, "one member of two: no advance");
        assert_eq!(
            r.acks_all_state(20, LeaderEpoch(5)),
            AcksState::Failed(AcksRefusal::NotEnoughReplicasAfterAppend)
        );
        assert_eq!(r.check_acks_all(), Err(AcksRefusal::NotEnoughReplicas));
        assert_eq!(r.acks_all_state(10, LeaderEpoch(5)), AcksState::Done);
        // With min.insync.replicas=1 the leader alone commits what it holds durably.
        let actions = r.set_config(ReplicaConfig::default());
        assert_eq!(advanced(&actions), Some(20));
        // A write appended under another leadership is not this one's to acknowledge.
        assert_eq!(
            r.acks_all_state(20, LeaderEpoch(4)),
            AcksState::Failed(AcksRefusal::NotLeader)
        );
    }

    #[test]
    fn a_follower_catching_up_to_where_the_leader_was_at_its_last_fetch_stays_in_sync() {
        let mut r = Replica::new(1, three(vec![1, 2], 1), 0, 0, 0);
        r.set_config(MIN2);
        // The leader's log keeps growing; the follower always reaches the end the leader had
        // at its previous fetch (Kafka's second rule), so it is never dropped.
        let mut end = 0;
        for k in 1..=50i64 {
            let previous_end = end;
            end += 10;
            r.handle(Event::LogEnd(end));
            r.handle(Event::Durable(end));
            let actions = r.handle(fetch(2, previous_end, k * 400));
            assert_eq!(alter(&actions), None, "fetch {k}");
        }
        // It stops fetching: dropped once the lag time passed since it was last caught up.
        assert_eq!(alter(&r.handle(Event::Tick(50 * 400 + 500))), None);
        assert_eq!(
            alter(&r.handle(Event::Tick(50 * 400 + 1_000))),
            Some(vec![1])
        );
    }

    #[test]
    fn a_new_leaders_isr_is_caught_up_from_its_first_clock_reading_and_silence_never_readmits() {
        let now = 1_700_000_000_000;
        let mut r = Replica::new(1, three(vec![1, 2, 3], 0), 0, 0, 0).started_at(now);
        r.set_config(MIN2);
        assert_eq!(
            alter(&r.handle(Event::Tick(now + 500))),
            None,
            "within the lag time of the leader's start, not of time zero"
        );
        r.handle(fetch(2, 0, now + 900));
        assert_eq!(alter(&r.handle(Event::Tick(now + 1_001))), Some(vec![1, 2]));
        r.handle(Event::Assigned(three(vec![1, 2], 1)));
        assert_eq!(
            alter(&r.handle(Event::Tick(now + 1_100))),
            None,
            "3 never fetched: nothing says it reached the watermark"
        );
        assert_eq!(
            alter(&r.handle(fetch(3, 0, now + 1_200))),
            Some(vec![1, 2, 3])
        );
    }

    #[test]
    fn a_follower_that_stopped_fetching_is_not_taken_back_in_and_ineligible_ones_never() {
        let mut r = Replica::new(1, three(vec![1, 2, 3], 0), 10, 10, 10);
        r.set_config(MIN2);
        r.handle(fetch(2, 10, 100));
        r.handle(fetch(3, 10, 100));
        // 3 dies caught up; 2 keeps fetching. No new records: the watermark stays at 10,
        // which 3's last report reaches.
        for t in (200..=1_100).step_by(100) {
            r.handle(fetch(2, 10, t));
        }
        assert_eq!(alter(&r.handle(Event::Tick(1_101))), Some(vec![1, 2]));
        let actions = r.handle(Event::Assigned(three(vec![1, 2], 1)));
        assert_eq!(
            alter(&actions),
            None,
            "3 reached the watermark, but long ago"
        );
        assert_eq!(alter(&r.handle(Event::Tick(1_200))), None);
        // Back, but fenced in the image: not proposed until it is eligible again.
        r.set_ineligible(vec![3]);
        assert_eq!(alter(&r.handle(fetch(3, 10, 1_300))), None);
        assert_eq!(alter(&r.set_ineligible(Vec::new())), Some(vec![1, 2, 3]));
    }

    #[test]
    fn min_insync_is_capped_at_the_replica_count() {
        let mut r = Replica::sole_replica(1, LeaderEpoch(0), 5, 5);
        r.set_config(MIN2);
        assert_eq!(
            r.check_acks_all(),
            Ok(()),
            "one replica: one in sync is enough"
        );
        r.handle(Event::LogEnd(9));
        assert_eq!(advanced(&r.handle(Event::Durable(9))), Some(9));
    }

    /// Random events against one leader: the watermark never goes back, never passes what
    /// every committed-ISR member reported durable, and an ISR below the minimum never moves it.
    #[test]
    fn random_histories_keep_the_watermark_safe() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..300 {
            let mut r = Replica::new(1, three(vec![1, 2, 3], 0), 0, 0, 0);
            r.set_config(MIN2);
            let (mut end, mut durable, mut now, mut pe) = (0i64, 0i64, 0i64, 0);
            let mut reported = BTreeMap::new();
            for _ in 0..200 {
                let before = r.high_watermark();
                let actions = match next(6) {
                    0 => {
                        end += 1 + next(5) as i64;
                        r.handle(Event::LogEnd(end))
                    }
                    1 => {
                        durable = end;
                        r.handle(Event::Durable(durable))
                    }
                    2 | 3 => {
                        let f = 2 + next(2) as i32;
                        let d = next(end as u64 + 1) as i64;
                        let e = reported.entry(f).or_insert(0i64);
                        *e = (*e).max(d);
                        now += next(300) as i64;
                        r.handle(fetch(f, d, now))
                    }
                    4 => {
                        now += next(800) as i64;
                        r.handle(Event::Tick(now))
                    }
                    _ => match r.pending_isr().map(<[BrokerId]>::to_vec) {
                        Some(isr) => {
                            pe += 1;
                            r.handle(Event::Assigned(three(isr, pe)))
                        }
                        None => Vec::new(),
                    },
                };
                let hw = r.high_watermark();
                assert!(hw >= before, "the watermark went back");
                if hw > before {
                    let isr = &r.assignment().isr;
                    assert!(isr.len() >= 2, "advanced with ISR {isr:?}");
                    assert!(hw <= durable, "past the leader's durable end");
                    for m in isr.iter().filter(|&&m| m != 1) {
                        assert!(hw <= reported.get(m).copied().unwrap_or(0), "past {m}'s");
                    }
                    assert_eq!(advanced(&actions), Some(hw));
                }
                if let Some(isr) = alter(&actions) {
                    assert!(isr.contains(&1), "the leader stays in its ISR");
                }
            }
        }
    }
}
