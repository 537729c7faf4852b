//! Snapshots of a [`ClusterImage`]: the whole image as of `last_applied_offset`, so a node can
//! start from a snapshot and replay only the log after it.
//!
//! ```text
//! magic "MRCI" | format_version u16 (1-5) | body_length u32 | body | crc32c u32
//!                                                           (CRC-32C of everything before it)
//! body      = last_applied_offset i64 | next_producer_id i64
//!           | topic_count u32 | topic × topic_count                      (in topic-id order)
//!           | broker_count u32 | (resource_name string | configs) × broker_count
//!           | registration_count u32 | registration × registration_count (in broker-id order;
//!                                                              format 2 and 3, absent in 1)
//!           | group_count u32 | (group_id string | configs) × group_count (in group-id order;
//!                                                              format 3 and later)
//!           | scram_count u32 | scram × scram_count          (in (user, mechanism) order;
//!                                                              format 4 and later)
//!           | acl_count u32 | acl × acl_count                  (in id order; format 5)
//!           | quota_count u32 | quota × quota_count            (in entity order; format 5)
//! scram     = user string | mechanism i8 | salt, stored_key, server_key: (u16 length | bytes)
//!           | iterations i32
//! acl       = as AccessControlEntryRecord's payload (record.rs)
//! quota     = entity (as in ClientQuotaRecord) | key_count u32 | (key string | value f64)
//!             × key_count
//! registration = broker_id i32 | incarnation_id uuid | broker_epoch i64
//!           | endpoint_count u32 | (name string | host string | port u16
//!           | security_protocol i16) × endpoint_count | rack nullable string
//!           | fenced bool | in_controlled_shutdown bool
//! topic     = id uuid | name string | partition_count u32 | partition × partition_count
//!           | configs
//! partition = replicas [i32] | isr [i32] | eligible_leader_replicas [i32]
//!           | last_known_elr [i32] | leader i32 | leader_epoch i32 | partition_epoch i32
//! configs   = count u32 | (key string | value string) × count
//! ```
//! (primitives as in `codec.rs`.)
//!
//! Hand-written rather than rkyv, although DESIGN.md allows rkyv here: a snapshot is read back
//! from disk and, once brokers fetch snapshots from the controller, from the network, so it is
//! untrusted input; this decoder is bounded the same way as the record codec (one set of
//! primitives, tested by the same every-prefix checks) and re-checks every image invariant, which
//! rkyv's validation (bytecheck) would not do for us. The image is small (megabytes for large
//! clusters) and is decoded once at start-up, so zero-copy access buys nothing, and the format
//! stays independent of a dependency's version. The CRC is checked before anything is parsed.
//!
//! Older formats are still read: format 1 (before broker registrations) as an image without
//! brokers, format 2 (before group configs) as one without group configs, 3 without SCRAM
//! credentials, 4 without ACLs and client quotas, so a node upgraded in place starts from its
//! last snapshot. The encoder writes the oldest format that holds the image: format 2 until
//! some group has a config, and so on, so a cluster that does not use a newer kind of metadata
//! keeps snapshots an older node can still install.

use super::codec::{Reader, Writer};
use super::image::{
    check_acl, check_broker, check_broker_resource, check_group_resource, check_partition,
    check_quota, check_scram, BrokerImage, ClusterImage, Configs, ScramImage, TopicImage,
};
use super::record::{
    decode_acl, decode_partition_state, decode_quota_entity, decode_register_broker, encode_acl,
    encode_partition_state, encode_quota_entity, encode_register_broker, QuotaValue, TopicId,
};
use crate::error::ReplicationError;

/// The first four bytes of a snapshot.
pub const SNAPSHOT_MAGIC: [u8; 4] = *b"MRCI";
/// The newest format this build writes (when the image has ACLs or client quotas); it also
/// reads every older one.
pub const SNAPSHOT_FORMAT_VERSION: u16 = 5;
/// The format before ACLs and client quotas: written for an image with SCRAM credentials and
/// neither of those.
pub const SNAPSHOT_FORMAT_VERSION_V4: u16 = 4;
/// The format before SCRAM credentials: still written for an image with group configs and no
/// credentials, so older binaries read what they can.
pub const SNAPSHOT_FORMAT_VERSION_V3: u16 = 3;
/// The format before group configs: still written for an image without them, and read.
pub const SNAPSHOT_FORMAT_VERSION_V2: u16 = 2;
/// The format before broker registrations, still read.
pub const SNAPSHOT_FORMAT_VERSION_V1: u16 = 1;
/// magic + version + body length.
const HEAD_BYTES: usize = 10;
const CRC_BYTES: usize = 4;

