"""Where partitions and group coordinators live: spread over every broker, and FindCoordinator
points at the leader of the group's __consumer_offsets partition, whichever node is asked."""

from __future__ import annotations

import collections

import cwire as c
from cluster import OFFSETS_PARTITIONS, offsets_partition, wait_for


def test_partitions_of_a_big_topic_are_spread_over_every_broker(cluster, topic, observe):
    partitions = 30
    cluster.create_topic(topic, partitions)
    leaders = cluster.leaders(topic)
    per_broker = collections.Counter(leaders.values())
    observe("30 partitions, leaders per broker", dict(sorted(per_broker.items())))
    assert set(per_broker) == cluster.ids, per_broker
    # RF=1 over three brokers in three racks. Kafka's placer is not even here (8/12/10 and
    # 7/8/15 seen); no broker may be starved.
    assert min(per_broker.values()) >= partitions // 10, per_broker
    racks = {x.node_id: x.rack for x in cluster.nodes}
    assert {racks[b] for b in per_broker} == set(racks.values())


def test_find_coordinator_answers_the_offsets_partition_leader(cluster):
    groups = [f"placement-group-{i}" for i in range(24)]
    # The first FindCoordinator creates __consumer_offsets; wait for a leader everywhere.
    wait_for(lambda: c.find_coordinator(cluster.nodes[0].port, groups[0])[0] == c.NONE, 30,
             what="__consumer_offsets ready")
    cluster.wait_topic_everywhere("__consumer_offsets", OFFSETS_PARTITIONS)
    leaders = cluster.leaders("__consumer_offsets")
    assert set(leaders) == set(range(OFFSETS_PARTITIONS))
    coordinators = set()
    for g in groups:
        want = leaders[offsets_partition(g)]
        for x in cluster.nodes:
            err, node_id, host, port = c.find_coordinator(x.port, g)
            assert err == c.NONE, (g, x, c.error_name(err))
            assert node_id == want, f"{g} via {x}: coordinator {node_id}, offsets leader {want}"
            assert (host, port) == ("127.0.0.1", cluster.node(want).port)
        coordinators.add(want)
    # With 6 offsets partitions spread over 3 brokers, 24 groups land on more than one node.
    assert len(coordinators) > 1, coordinators
    md = c.metadata(cluster.nodes[0].port, ["__consumer_offsets"]).topics["__consumer_offsets"]
    assert md.internal
