"""Topic administration sent to each node in turn takes effect on the whole cluster.

The requests are raw (cwire) so that each one goes to the node the test names; a broker that is
not the active controller must forward it (Kafka: KIP-590 forwarding) and answer only once the
change is committed. Visibility on the other nodes is then eventual (metadata propagation), so
the tests poll with a bound and record how long it took.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

import cwire as c
from cluster import wait_for

VISIBLE_S = 10.0  # bound on metadata propagation to every node after the answer


def everywhere(cluster, check, what: str) -> float:
    t0 = time.monotonic()
    wait_for(lambda: all(check(x) for x in cluster.running()), VISIBLE_S, what=what)
    return time.monotonic() - t0


def partition_count(node, topic) -> int | None:
    t = c.metadata(node.port, [topic]).topics.get(topic)
    if t is None or t.error != c.NONE:
        return None
    if any(p.leader < 0 for p in t.partitions.values()):
        return None
    return len(t.partitions)


def topic_absent(node, topic) -> bool:
    t = c.metadata(node.port, [topic]).topics.get(topic)
    return t is None or t.error == c.UNKNOWN_TOPIC_OR_PARTITION


def config_value(node, topic, key) -> str | None:
    err, cfg = c.describe_topic_configs(node.port, topic, [key])
    assert err == c.NONE, c.error_name(err)
    return cfg[key][0]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("first", [1, 2, 3])
def test_admin_requests_via_each_node_take_effect_everywhere(cluster, topic, first, observe):
    """CreateTopics via node `first`, IncrementalAlterConfigs via the next, CreatePartitions via
    the one after, DeleteTopics via `first` again; each seen by every node."""
    n = len(cluster.nodes)
    via = [cluster.node((first - 1 + k) % n + 1) for k in range(3)]

    res = c.create_topics(via[0].port, {topic: 3}, configs={"retention.ms": "3600000"})
    assert res == {topic: (c.NONE, None)}
    seen = {}
    seen["create"] = everywhere(cluster, lambda x: partition_count(x, topic) == 3,
                                f"{topic} created")
    assert all(config_value(x, topic, "retention.ms") == "3600000" for x in cluster.nodes)
    again = c.create_topics(via[1].port, {topic: 3})
    assert again[topic][0] == c.TOPIC_ALREADY_EXISTS, again

    err, msg = c.incremental_alter_topic_configs(via[1].port, topic,
                                                 {"retention.ms": "7200000",
                                                  "cleanup.policy": "compact"})
    assert err == c.NONE, (c.error_name(err), msg)
    seen["alter"] = everywhere(
        cluster, lambda x: config_value(x, topic, "retention.ms") == "7200000"
        and config_value(x, topic, "cleanup.policy") == "compact", "config altered")

    err, msg = c.create_partitions(via[2].port, topic, 5)
    assert err == c.NONE, (c.error_name(err), msg)
    seen["partitions"] = everywhere(cluster, lambda x: partition_count(x, topic) == 5,
                                    "partitions added")
    err, _ = c.create_partitions(via[0].port, topic, 4)
    assert err == c.INVALID_PARTITIONS, c.error_name(err)

    assert c.delete_topics(via[0].port, [topic]) == {topic: c.NONE}
    seen["delete"] = everywhere(cluster, lambda x: topic_absent(x, topic), "topic deleted")
    observe(f"answer -> visible on every node (s), first={first}",
            {k: round(v, 2) for k, v in seen.items()})
    assert c.delete_topics(via[1].port, [topic]) == {topic: c.UNKNOWN_TOPIC_OR_PARTITION}


@pytest.mark.timeout(180)
def test_created_topic_takes_produce_on_every_partition_at_once(cluster, topic, observe):
    """For each node: CreateTopics through it, then at once an acks=all idempotent producer
    bootstrapped on it writes to every partition; every record is acknowledged and read back."""
    partitions = 9
    for x in cluster.nodes:
        name = f"{topic}-{x.node_id}"
        res = c.create_topics(x.port, {name: partitions})
        assert res[name][0] == c.NONE, res
        t0 = time.monotonic()
        p = Producer({"bootstrap.servers": x.bootstrap, "acks": "all",
                      "enable.idempotence": True, "linger.ms": 0,
                      "message.timeout.ms": 30000})
        errors, acked = [], []

        def report(err, msg):
            (errors if err else acked).append((err, msg.partition(), msg.value()))
        for part in range(partitions):
            for k in range(3):
                p.produce(name, value=f"{part}-{k}".encode(), partition=part, on_delivery=report)
        assert p.flush(40) == 0
        took = time.monotonic() - t0
        assert errors == [], errors
        assert len(acked) == 3 * partitions
        observe(f"via node {x.node_id}: all partitions acked after CreateTopics answer (s)",
                round(took, 2))

        got = consume_all(cluster, name, partitions, 3 * partitions)
        assert sorted(got) == sorted((part, f"{part}-{k}".encode())
                                     for part in range(partitions) for k in range(3))


def consume_all(cluster, topic, partitions, expect, timeout_s=30.0):
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap(), "group.id": "unused",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        out = []
        deadline = time.monotonic() + timeout_s
        while len(out) < expect and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is not None and not m.error():
                out.append((m.partition(), m.value()))
        return out
    finally:
        consumer.close()
