//! Topic-level configs: Kafka's names, types, defaults and validation, the broker-level keys
//! (server.properties) that set their defaults, and the typed settings the log and the produce
//! path apply.
//!
//! Only keys this broker applies are accepted; any other key is refused with INVALID_CONFIG
//! naming it, rather than stored and ignored. Values are normalised when accepted (a list such
//! as `cleanup.policy` loses its spaces), so what DescribeConfigs reports is what is applied.
//!
//! Where a value comes from, as DescribeConfigs reports it: the topic's own setting
//! (TOPIC_CONFIG), else the broker key in server.properties or on the command line
//! (STATIC_BROKER_CONFIG), else the built-in default (DEFAULT_CONFIG).

use std::collections::BTreeMap;

/// A config's type, numbered as DescribeConfigs v3+ reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// true or false.
    Boolean = 1,
    /// A string from a fixed set.
    String = 2,
    /// A 32-bit integer.
    Int = 3,
    /// A 64-bit integer.
    Long = 5,
    /// A floating-point number.
    Double = 6,
    /// A comma-separated list.
    List = 7,
}

/// Checks a value; returns it normalised, or why it is refused.
type Check = fn(&str) -> Result<String, String>;

/// One topic config.
pub struct Def {
    /// The topic-level name.
    pub name: &'static str,
    /// The broker key (server.properties) that sets its default.
    pub broker_key: &'static str,
    /// The built-in default.
    pub default: &'static str,
    /// Its type.
    pub kind: Kind,
    check: Check,
    /// One line for DescribeConfigs' documentation field.
    pub doc: &'static str,
}

fn long_at_least(v: &str, min: i64) -> Result<String, String> {
    match v.trim().parse::<i64>() {
        Ok(n) if n >= min => Ok(n.to_string()),
        Ok(_) => Err(format!("must be at least {min}")),
        Err(_) => Err("must be a 64-bit integer".into()),
    }
}

fn int_at_least(v: &str, min: i32) -> Result<String, String> {
    match v.trim().parse::<i32>() {
        Ok(n) if n >= min => Ok(n.to_string()),
        Ok(_) => Err(format!("must be at least {min}")),
        Err(_) => Err("must be a 32-bit integer".into()),
    }
}

fn one_of(v: &str, allowed: &[&str]) -> Result<String, String> {
    let v = v.trim();
    if allowed.contains(&v) {
        Ok(v.to_string())
    } else {
        Err(format!("must be one of {}", allowed.join(", ")))
    }
}

fn cleanup_policy(v: &str) -> Result<String, String> {
    let mut items: Vec<&str> = Vec::new();
    for item in v.split(',').map(str::trim) {
        if item != "delete" && item != "compact" {
            return Err("must be a list of delete and compact".into());
        }
        if !items.contains(&item) {
            items.push(item);
        }
    }
    Ok(items.join(","))
}

fn ratio(v: &str) -> Result<String, String> {
    match v.trim().parse::<f64>() {
        Ok(n) if (0.0..=1.0).contains(&n) => Ok(v.trim().to_string()),
        _ => Err("must be a number between 0 and 1".into()),
    }
}

/// Confluent's subject name strategies, by class name (the short name is accepted too).
fn subject_strategy(v: &str) -> Result<String, String> {
    SubjectStrategy::parse(v)
        .map(|s| s.class_name().to_string())
        .ok_or_else(|| "must be TopicNameStrategy, RecordNameStrategy or TopicRecordNameStrategy (io.confluent.kafka.serializers.subject.*)".into())
}

/// Which subject a record's schema must be registered under (Confluent's
/// `*.subject.name.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectStrategy {
    /// `<topic>-key` / `<topic>-value`.
    Topic,
    /// The schema's record name.
    Record,
    /// `<topic>-<record name>`.
    TopicRecord,
}

impl SubjectStrategy {
    /// From a class name or its last part.
    pub fn parse(v: &str) -> Option<SubjectStrategy> {
        let short = v.trim().rsplit('.').next().unwrap_or("");
        match short {
            "TopicNameStrategy" => Some(SubjectStrategy::Topic),
            "RecordNameStrategy" => Some(SubjectStrategy::Record),
            "TopicRecordNameStrategy" => Some(SubjectStrategy::TopicRecord),
            _ => None,
        }
    }

