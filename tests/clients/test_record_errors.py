"""Per-record errors (KIP-467): a partition whose batch holds records that break a per-record
rule is refused whole, and from Produce v8 the answer names each failing record by its index in
the batch (``record_errors``) with an ``error_message``, so a client fails exactly those records.

Raw Produce frames check the fields version by version (v7: the code alone; v8: the list and the
message), for keyless records on a compacted topic (INVALID_RECORD) and timestamps outside
``message.timestamp.after.max.ms`` (INVALID_TIMESTAMP, which wins when both kinds occur). The
same frames run against Apache Kafka with TEST_BROKER=kafka. confluent-kafka then shows what a
client makes of it: in one batch of 20 with 2 keyless records, those 2 fail INVALID_RECORD and
the other 18 fail _INVALID_DIFFERENT_RECORD; nothing of the refused batch is stored.
librdkafka's own test 0011 (test_librdkafka_suite.py) checks the same with its test-runner.
"""

from __future__ import annotations

import time

from confluent_kafka import KafkaError, Producer

import kwire as w
from test_retention import OP_TIMEOUT_S, create

API_PRODUCE = 0
API_LIST_OFFSETS = 2
INVALID_TIMESTAMP = 32
INVALID_RECORD = 87


def batch(records: list[tuple[bytes | None, int]], base_ts: int) -> bytes:
    """An uncompressed magic-2 batch of (key, timestamp) records with values b"v<i>"."""
    body = b""
    for i, (key, ts) in enumerate(records):
        value = f"v{i}".encode()
        rec = (w.i8(0) + w.varint(ts - base_ts) + w.varint(i)
               + (w.varint(-1) if key is None else w.varint(len(key)) + key)
               + w.varint(len(value)) + value + w.varint(0))
        body += w.varint(len(rec)) + rec
    max_ts = max(ts for _, ts in records)
    after_crc = (w.i16(0) + w.i32(len(records) - 1) + w.i64(base_ts) + w.i64(max_ts)
                 + w.i64(-1) + w.i16(-1) + w.i32(-1) + w.i32(len(records)) + body)
    after_length = w.i32(0) + w.i8(2) + w.u32(w.crc32c(after_crc)) + after_crc
    return w.i64(0) + w.i32(len(after_length)) + after_length


def produce(port: int, version: int, topic: str, records: bytes):
    """(error_code, base_offset, [(batch_index, message)], error_message) of partition 0."""
    r = w.request(port, API_PRODUCE, version, w.produce_v7_body(topic, 0, records))
    assert r.i32() == 1 and r.string() == topic and r.i32() == 1
    assert r.i32() == 0
    err, base = r.i16(), r.i64()
    r.i64()  # log_append_time_ms
    r.i64()  # log_start_offset
    errors, message = [], None
    if version >= 8:
        errors = [(r.i32(), r.string()) for _ in range(r.i32())]
        message = r.string()
    r.i32()  # throttle_time_ms
    assert r.pos == len(r.data), "trailing bytes in the response"
    return err, base, errors, message


def end_offset(port: int, topic: str) -> int:
    r = w.request(port, API_LIST_OFFSETS, 2, w.list_offsets_v2_body(topic, 0, -1))
    (_, _, err, offset), = w.parse_list_offsets_v2(r)
    assert err == 0
    return offset


def test_keyless_records_on_a_compacted_topic_are_named(broker, topic):
    create(broker, topic, {"cleanup.policy": "compact"})
    now = int(time.time() * 1000)
    records = [(None if i in (2, 7) else f"k{i}".encode(), now) for i in range(10)]
    err, base, errors, message = produce(broker.port, 8, topic, batch(records, now))
    assert (err, base) == (INVALID_RECORD, -1)
    assert [i for i, _ in errors] == [2, 7], errors
    assert all(m for _, m in errors), errors
    assert message, "v8 carries the partition's error message"
    # Version 7 has neither field: the code alone.
    err, base, errors, message = produce(broker.port, 7, topic, batch(records, now))
    assert (err, base, errors, message) == (INVALID_RECORD, -1, [], None)
    assert end_offset(broker.port, topic) == 0, "a refused batch stored records"
    # The same records with keys are taken.
    keyed = [(f"k{i}".encode(), now) for i in range(10)]
    assert produce(broker.port, 8, topic, batch(keyed, now))[:3] == (0, 0, [])


def test_timestamps_out_of_range_are_named_and_win_over_keys(broker, topic):
    create(broker, topic, {"cleanup.policy": "compact",
                           "message.timestamp.after.max.ms": "60000"})
    now = int(time.time() * 1000)
    future = now + 3_600_000
    records = [(b"k0", now), (b"k1", future), (None, now), (b"k3", future)]
    err, _, errors, message = produce(broker.port, 8, topic, batch(records, now))
    assert err == INVALID_TIMESTAMP, (err, errors, message)
    assert [i for i, _ in errors] == [1, 2, 3], errors
    assert end_offset(broker.port, topic) == 0


def test_a_client_fails_only_the_records_named(broker, topic):
    create(broker, topic, {"cleanup.policy": "compact"})
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 200, "retries": 0,
                  "enable.idempotence": False})
    outcomes: dict[int, KafkaError | None] = {}
    for i in range(20):
        key = None if i % 10 == 3 else f"k{i}".encode()
        p.produce(topic, key=key, value=f"v{i}".encode(), partition=0,
                  on_delivery=lambda err, msg, i=i: outcomes.__setitem__(i, err))
    assert p.flush(OP_TIMEOUT_S) == 0
    assert len(outcomes) == 20
    invalid = sorted(i for i, e in outcomes.items()
                     if e is not None and e.code() == KafkaError.INVALID_RECORD)
    different = [i for i, e in outcomes.items()
                 if e is not None and e.code() == KafkaError._INVALID_DIFFERENT_RECORD]
    assert invalid == [3, 13], outcomes
    assert len(different) == 18, outcomes
    assert end_offset(broker.port, topic) == 0


def test_a_flexible_version_carries_the_list_too(broker, topic):
    """v9+ is flexible (compact strings, tagged fields): decode just enough to see the list."""
    version = 9
    create(broker, topic, {"cleanup.policy": "compact"})
    now = int(time.time() * 1000)
    records = [(b"k0", now), (None, now)]
    b = batch(records, now)
    body = (w.compact_string(None) + w.i16(-1) + w.i32(10_000)
            + w.uvarint(2) + w.compact_string(topic)
            + w.uvarint(2) + w.i32(0) + w.uvarint(len(b) + 1) + b + w.uvarint(0)
            + w.uvarint(0) + w.uvarint(0))
    with w.connect(broker.port) as s:
        s.sendall(w.frame(w.header_v2(API_PRODUCE, version, 5) + body))
        payload = w.recv_frame(s)
    assert payload is not None
    r = w.Reader(payload)
    assert r.i32() == 5
    assert r.take(1) == b"\x00"  # response header tagged fields
    assert r.take(1) == b"\x02"  # one topic
    name_len = r.take(1)[0] - 1
    assert r.take(name_len).decode() == topic
    assert r.take(1) == b"\x02"  # one partition
    assert r.i32() == 0
    assert r.i16() == INVALID_RECORD
    r.i64(), r.i64(), r.i64()
    assert r.take(1) == b"\x02"  # one record error
    assert r.i32() == 1
