//! Kafka's `simple` share-group assignor: every subscribed partition gets at least one member
//! and every member at least one partition of the topics it subscribes to (when they have
//! any). Per topic, in name order: with no more subscribers than partitions the partitions are
//! dealt round-robin among the subscribers, continuing from where the previous topic stopped so
//! single-partition topics spread over members; with more subscribers than partitions each
//! subscriber gets one partition, so partitions are shared. Deterministic: the same members,
//! subscriptions and metadata give the same assignment on any broker.

use super::{Assignment, TopicInfo};
use std::collections::{BTreeMap, BTreeSet};

/// The target assignment of each member (members with nothing to consume get an empty one).
pub(super) fn assign(
    subscriptions: &BTreeMap<&str, &BTreeSet<String>>,
    topics: &BTreeMap<String, TopicInfo>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = subscriptions
        .keys()
        .map(|m| (m.to_string(), Assignment::new()))
        .collect();
    let mut turn = 0usize;
    for (name, info) in topics {
        let members: Vec<&str> = subscriptions
            .iter()
            .filter(|(_, subscribed)| subscribed.contains(name))
            .map(|(m, _)| *m)
            .collect();
        let partitions = info.partitions.max(0) as usize;
        if members.is_empty() || partitions == 0 {
            continue;
        }
        let mut give = |member: &str, partition: usize| {
            out.get_mut(member)
                .expect("every member has an entry")
                .entry(info.id)
                .or_default()
                .insert(partition as i32);
        };
        if members.len() <= partitions {
            for p in 0..partitions {
                give(members[(turn + p) % members.len()], p);
            }
            turn = (turn + partitions) % members.len().max(1);
        } else {
            for (i, member) in members.iter().enumerate() {
                give(member, (turn + i) % partitions);
            }
            turn = (turn + members.len()) % partitions;
        }
    }
    out
}
