"""Group configs (Kafka's GROUP config resource, KIP-848/KIP-932) through confluent-kafka's
AdminClient: set with IncrementalAlterConfigs and AlterConfigs, read back with DescribeConfigs
(values and sources), DELETE back to the broker's value, values outside the broker's
group.share.* / group.consumer.* bounds and unknown keys refused with INVALID_CONFIG and
nothing changed, and the values kept across a broker restart. A group needs no members for its
configs to be set. Runs against Apache Kafka 4.4 too (TEST_BROKER=kafka), with the same
assertions; Kafka applies config changes asynchronously, hence the polling."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource, ResourceType)

from test_configs import OP_TIMEOUT_S, admin, error_name, eventually

GROUP_SOURCE = ConfigSource.GROUP_CONFIG.value  # DYNAMIC_GROUP_CONFIG, 8
DEFAULT_SOURCE = ConfigSource.DEFAULT_CONFIG.value
STATIC_SOURCE = ConfigSource.STATIC_BROKER_CONFIG.value

# Kafka 4.4's group configs that DescribeConfigs lists (its internal ones are not listed).
PUBLIC_KEYS = {
    "consumer.session.timeout.ms", "consumer.heartbeat.interval.ms",
    "consumer.assignment.interval.ms", "share.session.timeout.ms", "share.heartbeat.interval.ms",
    "share.record.lock.duration.ms", "share.delivery.count.limit",
    "share.partition.max.record.locks", "share.auto.offset.reset", "share.isolation.level",
    "share.renew.acknowledge.enable", "share.assignment.interval.ms",
    "streams.session.timeout.ms", "streams.heartbeat.interval.ms", "streams.num.standby.replicas",
    "streams.initial.rebalance.delay.ms", "streams.assignment.interval.ms",
    "streams.rack.aware.assignment.tags", "streams.assignor.name",
    "errors.deadletterqueue.topic.name", "errors.deadletterqueue.copy.record.enable",
}

# Kafka's defaults for a broker that sets none of the group keys.
DEFAULTS = {
    "share.auto.offset.reset": "latest",
    "share.record.lock.duration.ms": "30000",
    "consumer.session.timeout.ms": "45000",
    "share.isolation.level": "read_uncommitted",
    "share.delivery.count.limit": "5",
    "share.session.timeout.ms": "45000",
}


@pytest.fixture
def group(request):
    return f"gcfg-{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"


def describe(a: AdminClient, group: str) -> dict:
    res = ConfigResource(ResourceType.GROUP, group)
    return a.describe_configs([res])[res].result(OP_TIMEOUT_S)


def incremental(a: AdminClient, group: str, entries, validate_only=False):
    res = ConfigResource(ResourceType.GROUP, group, incremental_configs=entries)
    return a.incremental_alter_configs([res], validate_only=validate_only)[res].result(
        OP_TIMEOUT_S)


def op(name, value, kind=AlterConfigOpType.SET):
    return ConfigEntry(name, value, incremental_operation=kind)


def value_and_source(got: dict, key: str):
    return got[key].value, got[key].source


def test_defaults_of_a_group_nobody_configured(broker, group):
    got = describe(admin(broker), group)
    assert set(got) == PUBLIC_KEYS, set(got) ^ PUBLIC_KEYS
    for key, value in DEFAULTS.items():
        assert value_and_source(got, key) == (value, DEFAULT_SOURCE), (key, got[key])
    for entry in got.values():
        assert not entry.is_read_only, entry
        assert not entry.is_sensitive, entry


def test_set_read_back_and_delete(broker, group):
    a = admin(broker)
    incremental(a, group, [op("share.auto.offset.reset", "earliest"),
                           op("share.record.lock.duration.ms", "20000"),
                           op("consumer.session.timeout.ms", "50000")])

    def set_applied():
        got = describe(a, group)
        assert value_and_source(got, "share.auto.offset.reset") == ("earliest", GROUP_SOURCE)
        assert value_and_source(got, "share.record.lock.duration.ms") == ("20000", GROUP_SOURCE)
        assert value_and_source(got, "consumer.session.timeout.ms") == ("50000", GROUP_SOURCE)
        assert value_and_source(got, "share.isolation.level") == ("read_uncommitted",
                                                                  DEFAULT_SOURCE)
        assert not got["share.record.lock.duration.ms"].is_read_only
        assert set(got) == PUBLIC_KEYS
    eventually(set_applied)

    # Another group is untouched.
    other = describe(a, group + "-other")
    assert value_and_source(other, "share.auto.offset.reset") == ("latest", DEFAULT_SOURCE)

    incremental(a, group, [op("share.auto.offset.reset", None, AlterConfigOpType.DELETE),
                           op("share.isolation.level", "read_committed")])

    def delete_applied():
        got = describe(a, group)
        assert value_and_source(got, "share.auto.offset.reset") == ("latest", DEFAULT_SOURCE)
        assert value_and_source(got, "share.isolation.level") == ("read_committed",
                                                                  GROUP_SOURCE)
        assert got["share.record.lock.duration.ms"].value == "20000", "an untouched key changed"
    eventually(delete_applied)

    incremental(a, group, [op(k, None, AlterConfigOpType.DELETE) for k in
                           ("share.record.lock.duration.ms", "consumer.session.timeout.ms",
                            "share.isolation.level")])

    def all_defaults():
        got = describe(a, group)
        for key, value in DEFAULTS.items():
            assert value_and_source(got, key) == (value, DEFAULT_SOURCE), (key, got[key])
    eventually(all_defaults)


def test_by_duration_reset_and_a_consistent_heartbeat(broker, group):
    a = admin(broker)
    incremental(a, group, [op("share.auto.offset.reset", "by_duration:PT1H"),
                           op("consumer.session.timeout.ms", "45000"),
                           op("consumer.heartbeat.interval.ms", "15000"),
                           op("share.delivery.count.limit", "10")])

    def applied():
        got = describe(a, group)
        assert got["share.auto.offset.reset"].value == "by_duration:PT1H"
        assert got["consumer.heartbeat.interval.ms"].value == "15000"
        assert got["share.delivery.count.limit"].value == "10"
    eventually(applied)


@pytest.mark.parametrize("name,value", [
    ("share.record.lock.duration.ms", "5000"),     # below group.share.min.record.lock.duration.ms
    ("share.record.lock.duration.ms", "60001"),    # above group.share.max.record.lock.duration.ms
    ("consumer.session.timeout.ms", "30000"),      # below group.consumer.min.session.timeout.ms
    ("consumer.heartbeat.interval.ms", "50000"),   # above group.consumer.max.heartbeat.interval.ms
    ("share.delivery.count.limit", "11"),
    ("share.heartbeat.interval.ms", "45000"),
    ("share.record.lock.duration.ms", "soon"),
    ("share.auto.offset.reset", "bogus"),
    ("share.auto.offset.reset", "by_duration:-PT1H"),
    ("share.isolation.level", "READ_COMMITTED"),
    ("share.renew.acknowledge.enable", "maybe"),
    ("no.such.group.config", "1"),
])
def test_bad_values_are_refused_and_change_nothing(broker, group, name, value):
    a = admin(broker)
    incremental(a, group, [op("share.session.timeout.ms", "50000")])
    eventually(lambda: _assert_eq(describe(a, group)["share.session.timeout.ms"].value, "50000"))
    with pytest.raises(KafkaException) as e:
        incremental(a, group, [op("share.session.timeout.ms", "55000"), op(name, value)])
    assert error_name(e) == "INVALID_CONFIG", e.value
    time.sleep(0.5)
    got = describe(a, group)
    assert got["share.session.timeout.ms"].value == "50000", "half of a refused change applied"


@pytest.mark.parametrize("kind", [AlterConfigOpType.APPEND, AlterConfigOpType.SUBTRACT])
def test_append_and_subtract_are_refused(broker, group, kind):
    with pytest.raises(KafkaException) as e:
        incremental(admin(broker), group, [op("share.auto.offset.reset", "earliest", kind)])
    assert error_name(e) == "INVALID_CONFIG", e.value


def test_validate_only_changes_nothing(broker, group):
    a = admin(broker)
    incremental(a, group, [op("share.isolation.level", "read_committed")], validate_only=True)
    with pytest.raises(KafkaException) as e:
        incremental(a, group, [op("share.record.lock.duration.ms", "1")], validate_only=True)
    assert error_name(e) == "INVALID_CONFIG", e.value
    time.sleep(1)
    got = describe(a, group)
    assert value_and_source(got, "share.isolation.level") == ("read_uncommitted", DEFAULT_SOURCE)


def test_legacy_alter_configs_replaces_the_whole_set(broker, group):
    a = admin(broker)
    incremental(a, group, [op("share.auto.offset.reset", "earliest"),
                           op("share.record.lock.duration.ms", "20000")])
    eventually(lambda: _assert_eq(describe(a, group)["share.auto.offset.reset"].value,
                                  "earliest"))
    res = ConfigResource(ResourceType.GROUP, group,
                         set_config={"share.isolation.level": "read_committed"})
    a.alter_configs([res])[res].result(OP_TIMEOUT_S)

    def replaced():
        got = describe(a, group)
        assert value_and_source(got, "share.isolation.level") == ("read_committed",
                                                                  GROUP_SOURCE)
        assert value_and_source(got, "share.auto.offset.reset") == ("latest", DEFAULT_SOURCE)
        assert value_and_source(got, "share.record.lock.duration.ms") == ("30000",
                                                                          DEFAULT_SOURCE)
    eventually(replaced)


BOUNDS = {
    "group.share.min.record.lock.duration.ms": "1000",
    "group.share.record.lock.duration.ms": "40000",
    "group.share.delivery.count.limit": "7",
}


def test_configs_follow_the_brokers_bounds_and_survive_a_restart(broker_factory):
    """A broker with lowered bounds: a group value Kafka's defaults would refuse is accepted,
    unset keys report the broker's own value as a static broker config, and every value set
    is still there after the broker restarts."""
    b = broker_factory()
    b.properties = dict(BOUNDS)
    b.start()
    a = admin(b)
    group = f"gcfg-restart-{uuid.uuid4().hex[:8]}"
    got = describe(a, group)
    assert value_and_source(got, "share.record.lock.duration.ms") == ("40000", STATIC_SOURCE)
    assert value_and_source(got, "share.delivery.count.limit") == ("7", STATIC_SOURCE)
    assert value_and_source(got, "share.session.timeout.ms") == ("45000", DEFAULT_SOURCE)
    with pytest.raises(KafkaException) as e:
        incremental(a, group, [op("share.record.lock.duration.ms", "999")])
    assert error_name(e) == "INVALID_CONFIG", e.value
    incremental(a, group, [op("share.record.lock.duration.ms", "5000"),
                           op("share.auto.offset.reset", "earliest"),
                           op("consumer.session.timeout.ms", "55000")])
    want = {"share.record.lock.duration.ms": "5000", "share.auto.offset.reset": "earliest",
            "consumer.session.timeout.ms": "55000"}

    def applied(admin_client):
        got = describe(admin_client, group)
        for key, value in want.items():
            assert value_and_source(got, key) == (value, GROUP_SOURCE), (key, got[key])
        assert value_and_source(got, "share.delivery.count.limit") == ("7", STATIC_SOURCE)
    eventually(lambda: applied(a))

    b.stop()
    b.start()
    again = admin(b)
    eventually(lambda: applied(again), timeout_s=60)


def test_broker_lists_the_share_group_keys(broker):
    a = admin(broker)
    broker_id = next(iter(a.list_topics(timeout=OP_TIMEOUT_S).brokers))
    res = ConfigResource(ResourceType.BROKER, str(broker_id))
    got = a.describe_configs([res])[res].result(OP_TIMEOUT_S)
    for key, value in {
        "group.share.session.timeout.ms": "45000",
        "group.share.heartbeat.interval.ms": "5000",
        "group.share.max.size": "200",
        "group.share.record.lock.duration.ms": "30000",
        "group.share.min.record.lock.duration.ms": "15000",
        "group.share.max.record.lock.duration.ms": "60000",
        "group.share.delivery.count.limit": "5",
        "group.share.partition.max.record.locks": "2000",
        "group.share.max.share.sessions": "2000",
        "group.consumer.min.session.timeout.ms": "45000",
        "group.consumer.max.heartbeat.interval.ms": "15000",
        "share.coordinator.state.topic.num.partitions": "50",
        "share.coordinator.snapshot.update.records.per.snapshot": "500",
    }.items():
        assert got[key].value == value, (key, got[key])


def _assert_eq(a, b):
    assert a == b, (a, b)
