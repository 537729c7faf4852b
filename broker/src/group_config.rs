//! Group-level configs (Kafka's GROUP config resource, KIP-848 and KIP-932): Kafka's names,
//! types, defaults and validation, and the typed settings a group's coordinator applies.
//!
//! A group's configs are overrides set with IncrementalAlterConfigs / AlterConfigs on
//! resource type GROUP (32) and stored in the metadata log as ConfigRecords, so every broker
//! sees them and they survive restarts. A group need not exist for its configs to be set.
//! Everything a group does not override comes from the broker: the key's broker synonym
//! (`consumer.session.timeout.ms` ← `group.consumer.session.timeout.ms`, ...), else Kafka's
//! built-in default. Resolve a group's settings with [`group_settings`].
//!
//! The keys are Kafka 4.4's `GroupConfig`, all of them, so a client's change is accepted or
//! refused as Kafka would: consumer, share and streams keys and the share-group dead-letter
//! queue keys. Millrace has no streams groups; their keys are stored and described, and
//! validated against the bounds of Kafka's default broker configuration. Kafka's internal keys
//! (`*.assignor.offload.enable`, `streams.task.offset.interval.ms`, ...) are accepted but not
//! listed by DescribeConfigs, as on Kafka.
//!
//! Validation ([`validate`]) runs on a group's whole set of overrides after a change, as
//! Kafka's controller does: every name known (else "Unknown group config name"), every value
//! of its type, integers within the broker's `min`/`max` keys (a group's
//! `share.record.lock.duration.ms` within `group.share.min.record.lock.duration.ms` ..
//! `group.share.max.record.lock.duration.ms`), and a session timeout above the heartbeat
//! interval (a key the group does not set counts at its broker value). A failure is
//! INVALID_CONFIG. Values are normalised when accepted (trimmed; booleans lower case), so
//! what DescribeConfigs reports is what is applied. A value stored under bounds that were
//! narrowed later is applied as stored, as Kafka does.

use crate::config::Config;
use crate::topic_config::Kind;
use millrace_replication::metadata::ClusterImage;
use std::collections::BTreeMap;

/// One group config.
pub struct GroupDef {
    /// The group-level name.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Kafka's broker key that sets its default (DescribeConfigs' synonym); `None` when the
    /// key has no broker synonym and its synonym is itself.
    pub broker_key: Option<&'static str>,
    /// Kafka's default when no broker key of this broker sets it.
    pub default: &'static str,
    /// Accepted but not described (Kafka's internal group configs).
    pub internal: bool,
    rule: Rule,
    /// One line for DescribeConfigs' documentation field.
    pub doc: &'static str,
}

/// How a value is checked beyond its type.
#[derive(Clone, Copy)]
enum Rule {
    /// An integer at least `floor` (Kafka's type-level check) and then within `bounds`.
    Int { floor: i32, bounds: Bounds },
    /// A 64-bit integer at least `floor`.
    Long { floor: i64 },
    /// true or false (any case).
    Bool,
    /// `latest`, `earliest` or `by_duration:<ISO-8601 duration>`.
    AutoOffsetReset,
    /// One of these, exactly.
    OneOf(&'static [&'static str]),
    /// A comma-separated list without repeated items.
    DistinctList,
    /// A name from `group.streams.assignors` (Kafka's default: only `sticky`).
    StreamsAssignor,
    /// A topic name that does not start with `__` (or empty: none).
    DeadLetterTopic,
}

/// The range a group's integer must lie in, from the broker.
#[derive(Clone, Copy)]
enum Bounds {
    /// No range beyond the floor.
    Unbounded,
    /// `min..=max`.
    Range(Limit, Limit),
    /// At most this.
    Max(Limit),
    /// At least this.
    Min(Limit),
}

