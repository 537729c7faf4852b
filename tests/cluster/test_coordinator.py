"""A consumer group whose coordinator node dies.

With offsets.topic.replication.factor=1 (what the shared rig sets) the group's
__consumer_offsets partition has no other replica: the coordinator cannot move, FindCoordinator
reports it unavailable once the broker is fenced, commits fail, and everything (including the
committed offsets) is back when the node returns. With RF=3 (both brokers' default) the
partition gets a new leader, the coordinator moves to it, and the committed offsets are
served there.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

import cwire as c
from cluster import OFFSETS_PARTITIONS, SESSION_TIMEOUT_MS, offsets_partition, wait_for


def group_coordinated_by(cluster, node_id: int, prefix: str) -> str:
    wait_for(lambda: c.find_coordinator(cluster.running()[0].port, prefix)[0] == c.NONE, 30,
             what="__consumer_offsets ready")
    cluster.wait_topic_everywhere("__consumer_offsets", OFFSETS_PARTITIONS)
    leaders = cluster.leaders("__consumer_offsets")
    for i in range(1000):
        g = f"{prefix}-{i}"
        if leaders[offsets_partition(g)] == node_id:
            return g
    raise AssertionError(f"no group name maps to node {node_id}: {leaders}")


def fill(cluster, topic, partitions, per_partition=5):
    p = Producer({"bootstrap.servers": cluster.bootstrap(), "acks": "all"})
    for part in range(partitions):
        for k in range(per_partition):
            p.produce(topic, value=f"{part}-{k}".encode(), partition=part)
    assert p.flush(30) == 0


class GroupConsumer:
    def __init__(self, cluster, group, topic):
        self.commit_results: list[str] = []
        self.errors: list[str] = []
        self.consumer = Consumer({
            "bootstrap.servers": cluster.bootstrap(), "group.id": group,
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
            "on_commit": self._on_commit, "error_cb": lambda e: self.errors.append(e.name())})
        self.consumer.subscribe([topic])
        self.consumed = 0

    def _on_commit(self, err, partitions):
        self.commit_results.append("OK" if err is None else err.name())

    def poll_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            m = self.consumer.poll(0.2)
            if m is not None and not m.error():
                self.consumed += 1

    def commit_async(self, topic: str, offset: int) -> None:
        """Commits explicit offsets (always sent, unlike a commit of unchanged positions)."""
        tps = [TopicPartition(topic, p, offset) for p in range(3)]
        try:
            self.consumer.commit(offsets=tps, asynchronous=True)
        except KafkaException as e:
            self.commit_results.append(f"raised {e.args[0].name()}")

    def committed(self, topic: str) -> dict[int, int] | None:
        """Committed offsets, or None while the client gets a retriable error."""
        try:
            got = self.consumer.committed([TopicPartition(topic, p) for p in range(3)], 10)
        except KafkaException as e:
            if e.args[0].retriable() or e.args[0].name() == "NOT_COORDINATOR":
                return None
            raise
        return {tp.partition: tp.offset for tp in got}

    def close(self):
        self.consumer.close()


@pytest.mark.timeout(180)
def test_coordinator_node_dies_with_offsets_rf1(cluster, topic, observe):
    controller = cluster.active_controller()
    victim = next(x for x in reversed(cluster.nodes) if x.node_id != controller)
    live = [x for x in cluster.nodes if x is not victim]
    group = group_coordinated_by(cluster, victim.node_id, topic)
    cluster.create_topic(topic, 3)
    fill(cluster, topic, 3)
    gc = GroupConsumer(cluster, group, topic)
    try:
        wait_for(lambda: gc.poll_for(0.5) or gc.consumed >= 15, 40, what="group consumed all")
        gc.consumer.commit(asynchronous=False)
        before = gc.committed(topic)
        assert before == {0: 5, 1: 5, 2: 5}, before

        t0 = time.monotonic()
        victim.kill9()
        answers = []

        def unavailable():
            err, node_id, _, _ = c.find_coordinator(live[0].port, group)
            seen = (c.error_name(err), node_id)
            if not answers or answers[-1][1] != seen:
                answers.append((round(time.monotonic() - t0, 2), seen))
            return err == c.COORDINATOR_NOT_AVAILABLE
        wait_for(unavailable, SESSION_TIMEOUT_MS / 1000 + 10, what="coordinator unavailable")
        observe("offsets RF=1, coordinator killed: FindCoordinator answers (t, (error, node))",
                answers)
        assert answers[-1][1] == ("COORDINATOR_NOT_AVAILABLE", -1), answers
        # The answer is the same from every live node.
        for x in live:
            assert c.find_coordinator(x.port, group)[0] == c.COORDINATOR_NOT_AVAILABLE

        gc.commit_async(topic, 4)
        gc.poll_for(8)
        observe("offsets RF=1, coordinator down: consumer commit results / error_cb",
                {"commit": gc.commit_results, "errors": sorted(set(gc.errors))})
        assert "OK" not in gc.commit_results

        t1 = time.monotonic()
        victim.start()
        wait_for(lambda: c.find_coordinator(live[0].port, group)[:2] == (c.NONE, victim.node_id),
                 60, what="coordinator back")
        observe("offsets RF=1: coordinator found again after restart (s)",
                round(time.monotonic() - t1, 2))
        after = wait_for(lambda: gc.committed(topic), 30, what="committed offsets readable")
        observe("offsets RF=1: committed offsets after the coordinator returned (were 5)",
                after)
        # The commit attempted while the coordinator was down did not land later either.
        assert after == before
        gc.commit_results.clear()
        wait_for(lambda: (gc.commit_async(topic, 4), gc.poll_for(1),
                          "OK" in gc.commit_results)[2], 40, what="commit succeeds again")
        assert wait_for(lambda: gc.committed(topic), 20, what="committed") == {0: 4, 1: 4, 2: 4}
    finally:
        gc.close()


@pytest.mark.timeout(240)
def test_coordinator_moves_with_offsets_rf3(cluster_factory, topic, observe):
    cl = cluster_factory({"offsets.topic.replication.factor": "3"})
    controller = cl.active_controller()
    victim = next(x for x in reversed(cl.nodes) if x.node_id != controller)
    live = [x for x in cl.nodes if x is not victim]
    group = group_coordinated_by(cl, victim.node_id, topic)
    cl.create_topic(topic, 3)
    fill(cl, topic, 3)
    gc = GroupConsumer(cl, group, topic)
    try:
        wait_for(lambda: gc.poll_for(0.5) or gc.consumed >= 15, 40, what="group consumed all")
        gc.consumer.commit(asynchronous=False)
        t0 = time.monotonic()
        victim.kill9()
        answers = []

        def moved():
            err, node_id, _, _ = c.find_coordinator(live[0].port, group)
            seen = (c.error_name(err), node_id)
            if not answers or answers[-1][1] != seen:
                answers.append((round(time.monotonic() - t0, 2), seen))
            return err == c.NONE and node_id != victim.node_id
        wait_for(moved, 30, what="coordinator moved")
        observe("offsets RF=3, coordinator killed: FindCoordinator answers (t, (error, node))",
                answers)
        new = answers[-1][1][1]
        assert new in {x.node_id for x in live}
        assert cl.leaders("__consumer_offsets", via=live[0])[offsets_partition(group)] == new
        after = wait_for(lambda: gc.committed(topic), 30, what="committed offsets readable")
        assert after == {0: 5, 1: 5, 2: 5}
        gc.commit_results.clear()
        wait_for(lambda: (gc.commit_async(topic, 4), gc.poll_for(1),
                          "OK" in gc.commit_results)[2], 40,
                 what="commit succeeds on the new coordinator")
        observe("offsets RF=3: consumer commit results after the move", gc.commit_results)
    finally:
        gc.close()
