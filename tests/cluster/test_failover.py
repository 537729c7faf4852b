"""Losing controllers: the active one (a new leader is elected and admin requests work again),
a minority of voters (nothing stops), a majority (admin requests fail with a retriable error
while the data path of the live node goes on).

Time bounds come from the rig's settings (cluster.py): a follower notices a dead leader after
controller.quorum.fetch.timeout.ms (2 s), an election takes about election.timeout.ms (1 s),
and a broker is fenced after broker.session.timeout.ms (3 s). Each bound below leaves room for
JVM pauses on a loaded two-core machine.
"""

from __future__ import annotations

import time

import pytest

import cwire as c
from cluster import SESSION_TIMEOUT_MS, create_until_ok, wait_for

FAILOVER_BOUND_S = 15.0
MAJORITY_DOWN_ANSWER_S = 75.0


def produce_and_read_back(node, topic, partition, tag: str) -> None:
    """acks=all produce of two records to `partition` on its leader `node`, then a Fetch from
    the same node returns them at the offsets Produce reported."""
    values = [f"{tag}-a".encode(), f"{tag}-b".encode()]
    err, base = c.produce(node.port, topic, partition, values, acks=-1)
    assert err == c.NONE, f"produce {topic}-{partition} on {node}: {c.error_name(err)}"
    err, hw, batches = c.fetch_batches(node.port, topic, partition, offset=base)
    assert err == c.NONE and hw == base + 2, (c.error_name(err), hw, base)
    assert batches and batches[0]["base_offset"] == base and batches[0]["records"] == 2


@pytest.mark.timeout(150)
def test_kill_active_controller_elects_a_new_one(cluster, topic, observe):
    before = cluster.quorum()
    old = before.leader_id
    survivors = [x for x in cluster.nodes if x.node_id != old]
    t0 = time.monotonic()
    cluster.node(old).kill9()
    took, errors = create_until_ok(survivors[0], topic, timeout_s=60)
    observe("kill -9 active controller -> first CreateTopics ok (s)", round(took, 2))
    observe("CreateTopics answers during the failover", errors)
    assert took < FAILOVER_BOUND_S, (took, errors)

    after = cluster.quorum()
    assert after is not None and after.leader_id != old, after
    assert after.leader_epoch > before.leader_epoch
    assert set(after.voters) == cluster.ids  # the dead node stays a voter
    j = cluster.java_quorum(survivors)
    assert j["leader"] == after.leader_id and set(j["voters"]) == cluster.ids
    observe("quorum after failover", {"old": old, "new": after.leader_id,
                                       "epochs": [before.leader_epoch, after.leader_epoch]})
    # Every survivor can be used for admin requests now, not only the one that was retried.
    took2, errors2 = create_until_ok(survivors[1], f"{topic}-2", timeout_s=10)
    assert errors2 == [], errors2
    observe("time from kill to second CreateTopics ok (s)", round(time.monotonic() - t0, 2))

    # The old controller returns as a follower and catches up with the metadata log.
    cluster.node(old).start()
    cluster.wait_ready()

    def caught_up():
        q = cluster.quorum()
        return q and old in q.voters and q.voters[old] >= after.high_watermark
    wait_for(caught_up, 30, what=f"node {old} caught up")


