"""KIP-848 regex subscriptions resolved by the broker (ConsumerGroupHeartbeat v1
SubscribedTopicRegex), with real clients against the session broker (millrace, or Apache Kafka
with TEST_BROKER=kafka: both must pass).

- confluent-kafka (librdkafka 2.16, ``group.protocol=consumer``): ``subscribe(["^P-[a-z]"])``.
  In this mode librdkafka does not match topics itself: it sends its regexes, joined as
  ``(^P-[a-z])``, in SubscribedTopicRegex beside the (empty) list of names, and consumes what
  the broker assigns (rdkafka_cgrp.c, ``rd_kafka_cgrp_subscription_set``).
- The Java client 4.4 (java/RegexConsumer.java): ``subscribe(SubscriptionPattern)``, which sends
  the expression when it joins, with null names, and null on later heartbeats.

Each consumes from the topics created before it started that the expression matches as a whole
name (``P-a``, ``P-b``), never from ``P-ab`` (a search would match it) or ``xP-a``; ConsumerGroupDescribe
shows the member's expression and exactly those topics in its assignment; a matching topic
created while it runs (``P-c``) is assigned and consumed, and a deleted one (``P-b``) leaves its
assignment. Millrace's session broker resolves again 1 s after a topic change
(millrace.group.consumer.regex.refresh.min.interval.ms=1000, conftest.py); Kafka waits at least
10 s between two resolutions of a group, so the deadlines allow for that.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

import kwire as w
from test_confluent_kafka import create_topic
from test_java_groups import DEPS
from test_kip848 import API_CGD, cstr, flexible_request

SOURCE = Path(__file__).parent / "java/RegexConsumer.java"
API_METADATA = 3
# Kafka: up to 10 s before the group resolves again, plus a 5 s heartbeat, plus the client's
# metadata for the new topic id.
CHANGE_TIMEOUT_S = 45
START_TIMEOUT_S = 45

pytestmark = pytest.mark.timeout(240)


def describe_members(port: int, group: str) -> list[dict]:
    """ConsumerGroupDescribe v1: each member's id, regex, names and assigned/target topics."""
    body = w.uvarint(2) + cstr(group) + b"\x00" + w.uvarint(0)
    r = flexible_request(port, API_CGD, 1, body)
    r.i32()  # throttle
    assert r.uvarint() - 1 == 1
    error = r.i16()
    r.cstring()  # message
    if error != 0:
        return []
    r.cstring(), r.cstring()  # group id, state
    r.i32(), r.i32(), r.cstring()  # epochs, assignor
    members = []
    for _ in range(r.uvarint() - 1):
        m = {"member_id": r.cstring()}
        r.cstring(), r.cstring()  # instance, rack
        m["epoch"] = r.i32()
        r.cstring(), r.cstring()  # client id, host
        m["names"] = [r.cstring() for _ in range(r.uvarint() - 1)]
        m["regex"] = r.cstring()
        for key in ("assigned", "target"):
            topics = set()
            for _ in range(r.uvarint() - 1):
                r.take(16)
                name = r.cstring()
                if [r.i32() for _ in range(r.uvarint() - 1)]:
                    topics.add(name)
                r.uvarint()
            r.uvarint()
            m[key] = topics
        r.i8()  # member type
        r.uvarint()
        members.append(m)
    return members


def metadata_v12(port: int, name: str | None, topic_id: uuid.UUID) -> tuple[int, str | None,
                                                                           uuid.UUID]:
    """Metadata v12 for one topic, by name or id: (error code, name, id) of the answer."""
    body = w.uvarint(2) + topic_id.bytes + cstr(name) + w.uvarint(0)
    body += b"\x00\x00" + w.uvarint(0)  # no auto-creation, no authorized operations
    r = flexible_request(port, API_METADATA, 12, body)
    r.i32()  # throttle
    for _ in range(r.uvarint() - 1):  # brokers
        r.i32(), r.cstring(), r.i32(), r.cstring(), r.uvarint()
    r.cstring(), r.i32()  # cluster id, controller
    assert r.uvarint() - 1 == 1
    return r.i16(), r.cstring(), uuid.UUID(bytes=r.take(16))


def test_metadata_by_topic_id_ignores_the_java_clients_empty_name(broker):
    """The Java client resolves the topic ids of a KIP-848 assignment with Metadata requests
    whose entries carry the id and the name's default, "" (librdkafka: null). Kafka looks them
    up by id; so must the broker, or a regex consumer never learns what it was assigned."""
    topic = f"rx-meta-{uuid.uuid4().hex[:10]}"
    create_topic(broker, topic, 1)
    error, name, topic_id = metadata_v12(broker.port, topic, uuid.UUID(int=0))
    assert (error, name) == (0, topic) and topic_id.int != 0
    assert metadata_v12(broker.port, "", topic_id) == (0, topic, topic_id)
    assert metadata_v12(broker.port, None, topic_id) == (0, topic, topic_id)
    unknown = uuid.uuid4()
    assert metadata_v12(broker.port, "", unknown)[0] == 100  # UNKNOWN_TOPIC_ID


