//! Transactional offset commits (TxnOffsetCommit: KIP-98, with KIP-447's group fencing).
//!
//! A consume-transform-produce loop commits its input offsets inside its transaction: the
//! producer adds the group's `__consumer_offsets` partition to the transaction
//! (AddOffsetsToTxn), then sends TxnOffsetCommit here. The offsets are checked against the
//! group (generation for a classic group, member epoch for a KIP-848 group: a consumer that
//! lost its partitions in a rebalance cannot commit for them) and appended to the offsets
//! partition as a transactional batch of the producer, so the partition's producer state holds
//! the transaction open like any other. They are not the group's offsets yet: they wait here,
//! per offsets partition and producer, until the producer's marker is written to the partition
//! (the transaction coordinator writes it there like on any partition of the transaction). A
//! COMMIT makes them the group's offsets, except where a plain commit was appended after them
//! (the newer record wins, as in Kafka); an ABORT drops them. Reading the partition back
//! after a leader change replays the same: transactional records wait, markers settle them.
//!
//! OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT for a partition with a
//! commit pending, so a consumer starting in the middle of a transaction does not read an
//! offset the transaction is about to move.

use super::{
    decode_key, decode_offset_value, groups_of, CommittedOffset, GroupOperation, Held, Key,
    ShardGroups, OFFSETS_COMMIT_TIMEOUT, OFFSETS_TOPIC,
};
use crate::consumer_group::OffsetCheck;
use crate::errors::code;
use crate::shard::Shard;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

/// A producer's pending offsets by group, then (topic, partition).
type ByGroup = HashMap<String, BTreeMap<(String, i32), Held>>;

/// Transactional offsets waiting for their marker, by (offsets partition, producer id).
#[derive(Default)]
pub(super) struct Pending {
    by_producer: HashMap<(i32, i64), ByGroup>,
}

impl Pending {
    fn hold(
        &mut self,
        partition: i32,
        producer_id: i64,
        group: &str,
        key: (String, i32),
        held: Held,
    ) {
        self.by_producer
            .entry((partition, producer_id))
            .or_default()
            .entry(group.to_string())
            .or_default()
            .insert(key, held);
    }

    /// Takes what `producer_id` has pending on offsets partition `partition`.
    fn take(&mut self, partition: i32, producer_id: i64) -> Option<ByGroup> {
        self.by_producer.remove(&(partition, producer_id))
    }

    /// Whether a transactional commit for `group`'s (`topic`, `partition`) waits.
    pub(super) fn holds(&self, group: &str, topic: &str, partition: i32) -> bool {
        let key = (topic.to_string(), partition);
        self.by_producer
            .values()
            .any(|groups| groups.get(group).is_some_and(|g| g.contains_key(&key)))
    }

    /// Drops what waits for `group`'s (`topic`, `partition`) (its offset was deleted).
    pub(super) fn forget(&mut self, group: &str, topic: &str, partition: i32) {
        let key = (topic.to_string(), partition);
        for groups in self.by_producer.values_mut() {
            if let Some(g) = groups.get_mut(group) {
                g.remove(&key);
            }
        }
    }

    /// Drops what waits for `group` (it was deleted).
    pub(super) fn forget_group(&mut self, group: &str) {
        for groups in self.by_producer.values_mut() {
            groups.remove(group);
        }
    }

    /// Forgets offsets partition `partition` (no longer coordinated here).
    pub(super) fn unload(&mut self, partition: i32) {
        self.by_producer.retain(|(p, _), _| *p != partition);
    }
}

impl ShardGroups {
    /// Replays a transactional record: an offset commit waits for its marker.
    pub(super) fn hold_record(
        &self,
        partition: i32,
        record: &crate::state_log::Replayed<'_>,
    ) -> bool {
        let Some(Key::Offset(group, topic, p)) = record.key.and_then(decode_key) else {
            return false;
        };
        let Some(offset) = record.value.and_then(decode_offset_value) else {
            return false;
        };
        let held = Held {
            offset,
            record: record.offset,
        };
        let mut pending = self.pending.borrow_mut();
        pending.hold(partition, record.producer_id, &group, (topic, p), held);
        true
    }

