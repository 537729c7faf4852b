"""Metadata snapshots: with a small `metadata.log.max.record.bytes.between.snapshots`, every
node (voters and a broker-only node) writes `<end offset>-<epoch>.checkpoint` files of its
metadata image into `__cluster_metadata-0`, as Kafka does, and a restarted node starts from
its newest one and replays only the log after it."""

from __future__ import annotations

import re

import pytest

import cwire as c
from cluster import ANSI, wait_for

CHECKPOINT = re.compile(r"^\d{20}-\d{10}\.checkpoint$")


def checkpoints(node) -> list[str]:
    d = node.log_dir / "__cluster_metadata-0"
    return sorted(p.name for p in d.iterdir() if CHECKPOINT.match(p.name)) if d.exists() else []


def has_topics(node, topics, partitions) -> bool:
    md = c.metadata(node.port, topics).topics
    return all(t in md and md[t].error == c.NONE and len(md[t].partitions) == partitions
               for t in topics)


@pytest.mark.timeout(300)
def test_every_node_snapshots_its_image_and_restarts_from_it(cluster_factory, topic, observe):
    cl = cluster_factory({"metadata.log.max.record.bytes.between.snapshots": "4096"},
                         observers=1)
    topics = [f"{topic}-{i}" for i in range(12)]
    for t in topics:
        assert c.create_topics(cl.node(1).port, {t: 6})[t][0] == c.NONE, t
    wait_for(lambda: all(checkpoints(x) for x in cl.nodes), 60,
             what="a metadata snapshot on every node")
    observe("snapshot files per node", {x.node_id: checkpoints(x) for x in cl.nodes})
    # Kafka also keeps the bootstrap checkpoint 00000000000000000000-0000000000 of its format
    # step; every node has one taken from its log.
    for x in cl.nodes:
        ids = [tuple(int(v) for v in n.split(".")[0].split("-")) for n in checkpoints(x)]
        assert any(end > 0 and epoch > 0 for end, epoch in ids), (x, ids)

    for x in (cl.node(2), cl.node(4)):  # a voter and the broker-only node
        x.stop()
        x.start()
        cl.wait_ready()
        wait_for(lambda: has_topics(x, topics, 6), 30, what=f"every topic on {x} after restart")
        if cl.kind == "millrace":
            log = ANSI.sub("", x.stdout_path.read_text(errors="replace"))
            since_start = log[log.rfind(f"=== start #{x.starts - 1} "):]
            assert "starting the metadata image from a snapshot" in since_start, x
    # The cluster still takes changes after the restarts.
    after = f"{topic}-after"
    assert c.create_topics(cl.node(4).port, {after: 1})[after][0] == c.NONE
    wait_for(lambda: all(has_topics(x, [after], 1) for x in cl.running_brokers()), 20,
             what="the new topic everywhere")


def log_since_start(node) -> str:
    log = ANSI.sub("", node.stdout_path.read_text(errors="replace"))
    return log[log.rfind(f"=== start #{node.starts - 1} "):]


@pytest.mark.timeout(300)
def test_nodes_behind_the_log_start_catch_up_from_the_leaders_snapshot(cluster_factory, topic,
                                                                       observe):
    """With `metadata.max.retention.bytes=0` every snapshot cuts the log below it. A voter and
    the broker-only node that were down meanwhile find their log behind the leader's start:
    the voter is sent raft's snapshot, the observer fetches it with FetchSnapshot, and both
    then hold every topic. A voter whose data directory is wiped rejoins the same way. (Kafka
    cuts only whole metadata segments of at least 8 MiB, so the reference cluster catches up
    from its log instead; the Millrace-only checks say which path was taken.)"""
    cl = cluster_factory({"metadata.log.max.record.bytes.between.snapshots": "2048",
                          "metadata.max.retention.bytes": "0"}, observers=1)
    leader = cl.wait_active_controller()
    follower = next(x for x in cl.nodes if x.is_voter and x.node_id != leader)
    observer = cl.node(4)
    for x in (follower, observer):
        x.stop()
    topics = [f"{topic}-{i}" for i in range(15)]
    for t in topics:
        assert c.create_topics(cl.node(leader).port, {t: 3})[t][0] == c.NONE, t
    millrace = cl.kind == "millrace"
    if millrace:
        wait_for(lambda: "cut the metadata log below the snapshot" in
                 log_since_start(cl.node(leader)), 30, what="the leader cuts its metadata log")
    # The leader's links still queue the appends it sent the stopped follower before the cut;
    # a restart drops them, so the follower finds only the cut log when it returns.
    cl.node(leader).restart()
    cl.wait_active_controller()
    for x in (follower, observer):
        x.start()
    cl.wait_ready()
    for x in (follower, observer):
        wait_for(lambda: has_topics(x, topics, 3), 60, what=f"every topic on {x}")
        if millrace:
            assert "installed the active controller's metadata snapshot" in log_since_start(x), x
    observe("caught up from a snapshot", [follower.node_id, observer.node_id])

    follower.stop()
    follower.wipe()
    follower.start()
    cl.wait_ready()
    wait_for(lambda: has_topics(follower, topics, 3), 60, what=f"every topic on wiped {follower}")
    if millrace:
        assert "installed the active controller's metadata snapshot" in log_since_start(follower)
    # The cluster still takes changes, and every node sees them.
    after = f"{topic}-after"
    assert c.create_topics(observer.port, {after: 1})[after][0] == c.NONE
    wait_for(lambda: all(has_topics(x, [after], 1) for x in cl.running_brokers()), 20,
             what="the new topic everywhere")
