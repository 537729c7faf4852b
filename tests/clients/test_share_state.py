"""The share coordinator (KIP-932's `__share_group_state`) with raw Initialize/Read/Write/
Delete/ReadShareGroupStateSummary v0 frames (keys 83-87, Kafka's inter-broker messages), against
millrace and Apache Kafka 4.4 (TEST_BROKER=kafka) with the same assertions:

- FindCoordinator v6 with key type 2 (`group:topicId:partition`) names the broker once the
  state topic exists (the first lookup creates it); a malformed key is INVALID_REQUEST;
- an initialized share partition reads back its state epoch and start offset; written batches
  merge (a later batch wins over what it overlaps, everything below a moved start offset goes)
  and read back; the summary reports the epochs and start offset;
- a leader epoch below the one recorded (by a read or a write) is FENCED_LEADER_EPOCH, a state
  epoch below the stored one FENCED_STATE_EPOCH (writes and initializations);
- a read of a share partition never initialized is INVALID_REQUEST, its summary start offset
  -1; a delete forgets the state; a topic that does not exist is UNKNOWN_TOPIC_OR_PARTITION;
- the state survives a broker kill -9 and restart.

millrace only: a write to a share partition with no state starts it (Kafka 4.4 refuses it until
InitializeShareGroupState).
"""

from __future__ import annotations

import base64
import time
import uuid

import pytest

import kwire as w
from test_kip848 import flexible_request
from test_kip848_regex import metadata_v12
from test_retention import create

API_FIND_COORDINATOR = 10
API_INITIALIZE = 83
API_READ = 84
API_WRITE = 85
API_DELETE = 86
API_SUMMARY = 87

NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_REQUEST = 42
FENCED_LEADER_EPOCH = 74
FENCED_STATE_EPOCH = 124
RETRIABLE = (14, 15, 16)  # load in progress, not available, not coordinator

AVAILABLE, ACKNOWLEDGED, ARCHIVED = 0, 2, 4

pytestmark = pytest.mark.timeout(180)


def cstr(s):
    return w.compact_string(s)


def tags():
    return w.uvarint(0)


def carray(items):
    return w.uvarint(len(items) + 1) + b"".join(items)


def share_key(group, topic_id, partition):
    """Kafka's coordinator key: the topic id as Uuid.toString (URL-safe base64, no padding)."""
    tid = base64.urlsafe_b64encode(topic_id.bytes).rstrip(b"=").decode()
    return f"{group}:{tid}:{partition}"


def find_share_coordinator(port, key):
    """FindCoordinator v6, key type 2: (error, node id)."""
    body = w.i8(2) + carray([cstr(key)]) + tags()
    r = flexible_request(port, API_FIND_COORDINATOR, 6, body)
    r.i32()  # throttle
    assert r.uvarint() == 2
    r.cstring()
    node = r.i32()
    r.cstring(), r.i32()  # host, port
    error = r.i16()
    return error, node


def topic_with_id(broker, topic, partitions=2):
    create(broker, topic, {}, partitions=partitions)
    deadline = time.monotonic() + 30
    while True:
        error, _, topic_id = metadata_v12(broker.port, topic, uuid.UUID(int=0))
        if error == 0 and topic_id.int != 0:
            return topic_id
        assert time.monotonic() < deadline, f"no id for {topic}: {error}"
        time.sleep(0.2)


def coordinator_ready(port, group, topic_id, partition=0, topic_exists=True):
    """FindCoordinator until the share partition's coordinator answers (the first lookup
    creates __share_group_state on both brokers), then, for a topic just created, the summary
    until the coordinator knows the topic (Kafka's share coordinator sees a new topic a moment
    after the rest of the broker does)."""
    deadline = time.monotonic() + 60
    while True:
        error, node = find_share_coordinator(port, share_key(group, topic_id, partition))
        if error == NONE:
            break
        assert error in RETRIABLE and time.monotonic() < deadline, f"FindCoordinator: {error}"
        time.sleep(0.2)
    while topic_exists:
        error = summary(port, group, topic_id, partition)["error"]
        if error == NONE:
            break
        assert error == UNKNOWN_TOPIC_OR_PARTITION and time.monotonic() < deadline, error
        time.sleep(0.2)
    return node


def retried(send):
    """Sends until the answer is not a coordinator-moving error (the state partition loading
    after creation or a restart)."""
    deadline = time.monotonic() + 60
    while True:
        out = send()
        if out["error"] not in RETRIABLE or time.monotonic() > deadline:
            return out
        time.sleep(0.2)