/// One end of a range: a broker key of [`crate::config::groups`], or, for keys this broker
/// does not have (streams groups, assignment intervals), Kafka's default for that key.
#[derive(Clone, Copy)]
enum Limit {
    Broker(&'static str),
    Fixed(i32),
}

use Bounds::{Max, Min, Range, Unbounded};
use Limit::{Broker, Fixed};

const fn int(floor: i32, bounds: Bounds) -> Rule {
    Rule::Int { floor, bounds }
}

macro_rules! def {
    (
        $name:literal,
        $kind:ident,
        $broker:expr,
        $default:literal,
        $internal:literal,
        $rule:expr,
        $doc:literal $(,)?
    ) => {
        GroupDef {
            name: $name,
            kind: Kind::$kind,
            broker_key: $broker,
            default: $default,
            internal: $internal,
            rule: $rule,
            doc: $doc,
        }
    };
}

/// Every group config of Kafka 4.4, in Kafka's order.
pub static DEFS: &[GroupDef] = &[
    def!(
        "consumer.session.timeout.ms",
        Int,
        Some("group.consumer.session.timeout.ms"),
        "45000",
        false,
        int(
            1,
            Range(
                Broker("group.consumer.min.session.timeout.ms"),
                Broker("group.consumer.max.session.timeout.ms"),
            ),
        ),
        "How long a silent member of this consumer group is kept before it is removed.",
    ),
    def!(
        "consumer.heartbeat.interval.ms",
        Int,
        Some("group.consumer.heartbeat.interval.ms"),
        "5000",
        false,
        int(
            1,
            Range(
                Broker("group.consumer.min.heartbeat.interval.ms"),
                Broker("group.consumer.max.heartbeat.interval.ms"),
            ),
        ),
        "How often members of this consumer group heartbeat.",
    ),
    def!(
        "consumer.assignment.interval.ms",
        Int,
        Some("group.consumer.assignment.interval.ms"),
        "1000",
        false,
        int(0, Range(Fixed(0), Fixed(15_000))),
        "The least time between two assignments of this consumer group.",
    ),
    def!(
        "consumer.assignor.offload.enable",
        Boolean,
        Some("group.consumer.assignor.offload.enable"),
        "true",
        true,
        Rule::Bool,
        "Whether this consumer group's assignor may run off the coordinator's thread.",
    ),
    def!(
        "share.session.timeout.ms",
        Int,
        Some("group.share.session.timeout.ms"),
        "45000",
        false,
        int(
            1,
            Range(
                Broker("group.share.min.session.timeout.ms"),
                Broker("group.share.max.session.timeout.ms"),
            ),
        ),
        "How long a silent member of this share group is kept before it is removed.",
    ),
    def!(
        "share.heartbeat.interval.ms",
        Int,
        Some("group.share.heartbeat.interval.ms"),
        "5000",
        false,
        int(
            1,
            Range(
                Broker("group.share.min.heartbeat.interval.ms"),
                Broker("group.share.max.heartbeat.interval.ms"),
            ),
        ),
        "How often members of this share group heartbeat.",
    ),
    def!(
        "share.record.lock.duration.ms",
        Int,
        Some("group.share.record.lock.duration.ms"),
        "30000",
        false,
        int(
            1_000,
            Range(
                Broker("group.share.min.record.lock.duration.ms"),
                Broker("group.share.max.record.lock.duration.ms"),
            ),
        ),
        "How long a record delivered to a member of this share group stays acquired by it.",
    ),
    def!(
        "share.delivery.count.limit",
        Int,
        Some("group.share.delivery.count.limit"),
        "5",
        false,
        int(
            2,
            Range(
                Broker("group.share.min.delivery.count.limit"),
                Broker("group.share.max.delivery.count.limit"),
            ),
        ),
        "Deliveries of a record to this share group before it is archived.",
    ),
    def!(
        "share.partition.max.record.locks",
        Int,
        Some("group.share.partition.max.record.locks"),
        "2000",
        false,
        int(
            100,
            Range(
                Broker("group.share.min.partition.max.record.locks"),
                Broker("group.share.max.partition.max.record.locks"),
            ),
        ),
        "Records of one share partition this share group may hold acquired at once.",
    ),
    def!(
        "share.auto.offset.reset",
        String,
        None,
        "latest",
        false,
        Rule::AutoOffsetReset,
        "Where this share group starts in a partition it has no state for: latest, earliest, or \
         by_duration:<ISO-8601 duration> back from now.",
    ),
    def!(
        "share.isolation.level",
        String,
        None,
        "read_uncommitted",
        false,
        Rule::OneOf(&["read_committed", "read_uncommitted"]),
        "Whether this share group is delivered only committed transactional records \
         (read_committed) or all of them.",
    ),
    def!(
        "share.renew.acknowledge.enable",
        Boolean,
        None,
        "true",
        false,
        Rule::Bool,
        "Whether members of this share group may renew a record's lock by acknowledging it with \
         RENEW.",
    ),
    def!(
        "share.assignment.interval.ms",
        Int,
        Some("group.share.assignment.interval.ms"),
        "1000",
        false,
        int(0, Range(Fixed(0), Fixed(15_000))),
        "The least time between two assignments of this share group.",
    ),
    def!(
        "share.assignor.offload.enable",
        Boolean,
        Some("group.share.assignor.offload.enable"),
        "true",
        true,
        Rule::Bool,
        "Whether this share group's assignor may run off the coordinator's thread.",
    ),
    def!(
        "streams.session.timeout.ms",
        Int,
        Some("group.streams.session.timeout.ms"),
        "45000",
        false,
        int(1, Range(Fixed(45_000), Fixed(60_000))),
        "How long a silent member of this streams group is kept before it is removed.",
    ),
    def!(
        "streams.heartbeat.interval.ms",
        Int,
        Some("group.streams.heartbeat.interval.ms"),
        "5000",
        false,
        int(1, Range(Fixed(5_000), Fixed(15_000))),
        "How often members of this streams group heartbeat.",
    ),
    def!(
        "streams.num.standby.replicas",
        Int,
        Some("group.streams.num.standby.replicas"),
        "0",
        false,
        int(0, Max(Fixed(2))),
        "Standby replicas of each task of this streams group.",
    ),
    def!(
        "streams.initial.rebalance.delay.ms",
        Int,
        Some("group.streams.initial.rebalance.delay.ms"),
        "3000",
        false,
        int(0, Unbounded),
        "How long this streams group waits for more members before its first assignment.",
    ),
    def!(
        "streams.assignment.interval.ms",
        Int,
        Some("group.streams.assignment.interval.ms"),
        "1000",
        false,
        int(0, Range(Fixed(0), Fixed(15_000))),
        "The least time between two assignments of this streams group.",
    ),
    def!(
        "streams.assignor.offload.enable",
        Boolean,
        Some("group.streams.assignor.offload.enable"),
        "true",
        true,
        Rule::Bool,
        "Whether this streams group's assignor may run off the coordinator's thread.",
    ),
    def!(
        "streams.task.offset.interval.ms",
        Int,
        Some("group.streams.task.offset.interval.ms"),
        "60000",
        true,
        int(1, Min(Fixed(15_000))),
        "How often this streams group's members report task offsets.",
    ),
    def!(
        "streams.num.warmup.replicas",
        Int,
        Some("group.streams.num.warmup.replicas"),
        "2",
        true,
        int(0, Max(Fixed(20))),
        "Warm-up replicas of this streams group.",
    ),
    def!(
        "streams.rack.aware.assignment.tags",
        List,
        Some("group.streams.rack.aware.assignment.tags"),
        "",
        false,
        Rule::DistinctList,
        "Client tags this streams group's assignor spreads standby replicas over.",
    ),
    def!(
        "streams.acceptable.recovery.lag",
        Long,
        Some("group.streams.acceptable.recovery.lag"),
        "10000",
        true,
        Rule::Long { floor: 0 },
        "How far behind a streams task may be and still count as caught up.",
    ),
    def!(
        "streams.assignor.name",
        String,
        Some("group.streams.assignors"),
        "sticky",
        false,
        Rule::StreamsAssignor,
        "The task assignor of this streams group.",
    ),
    def!(
        "errors.deadletterqueue.topic.name",
        String,
        None,
        "",
        false,
        Rule::DeadLetterTopic,
        "The topic this share group's undeliverable records are copied to; empty for none.",
    ),
    def!(
        "errors.deadletterqueue.copy.record.enable",
        Boolean,
        None,
        "false",
        false,
        Rule::Bool,
        "Whether a dead-lettered record of this share group is copied whole, or only described in \
         headers.",
    ),
];

/// (session key, heartbeat key): a group's session timeout must exceed its heartbeat
/// interval, each taken from the group or else from the broker.
const SESSION_ABOVE_HEARTBEAT: &[(&str, &str)] = &[
    (
        "consumer.session.timeout.ms",
        "consumer.heartbeat.interval.ms",
    ),
    ("share.session.timeout.ms", "share.heartbeat.interval.ms"),
    (
        "streams.session.timeout.ms",
        "streams.heartbeat.interval.ms",
    ),
];

/// The definition of `name`.
pub fn def(name: &str) -> Option<&'static GroupDef> {
    DEFS.iter().find(|d| d.name == name)
}