    /// Confluent's class name.
    pub fn class_name(self) -> &'static str {
        match self {
            SubjectStrategy::Topic => "io.confluent.kafka.serializers.subject.TopicNameStrategy",
            SubjectStrategy::Record => "io.confluent.kafka.serializers.subject.RecordNameStrategy",
            SubjectStrategy::TopicRecord => {
                "io.confluent.kafka.serializers.subject.TopicRecordNameStrategy"
            }
        }
    }
}

/// The smallest `segment.bytes` accepted. Kafka 4 raised its own floor to 1 MiB; 1 KiB is
/// kept here so that tests and small deployments can roll segments quickly.
pub const SEGMENT_BYTES_MIN: i32 = 1024;

/// Every supported topic config.
pub const DEFS: &[Def] = &[
    Def {
        name: "cleanup.policy",
        broker_key: "log.cleanup.policy",
        default: "delete",
        kind: Kind::List,
        check: cleanup_policy,
        doc: "delete: drop old segments by retention.ms/retention.bytes; compact: keep the latest record per key; both: both",
    },
    Def {
        name: "retention.ms",
        broker_key: "log.retention.ms",
        default: "604800000",
        kind: Kind::Long,
        check: |v| long_at_least(v, -1),
        doc: "segments whose newest record is older than this are deleted (-1: no time limit)",
    },
    Def {
        name: "retention.bytes",
        broker_key: "log.retention.bytes",
        default: "-1",
        kind: Kind::Long,
        check: |v| long_at_least(v, -1),
        doc: "oldest segments are deleted while the partition is larger than this (-1: no size limit)",
    },
    Def {
        name: "segment.bytes",
        broker_key: "log.segment.bytes",
        default: "1073741824",
        kind: Kind::Int,
        check: |v| int_at_least(v, SEGMENT_BYTES_MIN),
        doc: "a segment rolls before it grows past this size",
    },
    Def {
        name: "segment.ms",
        broker_key: "log.roll.ms",
        default: "604800000",
        kind: Kind::Long,
        check: |v| long_at_least(v, 1),
        doc: "a segment rolls once its first record is this old, so retention can delete it",
    },
    Def {
        name: "min.compaction.lag.ms",
        broker_key: "log.cleaner.min.compaction.lag.ms",
        default: "0",
        kind: Kind::Long,
        check: |v| long_at_least(v, 0),
        doc: "records stay uncompacted at least this long",
    },
    Def {
        name: "max.compaction.lag.ms",
        broker_key: "log.cleaner.max.compaction.lag.ms",
        default: "9223372036854775807",
        kind: Kind::Long,
        check: |v| long_at_least(v, 1),
        doc: "records become eligible for compaction at the latest after this long, whatever the dirty ratio",
    },
    Def {
        name: "delete.retention.ms",
        broker_key: "log.cleaner.delete.retention.ms",
        default: "86400000",
        kind: Kind::Long,
        check: |v| long_at_least(v, 0),
        doc: "how long a tombstone stays after compaction first sees it",
    },
    Def {
        name: "min.cleanable.dirty.ratio",
        broker_key: "log.cleaner.min.cleanable.ratio",
        default: "0.5",
        kind: Kind::Double,
        check: ratio,
        doc: "the share of uncompacted bytes above which the cleaner compacts the log",
    },
    Def {
        name: "max.message.bytes",
        broker_key: "message.max.bytes",
        default: "1048588",
        kind: Kind::Int,
        check: |v| int_at_least(v, 0),
        doc: "the largest record batch accepted",
    },
    Def {
        name: "min.insync.replicas",
        broker_key: "min.insync.replicas",
        // Kafka's is 1; 2 means acks=all survives one broker loss by default. The replica
        // caps it at the replica count, so it acts as min(2, RF).
        default: "2",
        kind: Kind::Int,
        check: |v| int_at_least(v, 1),
        doc: "in-sync replicas an acks=all write needs (NOT_ENOUGH_REPLICAS below), and that the high watermark needs to advance",
    },
    Def {
        name: "message.timestamp.type",
        broker_key: "log.message.timestamp.type",
        default: "CreateTime",
        kind: Kind::String,
        check: |v| one_of(v, &["CreateTime", "LogAppendTime"]),
        doc: "CreateTime keeps the producer's timestamps; LogAppendTime stamps the broker's time",
    },
    Def {
        name: "message.timestamp.before.max.ms",
        broker_key: "log.message.timestamp.before.max.ms",
        default: "9223372036854775807",
        kind: Kind::Long,
        check: |v| long_at_least(v, 0),
        doc: "CreateTime records older than the broker's clock by more than this are refused",
    },
    Def {
        name: "message.timestamp.after.max.ms",
        broker_key: "log.message.timestamp.after.max.ms",
        default: "3600000",
        kind: Kind::Long,
        check: |v| long_at_least(v, 0),
        doc: "CreateTime records ahead of the broker's clock by more than this are refused",
    },
    Def {
        name: "compression.type",
        broker_key: "compression.type",
        default: "producer",
        kind: Kind::String,
        check: |v| one_of(v, &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]),
        doc: "producer keeps each batch's codec; a codec name recompresses batches on append",
    },
    Def {
        name: "unclean.leader.election.enable",
        broker_key: "unclean.leader.election.enable",
        default: "false",
        kind: Kind::Boolean,
        check: |v| one_of(&v.trim().to_ascii_lowercase(), &["true", "false"]),
        doc: "lets the controller make a replica that was not in sync the leader of a partition with none (acknowledged records may be lost)",
    },
    Def {
        name: "confluent.key.schema.validation",
        broker_key: "confluent.key.schema.validation",
        default: "false",
        kind: Kind::Boolean,
        check: |v| one_of(&v.trim().to_ascii_lowercase(), &["true", "false"]),
        doc: "produce checks every record's key carries the id of a schema registered (in this cluster's schema registry) under the subject confluent.key.subject.name.strategy names; other records are refused with INVALID_RECORD",
    },
    Def {
        name: "confluent.key.subject.name.strategy",
        broker_key: "confluent.key.subject.name.strategy",
        default: "io.confluent.kafka.serializers.subject.TopicNameStrategy",
        kind: Kind::String,
        check: subject_strategy,
        doc: "the subject a key's schema must be registered under: TopicNameStrategy <topic>-key, RecordNameStrategy <record name>, TopicRecordNameStrategy <topic>-<record name>",
    },
    Def {
        name: "confluent.value.schema.validation",
        broker_key: "confluent.value.schema.validation",
        default: "false",
        kind: Kind::Boolean,
        check: |v| one_of(&v.trim().to_ascii_lowercase(), &["true", "false"]),
        doc: "produce checks every record's value carries the id of a schema registered (in this cluster's schema registry) under the subject confluent.value.subject.name.strategy names; other records are refused with INVALID_RECORD",
    },
    Def {
        name: "confluent.value.subject.name.strategy",
        broker_key: "confluent.value.subject.name.strategy",
        default: "io.confluent.kafka.serializers.subject.TopicNameStrategy",
        kind: Kind::String,
        check: subject_strategy,
        doc: "the subject a value's schema must be registered under: TopicNameStrategy <topic>-value, RecordNameStrategy <record name>, TopicRecordNameStrategy <topic>-<record name>",
    },
];

