//! Client quotas on the request path (Kafka's ClientQuotaManager, KIP-13/55/219).
//!
//! The quota values live in the cluster metadata (ClientQuotaRecords); each shard keeps a
//! `QuotaConfigs` view of its image, rebuilt when the image's quota map differs from the one
//! it was built from. A quota is per broker, as in Kafka, while a client's connections may
//! land on different shards: every sensor (the entity a resolved quota meters, e.g. one user)
//! is kept on one shard, chosen by hashing the sensor, and a request that a quota applies to
//! records its bytes there with one mesh call. Requests no quota applies to cost a lookup in
//! the shard's view and nothing else.
//!
//! A throttled request is answered at once with `throttle_time_ms`, and the connection reads
//! nothing more until that time has passed (KIP-219's muting), so a client that ignores the
//! field is still held to the rate. A connection whose client a quota meters has one request
//! in flight at a time, as every connection has on Kafka (see [`meters`]).

use crate::mesh::Call;
use crate::shard::Shard;
use millrace_replication::metadata::{ClusterImage, QuotaEntityPart};
use millrace_security::quota::{
    QuotaConfigs, QuotaEntity, QuotaKey, QuotaTracker, QuotaWindowConfig,
};
use std::cell::RefCell;
use std::hash::{Hash, Hasher};
use std::rc::Rc;

/// The shard's view of the quota configs and the version of the image it came from.
#[derive(Default)]
struct QuotaView {
    built: RefCell<Option<(u64, Rc<QuotaConfigs>)>>,
}

/// The sensors this shard keeps.
struct Sensors {
    tracker: RefCell<QuotaTracker>,
}

/// The quota configs of the shard's current image.
pub fn configs(shard: &Shard) -> Rc<QuotaConfigs> {
    let view = shard.subsystems.get_or_install(QuotaView::default);
    let image = shard.image();
    let mut built = view.built.borrow_mut();
    if let Some((version, configs)) = &*built {
        if *version == image.version {
            return configs.clone();
        }
    }
    // Rebuilt per image version: a few entities, and images change far less often than
    // requests arrive.
    let configs = Rc::new(configs_of(&image.cluster));
    *built = Some((image.version, configs.clone()));
    configs
}

/// Every stored quota as the security crate's configs.
pub fn configs_of(cluster: &ClusterImage) -> QuotaConfigs {
    let mut configs = QuotaConfigs::new();
    for (parts, keys) in cluster.client_quotas() {
        let components: Vec<(&str, Option<&str>)> = parts
            .iter()
            .map(|p| (p.entity_type.as_str(), p.entity_name.as_deref()))
            .collect();
        let Ok(entity) = QuotaEntity::from_components(&components) else {
            continue; // the controller stores only valid entities
        };
        for (key, value) in keys {
            if let Some(key) = QuotaKey::from_name(key) {
                let _ = configs.set(&entity, key, Some(value.0));
            }
        }
    }
    configs
}

/// The metadata form of an entity: its parts sorted by type.
pub fn parts_of(entity: &QuotaEntity) -> Vec<QuotaEntityPart> {
    let mut parts: Vec<QuotaEntityPart> = entity
        .components()
        .into_iter()
        .map(|(t, n)| QuotaEntityPart {
            entity_type: t.to_string(),
            entity_name: n.as_wire().map(str::to_string),
        })
        .collect();
    parts.sort();
    parts
}

/// Whether a byte-rate or request quota meters the (user, client id)'s requests. Its
/// connections then handle one request at a time, as Kafka's do: the next request is read
/// once the previous one was recorded, so a throttle holds it back. Pipelined requests would
/// all be served before the first throttle is known; a producer with 4 MiB in flight then
/// overshoots its quota by that much at every throttle (docs/ARCHITECTURE.md, "Client quotas").
pub fn meters(shard: &Shard, user: &str, client_id: &str) -> bool {
    let configs = configs(shard);
    !configs.is_empty()
        && [
            QuotaKey::ProducerByteRate,
            QuotaKey::ConsumerByteRate,
            QuotaKey::RequestPercentage,
        ]
        .into_iter()
        .any(|key| configs.resolve(user, client_id, key).is_some())
}

/// Records `value` for `key` of the (user, client id) and answers the throttle time in ms (0:
/// none, or no quota applies). `user` is the principal's name.
pub async fn record(
    shard: &Rc<Shard>,
    user: &str,
    client_id: &str,
    key: QuotaKey,
    value: f64,
) -> u64 {
    on_owner(shard, user, client_id, key, value, Mode::Record).await
}

/// Takes back what [`record`] recorded (a throttled fetch sends no data, so its bytes do not
/// count, as Kafka unrecords them).
pub async fn unrecord(shard: &Rc<Shard>, user: &str, client_id: &str, key: QuotaKey, value: f64) {
    on_owner(shard, user, client_id, key, value, Mode::Unrecord).await;
}

/// Kafka's strict controller mutation quota (CreateTopics v6+, CreatePartitions v3+,
/// DeleteTopics v5+): 0 and the `permits` taken, or the time until the bucket refills (the
/// request is refused THROTTLING_QUOTA_EXCEEDED) and nothing taken.
pub async fn take_mutations(shard: &Rc<Shard>, user: &str, client_id: &str, permits: f64) -> u64 {
    let key = QuotaKey::ControllerMutationRate;
    on_owner(shard, user, client_id, key, permits, Mode::Strict).await
}