/// The broker's value for group key `d` (its broker synonym's value, else Kafka's default)
/// and whether a broker key set it explicitly (STATIC_BROKER_CONFIG rather than
/// DEFAULT_CONFIG in DescribeConfigs).
pub fn broker_value(d: &GroupDef, config: &Config) -> (String, bool) {
    match d.broker_key.and_then(|k| config.group.get(k)) {
        Some((n, explicit)) => (n.to_string(), explicit),
        None => (d.default.to_string(), false),
    }
}

/// Checks a group's whole set of overrides (after a change) against the broker's
/// configuration; returns them normalised, or the INVALID_CONFIG message.
pub fn validate(
    overrides: &BTreeMap<String, String>,
    config: &Config,
) -> Result<BTreeMap<String, String>, String> {
    if let Some(unknown) = overrides.keys().find(|k| def(k).is_none()) {
        return Err(format!("Unknown group config name: {unknown}"));
    }
    let mut normalised = BTreeMap::new();
    for (name, value) in overrides {
        let d = def(name).expect("names checked above");
        let v = check_type(d, value)
            .map_err(|why| format!("Invalid value {value} for configuration {name}: {why}"))?;
        normalised.insert(name.clone(), v);
    }
    for d in DEFS {
        if let Some(v) = normalised.get(d.name) {
            check_bounds(d, v, config)?;
        }
    }
    for &(session, heartbeat) in SESSION_ABOVE_HEARTBEAT {
        if !normalised.contains_key(session) && !normalised.contains_key(heartbeat) {
            continue;
        }
        let effective = |name: &str| -> i64 {
            let d = def(name).expect("a group key");
            let v = normalised
                .get(name)
                .cloned()
                .unwrap_or_else(|| broker_value(d, config).0);
            v.parse().expect("validated integer")
        };
        if effective(session) <= effective(heartbeat) {
            return Err(format!("{session} must be greater than {heartbeat}"));
        }
    }
    Ok(normalised)
}

