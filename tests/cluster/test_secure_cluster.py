"""A cluster whose own listeners are secured: brokers replicate over a SASL_SSL inter-broker
listener (INTERNAL) and every node reaches the controllers over a SASL_SSL controller
listener, each logging in as User:admin (PLAIN) and checking its peer's certificate against
the test CA; ACLs are on, with admin the only super user. Clients stay on the PLAINTEXT
listener (User:ANONYMOUS, allowed what no ACL covers).

Run against millrace and, as the reference, a three-node Apache Kafka with the same keys.
"""

from __future__ import annotations

import socket
import time

import cwire as c
from cluster import wait_for
from securehelp import make_certs

STANDARD = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
PLAIN_LOGIN = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
               'username="admin" password="{password}" user_admin="admin-secret";')
NOT_ENOUGH_REPLICAS = 19


def secured(tmp_path, wrong_password_on: int | None = None, reauth_ms: int | None = None):
    """node_props for a cluster with SASL_SSL INTERNAL and CONTROLLER listeners; node
    `wrong_password_on` logs in with a wrong password; `reauth_ms` limits SASL sessions on both
    listeners (connections.max.reauth.ms)."""
    d = tmp_path / "certs"
    d.mkdir()
    ca = make_certs(d)
    internal = {}

    def edit(node, props):
        password = "wrong" if node.node_id == wrong_password_on else "admin-secret"
        listeners = props["listeners"].split(",")
        if node.is_broker:
            internal.setdefault(node.node_id, node.cluster.spare_port())
            listeners.append(f"INTERNAL://{node.host}:{internal[node.node_id]}")
            props["advertised.listeners"] += f",INTERNAL://{node.host}:{internal[node.node_id]}"
            props["inter.broker.listener.name"] = "INTERNAL"
        props["listeners"] = ",".join(listeners)
        props["listener.security.protocol.map"] = (
            "PLAINTEXT:PLAINTEXT,INTERNAL:SASL_SSL,CONTROLLER:SASL_SSL")
        props["sasl.mechanism.inter.broker.protocol"] = "PLAIN"
        props["sasl.mechanism.controller.protocol"] = "PLAIN"
        for listener in ("internal", "controller"):
            props[f"listener.name.{listener}.sasl.enabled.mechanisms"] = "PLAIN"
            props[f"listener.name.{listener}.plain.sasl.jaas.config"] = (
                PLAIN_LOGIN.format(password=password))
        props["ssl.keystore.type"] = "PEM"
        props["ssl.keystore.location"] = str(d / "keystore.pem")
        props["ssl.truststore.type"] = "PEM"
        props["ssl.truststore.location"] = str(ca)
        if reauth_ms is not None:
            props["connections.max.reauth.ms"] = str(reauth_ms)
        props["authorizer.class.name"] = STANDARD
        props["super.users"] = "User:admin"
        props["allow.everyone.if.no.acl.found"] = "true"

    return edit


def test_replication_and_the_quorum_run_over_sasl_ssl(cluster_factory, tmp_path, topic):
    cl = cluster_factory(node_props=secured(tmp_path))
    node = cl.running_brokers()[0]
    made = c.create_topics(node.port, {topic: 1}, replication_factor=3,
                           configs={"min.insync.replicas": "3"})
    assert made[topic][0] == c.NONE, made

    def full_isr():
        p = c.metadata(node.port, [topic]).topics[topic].partitions[0]
        return p.leader >= 0 and sorted(p.isr) == [1, 2, 3] and p
    part = wait_for(full_isr, 30, what="all three replicas in sync")
    leader = cl.node(part.leader)
    # Another node's metadata can show the partition before the leader has applied it (it
    # answers UNKNOWN_TOPIC_OR_PARTITION until then): wait for the leader's own view too.
    def leader_knows():
        t = c.metadata(leader.port, [topic]).topics.get(topic)
        parts = t.partitions if t is not None else {}
        return 0 in parts and parts[0].leader == leader.node_id
    wait_for(leader_knows, 30, what="the leader's own metadata")
    # acks=all with min.insync.replicas=3: acknowledged only once both followers fetched it
    # over the SASL_SSL inter-broker listener.
    err, base = c.produce(leader.port, topic, 0, [b"over-sasl-ssl-%d" % i for i in range(20)])
    assert err == c.NONE, c.error_name(err)
    assert c.list_offset(leader.port, topic, 0)[1] == base + 20
    # The controller listener is TLS: a plaintext request there gets no Kafka answer.
    voter = cl.node(cl.wait_active_controller())
    with socket.create_connection((voter.host, voter.controller_port), timeout=5) as s:
        s.sendall(b"\x00\x00\x00\x0c\x00\x12\x00\x00\x00\x00\x00\x07\x00\x02hi")
        s.settimeout(5)
        try:
            reply = s.recv(64)
        except (ConnectionResetError, socket.timeout):
            reply = b""
    assert not reply.startswith(b"\x00\x00\x00"), reply


def test_a_node_with_a_wrong_password_stays_out(cluster_factory, tmp_path):
    cl = cluster_factory(node_props=secured(tmp_path, wrong_password_on=4), observers=1,
                         start=False)
    for x in cl.nodes:
        x.launch()
    voters = cl.nodes[:3]
    for x in voters:
        x.wait_listening()
    wait_for(lambda: all(cl.registered_brokers(x) == {1, 2, 3} for x in voters), 60,
             what="the three voters registered")
    time.sleep(5)
    assert all(cl.registered_brokers(x) == {1, 2, 3} for x in voters)
    assert cl.node(4).alive(), "a failed login is retried, not fatal"
    if cl.kind == "millrace":
        log = cl.node(4).stdout_path.read_text(errors="replace")
        assert "authentication with a peer failed" in log, log[-3000:]


def test_peer_sessions_outlive_the_servers_reauthentication_limit(cluster_factory, tmp_path,
                                                                  topic):
    """With 3 s SASL sessions on the cluster's own listeners, the quorum and replication go on
    over many session lifetimes (a node replaces its connection before the server would close
    it)."""
    cl = cluster_factory(node_props=secured(tmp_path, reauth_ms=3000))
    node = cl.running_brokers()[0]
    made = c.create_topics(node.port, {topic: 1}, replication_factor=3,
                           configs={"min.insync.replicas": "3"})
    assert made[topic][0] == c.NONE, made
    for round_ in range(4):
        time.sleep(3)
        p = wait_for(lambda: (lambda m: m.leader >= 0 and sorted(m.isr) == [1, 2, 3] and m)(
            c.metadata(node.port, [topic]).topics[topic].partitions[0]), 30,
            what="all three replicas in sync")
        err, _ = c.produce(cl.node(p.leader).port, topic, 0, [b"round-%d" % round_])
        assert err == c.NONE, c.error_name(err)
    assert cl.active_controller() is not None
