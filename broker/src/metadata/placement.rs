//! Node-local placement: which of this node's shards holds each partition this node is a
//! replica of.
//!
//! Not cluster metadata (see `millrace_replication::metadata`): two nodes with different core
//! counts hold equal images and different placements, and each node places only the
//! partitions whose replica list names it. The table follows the records (a new partition
//! with this node among its replicas goes to the least loaded shard, a partition whose
//! replicas change to leave this node out leaves, a removed topic leaves) and is reconciled
//! with the image at start-up, so losing the file moves partitions between shards but never
//! loses one: a partition's directory (`<data>/<topic>-<n>`) does not depend on its shard.
//!
//! On disk (`<data>/shard-placement`, written with `Disk::write_file_atomic`), text so
//! operators can read it:
//! ```text
//! millrace-placement 2
//! topic <topic id as uuid> <shard,-,shard,...>   (per partition: its shard, or - for a
//!                                                 partition held by other nodes only)
//! crc32c <hex of everything above>
//! ```
//! Version 1 (before clusters: every partition placed) is still read; start-up reconciles it
//! with the image.

use millrace_replication::metadata::{ClusterImage, MetadataRecord, TopicId};
use std::collections::BTreeMap;

/// Format version written in the first line.
const FORMAT_VERSION: u32 = 2;

/// Partition → shard (None: not a replica here) for every topic, by position, keyed by topic
/// id (a topic deleted and created again under its name is a new topic).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    topics: BTreeMap<TopicId, Vec<Option<usize>>>,
}

/// A placement file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("placement file is invalid: {0}")]
pub struct PlacementFileError(pub String);

impl Placement {
    /// The shard of each partition of a topic (None: held by other nodes only).
    pub fn shards_of(&self, id: &TopicId) -> Option<&[Option<usize>]> {
        self.topics.get(id).map(Vec::as_slice)
    }

    /// The shard holding one partition, if this node holds it.
    pub fn owner(&self, id: &TopicId, partition: i32) -> Option<usize> {
        let index = usize::try_from(partition).ok()?;
        *self.topics.get(id)?.get(index)?
    }

    /// Sets a topic's shards (the migration copies the old file's lists).
    pub fn set(&mut self, id: TopicId, shards: Vec<Option<usize>>) {
        self.topics.insert(id, shards);
    }

    /// Partitions per shard, counting only shards below `shards`.
    pub fn load_per_shard(&self, shards: usize) -> Vec<usize> {
        let mut load = vec![0usize; shards];
        for s in self.topics.values().flatten().flatten() {
            if *s < shards {
                load[*s] += 1;
            }
        }
        load
    }

    /// Follows one record applied to the image on node `node_id`: a new partition with this
    /// node among its replicas goes to the least loaded of `shards` (others are recorded as
    /// not here); a replica change places or unplaces the partition; a removed topic leaves
    /// the table. Other records place nothing.
    pub fn follow(&mut self, record: &MetadataRecord, shards: usize, node_id: i32) {
        match record {
            MetadataRecord::Partition(p) => {
                let here = p.state.replicas.contains(&node_id);
                let s = here.then(|| least_loaded(&self.load_per_shard(shards)));
                self.topics.entry(p.topic_id).or_default().push(s);
            }
            MetadataRecord::PartitionChange(c) => {
                let Some(replicas) = &c.replicas else { return };
                let here = replicas.contains(&node_id);
                let Ok(index) = usize::try_from(c.partition_id) else {
                    return;
                };
                let placed = self
                    .topics
                    .get(&c.topic_id)
                    .and_then(|l| l.get(index))
                    .is_some_and(Option::is_some);
                if here == placed {
                    return;
                }
                let s = here.then(|| least_loaded(&self.load_per_shard(shards)));
                if let Some(slot) = self
                    .topics
                    .get_mut(&c.topic_id)
                    .and_then(|l| l.get_mut(index))
                {
                    *slot = s;
                }
            }
            MetadataRecord::RemoveTopic(r) => {
                self.topics.remove(&r.topic_id);
            }
            _ => {}
        }
    }