/// `share.auto.offset.reset`: where a share group starts in a partition it has no state for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareAutoOffsetReset {
    /// At the log end offset (Kafka's default).
    Latest,
    /// At the log start offset.
    Earliest,
    /// At the first record with a timestamp at or after now minus this many milliseconds.
    ByDuration(i64),
}

impl ShareAutoOffsetReset {
    /// Parses Kafka's spelling: `latest`, `earliest`, `by_duration:<ISO-8601 duration>`
    /// (`PnDTnHnMn.nS`, not negative; fractions of a millisecond are dropped).
    pub fn parse(value: &str) -> Option<ShareAutoOffsetReset> {
        match value.trim() {
            "latest" => Some(ShareAutoOffsetReset::Latest),
            "earliest" => Some(ShareAutoOffsetReset::Earliest),
            v => {
                let ms = iso8601_duration_ms(v.strip_prefix("by_duration:")?)?;
                (ms >= 0).then_some(ShareAutoOffsetReset::ByDuration(ms))
            }
        }
    }
}

/// `share.isolation.level`: which transactional records a share group is delivered.
// Read by the share-group coordinator (KIP-932), which is being wired in; tests use it now.
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareIsolationLevel {
    /// Every record, including those of aborted transactions (Kafka's default).
    ReadUncommitted,
    /// Only records of committed transactions (and non-transactional ones).
    ReadCommitted,
}