/// The definition of a topic config.
pub fn def(name: &str) -> Option<&'static Def> {
    DEFS.iter().find(|d| d.name == name)
}

/// The topic config a broker key sets the default of.
pub fn by_broker_key(key: &str) -> Option<&'static Def> {
    DEFS.iter().find(|d| d.broker_key == key)
}

/// Checks one value of a known config and returns it normalised; the error names the key.
pub fn check_value(name: &str, value: &str) -> Result<String, String> {
    let Some(d) = def(name) else {
        return Err(format!("Unknown or unsupported topic config: {name}"));
    };
    (d.check)(value).map_err(|why| format!("Invalid value {value} for configuration {name}: {why}"))
}

/// Validates configs from a CreateTopics request; returns them as stored.
pub fn validate(configs: &[(String, Option<String>)]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (key, value) in configs {
        let Some(value) = value else {
            return Err(format!("Null value not supported for topic config: {key}"));
        };
        out.insert(key.clone(), check_value(key, value)?);
    }
    check_combination(&out)?;
    Ok(out)
}

/// Checks rules between keys of a topic's overrides (applied after every change).
pub fn check_combination(configs: &BTreeMap<String, String>) -> Result<(), String> {
    let get = |k: &str| configs.get(k).and_then(|v| v.parse::<i64>().ok());
    if let (Some(min), Some(max)) = (get("min.compaction.lag.ms"), get("max.compaction.lag.ms")) {
        if min > max {
            return Err(format!(
                "conflict topic config setting min.compaction.lag.ms ({min}) > max.compaction.lag.ms ({max})"
            ));
        }
    }
    Ok(())
}

