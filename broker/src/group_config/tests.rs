use super::*;
use millrace_replication::metadata::{ConfigRecord, ConfigResourceType, MetadataRecord};

fn config(text: &str) -> Config {
    crate::config::tests::apply(text).expect("a valid test configuration")
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn check(pairs: &[(&str, &str)], c: &Config) -> Result<BTreeMap<String, String>, String> {
    validate(&map(pairs), c)
}

#[test]
fn the_keys_are_kafka_4_4s() {
    let names: Vec<&str> = DEFS.iter().map(|d| d.name).collect();
    assert_eq!(names.len(), 27);
    let described: Vec<&str> = DEFS
        .iter()
        .filter(|d| !d.internal)
        .map(|d| d.name)
        .collect();
    assert_eq!(described.len(), 21);
    for name in [
        "consumer.session.timeout.ms",
        "consumer.heartbeat.interval.ms",
        "share.session.timeout.ms",
        "share.heartbeat.interval.ms",
        "share.record.lock.duration.ms",
        "share.delivery.count.limit",
        "share.partition.max.record.locks",
        "share.auto.offset.reset",
        "share.isolation.level",
        "streams.rack.aware.assignment.tags",
        "errors.deadletterqueue.topic.name",
    ] {
        assert!(described.contains(&name), "{name}");
    }
    for d in DEFS {
        // Every default passes its own type check unchanged.
        assert_eq!(
            check_type(d, d.default).as_deref(),
            Ok(d.default),
            "{}",
            d.name
        );
    }
}

#[test]
fn valid_overrides_are_accepted_and_normalised() {
    let c = Config::default();
    let got = check(
        &[
            ("share.auto.offset.reset", " earliest "),
            ("share.record.lock.duration.ms", " 20000"),
            ("consumer.session.timeout.ms", "50000"),
            ("share.isolation.level", "read_committed"),
            ("share.renew.acknowledge.enable", "FALSE"),
            ("streams.rack.aware.assignment.tags", "zone, rack"),
            ("consumer.assignor.offload.enable", "false"),
        ],
        &c,
    )
    .unwrap();
    assert_eq!(got["share.auto.offset.reset"], "earliest");
    assert_eq!(got["share.record.lock.duration.ms"], "20000");
    assert_eq!(got["share.renew.acknowledge.enable"], "false");
    assert_eq!(got["streams.rack.aware.assignment.tags"], "zone,rack");
    assert_eq!(check(&[], &c).unwrap(), BTreeMap::new());
}

#[test]
fn unknown_names_and_bad_types_are_refused_as_kafka_words_them() {
    let c = Config::default();
    let err = check(&[("nope.key", "1"), ("share.isolation.level", "x")], &c).unwrap_err();
    assert_eq!(err, "Unknown group config name: nope.key");
    for (key, value, why) in [
        (
            "share.record.lock.duration.ms",
            "abc",
            "Not a number of type INT",
        ),
        (
            "share.record.lock.duration.ms",
            "2147483648",
            "Not a number of type INT",
        ),
        (
            "share.record.lock.duration.ms",
            "",
            "Not a number of type INT",
        ),
        (
            "share.record.lock.duration.ms",
            "999",
            "Value must be at least 1000",
        ),
        (
            "share.isolation.level",
            "READ_COMMITTED",
            "String must be one of",
        ),
        (
            "share.renew.acknowledge.enable",
            "maybe",
            "either true or false",
        ),
        (
            "share.auto.offset.reset",
            "EARLIEST",
            "by_duration:<PnDTnHnMn.nS>",
        ),
        (
            "streams.acceptable.recovery.lag",
            "-1",
            "Value must be at least 0",
        ),
        ("streams.rack.aware.assignment.tags", "a,b,a", "duplicate"),
    ] {
        let err = check(&[(key, value)], &c).unwrap_err();
        assert!(
            err.starts_with(&format!("Invalid value {value} for configuration {key}: "))
                && err.contains(why),
            "{key}={value}: {err}"
        );
    }
}

#[test]
fn integers_must_lie_within_the_brokers_bounds() {
    let c = Config::default();
    for (key, value, message) in [
        (
            "share.record.lock.duration.ms",
            "5000",
            "share.record.lock.duration.ms must be in the range 15000 to 60000 inclusive.",
        ),
        (
            "share.record.lock.duration.ms",
            "60001",
            "share.record.lock.duration.ms must be in the range 15000 to 60000 inclusive.",
        ),
        (
            "consumer.session.timeout.ms",
            "44999",
            "consumer.session.timeout.ms must be in the range 45000 to 60000 inclusive.",
        ),
        (
            "consumer.heartbeat.interval.ms",
            "50000",
            "consumer.heartbeat.interval.ms must be in the range 5000 to 15000 inclusive.",
        ),
        (
            "share.delivery.count.limit",
            "11",
            "share.delivery.count.limit must be in the range 2 to 10 inclusive.",
        ),
        (
            "share.partition.max.record.locks",
            "4001",
            "share.partition.max.record.locks must be in the range 100 to 4000 inclusive.",
        ),
        (
            "share.session.timeout.ms",
            "60001",
            "share.session.timeout.ms must be in the range 45000 to 60000 inclusive.",
        ),
        (
            "share.heartbeat.interval.ms",
            "4999",
            "share.heartbeat.interval.ms must be in the range 5000 to 15000 inclusive.",
        ),
        (
            "streams.num.standby.replicas",
            "3",
            "streams.num.standby.replicas must be less than or equal to 2",
        ),
        (
            "streams.task.offset.interval.ms",
            "14999",
            "streams.task.offset.interval.ms must be greater than or equal to 15000",
        ),
        (
            "streams.assignor.name",
            "nope",
            "streams.assignor.name 'nope' is not a registered task assignor.",
        ),
        (
            "errors.deadletterqueue.topic.name",
            "__dlq",
            "DLQ topic name must not start with '__'",
        ),
    ] {
        let err = check(&[(key, value)], &c).unwrap_err();
        assert!(err.contains(message), "{key}={value}: {err}");
    }
    // Both ends are inclusive.
    for (key, value) in [
        ("share.record.lock.duration.ms", "15000"),
        ("share.record.lock.duration.ms", "60000"),
        ("share.delivery.count.limit", "2"),
        ("share.delivery.count.limit", "10"),
    ] {
        check(&[(key, value)], &c).unwrap_or_else(|e| panic!("{key}={value}: {e}"));
    }
    // The bounds are the broker's: lowered there, the same value is accepted.
    let lowered = config(
        "group.share.min.record.lock.duration.ms=1000\ngroup.share.record.lock.duration.ms=5000\n",
    );
    check(&[("share.record.lock.duration.ms", "5000")], &lowered).unwrap();
    let err = check(&[("share.record.lock.duration.ms", "999")], &lowered).unwrap_err();
    assert!(err.contains("at least 1000"), "{err}");
}

#[test]
fn session_timeout_must_exceed_heartbeat_counting_broker_values() {
    let c = config(
        "group.share.max.heartbeat.interval.ms=50000\n\
         group.consumer.max.heartbeat.interval.ms=50000\n",
    );
    let err = check(&[("share.heartbeat.interval.ms", "45000")], &c).unwrap_err();
    assert_eq!(
        err,
        "share.session.timeout.ms must be greater than share.heartbeat.interval.ms"
    );
    let err = check(
        &[
            ("consumer.session.timeout.ms", "46000"),
            ("consumer.heartbeat.interval.ms", "46000"),
        ],
        &c,
    )
    .unwrap_err();
    assert!(
        err.contains("consumer.session.timeout.ms must be greater"),
        "{err}"
    );
    check(
        &[
            ("consumer.session.timeout.ms", "50000"),
            ("consumer.heartbeat.interval.ms", "46000"),
        ],
        &c,
    )
    .unwrap();
}

#[test]
fn share_auto_offset_reset_parses_kafkas_forms() {
    use ShareAutoOffsetReset::*;
    for (text, want) in [
        ("latest", Some(Latest)),
        ("earliest", Some(Earliest)),
        (" earliest ", Some(Earliest)),
        ("by_duration:PT0S", Some(ByDuration(0))),
        ("by_duration:PT1H", Some(ByDuration(3_600_000))),
        ("by_duration:pt1h", Some(ByDuration(3_600_000))),
        ("by_duration:P1D", Some(ByDuration(86_400_000))),
        ("by_duration:PT1.5S", Some(ByDuration(1_500))),
        ("by_duration:PT0.0015S", Some(ByDuration(1))),
        ("by_duration:P1DT2H3M4.5S", Some(ByDuration(93_784_500))),
        ("by_duration:PT90M", Some(ByDuration(5_400_000))),
        ("by_duration:PT1H-30M", Some(ByDuration(1_800_000))),
        ("by_duration:-PT1H", None),
        ("by_duration:PT-1H", None),
        ("by_duration:", None),
        ("by_duration:P", None),
        ("by_duration:PT", None),
        ("by_duration:P1W", None),
        ("by_duration:P1Y", None),
        ("by_duration:PT1.S", None),
        ("by_duration:PTxS", None),
        ("by_duration:P999999999999999D", None),
        ("BY_DURATION:PT1H", None),
        ("EARLIEST", None),
        ("none", None),
        ("", None),
    ] {
        assert_eq!(ShareAutoOffsetReset::parse(text), want, "{text:?}");
    }
}

fn image_with(group: &str, pairs: &[(&str, &str)]) -> ClusterImage {
    let mut image = ClusterImage::default();
    for (offset, (k, v)) in pairs.iter().enumerate() {
        let record = MetadataRecord::Config(ConfigRecord {
            resource_type: ConfigResourceType::Group,
            resource_name: group.into(),
            name: k.to_string(),
            value: Some(v.to_string()),
        });
        image.apply(&record, offset as i64).unwrap();
    }
    image
}

#[test]
fn settings_take_the_groups_overrides_over_the_brokers_values() {
    let c = config(
        "group.share.record.lock.duration.ms=40000\ngroup.share.delivery.count.limit=7\n\
         group.consumer.heartbeat.interval.ms=6000\n",
    );
    let image = image_with(
        "g",
        &[
            ("share.record.lock.duration.ms", "20000"),
            ("share.auto.offset.reset", "by_duration:PT10M"),
            ("share.isolation.level", "read_committed"),
            ("consumer.session.timeout.ms", "50000"),
            ("errors.deadletterqueue.topic.name", "dlq"),
            ("streams.rack.aware.assignment.tags", "zone,rack"),
        ],
    );
    let s = group_settings(&image, &c, "g");
    assert_eq!(s.share.record_lock_duration_ms, 20_000);
    assert_eq!(s.share.delivery_count_limit, 7);
    assert_eq!(
        s.share.auto_offset_reset,
        ShareAutoOffsetReset::ByDuration(600_000)
    );
    assert_eq!(s.share.isolation_level, ShareIsolationLevel::ReadCommitted);
    assert_eq!(s.share.dead_letter_topic.as_deref(), Some("dlq"));
    assert_eq!(s.consumer.session_timeout_ms, 50_000);
    assert_eq!(s.consumer.heartbeat_interval_ms, 6_000);
    assert_eq!(s.streams.rack_aware_assignment_tags, ["zone", "rack"]);
    // Another group, existing or not, has only the broker's values.
    let other = group_settings(&image, &c, "other");
    assert_eq!(other.share.record_lock_duration_ms, 40_000);
    assert_eq!(other.share.auto_offset_reset, ShareAutoOffsetReset::Latest);
    assert_eq!(
        other.share.isolation_level,
        ShareIsolationLevel::ReadUncommitted
    );
    assert_eq!(other.share.dead_letter_topic, None);
    assert!(other.share.renew_acknowledge_enable);
    assert_eq!(other.streams.assignor_name, "sticky");
    assert_eq!(other.streams.acceptable_recovery_lag, 10_000);
    assert_eq!(other.consumer.session_timeout_ms, 45_000);
}

#[test]
fn an_override_that_does_not_parse_counts_as_unset() {
    let image = image_with("g", &[("share.record.lock.duration.ms", "soon")]);
    let s = group_settings(&image, &Config::default(), "g");
    assert_eq!(s.share.record_lock_duration_ms, 30_000);
}

#[test]
fn broker_values_say_whether_a_broker_key_set_them() {
    let c = config("group.share.record.lock.duration.ms=40000\n");
    let lock = def("share.record.lock.duration.ms").unwrap();
    assert_eq!(broker_value(lock, &c), ("40000".into(), true));
    assert_eq!(
        broker_value(lock, &Config::default()),
        ("30000".into(), false)
    );
    let reset = def("share.auto.offset.reset").unwrap();
    assert_eq!(broker_value(reset, &c), ("latest".into(), false));
    // A Kafka broker key this broker does not have: Kafka's default.
    let assignor = def("streams.assignor.name").unwrap();
    assert_eq!(broker_value(assignor, &c), ("sticky".into(), false));
}
