//! Where the replicas of new partitions go: a deterministic, rack-aware striped assignment in
//! the spirit of Kafka's `StripedReplicaPlacer` (KIP-36 racks, KRaft placement).
//!
//! The usable brokers (registered, unfenced, not in controlled shutdown) are grouped by rack
//! (brokers without a rack form one group, as in Kafka) and laid out in a *striped* list that
//! takes one broker from each rack in turn, racks in name order, brokers in id order:
//!
//! ```text
//! racks   a: [1, 2, 3]   b: [4, 5]   c: [6]
//! striped     1, 4, 6, 2, 5, 3
//! ```
//!
//! Partition `p` of a call with start index `s` sits at position `q = s + p`:
//!
//! * its leader is `striped[q mod n]`, so leaders go round-robin over the brokers and alternate
//!   racks, and within one call no broker leads more than one partition more than another;
//! * its followers are taken from the other positions, walked from the leader onwards with an
//!   offset that grows by one each time `q` wraps around the list (so a long topic does not
//!   repeat the same replica sets), each time the first broker whose rack holds the fewest
//!   replicas of this partition so far. Replicas of one partition therefore land in distinct
//!   racks while racks last, and never twice on one broker.
//!
//! The result depends only on the usable brokers and `s`; the controller picks `s` (Kafka
//! draws it at random per request; a counter or a hash of the topic id spreads load the same
//! way and keeps the simulator reproducible). Unlike Kafka, followers are never placed on
//! fenced brokers: a fenced broker may be gone for good, and a replica there would start the
//! partition under-replicated.
//!
//! Errors are Kafka's: a partition count below 1 is INVALID_PARTITIONS, a replication factor
//! below 1 or above the usable brokers (including "all brokers are fenced") is
//! INVALID_REPLICATION_FACTOR. The caller bounds the partition count
//! (`partitions_per_topic_max`); this module allocates one replica list per partition.

use super::image::ClusterImage;
use crate::error::ReplicationError;
use std::collections::BTreeMap;

/// A broker that may receive new replicas, as placement sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsableBroker<'a> {
    /// Broker id.
    pub id: i32,
    /// Its rack, if it has one.
    pub rack: Option<&'a str>,
}

/// The brokers of `image` that may receive new replicas: registered, unfenced and not in
/// controlled shutdown, in id order.
pub fn usable_brokers(image: &ClusterImage) -> Vec<UsableBroker<'_>> {
    image
        .brokers()
        .filter(|b| b.is_active())
        .map(|b| UsableBroker {
            id: b.broker_id,
            rack: b.rack.as_deref(),
        })
        .collect()
}

/// Replica lists for `partitions` new partitions over the usable brokers of `image`, leader
/// first, starting at position `start` (see the module doc).
pub fn place_replicas(
    image: &ClusterImage,
    start: usize,
    partitions: i32,
    replication_factor: i16,
) -> Result<Vec<Vec<i32>>, ReplicationError> {
    place(
        &usable_brokers(image),
        start,
        partitions,
        replication_factor,
    )
}

/// [`place_replicas`] over an explicit broker list (order and repeats do not matter).
pub fn place(
    brokers: &[UsableBroker<'_>],
    start: usize,
    partitions: i32,
    replication_factor: i16,
) -> Result<Vec<Vec<i32>>, ReplicationError> {
    let count = usize::try_from(partitions)
        .ok()
        .filter(|&c| c > 0)
        .ok_or(ReplicationError::InvalidPartitions { partitions })?;
    let striped = stripe(brokers);
    let rf = usize::try_from(replication_factor)
        .ok()
        .filter(|&rf| rf >= 1 && rf <= striped.len())
        .ok_or(ReplicationError::InvalidReplicationFactor {
            replication_factor,
            usable_brokers: striped.len(),
        })?;
    let n = striped.len();
    let racks = striped.iter().map(|&(_, rack)| rack + 1).max().unwrap_or(0);
    // `start` only matters modulo n (the leader) and n × (n - 1) (the follower offset);
    // reducing it first keeps `start + p` from overflowing.
    let base = start % (n * (n - 1).max(1));
    let out = (0..count)
        .map(|p| place_one(&striped, racks, base + p, rf))
        .collect();
    Ok(out)
}

/// The striped list of the module doc: (broker id, rack index) taking one broker per rack in
/// turn.
fn stripe(brokers: &[UsableBroker<'_>]) -> Vec<(i32, usize)> {
    let mut by_rack: BTreeMap<Option<&str>, Vec<i32>> = BTreeMap::new();
    for b in brokers {
        by_rack.entry(b.rack).or_default().push(b.id);
    }
    let mut racks: Vec<Vec<i32>> = by_rack.into_values().collect();
    for ids in &mut racks {
        ids.sort_unstable();
        ids.dedup();
    }
    let deepest = racks.iter().map(Vec::len).max().unwrap_or(0);
    let mut striped = Vec::with_capacity(brokers.len());
    for depth in 0..deepest {
        for (rack, ids) in racks.iter().enumerate() {
            if let Some(&id) = ids.get(depth) {
                striped.push((id, rack));
            }
        }
    }
    // A broker listed under two racks would appear twice; keep its first place.
    let mut seen = std::collections::BTreeSet::new();
    striped.retain(|&(id, _)| seen.insert(id));
    striped
}

/// The replicas of the partition at position `q`.
fn place_one(striped: &[(i32, usize)], racks: usize, q: usize, rf: usize) -> Vec<i32> {
    let n = striped.len();
    let leader = q % n;
    let others = n - 1;
    let offset = if others > 0 { (q / n) % others } else { 0 };
    // The other positions, from `offset` past the leader, wrapping.
    let order: Vec<usize> = (0..others)
        .map(|k| (leader + 1 + (offset + k) % others) % n)
        .collect();
    let mut per_rack = vec![0usize; racks];
    let mut taken = vec![false; others];
    let mut replicas = Vec::with_capacity(rf);
    replicas.push(striped[leader].0);
    per_rack[striped[leader].1] += 1;
    while replicas.len() < rf {
        let (slot, &position) = order
            .iter()
            .enumerate()
            .filter(|&(slot, _)| !taken[slot])
            .min_by_key(|&(slot, &position)| (per_rack[striped[position].1], slot))
            .expect("rf <= n leaves a broker untaken");
        taken[slot] = true;
        let (id, rack) = striped[position];
        per_rack[rack] += 1;
        replicas.push(id);
    }
    replicas
}

#[cfg(test)]
mod tests;