/// Effective topic-config defaults of a broker: every topic config's value when a topic does
/// not set it, and which broker key set it (None: the built-in default).
#[derive(Debug, Clone)]
pub struct BrokerDefaults {
    values: BTreeMap<&'static str, (String, Option<&'static str>)>,
}

impl Default for BrokerDefaults {
    fn default() -> Self {
        BrokerDefaults {
            values: DEFS
                .iter()
                .map(|d| (d.name, (d.default.to_string(), None)))
                .collect(),
        }
    }
}

impl BrokerDefaults {
    /// Sets the default of `name` from broker key `key` (value already checked).
    pub fn set(&mut self, name: &'static str, value: String, key: &'static str) {
        self.values.insert(name, (value, Some(key)));
    }

    /// The default of a topic config and the broker key that set it.
    pub fn get(&self, name: &str) -> (&str, Option<&'static str>) {
        match self.values.get(name) {
            Some((v, key)) => (v.as_str(), *key),
            None => ("", None),
        }
    }

    /// The effective value of `name` for a topic with `overrides`.
    pub fn effective<'a>(&'a self, overrides: &'a BTreeMap<String, String>, name: &str) -> &'a str {
        overrides
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| self.get(name).0)
    }

    /// The typed settings of a topic with `overrides`.
    pub fn settings(&self, overrides: &BTreeMap<String, String>) -> TopicSettings {
        let long = |name: &str| self.effective(overrides, name).parse::<i64>().unwrap_or(-1);
        let policy = self.effective(overrides, "cleanup.policy");
        TopicSettings {
            cleanup_delete: policy.split(',').any(|p| p == "delete"),
            cleanup_compact: policy.split(',').any(|p| p == "compact"),
            retention_ms: long("retention.ms"),
            retention_bytes: long("retention.bytes"),
            segment_bytes: long("segment.bytes").max(i64::from(SEGMENT_BYTES_MIN)) as u64,
            segment_ms: long("segment.ms").max(1),
            min_compaction_lag_ms: long("min.compaction.lag.ms").max(0),
            max_compaction_lag_ms: long("max.compaction.lag.ms").max(1),
            delete_retention_ms: long("delete.retention.ms").max(0),
            min_cleanable_dirty_ratio: self
                .effective(overrides, "min.cleanable.dirty.ratio")
                .parse()
                .unwrap_or(0.5),
            max_message_bytes: long("max.message.bytes").max(0) as usize,
            min_insync_replicas: long("min.insync.replicas").max(1) as usize,
            unclean_leader_election: self.effective(overrides, "unclean.leader.election.enable")
                == "true",
            log_append_time: self.effective(overrides, "message.timestamp.type") == "LogAppendTime",
            timestamp_before_max_ms: long("message.timestamp.before.max.ms").max(0),
            timestamp_after_max_ms: long("message.timestamp.after.max.ms").max(0),
            compression: match self.effective(overrides, "compression.type") {
                "producer" => None,
                "uncompressed" => Some(millrace_wire::compression::Compression::None),
                other => millrace_wire::compression::Compression::from_name(other),
            },
            key_schema: (self.effective(overrides, "confluent.key.schema.validation") == "true")
                .then(|| {
                    SubjectStrategy::parse(
                        self.effective(overrides, "confluent.key.subject.name.strategy"),
                    )
                    .unwrap_or(SubjectStrategy::Topic)
                }),
            value_schema: (self.effective(overrides, "confluent.value.schema.validation")
                == "true")
                .then(|| {
                    SubjectStrategy::parse(
                        self.effective(overrides, "confluent.value.subject.name.strategy"),
                    )
                    .unwrap_or(SubjectStrategy::Topic)
                }),
        }
    }
}

