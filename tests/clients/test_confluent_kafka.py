"""confluent-kafka (librdkafka 2.16): idempotent acks=all produce under every codec, read back with
assign() (no consumer group: millrace has no group coordinator yet), timestamps, offsets, configs.
"""

from __future__ import annotations

import time
from collections import defaultdict

import pytest
from confluent_kafka import (OFFSET_BEGINNING, TIMESTAMP_CREATE_TIME, Consumer, KafkaException,
                             Producer, TopicPartition)
from confluent_kafka.admin import (AdminClient, ConfigResource, NewTopic, OffsetSpec,
                                   ResourceType)

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
COUNT = 600
BASE_TS_MS = 1_700_000_000_000  # explicit CreateTime timestamps, 10 ms apart
TS_STEP_MS = 10
OP_TIMEOUT_S = 30


def admin(broker) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def create_topic(broker, name: str, partitions: int) -> None:
    a = admin(broker)  # keep the client alive until its futures resolve
    futures = a.create_topics([NewTopic(name, partitions, 1)], operation_timeout=OP_TIMEOUT_S)
    futures[name].result(timeout=OP_TIMEOUT_S)
    wait_for_leaders(broker, name, partitions)


def wait_for_leaders(broker, name: str, partitions: int) -> None:
    deadline = time.monotonic() + OP_TIMEOUT_S
    a = admin(broker)
    while time.monotonic() < deadline:
        md = a.list_topics(name, timeout=10).topics.get(name)
        if md is not None and md.error is None and len(md.partitions) == partitions and all(
                p.leader >= 0 for p in md.partitions.values()):
            return
        time.sleep(0.1)
    raise AssertionError(f"topic {name} has no leaders for {partitions} partitions")


def produce(broker, topic: str, codec: str, count: int = COUNT):
    """Sends ``count`` keyed records with headers and explicit timestamps; returns the delivery
    reports as (index, partition, offset), failing on any delivery error."""
    producer = Producer({
        "bootstrap.servers": broker.bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": codec,
        "linger.ms": 5,
        "message.timeout.ms": 30_000,
    })
    delivered, errors = [], []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            delivered.append((int(msg.key().split(b"-")[1]), msg.partition(), msg.offset()))

    for i in range(count):
        producer.produce(topic, key=key_of(i), value=value_of(i, codec),
                         headers=[("idx", str(i).encode()), ("codec", codec.encode()),
                                  ("empty", b"")],
                         timestamp=BASE_TS_MS + i * TS_STEP_MS, on_delivery=on_delivery)
        producer.poll(0)
    remaining = producer.flush(OP_TIMEOUT_S)
    assert remaining == 0, f"{remaining} messages undelivered"
    assert not errors, errors[:5]
    assert len(delivered) == count
    return delivered


def key_of(i: int) -> bytes:
    return f"key-{i:06d}".encode()


def value_of(i: int, codec: str) -> bytes:
    # compressible but not constant, and longer than a small batch
    return (f"value {i} {codec} " * (1 + i % 7)).encode()


def consume_all(broker, topic: str, expected: dict[int, int]):
    """Reads partitions from the beginning with assign() until each holds ``expected[p]``
    messages. Returns {partition: [Message, ...]} in offset order."""
    consumer = Consumer({
        "bootstrap.servers": broker.bootstrap,
        "group.id": "millrace-tests-assign-only",  # required by the client, never joined
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
    })
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in expected])
        got: dict[int, list] = defaultdict(list)
        deadline = time.monotonic() + OP_TIMEOUT_S
        while any(len(got[p]) < n for p, n in expected.items()):
            assert time.monotonic() < deadline, {p: len(got[p]) for p in expected}
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                if msg.error():
                    raise KafkaException(msg.error())
                got[msg.partition()].append(msg)
        return got
    finally:
        consumer.close()


def check_roundtrip(delivered, got, codec: str):
    by_partition = defaultdict(list)
    for idx, part, offset in delivered:
        by_partition[part].append((offset, idx))
    for part, entries in by_partition.items():
        entries.sort()
        msgs = got[part]
        assert len(msgs) == len(entries), f"partition {part}"
        last_idx = -1
        for (offset, idx), msg in zip(entries, msgs):
            assert msg.offset() == offset
            # per-partition order: the producer's order within one partition is kept
            assert idx > last_idx
            last_idx = idx
            assert msg.key() == key_of(idx)
            assert msg.value() == value_of(idx, codec)
            assert msg.headers() == [("idx", str(idx).encode()), ("codec", codec.encode()),
                                     ("empty", b"")]
            assert msg.timestamp() == (TIMESTAMP_CREATE_TIME, BASE_TS_MS + idx * TS_STEP_MS)
        # offsets are dense from 0 on a new topic
        assert [m.offset() for m in msgs] == list(range(len(msgs)))


