"""A node configured with Kafka's KRaft keys (process.roles, controller.quorum.voters, a
CONTROLLER listener): as a one-voter quorum it serves clients as the single node does, its
controller listener serves the controller's APIs and the private Raft key only, and what this
build cannot serve is a start-up error naming the key, never ignored."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

import kwire as w
from brokerproc import REPO, BrokerProcess, free_port

pytestmark = pytest.mark.millrace_only

RAFT_API_KEY = 1000


def kraft_properties(controller_port: int, voters: str) -> str:
    return (
        "process.roles=broker,controller\n"
        "node.id=1\n"
        f"controller.quorum.voters={voters}\n"
        f"listeners=PLAINTEXT://127.0.0.1:1,CONTROLLER://127.0.0.1:{controller_port}\n"
        "controller.listener.names=CONTROLLER\n"
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n"
        "broker.rack=r1\n"
    )


def test_one_voter_kraft_node_serves_clients_and_a_controller_listener(tmp_path, topic):
    controller_port = free_port()
    cfg = tmp_path / "node1.properties"
    cfg.write_text(kraft_properties(controller_port, f"1@127.0.0.1:{controller_port}"))
    b = BrokerProcess(tmp_path / "b")
    b.extra_args = ["--config", str(cfg)]  # --listen replaces the client listener only
    b.start()
    try:
        # Clients work as on the single node.
        p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all"})
        for i in range(5):
            p.produce(topic, value=f"v{i}".encode())
        assert p.flush(30) == 0
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "g-" + topic,
                      "auto.offset.reset": "earliest"})
        c.subscribe([topic])
        got = []
        for _ in range(60):
            m = c.poll(1.0)
            if m is not None and m.error() is None:
                got.append(m.value())
            if len(got) == 5:
                break
        c.close()
        assert got == [f"v{i}".encode() for i in range(5)]

        # The node registered itself: clients see it with its rack, and it coordinates.
        from kafka.admin import KafkaAdminClient
        admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
        try:
            info = admin.describe_cluster()
        finally:
            admin.close()
        assert [(x["broker_id"], x["host"], x["port"], x["rack"]) for x in info["brokers"]] == \
            [(1, "127.0.0.1", b.port, "r1")]

        # The client listener lists client APIs and refuses the private Raft key.
        err, client_keys = w.api_versions_v0(b.port)
        assert err == 0 and 0 in client_keys and RAFT_API_KEY not in client_keys
        with w.connect(b.port) as s:
            s.sendall(w.frame(w.header_v1(RAFT_API_KEY, 0, 1)))
            assert w.closed_by_peer(s)

        # The controller listener serves ApiVersions (its own list: the controller's APIs as
        # Kafka's controllers serve them, no data APIs) and closes on a Raft message that does
        # not decode.
        err, controller_keys = w.api_versions_v0(controller_port)
        metadata_changes = {19, 20, 33, 37, 44}  # CreateTopics ... IncrementalAlterConfigs
        broker_lifecycle = {62, 63, 67}  # BrokerRegistration, BrokerHeartbeat, AllocateProducerIds
        # Fetch and FetchSnapshot of the metadata log by broker-only nodes, as Kafka's controllers
        observers = {1, 59}
        isr_changes = {56}  # AlterPartition from partition leaders
        elections = {43}  # ElectLeaders, which brokers forward here
        scram = {51}  # AlterUserScramCredentials, which brokers forward here
        acls = {29, 30, 31}  # DescribeAcls, and CreateAcls/DeleteAcls which brokers forward
        envelope = {58}  # a forwarded request with its client's principal (with an authorizer)
        quotas = {48, 49}  # DescribeClientQuotas, and AlterClientQuotas which brokers forward
        assert err == 0 and set(controller_keys) == \
            {18, 55, 60} | metadata_changes | broker_lifecycle | observers | isr_changes \
            | elections | scram | acls | envelope | quotas
        with w.connect(controller_port) as s:
            s.sendall(w.frame(w.header_v1(RAFT_API_KEY, 0, 1) + b"\x01\x02\x03"))
            assert w.closed_by_peer(s)
        # and the node is still serving.
        assert w.api_versions_v0(b.port)[0] == 0

        # A restart registers the broker again (leadership moves off and back under newer
        # epochs); the data and the group's offsets are all there.
        b.stop()
        b.start()
        p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all"})
        for i in range(5, 8):
            p.produce(topic, value=f"v{i}".encode())
        assert p.flush(30) == 0
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "g-" + topic,
                      "auto.offset.reset": "earliest"})
        c.subscribe([topic])
        after = []
        for _ in range(60):
            m = c.poll(1.0)
            if m is not None and m.error() is None:
                after.append(m.value())
            if len(after) == 3:
                break
        c.close()
        assert after == [f"v{i}".encode() for i in range(5, 8)], "resumed from the commit"
    finally:
        b.stop()
    assert "malformed raft message" in b.log_tail(200)


@pytest.mark.parametrize("roles,node,listeners,key", [
    # A broker-only node must not open a controller listener; a controller-only node has no
    # client listener; a controller must be among the voters, a broker-only node not.
    ("broker", 1, "PLAINTEXT://127.0.0.1:1,CONTROLLER://127.0.0.1:{other}", "listeners"),
    ("controller", 2, "PLAINTEXT://127.0.0.1:1,CONTROLLER://127.0.0.1:{cport}", "listeners"),
    ("controller", 1, "CONTROLLER://127.0.0.1:{other}", "controller.quorum.voters"),
    ("broker", 2, "PLAINTEXT://127.0.0.1:1", "controller.quorum.voters"),
])
def test_inconsistent_roles_are_startup_errors_naming_the_key(tmp_path, roles, node, listeners,
                                                              key):
    controller_port, other = free_port(), free_port()
    voters = f"2@127.0.0.1:{controller_port}"
    cfg = tmp_path / "node.properties"
    cfg.write_text(
        f"process.roles={roles}\n"
        f"node.id={node}\n"
        f"controller.quorum.voters={voters}\n"
        f"listeners={listeners.format(cport=controller_port, other=other)}\n"
        "controller.listener.names=CONTROLLER\n"
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n"
    )
    cmd = BrokerProcess(tmp_path / "b").command() + ["--config", str(cfg)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert key in done.stderr, done.stderr


DEPS = REPO / ".deps/java"


@pytest.mark.skipif(shutil.which("javac") is None or not list(DEPS.glob("kafka-clients-*.jar")),
                    reason="javac or .deps/java missing (scripts/install-test-deps.sh)")
@pytest.mark.timeout(180)
def test_java_admin_describes_the_metadata_quorum_through_either_listener(tmp_path):
    out = tmp_path / "classes"
    source = Path(__file__).parent / "java/DescribeQuorum.java"
    subprocess.run(["javac", "-d", str(out), "-cp", f"{DEPS}/*", str(source)], check=True,
                   timeout=120)
    controller_port = free_port()
    cfg = tmp_path / "node1.properties"
    cfg.write_text(kraft_properties(controller_port, f"1@127.0.0.1:{controller_port}"))
    b = BrokerProcess(tmp_path / "b")
    b.extra_args = ["--config", str(cfg)]
    b.start()
    try:
        lines = {}
        for key, addr in [("bootstrap.servers", b.bootstrap),
                          ("bootstrap.controllers", f"127.0.0.1:{controller_port}")]:
            proc = subprocess.run(
                ["java", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp",
                 f"{DEPS}/*:{out}", "DescribeQuorum", key, addr],
                capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, proc.stderr[-3000:]
            lines[key] = proc.stdout.strip()
        for key, line in lines.items():
            m = re.fullmatch(r"leader=(\d+) epoch=(\d+) hw=(\d+) voters=(\d+):(\d+)", line)
            assert m, f"{key}: {line}"
            leader, epoch, hw, voter, end = map(int, m.groups())
            # The lone voter leads after its first election, and its log holds at least the
            # election's entry and __consumer_offsets' records, all committed.
            assert (leader, voter) == (1, 1), line
            assert epoch >= 1, line
            assert hw > 0 and end == hw, line
    finally:
        b.stop()
