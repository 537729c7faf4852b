//! Cluster metadata: topics, their ids, partitions and owning shards, topic configs, and the
//! producer-id block.
//!
//! One writer: shard 0 applies every change, persists the new image, then sends it to every
//! shard; each shard keeps its own `Arc` copy and ignores an image whose version is not newer
//! than the one it holds. Placement (partition → shard) is recorded here, so it survives
//! restarts instead of being recomputed from a hash.
//!
//! On disk (`<data>/__cluster_metadata/metadata`), a text file so operators can read it:
//! ```text
//! millrace-metadata 1
//! version <u64>
//! producer_id_block_end <i64>
//! cluster_id <string>
//! topic <name> <uuid> <shard,shard,...>   (one shard per partition)
//! config <topic> <key> <value>
//! crc32c <hex of everything above>
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

/// Format version written in the first line.
const FORMAT_VERSION: u32 = 1;
/// Producer ids are handed out in blocks; the block end is persisted before any id in it is
/// used, so no id is ever handed out twice across restarts.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    /// Topic name.
    pub name: String,
    /// Topic id (v4 UUID), for Fetch v13+ and Metadata v10+.
    pub id: uuid::Uuid,
    /// Owning shard of each partition, indexed by partition number.
    pub shards: Vec<usize>,
    /// Topic-level configs set at creation.
    pub configs: BTreeMap<String, String>,
}

/// An immutable metadata snapshot. Shared between shards through `Arc` (read-only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataImage {
    /// Grows by one with every change.
    pub version: u64,
    /// Topics by name.
    pub topics: BTreeMap<String, Arc<TopicMeta>>,
    /// Producer ids below this may have been handed out.
    pub producer_id_block_end: i64,
    /// The cluster id, made once when the data directory is first used.
    pub cluster_id: String,
}

/// A metadata file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("metadata file is invalid: {0}")]
pub struct MetadataFileError(pub String);

impl MetadataImage {
    /// Looks a topic up by id.
    pub fn topic_by_id(&self, id: &uuid::Uuid) -> Option<&Arc<TopicMeta>> {
        self.topics.values().find(|t| &t.id == id)
    }

