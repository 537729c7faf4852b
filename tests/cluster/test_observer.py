"""Broker-only nodes (process.roles=broker): observers of the metadata quorum. They fetch the
metadata log from the active controller (Kafka's Fetch of __cluster_metadata-0 on the
CONTROLLER listener), register as brokers, serve clients and forward metadata changes, and
never vote."""

from __future__ import annotations

import time

import pytest

import cwire as c
from cluster import create_until_ok, wait_for


def topic_on(node, topic, partitions) -> bool:
    t = c.metadata(node.port, [topic]).topics.get(topic)
    return (t is not None and t.error == c.NONE and len(t.partitions) == partitions
            and all(pm.leader >= 0 for pm in t.partitions.values()))


@pytest.mark.timeout(300)
def test_a_broker_only_node_registers_serves_and_follows_the_quorum(cluster_factory, topic,
                                                                   observe):
    cl = cluster_factory(observers=1)
    obs = cl.node(4)
    assert not obs.is_voter
    # It registered, with its rack, and every node lists it.
    for x in cl.nodes:
        brokers = c.metadata(x.port, []).brokers
        assert set(brokers) == {1, 2, 3, 4}, (x, brokers)
        assert brokers[4][2] == "d"
    # DescribeQuorum: three voters, node 4 among the observers, caught up.
    q = wait_for(lambda: (q := cl.quorum()) is not None and 4 in q.observers
                 and q.observers[4] >= q.high_watermark - 1 and q, 20,
                 what="node 4 listed as a caught-up observer")
    observe("DescribeQuorum with an observer", {"voters": q.voters, "observers": q.observers,
                                                "hw": q.high_watermark})
    assert set(q.voters) == {1, 2, 3} and 4 not in q.voters
    jq = cl.java_quorum()
    assert 4 in jq["observers"] and set(jq["voters"]) == {1, 2, 3}, jq

    # CreateTopics through the observer goes to the active controller; partitions spread over
    # all four brokers, the observer's own included, and each leader serves its partition.
    res = c.create_topics(obs.port, {topic: 8})
    assert res[topic][0] == c.NONE, res
    cl.wait_topic_everywhere(topic, 8)
    leaders = cl.leaders(topic, via=obs)
    assert set(leaders.values()) == {1, 2, 3, 4}, leaders
    for p, leader in leaders.items():
        assert c.produce(cl.node(leader).port, topic, p, [b"v"])[0] == c.NONE

    # The active controller dies: the observer finds the new one; a change through the
    # observer succeeds and reaches everyone.
    leader = cl.active_controller()
    cl.node(leader).kill9()
    took, errors = create_until_ok(obs, f"{topic}-failover")
    observe("CreateTopics via the observer after killing the active controller (s)",
            {"seconds": round(took, 2), "errors_before": errors})
    after = f"{topic}-after"
    assert c.create_topics(obs.port, {after: 2})[after][0] == c.NONE
    wait_for(lambda: all(topic_on(x, after, 2) for x in cl.running()), 20,
             what="the topic on every running node")
    cl.node(leader).start()
    cl.wait_ready()

    # Down while a topic is created: it catches up from where its own log ends.
    obs.stop()
    missed = f"{topic}-missed"
    assert c.create_topics(cl.node(1).port, {missed: 3})[missed][0] == c.NONE, missed
    obs.start()
    cl.wait_ready()
    wait_for(lambda: topic_on(obs, missed, 3), 30, what="the missed topic on the observer")

    # Wiped: it refetches the whole log and registers again.
    obs.kill9()
    obs.wipe()
    t0 = time.monotonic()
    obs.start()
    cl.wait_ready()
    wait_for(lambda: topic_on(obs, missed, 3) and topic_on(obs, after, 2), 30,
             what="every topic on the wiped observer")
    observe("wiped observer back with every topic (s)", round(time.monotonic() - t0, 2))


