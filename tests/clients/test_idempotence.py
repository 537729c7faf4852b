"""Idempotent-producer state per partition, on raw frames so every case is exact: a retried
batch is answered with its original offset and not appended twice, a sequence gap is refused
with OUT_OF_ORDER_SEQUENCE_NUMBER, an older epoch with INVALID_PRODUCER_EPOCH, and all of it
holds after a clean restart and after kill -9.
"""

from __future__ import annotations

import time

import pytest

import kwire as w

pytestmark = pytest.mark.millrace_only

NONE = 0
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47


def init_producer_id(port: int) -> tuple[int, int]:
    body = w.string(None) + w.i32(60_000)
    r = w.request(port, w.API_INIT_PRODUCER_ID, 1, body)
    r.i32()  # throttle
    err, pid, epoch = r.i16(), r.i64(), r.i16()
    assert err == NONE
    return pid, epoch


def produce(port: int, topic: str, batch: bytes) -> tuple[int, int]:
    r = w.request(port, w.API_PRODUCE, 7, w.produce_v7_body(topic, 0, batch))
    ((_, _, err, base),) = w.parse_produce_v7(r)
    return err, base


def end_offset(port: int, topic: str) -> int:
    r = w.request(port, w.API_LIST_OFFSETS, 2, w.list_offsets_v2_body(topic, 0, -1))
    ((_, _, err, offset),) = w.parse_list_offsets_v2(r)
    assert err == NONE
    return offset


@pytest.mark.parametrize("restart", ["sigterm", "kill9"])
def test_sequences_are_checked_and_survive_restart(broker_factory, restart):
    b = broker_factory()
    b.start()
    topic = f"idem-{restart}"
    r = w.request(b.port, w.API_CREATE_TOPICS, 4, w.create_topics_v4_body(topic, 1))
    assert w.parse_create_topics_v4(r)[0][1] == NONE
    pid, epoch = init_producer_id(b.port)
    now = int(time.time() * 1000)

    def batch(seq: int, n: int, e: int = epoch) -> bytes:
        values = [f"s{seq + i}".encode() for i in range(n)]
        return w.record_batch(values, now, producer_id=pid, producer_epoch=e, base_sequence=seq)

    assert produce(b.port, topic, batch(0, 2)) == (NONE, 0)
    assert produce(b.port, topic, batch(2, 3)) == (NONE, 2)
    assert produce(b.port, topic, batch(0, 2)) == (NONE, 0), "a retry must get its first offset"
    assert end_offset(b.port, topic) == 5, "a retried batch was appended twice"
    assert produce(b.port, topic, batch(9, 1))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert end_offset(b.port, topic) == 5

    if restart == "sigterm":
        assert b.stop() == 0
    else:
        b.kill9()
    b.start()

    assert produce(b.port, topic, batch(2, 3)) == (NONE, 2), "producer state lost on restart"
    assert end_offset(b.port, topic) == 5
    assert produce(b.port, topic, batch(6, 1))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert produce(b.port, topic, batch(5, 1)) == (NONE, 5)
    # a newer epoch starts again at 0 and fences the old one
    assert produce(b.port, topic, batch(0, 1, epoch + 1)) == (NONE, 6)
    assert produce(b.port, topic, batch(6, 1, epoch))[0] == INVALID_PRODUCER_EPOCH
    assert end_offset(b.port, topic) == 7


def test_producer_ids_are_never_reused_across_restarts(broker_factory):
    b = broker_factory()
    b.start()
    first = {init_producer_id(b.port)[0] for _ in range(5)}
    b.kill9()
    b.start()
    second = {init_producer_id(b.port)[0] for _ in range(5)}
    assert len(first) == 5 and len(second) == 5
    assert not first & second