/// What a topic's configs mean, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSettings {
    /// `cleanup.policy` has delete.
    pub cleanup_delete: bool,
    /// `cleanup.policy` has compact.
    pub cleanup_compact: bool,
    /// `retention.ms` (-1: none).
    pub retention_ms: i64,
    /// `retention.bytes` (-1: none).
    pub retention_bytes: i64,
    /// `segment.bytes`.
    pub segment_bytes: u64,
    /// `segment.ms`.
    pub segment_ms: i64,
    /// `min.compaction.lag.ms`.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`.
    pub max_compaction_lag_ms: i64,
    /// `delete.retention.ms`.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`.
    pub min_cleanable_dirty_ratio: f64,
    /// `max.message.bytes`.
    pub max_message_bytes: usize,
    /// `min.insync.replicas`.
    pub min_insync_replicas: usize,
    /// `unclean.leader.election.enable`.
    pub unclean_leader_election: bool,
    /// `message.timestamp.type=LogAppendTime`.
    pub log_append_time: bool,
    /// `message.timestamp.before.max.ms`.
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`.
    pub timestamp_after_max_ms: i64,
    /// `compression.type`: None keeps the producer's codec.
    pub compression: Option<millrace_wire::compression::Compression>,
    /// `confluent.key.schema.validation` on: the strategy naming the keys' subject.
    pub key_schema: Option<SubjectStrategy>,
    /// `confluent.value.schema.validation` on: the strategy naming the values' subject.
    pub value_schema: Option<SubjectStrategy>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_unknown_keys_and_bad_values_naming_the_key() {
        for (k, v) in [
            ("retention.ms", "-2"),
            ("retention.bytes", "ten"),
            ("cleanup.policy", "compact,shred"),
            ("segment.bytes", "1"),
            ("max.message.bytes", "x"),
            ("min.cleanable.dirty.ratio", "1.5"),
            ("message.timestamp.type", "Now"),
            ("compression.type", "brotli"),
            ("flush.messages", "1"),
        ] {
            let err = validate(&[(k.to_string(), Some(v.to_string()))]).unwrap_err();
            assert!(err.contains(k), "{err}");
        }
        let err = validate(&[("retention.ms".into(), None)]).unwrap_err();
        assert!(err.contains("Null"), "{err}");
    }

    #[test]
    fn normalises_what_it_stores() {
        let got = validate(&[
            (
                "cleanup.policy".into(),
                Some(" compact , delete,compact".into()),
            ),
            ("retention.ms".into(), Some(" 1000".into())),
        ])
        .unwrap();
        assert_eq!(got["cleanup.policy"], "compact,delete");
        assert_eq!(got["retention.ms"], "1000");
    }

    #[test]
    fn refuses_min_lag_above_max_lag() {
        let err = validate(&[
            ("min.compaction.lag.ms".into(), Some("10".into())),
            ("max.compaction.lag.ms".into(), Some("5".into())),
        ])
        .unwrap_err();
        assert!(err.contains("min.compaction.lag.ms"), "{err}");
    }

    #[test]
    fn settings_take_overrides_then_broker_defaults_then_built_ins() {
        let mut defaults = BrokerDefaults::default();
        defaults.set("retention.ms", "5000".into(), "log.retention.ms");
        let mut overrides = BTreeMap::new();
        overrides.insert("cleanup.policy".to_string(), "compact".to_string());
        let s = defaults.settings(&overrides);
        assert!(s.cleanup_compact && !s.cleanup_delete);
        assert_eq!(s.retention_ms, 5000);
        assert_eq!(s.retention_bytes, -1);
        assert_eq!(s.delete_retention_ms, 86_400_000);
        assert_eq!(
            defaults.get("retention.ms"),
            ("5000", Some("log.retention.ms"))
        );
        assert_eq!(defaults.get("segment.ms"), ("604800000", None));
        overrides.insert("compression.type".into(), "uncompressed".into());
        assert_eq!(
            defaults.settings(&overrides).compression,
            Some(millrace_wire::compression::Compression::None)
        );
    }

    #[test]
    fn every_default_passes_its_own_check() {
        for d in DEFS {
            assert_eq!(
                check_value(d.name, d.default).as_deref(),
                Ok(d.default),
                "{}",
                d.name
            );
            assert!(by_broker_key(d.broker_key).is_some_and(|b| b.name == d.name));
        }
    }
}
