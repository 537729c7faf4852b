//! The group coordinator's keys for KIP-848 consumer groups and KIP-932 share groups, and the
//! share coordinator's: Kafka's names, defaults and bounds (Kafka 4.4's
//! `GroupCoordinatorConfig`, `ShareGroupConfig` and `ShareCoordinatorConfig`).
//!
//! Every key is a 32-bit integer with a fixed range; a value outside it fails start-up naming
//! the key. After all keys are applied, [`GroupKeys::validate`] checks them against each other
//! as Kafka does at start-up: each default lies within its `min`/`max` pair, and a heartbeat
//! interval is below its session timeout. The bounds matter beyond start-up: a group's own
//! `consumer.session.timeout.ms`, `share.record.lock.duration.ms`, ... (a GROUP config,
//! `crate::group_config`) must lie within them.
//!
//! The keys set explicitly (server.properties or the command line) are remembered, so
//! DescribeConfigs can tell STATIC_BROKER_CONFIG from DEFAULT_CONFIG.

use super::{invalid, parse_num, ConfigError};
use std::collections::{BTreeMap, BTreeSet};

/// One integer key: its name, default, bounds and field.
pub struct IntKey {
    /// Kafka's name.
    pub key: &'static str,
    /// Smallest value accepted.
    pub min: i32,
    /// Largest value accepted.
    pub max: i32,
    get: fn(&GroupKeys) -> i32,
    set: fn(&mut GroupKeys, i32),
}

