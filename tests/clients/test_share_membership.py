"""Share-group membership (KIP-932) with raw ShareGroupHeartbeat / ShareGroupDescribe v1
frames, against millrace and Apache Kafka 4.4 (TEST_BROKER=kafka) with the same assertions:

- members join with their own ids (epoch 0 and the topics), get the heartbeat interval and an
  assignment; a second member bumps the group epoch and the first gets its new epoch and a
  smaller assignment at its next heartbeat, without a revocation step;
- more members than partitions: every member gets a partition and partitions are shared;
- ShareGroupDescribe reports the members, their epochs, subscriptions and assignments, the
  `simple` assignor and the Stable state; an unknown id is GROUP_ID_NOT_FOUND;
- a stale epoch is FENCED_MEMBER_EPOCH, an unknown member UNKNOWN_MEMBER_ID, an empty member
  id or a first heartbeat without topics INVALID_REQUEST; a share heartbeat for a classic
  group's id is GROUP_ID_NOT_FOUND; leaving answers epoch -1;
- ListGroups lists the group with type "share".
"""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition

import kwire as w
from test_kip848 import flexible_request
from test_retention import create

API_SGH = 76
API_SGD = 77
API_LIST_GROUPS = 16
API_FIND_COORDINATOR = 10
FENCED_MEMBER_EPOCH = 110
UNKNOWN_MEMBER_ID = 25
INVALID_REQUEST = 42
GROUP_ID_NOT_FOUND = 69

pytestmark = pytest.mark.timeout(120)


def cstr(s):
    return w.compact_string(s)


COORDINATOR_CODES = (14, 15, 16)  # load in progress, not available, not coordinator


def find_coordinator(port, group):
    """FindCoordinator v4 until the group's coordinator answers (Kafka creates
    __consumer_offsets on the first one)."""
    deadline = time.monotonic() + 30
    while True:
        body = w.i8(0) + w.uvarint(2) + cstr(group) + w.uvarint(0)
        r = flexible_request(port, API_FIND_COORDINATOR, 4, body)
        r.i32()
        assert r.uvarint() == 2
        r.cstring(), r.i32(), r.cstring(), r.i32()  # key, node id, host, port
        error = r.i16()
        if error == 0 or time.monotonic() > deadline:
            assert error == 0, f"FindCoordinator: {error}"
            return
        time.sleep(0.2)


def beat(port, group, member, epoch, topics=None):
    if epoch == 0:
        find_coordinator(port, group)
    body = cstr(group) + cstr(member) + w.i32(epoch) + cstr(None)
    if topics is None:
        body += w.uvarint(0)
    else:
        body += w.uvarint(len(topics) + 1) + b"".join(cstr(t) for t in topics)
    r = flexible_request(port, API_SGH, 1, body + w.uvarint(0))
    r.i32()  # throttle
    out = {"error": r.i16(), "message": r.cstring(), "member": r.cstring(), "epoch": r.i32(),
           "interval": r.i32(), "assignment": None}
    if r.i8() == 1:
        out["assignment"] = {}
        for _ in range(r.uvarint() - 1):
            tid = uuid.UUID(bytes=r.take(16))
            out["assignment"][tid] = sorted(r.i32() for _ in range(r.uvarint() - 1))
            r.uvarint()
        r.uvarint()
    r.uvarint()
    assert r.pos == len(r.data), "trailing bytes"
    return out


def describe(port, group):
    body = w.uvarint(2) + cstr(group) + w.i8(0) + w.uvarint(0)
    r = flexible_request(port, API_SGD, 1, body)
    r.i32()  # throttle
    assert r.uvarint() == 2
    g = {"error": r.i16(), "message": r.cstring(), "group": r.cstring(), "state": r.cstring(),
         "epoch": r.i32(), "assignment_epoch": r.i32(), "assignor": r.cstring(), "members": {}}
    for _ in range(r.uvarint() - 1):
        member_id, rack, epoch = r.cstring(), r.cstring(), r.i32()
        r.cstring(), r.cstring()  # client id, host
        topics = [r.cstring() for _ in range(r.uvarint() - 1)]
        assigned = {}
        for _ in range(r.uvarint() - 1):
            tid = uuid.UUID(bytes=r.take(16))
            r.cstring()  # topic name
            assigned[tid] = sorted(r.i32() for _ in range(r.uvarint() - 1))
            r.uvarint()
        r.uvarint()  # assignment tagged fields
        r.uvarint()  # member tagged fields
        g["members"][member_id] = {"rack": rack, "epoch": epoch, "topics": topics,
                                   "assignment": assigned}
    r.i32()  # authorized operations
    return g


def partitions(assignment):
    return sorted(p for ps in (assignment or {}).values() for p in ps)


def member_id():
    # Kafka's Java client makes a base64 UUID; any non-empty string is a valid member id.
    return uuid.uuid4().hex[:22]


