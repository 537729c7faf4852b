"""kafka-python 3 (pure Python; opens with ApiVersions v4): keyed records with headers under each
codec, read back with assign + seek_to_beginning, offsets_for_times, beginning/end offsets."""

from __future__ import annotations

import time
from collections import defaultdict

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]
COUNT = 400
BASE_TS_MS = 1_710_000_000_000
TS_STEP_MS = 10
TIMEOUT_S = 30


def producer(broker, codec):
    return KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", compression_type=codec,
                         enable_idempotence=True, linger_ms=5, request_timeout_ms=20_000)


def consumer(broker):
    # group_id=None: no coordinator, offsets come only from seeks.
    return KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                         enable_auto_commit=False, request_timeout_ms=20_000)


def produce(broker, topic, codec, count=COUNT):
    p = producer(broker, codec)
    try:
        futures = [p.send(topic, key=f"k{i:05d}".encode(), value=f"v{i}-{codec}".encode() * 3,
                          headers=[("i", str(i).encode()), ("c", str(codec).encode())],
                          timestamp_ms=BASE_TS_MS + i * TS_STEP_MS) for i in range(count)]
        p.flush(timeout=TIMEOUT_S)
        return [(i, f.get(timeout=TIMEOUT_S)) for i, f in enumerate(futures)]
    finally:
        p.close(timeout=10)


def consume(broker, topic, expected: dict[int, int]):
    c = consumer(broker)
    try:
        tps = [TopicPartition(topic, p) for p in expected]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        got = defaultdict(list)
        deadline = time.monotonic() + TIMEOUT_S
        while any(len(got[p]) < n for p, n in expected.items()):
            assert time.monotonic() < deadline, {p: len(got[p]) for p in expected}
            for tp, records in c.poll(timeout_ms=500).items():
                got[tp.partition].extend(records)
        return got
    finally:
        c.close()


def check(sent, got, codec):
    per_part = defaultdict(list)
    for i, md in sent:
        per_part[md.partition].append((md.offset, i))
    for part, entries in per_part.items():
        entries.sort()
        assert len(got[part]) == len(entries)
        assert [i for _, i in entries] == sorted(i for _, i in entries), "order within partition"
        for (offset, i), rec in zip(entries, got[part]):
            assert rec.offset == offset
            assert rec.key == f"k{i:05d}".encode()
            assert rec.value == f"v{i}-{codec}".encode() * 3
            assert list(rec.headers) == [("i", str(i).encode()), ("c", str(codec).encode())]
            assert rec.timestamp == BASE_TS_MS + i * TS_STEP_MS
            assert rec.timestamp_type == 0  # CreateTime


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c or "none")
def test_roundtrip_auto_created(broker, topic, codec):
    sent = produce(broker, topic, codec)
    assert {md.partition for _, md in sent} == {0}
    got = consume(broker, topic, {0: COUNT})
    check(sent, got, codec)


def test_roundtrip_admin_created_partitions(broker, topic):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=20_000)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)],
                            timeout_ms=20_000)
    finally:
        admin.close()
    deadline = time.monotonic() + TIMEOUT_S
    sent = None
    while sent is None:
        try:
            sent = produce(broker, topic, "lz4")
        except Exception:  # leaders may still be moving into place right after creation
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    counts = defaultdict(int)
    for _, md in sent:
        counts[md.partition] += 1
    assert set(counts) == {0, 1, 2}
    check(sent, consume(broker, topic, dict(counts)), "lz4")


def test_offsets_queries(broker, topic):
    produce(broker, topic, None, count=100)
    c = consumer(broker)
    try:
        tp = TopicPartition(topic, 0)
        assert c.beginning_offsets([tp], timeout_ms=20_000) == {tp: 0}
        assert c.end_offsets([tp], timeout_ms=20_000) == {tp: 100}
        found = c.offsets_for_times({tp: BASE_TS_MS + 77 * TS_STEP_MS - 3}, timeout_ms=20_000)
        assert found[tp].offset == 77
        assert found[tp].timestamp == BASE_TS_MS + 77 * TS_STEP_MS
        assert c.offsets_for_times({tp: BASE_TS_MS + 10**7}, timeout_ms=20_000)[tp] is None
        # seek into the middle and read from there
        c.assign([tp])
        c.seek(tp, 90)
        recs = []
        deadline = time.monotonic() + TIMEOUT_S
        while len(recs) < 10 and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=500).values():
                recs.extend(records)
        assert [r.offset for r in recs] == list(range(90, 100))
    finally:
        c.close()
