"""Topic administration through confluent-kafka's AdminClient: CreatePartitions, DeleteTopics
(and re-creating the same name), DescribeCluster, and the error codes Kafka gives for bad
requests."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

OP_TIMEOUT_S = 30


def admin(broker) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def produce_one(broker, topic: str, partition: int) -> int:
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    out = []
    p.produce(topic, value=b"x", partition=partition,
              on_delivery=lambda err, msg: out.append((err, msg.offset())))
    p.flush(OP_TIMEOUT_S)
    (err, offset), = out
    assert err is None, err
    return offset


def test_create_partitions_then_produce_to_the_new_one(broker, topic):
    a = admin(broker)
    a.create_topics([NewTopic(topic, 2, 1)])[topic].result(OP_TIMEOUT_S)
    a.create_partitions([NewPartitions(topic, 5)])[topic].result(OP_TIMEOUT_S)
    md = a.list_topics(topic, timeout=10).topics[topic]
    assert sorted(md.partitions) == [0, 1, 2, 3, 4]
    assert produce_one(broker, topic, 4) == 0
    with pytest.raises(KafkaException) as e:  # shrinking is refused
        a.create_partitions([NewPartitions(topic, 3)])[topic].result(OP_TIMEOUT_S)
    assert e.value.args[0].name() == "INVALID_PARTITIONS"


def test_delete_topic_then_recreate_starts_empty(broker, topic):
    a = admin(broker)
    a.create_topics([NewTopic(topic, 1, 1)])[topic].result(OP_TIMEOUT_S)
    assert produce_one(broker, topic, 0) == 0
    assert produce_one(broker, topic, 0) == 1
    a.delete_topics([topic])[topic].result(OP_TIMEOUT_S)
    assert topic not in a.list_topics(timeout=10).topics
    with pytest.raises(KafkaException) as e:
        a.delete_topics([topic])[topic].result(OP_TIMEOUT_S)
    assert e.value.args[0].name() == "UNKNOWN_TOPIC_OR_PART"
    a.create_topics([NewTopic(topic, 1, 1)])[topic].result(OP_TIMEOUT_S)
    assert produce_one(broker, topic, 0) == 0, "a re-created topic kept the old log"


def test_create_topic_errors(broker, topic):
    a = admin(broker)
    a.create_topics([NewTopic(topic, 1, 1)])[topic].result(OP_TIMEOUT_S)
    cases = {
        topic: (NewTopic(topic, 1, 1), "TOPIC_ALREADY_EXISTS"),
        topic + "-rf": (NewTopic(topic + "-rf", 1, 3), "INVALID_REPLICATION_FACTOR"),
        topic + "-cfg": (NewTopic(topic + "-cfg", 1, 1, config={"no.such.config": "1"}), "INVALID_CONFIG"),
        topic + "-p": (NewTopic(topic + "-p", 0, 1), "INVALID_PARTITIONS"),
    }
    for name, (new, code) in cases.items():
        with pytest.raises(KafkaException) as e:
            a.create_topics([new])[name].result(OP_TIMEOUT_S)
        assert e.value.args[0].name() == code, (name, e.value)


def test_describe_cluster(broker):
    a = admin(broker)  # kept alive: a collected client fails its pending futures
    d = a.describe_cluster(request_timeout=10).result(OP_TIMEOUT_S)
    assert len(d.nodes) == 1
    (node,) = d.nodes
    assert (node.host, node.port) == ("127.0.0.1", broker.port)
    assert d.controller.id == node.id
    assert d.cluster_id