@pytest.mark.timeout(150)
def test_minority_of_voters_down_everything_works(cluster, topic, observe):
    cluster.create_topic(topic, 6)
    leaders = cluster.leaders(topic)
    controller = cluster.active_controller()
    victim = next(x for x in reversed(cluster.nodes) if x.node_id != controller)
    live = [x for x in cluster.nodes if x is not victim]
    t0 = time.monotonic()
    victim.kill9()

    for x in live:
        took, errors = create_until_ok(x, f"{topic}-via{x.node_id}", timeout_s=10)
        assert errors == [], errors
    for part, leader in leaders.items():
        if leader != victim.node_id:
            produce_and_read_back(cluster.node(leader), topic, part, "minority")

    # The dead broker is fenced after the session timeout and drops out of Metadata.
    wait_for(lambda: all(cluster.registered_brokers(x) == {y.node_id for y in live}
                         for x in live), 30, what="dead broker fenced")
    fenced_s = time.monotonic() - t0
    observe("one node kill -9: gone from Metadata brokers after (s)", round(fenced_s, 2))
    assert fenced_s < SESSION_TIMEOUT_MS / 1000 + 10

    # New topics are then placed on live brokers only.
    cluster.create_topic(f"{topic}-after", 6, via=live[0])
    placed = set(cluster.leaders(f"{topic}-after", via=live[1]).values())
    assert placed == {x.node_id for x in live}, placed
    # Groups coordinated by a live broker still find it.
    err, node_id, _, _ = c.find_coordinator(live[0].port, f"{topic}-group")
    assert err in (c.NONE, c.COORDINATOR_NOT_AVAILABLE)
    if err == c.NONE:
        assert node_id != victim.node_id


@pytest.mark.timeout(240)
def test_majority_of_voters_down_admin_fails_data_path_goes_on(cluster, topic, observe):
    cluster.create_topic(topic, 6)
    leaders = cluster.leaders(topic)
    survivor = cluster.nodes[0]
    own = [p for p, leader in leaders.items() if leader == survivor.node_id]
    assert own, f"no partition of {topic} on node {survivor.node_id}: {leaders}"
    for x in cluster.nodes[1:]:
        x.kill9()

    # Admin requests cannot commit without a quorum: a retriable error, within a bound.
    # Kafka's broker answers REQUEST_TIMED_OUT after its forwarding channel's fixed 60 s retry
    # timeout (BrokerServer: retryTimeoutMs = 60000), whatever the request's timeout_ms; an
    # answer within timeout_ms would be better and passes too.
    t0 = time.monotonic()
    res = c.create_topics(survivor.port, {f"{topic}-nq": 1}, timeout_ms=5000,
                          socket_timeout_s=MAJORITY_DOWN_ANSWER_S + 15)
    took = time.monotonic() - t0
    err, msg = res[f"{topic}-nq"]
    observe("majority down: CreateTopics(timeout_ms=5000) answer",
            {"error": c.error_name(err), "message": msg, "seconds": round(took, 2)})
    assert err in (c.REQUEST_TIMED_OUT, c.NOT_CONTROLLER), (c.error_name(err), msg)
    assert took < MAJORITY_DOWN_ANSWER_S, took
    err, pid, _ = c.init_producer_id(survivor.port)
    observe("majority down: InitProducerId on the survivor", (c.error_name(err), pid))
    assert err in (c.NONE, c.COORDINATOR_LOAD_IN_PROGRESS, c.COORDINATOR_NOT_AVAILABLE,
                   c.REQUEST_TIMED_OUT), c.error_name(err)

    # The live node keeps serving its own partitions: acks=all produce and fetch.
    for part in own:
        produce_and_read_back(survivor, topic, part, "majority-down")

    # What the live node says about the cluster, frozen at the last metadata it applied.
    md = c.metadata(survivor.port, [topic])
    observe("majority down: survivor's Metadata brokers", sorted(md.brokers))
    observe("majority down: survivor's Metadata partitions (leader, error)",
            {p: (pm.leader, c.error_name(pm.error))
             for p, pm in sorted(md.topics[topic].partitions.items())})
    q = c.describe_quorum(survivor.controller_port)
    observe("majority down: DescribeQuorum on the survivor's controller",
            {"error": c.error_name(q.error), "leader": q.leader_id, "epoch": q.leader_epoch})
    assert q.error != c.NONE or q.leader_id in (-1, survivor.node_id), q

    # Quorum back: admin requests work again.
    cluster.start()
    took, errors = create_until_ok(survivor, f"{topic}-back", timeout_s=30)
    observe("majority back: CreateTopics errors before success", errors)