    /// Brings the table in line with `image` on node `node_id` with `shards` shards: drops
    /// topics the image no longer has and partitions past its count, unplaces partitions this
    /// node is no replica of, moves partitions of shards that no longer exist (a restart with
    /// fewer cores) and places the partitions of this node the table lacks, each on the least
    /// loaded shard. Returns true if anything changed.
    pub fn reconcile(&mut self, image: &ClusterImage, shards: usize, node_id: i32) -> bool {
        let before = self.clone();
        self.topics.retain(|id, _| image.topic_by_id(id).is_some());
        for topic in image.topics() {
            let list = self.topics.entry(topic.id).or_default();
            list.truncate(topic.partitions.len());
            for (slot, p) in list.iter_mut().zip(&topic.partitions) {
                if !p.replicas.contains(&node_id) {
                    *slot = None;
                }
            }
        }
        let mut load = self.load_per_shard(shards);
        for topic in image.topics() {
            let list = self.topics.get_mut(&topic.id).expect("entry made above");
            for (slot, p) in list.iter_mut().zip(&topic.partitions) {
                let misplaced = slot.is_none_or(|s| s >= shards);
                if p.replicas.contains(&node_id) && misplaced {
                    let s = least_loaded(&load);
                    load[s] += 1;
                    *slot = Some(s);
                }
            }
            while list.len() < topic.partitions.len() {
                let p = &topic.partitions[list.len()];
                let s = p.replicas.contains(&node_id).then(|| {
                    let s = least_loaded(&load);
                    load[s] += 1;
                    s
                });
                list.push(s);
            }
        }
        *self != before
    }

