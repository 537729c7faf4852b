"""Any node is a bootstrap server: each one describes the whole cluster the same way."""

from __future__ import annotations

import cwire as c


def test_metadata_from_every_node_lists_all_brokers_with_racks(cluster, topic):
    cluster.create_topic(topic, 6)
    views = {x.node_id: c.metadata(x.port, [topic]) for x in cluster.nodes}
    want = {x.node_id: ("127.0.0.1", x.port, x.rack) for x in cluster.nodes}
    cluster_ids = set()
    for node_id, md in views.items():
        assert md.brokers == want, f"node {node_id} lists {md.brokers}"
        cluster_ids.add(md.cluster_id)
        t = md.topics[topic]
        assert t.error == c.NONE
        assert sorted(t.partitions) == list(range(6))
        for p in t.partitions.values():
            assert p.error == c.NONE and p.leader in cluster.ids, f"node {node_id}: {p}"
            assert p.replicas == [p.leader] and p.isr == [p.leader], p
    assert len(cluster_ids) == 1 and None not in cluster_ids, cluster_ids
    # Every node names the same leader for each partition.
    leaders = {n: {p: pm.leader for p, pm in md.topics[topic].partitions.items()}
               for n, md in views.items()}
    assert len({tuple(sorted(v.items())) for v in leaders.values()}) == 1, leaders
    if cluster.kind == "kafka":
        assert cluster_ids == {cluster.cluster_id}


def test_describe_cluster_names_cluster_id_and_a_live_controller(cluster):
    md_ids = {c.metadata(x.port, []).cluster_id for x in cluster.nodes}
    quorum_leader = cluster.active_controller()
    assert quorum_leader in cluster.ids
    for x in cluster.nodes:
        info = c.describe_cluster(x.port)
        assert info.error == c.NONE
        assert {info.cluster_id} == md_ids
        assert info.brokers == {y.node_id: ("127.0.0.1", y.port, y.rack) for y in cluster.nodes}
        # Kafka (KRaft) answers a random live broker here, not the quorum leader: clients send
        # controller requests to it and it forwards them (KIP-590). Either is acceptable.
        assert info.controller_id in cluster.ids, info


def test_describe_quorum_agrees_between_raw_request_and_java_admin(cluster):
    q = cluster.quorum()
    assert q is not None and q.error == c.NONE
    assert set(q.voters) == cluster.ids and q.observers == {}
    j = cluster.java_quorum()
    assert j["leader"] == q.leader_id
    assert set(j["voters"]) == cluster.ids
    assert j["epoch"] >= q.leader_epoch
    assert j["hw"] >= q.high_watermark > 0
    # A follower's controller either answers (millrace may) or refuses with
    # NOT_LEADER_OR_FOLLOWER (Kafka); it never names another leader.
    for x in cluster.nodes:
        fq = c.describe_quorum(x.controller_port)
        if x.node_id == q.leader_id:
            assert fq.error == c.NONE and fq.leader_id == q.leader_id
        else:
            assert fq.error == c.NOT_LEADER_OR_FOLLOWER or fq.leader_id == q.leader_id, fq