macro_rules! group_keys {
    ($(
        $(#[$meta:meta])*
        $field:ident : $key:literal = $default:expr, $min:expr, $max:expr;
    )*) => {
        /// The keys, checked ([`GroupKeys::validate`]). Lives in the immutable [`super::Config`].
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct GroupKeys {
            $( $(#[$meta])* pub $field: i32, )*
            explicit: BTreeSet<&'static str>,
        }

        impl Default for GroupKeys {
            fn default() -> Self {
                GroupKeys { $( $field: $default, )* explicit: BTreeSet::new() }
            }
        }

        /// Every key, in the order above.
        pub const KEYS: &[IntKey] = &[ $( IntKey {
            key: $key,
            min: $min,
            max: $max,
            get: |g| g.$field,
            set: |g, v| g.$field = v,
        }, )* ];
    };
}

const I32_MAX: i32 = i32::MAX;
const I16_MAX: i32 = i16::MAX as i32;

group_keys! {
    /// `group.consumer.session.timeout.ms`: KIP-848 members silent this long are removed.
    consumer_session_timeout_ms: "group.consumer.session.timeout.ms" = 45_000, 1, I32_MAX;
    /// `group.consumer.min.session.timeout.ms`: the least a group may set.
    consumer_min_session_timeout_ms: "group.consumer.min.session.timeout.ms" = 45_000, 1, I32_MAX;
    /// `group.consumer.max.session.timeout.ms`: the most a group may set.
    consumer_max_session_timeout_ms: "group.consumer.max.session.timeout.ms" = 60_000, 1, I32_MAX;
    /// `group.consumer.heartbeat.interval.ms`: how often KIP-848 members heartbeat.
    consumer_heartbeat_interval_ms: "group.consumer.heartbeat.interval.ms" = 5_000, 1, I32_MAX;
    /// `group.consumer.min.heartbeat.interval.ms`: the least a group may set.
    consumer_min_heartbeat_interval_ms:
        "group.consumer.min.heartbeat.interval.ms" = 5_000, 1, I32_MAX;
    /// `group.consumer.max.heartbeat.interval.ms`: the most a group may set.
    consumer_max_heartbeat_interval_ms:
        "group.consumer.max.heartbeat.interval.ms" = 15_000, 1, I32_MAX;
    /// `group.share.session.timeout.ms`: share-group members silent this long are removed.
    share_session_timeout_ms: "group.share.session.timeout.ms" = 45_000, 1, I32_MAX;
    /// `group.share.min.session.timeout.ms`: the least a group may set.
    share_min_session_timeout_ms: "group.share.min.session.timeout.ms" = 45_000, 1, I32_MAX;
    /// `group.share.max.session.timeout.ms`: the most a group may set.
    share_max_session_timeout_ms: "group.share.max.session.timeout.ms" = 60_000, 1, I32_MAX;
    /// `group.share.heartbeat.interval.ms`: how often share-group members heartbeat.
    share_heartbeat_interval_ms: "group.share.heartbeat.interval.ms" = 5_000, 1, I32_MAX;
    /// `group.share.min.heartbeat.interval.ms`: the least a group may set.
    share_min_heartbeat_interval_ms: "group.share.min.heartbeat.interval.ms" = 5_000, 1, I32_MAX;
    /// `group.share.max.heartbeat.interval.ms`: the most a group may set.
    share_max_heartbeat_interval_ms: "group.share.max.heartbeat.interval.ms" = 15_000, 1, I32_MAX;
    /// `group.share.max.size`: members per share group.
    share_max_size: "group.share.max.size" = 200, 1, 1_000;
    /// `group.share.record.lock.duration.ms`: how long a delivered record stays acquired by
    /// its consumer before it is released for another delivery.
    share_record_lock_duration_ms: "group.share.record.lock.duration.ms" = 30_000, 1_000, 3_600_000;
    /// `group.share.min.record.lock.duration.ms`: the least a group may set.
    share_min_record_lock_duration_ms:
        "group.share.min.record.lock.duration.ms" = 15_000, 1_000, 30_000;
    /// `group.share.max.record.lock.duration.ms`: the most a group may set.
    share_max_record_lock_duration_ms:
        "group.share.max.record.lock.duration.ms" = 60_000, 30_000, 3_600_000;
    /// `group.share.delivery.count.limit`: deliveries of a record before it is archived.
    share_delivery_count_limit: "group.share.delivery.count.limit" = 5, 2, 10;
    /// `group.share.min.delivery.count.limit`: the least a group may set.
    share_min_delivery_count_limit: "group.share.min.delivery.count.limit" = 2, 2, 5;
    /// `group.share.max.delivery.count.limit`: the most a group may set.
    share_max_delivery_count_limit: "group.share.max.delivery.count.limit" = 10, 5, 25;
    /// `group.share.partition.max.record.locks`: records of one share partition acquired at
    /// once (the in-flight window).
    share_partition_max_record_locks: "group.share.partition.max.record.locks" = 2_000, 100, 10_000;
    /// `group.share.min.partition.max.record.locks`: the least a group may set.
    share_min_partition_max_record_locks:
        "group.share.min.partition.max.record.locks" = 100, 100, 2_000;
    /// `group.share.max.partition.max.record.locks`: the most a group may set.
    share_max_partition_max_record_locks:
        "group.share.max.partition.max.record.locks" = 4_000, 2_000, 10_000;
    /// `group.share.max.share.sessions`: share sessions (KIP-932 fetch sessions) the broker
    /// keeps at once.
    share_max_share_sessions: "group.share.max.share.sessions" = 2_000, 1, I32_MAX;
    /// `share.coordinator.state.topic.num.partitions`: partitions of `__share_group_state`
    /// (fixed once created).
    share_state_topic_num_partitions:
        "share.coordinator.state.topic.num.partitions" = 50, 1, I32_MAX;
    /// `share.coordinator.state.topic.replication.factor`: its replication factor.
    share_state_topic_replication_factor:
        "share.coordinator.state.topic.replication.factor" = 3, 1, I16_MAX;
    /// `share.coordinator.state.topic.min.isr`: its `min.insync.replicas`.
    share_state_topic_min_isr: "share.coordinator.state.topic.min.isr" = 2, 1, I16_MAX;
    /// `share.coordinator.snapshot.update.records.per.snapshot`: share-state update records
    /// written after a snapshot before the next write is a snapshot again.
    share_snapshot_update_records_per_snapshot:
        "share.coordinator.snapshot.update.records.per.snapshot" = 500, 0, 500;
}

/// `min <= value <= max` triples checked at start-up: (value key, min key, max key). Kafka
/// names the pair it compares: first that max is not below min, then the value against each.
const WITHIN: &[(&str, &str, &str)] = &[
    (
        "group.consumer.heartbeat.interval.ms",
        "group.consumer.min.heartbeat.interval.ms",
        "group.consumer.max.heartbeat.interval.ms",
    ),
    (
        "group.consumer.session.timeout.ms",
        "group.consumer.min.session.timeout.ms",
        "group.consumer.max.session.timeout.ms",
    ),
    (
        "group.share.heartbeat.interval.ms",
        "group.share.min.heartbeat.interval.ms",
        "group.share.max.heartbeat.interval.ms",
    ),
    (
        "group.share.session.timeout.ms",
        "group.share.min.session.timeout.ms",
        "group.share.max.session.timeout.ms",
    ),
    (
        "group.share.delivery.count.limit",
        "group.share.min.delivery.count.limit",
        "group.share.max.delivery.count.limit",
    ),
    (
        "group.share.partition.max.record.locks",
        "group.share.min.partition.max.record.locks",
        "group.share.max.partition.max.record.locks",
    ),
    (
        "group.share.record.lock.duration.ms",
        "group.share.min.record.lock.duration.ms",
        "group.share.max.record.lock.duration.ms",
    ),
];

/// (smaller key, larger key): the first must be strictly below the second.
const BELOW: &[(&str, &str)] = &[
    (
        "group.consumer.heartbeat.interval.ms",
        "group.consumer.session.timeout.ms",
    ),
    (
        "group.share.heartbeat.interval.ms",
        "group.share.session.timeout.ms",
    ),
];

impl GroupKeys {
    /// Applies one key if it is one of these; `Ok(false)` when it is not.
    pub fn apply(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        let Some(k) = KEYS.iter().find(|k| k.key == key) else {
            return Ok(false);
        };
        let n = parse_num(key, value, i64::from(k.min), i64::from(k.max))?;
        (k.set)(self, i32::try_from(n).expect("bounded by an i32 range"));
        self.explicit.insert(k.key);
        Ok(true)
    }

    /// The cross-key checks of the module doc.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let get = |key: &str| self.get(key).expect("a key of the table").0;
        let fail = |key: &str, reason: String| Err(invalid(key, &get(key).to_string(), reason));
        for &(value, min, max) in WITHIN {
            if get(max) < get(min) {
                return fail(max, format!("must be greater than or equal to {min}"));
            }
            if get(value) < get(min) {
                return fail(value, format!("must be greater than or equal to {min}"));
            }
            if get(value) > get(max) {
                return fail(value, format!("must be less than or equal to {max}"));
            }
        }
        for &(smaller, larger) in BELOW {
            if get(smaller) >= get(larger) {
                return fail(smaller, format!("must be less than {larger}"));
            }
        }
        if self.share_max_share_sessions < self.share_max_size {
            return fail(
                "group.share.max.share.sessions",
                "must be greater than or equal to group.share.max.size".into(),
            );
        }
        Ok(())
    }

    /// The value of `key` and whether it was set explicitly; `None` for another key.
    pub fn get(&self, key: &str) -> Option<(i32, bool)> {
        let k = KEYS.iter().find(|k| k.key == key)?;
        Some(((k.get)(self), self.explicit.contains(k.key)))
    }

    /// Every key with its value, for DescribeConfigs on the broker.
    pub fn describe(&self, out: &mut BTreeMap<&'static str, String>) {
        for k in KEYS {
            out.insert(k.key, (k.get)(self).to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::apply;

    #[test]
    fn defaults_are_kafkas_and_consistent() {
        let c = apply("").unwrap();
        let g = &c.group;
        assert_eq!(g, &GroupKeys::default());
        assert_eq!(
            (g.share_session_timeout_ms, g.share_heartbeat_interval_ms),
            (45_000, 5_000)
        );
        assert_eq!(g.share_max_size, 200);
        assert_eq!(
            (
                g.share_min_record_lock_duration_ms,
                g.share_record_lock_duration_ms,
                g.share_max_record_lock_duration_ms
            ),
            (15_000, 30_000, 60_000)
        );
        assert_eq!(
            (
                g.share_min_delivery_count_limit,
                g.share_delivery_count_limit,
                g.share_max_delivery_count_limit
            ),
            (2, 5, 10)
        );
        assert_eq!(g.share_partition_max_record_locks, 2_000);
        assert_eq!(g.share_max_share_sessions, 2_000);
        assert_eq!(
            (
                g.share_state_topic_num_partitions,
                g.share_state_topic_replication_factor,
                g.share_state_topic_min_isr,
                g.share_snapshot_update_records_per_snapshot
            ),
            (50, 3, 2, 500)
        );
        assert_eq!(g.get("group.share.max.size"), Some((200, false)));
        for k in KEYS {
            let (default, set) = g.get(k.key).unwrap();
            assert!((k.min..=k.max).contains(&default), "{}", k.key);
            assert!(!set, "{}", k.key);
        }
    }

    #[test]
    fn every_key_parses_and_is_remembered_as_set() {
        for k in KEYS {
            let mut g = GroupKeys::default();
            let (default, _) = g.get(k.key).unwrap();
            // The default itself, given explicitly: same value, now a static broker setting.
            assert!(g.apply(k.key, &default.to_string()).unwrap());
            assert_eq!(g.get(k.key), Some((default, true)), "{}", k.key);
            g.validate().unwrap();
        }
        let mut g = GroupKeys::default();
        assert!(!g.apply("group.share.nonsense", "1").unwrap());
        let c = apply(
            "group.share.record.lock.duration.ms=20000\ngroup.share.delivery.count.limit=3\n\
             group.share.partition.max.record.locks=500\ngroup.share.max.size=50\n\
             share.coordinator.state.topic.num.partitions=7\n\
             share.coordinator.state.topic.replication.factor=1\n\
             share.coordinator.state.topic.min.isr=1\n\
             share.coordinator.snapshot.update.records.per.snapshot=0\n",
        )
        .unwrap();
        let g = &c.group;
        assert_eq!(g.share_record_lock_duration_ms, 20_000);
        assert_eq!(g.share_delivery_count_limit, 3);
        assert_eq!(g.share_partition_max_record_locks, 500);
        assert_eq!(g.share_max_size, 50);
        assert_eq!(g.share_state_topic_num_partitions, 7);
        assert_eq!(
            (
                g.share_state_topic_replication_factor,
                g.share_state_topic_min_isr
            ),
            (1, 1)
        );
        assert_eq!(g.share_snapshot_update_records_per_snapshot, 0);
        let described = c.describe();
        assert_eq!(described["group.share.record.lock.duration.ms"], "20000");
        assert_eq!(
            described["group.share.max.record.lock.duration.ms"],
            "60000"
        );
        assert_eq!(
            described["share.coordinator.state.topic.num.partitions"],
            "7"
        );
    }

    #[test]
    fn values_outside_kafkas_bounds_fail_naming_the_key() {
        for k in KEYS {
            let mut bad = vec![format!("{}", i64::from(k.min) - 1), "x".into()];
            if k.max < I32_MAX {
                bad.push(format!("{}", i64::from(k.max) + 1));
            }
            for value in bad {
                let err = apply(&format!("{}={value}", k.key))
                    .unwrap_err()
                    .to_string();
                assert!(err.contains(k.key), "{}={value}: {err}", k.key);
            }
        }
        // Kafka's fixed ranges, spot-checked at both ends.
        for (bad, good) in [
            ("group.share.max.size=1001", "group.share.max.size=1000"),
            (
                "group.share.record.lock.duration.ms=999",
                "group.share.record.lock.duration.ms=15000",
            ),
            (
                "group.share.min.record.lock.duration.ms=30001",
                "group.share.min.record.lock.duration.ms=30000",
            ),
            (
                "group.share.max.record.lock.duration.ms=3600001",
                "group.share.max.record.lock.duration.ms=3600000",
            ),
            (
                "group.share.delivery.count.limit=11",
                "group.share.delivery.count.limit=10",
            ),
            (
                "group.share.min.delivery.count.limit=1",
                "group.share.min.delivery.count.limit=5",
            ),
            (
                "group.share.max.delivery.count.limit=26",
                "group.share.max.delivery.count.limit=25",
            ),
            (
                "group.share.partition.max.record.locks=99",
                "group.share.partition.max.record.locks=100",
            ),
            (
                "share.coordinator.snapshot.update.records.per.snapshot=501",
                "share.coordinator.snapshot.update.records.per.snapshot=500",
            ),
            (
                "share.coordinator.state.topic.replication.factor=32768",
                "share.coordinator.state.topic.replication.factor=32767",
            ),
        ] {
            assert!(apply(bad).is_err(), "{bad}");
            apply(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
    }

    #[test]
    fn cross_key_rules_are_kafkas() {
        for (text, key, reason) in [
            (
                "group.share.heartbeat.interval.ms=45000\n\
                 group.share.max.heartbeat.interval.ms=50000",
                "group.share.heartbeat.interval.ms",
                "less than group.share.session.timeout.ms",
            ),
            (
                "group.share.session.timeout.ms=70000",
                "group.share.session.timeout.ms",
                "less than or equal to group.share.max.session.timeout.ms",
            ),
            (
                "group.share.session.timeout.ms=30000",
                "group.share.session.timeout.ms",
                "greater than or equal to group.share.min.session.timeout.ms",
            ),
            (
                "group.share.min.heartbeat.interval.ms=20000",
                "group.share.max.heartbeat.interval.ms",
                "greater than or equal to group.share.min.heartbeat.interval.ms",
            ),
            (
                "group.share.record.lock.duration.ms=10000",
                "group.share.record.lock.duration.ms",
                "greater than or equal to group.share.min.record.lock.duration.ms",
            ),
            (
                "group.share.record.lock.duration.ms=90000",
                "group.share.record.lock.duration.ms",
                "less than or equal to group.share.max.record.lock.duration.ms",
            ),
            (
                "group.share.delivery.count.limit=8\ngroup.share.max.delivery.count.limit=7",
                "group.share.delivery.count.limit",
                "less than or equal to group.share.max.delivery.count.limit",
            ),
            (
                "group.share.partition.max.record.locks=5000",
                "group.share.partition.max.record.locks",
                "less than or equal to group.share.max.partition.max.record.locks",
            ),
            (
                "group.share.max.share.sessions=100\ngroup.share.max.size=200",
                "group.share.max.share.sessions",
                "group.share.max.size",
            ),
            (
                "group.consumer.session.timeout.ms=6000",
                "group.consumer.session.timeout.ms",
                "greater than or equal to group.consumer.min.session.timeout.ms",
            ),
            (
                "group.consumer.heartbeat.interval.ms=500",
                "group.consumer.heartbeat.interval.ms",
                "greater than or equal to group.consumer.min.heartbeat.interval.ms",
            ),
        ] {
            let err = apply(text).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(reason), "{text}: {err}");
        }
        // Lowering the bounds lets the same values in, as on Kafka.
        let c = apply(
            "group.share.record.lock.duration.ms=5000\n\
             group.share.min.record.lock.duration.ms=1000\n\
             group.consumer.session.timeout.ms=6000\ngroup.consumer.min.session.timeout.ms=6000\n\
             group.consumer.heartbeat.interval.ms=500\n\
             group.consumer.min.heartbeat.interval.ms=500\n",
        )
        .unwrap();
        assert_eq!(c.group.share_record_lock_duration_ms, 5_000);
        assert_eq!(c.group.consumer_session_timeout_ms, 6_000);
    }
}