    /// `producer_id`'s transaction ended on offsets partition `partition`: its offsets become
    /// the groups' (`commit`) unless a later record already moved them, or are dropped.
    pub(super) fn complete_txn(&self, partition: i32, producer_id: i64, commit: bool) {
        let Some(groups) = self.pending.borrow_mut().take(partition, producer_id) else {
            return;
        };
        if !commit {
            return;
        }
        let mut all = self.offsets.borrow_mut();
        for (group, offsets) in groups {
            let committed = all.entry(group).or_default();
            for (key, held) in offsets {
                let newer = committed.get(&key).is_some_and(|c| c.record > held.record);
                if !newer {
                    committed.insert(key, held);
                }
            }
        }
    }
}

/// A transaction marker was written (and committed) to `__consumer_offsets` partition
/// `partition` on this shard: settles the transactional offsets it closes.
pub fn on_marker(shard: &Shard, partition: i32, producer_id: i64, commit: bool) {
    groups_of(shard).complete_txn(partition, producer_id, commit);
}

/// TxnOffsetCommit on the group's coordinating shard: one code per offset, in order. The
/// handler has checked with the transaction coordinator that the offsets partition is in the
/// producer's transaction (KIP-890).
pub struct TxnCommit {
    /// Group.
    pub group_id: String,
    /// The producer whose transaction carries the offsets.
    pub producer_id: i64,
    /// Its epoch (an older one than the partition's producer state knows is fenced).
    pub producer_epoch: i16,
    /// v3+: the consumer's generation (classic) or member epoch (KIP-848); -1 before.
    pub generation_id: i32,
    /// v3+: the consumer's member id; "" before.
    pub member_id: String,
    /// v3+: its static id.
    pub group_instance_id: Option<String>,
    /// (topic, partition, offset) to commit.
    pub offsets: Vec<(String, i32, CommittedOffset)>,
}

impl GroupOperation for TxnCommit {
    type Answer = Vec<i16>;

    async fn execute(self, shard: Rc<Shard>, now: i64) -> Vec<i16> {
        let groups = groups_of(&shard);
        let all = |c: i16| vec![c; self.offsets.len()];
        let consumer_check = groups.consumer.borrow().validate_txn_commit(
            &self.group_id,
            &self.member_id,
            self.generation_id,
        );
        match consumer_check {
            OffsetCheck::Ok => {}
            OffsetCheck::Refused(c) => return all(c),
            OffsetCheck::NotConsumerGroup => {
                let check = groups.machine.borrow_mut().validate_txn_commit(
                    now,
                    &self.group_id,
                    self.generation_id,
                    &self.member_id,
                    self.group_instance_id.as_deref(),
                );
                if check != code::NONE {
                    return all(check);
                }
            }
        }
        commit(&shard, self).await
    }
}

async fn commit(shard: &Rc<Shard>, op: TxnCommit) -> Vec<i16> {
    let super::Checked {
        mut codes,
        records,
        accepted,
    } = super::check_offsets(shard, &op.group_id, op.offsets);
    if records.is_empty() {
        return codes;
    }
    let p = super::offsets_partition_of(shard, &op.group_id);
    let groups = groups_of(shard);
    let producer = (op.producer_id, op.producer_epoch);
    let (group_id, pid) = (op.group_id.as_str(), op.producer_id);
    // Held as soon as the batch is in the log: the marker that settles it may come before
    // the wait for replication ends (and a failed wait leaves the records in the log, where
    // the marker still settles them).
    let hold = |first: i64| {
        let mut pending = groups.pending.borrow_mut();
        for (record, (_, topic, partition, offset)) in (first..).zip(&accepted) {
            let held = Held {
                offset: offset.clone(),
                record,
            };
            pending.hold(p, pid, group_id, (topic.clone(), *partition), held);
        }
    };
    let place = (OFFSETS_TOPIC, p);
    let written = groups
        .host
        .append_transactional(
            shard,
            place,
            &records,
            producer,
            OFFSETS_COMMIT_TIMEOUT,
            hold,
        )
        .await;
    if let Err(error) = written {
        for (i, ..) in &accepted {
            codes[*i] = error;
        }
    }
    codes
}

