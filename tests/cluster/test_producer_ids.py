"""Producer ids are unique across the cluster: each node hands out ids from blocks the active
controller allocates (Kafka: AllocateProducerIds, blocks of 1000), so two nodes never give the
same id."""

from __future__ import annotations

from confluent_kafka import Producer

import cwire as c
from cluster import wait_for

RETRIABLE = (c.COORDINATOR_LOAD_IN_PROGRESS, c.COORDINATOR_NOT_AVAILABLE, c.NOT_COORDINATOR,
             c.REQUEST_TIMED_OUT)


def new_producer_id(node) -> int:
    """InitProducerId (idempotent, no transactional id) sent to `node`, retried while the node
    is still getting its first block (Kafka answers COORDINATOR_LOAD_IN_PROGRESS then)."""
    def attempt():
        err, pid, epoch = c.init_producer_id(node.port)
        if err in RETRIABLE:
            return None
        assert err == c.NONE, f"InitProducerId via {node}: {c.error_name(err)}"
        assert pid >= 0 and epoch == 0, (pid, epoch)
        return (pid,)
    return wait_for(attempt, 30, what=f"InitProducerId via {node}")[0]


def producer_ids_from_every_node(cluster, per_node: int) -> dict[int, list[int]]:
    return {x.node_id: [new_producer_id(x) for _ in range(per_node)] for x in cluster.running()}


def test_init_producer_id_on_different_nodes_never_collides(cluster):
    ids = producer_ids_from_every_node(cluster, 5)
    print(f"producer ids per node: {ids}")
    flat = [pid for v in ids.values() for pid in v]
    assert len(set(flat)) == len(flat), ids
    for node_id, v in ids.items():
        assert v == sorted(v), f"node {node_id} ids not increasing: {v}"


def test_idempotent_producers_bootstrapped_on_different_nodes_get_distinct_ids(cluster, topic):
    """Real producers (librdkafka, enable.idempotence) bootstrapped on each node; the ids are
    read back from the batch headers the partition leaders store."""
    cluster.create_topic(topic, 3)
    for x in cluster.nodes:
        p = Producer({"bootstrap.servers": x.bootstrap, "enable.idempotence": True,
                      "acks": "all", "linger.ms": 0})
        for part in range(3):
            p.produce(topic, value=f"from-{x.node_id}".encode(), partition=part)
        assert p.flush(30) == 0
    leaders = cluster.leaders(topic)
    pids_by_value: dict[bytes, set[int]] = {}
    for part, leader in leaders.items():
        err, hw, batches = c.fetch_batches(cluster.node(leader).port, topic, part)
        assert err == c.NONE and hw == 3, (part, c.error_name(err), hw)
        assert len(batches) == 3, batches
        for b in batches:
            assert b["producer_id"] >= 0 and b["base_sequence"] == 0, b
        # Each producer wrote one record per partition, in node order.
        for b, x in zip(batches, cluster.nodes):
            pids_by_value.setdefault(f"from-{x.node_id}".encode(), set()).add(b["producer_id"])
    # One producer id per producer across its partitions, distinct between producers.
    assert all(len(v) == 1 for v in pids_by_value.values()), pids_by_value
    distinct = {next(iter(v)) for v in pids_by_value.values()}
    print(f"producer ids of the three producers: {pids_by_value}")
    assert len(distinct) == len(cluster.nodes), pids_by_value