@pytest.mark.timeout(200)
def test_the_metadata_fetch_checks_who_asks_and_where_their_log_is(cluster_factory):
    """The controller side of an observer's Fetch, request by request (millrace only: Kafka
    answers the same errors but its log and epochs differ)."""
    cl = cluster_factory(observers=1)
    if cl.kind != "millrace":
        pytest.skip("exact offsets and epochs of millrace's own log")
    leader = cl.node(cl.active_controller())
    follower = next(x for x in cl.nodes if x.is_voter and x is not leader)
    cluster_id = c.metadata(leader.port, []).cluster_id
    q = cl.quorum()

    # A follower sends observers to the leader.
    f = c.fetch_metadata_log(follower.controller_port, 9, 0, 0)
    assert f.error == c.NOT_LEADER_OR_FOLLOWER and f.leader[0] == leader.node_id, f

    # From the start: whole batches from offset 0, at most up to the high watermark.
    f = c.fetch_metadata_log(leader.controller_port, 9, 0, 0, cluster_id=cluster_id)
    assert f.error == c.NONE, c.error_name(f.error)
    assert f.leader == (leader.node_id, q.leader_epoch), f.leader
    batches = c.batch_offsets(f.records)
    assert batches and batches[0][0] == 0
    for (base, count, _), (nxt, _, _) in zip(batches, batches[1:]):
        assert base + count == nxt
    end = batches[-1][0] + batches[-1][1]
    assert end <= f.high_watermark

    # The same through v13 (replica id in the body).
    f13 = c.fetch_metadata_log(leader.controller_port, 9, 0, 0, version=13)
    assert f13.error == c.NONE and c.batch_offsets(f13.records)[0][0] == 0

    # Fetch on until up to date: each answer continues where the last ended; at the end a long
    # poll that waited. Once every broker is up, the active controller creates the internal
    # topics at its next session check (about 60 records): wait for them first, or the log
    # grows under the checks below.
    wait_for(lambda: {"__consumer_offsets", "__transaction_state"}
             <= set(c.metadata(leader.port, None).topics), 30, what="internal topics created")
    at, epoch, waited = 0, 0, 0.0
    for _ in range(200):
        t0 = time.monotonic()
        g = c.fetch_metadata_log(leader.controller_port, 9, at, epoch, max_wait_ms=300)
        assert g.error == c.NONE and g.diverging is None, g
        got = c.batch_offsets(g.records)
        if not got:
            waited = time.monotonic() - t0
            assert at == g.high_watermark, (at, g.high_watermark)
            break
        assert got[0][0] == at
        at, epoch = got[-1][0] + got[-1][1], got[-1][2]
    assert waited >= 0.25, f"an up-to-date fetch answered after {waited:.3f}s, not a long poll"

    # A position the leader's log does not have: diverging, at a batch boundary below it.
    g = c.fetch_metadata_log(leader.controller_port, 9, at, epoch + 5)
    assert g.error == c.NONE and g.diverging is not None, g
    assert g.diverging[1] <= at
    g = c.fetch_metadata_log(leader.controller_port, 9, at + 1000, epoch)
    assert g.diverging == (epoch, at), g
    inside = batches[-1][0] + 1 if batches[-1][1] > 1 else None
    if inside is not None:
        g = c.fetch_metadata_log(leader.controller_port, 9, inside, batches[-1][2])
        assert g.diverging is not None and g.diverging[1] <= batches[-1][0], g

    # Who asks: another cluster, a consumer's replica id, another topic, a stale epoch.
    g = c.fetch_metadata_log(leader.controller_port, 9, 0, 0, cluster_id="another-cluster")
    assert g.error == c.INCONSISTENT_CLUSTER_ID, c.error_name(g.error)
    g = c.fetch_metadata_log(leader.controller_port, -1, 0, 0)
    assert g.error == c.INVALID_REQUEST, c.error_name(g.error)
    g = c.fetch_metadata_log(leader.controller_port, 9, 0, 0, topic_id=(7).to_bytes(16, "big"))
    assert g.error == c.UNKNOWN_TOPIC_ID, c.error_name(g.error)
    # Node 4 is registered; an epoch below its registration's is a stale process.
    g = c.fetch_metadata_log(leader.controller_port, 4, 0, 0, replica_epoch=0)
    assert g.error == c.STALE_BROKER_EPOCH, c.error_name(g.error)
    # The broker keeps working through all this.
    assert c.create_topics(cl.node(4).port, {"after-bad-fetches": 1})["after-bad-fetches"][0] \
        == c.NONE


@pytest.mark.timeout(300)
def test_controller_only_voters_with_broker_only_nodes(cluster_factory, topic, observe):
    """Kafka's production layout: three process.roles=controller nodes (no client listener,
    never registered as brokers, no partitions) and brokers that only observe the quorum."""
    cl = cluster_factory(observers=2, controller_only=True)
    brokers = cl.running_brokers()
    assert [x.node_id for x in brokers] == [4, 5]
    for x in brokers:
        md = c.metadata(x.port, [])
        assert set(md.brokers) == {4, 5}, md.brokers
        # Clients cannot reach controller-only nodes: like Kafka, Metadata names a live
        # broker as the controller (requests sent there are forwarded).
        assert md.controller_id in (4, 5), md.controller_id
    q = wait_for(lambda: (q := cl.quorum()) is not None and set(q.observers) == {4, 5} and q,
                 20, what="both brokers listed as observers")
    assert set(q.voters) == {1, 2, 3}
    observe("DescribeQuorum, controller-only voters", {"voters": q.voters,
                                                       "observers": q.observers})
    # __consumer_offsets (Kafka creates it at the first FindCoordinator, millrace once brokers
    # registered) is placed on brokers only, and a group finds its coordinator there.
    def coordinator():
        err, node, _, _ = c.find_coordinator(brokers[0].port, "controller-only-group")
        return err == c.NONE and topic_on(brokers[0], "__consumer_offsets", 6) and node
    assert wait_for(coordinator, 30, what="a group coordinator") in (4, 5)
    offsets = cl.leaders("__consumer_offsets")
    assert set(offsets.values()) <= {4, 5}, offsets

    res = c.create_topics(brokers[0].port, {topic: 6})
    assert res[topic][0] == c.NONE, res
    cl.wait_topic_everywhere(topic, 6)
    leaders = cl.leaders(topic)
    assert set(leaders.values()) == {4, 5}, leaders
    for p, leader in leaders.items():
        assert c.produce(cl.node(leader).port, topic, p, [b"v"])[0] == c.NONE

    leader = cl.active_controller()
    cl.node(leader).kill9()
    took, errors = create_until_ok(brokers[1], f"{topic}-failover")
    observe("controller-only: CreateTopics after killing the active controller (s)",
            {"seconds": round(took, 2), "errors_before": errors})
    new_leader = cl.wait_active_controller(not_id=leader)
    assert new_leader in (1, 2, 3)
    # Produce goes on to the brokers' partitions.
    for p, owner in leaders.items():
        assert c.produce(cl.node(owner).port, topic, p, [b"w"])[0] == c.NONE