#[cfg(test)]
mod tests {
    use super::super::{fetch_rows, offset_key, offset_value, tombstone};
    use super::*;
    use crate::state_log::{Replayed, StateMachine};

    fn value(offset: i64) -> Vec<u8> {
        offset_value(&CommittedOffset {
            offset,
            leader_epoch: -1,
            metadata: None,
            commit_timestamp: 1,
        })
    }

    /// Replays one offset record of `group` for topic "t" partition 0 at log offset `at`.
    fn replay(groups: &ShardGroups, at: i64, producer_id: i64, group: &str, offset: i64) {
        let key = offset_key(group, "t", 0);
        let v = value(offset);
        let record = Replayed {
            offset: at,
            producer_id,
            transactional: producer_id >= 0,
            key: Some(&key),
            value: Some(&v),
        };
        assert!(groups.replay(0, 0, record));
    }

    fn committed(groups: &ShardGroups, group: &str) -> Option<i64> {
        let rows = fetch_rows(groups, group, Some(vec![("t".to_string(), 0)]), false);
        rows[0].2.as_ref().map(|o| o.offset)
    }

    fn groups() -> ShardGroups {
        ShardGroups::new(Default::default(), Default::default(), Default::default())
    }

    #[test]
    fn transactional_offsets_wait_for_their_marker() {
        let g = groups();
        replay(&g, 0, -1, "g", 5);
        replay(&g, 1, 7, "g", 10);
        // Pending: the group still reads its last plain commit, a stable read is refused.
        assert_eq!(committed(&g, "g"), Some(5));
        let stable = fetch_rows(&g, "g", None, true);
        assert_eq!(stable[0].2, None);
        assert_eq!(stable[0].3, code::UNSTABLE_OFFSET_COMMIT);
        // Another producer's marker settles nothing of producer 7's.
        g.replay_marker(0, 8, true);
        assert_eq!(committed(&g, "g"), Some(5));
        g.replay_marker(0, 7, true);
        assert_eq!(committed(&g, "g"), Some(10));
        let stable = fetch_rows(&g, "g", None, true);
        assert_eq!(
            (stable[0].2.as_ref().map(|o| o.offset), stable[0].3),
            (Some(10), code::NONE)
        );

        replay(&g, 3, 7, "g", 20);
        g.replay_marker(0, 7, false);
        assert_eq!(committed(&g, "g"), Some(10), "an abort drops the offsets");
        assert!(!g.pending.borrow().holds("g", "t", 0));
    }

    #[test]
    fn a_plain_commit_written_after_the_transactional_one_wins() {
        let g = groups();
        replay(&g, 0, 7, "g", 10);
        replay(&g, 1, -1, "g", 30);
        g.replay_marker(0, 7, true);
        assert_eq!(committed(&g, "g"), Some(30));
        // Written before it: the transaction's offset replaces it.
        replay(&g, 2, -1, "g", 40);
        replay(&g, 3, 7, "g", 50);
        g.replay_marker(0, 7, true);
        assert_eq!(committed(&g, "g"), Some(50));
    }

    #[test]
    fn deletes_and_unloads_drop_what_waits() {
        let g = groups();
        replay(&g, 0, 7, "g", 10);
        replay(&g, 1, 8, "h", 11);
        // A plain tombstone for g's partition takes the pending commit along.
        let t = tombstone(offset_key("g", "t", 0));
        let record = Replayed {
            offset: 2,
            producer_id: -1,
            transactional: false,
            key: t.key.as_deref(),
            value: None,
        };
        assert!(g.replay(0, 0, record));
        g.replay_marker(0, 7, true);
        assert_eq!(committed(&g, "g"), None);
        // Unloading partition 0 forgets producer 8's pending commit: its marker, replayed by
        // the next leader, finds nothing here.
        g.unload(0, 1);
        assert!(!g.pending.borrow().holds("h", "t", 0));
        g.replay_marker(0, 8, true);
        assert_eq!(committed(&g, "h"), None);
        // A transactional record that is not an offset commit is not understood.
        let key = super::super::group_key("g");
        let record = Replayed {
            offset: 3,
            producer_id: 7,
            transactional: true,
            key: Some(&key),
            value: Some(b"x"),
        };
        assert!(!g.replay(0, 0, record));
    }
}
