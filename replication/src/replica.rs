//! The partition replica state machine: who leads, under which epoch, which replicas are in
//! sync, and the high watermark they have reached together.
//!
//! Sans-I/O, like the group coordinators: the shard that owns the partition feeds it [`Event`]s
//! (the local log grew, the local log became durable, a follower reported its durable end) and
//! carries out the [`Action`]s it returns (wake fetches and produces waiting on the high
//! watermark). It never reads a clock or a disk, so a test drives it step by step.
//!
//! The high watermark is the smallest *durable* end among the in-sync replicas (DESIGN.md:
//! followers report durable offsets only, so "committed" means on disk on every ISR member).
//! It never moves back while this replica leads. A single-node broker leads every partition
//! with ISR = [itself], so its high watermark is its own durable end.
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
    /// A follower fetched and reported that everything below `durable_end` is on its disk.
    FollowerDurable {
        /// The follower.
        replica: BrokerId,
        /// Its durable end.
        durable_end: i64,
    },
    /// The leader's high watermark, as a follower learns it from a fetch response.
    LeaderHighWatermark(i64),
    /// The metadata image assigned the partition anew (leader, epoch, replicas, ISR). An
    /// assignment under an older epoch than the one in force is ignored: images only move
    /// forward, and a stale one must not undo a newer leadership.
    Assigned(Assignment),
}

/// What the owner of the partition must do after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The high watermark moved forward: wake whatever waits for committed data.
    HighWatermarkAdvanced {
        /// The old value.
        from: i64,
        /// The new value.
        to: i64,
    },
}

/// The replica set of a partition as the metadata image assigns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The leader epoch in force.
    pub leader_epoch: LeaderEpoch,
    /// The leader, or `None` when the partition has none.
    pub leader: Option<BrokerId>,
    /// Every replica, preferred leader first.
    pub replicas: Vec<BrokerId>,
    /// The in-sync replicas.
    pub isr: Vec<BrokerId>,
}

/// One partition replica's replication state.
#[derive(Debug, Clone)]
pub struct Replica {
    local: BrokerId,
    assignment: Assignment,
    high_watermark: HighWatermark,
    log_end: i64,
    durable_end: i64,
    /// Durable ends reported by followers (leader only).
    followers: BTreeMap<BrokerId, i64>,
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
            assignment,
            high_watermark: HighWatermark(high_watermark.min(durable_end)),
            log_end,
            durable_end,
            followers: BTreeMap::new(),
        };
        replica.recompute();
        replica
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
            leader: Some(local),
            replicas: vec![local],
            isr: vec![local],
        };
        Replica::new(local, assignment, log_end, durable_end, durable_end)
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

    /// Offsets below this are committed and visible to consumers.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.0
    }

    /// The last stable offset: consumers reading committed transactions stop here. Without
    /// transactions in the log it is the high watermark.
    pub fn last_stable_offset(&self) -> i64 {
        self.high_watermark.0
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
            Event::FollowerDurable {
                replica,
                durable_end,
            } => {
                if self.is_leader() && self.assignment.replicas.contains(&replica) {
                    let known = self.followers.entry(replica).or_insert(durable_end);
                    *known = (*known).max(durable_end);
                }
            }
            Event::Assigned(assignment) => {
                if assignment.leader_epoch < self.assignment.leader_epoch {
                    return Vec::new();
                }
                let was_leader = self.is_leader();
                self.assignment = assignment;
                if !self.is_leader() || !was_leader {
                    // A new leader learns its followers' logs afresh.
                    self.followers.clear();
                }
            }
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

    /// On a leader: the high watermark becomes the smallest durable end in the ISR (never
    /// smaller than it was). True if it moved.
    fn recompute(&mut self) -> bool {
        if !self.is_leader() {
            return false;
        }
        let mut candidate = self.durable_end;
        for member in &self.assignment.isr {
            if *member == self.local {
                continue;
            }
            candidate = candidate.min(self.followers.get(member).copied().unwrap_or(i64::MIN));
        }
        let moved = self.high_watermark.advance_to(candidate);
        debug_assert!(self.high_watermark.0 <= self.durable_end.max(self.high_watermark.0));
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advanced(actions: &[Action]) -> Option<i64> {
        actions
            .iter()
            .map(|a| match a {
                Action::HighWatermarkAdvanced { to, .. } => *to,
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
        assert_eq!(r.last_stable_offset(), 15);
    }

    #[test]
    fn a_leader_waits_for_every_isr_member_and_ignores_others() {
        let assignment = Assignment {
            leader_epoch: LeaderEpoch(3),
            leader: Some(1),
            replicas: vec![1, 2, 3],
            isr: vec![1, 2],
        };
        let mut r = Replica::new(1, assignment, 100, 100, 40);
        assert_eq!(r.high_watermark(), 40, "no follower has reported yet");
        assert_eq!(
            advanced(&r.handle(Event::FollowerDurable {
                replica: 3,
                durable_end: 100
            })),
            None
        );
        assert_eq!(
            advanced(&r.handle(Event::FollowerDurable {
                replica: 2,
                durable_end: 70
            })),
            Some(70)
        );
        assert_eq!(
            advanced(&r.handle(Event::FollowerDurable {
                replica: 2,
                durable_end: 60
            })),
            None
        );
        assert_eq!(
            advanced(&r.handle(Event::FollowerDurable {
                replica: 9,
                durable_end: 500
            })),
            None
        );
        assert_eq!(
            advanced(&r.handle(Event::FollowerDurable {
                replica: 2,
                durable_end: 120
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
}
