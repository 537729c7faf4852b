"""REST Proxy v2 consumer instances (POST /consumers/{group} ...) driven over HTTP, checked
against the Kafka-protocol view: what confluent-kafka produced is read through the proxy, the
proxy's commits are what AdminClient reads back, an instance shares its group's partitions with
another instance and with a confluent-kafka KIP-848 consumer, and bad requests get Confluent's
error bodies.

Run with TEST_BROKER=kafka the same proxy fronts the Apache Kafka broker and must answer the same.
"""

from __future__ import annotations

import base64
import json
import time

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from resthelp import call, create, start_proxy

V2 = "application/vnd.kafka.v2+json"
V2_JSON = "application/vnd.kafka.json.v2+json"
V2_BINARY = "application/vnd.kafka.binary.v2+json"


def produce(broker, topic: str, records: list[tuple[bytes | None, bytes, int]]) -> None:
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for key, value, partition in records:
        p.produce(topic, key=key, value=value, partition=partition)
    assert p.flush(30) == 0


def new_instance(proxy: str, group: str, **config) -> str:
    """Creates an instance; its base URI."""
    status, body, ctype = call(f"{proxy}/consumers/{group}", "POST", config, V2)
    assert status == 200, body
    assert ctype.startswith(V2)
    assert body["base_uri"].endswith(f"/consumers/{group}/instances/{body['instance_id']}")
    return f"{proxy}/consumers/{group}/instances/{body['instance_id']}"


def read_until(base: str, count: int, accept: str = V2_BINARY, seconds: float = 60) -> list:
    out: list = []
    deadline = time.time() + seconds
    while len(out) < count and time.time() < deadline:
        status, body, _ = call(f"{base}/records?timeout=1000", accept=accept)
        assert status == 200, body
        out.extend(body)
    return out


def assignment(base: str) -> set[tuple[str, int]]:
    status, body, _ = call(f"{base}/assignments")
    assert status == 200, body
    return {(p["topic"], p["partition"]) for p in body["partitions"]}


def wait_for(what, seconds: float = 60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        got = what()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def committed(broker, group: str, topic: str, partitions: int) -> dict[int, int]:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])
    got = admin.list_consumer_group_offsets([req])[group].result(30)
    return {tp.partition: tp.offset for tp in got.topic_partitions if tp.offset >= 0}


def test_subscribe_read_commit_delete(broker, proxy, topic):
    create(broker, topic, 2)
    records = [(f"k{i}".encode(), f"v{i}".encode(), i % 2) for i in range(20)]
    produce(broker, topic, records)
    group = f"{topic}-g"
    base = new_instance(proxy, group, format="binary", **{"auto.offset.reset": "earliest",
                                                         "auto.commit.enable": "false"})
    status, body, _ = call(f"{base}/subscription", "POST", {"topics": [topic]}, V2)
    assert status == 204, body
    status, body, _ = call(f"{base}/subscription")
    assert status == 200 and body == {"topics": [topic]}
    got = read_until(base, 20)
    assert len(got) == 20
    seen = {(r["partition"], r["offset"]): r for r in got}
    assert len(seen) == 20  # nothing twice
    for p in (0, 1):
        mine = [(k, v) for (k, v, part) in records if part == p]
        for off, (k, v) in enumerate(mine):
            r = seen[(p, off)]
            assert r["topic"] == topic
            assert base64.b64decode(r["key"]) == k and base64.b64decode(r["value"]) == v
    assert assignment(base) == {(topic, 0), (topic, 1)}
    # Nothing more to read: an empty answer after the wait.
    status, body, _ = call(f"{base}/records?timeout=200", accept=V2_BINARY)
    assert status == 200 and body == []
    # Commit with no body: every position, as the Kafka-protocol view shows it.
    status, body, _ = call(f"{base}/offsets", "POST", None, V2)
    assert status == 200, body
    assert committed(broker, group, topic, 2) == {0: 10, 1: 10}
    status, body, _ = call(f"{base}/offsets", "GET",
                           {"partitions": [{"topic": topic, "partition": 0}]}, V2)
    assert status == 200, body
    assert body["offsets"] == [{"topic": topic, "partition": 0, "offset": 10, "metadata": ""}]
    status, body, _ = call(base, "DELETE")
    assert status == 204, body
    status, body, _ = call(base, "DELETE")
    assert status == 404 and body["error_code"] == 40403
    # A new instance of the group starts where the commit left off.
    produce(broker, topic, [(b"late", b"late", 1)])
    base2 = new_instance(proxy, group, format="binary")
    call(f"{base2}/subscription", "POST", {"topics": [topic]}, V2)
    got = read_until(base2, 1)
    assert [(r["partition"], r["offset"]) for r in got] == [(1, 10)]
    assert call(base2, "DELETE")[0] == 204


