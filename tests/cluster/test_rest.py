"""The REST proxy of one node producing through a kill -9 of the partition's leader on another:
its idempotent acks=all producer retries into the new leader, so every record the HTTP caller
saw acknowledged is in the log once, at the offset it was given, and no record is there twice.

millrace only (the proxy is millrace's; test_rest.py in the client suite runs it in front of
Apache Kafka).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from confluent_kafka import Consumer, TopicPartition

from cluster import cluster_kind, wait_for

pytestmark = pytest.mark.skipif(cluster_kind() != "millrace", reason="millrace's REST proxy")


def post(url: str, values: list[bytes]) -> tuple[int, dict]:
    body = json.dumps({"records": [{"value": base64.b64encode(v).decode()} for v in values]})
    req = urllib.request.Request(url, data=body.encode(), method="POST",
                                 headers={"Content-Type": "application/vnd.kafka.binary.v2+json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    except OSError as e:
        return 0, {"error": str(e)}


@pytest.mark.timeout(180)
def test_rest_produce_through_a_leader_kill_loses_and_repeats_nothing(cluster, topic):
    cluster.create_topic(topic, 1, replication_factor=3, configs={"min.insync.replicas": "2"})
    leader_id = cluster.leaders(topic)[0]
    leader = cluster.node(leader_id)
    proxy = next(x for x in cluster.running_brokers() if x.node_id != leader_id)
    url = f"http://{proxy.host}:{proxy.rest_port}/topics/{topic}"
    acked: dict[bytes, int] = {}
    failed: list[bytes] = []
    stop = threading.Event()

    def produce():
        i = 0
        while not stop.is_set():
            values = [f"v{i}-{k}".encode() for k in range(5)]
            i += 1
            status, body = post(url, values)
            if status != 200:
                failed.extend(values)
                continue
            for v, o in zip(values, body["offsets"]):
                if o["error_code"] is None:
                    acked[v] = o["offset"]
                else:
                    failed.append(v)

    t = threading.Thread(target=produce)
    t.start()
    try:
        wait_for(lambda: len(acked) >= 200, 30, what="records acknowledged before the kill")
        leader.kill9()
        wait_for(lambda: cluster.leaders(topic, via=proxy)[0] not in (leader_id, -1), 30,
                 what="a new leader")
        before = len(acked)
        wait_for(lambda: len(acked) >= before + 200, 60, what="records acknowledged after it")
    finally:
        stop.set()
        t.join(90)
        leader.start()
    cluster.wait_ready()

    c = Consumer({"bootstrap.servers": proxy.bootstrap, "group.id": f"{topic}-check",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    seen: dict[bytes, list[int]] = {}
    deadline = time.monotonic() + 60
    want = set(acked)
    while time.monotonic() < deadline and not want <= set(seen):
        for m in c.consume(num_messages=1000, timeout=0.5):
            if m.error() is None:
                seen.setdefault(m.value(), []).append(m.offset())
    c.close()
    missing = [v for v in acked if v not in seen]
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {missing[:3]}"
    twice = {v: o for v, o in seen.items() if len(o) > 1}
    assert not twice, f"records written twice: {list(twice.items())[:3]}"
    moved = {v: (o, seen[v]) for v, o in acked.items() if seen[v] != [o]}
    assert not moved, f"records not at their acknowledged offset: {list(moved.items())[:3]}"
    assert len(acked) >= 400 and set(seen) <= set(acked) | set(failed)