/// A group's effective settings: its overrides over the broker's values. Every field is one
/// key of [`DEFS`]; the consumer and share fields are what their coordinators apply.
// Read by the share-group coordinator (KIP-932), which is being wired in; tests use it now.
#[allow(dead_code)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSettings {
    /// `consumer.*`: KIP-848 consumer groups.
    pub consumer: ConsumerGroupSettings,
    /// `share.*` and `errors.deadletterqueue.*`: KIP-932 share groups.
    pub share: ShareGroupSettings,
    /// `streams.*`: stored for Kafka Streams groups (KIP-1071), which this broker does not run.
    pub streams: StreamsGroupSettings,
}

/// A consumer group's settings.
// Read by the share-group coordinator (KIP-932), which is being wired in; tests use it now.
#[allow(dead_code)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupSettings {
    /// `consumer.session.timeout.ms`.
    pub session_timeout_ms: i32,
    /// `consumer.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: i32,
    /// `consumer.assignment.interval.ms`.
    pub assignment_interval_ms: i32,
    /// `consumer.assignor.offload.enable` (internal).
    pub assignor_offload_enable: bool,
}

/// A share group's settings.
// Read by the share-group coordinator (KIP-932), which is being wired in; tests use it now.
#[allow(dead_code)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareGroupSettings {
    /// `share.session.timeout.ms`.
    pub session_timeout_ms: i32,
    /// `share.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: i32,
    /// `share.record.lock.duration.ms`.
    pub record_lock_duration_ms: i32,
    /// `share.delivery.count.limit`.
    pub delivery_count_limit: i32,
    /// `share.partition.max.record.locks`.
    pub partition_max_record_locks: i32,
    /// `share.auto.offset.reset`.
    pub auto_offset_reset: ShareAutoOffsetReset,
    /// `share.isolation.level`.
    pub isolation_level: ShareIsolationLevel,
    /// `share.renew.acknowledge.enable`.
    pub renew_acknowledge_enable: bool,
    /// `share.assignment.interval.ms`.
    pub assignment_interval_ms: i32,
    /// `share.assignor.offload.enable` (internal).
    pub assignor_offload_enable: bool,
    /// `errors.deadletterqueue.topic.name`; `None` when empty (no dead-letter queue).
    pub dead_letter_topic: Option<String>,
    /// `errors.deadletterqueue.copy.record.enable`.
    pub dead_letter_copy_record: bool,
}

/// A streams group's settings (stored and described; no streams coordinator uses them yet).
// Read by the share-group coordinator (KIP-932), which is being wired in; tests use it now.
#[allow(dead_code)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamsGroupSettings {
    /// `streams.session.timeout.ms`.
    pub session_timeout_ms: i32,
    /// `streams.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: i32,
    /// `streams.num.standby.replicas`.
    pub num_standby_replicas: i32,
    /// `streams.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay_ms: i32,
    /// `streams.assignment.interval.ms`.
    pub assignment_interval_ms: i32,
    /// `streams.assignor.offload.enable` (internal).
    pub assignor_offload_enable: bool,
    /// `streams.task.offset.interval.ms` (internal).
    pub task_offset_interval_ms: i32,
    /// `streams.num.warmup.replicas` (internal).
    pub num_warmup_replicas: i32,
    /// `streams.rack.aware.assignment.tags`.
    pub rack_aware_assignment_tags: Vec<String>,
    /// `streams.acceptable.recovery.lag` (internal).
    pub acceptable_recovery_lag: i64,
    /// `streams.assignor.name`.
    pub assignor_name: String,
}