def test_json_format_and_explicit_commit(broker, proxy, topic):
    create(broker, topic, 1)
    produce(broker, topic, [(json.dumps({"id": i}).encode(), json.dumps({"n": i}).encode(), 0)
                            for i in range(5)])
    group = f"{topic}-g"
    base = new_instance(proxy, group, format="json", **{"auto.offset.reset": "earliest",
                                                       "auto.commit.enable": "false"})
    call(f"{base}/subscription", "POST", {"topics": [topic]}, V2)
    # The binary Accept on a json instance: Confluent's 40601.
    status, body, _ = call(f"{base}/records", accept=V2_BINARY)
    assert status == 406 and body["error_code"] == 40601
    got = read_until(base, 5, accept=V2_JSON)
    assert [r["value"] for r in got] == [{"n": i} for i in range(5)]
    assert [r["key"] for r in got] == [{"id": i} for i in range(5)]
    # Committing offset 2 means "records up to 2 are done": the group's offset is 3.
    status, body, _ = call(f"{base}/offsets", "POST", {"offsets": [
        {"topic": topic, "partition": 0, "offset": 2, "metadata": "m"}]}, V2)
    assert status == 200, body
    assert committed(broker, group, topic, 1) == {0: 3}
    status, body, _ = call(f"{base}/offsets", "GET",
                           {"partitions": [{"topic": topic, "partition": 0}]}, V2)
    assert body["offsets"] == [{"topic": topic, "partition": 0, "offset": 3, "metadata": "m"}]
    assert call(base, "DELETE")[0] == 204


def test_two_instances_share_the_partitions_and_take_over_on_delete(broker, proxy, topic):
    create(broker, topic, 4)
    group = f"{topic}-g"
    a = new_instance(proxy, group, **{"auto.offset.reset": "earliest"})
    b = new_instance(proxy, group, **{"auto.offset.reset": "earliest"})
    for base in (a, b):
        assert call(f"{base}/subscription", "POST", {"topics": [topic]}, V2)[0] == 204
    everything = {(topic, p) for p in range(4)}

    def split():
        # Reads drive nothing here (heartbeats do); the assignment settles by itself.
        sa, sb = assignment(a), assignment(b)
        return (sa, sb) if sa and sb and sa | sb == everything else None

    sa, sb = wait_for(split)
    assert not sa & sb, (sa, sb)
    produce(broker, topic, [(None, f"v{p}".encode(), p) for p in range(4)])
    got_a = read_until(a, len(sa))
    got_b = read_until(b, len(sb))
    assert {(topic, r["partition"]) for r in got_a} == sa
    assert {(topic, r["partition"]) for r in got_b} == sb
    # The leaving instance's partitions go to the other one, which reads on from the positions
    # auto-commit saved when they were given up.
    assert call(a, "DELETE")[0] == 204
    assert wait_for(lambda: assignment(b) == everything)
    produce(broker, topic, [(None, b"after", p) for p in range(4)])
    got = read_until(b, 4)
    assert sorted((r["partition"], r["offset"]) for r in got) == [(p, 1) for p in range(4)]
    assert call(b, "DELETE")[0] == 204


def test_an_instance_and_a_kafka_consumer_in_one_group(broker, proxy, topic):
    create(broker, topic, 4)
    group = f"{topic}-g"
    base = new_instance(proxy, group, **{"auto.offset.reset": "earliest"})
    assert call(f"{base}/subscription", "POST", {"topics": [topic]}, V2)[0] == 204
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                  "group.protocol": "consumer", "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    try:
        everything = {(topic, p) for p in range(4)}

        def split():
            c.poll(0.2)
            mine = {(tp.topic, tp.partition) for tp in c.assignment()}
            theirs = assignment(base)
            return (mine, theirs) if mine and theirs and mine | theirs == everything \
                and not mine & theirs else None

        mine, theirs = wait_for(split)
        assert len(mine) + len(theirs) == 4
    finally:
        c.close()
    call(base, "DELETE")