def partition_results(r):
    """The one partition result of a response with one topic and one partition; the reader is
    left at its error message."""
    assert r.uvarint() == 2, "one topic"
    r.take(16)
    assert r.uvarint() == 2, "one partition"
    return r.i32()


def initialize(port, group, topic_id, partition, state_epoch, start_offset):
    part = w.i32(partition) + w.i32(state_epoch) + w.i64(start_offset) + tags()
    body = cstr(group) + carray([topic_id.bytes + carray([part]) + tags()]) + tags()
    return retried(lambda: plain(flexible_request(port, API_INITIALIZE, 0, body)))


def write(port, group, topic_id, partition, state_epoch, leader_epoch, start_offset, batches):
    encoded = [w.i64(f) + w.i64(l) + w.i8(s) + w.i16(c) + tags() for f, l, s, c in batches]
    part = (w.i32(partition) + w.i32(state_epoch) + w.i32(leader_epoch) + w.i64(start_offset)
            + carray(encoded) + tags())
    body = cstr(group) + carray([topic_id.bytes + carray([part]) + tags()]) + tags()
    return retried(lambda: plain(flexible_request(port, API_WRITE, 0, body)))


def delete(port, group, topic_id, partition):
    part = w.i32(partition) + tags()
    body = cstr(group) + carray([topic_id.bytes + carray([part]) + tags()]) + tags()
    return retried(lambda: plain(flexible_request(port, API_DELETE, 0, body)))


def plain(r):
    """A Write/Delete/Initialize response: its one partition's error."""
    partition_results(r)
    error = r.i16()
    r.cstring()
    return {"error": error}


def read(port, group, topic_id, partition, leader_epoch):
    part = w.i32(partition) + w.i32(leader_epoch) + tags()
    body = cstr(group) + carray([topic_id.bytes + carray([part]) + tags()]) + tags()

    def once():
        r = flexible_request(port, API_READ, 0, body)
        partition_results(r)
        out = {"error": r.i16()}
        r.cstring()
        out["state_epoch"], out["start_offset"] = r.i32(), r.i64()
        out["batches"] = []
        for _ in range(r.uvarint() - 1):
            out["batches"].append((r.i64(), r.i64(), r.i8(), r.i16()))
            r.uvarint()
        return out

    return retried(once)


def summary(port, group, topic_id, partition):
    part = w.i32(partition) + w.i32(-1) + tags()
    body = cstr(group) + carray([topic_id.bytes + carray([part]) + tags()]) + tags()

    def once():
        r = flexible_request(port, API_SUMMARY, 0, body)
        partition_results(r)
        out = {"error": r.i16()}
        r.cstring()
        out["state_epoch"], out["leader_epoch"], out["start_offset"] = r.i32(), r.i32(), r.i64()
        return out

    return retried(once)


def test_find_coordinator_names_the_share_coordinator(broker, topic):
    topic_id = topic_with_id(broker, topic)
    node = coordinator_ready(broker.port, f"share-{topic}", topic_id)
    assert node >= 0
    for bad in (f"share-{topic}", f"share-{topic}:not-a-uuid:0", f":{share_key('g', topic_id, 0)}"[:-2]):
        assert find_share_coordinator(broker.port, bad)[0] == INVALID_REQUEST, bad


def test_write_then_read_merges_batches(broker, topic):
    topic_id = topic_with_id(broker, topic)
    group = f"share-{topic}"
    coordinator_ready(broker.port, group, topic_id, 1)
    assert initialize(broker.port, group, topic_id, 1, 0, 0)["error"] == NONE
    got = read(broker.port, group, topic_id, 1, 1)
    assert got == {"error": NONE, "state_epoch": 0, "start_offset": 0, "batches": []}, got

    assert write(broker.port, group, topic_id, 1, 0, 1, 0,
                 [(0, 9, AVAILABLE, 1)])["error"] == NONE
    assert write(broker.port, group, topic_id, 1, 0, 1, 5,
                 [(5, 7, ACKNOWLEDGED, 1), (12, 14, ARCHIVED, 2)])["error"] == NONE
    got = read(broker.port, group, topic_id, 1, 1)
    assert got["error"] == NONE and got["start_offset"] == 5, got
    assert got["batches"] == [(5, 7, ACKNOWLEDGED, 1), (8, 9, AVAILABLE, 1),
                              (12, 14, ARCHIVED, 2)], got
    s = summary(broker.port, group, topic_id, 1)
    assert s == {"error": NONE, "state_epoch": 0, "leader_epoch": 1, "start_offset": 5}, s