/// The settings of `group_id`: its overrides in `image` over `config`'s values. A group with
/// no overrides (or none yet: it need not exist) gets the broker's values. An override that
/// does not parse (it was validated when written, so only a foreign log can hold one) counts
/// as unset.
// Read by the share-group coordinator (KIP-932), which is being wired in; tests use it now.
#[allow(dead_code)]
pub fn group_settings(image: &ClusterImage, config: &Config, group_id: &str) -> GroupSettings {
    let overrides = image.group_configs(group_id);
    let text = |name: &str| -> String {
        let d = def(name).expect("a group key");
        overrides
            .and_then(|o| o.get(name))
            .and_then(|v| check_type(d, v).ok())
            .unwrap_or_else(|| broker_value(d, config).0)
    };
    let int = |name: &str| text(name).parse::<i32>().expect("an int group key");
    let long = |name: &str| text(name).parse::<i64>().expect("a long group key");
    let flag = |name: &str| text(name) == "true";
    GroupSettings {
        consumer: ConsumerGroupSettings {
            session_timeout_ms: int("consumer.session.timeout.ms"),
            heartbeat_interval_ms: int("consumer.heartbeat.interval.ms"),
            assignment_interval_ms: int("consumer.assignment.interval.ms"),
            assignor_offload_enable: flag("consumer.assignor.offload.enable"),
        },
        share: ShareGroupSettings {
            session_timeout_ms: int("share.session.timeout.ms"),
            heartbeat_interval_ms: int("share.heartbeat.interval.ms"),
            record_lock_duration_ms: int("share.record.lock.duration.ms"),
            delivery_count_limit: int("share.delivery.count.limit"),
            partition_max_record_locks: int("share.partition.max.record.locks"),
            auto_offset_reset: ShareAutoOffsetReset::parse(&text("share.auto.offset.reset"))
                .expect("validated"),
            isolation_level: match text("share.isolation.level").as_str() {
                "read_committed" => ShareIsolationLevel::ReadCommitted,
                _ => ShareIsolationLevel::ReadUncommitted,
            },
            renew_acknowledge_enable: flag("share.renew.acknowledge.enable"),
            assignment_interval_ms: int("share.assignment.interval.ms"),
            assignor_offload_enable: flag("share.assignor.offload.enable"),
            dead_letter_topic: Some(text("errors.deadletterqueue.topic.name"))
                .filter(|t| !t.is_empty()),
            dead_letter_copy_record: flag("errors.deadletterqueue.copy.record.enable"),
        },
        streams: StreamsGroupSettings {
            session_timeout_ms: int("streams.session.timeout.ms"),
            heartbeat_interval_ms: int("streams.heartbeat.interval.ms"),
            num_standby_replicas: int("streams.num.standby.replicas"),
            initial_rebalance_delay_ms: int("streams.initial.rebalance.delay.ms"),
            assignment_interval_ms: int("streams.assignment.interval.ms"),
            assignor_offload_enable: flag("streams.assignor.offload.enable"),
            task_offset_interval_ms: int("streams.task.offset.interval.ms"),
            num_warmup_replicas: int("streams.num.warmup.replicas"),
            rack_aware_assignment_tags: list(&text("streams.rack.aware.assignment.tags")),
            acceptable_recovery_lag: long("streams.acceptable.recovery.lag"),
            assignor_name: text("streams.assignor.name"),
        },
    }
}

/// The type-level check of one value; returns it normalised, or why it is refused (the
/// second half of Kafka's "Invalid value V for configuration K: ..." message).
fn check_type(d: &GroupDef, value: &str) -> Result<String, String> {
    let v = value.trim();
    match d.rule {
        Rule::Int { floor, .. } => match v.parse::<i32>() {
            Ok(n) if n >= floor => Ok(n.to_string()),
            Ok(_) => Err(format!("Value must be at least {floor}")),
            Err(_) => Err("Not a number of type INT".into()),
        },
        Rule::Long { floor } => match v.parse::<i64>() {
            Ok(n) if n >= floor => Ok(n.to_string()),
            Ok(_) => Err(format!("Value must be at least {floor}")),
            Err(_) => Err("Not a number of type LONG".into()),
        },
        Rule::Bool => match v.to_ascii_lowercase().as_str() {
            b @ ("true" | "false") => Ok(b.to_string()),
            _ => Err("Expected value to be either true or false".into()),
        },
        Rule::AutoOffsetReset => match ShareAutoOffsetReset::parse(v) {
            Some(_) => Ok(v.to_string()),
            None => Err(
                "The value must be either 'earliest', 'latest' or of the format \
                 'by_duration:<PnDTnHnMn.nS>'."
                    .into(),
            ),
        },
        Rule::OneOf(allowed) if allowed.contains(&v) => Ok(v.to_string()),
        Rule::OneOf(allowed) => Err(format!("String must be one of: {}", allowed.join(", "))),
        Rule::DistinctList => {
            let items = list(v);
            let mut sorted = items.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if sorted.len() != items.len() {
                return Err("must not contain duplicate tag keys".into());
            }
            Ok(items.join(","))
        }
        Rule::StreamsAssignor | Rule::DeadLetterTopic => Ok(v.to_string()),
    }
}

