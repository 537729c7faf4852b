"""Hostile and broken frames on raw sockets. The broker must answer with an error or close that
one connection, never crash, hang or allocate from a declared length, and must keep serving new
connections afterwards (every test ends by checking that with a fresh ApiVersions v0).

The module is millrace-only (these are millrace's rules for untrusted input); run it against
Apache Kafka anyway with MILLRACE_BAD_INPUT_ON_KAFKA=1, which is how the frames were checked.
"""

from __future__ import annotations

import os
import socket
import time

import pytest

import kwire as w
from kwire import Reader, frame, header_v1, header_v2, i16, i32

if os.environ.get("MILLRACE_BAD_INPUT_ON_KAFKA") != "1":
    pytestmark = pytest.mark.millrace_only

CORRUPT_MESSAGE = 2
INVALID_TOPIC_EXCEPTION = 17
UNSUPPORTED_VERSION = 35
NONE = 0


def assert_serving(broker):
    assert broker.alive(), f"broker process exited:\n{broker.log_tail()}"
    error, versions = w.api_versions_v0(broker.port)
    assert error == NONE
    assert w.API_API_VERSIONS in versions


def closed_or_error_response(s: socket.socket, correlation_id: int) -> str:
    """After a bad request the broker may close the connection or answer it (with an error).
    Returns 'closed' or 'answered'; fails on silence (a hang)."""
    try:
        payload = w.recv_frame(s)
    except socket.timeout:
        pytest.fail("broker neither answered nor closed the connection")
    if payload is None:
        return "closed"
    assert Reader(payload).i32() == correlation_id
    return "answered"


@pytest.mark.parametrize("size", [0x7FFFFFFF, 0x40000000, -1, -0x80000000])
def test_bad_size_prefix_closes_connection(broker, size):
    with w.connect(broker.port) as s:
        s.sendall(i32(size) + b"\x00\x12\x00\x00\x00\x00\x00\x01")
        assert w.closed_by_peer(s), "expected the connection to be closed"
    assert_serving(broker)


def test_unknown_api_key(broker):
    with w.connect(broker.port) as s:
        s.sendall(frame(header_v1(31999, 0, 5) + b"\x00" * 16))
        closed_or_error_response(s, 5)
    assert_serving(broker)


def test_api_versions_unknown_version_answers_v0_error_with_list(broker):
    # As kafka-python 3 opens with v4 (franz-go 1.22 with v5) and falls back: the answer must
    # be the v0 format (no tagged fields, i32 array length, nothing after the array) with error
    # 35 and ApiVersions' own range only, as Apache Kafka 4.4 answers: a client given the whole
    # list may keep it and never ask again at a version that carries the feature levels.
    with w.connect(broker.port) as s:
        s.sendall(frame(header_v2(w.API_API_VERSIONS, 99, 11)
                        + w.compact_string("millrace-tests") + w.compact_string("1.0")
                        + w.uvarint(0)))
        payload = w.recv_frame(s)
    assert payload is not None, "connection closed instead of an UNSUPPORTED_VERSION answer"
    r = Reader(payload)
    assert r.i32() == 11
    error, versions = w.parse_api_versions_v0_body(r)
    assert error == UNSUPPORTED_VERSION
    assert set(versions) == {w.API_API_VERSIONS}, versions
    lo, hi = versions[w.API_API_VERSIONS]
    assert lo == 0 and 3 <= hi < 99
    assert r.pos == len(r.data), f"{len(r.data) - r.pos} bytes after the v0 body"
    assert_serving(broker)


def test_metadata_declaring_int_max_topics(broker):
    with w.connect(broker.port) as s:
        s.sendall(frame(header_v1(w.API_METADATA, 1, 3) + b"\x7f\xff\xff\xff"))
        closed_or_error_response(s, 3)
    assert_serving(broker)


def test_metadata_declaring_int_max_topics_with_some_bytes(broker):
    # the declared count is huge but some element bytes follow: still only what was received
    with w.connect(broker.port) as s:
        s.sendall(frame(header_v1(w.API_METADATA, 1, 4) + b"\x7f\xff\xff\xff"
                        + w.string("a") * 1000))
        closed_or_error_response(s, 4)
    assert_serving(broker)


def test_truncated_body_inside_complete_frame(broker):
    # the frame's size matches what was sent, but the body ends inside its second topic name
    body = i32(2) + w.string("topic-one") + i16(40) + b"topic-tw"
    with w.connect(broker.port) as s:
        s.sendall(frame(header_v1(w.API_METADATA, 1, 9) + body))
        closed_or_error_response(s, 9)
    assert_serving(broker)


def test_truncated_header(broker):
    with w.connect(broker.port) as s:
        s.sendall(frame(b"\x00\x03\x00"))  # 3 bytes: not even api_key + api_version
        assert w.closed_by_peer(s)
    assert_serving(broker)


def test_frame_shorter_than_its_size_then_eof(broker):
    payload = header_v1(w.API_METADATA, 1, 12) + i32(0)
    with w.connect(broker.port) as s:
        s.sendall(i32(len(payload) + 100) + payload)
        s.shutdown(socket.SHUT_WR)
        assert w.closed_by_peer(s)
    assert_serving(broker)