def settle(port, group, members, partition_count, timeout_s=20):
    """Heartbeats every member (with the epoch the group holds for it) until all of them are
    at the group's epoch, the assignment is computed for it and covers the topic's
    `partition_count` partitions (Kafka assigns a share partition only once its state is
    initialized, a moment after the first heartbeat); returns the description."""
    deadline = time.monotonic() + timeout_s
    while True:
        d = describe(port, group)
        epochs = {m["epoch"] for m in d["members"].values()}
        covered = {p for m in d["members"].values() for p in partitions(m["assignment"])}
        if (d["assignment_epoch"] == d["epoch"] and epochs == {d["epoch"]}
                and covered == set(range(partition_count))):
            return d
        assert time.monotonic() < deadline, f"the group did not settle: {d}"
        for m in members:
            out = beat(port, group, m, d["members"][m]["epoch"])
            assert out["error"] == 0, out
        time.sleep(0.3)


def test_members_join_share_and_leave(broker, topic):
    create(broker, topic, {}, partitions=4)
    group = f"share-{topic}"
    a, b = member_id(), member_id()
    first = beat(broker.port, group, a, 0, [topic])
    assert first["error"] == 0, first
    assert first["member"] == a and first["epoch"] >= 1
    assert first["interval"] == 5000
    epoch_before = describe(broker.port, group)["epoch"]
    second = beat(broker.port, group, b, 0, [topic])
    assert second["error"] == 0, second
    assert describe(broker.port, group)["epoch"] > epoch_before
    d = settle(broker.port, group, [a, b], 4)
    assert d["error"] == 0 and d["state"] == "Stable" and d["assignor"] == "simple", d
    assert d["assignment_epoch"] == d["epoch"]
    assert set(d["members"]) == {a, b}
    got = [partitions(m["assignment"]) for m in d["members"].values()]
    assert sorted(got[0] + got[1]) == [0, 1, 2, 3] and len(got[0]) == 2, got
    assert all(m["topics"] == [topic] and m["epoch"] == d["epoch"]
               for m in d["members"].values())

    left = beat(broker.port, group, b, -1)
    assert (left["error"], left["epoch"]) == (0, -1), left
    d = settle(broker.port, group, [a], 4)
    assert partitions(d["members"][a]["assignment"]) == [0, 1, 2, 3]


def test_more_members_than_partitions_share_partitions(broker, topic):
    create(broker, topic, {}, partitions=2)
    group = f"share-{topic}"
    members = [member_id() for _ in range(5)]
    for m in members:
        assert beat(broker.port, group, m, 0, [topic])["error"] == 0
    d = settle(broker.port, group, members, 2)
    seen = set()
    for m in d["members"].values():
        mine = partitions(m["assignment"])
        assert len(mine) >= 1, d
        seen |= set(mine)
    assert seen == {0, 1}


def test_heartbeat_errors(broker, topic):
    create(broker, topic, {})
    group = f"share-{topic}"
    a = member_id()
    joined = beat(broker.port, group, a, 0, [topic])
    assert joined["error"] == 0
    assert beat(broker.port, group, a, joined["epoch"] + 5)["error"] == FENCED_MEMBER_EPOCH
    assert beat(broker.port, group, member_id(), 3)["error"] == UNKNOWN_MEMBER_ID
    assert beat(broker.port, group, "", 0, [topic])["error"] == INVALID_REQUEST
    assert beat(broker.port, group, member_id(), 0, None)["error"] == INVALID_REQUEST
    assert describe(broker.port, f"nothing-{topic}")["error"] == GROUP_ID_NOT_FOUND


def test_a_classic_groups_id_is_not_a_share_group(broker, topic):
    create(broker, topic, {})
    group = f"classic-{topic}"
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                  "enable.auto.commit": False})
    try:
        # Kafka may refuse a commit for a topic created a moment ago: retry a few times.
        for attempt in range(20):
            try:
                c.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
                break
            except KafkaException:
                if attempt == 19:
                    raise
                time.sleep(0.5)
    finally:
        c.close()
    out = beat(broker.port, group, member_id(), 0, [topic])
    assert out["error"] == GROUP_ID_NOT_FOUND, out
    assert describe(broker.port, group)["error"] == GROUP_ID_NOT_FOUND


def test_list_groups_names_the_share_group(broker, topic):
    create(broker, topic, {})
    group = f"share-{topic}"
    assert beat(broker.port, group, member_id(), 0, [topic])["error"] == 0
    # ListGroups v5: states filter (empty), types filter ["share"].
    body = w.uvarint(1) + w.uvarint(2) + cstr("share") + w.uvarint(0)
    r = flexible_request(broker.port, API_LIST_GROUPS, 5, body)
    r.i32()
    assert r.i16() == 0
    listed = {}
    for _ in range(r.uvarint() - 1):
        gid, protocol, state, gtype = r.cstring(), r.cstring(), r.cstring(), r.cstring()
        r.uvarint()
        listed[gid] = (protocol, state, gtype)
    assert listed.get(group) == ("share", "Stable", "share"), listed
    assert all(t == "share" for _, _, t in listed.values())
