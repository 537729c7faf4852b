"""Share groups (KIP-932, "queues for Kafka") with the Java client's KafkaShareConsumer
(kafka-clients 4.4, java/ShareMember.java, explicit acknowledgement):

- two consumers share one partition's records: each record is delivered once (no record goes
  to both while locked), both get some, and every record is accepted exactly once;
- a consumer stopped (SIGSTOP: connected, silent) while holding records: the records come back
  to another consumer once the acquisition lock expires, not before, with delivery count 2; a
  consumer killed (SIGKILL): its records come back too (Kafka releases a member's records as
  soon as its connection closes, without waiting for the lock);
- REJECT archives a record at once; a record RELEASEd every time is delivered exactly
  ``group.share.delivery.count.limit`` times and then archived;
- acknowledged records are never delivered again, also across a broker kill -9.

The brokers run with ``group.share.record.lock.duration.ms=5000`` (and the minimum lowered to
1000 so Kafka takes it) and the group's ``share.auto.offset.reset=earliest`` is set with
IncrementalAlterConfigs on the GROUP resource before the consumers start.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ResourceType)

from test_java_groups import DEPS
from test_retention import OP_TIMEOUT_S, create

SOURCE = Path(__file__).parent / "java/ShareMember.java"
LOCK_MS = 5000
DELIVERY_LIMIT = 5
BROKER_PROPERTIES = {
    "group.share.record.lock.duration.ms": str(LOCK_MS),
    "group.share.min.record.lock.duration.ms": "1000",
    "group.share.delivery.count.limit": str(DELIVERY_LIMIT),
}

pytestmark = [
    pytest.mark.skipif(
        shutil.which("javac") is None or not list(DEPS.glob("kafka-clients-*.jar")),
        reason="javac or .deps/java missing (scripts/install-test-deps.sh)"),
    pytest.mark.timeout(240),
]


@pytest.fixture(scope="module")
def classes(tmp_path_factory):
    out = tmp_path_factory.mktemp("java-share-classes")
    subprocess.run(["javac", "-d", str(out), "-cp", f"{DEPS}/*", str(SOURCE)], check=True,
                   timeout=120)
    return out


@pytest.fixture(scope="module")
def share_broker(tmp_path_factory):
    from brokerproc import BrokerProcess
    b = BrokerProcess(tmp_path_factory.mktemp("share-broker"))
    b.properties.update(BROKER_PROPERTIES)
    b.start()
    yield b
    b.stop()


class ShareMember:
    """A ShareMember JVM and what it reported (stderr, the client's log, goes to a file)."""

    def __init__(self, classes, broker, group, topic, log_path: Path, delay_ms=0, hold_after=0):
        self.log_path = log_path
        self.stderr = open(log_path, "wb")
        self.proc = subprocess.Popen(
            ["java", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp",
             f"{DEPS}/*:{classes}", "ShareMember", broker.bootstrap, group, topic,
             str(delay_ms), str(hold_after)],
            stdout=subprocess.PIPE, stderr=self.stderr, stdin=subprocess.DEVNULL, text=True)
        self.lock = threading.Lock()
        self.got: list[tuple[int, int, int, str, float]] = []  # partition, offset, count, value, t
        self.acked: dict[tuple[int, int], str] = {}
        self.ack_failed: list = []
        self.holding = False
        self.closed = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            event = json.loads(line)
            with self.lock:
                if "got" in event:
                    p, o, c, v = event["got"]
                    self.got.append((p, o, c, v, time.monotonic()))
                elif "acked" in event:
                    p, o, t = event["acked"]
                    self.acked[(p, o)] = t
                elif "ack_failed" in event:
                    self.ack_failed.append(event["ack_failed"])
                elif "holding" in event:
                    self.holding = True
                elif "closed" in event:
                    self.closed = True

    def offsets_got(self) -> list[int]:
        with self.lock:
            return [o for _, o, _, _, _ in self.got]

    def kill9(self):
        self.proc.kill()
        self.proc.wait(10)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.stderr.close()

    def log_tail(self, lines=30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def earliest(broker, group):
    """The group's share.auto.offset.reset=earliest (a group config, set before it starts)."""
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    res = ConfigResource(ResourceType.GROUP, group, incremental_configs=[
        ConfigEntry("share.auto.offset.reset", "earliest",
                    incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(OP_TIMEOUT_S)


def produce(broker, topic, values: list[str]):
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, "acks": "all"})
    for v in values:
        p.produce(topic, value=v.encode(), partition=0)
    assert p.flush(OP_TIMEOUT_S) == 0


def wait_for(predicate, timeout_s, what, members=()):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    logs = "\n".join(f"--- member log\n{m.log_tail()}" for m in members)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def accepted(members) -> dict[int, int]:
    """offset -> how many times it was ACCEPTed (durably)."""
    out: dict[int, int] = {}
    for m in members:
        with m.lock:
            for (_, o), t in m.acked.items():
                if t == "ACCEPT":
                    out[o] = out.get(o, 0) + 1
    return out


def test_two_consumers_share_a_partition(share_broker, classes, topic, tmp_path):
    b = share_broker
    create(b, topic, {})
    group = f"share-{topic}"
    earliest(b, group)
    n = 600
    members = [ShareMember(classes, b, group, topic, tmp_path / f"m{i}.log", delay_ms=10)
               for i in range(2)]
    try:
        # Records arrive over a few seconds while both consumers are joining, and each takes
        # 10 ms per record, so a consumer that got in first cannot drain the partition alone.
        for r in range(10):
            produce(b, topic, [f"v{i}" for i in range(r * n // 10, (r + 1) * n // 10)])
            time.sleep(0.5)
        wait_for(lambda: len(accepted(members)) == n, 90, "every record accepted", members)
        time.sleep(1)  # anything delivered twice would show now
        deliveries = [o for m in members for o in m.offsets_got()]
        assert sorted(deliveries) == list(range(n)), "a record was delivered twice or lost"
        assert all(c == 1 for c in accepted(members).values())
        assert all(m.offsets_got() for m in members), "one consumer got nothing"
        assert not any(m.ack_failed for m in members)
    finally:
        for m in members:
            m.stop()


def held_and_redelivered(b, classes, topic, tmp_path, stop_signal):
    """A consumer holds records, then is stopped with `stop_signal`; another takes over.
    Returns (held offsets, [(offset, delivery count, seconds after the stop)] of the held
    records' second delivery)."""
    create(b, topic, {})
    group = f"share-{topic}"
    earliest(b, group)
    n = 100
    produce(b, topic, [f"v{i}" for i in range(n)])
    holder = ShareMember(classes, b, group, topic, tmp_path / "holder.log", hold_after=1)
    other = None
    try:
        wait_for(lambda: holder.holding, 60, "the first consumer to hold records", [holder])
        held = set(holder.offsets_got())
        stopped_at = time.monotonic()
        holder.proc.send_signal(stop_signal)
        other = ShareMember(classes, b, group, topic, tmp_path / "other.log")
        wait_for(lambda: len(accepted([other])) == n, 90, "every record accepted", [other])
        with other.lock:
            again = [(o, c, t - stopped_at) for _, o, c, _, t in other.got if o in held]
        assert sorted(o for o, _, _ in again) == sorted(held)
        return held, again
    finally:
        holder.kill9()
        holder.stop()
        if other is not None:
            other.stop()


def test_a_stuck_consumers_records_come_back_when_the_lock_expires(share_broker, classes,
                                                                   topic, tmp_path):
    """SIGSTOP: the consumer keeps its connection but neither acknowledges nor heartbeats."""
    held, again = held_and_redelivered(share_broker, classes, topic, tmp_path, signal.SIGSTOP)
    assert all(c == 2 for _, c, _ in again), again
    # Not before the lock ran out (less a little for timer granularity).
    assert min(t for _, _, t in again) >= LOCK_MS / 1000 - 0.5, again


def test_a_killed_consumers_records_come_back(share_broker, classes, topic, tmp_path):
    """SIGKILL closes the consumer's connections: Kafka releases what it held at once, and
    at the latest the lock expires."""
    held, again = held_and_redelivered(share_broker, classes, topic, tmp_path, signal.SIGKILL)
    assert all(c == 2 for _, c, _ in again), again


def test_reject_and_the_delivery_limit_archive_poison_records(share_broker, classes, topic,
                                                             tmp_path):
    b = share_broker
    create(b, topic, {})
    group = f"share-{topic}"
    earliest(b, group)
    values = [f"v{i}" for i in range(20)]
    values[5] = "release-me"
    values[9] = "reject-me"
    produce(b, topic, values)
    m = ShareMember(classes, b, group, topic, tmp_path / "m.log")
    try:
        wait_for(lambda: len(accepted([m])) == 18, 60, "the good records accepted", [m])
        wait_for(lambda: m.offsets_got().count(5) >= DELIVERY_LIMIT, 60,
                 "the released record delivered up to the limit", [m])
        time.sleep(3)  # a sixth delivery would come within this
        got = m.offsets_got()
        assert got.count(5) == DELIVERY_LIMIT, got
        assert got.count(9) == 1, got
        with m.lock:
            counts = [c for _, o, c, _, _ in m.got if o == 5]
        assert counts == list(range(1, DELIVERY_LIMIT + 1))
        assert 5 not in accepted([m]) and 9 not in accepted([m])
    finally:
        m.stop()


def test_acknowledged_records_survive_a_broker_kill9(broker_factory, classes, topic, tmp_path):
    b = broker_factory()
    b.properties.update(BROKER_PROPERTIES)
    b.start()
    create(b, topic, {})
    group = f"share-{topic}"
    earliest(b, group)
    n = 400
    produce(b, topic, [f"v{i}" for i in range(n)])
    first = ShareMember(classes, b, group, topic, tmp_path / "first.log", delay_ms=5)
    try:
        wait_for(lambda: len(accepted([first])) >= n // 4, 60, "a quarter accepted", [first])
        b.kill9()
        first.kill9()
    finally:
        first.stop()
    done_before = set(accepted([first]))
    b.start()
    second = ShareMember(classes, b, group, topic, tmp_path / "second.log")
    try:
        wait_for(lambda: set(accepted([first, second])) == set(range(n)), 120,
                 "every record accepted", [second])
        again = done_before & set(second.offsets_got())
        assert not again, f"acknowledged records delivered again: {sorted(again)[:10]}"
    finally:
        second.stop()