impl ClusterImage {
    /// Encodes the whole image.
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(&SNAPSHOT_MAGIC);
        let mut w = Writer(&mut out);
        let version = if !self.acls.is_empty() || !self.quotas.is_empty() {
            SNAPSHOT_FORMAT_VERSION
        } else if !self.scram.is_empty() {
            SNAPSHOT_FORMAT_VERSION_V4
        } else if !self.group_configs.is_empty() {
            SNAPSHOT_FORMAT_VERSION_V3
        } else {
            SNAPSHOT_FORMAT_VERSION_V2
        };
        w.u16(version);
        w.u32(0); // body length, patched below
        w.i64(self.last_applied_offset);
        w.i64(self.next_producer_id);
        w.u32(self.topics.len() as u32);
        for topic in self.topics.values() {
            encode_topic(&mut w, topic);
        }
        w.u32(self.broker_configs.len() as u32);
        for (name, configs) in &self.broker_configs {
            w.string(name);
            encode_configs(&mut w, configs);
        }
        w.u32(self.brokers.len() as u32);
        for broker in self.brokers.values() {
            encode_registration(&mut w, broker);
        }
        if version >= 3 {
            w.u32(self.group_configs.len() as u32);
            for (group_id, configs) in &self.group_configs {
                w.string(group_id);
                encode_configs(&mut w, configs);
            }
        }
        if version >= 4 {
            w.u32(self.scram.len() as u32);
            for ((user, mechanism), c) in &self.scram {
                w.string(user);
                w.i8(*mechanism);
                for bytes in [&c.salt, &c.stored_key, &c.server_key] {
                    w.u16(u16::try_from(bytes.len()).expect("SCRAM fields are short"));
                    w.raw(bytes);
                }
                w.i32(c.iterations);
            }
        }
        if version >= 5 {
            w.u32(self.acls.len() as u32);
            for acl in self.acls.values() {
                encode_acl(&mut w, acl);
            }
            w.u32(self.quotas.len() as u32);
            for (entity, keys) in &self.quotas {
                encode_quota_entity(&mut w, entity);
                w.u32(keys.len() as u32);
                for (key, value) in keys {
                    w.string(key);
                    w.u64(value.0.to_bits());
                }
            }
        }
        let body_len = u32::try_from(out.len() - HEAD_BYTES).expect("snapshot over 4 GiB");
        out[6..HEAD_BYTES].copy_from_slice(&body_len.to_be_bytes());
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Decodes a snapshot, checking its frame, its CRC and every image invariant.
    pub fn decode_snapshot(bytes: &[u8]) -> Result<ClusterImage, ReplicationError> {
        let (version, body) = check_frame(bytes)?;
        let mut r = Reader::new(body, "image snapshot");
        let mut image = ClusterImage {
            last_applied_offset: r.i64()?,
            next_producer_id: r.i64()?,
            ..ClusterImage::default()
        };
        if image.last_applied_offset < -1 || image.next_producer_id < 0 {
            return Err(bad(
                "last applied offset below -1 or negative producer id".into()
            ));
        }
        for _ in 0..r.count(TOPIC_MIN_BYTES)? {
            let topic = decode_topic(&mut r)?;
            image.check_new_topic(&topic.name, topic.id)?;
            image.topic_ids.insert(topic.name.clone(), topic.id);
            image.topics.insert(topic.id, topic);
        }
        for _ in 0..r.count(BROKER_MIN_BYTES)? {
            let name = r.string()?;
            check_broker_resource(&name)?;
            let configs = decode_configs(&mut r)?;
            if configs.is_empty() || image.broker_configs.contains_key(&name) {
                return Err(bad(format!("broker configs of {name:?} empty or repeated")));
            }
            image.broker_configs.insert(name, configs);
        }
        if version >= 2 {
            for _ in 0..r.count(REGISTRATION_MIN_BYTES)? {
                let broker = decode_registration(&mut r)?;
                check_broker(&broker)?;
                let id = broker.broker_id;
                if image
                    .brokers
                    .last_key_value()
                    .is_some_and(|(&last, _)| last >= id)
                {
                    return Err(bad(format!("broker {id} repeated or out of order")));
                }
                image.brokers.insert(id, broker);
            }
        }
        if version >= 3 {
            decode_group_configs(&mut r, &mut image)?;
        }
        if version >= 4 {
            decode_scram(&mut r, &mut image)?;
        }
        if version >= 5 {
            decode_acls(&mut r, &mut image)?;
            decode_quotas(&mut r, &mut image)?;
        }
        r.finish()?;
        Ok(image)
    }
}

