"""ShareFetch / ShareAcknowledge v1 (KIP-932) as raw frames on one connection, against millrace
and Apache Kafka 4.4 (TEST_BROKER=kafka) with the same assertions:

- share sessions: a ShareFetch with epoch 3 before any session is SHARE_SESSION_NOT_FOUND, a
  ShareAcknowledge with epoch 0 INVALID_SHARE_SESSION_EPOCH; epoch 0 opens a session, the next
  request must carry 1, then 2 (a repeated epoch is INVALID_SHARE_SESSION_EPOCH);
- a fetch acquires the records with delivery count 1 and the group's lock duration;
- acknowledging offsets the member does not hold is INVALID_RECORD_STATE for the partition and
  changes nothing; a RELEASE makes the records available again, fetched with delivery count 2;
- ACCEPTed records are not delivered again, also on a new connection after the first closed;
  records held when a connection closes come back at once (Kafka ends the member's session and
  releases its records when its connection closes).
"""

from __future__ import annotations

import time
import uuid

import pytest

import kwire as w
from test_kip848 import CReader
from test_retention import create
from test_share_groups import earliest, produce
from test_share_membership import beat, member_id

API_SHARE_FETCH = 78
API_SHARE_ACK = 79
INVALID_RECORD_STATE = 121
SHARE_SESSION_NOT_FOUND = 122
INVALID_SHARE_SESSION_EPOCH = 123
ACCEPT, RELEASE = 1, 2

pytestmark = pytest.mark.timeout(120)


def cstr(s):
    return w.compact_string(s)


class Conn:
    """One connection: share sessions belong to it."""

    def __init__(self, port):
        self.s = w.connect(port)
        self.cid = 0

    def close(self):
        self.s.close()

    def call(self, api_key, version, body):
        self.cid += 1
        self.s.sendall(w.frame(w.header_v2(api_key, version, self.cid) + body))
        payload = w.recv_frame(self.s)
        assert payload is not None, f"api {api_key}: closed without an answer"
        r = CReader(payload)
        assert r.i32() == self.cid
        r.uvarint()
        return r


def ack_batches(acks):
    return w.uvarint(len(acks) + 1) + b"".join(
        w.i64(first) + w.i64(last) + w.uvarint(2) + w.i8(kind) + w.uvarint(0)
        for first, last, kind in acks)


def share_fetch(conn, group, member, epoch, topic_id, acks=(), partitions=(0,), max_wait=500):
    body = (cstr(group) + cstr(member) + w.i32(epoch) + w.i32(max_wait) + w.i32(1)
            + w.i32(1 << 20) + w.i32(500) + w.i32(500))
    parts = b"".join(w.i32(p) + ack_batches(list(acks) if p == 0 else []) + w.uvarint(0)
                     for p in partitions)
    if epoch == -1:
        topics = w.uvarint(2) + topic_id.bytes + w.uvarint(2) + w.i32(0) + ack_batches(
            list(acks)) + w.uvarint(0) + w.uvarint(0)
    else:
        topics = w.uvarint(2) + topic_id.bytes + w.uvarint(len(partitions) + 1) + parts \
            + w.uvarint(0)
    body += topics + w.uvarint(1) + w.uvarint(0)
    r = conn.call(API_SHARE_FETCH, 1, body)
    r.i32()  # throttle
    out = {"error": r.i16(), "message": r.cstring(), "lock_ms": r.i32(), "partitions": {}}
    for _ in range(r.uvarint() - 1):
        r.take(16)
        for _ in range(r.uvarint() - 1):
            index, error, _msg, ack_error, _amsg = (r.i32(), r.i16(), r.cstring(), r.i16(),
                                                   r.cstring())
            r.i32(), r.i32(), r.uvarint()  # current leader
            n = r.uvarint()
            if n > 0:
                r.take(n - 1)
            acquired = []
            for _ in range(r.uvarint() - 1):
                acquired.append((r.i64(), r.i64(), r.i16()))
                r.uvarint()
            r.uvarint()
            out["partitions"][index] = {"error": error, "ack_error": ack_error,
                                        "acquired": acquired}
        r.uvarint()
    return out


def share_ack(conn, group, member, epoch, topic_id, acks):
    body = (cstr(group) + cstr(member) + w.i32(epoch) + w.uvarint(2) + topic_id.bytes
            + w.uvarint(2) + w.i32(0) + ack_batches(acks) + w.uvarint(0) + w.uvarint(0)
            + w.uvarint(0))
    r = conn.call(API_SHARE_ACK, 1, body)
    r.i32()
    out = {"error": r.i16(), "message": r.cstring(), "partitions": {}}
    for _ in range(r.uvarint() - 1):
        r.take(16)
        for _ in range(r.uvarint() - 1):
            index, error = r.i32(), r.i16()
            r.cstring()
            r.i32(), r.i32(), r.uvarint()
            r.uvarint()
            out["partitions"][index] = error
        r.uvarint()
    return out


def offsets(acquired):
    return sorted(o for first, last, _ in acquired for o in range(first, last + 1))


