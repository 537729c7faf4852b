//! The whole-file image written before the metadata log (format 1), read once to upgrade a data
//! directory (see `boot.rs`). Nothing writes this format any more; `encode` remains for tests.
//!
//! On disk (`<data>/__cluster_metadata/metadata`), a text file:
//! ```text
//! millrace-metadata 1
//! version <u64>
//! producer_id_block_end <i64>
//! cluster_id <string>
//! topic <name> <uuid> <shard,shard,...>   (one shard per partition)
//! config <topic> <key> <value>
//! crc32c <hex of everything above>
//! ```

use super::Placement;
use millrace_replication::metadata::{LegacyImage, LegacyTopic, TopicId};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Format version written in the first line.
const FORMAT_VERSION: u32 = 1;

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyTopicMeta {
    /// Topic name.
    pub name: String,
    /// Topic id (v4 UUID), for Fetch v13+ and Metadata v10+.
    pub id: uuid::Uuid,
    /// Owning shard of each partition, indexed by partition number.
    pub shards: Vec<usize>,
    /// Topic-level configs set at creation.
    pub configs: BTreeMap<String, String>,
}

/// The old image, as parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegacyMetadata {
    /// Grows by one with every change.
    pub version: u64,
    /// Topics by name.
    pub topics: BTreeMap<String, Arc<LegacyTopicMeta>>,
    /// Producer ids below this may have been handed out.
    pub producer_id_block_end: i64,
    /// The cluster id, made once when the data directory is first used.
    pub cluster_id: String,
}

/// A metadata file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("metadata file is invalid: {0}")]
pub struct MetadataFileError(pub String);

impl LegacyMetadata {
    #[cfg(test)]
    /// Serializes the image (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut text = format!(
            "millrace-metadata {FORMAT_VERSION}\nversion {}\nproducer_id_block_end {}\n",
            self.version, self.producer_id_block_end
        );
        text.push_str(&format!("cluster_id {}\n", self.cluster_id));
        for t in self.topics.values() {
            let shards: Vec<String> = t.shards.iter().map(usize::to_string).collect();
            text.push_str(&format!("topic {} {} {}\n", t.name, t.id, shards.join(",")));
            for (k, v) in &t.configs {
                text.push_str(&format!("config {} {} {}\n", t.name, k, v));
            }
        }
        super::seal_text(text)
    }

    /// Parses what [`LegacyMetadata::encode`] wrote, checking the CRC first.
    pub fn decode(bytes: &[u8]) -> Result<Self, MetadataFileError> {
        let err = |m: &str| MetadataFileError(m.to_string());
        let body = super::open_text(bytes).map_err(err)?;
        let mut image = LegacyMetadata::default();
        let mut lines = body.lines();
        if lines.next() != Some(&format!("millrace-metadata {FORMAT_VERSION}")[..]) {
            return Err(err("unknown format version"));
        }
        let mut topics: BTreeMap<String, LegacyTopicMeta> = BTreeMap::new();
        for line in lines {
            let parts: Vec<&str> = line.splitn(4, ' ').collect();
            match parts.as_slice() {
                ["version", v] => image.version = v.parse().map_err(|_| err("bad version"))?,
                ["cluster_id", v] => image.cluster_id = v.to_string(),
                ["producer_id_block_end", v] => {
                    image.producer_id_block_end =
                        v.parse().map_err(|_| err("bad producer id block"))?
                }
                ["topic", name, id, shards] => {
                    let id = uuid::Uuid::parse_str(id).map_err(|_| err("bad topic id"))?;
                    let shards = shards
                        .split(',')
                        .map(|s| s.parse::<usize>())
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|_| err("bad shard list"))?;
                    topics.insert(
                        name.to_string(),
                        LegacyTopicMeta {
                            name: name.to_string(),
                            id,
                            shards,
                            configs: BTreeMap::new(),
                        },
                    );
                }
                ["config", topic, key, value] => {
                    let t = topics
                        .get_mut(*topic)
                        .ok_or_else(|| err("config for unknown topic"))?;
                    t.configs.insert(key.to_string(), value.to_string());
                }
                _ => return Err(err("unrecognised line")),
            }
        }
        image.topics = topics.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
        Ok(image)
    }

    /// The old image as plain values for `from_legacy` (placement stays out: see
    /// [`LegacyMetadata::placement`]).
    pub fn to_replication(&self) -> LegacyImage {
        let topics = self.topics.values().map(|t| LegacyTopic {
            name: t.name.clone(),
            id: TopicId(*t.id.as_bytes()),
            partition_count: t.shards.len() as i32,
            configs: t.configs.clone(),
        });
        LegacyImage {
            topics: topics.collect(),
            producer_id_block_end: self.producer_id_block_end,
            cluster_id: self.cluster_id.clone(),
        }
    }

    /// The old per-partition shard lists, as this node's placement table.
    pub fn placement(&self) -> Placement {
        let mut placement = Placement::default();
        for t in self.topics.values() {
            placement.set(
                TopicId(*t.id.as_bytes()),
                t.shards.iter().copied().map(Some).collect(),
            );
        }
        placement
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> LegacyMetadata {
        let mut img = LegacyMetadata {
            version: 7,
            producer_id_block_end: 3000,
            cluster_id: "abc".into(),
            ..Default::default()
        };
        let mut configs = BTreeMap::new();
        configs.insert("max.message.bytes".to_string(), "2048".to_string());
        img.topics.insert(
            "orders".into(),
            Arc::new(LegacyTopicMeta {
                name: "orders".into(),
                id: uuid::Uuid::from_u128(5),
                shards: vec![0, 1, 0],
                configs,
            }),
        );
        img
    }

    #[test]
    fn round_trip_and_checksum() {
        let img = image();
        let bytes = img.encode();
        assert_eq!(LegacyMetadata::decode(&bytes).unwrap(), img);
        for i in 0..bytes.len() - 1 {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(
                LegacyMetadata::decode(&bad).is_err(),
                "flip at {i} accepted"
            );
        }
        assert!(LegacyMetadata::decode(&bytes[..bytes.len() / 2]).is_err());
    }
}
