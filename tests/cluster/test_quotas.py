"""Client quotas on a three-node cluster: a quota set through a node that is not the active
controller reaches every node, and a controller mutation quota decided on the active
controller holds a client of another node back. That node forwards the client's CreateTopics;
the controller meters it (controller_mutation_rate, strict for CreateTopics v6+) and answers
THROTTLING_QUOTA_EXCEEDED with a throttle time; the forwarding node mutes the client's
connection for that time (KIP-219), so a client that ignores throttle_time_ms is held back
all the same. The same assertions run against Apache Kafka (TEST_BROKER=kafka).
"""

from __future__ import annotations

import socket
import struct
import time
import uuid

import cwire as c
from cluster import wait_for
from kwire import Reader, create_topic_v7, frame, header_v1, i8, i32, recv_frame, string

API_DESCRIBE_CLIENT_QUOTAS = 48
API_ALTER_CLIENT_QUOTAS = 49
API_VERSIONS = 18
THROTTLING_QUOTA_EXCEEDED = 89


def alter_client_quota(port: int, client_id: str, key: str, value: float) -> int:
    """AlterClientQuotas v0 for one client id: the entry's error code."""
    body = (i32(1) + i32(1) + string("client-id") + string(client_id)
            + i32(1) + string(key) + struct.pack(">d", value) + i8(0) + i8(0))
    r = c.call(port, API_ALTER_CLIENT_QUOTAS, 0, body)
    r.i32()  # throttle
    assert r.i32() == 1
    return r.i16()


def client_quota(port: int, client_id: str, key: str) -> float | None:
    """DescribeClientQuotas v0 of one client id: the value of `key`, if set."""
    body = i32(1) + string("client-id") + i8(0) + string(client_id) + i8(1)
    r = c.call(port, API_DESCRIBE_CLIENT_QUOTAS, 0, body)
    r.i32()  # throttle
    if r.i16() != c.NONE:
        return None
    r.string()  # message
    value = None
    for _ in range(max(r.i32(), 0)):
        for _ in range(r.i32()):
            r.string(), r.string()
        for _ in range(r.i32()):
            k, v = r.string(), struct.unpack(">d", r.take(8))[0]
            if k == key:
                value = v
    return value


def test_a_forwarded_mutation_throttle_mutes_the_clients_connection(cluster_factory):
    cl = cluster_factory()
    leader = cl.wait_active_controller()
    other = next(n for n in cl.running() if n.node_id != leader)
    tag = uuid.uuid4().hex[:6]
    client = f"mut-{tag}"
    assert alter_client_quota(other.port, client, "controller_mutation_rate", 1.0) == c.NONE
    wait_for(lambda: all(client_quota(n.port, client, "controller_mutation_rate") == 1.0
                         for n in cl.running()), 15, what="the quota on every node")
    time.sleep(1)  # Kafka's quota managers follow the metadata a moment later
    with socket.create_connection(("127.0.0.1", other.port), timeout=60) as s:
        s.settimeout(60)
        # The first creation takes its 20 partitions from the one-per-second bucket...
        assert create_topic_v7(s, client, f"mut-a-{tag}", 20, 1) == (c.NONE, 0)
        # ...and the next is refused until the bucket has refilled (about 20 s).
        code, throttle = create_topic_v7(s, client, f"mut-b-{tag}", 1, 2)
        assert code == THROTTLING_QUOTA_EXCEEDED and throttle > 5000, (code, throttle)
        # The node that forwarded it reads nothing more from this connection for that long.
        sent = time.monotonic()
        s.sendall(frame(header_v1(API_VERSIONS, 0, 3)))
        r = Reader(recv_frame(s))
        waited_ms = (time.monotonic() - sent) * 1000
        assert r.i32() == 3
    assert waited_ms >= throttle - 1000, (waited_ms, throttle)
    # Another connection of another client id is not held back.
    with socket.create_connection(("127.0.0.1", other.port), timeout=60) as s:
        code, _ = create_topic_v7(s, f"free-{tag}", f"mut-b-{tag}", 1, 4)
        assert code == c.NONE