    /// The shard owning a partition, if the topic and partition exist.
    pub fn owner(&self, topic: &str, partition: i32) -> Option<usize> {
        let t = self.topics.get(topic)?;
        usize::try_from(partition)
            .ok()
            .and_then(|p| t.shards.get(p).copied())
    }

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
        let crc = crc32c::crc32c(text.as_bytes());
        text.push_str(&format!("crc32c {crc:08x}\n"));
        text.into_bytes()
    }

    /// Parses what [`MetadataImage::encode`] wrote, checking the CRC first.
    pub fn decode(bytes: &[u8]) -> Result<Self, MetadataFileError> {
        let err = |m: &str| MetadataFileError(m.to_string());
        let text = std::str::from_utf8(bytes).map_err(|_| err("not UTF-8"))?;
        let body_end = text
            .rfind("crc32c ")
            .ok_or_else(|| err("no checksum line"))?;
        let (body, crc_line) = text.split_at(body_end);
        let stored = u32::from_str_radix(crc_line.trim_start_matches("crc32c ").trim(), 16)
            .map_err(|_| err("bad checksum line"))?;
        if crc32c::crc32c(body.as_bytes()) != stored {
            return Err(err("checksum mismatch"));
        }
        let mut image = MetadataImage::default();
        let mut lines = body.lines();
        if lines.next() != Some(&format!("millrace-metadata {FORMAT_VERSION}")[..]) {
            return Err(err("unknown format version"));
        }
        let mut topics: BTreeMap<String, TopicMeta> = BTreeMap::new();
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
                        TopicMeta {
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

    /// Adds an internal topic (`__consumer_offsets`) spread over the shards.
    pub fn add_internal_topic(&mut self, name: &str, partitions: i32, shards: usize) {
        let mut load = self.load_per_shard(shards);
        let placed = (0..partitions)
            .map(|_| {
                let s = least_loaded(&load);
                load[s] += 1;
                s
            })
            .collect();
        let configs = internal_topic_configs();
        let topic = TopicMeta {
            name: name.to_string(),
            id: uuid::Uuid::new_v4(),
            shards: placed,
            configs,
        };
        self.topics.insert(name.to_string(), Arc::new(topic));
    }

    /// Adds the internal topic's required configs where an older image lacks them; true if
    /// anything changed. Settings an operator altered since are kept.
    pub fn ensure_internal_configs(&mut self, name: &str) -> bool {
        let Some(topic) = self.topics.get_mut(name) else {
            return false;
        };
        let missing: Vec<(String, String)> = internal_topic_configs()
            .into_iter()
            .filter(|(k, _)| !topic.configs.contains_key(k))
            .collect();
        if missing.is_empty() {
            return false;
        }
        Arc::make_mut(topic).configs.extend(missing);
        true
    }

    /// Partitions per shard, for placing new partitions on the least loaded shards.
    pub fn load_per_shard(&self, shards: usize) -> Vec<usize> {
        let mut load = vec![0usize; shards];
        for t in self.topics.values() {
            for &s in &t.shards {
                if s < shards {
                    load[s] += 1;
                }
            }
        }
        load
    }

    /// Moves partitions owned by shards that no longer exist (the broker restarted with fewer
    /// cores) to the least loaded shards. Returns true if anything moved.
    pub fn replace_missing_shards(&mut self, shards: usize) -> bool {
        let mut load = self.load_per_shard(shards);
        let mut moved = false;
        for topic in self.topics.values_mut() {
            if topic.shards.iter().all(|&s| s < shards) {
                continue;
            }
            let t = Arc::make_mut(topic);
            for s in t.shards.iter_mut() {
                if *s >= shards {
                    *s = least_loaded(&load);
                    load[*s] += 1;
                    moved = true;
                }
            }
        }
        moved
    }
}

/// `__consumer_offsets` is compacted (only the latest commit per group, topic and partition,
/// and the latest group record, matter) in 100 MiB segments, as Kafka creates it.
fn internal_topic_configs() -> BTreeMap<String, String> {
    [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "104857600"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The shard with the fewest partitions (lowest id on ties).
pub fn least_loaded(load: &[usize]) -> usize {
    load.iter()
        .enumerate()
        .min_by_key(|(i, l)| (**l, *i))
        .map(|(i, _)| i)
        .unwrap_or(0)
}

/// Internal topics: clients may read them but not write or delete them.
pub fn is_internal(name: &str) -> bool {
    name == "__consumer_offsets" || name == "__transaction_state"
}

/// Kafka's topic name rule: 1-249 characters of `[a-zA-Z0-9._-]`, not "." or "..".
pub fn valid_topic_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("topic name is empty");
    }
    if name == "." || name == ".." {
        return Err("topic name cannot be \".\" or \"..\"");
    }
    if name.len() > 249 {
        return Err("topic name is longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err("topic name may only contain ASCII alphanumerics, '.', '_' and '-'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> MetadataImage {
        let mut img = MetadataImage {
            version: 7,
            producer_id_block_end: 3000,
            cluster_id: "abc".into(),
            ..Default::default()
        };
        let mut configs = BTreeMap::new();
        configs.insert("max.message.bytes".to_string(), "2048".to_string());
        img.topics.insert(
            "orders".into(),
            Arc::new(TopicMeta {
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
        assert_eq!(MetadataImage::decode(&bytes).unwrap(), img);
        for i in 0..bytes.len() - 1 {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(MetadataImage::decode(&bad).is_err(), "flip at {i} accepted");
        }
        assert!(MetadataImage::decode(&bytes[..bytes.len() / 2]).is_err());
    }

    #[test]
    fn fewer_shards_moves_only_orphans() {
        let mut img = image();
        let t = Arc::make_mut(img.topics.get_mut("orders").unwrap());
        t.shards = vec![0, 3, 1, 2];
        assert!(img.replace_missing_shards(2));
        let shards = &img.topics["orders"].shards;
        assert_eq!((shards[0], shards[2]), (0, 1));
        assert!(shards.iter().all(|&s| s < 2));
        assert!(!img.replace_missing_shards(2));
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(valid_topic_name("orders.v1_x-2").is_ok());
        for bad in ["", ".", "..", "bad topic!", "é", &"a".repeat(250)] {
            assert!(valid_topic_name(bad).is_err(), "{bad}");
        }
    }
}
