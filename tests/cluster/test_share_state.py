"""The share coordinator (KIP-932's `__share_group_state`) across three nodes, on a cluster of
its own (the state topic would otherwise add its partitions to the shared one):

- a share FindCoordinator sent to a node that is not the active controller has the topic
  created (through the active controller) and then names the leader of the share partition's
  state partition, the same from every node;
- that leader serves Initialize/Write/Read; another node answers NOT_COORDINATOR;
- the coordinator killed, the state partition (replication factor 3) gets a new leader, which
  is the new coordinator and reads back the state written before.
"""

from __future__ import annotations

import base64
import time
import uuid

import cwire as c
from cluster import wait_for
from cwire import compact_string, i8, i32, i64, i16, uvarint

API_FIND_COORDINATOR = 10
API_INITIALIZE = 83
API_READ = 84
API_WRITE = 85
STATE_PARTITIONS = 6
RETRIABLE = (c.COORDINATOR_LOAD_IN_PROGRESS, c.COORDINATOR_NOT_AVAILABLE)
TAGS = uvarint(0)


def carray(items):
    return uvarint(len(items) + 1) + b"".join(items)


def share_key(group, topic_id, partition):
    tid = base64.urlsafe_b64encode(topic_id.bytes).rstrip(b"=").decode()
    return f"{group}:{tid}:{partition}"


def find_share_coordinator(port, key):
    """FindCoordinator v6, key type 2: (error, node id)."""
    r = c.call_flexible(port, API_FIND_COORDINATOR, 6, i8(2) + carray([compact_string(key)]) + TAGS)
    r.i32()
    assert r.uvarint() == 2
    r.compact_string()
    node = r.i32()
    r.compact_string(), r.i32()
    return r.i16(), node


def topic_id_of(port, topic):
    """The topic id from Metadata v12 (flexible)."""
    body = carray([bytes(16) + compact_string(topic) + TAGS]) + b"\x00\x00" + TAGS
    r = c.call_flexible(port, c.API_METADATA, 12, body)
    r.i32()
    for _ in range(r.uvarint() - 1):
        r.i32(), r.compact_string(), r.i32(), r.compact_string(), r.skip_tags()
    r.compact_string(), r.i32()
    assert r.uvarint() == 2
    assert r.i16() == c.NONE
    r.compact_string()
    return uuid.UUID(bytes=r.take(16))


def one_partition(r):
    assert r.uvarint() == 2
    r.take(16)
    assert r.uvarint() == 2
    r.i32()
    error = r.i16()
    r.compact_string()
    return error


def request(port, api, topic_id, group, part):
    body = compact_string(group) + carray([topic_id.bytes + carray([part + TAGS]) + TAGS]) + TAGS
    return c.call_flexible(port, api, 0, body)


def initialize(port, group, topic_id):
    part = i32(0) + i32(1) + i64(0)
    return one_partition(request(port, API_INITIALIZE, topic_id, group, part))


def write(port, group, topic_id, batches):
    encoded = [i64(f) + i64(last) + i8(s) + i16(n) + TAGS for f, last, s, n in batches]
    part = i32(0) + i32(1) + i32(0) + i64(0) + carray(encoded)
    return one_partition(request(port, API_WRITE, topic_id, group, part))


def read(port, group, topic_id):
    """(error, batches)."""
    r = request(port, API_READ, topic_id, group, i32(0) + i32(0))
    error = one_partition(r)
    r.i32(), r.i64()
    batches = []
    for _ in range(r.uvarint() - 1):
        batches.append((r.i64(), r.i64(), r.i8(), r.i16()))
        r.skip_tags()
    return error, batches


def until_served(send):
    deadline = time.monotonic() + 60
    while True:
        out = send()
        error = out[0] if isinstance(out, tuple) else out
        if error not in RETRIABLE + (c.NOT_COORDINATOR, c.UNKNOWN_TOPIC_OR_PARTITION) \
                or time.monotonic() > deadline:
            return out
        time.sleep(0.2)


def coordinator(cluster, key, not_id=None):
    """The node every running broker names for `key` (other than `not_id`)."""
    found = {}

    def agreed():
        found.clear()
        for x in cluster.running_brokers():
            error, node = find_share_coordinator(x.port, key)
            if error != c.NONE:
                return False
            found[x.node_id] = node
        nodes = set(found.values())
        return len(nodes) == 1 and not_id not in nodes
    wait_for(agreed, 90, interval_s=0.3, what=f"one share coordinator for {key}: {found}")
    return cluster.node(next(iter(found.values())))


def test_share_state_moves_with_its_state_partition(cluster_factory, topic, observe):
    # Replication factor 3 (both brokers' default; the Kafka rig's script lowers it to 1).
    cl = cluster_factory({"share.coordinator.state.topic.num.partitions": str(STATE_PARTITIONS),
                          "share.coordinator.state.topic.replication.factor": "3",
                          "share.coordinator.state.topic.min.isr": "2"})
    cl.create_topic(topic, 1)
    topic_id = topic_id_of(cl.running_brokers()[0].port, topic)
    group = f"share-{topic}"
    key = share_key(group, topic_id, 0)

    active = cl.wait_active_controller()
    asked = next(x for x in cl.running_brokers() if x.node_id != active)
    t0 = time.monotonic()
    first = find_share_coordinator(asked.port, key)[0]
    assert first in RETRIABLE + (c.NONE,), first
    cl.wait_topic_everywhere("__share_group_state", STATE_PARTITIONS, timeout_s=60)
    coord = coordinator(cl, key)
    observe("share coordinator ready after (s)", round(time.monotonic() - t0, 2))

    assert until_served(lambda: initialize(coord.port, group, topic_id)) == c.NONE
    batches = [(0, 4, 2, 1), (5, 9, 0, 1)]
    assert until_served(lambda: write(coord.port, group, topic_id, batches)) == c.NONE
    assert until_served(lambda: read(coord.port, group, topic_id)) == (c.NONE, batches)
    other = next(x for x in cl.running_brokers() if x.node_id != coord.node_id)
    assert read(other.port, group, topic_id)[0] == c.NOT_COORDINATOR

    coord.kill9()
    t0 = time.monotonic()
    moved = coordinator(cl, key, not_id=coord.node_id)
    assert until_served(lambda: read(moved.port, group, topic_id)) == (c.NONE, batches)
    observe("share state served by the new coordinator after (s)", round(time.monotonic() - t0, 2))