/// The checks of a normalised value against the broker's configuration.
fn check_bounds(d: &GroupDef, v: &str, config: &Config) -> Result<(), String> {
    let name = d.name;
    match d.rule {
        Rule::Int { bounds, .. } => {
            let n: i32 = v.parse().expect("normalised integer");
            let limit = |l: Limit| match l {
                Limit::Fixed(n) => n,
                Limit::Broker(key) => config.group.get(key).expect("a broker group key").0,
            };
            match bounds {
                Unbounded => Ok(()),
                Range(lo, hi) if (limit(lo)..=limit(hi)).contains(&n) => Ok(()),
                Range(lo, hi) => Err(format!(
                    "{name} must be in the range {} to {} inclusive.",
                    limit(lo),
                    limit(hi)
                )),
                Max(hi) if n <= limit(hi) => Ok(()),
                Max(hi) => Err(format!(
                    "{name} must be less than or equal to {}",
                    limit(hi)
                )),
                Min(lo) if n >= limit(lo) => Ok(()),
                Min(lo) => Err(format!(
                    "{name} must be greater than or equal to {}",
                    limit(lo)
                )),
            }
        }
        Rule::StreamsAssignor if v != "sticky" => Err(format!(
            "{name} '{v}' is not a registered task assignor. Registered assignors are: [sticky]."
        )),
        Rule::DeadLetterTopic if v.starts_with("__") => {
            Err(format!("{name}: DLQ topic name must not start with '__'"))
        }
        _ => Ok(()),
    }
}

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Milliseconds of an ISO-8601 duration as Java's `Duration.parse` reads it:
/// `[+-]P[nD][T[nH][nM][n[.f]S]]`, letters in any case, each number optionally signed, at
/// least one part, fractions of seconds up to nine digits. `None` if it does not parse or
/// overflows.
fn iso8601_duration_ms(text: &str) -> Option<i64> {
    let upper = text.to_ascii_uppercase();
    let (negate, rest) = match upper.as_bytes().first()? {
        b'-' => (true, &upper[1..]),
        b'+' => (false, &upper[1..]),
        _ => (false, upper.as_str()),
    };
    let rest = rest.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((date, time)) if !time.is_empty() => (date, Some(time)),
        Some(_) => return None,
        None => (rest, None),
    };
    let mut total: i64 = 0;
    let mut parts = 0;
    let mut add = |number: &str, unit_ms: i64| -> Option<()> {
        let n: i64 = number.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit_ms)?)?;
        parts += 1;
        Some(())
    };
    if !date.is_empty() {
        add(date.strip_suffix('D')?, 86_400_000)?;
    }
    if let Some(mut time) = time {
        for (letter, unit_ms) in [('H', 3_600_000), ('M', 60_000)] {
            if let Some((number, after)) = time.split_once(letter) {
                add(number, unit_ms)?;
                time = after;
            }
        }
        if !time.is_empty() {
            let seconds = time.strip_suffix('S')?;
            let (whole, fraction) = seconds
                .split_once(['.', ','])
                .map_or((seconds, None), |(w, f)| (w, Some(f)));
            add(whole, 1_000)?;
            if let Some(f) = fraction {
                if f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let millis: i64 = format!("{f:0<3}")[..3].parse().ok()?;
                let negative_seconds = whole.starts_with('-');
                total = total.checked_add(if negative_seconds { -millis } else { millis })?;
            }
        }
    }
    if parts == 0 {
        return None;
    }
    Some(if negate { total.checked_neg()? } else { total })
}

#[cfg(test)]
mod tests;