def test_many_bad_connections_in_a_row(broker):
    for n in range(50):
        with w.connect(broker.port) as s:
            s.sendall(i32(0x7FFFFFFF - n) + b"\xff" * 64)
            w.closed_by_peer(s)
    assert_serving(broker)


def create_topic_raw(broker, topic: str, partitions: int = 1):
    r = w.request(broker.port, w.API_CREATE_TOPICS, 4, w.create_topics_v4_body(topic, partitions))
    return w.parse_create_topics_v4(r)


def produce_raw(broker, topic: str, batch: bytes):
    r = w.request(broker.port, w.API_PRODUCE, 7, w.produce_v7_body(topic, 0, batch))
    (result,) = w.parse_produce_v7(r)
    r.i32()  # throttle_time_ms
    return result


def end_offset(broker, topic: str) -> int:
    r = w.request(broker.port, w.API_LIST_OFFSETS, 2, w.list_offsets_v2_body(topic, 0, -1))
    (_, _, err, offset) = w.parse_list_offsets_v2(r)[0]
    assert err == NONE
    return offset


def test_create_topics_invalid_name(broker):
    [(name, err, _msg)] = create_topic_raw(broker, "bad topic!")
    assert name == "bad topic!"
    assert err == INVALID_TOPIC_EXCEPTION
    assert_serving(broker)


def test_produce_with_bad_crc_is_refused_and_not_appended(broker, topic):
    [(_, err, _)] = create_topic_raw(broker, topic)
    assert err == NONE
    now = int(time.time() * 1000)
    good = w.record_batch([b"first", b"second"], now)

    def first_produce():  # the new partition may need a moment to get its leader
        result = produce_raw(broker, topic, good)
        return result if result[2] == NONE else None

    result = w.wait_until(first_produce)
    assert result, "a valid batch to the new topic was not accepted"
    assert result[3] == 0
    assert end_offset(broker, topic) == 2

    (_, _, err, _) = produce_raw(broker, topic, w.record_batch([b"bad"], now, corrupt_crc=True))
    assert err == CORRUPT_MESSAGE
    assert end_offset(broker, topic) == 2, "a batch with a bad CRC was appended"

    (_, _, err, base) = produce_raw(broker, topic, w.record_batch([b"third"], now))
    assert (err, base) == (NONE, 2)
    assert end_offset(broker, topic) == 3
    assert_serving(broker)


def consume_values(broker, topic: str, partition: int, count: int) -> list[bytes]:
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"{topic}-{partition}",
                  "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, partition, 0)])
        out: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(out) < count and time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is not None and m.error() is None:
                out.append(m.value())
        return out
    finally:
        c.close()


@pytest.mark.parametrize("client_id,refused_bytes", [
    ("millrace-tests", 0),        # split in place among the partitions
    ("c" * 3000, 0),              # a header over 1 KiB: the body is copied off at the connection
    ("millrace-tests", 200_000),  # mostly refused: each partition's records are copied
])
def test_a_produce_request_split_among_its_partitions_reads_back_byte_for_byte(
        broker, topic, client_id, refused_bytes):
    """The broker stamps produced batches in the request's own buffer, split among the
    partitions; a refused partition beside them (a corrupt batch) changes nothing for the
    others, and what each consumer reads is what was sent, at the offsets assigned."""
    [(_, err, _)] = create_topic_raw(broker, topic, partitions=3)
    assert err == NONE
    now = int(time.time() * 1000)
    values = {p: [f"p{p}-{i}-".encode() * (50 + p) for i in range(20)] for p in range(2)}
    batches = {p: w.record_batch(values[p], now) for p in range(2)}
    bad = w.record_batch([b"x" * max(refused_bytes, 10)], now, corrupt_crc=True)
    parts = [w.i32(p) + w.i32(len(batches[p])) + batches[p] for p in range(2)]
    parts.append(w.i32(2) + w.i32(len(bad)) + bad)
    body = (w.string(None) + w.i16(-1) + w.i32(10_000)
            + w.array([w.string(topic) + w.array(parts)]))

    def produce():
        with w.connect(broker.port) as s:
            s.sendall(w.frame(w.header_v1(w.API_PRODUCE, 7, 5, client_id) + body))
            r = Reader(w.recv_frame(s))
            assert r.i32() == 5
            result = sorted(w.parse_produce_v7(r), key=lambda x: x[1])
        # the new topic's partitions may need a moment to get their leaders
        return result if all(e in (NONE, CORRUPT_MESSAGE) for _, _, e, _ in result) else None

    first = w.wait_until(produce)
    assert first, "the request was not accepted"
    assert [(p, e, o) for _, p, e, o in first] == [(0, NONE, 0), (1, NONE, 0), (2, CORRUPT_MESSAGE, -1)]
    second = produce()
    assert [(p, e, o) for _, p, e, o in second] == [(0, NONE, 20), (1, NONE, 20), (2, CORRUPT_MESSAGE, -1)]
    for p in range(2):
        assert consume_values(broker, topic, p, 40) == values[p] * 2
    assert_serving(broker)