@pytest.mark.parametrize("codec", CODECS)
def test_auto_created_topic_roundtrip(broker, topic, codec):
    delivered = produce(broker, topic, codec)
    assert {p for _, p, _ in delivered} == {0}, "auto-created topics have num.partitions=1"
    got = consume_all(broker, topic, {0: COUNT})
    check_roundtrip(delivered, got, codec)


@pytest.mark.parametrize("codec", CODECS)
def test_created_topic_three_partitions(broker, topic, codec):
    create_topic(broker, topic, 3)
    delivered = produce(broker, topic, codec)
    counts = defaultdict(int)
    for _, p, _ in delivered:
        counts[p] += 1
    assert set(counts) == {0, 1, 2}, "600 distinct keys should hash to all 3 partitions"
    got = consume_all(broker, topic, dict(counts))
    check_roundtrip(delivered, got, codec)


def test_create_existing_topic_fails(broker, topic):
    create_topic(broker, topic, 1)
    a = admin(broker)
    futures = a.create_topics([NewTopic(topic, 1, 1)], operation_timeout=10)
    with pytest.raises(KafkaException) as info:
        futures[topic].result(timeout=OP_TIMEOUT_S)
    assert info.value.args[0].name() == "TOPIC_ALREADY_EXISTS"


def test_offsets_for_times_and_watermarks(broker, topic):
    delivered = produce(broker, topic, "none", count=100)
    assert sorted(o for _, _, o in delivered) == list(range(100))
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "millrace-tests",
                         "enable.auto.commit": False})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        assert (low, high) == (0, 100)
        # a time between message 41 (ts = base+410) and 42 (base+420) finds message 42
        queries = [TopicPartition(topic, 0, BASE_TS_MS + 415)]
        found = consumer.offsets_for_times(queries, timeout=10)
        assert found[0].error is None
        assert found[0].offset == 42
        # an exact timestamp finds that message; one before everything finds the first;
        # one after everything finds none (-1)
        for ts, want in [(BASE_TS_MS + 420, 42), (BASE_TS_MS - 1, 0), (BASE_TS_MS + 10**6, -1)]:
            found = consumer.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)
            assert found[0].offset == want, ts
    finally:
        consumer.close()


def test_admin_list_offsets(broker, topic):
    produce(broker, topic, "lz4", count=50)
    tp = TopicPartition(topic, 0)
    a = admin(broker)
    results = {}
    for name, spec in [("earliest", OffsetSpec.earliest()), ("latest", OffsetSpec.latest()),
                       ("max_ts", OffsetSpec.max_timestamp())]:
        results[name] = a.list_offsets({tp: spec}, request_timeout=10)[tp].result(
            timeout=OP_TIMEOUT_S)
    assert results["earliest"].offset == 0
    assert results["latest"].offset == 50
    assert results["max_ts"].offset == 49
    assert results["max_ts"].timestamp == BASE_TS_MS + 49 * TS_STEP_MS


def test_describe_topic_configs(broker, topic):
    create_topic(broker, topic, 1)
    res = ConfigResource(ResourceType.TOPIC, topic)
    a = admin(broker)
    configs = a.describe_configs([res], request_timeout=10)[res].result(timeout=OP_TIMEOUT_S)
    assert "cleanup.policy" in configs, sorted(configs)
    assert configs["cleanup.policy"].value == "delete"
    assert "retention.ms" in configs
    assert int(configs["retention.ms"].value) != 0


def test_metadata_lists_topic(broker, topic):
    create_topic(broker, topic, 3)
    md = admin(broker).list_topics(timeout=10)
    assert topic in md.topics
    assert sorted(md.topics[topic].partitions) == [0, 1, 2]
    assert len(md.brokers) == 1
    (b,) = md.brokers.values()
    assert (b.host, b.port) == ("127.0.0.1", broker.port)