@pytest.fixture
def joined(broker, topic):
    """A one-partition topic with 10 records, a share group reading it from the earliest
    offset, and one member that joined: (port, group, member, topic id)."""
    create(broker, topic, {})
    group = f"sf-{uuid.uuid4().hex[:8]}"
    earliest(broker, group)
    produce(broker, topic, [f"v{i}" for i in range(10)])
    member = member_id()
    deadline = time.monotonic() + 30
    while True:
        hb = beat(broker.port, group, member, 0, [topic])
        if hb["error"] == 0 and hb["assignment"]:
            break
        assert time.monotonic() < deadline, f"no assignment: {hb}"
        time.sleep(0.3)
        member = member_id()
    (topic_id,) = hb["assignment"]
    return broker.port, group, member, topic_id


def fetch_until(conn, group, member, epoch, topic_id, want, acks=()):
    """ShareFetch until `want` records are acquired (Kafka initializes a share partition's
    state a moment after the assignment): (epoch to send next, acquired ranges)."""
    deadline = time.monotonic() + 30
    got = []
    while True:
        f = share_fetch(conn, group, member, epoch, topic_id, acks=acks)
        assert f["error"] == 0, f
        epoch += 1
        acks = ()
        got += f["partitions"].get(0, {}).get("acquired", [])
        if len(offsets(got)) >= want or time.monotonic() > deadline:
            return epoch, got, f
        time.sleep(0.2)


def test_share_sessions_follow_the_epochs(joined):
    port, group, member, topic_id = joined
    conn = Conn(port)
    try:
        f = share_fetch(conn, group, member, 3, topic_id)
        assert f["error"] == SHARE_SESSION_NOT_FOUND, f
        a = share_ack(conn, group, member, 0, topic_id, [(0, 0, ACCEPT)])
        assert a["error"] == INVALID_SHARE_SESSION_EPOCH, a
        f = share_fetch(conn, group, member, 0, topic_id, max_wait=0)
        assert f["error"] == 0, f
        f = share_fetch(conn, group, member, 1, topic_id, max_wait=0)
        assert f["error"] == 0, f
        f = share_fetch(conn, group, member, 1, topic_id, max_wait=0)
        assert f["error"] == INVALID_SHARE_SESSION_EPOCH, f
    finally:
        conn.close()


def test_acquire_release_and_accept(joined):
    port, group, member, topic_id = joined
    conn = Conn(port)
    try:
        epoch, got, f = fetch_until(conn, group, member, 0, topic_id, 10)
        assert offsets(got) == list(range(10)), got
        assert all(dc == 1 for _, _, dc in got), got
        assert f["lock_ms"] > 0
        # Nothing past offset 9 was delivered: not the member's to acknowledge.
        a = share_ack(conn, group, member, epoch, topic_id, [(20, 21, ACCEPT)])
        epoch += 1
        assert a["error"] == 0 and a["partitions"][0] != 0, a
        a = share_ack(conn, group, member, epoch, topic_id, [(0, 4, RELEASE)])
        epoch += 1
        assert a["error"] == 0 and a["partitions"] == {0: 0}, a
        epoch, again, _ = fetch_until(conn, group, member, epoch, topic_id, 5)
        assert offsets(again) == list(range(5)), again
        assert all(dc == 2 for _, _, dc in again), again
        f = share_fetch(conn, group, member, epoch, topic_id, acks=[(0, 9, ACCEPT)],
                        max_wait=0)
        epoch += 1
        assert f["error"] == 0 and f["partitions"][0]["ack_error"] == 0, f
        a = share_ack(conn, group, member, epoch, topic_id, [(0, 0, ACCEPT)])
        assert a["partitions"][0] == 0, "below the start offset: done already"
    finally:
        conn.close()
    # A new connection, a new session: the accepted records are gone. (Kafka ends the old
    # session when it sees the close; a new one opened before that may be dropped with it.)
    time.sleep(1)
    conn = Conn(port)
    try:
        f = share_fetch(conn, group, member, 0, topic_id, max_wait=300)
        assert f["error"] == 0, f
        assert not f["partitions"].get(0, {}).get("acquired"), f
    finally:
        conn.close()


def test_records_held_by_a_closed_connection_come_back(joined):
    port, group, member, topic_id = joined
    first = Conn(port)
    _, got, _ = fetch_until(first, group, member, 0, topic_id, 10)
    assert offsets(got) == list(range(10))
    first.close()
    time.sleep(1)
    second = Conn(port)
    try:
        _, again, _ = fetch_until(second, group, member, 0, topic_id, 10)
        assert offsets(again) == list(range(10)), again
        assert all(dc == 2 for _, _, dc in again), again
    finally:
        second.close()


def test_acknowledging_what_is_not_held_is_refused(joined):
    port, group, member, topic_id = joined
    conn = Conn(port)
    try:
        epoch, got, _ = fetch_until(conn, group, member, 0, topic_id, 10)
        a = share_ack(conn, group, member, epoch, topic_id, [(0, 9, ACCEPT)])
        assert a["partitions"] == {0: 0}, a
        a = share_ack(conn, group, member, epoch + 1, topic_id, [(0, 9, ACCEPT)])
        assert a["partitions"] == {0: 0}, "below the start offset: skipped"
    finally:
        conn.close()
    time.sleep(1)
    other = Conn(port)
    try:
        produce_more = share_fetch(other, group, member, 0, topic_id, max_wait=0)
        assert produce_more["error"] == 0
        a = share_ack(other, group, member, 1, topic_id, [(10, 10, ACCEPT)])
        assert a["partitions"].get(0) in (INVALID_RECORD_STATE, 42), a
    finally:
        other.close()