    /// Serializes the table (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut text = format!("millrace-placement {FORMAT_VERSION}\n");
        for (id, shards) in &self.topics {
            let shards: Vec<String> = shards
                .iter()
                .map(|s| s.map_or_else(|| "-".to_string(), |s| s.to_string()))
                .collect();
            let uuid = uuid::Uuid::from_bytes(id.0);
            text.push_str(&format!("topic {uuid} {}\n", shards.join(",")));
        }
        super::seal_text(text)
    }

    /// Parses what [`Placement::encode`] wrote, checking the CRC first.
    pub fn decode(bytes: &[u8]) -> Result<Self, PlacementFileError> {
        let err = |m: &str| PlacementFileError(m.to_string());
        let body = super::open_text(bytes).map_err(err)?;
        let mut lines = body.lines();
        let version = match lines.next() {
            Some("millrace-placement 1") => 1,
            Some(l) if l == format!("millrace-placement {FORMAT_VERSION}") => FORMAT_VERSION,
            _ => return Err(err("unknown format version")),
        };
        let mut placement = Placement::default();
        for line in lines {
            let parts: Vec<&str> = line.split(' ').collect();
            let ["topic", id, shards] = parts.as_slice() else {
                return Err(err("unrecognised line"));
            };
            let id = uuid::Uuid::parse_str(id).map_err(|_| err("bad topic id"))?;
            let shards = shards
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| match s {
                    "-" if version >= 2 => Ok(None),
                    s => s
                        .parse::<usize>()
                        .map(Some)
                        .map_err(|_| err("bad shard list")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            placement.set(TopicId(*id.as_bytes()), shards);
        }
        Ok(placement)
    }
}

/// The shard with the fewest partitions (lowest id on ties).
pub fn least_loaded(load: &[usize]) -> usize {
    load.iter()
        .enumerate()
        .min_by_key(|(i, l)| (**l, *i))
        .map(|(i, _)| i)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use millrace_replication::metadata::TopicRecord;

    fn image(partitions: &[(u8, i32)]) -> ClusterImage {
        let mut image = ClusterImage::default();
        let mut offset = 0;
        let mut apply = |r: MetadataRecord| {
            image.apply(&r, offset).unwrap();
            offset += 1;
        };
        for &(n, count) in partitions {
            let topic_id = TopicId([n; 16]);
            apply(MetadataRecord::Topic(TopicRecord {
                name: format!("t{n}"),
                topic_id,
            }));
            for r in super::super::partition_records(topic_id, 0..count, 0) {
                apply(r);
            }
        }
        image
    }

    fn placed(shards: &[usize]) -> Vec<Option<usize>> {
        shards.iter().copied().map(Some).collect()
    }

    #[test]
    fn round_trip_and_checksum() {
        let mut placement = Placement::default();
        placement.set(TopicId([1; 16]), vec![Some(0), None, Some(0)]);
        placement.set(TopicId([2; 16]), placed(&[1]));
        let bytes = placement.encode();
        assert!(String::from_utf8_lossy(&bytes).contains(" 0,-,0\n"));
        assert_eq!(Placement::decode(&bytes).unwrap(), placement);
        for i in 0..bytes.len() - 1 {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(Placement::decode(&bad).is_err(), "flip at {i} accepted");
        }
        assert!(Placement::decode(&bytes[..bytes.len() / 2]).is_err());
    }

    #[test]
    fn a_version_1_file_is_read_as_all_placed_then_reconciled() {
        let uuid = uuid::Uuid::from_bytes([1; 16]);
        let v1 = super::super::seal_text(format!("millrace-placement 1\ntopic {uuid} 1,0\n"));
        let placement = Placement::decode(&v1).unwrap();
        assert_eq!(
            placement.shards_of(&TopicId([1; 16])),
            Some(&placed(&[1, 0])[..])
        );
        let bad = super::super::seal_text(format!("millrace-placement 1\ntopic {uuid} 1,-\n"));
        assert!(Placement::decode(&bad).is_err(), "- is a version 2 token");
        // On a node that is no replica of the topic, start-up unplaces what the file placed,
        // and the table is then written as version 2.
        let mut placement = placement;
        assert!(placement.reconcile(&image(&[(1, 2)]), 2, 7));
        assert_eq!(
            placement.shards_of(&TopicId([1; 16])),
            Some(&[None, None][..])
        );
        let bytes = placement.encode();
        assert!(String::from_utf8_lossy(&bytes).starts_with("millrace-placement 2\n"));
        assert!(String::from_utf8_lossy(&bytes).contains(" -,-\n"));
        assert_eq!(Placement::decode(&bytes).unwrap(), placement);
    }

    #[test]
    fn fewer_shards_moves_only_orphans() {
        let image = image(&[(1, 4)]);
        let mut placement = Placement::default();
        placement.set(TopicId([1; 16]), placed(&[0, 3, 1, 2]));
        assert!(placement.reconcile(&image, 2, 0));
        let shards = placement.shards_of(&TopicId([1; 16])).unwrap();
        assert_eq!((shards[0], shards[2]), (Some(0), Some(1)));
        assert!(shards.iter().all(|s| s.is_some_and(|s| s < 2)));
        assert!(!placement.reconcile(&image, 2, 0));
    }

    #[test]
    fn reconcile_places_missing_and_drops_unknown() {
        let image = image(&[(1, 2), (2, 3)]);
        let mut placement = Placement::default();
        placement.set(TopicId([1; 16]), placed(&[1, 1, 1])); // one partition too many
        placement.set(TopicId([9; 16]), placed(&[0])); // not in the image
        assert!(placement.reconcile(&image, 2, 0));
        assert_eq!(
            placement.shards_of(&TopicId([1; 16])),
            Some(&placed(&[1, 1])[..])
        );
        assert_eq!(
            placement.shards_of(&TopicId([2; 16])),
            Some(&placed(&[0, 0, 0])[..])
        );
        assert_eq!(placement.shards_of(&TopicId([9; 16])), None);
    }

    #[test]
    fn another_nodes_partitions_are_not_placed_here() {
        // Every partition of the image has node 0 as its only replica.
        let image = image(&[(1, 3)]);
        let mut elsewhere = Placement::default();
        assert!(elsewhere.reconcile(&image, 2, 7));
        assert_eq!(
            elsewhere.shards_of(&TopicId([1; 16])),
            Some(&[None, None, None][..])
        );
        assert_eq!(elsewhere.load_per_shard(2), vec![0, 0]);
        // A placement written before this node joined a cluster gives them up.
        let mut old = Placement::default();
        old.set(TopicId([1; 16]), placed(&[0, 1, 0]));
        assert!(old.reconcile(&image, 2, 7));
        assert_eq!(old, elsewhere);
        // Following the records gives the same table.
        let mut followed = Placement::default();
        for r in super::super::partition_records(TopicId([1; 16]), 0..3, 0) {
            followed.follow(&r, 2, 7);
        }
        assert_eq!(followed, elsewhere);
    }

    #[test]
    fn a_replica_change_places_or_unplaces_the_partition() {
        let mut placement = Placement::default();
        for r in super::super::partition_records(TopicId([1; 16]), 0..2, 0) {
            placement.follow(&r, 2, 7);
        }
        let change = |replicas: Vec<i32>| {
            MetadataRecord::PartitionChange(millrace_replication::metadata::PartitionChangeRecord {
                topic_id: TopicId([1; 16]),
                partition_id: 1,
                leader: None,
                isr: None,
                replicas: Some(replicas),
                eligible_leader_replicas: None,
                last_known_elr: None,
            })
        };
        placement.follow(&change(vec![0, 7]), 2, 7);
        assert_eq!(placement.owner(&TopicId([1; 16]), 1), Some(0));
        assert_eq!(placement.owner(&TopicId([1; 16]), 0), None);
        placement.follow(&change(vec![0]), 2, 7);
        assert_eq!(placement.owner(&TopicId([1; 16]), 1), None);
    }

    #[test]
    fn follow_places_on_the_least_loaded_shard() {
        let mut placement = Placement::default();
        placement.set(TopicId([1; 16]), placed(&[0, 0]));
        let image = image(&[(2, 2)]);
        let records: Vec<MetadataRecord> =
            super::super::partition_records(TopicId([2; 16]), 0..2, 0).collect();
        assert_eq!(image.topic_count(), 1);
        for r in &records {
            placement.follow(r, 3, 0);
        }
        assert_eq!(
            placement.shards_of(&TopicId([2; 16])),
            Some(&placed(&[1, 2])[..])
        );
    }
}