class ConfluentRegexConsumer:
    """librdkafka with group.protocol=consumer, polling in a thread."""

    def __init__(self, broker, group: str, regex: str, tmp_path: Path):
        self.consumer = Consumer({
            "bootstrap.servers": broker.bootstrap, "group.id": group,
            "group.protocol": "consumer", "auto.offset.reset": "earliest",
            "enable.auto.commit": False, "topic.metadata.refresh.interval.ms": 1000})
        self.consumer.subscribe([regex])
        self.consumed: set[tuple[str, int, int]] = set()
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self):
        while not self.stopping:
            msg = self.consumer.poll(0.2)
            if msg is None:
                continue
            with self.lock:
                if msg.error():
                    self.errors.append(str(msg.error()))
                else:
                    self.consumed.add((msg.topic(), msg.partition(), msg.offset()))
        self.consumer.close()

    def topics(self) -> set[str]:
        with self.lock:
            return {t for t, _, _ in self.consumed}

    def stop(self):
        self.stopping = True
        self.thread.join(30)

    def log_tail(self) -> str:
        return f"errors: {self.errors[-10:]}"


class JavaRegexConsumer:
    """java/RegexConsumer.java in its own JVM."""

    def __init__(self, classes: Path, broker, group: str, regex: str, tmp_path: Path):
        self.log_path = tmp_path / "java-regex.log"
        self.stderr = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            ["java", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp",
             f"{DEPS}/*:{classes}", "RegexConsumer", broker.bootstrap, group, regex],
            stdout=subprocess.PIPE, stderr=self.stderr, stdin=subprocess.DEVNULL, text=True)
        self.consumed: set[tuple[str, int, int]] = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            event = json.loads(line)
            if "msg" in event:
                with self.lock:
                    self.consumed.add(tuple(event["msg"]))

    def topics(self) -> set[str]:
        with self.lock:
            return {t for t, _, _ in self.consumed}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.stderr.close()

    def log_tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-40:])


@pytest.fixture(scope="module")
def java_classes(tmp_path_factory):
    if shutil.which("javac") is None or not list(DEPS.glob("kafka-clients-*.jar")):
        pytest.skip("javac or .deps/java missing (scripts/install-test-deps.sh)")
    out = tmp_path_factory.mktemp("java-regex-classes")
    subprocess.run(["javac", "-d", str(out), "-cp", f"{DEPS}/*", str(SOURCE)], check=True,
                   timeout=120)
    return out


def produce_one_per_partition(broker, topic: str, partitions: int):
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for part in range(partitions):
        p.produce(topic, value=f"{topic}/{part}".encode(), partition=part)
    assert p.flush(30) == 0


def wait_until(predicate, timeout_s: float, what: str, consumer, port, group) -> float:
    """Seconds until ``predicate()``; fails with the group's description and the client's log."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}; consumed {consumer.topics()};"
                f" group {describe_members(port, group)}\n{consumer.log_tail()}")


@pytest.mark.parametrize("client", ["confluent", "java"])
def test_regex_subscription_is_resolved_by_the_broker(broker, tmp_path, client, request):
    p = f"rx{uuid.uuid4().hex[:10]}"
    group = f"{p}-group"
    layout = {f"{p}-a": 2, f"{p}-b": 1, f"{p}-ab": 1, f"x{p}-a": 1}
    for topic, partitions in layout.items():
        create_topic(broker, topic, partitions)
        produce_one_per_partition(broker, topic, partitions)
    regex = f"^{p}-[a-z]"
    if client == "java":
        consumer = JavaRegexConsumer(request.getfixturevalue("java_classes"), broker, group,
                                     regex, tmp_path)
    else:
        consumer = ConfluentRegexConsumer(broker, group, regex, tmp_path)
    matched = {f"{p}-a", f"{p}-b"}
    try:
        took = wait_until(lambda: matched <= consumer.topics(), START_TIMEOUT_S,
                          "the matching topics' records", consumer, broker.port, group)
        [member] = describe_members(broker.port, group)
        # librdkafka sends "(^P-[a-z])", the Java client the expression as given.
        assert regex in (member["regex"] or ""), member
        assert member["assigned"] == matched, member
        assert consumer.topics() == matched, "a topic matched only by a search was consumed"

        create_topic(broker, f"{p}-c", 1)
        produce_one_per_partition(broker, f"{p}-c", 1)
        created = wait_until(lambda: f"{p}-c" in consumer.topics(), CHANGE_TIMEOUT_S,
                             "the topic created after the start to be consumed", consumer,
                             broker.port, group)
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.delete_topics([f"{p}-b"])[f"{p}-b"].result(30)
        deleted = wait_until(
            lambda: [m["target"] for m in describe_members(broker.port, group)]
            == [{f"{p}-a", f"{p}-c"}], CHANGE_TIMEOUT_S,
            "the deleted topic to leave the assignment", consumer, broker.port, group)
        print(f"{client}: first records after {took:.1f}s, created topic consumed after "
              f"{created:.1f}s, deleted topic unassigned after {deleted:.1f}s")
        assert consumer.topics() == matched | {f"{p}-c"}
    finally:
        consumer.stop()
        leftovers = [t for t in layout if t != f"{p}-b"] + [f"{p}-c"]
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        for future in admin.delete_topics(leftovers).values():
            try:
                future.result(30)
            except Exception:  # noqa: BLE001 - cleanup only (P-c may not exist)
                pass
