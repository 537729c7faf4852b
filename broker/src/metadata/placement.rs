//! Node-local placement: which of this node's shards holds each partition.
//!
//! Not cluster metadata (see `millrace_replication::metadata`): two nodes with different core
//! counts hold equal images and different placements. The table follows the records (a new
//! partition goes to the least loaded shard, a removed topic leaves) and is reconciled with
//! the image at start-up, so losing the file moves partitions between shards but never loses
//! one: a partition's directory (`<data>/<topic>-<n>`) does not depend on its shard.
//!
//! On disk (`<data>/shard-placement`, written with `Disk::write_file_atomic`), text so
//! operators can read it:
//! ```text
//! millrace-placement 1
//! topic <topic id as uuid> <shard,shard,...>   (one shard per partition, topic id order)
//! crc32c <hex of everything above>
//! ```

use millrace_replication::metadata::{ClusterImage, MetadataRecord, TopicId};
use std::collections::BTreeMap;

/// Format version written in the first line.
const FORMAT_VERSION: u32 = 1;

/// Partition → shard for every topic this node holds, keyed by topic id (a topic deleted and
/// created again under its name is a new topic).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    topics: BTreeMap<TopicId, Vec<usize>>,
}

/// A placement file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("placement file is invalid: {0}")]
pub struct PlacementFileError(pub String);

impl Placement {
    /// The shard of each partition of a topic.
    pub fn shards_of(&self, id: &TopicId) -> Option<&[usize]> {
        self.topics.get(id).map(Vec::as_slice)
    }

    /// The shard holding one partition.
    pub fn owner(&self, id: &TopicId, partition: i32) -> Option<usize> {
        let index = usize::try_from(partition).ok()?;
        self.topics.get(id)?.get(index).copied()
    }

    /// Sets a topic's shards (the migration copies the old file's lists).
    pub fn set(&mut self, id: TopicId, shards: Vec<usize>) {
        self.topics.insert(id, shards);
    }

    /// Partitions per shard, counting only shards below `shards`.
    pub fn load_per_shard(&self, shards: usize) -> Vec<usize> {
        let mut load = vec![0usize; shards];
        for &s in self.topics.values().flatten() {
            if s < shards {
                load[s] += 1;
            }
        }
        load
    }

    /// Follows one record applied to the image: a new partition goes to the least loaded of
    /// `shards`, a removed topic leaves the table. Other records place nothing.
    pub fn follow(&mut self, record: &MetadataRecord, shards: usize) {
        match record {
            MetadataRecord::Partition(p) => {
                let s = least_loaded(&self.load_per_shard(shards));
                self.topics.entry(p.topic_id).or_default().push(s);
            }
            MetadataRecord::RemoveTopic(r) => {
                self.topics.remove(&r.topic_id);
            }
            _ => {}
        }
    }

    /// Brings the table in line with `image` on a node with `shards` shards: drops topics the
    /// image no longer has and partitions past its count, moves partitions of shards that no
    /// longer exist (a restart with fewer cores) and places partitions the table lacks, each
    /// on the least loaded shard. Returns true if anything changed.
    pub fn reconcile(&mut self, image: &ClusterImage, shards: usize) -> bool {
        let before = self.clone();
        self.topics.retain(|id, _| image.topic_by_id(id).is_some());
        for topic in image.topics() {
            let list = self.topics.entry(topic.id).or_default();
            list.truncate(topic.partitions.len());
        }
        let mut load = self.load_per_shard(shards);
        for topic in image.topics() {
            let list = self.topics.get_mut(&topic.id).expect("entry made above");
            for s in list.iter_mut().filter(|s| **s >= shards) {
                *s = least_loaded(&load);
                load[*s] += 1;
            }
            while list.len() < topic.partitions.len() {
                let s = least_loaded(&load);
                load[s] += 1;
                list.push(s);
            }
        }
        *self != before
    }

    /// Serializes the table (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut text = format!("millrace-placement {FORMAT_VERSION}\n");
        for (id, shards) in &self.topics {
            let shards: Vec<String> = shards.iter().map(usize::to_string).collect();
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
        if lines.next() != Some(&format!("millrace-placement {FORMAT_VERSION}")[..]) {
            return Err(err("unknown format version"));
        }
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
                .map(str::parse::<usize>)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| err("bad shard list"))?;
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

    #[test]
    fn round_trip_and_checksum() {
        let mut placement = Placement::default();
        placement.set(TopicId([1; 16]), vec![0, 1, 0]);
        placement.set(TopicId([2; 16]), vec![1]);
        let bytes = placement.encode();
        assert_eq!(Placement::decode(&bytes).unwrap(), placement);
        for i in 0..bytes.len() - 1 {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(Placement::decode(&bad).is_err(), "flip at {i} accepted");
        }
        assert!(Placement::decode(&bytes[..bytes.len() / 2]).is_err());
    }

    #[test]
    fn fewer_shards_moves_only_orphans() {
        let image = image(&[(1, 4)]);
        let mut placement = Placement::default();
        placement.set(TopicId([1; 16]), vec![0, 3, 1, 2]);
        assert!(placement.reconcile(&image, 2));
        let shards = placement.shards_of(&TopicId([1; 16])).unwrap();
        assert_eq!((shards[0], shards[2]), (0, 1));
        assert!(shards.iter().all(|&s| s < 2));
        assert!(!placement.reconcile(&image, 2));
    }

    #[test]
    fn reconcile_places_missing_and_drops_unknown() {
        let image = image(&[(1, 2), (2, 3)]);
        let mut placement = Placement::default();
        placement.set(TopicId([1; 16]), vec![1, 1, 1]); // one partition too many
        placement.set(TopicId([9; 16]), vec![0]); // not in the image
        assert!(placement.reconcile(&image, 2));
        assert_eq!(placement.shards_of(&TopicId([1; 16])), Some(&[1, 1][..]));
        assert_eq!(placement.shards_of(&TopicId([2; 16])), Some(&[0, 0, 0][..]));
        assert_eq!(placement.shards_of(&TopicId([9; 16])), None);
    }

    #[test]
    fn follow_places_on_the_least_loaded_shard() {
        let mut placement = Placement::default();
        placement.set(TopicId([1; 16]), vec![0, 0]);
        let image = image(&[(2, 2)]);
        let records: Vec<MetadataRecord> =
            super::super::partition_records(TopicId([2; 16]), 0..2, 0).collect();
        assert_eq!(image.topic_count(), 1);
        for r in &records {
            placement.follow(r, 3);
        }
        assert_eq!(placement.shards_of(&TopicId([2; 16])), Some(&[1, 2][..]));
    }
}