/// The `connection_creation_rate` of a client address: records one connection and answers
/// the throttle time (0: the connection may stay).
pub async fn record_connection(shard: &Rc<Shard>, ip: std::net::IpAddr) -> u64 {
    let configs = configs(shard);
    let Some(resolved) = configs.resolve_ip(ip) else {
        return 0;
    };
    let owner = owner_of(&resolved.sensor, shard.shards);
    let call = RecordOnOwner {
        sensor: resolved.sensor,
        key: QuotaKey::ConnectionCreationRate,
        quota: resolved.quota,
        value: 1.0,
        mode: Mode::Record,
    };
    shard.call(owner, call).await.unwrap_or(0)
}

async fn on_owner(
    shard: &Rc<Shard>,
    user: &str,
    client_id: &str,
    key: QuotaKey,
    value: f64,
    mode: Mode,
) -> u64 {
    let configs = configs(shard);
    if configs.is_empty() {
        return 0;
    }
    let Some(resolved) = configs.resolve(user, client_id, key) else {
        return 0;
    };
    let owner = owner_of(&resolved.sensor, shard.shards);
    let call = RecordOnOwner {
        sensor: resolved.sensor,
        key,
        quota: resolved.quota,
        value,
        mode,
    };
    shard.call(owner, call).await.unwrap_or(0)
}

/// The principal's name as Kafka's user quotas see it (`User:alice` → `alice`).
pub fn user_of(principal: &str) -> &str {
    principal
        .split_once(':')
        .map_or(principal, |(_, name)| name)
}

fn owner_of(sensor: &QuotaEntity, shards: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    sensor.hash(&mut h);
    (h.finish() % shards.max(1) as u64) as usize
}

/// What a recording does to the sensor.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Record and answer the throttle time.
    Record,
    /// Take a recording back.
    Unrecord,
    /// Take controller mutations only while the bucket is not empty.
    Strict,
}

/// Records on the shard that keeps the sensor.
struct RecordOnOwner {
    sensor: QuotaEntity,
    key: QuotaKey,
    quota: f64,
    value: f64,
    mode: Mode,
}

impl Call<Shard> for RecordOnOwner {
    type Reply = u64;

    async fn run(self, shard: Rc<Shard>) -> u64 {
        let sensors = shard.subsystems.get_or_install(|| Sensors {
            tracker: RefCell::new(QuotaTracker::new(
                window(&shard),
                QuotaWindowConfig::default(),
            )),
        });
        let now = millrace_shard::time::monotonic_ms();
        let mut tracker = sensors.tracker.borrow_mut();
        tracker.expire_idle(now);
        let (sensor, key, quota, value) = (&self.sensor, self.key, self.quota, self.value);
        match self.mode {
            Mode::Record => tracker.record_and_throttle(sensor, key, quota, value, now),
            Mode::Unrecord => {
                tracker.record_no_throttle(sensor, key, quota, -value, now);
                0
            }
            Mode::Strict => tracker.check_and_record_strict(sensor, quota, value, now),
        }
    }
}

fn window(shard: &Shard) -> QuotaWindowConfig {
    QuotaWindowConfig {
        samples: shard.config.quota_window_num,
        window_ms: shard.config.quota_window_size_seconds * 1000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use millrace_replication::metadata::{ClientQuotaRecord, MetadataRecord, QuotaValue};
    use millrace_security::quota::EntityName;

    #[test]
    fn stored_quotas_resolve_with_kafkas_precedence_and_entities_round_trip() {
        let alice = EntityName::named("alice");
        let both = QuotaEntity::user_client(alice.clone(), EntityName::Default);
        let parts = parts_of(&both);
        let types: Vec<&str> = parts.iter().map(|p| p.entity_type.as_str()).collect();
        assert_eq!(
            types,
            ["client-id", "user"],
            "sorted by type, as the image keeps them"
        );
        let mut image = ClusterImage::default();
        let records = [
            (parts.clone(), "producer_byte_rate", 1000.0),
            (
                parts_of(&QuotaEntity::user(alice)),
                "producer_byte_rate",
                5000.0,
            ),
            (
                parts_of(&QuotaEntity::client_id(EntityName::Default)),
                "consumer_byte_rate",
                7.0,
            ),
        ];
        for (offset, (entity, key, value)) in records.into_iter().enumerate() {
            let record = MetadataRecord::ClientQuota(ClientQuotaRecord {
                entity,
                key: key.into(),
                value: QuotaValue(value),
                remove: false,
            });
            image.apply(&record, offset as i64).unwrap();
        }
        let configs = configs_of(&image);
        let produce = configs
            .resolve("alice", "app", QuotaKey::ProducerByteRate)
            .unwrap();
        assert_eq!(
            produce.quota, 1000.0,
            "user + default client id beats the user alone"
        );
        let consume = configs
            .resolve("bob", "app", QuotaKey::ConsumerByteRate)
            .unwrap();
        assert_eq!(consume.quota, 7.0);
        assert!(configs
            .resolve("bob", "app", QuotaKey::ProducerByteRate)
            .is_none());
        assert_eq!(user_of("User:alice"), "alice");
        assert_eq!(user_of("User:CN=a,O=b"), "CN=a,O=b");
    }

    #[test]
    fn a_sensor_always_lives_on_the_same_shard() {
        let sensor = QuotaEntity::client_id(millrace_security::quota::EntityName::named("c"));
        let first = owner_of(&sensor, 4);
        assert!(first < 4);
        assert!((0..100).all(|_| owner_of(&sensor, 4) == first));
        assert_eq!(owner_of(&sensor, 1), 0);
    }
}