def test_stale_epochs_are_fenced(broker, topic):
    topic_id = topic_with_id(broker, topic)
    group = f"share-{topic}"
    coordinator_ready(broker.port, group, topic_id)
    assert initialize(broker.port, group, topic_id, 0, 1, 0)["error"] == NONE
    # A read records a newer leader epoch: an older leader is fenced from then on.
    assert read(broker.port, group, topic_id, 0, 5)["error"] == NONE
    batches = [(0, 3, ACKNOWLEDGED, 1)]
    assert write(broker.port, group, topic_id, 0, 1, 4, -1, batches)["error"] == FENCED_LEADER_EPOCH
    assert read(broker.port, group, topic_id, 0, 4)["error"] == FENCED_LEADER_EPOCH
    assert write(broker.port, group, topic_id, 0, 0, 5, -1, batches)["error"] == FENCED_STATE_EPOCH
    assert initialize(broker.port, group, topic_id, 0, 0, 0)["error"] == FENCED_STATE_EPOCH
    assert write(broker.port, group, topic_id, 0, 1, 5, -1, batches)["error"] == NONE
    got = read(broker.port, group, topic_id, 0, 5)
    assert (got["error"], got["state_epoch"], got["batches"]) == (NONE, 1, batches), got


def test_uninitialized_deleted_and_unknown(broker, topic):
    topic_id = topic_with_id(broker, topic)
    group = f"share-{topic}"
    coordinator_ready(broker.port, group, topic_id)
    assert read(broker.port, group, topic_id, 0, 0)["error"] == INVALID_REQUEST
    s = summary(broker.port, group, topic_id, 0)
    assert s == {"error": NONE, "state_epoch": 0, "leader_epoch": 0, "start_offset": -1}, s
    assert delete(broker.port, group, topic_id, 0)["error"] == NONE

    assert initialize(broker.port, group, topic_id, 0, 2, 7)["error"] == NONE
    assert write(broker.port, group, topic_id, 0, 2, 0, -1,
                 [(7, 8, ACKNOWLEDGED, 1)])["error"] == NONE
    assert delete(broker.port, group, topic_id, 0)["error"] == NONE
    assert read(broker.port, group, topic_id, 0, 0)["error"] == INVALID_REQUEST
    assert summary(broker.port, group, topic_id, 0)["start_offset"] == -1

    unknown = uuid.uuid4()
    coordinator_ready(broker.port, group, unknown, topic_exists=False)
    assert initialize(broker.port, group, unknown, 0, 0, 0)["error"] == UNKNOWN_TOPIC_OR_PARTITION
    assert delete(broker.port, group, unknown, 0)["error"] == UNKNOWN_TOPIC_OR_PARTITION
    assert read(broker.port, group, topic_id, -1, 0)["error"] == INVALID_REQUEST


def test_state_survives_a_kill9(broker_factory, topic):
    b = broker_factory().start()
    topic_id = topic_with_id(b, topic)
    group = f"share-{topic}"
    coordinator_ready(b.port, group, topic_id)
    assert initialize(b.port, group, topic_id, 0, 3, 100)["error"] == NONE
    for i in range(6):  # snapshots and updates, whatever the snapshot interval
        first = 100 + 10 * i
        assert write(b.port, group, topic_id, 0, 3, 2, -1,
                     [(first, first + 9, ACKNOWLEDGED if i % 2 else AVAILABLE, 1)])["error"] == NONE
    before = read(b.port, group, topic_id, 0, 2)
    assert before["error"] == NONE and len(before["batches"]) == 6, before
    b.kill9()
    b.start()
    coordinator_ready(b.port, group, topic_id)
    after = read(b.port, group, topic_id, 0, 2)
    assert after == before
    assert write(b.port, group, topic_id, 0, 3, 1, -1, [])["error"] == FENCED_LEADER_EPOCH


@pytest.mark.millrace_only
def test_a_write_starts_a_state_without_initialize(broker, topic):
    topic_id = topic_with_id(broker, topic)
    group = f"share-{topic}"
    coordinator_ready(broker.port, group, topic_id)
    assert write(broker.port, group, topic_id, 0, 0, 0, 4,
                 [(4, 6, ACKNOWLEDGED, 1)])["error"] == NONE
    got = read(broker.port, group, topic_id, 0, 0)
    assert got == {"error": NONE, "state_epoch": 0, "start_offset": 4,
                   "batches": [(4, 6, ACKNOWLEDGED, 1)]}, got
    unknown = uuid.uuid4()
    assert write(broker.port, group, unknown, 0, 0, 0, 0, [])["error"] == UNKNOWN_TOPIC_OR_PARTITION
