"""Whole-cluster restarts and a node that lost its disk."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, TopicPartition

import cwire as c
from cluster import wait_for
from test_producer_ids import producer_ids_from_every_node


def commit(cluster, group, topic, offsets: dict[int, int]) -> None:
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap(), "group.id": group,
                         "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()],
                        asynchronous=False)
    finally:
        consumer.close()


def committed(cluster, group, topic, partitions) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap(), "group.id": group,
                         "enable.auto.commit": False})
    try:
        got = consumer.committed([TopicPartition(topic, p) for p in range(partitions)],
                                 timeout=20)
        return {tp.partition: tp.offset for tp in got}
    finally:
        consumer.close()


def high_watermarks(cluster, topic) -> dict[int, int]:
    out = {}
    for p, leader in cluster.leaders(topic).items():
        err, off = c.list_offset(cluster.node(leader).port, topic, p)
        assert err == c.NONE, c.error_name(err)
        out[p] = off
    return out


@pytest.mark.timeout(180)
@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_full_restart_keeps_topics_configs_offsets_and_producer_ids(cluster, topic, how,
                                                                      observe):
    partitions = 6
    cluster.create_topic(topic, partitions, configs={"retention.ms": "5400000"})
    leaders = cluster.leaders(topic)
    for p, leader in leaders.items():
        assert c.produce(cluster.node(leader).port, topic, p, [b"r0", b"r1", b"r2"])[0] == 0
    group = f"{topic}-group"
    offsets = {p: 1 + p % 3 for p in range(partitions)}
    commit(cluster, group, topic, offsets)
    assert committed(cluster, group, topic, partitions) == offsets
    old_ids = producer_ids_from_every_node(cluster, 3)
    hws = high_watermarks(cluster, topic)

    t0 = time.monotonic()
    cluster.stop() if how == "sigterm" else cluster.kill_all()
    down_s = time.monotonic() - t0
    cluster.start(ready=False)
    ready_s = cluster.wait_ready()
    observe(f"full restart ({how}): stop took / ready after start (s)",
            (round(down_s, 2), round(time.monotonic() - t0 - down_s, 2)))

    cluster.wait_topic_everywhere(topic, partitions)
    for x in cluster.nodes:
        assert cluster.leaders(topic, via=x) == leaders
        err, cfg = c.describe_topic_configs(x.port, topic, ["retention.ms"])
        assert err == c.NONE and cfg["retention.ms"][0] == "5400000", cfg
    assert high_watermarks(cluster, topic) == hws
    assert wait_for(lambda: committed(cluster, group, topic, partitions) == offsets, 30,
                    what="committed offsets back")

    new_ids = producer_ids_from_every_node(cluster, 3)
    observe(f"full restart ({how}): producer ids before / after",
            {"before": old_ids, "after": new_ids})
    old_flat = [p for v in old_ids.values() for p in v]
    new_flat = [p for v in new_ids.values() for p in v]
    assert not set(old_flat) & set(new_flat)
    # Blocks are allocated in increasing order, so every id handed out before the restart,
    # sampled or not, is below every id handed out after it.
    assert min(new_flat) > max(old_flat), (old_ids, new_ids)
    _ = ready_s


@pytest.mark.timeout(180)
def test_node_with_wiped_data_dir_rejoins(cluster, topic, observe):
    cluster.create_topic(topic, 6)
    controller = cluster.active_controller()
    victim = next(x for x in reversed(cluster.nodes) if x.node_id != controller)
    leaders = cluster.leaders(topic)
    own = [p for p, leader in leaders.items() if leader == victim.node_id]
    assert own
    for p in own:
        assert c.produce(victim.port, topic, p, [b"lost-1", b"lost-2"])[0] == c.NONE
    hw_before = cluster.quorum().high_watermark

    victim.kill9()
    victim.wipe()
    t0 = time.monotonic()
    victim.start()  # Kafka's wrapper re-formats with the cluster's id, as an operator would
    cluster.wait_ready()
    observe("wiped node: registered again after start (s)", round(time.monotonic() - t0, 2))

    def caught_up():
        q = cluster.quorum()
        ok = q and victim.node_id in q.voters and q.voters[victim.node_id] >= hw_before
        return q if ok else None
    q = wait_for(caught_up, 30, what="wiped voter caught up with the metadata log")
    observe("wiped node: quorum after rejoin",
            {"leader": q.leader_id, "voters": q.voters, "observers": q.observers})
    assert set(q.voters) == cluster.ids

    # It knows the cluster's topics again, and leads its partitions, which start empty: an RF=1
    # partition's records lived only on the wiped disk.
    md = c.metadata(victim.port, [topic])
    assert md.cluster_id == c.metadata(cluster.node(controller).port, []).cluster_id
    assert {p: pm.leader for p, pm in md.topics[topic].partitions.items()} == leaders
    after = {}
    for p in own:
        err, hw = wait_for(lambda: _ok(c.list_offset(victim.port, topic, p)), 20,
                           what="list offsets on the wiped node")
        err2, start = c.list_offset(victim.port, topic, p, timestamp=-2)
        after[p] = {"log_start": start, "high_watermark": hw}
        assert c.produce(victim.port, topic, p, [b"new"])[0] == c.NONE
    observe("wiped node: its partitions' offsets after rejoin (were 0..2)", after)
    assert all(v == {"log_start": 0, "high_watermark": 0} for v in after.values()), after


def _ok(r):
    return r if r[0] == c.NONE else None
