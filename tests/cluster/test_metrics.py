"""Each node's GET /metrics in a three-node cluster: the replica-health gauges every Kafka
runbook pages on follow a broker's death and return, and a group's lag is right on its
coordinator for partitions led by other brokers (their end offsets asked over the wire).

millrace only: Apache Kafka serves these over JMX, not HTTP.
"""

from __future__ import annotations

import urllib.request

import pytest
from confluent_kafka import Consumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

import cwire as c
from cluster import SESSION_TIMEOUT_MS, cluster_kind, wait_for

pytestmark = pytest.mark.skipif(cluster_kind() != "millrace",
                                reason="millrace's HTTP metrics (Kafka has JMX)")


def scrape(node) -> dict[tuple[str, frozenset], float]:
    with urllib.request.urlopen(node.metrics_url, timeout=10) as resp:
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found, name: str, **labels) -> float | None:
    return found.get((name, frozenset(labels.items())))


def total(nodes, name: str) -> float:
    return sum(value(scrape(x), name) or 0 for x in nodes)


@pytest.mark.timeout(240)
def test_health_gauges_follow_a_broker_down_and_back(cluster, topic):
    nodes = cluster.running_brokers()
    # The internal topics come at the controller's first check after start-up; they count
    # below, so they must be there before the counting.
    wait_for(lambda: {"__consumer_offsets", "__transaction_state"}
             <= set(c.metadata(nodes[0].port, None).topics), 30, what="internal topics")
    cluster.create_topic(f"{topic}-rf3", 3, replication_factor=3)
    cluster.create_topic(f"{topic}-rf1", 3, replication_factor=1)
    controller = cluster.active_controller()
    victim = next(x for x in nodes if x.node_id != controller)
    live = [x for x in nodes if x is not victim]

    # Healthy: nothing under-replicated or offline, one active controller.
    def healthy():
        return (total(nodes, "kafka_server_replicamanager_underreplicatedpartitions") == 0
                and total(nodes, "kafka_controller_kafkacontroller_offlinepartitionscount") == 0)
    wait_for(healthy, 60, what="a healthy cluster in the metrics")
    assert total(nodes, "kafka_controller_kafkacontroller_activecontrollercount") == 1
    assert value(scrape(cluster.node(controller)),
                 "kafka_controller_kafkacontroller_activebrokercount") == len(nodes)

    # What the victim's death must show: every partition it replicates with others becomes
    # under-replicated at its (new) leader; the ones only it holds go offline.
    md = c.metadata(live[0].port, None)
    shared = sum(1 for t in md.topics.values() for p in t.partitions.values()
                 if victim.node_id in p.replicas and len(p.replicas) > 1)
    alone = sum(1 for t in md.topics.values() for p in t.partitions.values()
                if p.replicas == [victim.node_id])
    assert shared >= 3 + 50  # the RF=3 topic and __transaction_state
    shrinks = total(live, "kafka_server_replicamanager_isrshrinks_total")

    victim.kill9()
    try:
        seen = []

        def degraded():
            urp = total(live, "kafka_server_replicamanager_underreplicatedpartitions")
            offline = total(live, "kafka_controller_kafkacontroller_offlinepartitionscount")
            seen.append((urp, offline))
            return (urp, offline) == (shared, alone)
        try:
            wait_for(degraded, 4 * SESSION_TIMEOUT_MS / 1000 + 30,
                     what=f"{shared} under-replicated and {alone} offline partitions")
        except TimeoutError as e:
            raise AssertionError(f"{e}; (under-replicated, offline) seen last: {seen[-3:]}")
        assert total(live, "kafka_server_replicamanager_isrshrinks_total") > shrinks
        rf3 = f"{topic}-rf3"
        for p in range(3):
            flags = [value(scrape(x), "kafka_cluster_partition_underreplicated", topic=rf3,
                           partition=str(p)) for x in live]
            assert flags.count(1) == 1 and flags.count(None) == 1, (p, flags)
        fenced = value(scrape(cluster.node(controller)),
                       "kafka_controller_kafkacontroller_fencedbrokercount")
        assert fenced == 1
    finally:
        expands = total(live, "kafka_server_replicamanager_isrexpands_total")
        victim.start()
    wait_for(healthy, 90, what="the cluster healthy again in the metrics")
    assert total(live + [victim], "kafka_server_replicamanager_isrexpands_total") > expands


@pytest.mark.timeout(120)
def test_lag_on_the_coordinator_covers_partitions_other_brokers_lead(cluster, topic):
    partitions = 6
    cluster.create_topic(topic, partitions, replication_factor=1)
    leaders = cluster.leaders(topic)
    by_id = {x.node_id: x for x in cluster.running_brokers()}
    ends = {}
    for p in range(partitions):
        n = 3 + 2 * p
        err, _ = c.produce(by_id[leaders[p]].port, topic, p, [b"x" * 50] * n)
        assert err == c.NONE
        ends[p] = n
    group = f"{topic}-g"
    committed = {p: p for p in range(partitions)}
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap(), "group.id": group,
                         "enable.auto.commit": False})
    consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in committed.items()],
                    asynchronous=False)
    consumer.close()
    err, coordinator, _, _ = c.find_coordinator(by_id[leaders[0]].port, group)
    assert err == c.NONE
    assert any(leaders[p] != coordinator for p in range(partitions)), "all led by the coordinator"

    found = scrape(by_id[coordinator])
    for p in range(partitions):
        labels = dict(consumergroup=group, topic=topic, partition=str(p))
        assert value(found, "kafka_consumergroup_current_offset", **labels) == committed[p]
        assert value(found, "kafka_consumergroup_lag", **labels) == ends[p] - committed[p], \
            (p, leaders[p], coordinator)
    want_sum = sum(ends[p] - committed[p] for p in range(partitions))
    assert value(found, "millrace_consumergroup_topic_lag", consumergroup=group, topic=topic) \
        == want_sum
    # Only the coordinator reports the group, so a sum over brokers counts it once.
    for node_id, x in by_id.items():
        if node_id != coordinator:
            assert value(scrape(x), "millrace_consumergroup_topic_lag", consumergroup=group,
                         topic=topic) is None