/// Format 3's group configs: non-empty group ids in ascending order, each with at least one
/// key (the image never holds an empty entry).
fn decode_group_configs(
    r: &mut Reader<'_>,
    image: &mut ClusterImage,
) -> Result<(), ReplicationError> {
    for _ in 0..r.count(GROUP_MIN_BYTES)? {
        let group_id = r.string()?;
        check_group_resource(&group_id)?;
        let configs = decode_configs(r)?;
        let ordered = image
            .group_configs
            .last_key_value()
            .is_none_or(|(last, _)| *last < group_id);
        if configs.is_empty() || !ordered {
            return Err(bad(format!(
                "group configs of {group_id:?} empty, repeated or out of order"
            )));
        }
        image.group_configs.insert(group_id, configs);
    }
    Ok(())
}

/// Format 4's SCRAM credentials: (user, mechanism) pairs in ascending order, each checked as
/// a record would be.
fn decode_scram(r: &mut Reader<'_>, image: &mut ClusterImage) -> Result<(), ReplicationError> {
    for _ in 0..r.count(SCRAM_MIN_BYTES)? {
        let user = r.string()?;
        let mechanism = r.i8()?;
        let mut short = || -> Result<Vec<u8>, ReplicationError> {
            let n = usize::from(r.u16()?);
            Ok(r.raw(n)?.to_vec())
        };
        let (salt, stored_key, server_key) = (short()?, short()?, short()?);
        let iterations = r.i32()?;
        check_scram(&user, mechanism, iterations)?;
        let key = (user, mechanism);
        if image
            .scram
            .last_key_value()
            .is_some_and(|(last, _)| *last >= key)
        {
            return Err(bad(format!(
                "SCRAM credential of {:?} repeated or out of order",
                key.0
            )));
        }
        let credential = ScramImage {
            salt,
            stored_key,
            server_key,
            iterations,
        };
        image.scram.insert(key, credential);
    }
    Ok(())
}

/// Format 5's ACL bindings: ids in ascending order, each checked as a record would be.
fn decode_acls(r: &mut Reader<'_>, image: &mut ClusterImage) -> Result<(), ReplicationError> {
    let mut acls = std::collections::BTreeMap::new();
    for _ in 0..r.count(ACL_MIN_BYTES)? {
        let acl = decode_acl(r)?;
        check_acl(&acl)?;
        if acls
            .last_key_value()
            .is_some_and(|(last, _)| *last >= acl.id)
        {
            return Err(bad("ACL binding ids repeated or out of order".into()));
        }
        acls.insert(acl.id, acl);
    }
    image.acls = std::sync::Arc::new(acls);
    Ok(())
}

/// Format 5's client quotas: entities in ascending order, each with at least one key in
/// ascending order, each checked as a record would be.
fn decode_quotas(r: &mut Reader<'_>, image: &mut ClusterImage) -> Result<(), ReplicationError> {
    for _ in 0..r.count(QUOTA_MIN_BYTES)? {
        let entity = decode_quota_entity(r)?;
        let mut keys = std::collections::BTreeMap::new();
        for _ in 0..r.count(4 + 8)? {
            let key = r.string()?;
            let value = QuotaValue(f64::from_bits(r.u64()?));
            check_quota(&entity, &key, value)?;
            if keys.last_key_value().is_some_and(|(last, _)| *last >= key) {
                return Err(bad("client quota keys repeated or out of order".into()));
            }
            keys.insert(key, value);
        }
        let ordered = image
            .quotas
            .last_key_value()
            .is_none_or(|(last, _)| *last < entity);
        if keys.is_empty() || !ordered {
            return Err(bad(
                "client quota entity empty, repeated or out of order".into()
            ));
        }
        image.quotas.insert(entity, keys);
    }
    Ok(())
}

