"""Consumer groups with real clients: partitions shared so each has exactly one owner, members
that close or crash have their partitions moved, every message is consumed at least once with
commits after processing, static members come back without a rebalance, and committed offsets
survive a broker crash. Members run as separate processes (group_member.py) so a test can
SIGKILL one.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

HERE = Path(__file__).parent
PARTITIONS = 6
SESSION_MS = 6000


class Member:
    """A group_member.py process and what it reported."""

    def __init__(self, broker, topic, group, strategy="range", instance_id=None):
        cmd = [sys.executable, str(HERE / "group_member.py"), broker.bootstrap, topic, group,
               "--strategy", strategy, "--session-ms", str(SESSION_MS)]
        if instance_id:
            cmd += ["--instance-id", instance_id]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.owned: set[int] = set()
        self.consumed: set[tuple[int, int]] = set()
        self.revocations = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            event = json.loads(line)
            with self.lock:
                if "assigned" in event:
                    self.owned |= set(event["assigned"])
                elif "revoked" in event:
                    self.owned -= set(event["revoked"])
                    self.revocations += 1
                elif "msg" in event:
                    self.consumed.add(tuple(event["msg"]))

    def snapshot(self) -> set[int]:
        with self.lock:
            return set(self.owned)

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        with self.lock:
            self.owned = set()

    def kill(self):
        self.proc.kill()
        self.proc.wait(10)
        with self.lock:
            self.owned = set()


def fast_group_broker(broker_factory, tmp_path):
    b = broker_factory()
    cfg = tmp_path / "server.properties"
    cfg.write_text("group.initial.rebalance.delay.ms=0\ngroup.min.session.timeout.ms=1000\n")
    b.extra_args = ["--config", str(cfg)]
    b.start()
    return b


def create(broker, topic):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(30)


def produce(broker, topic, per_partition, start=0):
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for part in range(PARTITIONS):
        for i in range(per_partition):
            p.produce(topic, value=f"{part}-{start + i}".encode(), partition=part)
    assert p.flush(30) == 0


def wait_for(predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}")


def exclusive_cover(members) -> bool:
    """Every partition owned by exactly one live member, and every live member owns one."""
    owned = [m.snapshot() for m in members]
    union = set().union(*owned) if owned else set()
    disjoint = sum(len(o) for o in owned) == len(union)
    return union == set(range(PARTITIONS)) and disjoint and all(owned)


def consumed_all(members, per_partition_total) -> bool:
    seen = set().union(*(m.consumed for m in members))
    return all((p, o) in seen for p in range(PARTITIONS) for o in range(per_partition_total))


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_three_members_share_move_on_close_and_crash(broker_factory, tmp_path, strategy):
    b = fast_group_broker(broker_factory, tmp_path)
    topic, group = f"groups-{strategy}", f"g-{strategy}"
    create(b, topic)
    produce(b, topic, 50)
    members = [Member(b, topic, group, strategy) for _ in range(3)]
    try:
        wait_for(lambda: exclusive_cover(members), 60, "three members to share six partitions")
        members[0].close()  # leaves the group
        wait_for(lambda: exclusive_cover(members[1:]), 60, "partitions of the closed member to move")
        members[1].kill()  # crashes: its partitions move after the session timeout
        wait_for(lambda: exclusive_cover(members[2:]), SESSION_MS / 1000 + 30,
                 "partitions of the crashed member to move")
        produce(b, topic, 50, start=50)
        wait_for(lambda: consumed_all(members, 100), 60, "every message to be consumed")
    finally:
        for m in members:
            m.kill() if m.proc.poll() is None else None


def test_static_member_restart_keeps_partitions_without_rebalance(broker_factory, tmp_path):
    b = fast_group_broker(broker_factory, tmp_path)
    topic, group = "groups-static", "g-static"
    create(b, topic)
    members = [Member(b, topic, group, instance_id=f"static-{i}") for i in range(3)]
    try:
        wait_for(lambda: exclusive_cover(members), 60, "three static members to share partitions")
        before = [m.snapshot() for m in members]
        revocations = [m.revocations for m in members]
        members[2].kill()  # a static member leaves no LeaveGroup behind
        members[2] = Member(b, topic, group, instance_id="static-2")
        wait_for(lambda: members[2].snapshot() == before[2], 30, "the static member to get its partitions back")
        time.sleep(2)
        assert [m.snapshot() for m in members[:2]] == before[:2]
        assert [m.revocations for m in members[:2]] == revocations[:2], "the others were rebalanced"
    finally:
        for m in members:
            m.kill() if m.proc.poll() is None else None


def test_committed_offsets_survive_broker_crash(broker_factory, tmp_path):
    b = fast_group_broker(broker_factory, tmp_path)
    topic, group = "groups-durable", "g-durable"
    create(b, topic)
    produce(b, topic, 20)
    m = Member(b, topic, group)
    try:
        wait_for(lambda: consumed_all([m], 20), 60, "the member to consume and commit everything")
    finally:
        m.close()
    b.kill9()
    b.start()
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        committed = c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=30)
        assert sorted((tp.partition, tp.offset) for tp in committed) == [(p, 20) for p in range(PARTITIONS)]
    finally:
        c.close()


def test_simple_consumer_commit_and_fetch_without_membership(broker):
    topic = "groups-simple"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})  # kept alive until done
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "g-simple", "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, 7)], asynchronous=False)
        (tp,) = c.committed([TopicPartition(topic, 0)], timeout=30)
        assert tp.offset == 7
    finally:
        c.close()


def test_kafka_python_group_members_share_and_commit(broker_factory, tmp_path):
    from kafka import KafkaConsumer, KafkaProducer

    b = fast_group_broker(broker_factory, tmp_path)
    topic, group = "groups-kafka-python", "g-kafka-python"
    create(b, topic)
    p = KafkaProducer(bootstrap_servers=b.bootstrap, acks="all")
    for part in range(PARTITIONS):
        for i in range(10):
            p.send(topic, value=f"{part}-{i}".encode(), partition=part)
    p.flush(30)
    p.close()
    consumers = [KafkaConsumer(topic, bootstrap_servers=b.bootstrap, group_id=group,
                               auto_offset_reset="earliest", enable_auto_commit=False,
                               session_timeout_ms=SESSION_MS, heartbeat_interval_ms=500)
                 for _ in range(2)]
    seen: set[tuple[int, int]] = set()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(seen) < PARTITIONS * 10:
            for c in consumers:
                for tp, msgs in c.poll(timeout_ms=200).items():
                    for m in msgs:
                        seen.add((tp.partition, m.offset))
                    c.commit()
        assert len(seen) == PARTITIONS * 10
        owned = [{tp.partition for tp in c.assignment()} for c in consumers]
        assert owned[0] | owned[1] == set(range(PARTITIONS)) and not owned[0] & owned[1], owned
    finally:
        for c in consumers:
            c.close()


def test_list_describe_delete_groups_and_bad_commits(broker):
    from confluent_kafka import ConsumerGroupState, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topic, group = "groups-admin", "g-admin"
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, 3), TopicPartition(topic, 1, 4)], asynchronous=False)
        with pytest.raises(KafkaException) as e:  # a partition that does not exist
            c.commit(offsets=[TopicPartition(topic, 9, 1)], asynchronous=False)
        assert "UNKNOWN_TOPIC_OR_PART" in str(e.value)
    finally:
        c.close()
    listed = admin.list_consumer_groups(request_timeout=10).result(30)
    assert group in {g.group_id for g in listed.valid}
    (desc,) = admin.describe_consumer_groups([group], request_timeout=10).values()
    d = desc.result(30)
    assert d.state == ConsumerGroupState.EMPTY and not d.members
    admin.delete_consumer_groups([group], request_timeout=10)[group].result(30)
    listed = admin.list_consumer_groups(request_timeout=10).result(30)
    assert group not in {g.group_id for g in listed.valid}
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        committed = c.committed([TopicPartition(topic, 0)], timeout=30)
        assert committed[0].offset < 0, "offsets of a deleted group came back"
    finally:
        c.close()


def test_empty_group_id_is_refused(broker):
    import kwire as w

    # JoinGroup v1 with group id "": INVALID_GROUP_ID (24), connection stays usable.
    body = (w.string("") + w.i32(10_000) + w.i32(10_000) + w.string("") + w.string("consumer")
            + w.array([w.string("range") + w.i32(0)]))
    r = w.request(broker.port, 11, 1, body)
    assert r.i16() == 24  # v1 responses start with the error code (throttle time is v2+)


def test_describe_reports_members_with_client_host(broker_factory, tmp_path):
    b = fast_group_broker(broker_factory, tmp_path)
    topic, group = "groups-describe", "g-describe"
    create(b, topic)
    m = Member(b, topic, group)
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    try:
        wait_for(lambda: m.snapshot() == set(range(PARTITIONS)), 60, "the member to own every partition")
        (fut,) = admin.describe_consumer_groups([group], request_timeout=10).values()
        d = fut.result(30)
        assert len(d.members) == 1
        (member,) = d.members
        assert member.host == "/127.0.0.1", member.host
        assert member.client_id
        assert sorted(tp.partition for tp in member.assignment.topic_partitions) == list(range(PARTITIONS))
    finally:
        m.kill()