def test_manual_assignment_and_seeks(broker, proxy, topic):
    create(broker, topic, 2)
    produce(broker, topic, [(None, f"v{i}".encode(), 1) for i in range(10)])
    base = new_instance(proxy, f"{topic}-g", **{"auto.offset.reset": "earliest"})
    # Seeking a partition not assigned: illegal state.
    status, body, _ = call(f"{base}/positions/beginning", "POST",
                           {"partitions": [{"topic": topic, "partition": 1}]}, V2)
    assert status == 409 and body["error_code"] == 40903
    status, body, _ = call(f"{base}/assignments", "POST",
                           {"partitions": [{"topic": topic, "partition": 1}]}, V2)
    assert status == 204, body
    assert assignment(base) == {(topic, 1)}
    # Subscribing while assigned: mutually exclusive.
    status, body, _ = call(f"{base}/subscription", "POST", {"topics": [topic]}, V2)
    assert status == 409 and body["error_code"] == 40903
    status, _, _ = call(f"{base}/positions", "POST",
                        {"offsets": [{"topic": topic, "partition": 1, "offset": 7}]}, V2)
    assert status == 204
    got = read_until(base, 3)
    assert [r["offset"] for r in got] == [7, 8, 9]
    assert call(f"{base}/positions/beginning", "POST",
                {"partitions": [{"topic": topic, "partition": 1}]}, V2)[0] == 204
    got = read_until(base, 10)
    assert [r["offset"] for r in got] == list(range(10))
    assert call(f"{base}/positions/end", "POST",
                {"partitions": [{"topic": topic, "partition": 1}]}, V2)[0] == 204
    status, body, _ = call(f"{base}/records?timeout=200", accept=V2_BINARY)
    assert status == 200 and body == []
    assert call(base, "DELETE")[0] == 204


def test_topic_pattern_subscription(broker, proxy, topic):
    create(broker, f"{topic}-a", 1)
    create(broker, f"{topic}-b", 1)
    create(broker, f"x{topic}-c", 1)  # does not match as a whole name
    produce(broker, f"{topic}-a", [(None, b"a", 0)])
    produce(broker, f"{topic}-b", [(None, b"b", 0)])
    produce(broker, f"x{topic}-c", [(None, b"c", 0)])
    base = new_instance(proxy, f"{topic}-g", **{"auto.offset.reset": "earliest"})
    status, body, _ = call(f"{base}/subscription", "POST",
                           {"topic_pattern": f"{topic}-[ab]"}, V2)
    assert status == 204, body
    got = read_until(base, 2)
    assert sorted(base64.b64decode(r["value"]) for r in got) == [b"a", b"b"]
    status, body, _ = call(f"{base}/subscription")
    assert sorted(body["topics"]) == [f"{topic}-a", f"{topic}-b"]
    assert call(base, "DELETE")[0] == 204


def test_consumer_errors(broker, proxy, topic):
    group = f"{topic}-g"
    base = new_instance(proxy, group, name="one")
    status, body, _ = call(f"{proxy}/consumers/{group}", "POST", {"name": "one"}, V2)
    assert status == 409 and body["error_code"] == 40902
    status, body, _ = call(f"{base}/records", accept=V2_BINARY)
    assert status == 409 and body["error_code"] == 40903
    for bad in ({"format": "xml"}, {"auto.offset.reset": "sometimes"},
                {"auto.commit.enable": "maybe"}, {"fetch.min.bytes": "lots"}):
        status, body, _ = call(f"{proxy}/consumers/{group}", "POST", bad, V2)
        assert status == 422 and body["error_code"] == 42204, (bad, body)
    status, body, _ = call(f"{proxy}/consumers/{group}/instances/nobody/records",
                           accept=V2_BINARY)
    assert status == 404 and body["error_code"] == 40403
    for path, payload in (("subscription", {"topics": []}), ("subscription", {"other": 1}),
                          ("offsets", {"offsets": [{"topic": topic}]}),
                          ("assignments", {"partitions": "all"})):
        status, body, _ = call(f"{base}/{path}", "POST", payload, V2)
        assert status == 422, (path, payload, body)
    status, body, _ = call(f"{base}/subscription", "POST", b"{not json", V2)
    assert status == 400, body
    status, body, _ = call(f"{base}/records?timeout=soon", accept=V2_BINARY)
    assert status == 400, body
    assert call(base, "DELETE")[0] == 204


def test_idle_instances_expire_and_the_count_is_bounded(broker, tmp_path, topic):
    create(broker, topic, 1)
    p = start_proxy(broker, tmp_path / "proxy", "millrace.rest.consumer.instance.timeout.ms=2000",
                    "millrace.rest.consumer.max.instances=2")
    try:
        url = f"http://127.0.0.1:{p.rest_port}"
        group = f"{topic}-g"
        a = new_instance(url, group)
        assert call(f"{a}/subscription", "POST", {"topics": [topic]}, V2)[0] == 204
        new_instance(url, group)
        status, body, _ = call(f"{url}/consumers/{group}", "POST", {}, V2)
        assert status == 429 and body["error_code"] == 42901
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})

        def members() -> int:
            d = admin.describe_consumer_groups([group])[group].result(30)
            return len(d.members)

        # Touched while waiting (any request restarts an instance's idle clock).
        assert wait_for(lambda: call(f"{a}/assignments")[0] == 200 and members() == 1)
        # Untouched past the timeout: out of the group, and gone.
        assert wait_for(lambda: members() == 0, 30)
        status, body, _ = call(f"{a}/assignments")
        assert status == 404 and body["error_code"] == 40403
        new_instance(url, group)  # room again
    finally:
        p.stop()