const ACL_MIN_BYTES: usize = 16 + 1 + 4 + 1 + 4 + 4 + 1 + 1;
const QUOTA_MIN_BYTES: usize = 4 + 4;
const SCRAM_MIN_BYTES: usize = 4 + 1 + 3 * 2 + 4;
const TOPIC_MIN_BYTES: usize = 16 + 4 + 4 + 4;
const PARTITION_MIN_BYTES: usize = 4 * 4 + 3 * 4;
const BROKER_MIN_BYTES: usize = 4 + 4;
const GROUP_MIN_BYTES: usize = 4 + 4;
const CONFIG_MIN_BYTES: usize = 4 + 4;
const REGISTRATION_MIN_BYTES: usize = 4 + 16 + 8 + 4 + 4 + 1 + 1;

fn bad(reason: String) -> ReplicationError {
    ReplicationError::BadSnapshot { reason }
}

/// The format version and body of a well-framed snapshot.
fn check_frame(bytes: &[u8]) -> Result<(u16, &[u8]), ReplicationError> {
    if bytes.len() < HEAD_BYTES + CRC_BYTES {
        return Err(bad(format!(
            "{} bytes is shorter than a frame",
            bytes.len()
        )));
    }
    if bytes[..4] != SNAPSHOT_MAGIC {
        return Err(bad("bad magic".into()));
    }
    let version = u16::from_be_bytes([bytes[4], bytes[5]]);
    if !(SNAPSHOT_FORMAT_VERSION_V1..=SNAPSHOT_FORMAT_VERSION).contains(&version) {
        return Err(bad(format!("unsupported format version {version}")));
    }
    let body_len = u32::from_be_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]) as usize;
    if bytes.len() - HEAD_BYTES - CRC_BYTES != body_len {
        return Err(bad(format!(
            "body length {body_len} but {} bytes present",
            bytes.len() - HEAD_BYTES - CRC_BYTES
        )));
    }
    let (framed, crc) = bytes.split_at(bytes.len() - CRC_BYTES);
    let stored = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let computed = crc32c::crc32c(framed);
    if stored != computed {
        return Err(bad(format!(
            "CRC-32C stored {stored:#010x}, computed {computed:#010x}"
        )));
    }
    Ok((version, &framed[HEAD_BYTES..]))
}

fn encode_topic(w: &mut Writer<'_>, topic: &TopicImage) {
    w.bytes16(&topic.id.0);
    w.string(&topic.name);
    w.u32(topic.partitions.len() as u32);
    for p in &topic.partitions {
        encode_partition_state(w, p);
    }
    encode_configs(w, &topic.configs);
}

fn decode_topic(r: &mut Reader<'_>) -> Result<TopicImage, ReplicationError> {
    let id = TopicId(r.bytes16()?);
    let name = r.string()?;
    let count = r.count(PARTITION_MIN_BYTES)?;
    let mut partitions = Vec::with_capacity(count);
    for _ in 0..count {
        let p = decode_partition_state(r)?;
        check_partition(&p)?;
        partitions.push(p);
    }
    let configs = decode_configs(r)?;
    Ok(TopicImage {
        name,
        id,
        partitions,
        configs,
    })
}

/// A broker in a snapshot: its RegisterBrokerRecord's payload, then whether it is in
/// controlled shutdown (the one part of its state no registration carries).
fn encode_registration(w: &mut Writer<'_>, b: &BrokerImage) {
    encode_register_broker(w, &b.to_record());
    w.bool(b.in_controlled_shutdown);
}

fn decode_registration(r: &mut Reader<'_>) -> Result<BrokerImage, ReplicationError> {
    let mut broker = BrokerImage::from_record(&decode_register_broker(r)?);
    broker.in_controlled_shutdown = r.bool()?;
    Ok(broker)
}

fn encode_configs(w: &mut Writer<'_>, configs: &Configs) {
    w.u32(configs.len() as u32);
    for (k, v) in configs {
        w.string(k);
        w.string(v);
    }
}

fn decode_configs(r: &mut Reader<'_>) -> Result<Configs, ReplicationError> {
    let mut configs = Configs::new();
    for _ in 0..r.count(CONFIG_MIN_BYTES)? {
        let key = r.string()?;
        let value = r.string()?;
        if key.is_empty() || configs.insert(key, value).is_some() {
            return Err(bad("config key empty or repeated".into()));
        }
    }
    Ok(configs)
}
