"""A broker that stops heartbeating for longer than broker.session.timeout.ms is fenced: its
RF=1 partitions have no leader (nobody else holds a replica) until it comes back, and then
they are led by it again with their data."""

from __future__ import annotations

import time

import pytest

import cwire as c
from cluster import SESSION_TIMEOUT_MS, wait_for

FENCE_BOUND_S = SESSION_TIMEOUT_MS / 1000 + 10


def partitions_of(cluster, topic, via, node_id):
    t = c.metadata(via.port, [topic]).topics[topic]
    return {p: pm for p, pm in t.partitions.items() if pm.replicas == [node_id]}


@pytest.mark.timeout(150)
@pytest.mark.parametrize("how", ["sigstop", "kill9"])
def test_broker_gone_past_session_timeout_is_fenced_until_it_returns(cluster, topic, how,
                                                                      observe):
    cluster.create_topic(topic, 6)
    controller = cluster.active_controller()
    victim = next(x for x in reversed(cluster.nodes) if x.node_id != controller)
    watcher = next(x for x in cluster.nodes if x is not victim)
    own = partitions_of(cluster, topic, watcher, victim.node_id)
    assert own, f"no partition on node {victim.node_id}"
    for p in own:
        assert c.produce(victim.port, topic, p, [b"before"])[0] == c.NONE
    epochs = {p: pm.leader_epoch for p, pm in own.items()}

    t0 = time.monotonic()
    victim.pause() if how == "sigstop" else victim.kill9()

    def fenced():
        view = partitions_of(cluster, topic, watcher, victim.node_id)
        return view if all(pm.leader == -1 for pm in view.values()) else None
    view = wait_for(fenced, FENCE_BOUND_S, what=f"partitions of node {victim.node_id} leaderless")
    fenced_s = time.monotonic() - t0
    observe(f"{how}: RF=1 partitions leaderless after (s)", round(fenced_s, 2))
    observe(f"{how}: Metadata of a fenced broker's partition",
            {p: {"leader": pm.leader, "error": c.error_name(pm.error), "epoch": pm.leader_epoch,
                 "replicas": pm.replicas, "isr": pm.isr, "offline": pm.offline}
             for p, pm in sorted(view.items())})
    brokers = c.metadata(watcher.port, []).brokers
    observe(f"{how}: fenced broker listed in Metadata brokers", victim.node_id in brokers)
    # Not before the session timeout has run (give heartbeats half of it as slack).
    assert fenced_s >= SESSION_TIMEOUT_MS / 1000 / 2, fenced_s
    assert set(view) == set(own), "a partition vanished from Metadata instead"
    for p, pm in view.items():
        assert pm.leader == -1
        assert pm.error == c.LEADER_NOT_AVAILABLE, c.error_name(pm.error)
        assert pm.leader_epoch > epochs[p]
        assert pm.replicas == [victim.node_id] and pm.offline == [victim.node_id], pm
    assert victim.node_id not in brokers
    # Other brokers' partitions are untouched.
    others = {p: pm for p, pm in c.metadata(watcher.port, [topic]).topics[topic]
              .partitions.items() if p not in own}
    assert all(pm.leader >= 0 and pm.error == c.NONE for pm in others.values())

    t1 = time.monotonic()
    victim.resume() if how == "sigstop" else victim.start()

    def back():
        view = partitions_of(cluster, topic, watcher, victim.node_id)
        return all(pm.leader == victim.node_id and pm.error == c.NONE for pm in view.values())
    wait_for(back, 60, what="partitions led again")
    observe(f"{how}: partitions led again after return (s)", round(time.monotonic() - t1, 2))
    for p in own:
        err, hw, batches = wait_for(lambda: _fetch_ok(victim, topic, p), 20,
                                    what="fetch on returned leader")
        assert hw >= 1 and batches and batches[0]["base_offset"] == 0, (p, hw)
        assert c.produce(victim.port, topic, p, [b"after"])[0] == c.NONE


def _fetch_ok(node, topic, p):
    r = c.fetch_batches(node.port, topic, p)
    return r if r[0] == c.NONE else None
