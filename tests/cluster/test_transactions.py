"""Transactions across brokers (issue 18): a transactional producer writing to an RF=3 topic
whose partition leaders are spread over three brokers, with its coordinator on one of them, so
markers travel to other brokers (WriteTxnMarkers) and partition leaders verify first batches
with a remote coordinator (AddPartitionsToTxn v4 verify_only). Then the coordinator's broker is
killed with a transaction open: the new coordinator aborts it when the producer's successor
initialises, and read_committed consumers are not held back.

confluent-kafka speaks the classic protocol. The Java client (kafka-clients 4.x, driven through
tests/clients/java/TxnDelay.java) speaks Transactions V2 (KIP-890 part 2) with brokers that
finalize `transaction.version` 2: no AddPartitionsToTxn from the client, the partition leader
adds its partition at the coordinator (AddPartitionsToTxn v5 across brokers), and every EndTxn
bumps the producer epoch, which the markers carry. Its test kills a partition leader between
two transactions.

Runs against millrace (in CI) and Apache Kafka 4.4 (the reference).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition

import cwire as c
import kwire as w
from cluster import JAVA_DEPS, wait_for
from history import tools_binary
from test_replication import PARTITIONS, create_rf3
from txn_driver import TxnDriver, compile_txn_driver

TIMEOUT_S = 60


def read_all(bootstrap: str, topic: str, isolation: str, quiet_s: float = 3.0) -> list[bytes]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex}",
                  "isolation.level": isolation, "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    out, last = [], time.monotonic()
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() - last < quiet_s and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            raise KafkaException(m.error())
        out.append(m.value())
        last = time.monotonic()
    c.close()
    return sorted(out)


def txn_producer(bootstrap: str, txn_id: str) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id,
                     "linger.ms": 5, "transaction.timeout.ms": 60_000})


@pytest.mark.timeout(240)
def test_transactions_commit_and_abort_across_brokers(cluster, topic, observe):
    create_rf3(cluster, topic)
    bootstrap = cluster.bootstrap()
    p = txn_producer(bootstrap, f"tx-{topic}")
    t0 = time.monotonic()
    p.init_transactions(TIMEOUT_S)
    observe("init_transactions (s)", round(time.monotonic() - t0, 2))
    p.begin_transaction()
    for i in range(60):
        p.produce(topic, f"c{i}".encode(), partition=i % PARTITIONS)
    t0 = time.monotonic()
    p.commit_transaction(TIMEOUT_S)
    observe("commit of 60 records over every partition (s)", round(time.monotonic() - t0, 2))
    p.begin_transaction()
    for i in range(60):
        p.produce(topic, f"x{i}".encode(), partition=i % PARTITIONS)
    p.flush(TIMEOUT_S)
    p.abort_transaction(TIMEOUT_S)
    committed = sorted(f"c{i}".encode() for i in range(60))
    assert read_all(bootstrap, topic, "read_committed") == committed
    assert read_all(bootstrap, topic, "read_uncommitted") == sorted(
        committed + [f"x{i}".encode() for i in range(60)])


@pytest.mark.timeout(300)
def test_a_transaction_open_when_its_coordinator_dies_is_aborted_by_the_next(cluster_factory,
                                                                              topic, observe):
    # The transaction log replicated on every node (the shared rig's Kafka keeps it at RF=1).
    cluster = cluster_factory({"transaction.state.log.replication.factor": "3",
                               "transaction.state.log.min.isr": "2"})
    create_rf3(cluster, topic)
    bootstrap = cluster.bootstrap()
    txn_id = f"tx-{topic}"
    p = txn_producer(bootstrap, txn_id)
    p.init_transactions(TIMEOUT_S)
    p.begin_transaction()
    for i in range(30):
        p.produce(topic, f"committed{i}".encode(), partition=i % PARTITIONS)
    p.commit_transaction(TIMEOUT_S)
    p.begin_transaction()
    for i in range(30):
        p.produce(topic, f"open{i}".encode(), partition=i % PARTITIONS)
    p.flush(TIMEOUT_S)
    port = cluster.running_brokers()[0].port
    found = []
    wait_for(lambda: found.append(c.find_coordinator(port, txn_id, 1)) or found[-1][0] == c.NONE,
             30, what=f"the coordinator of {txn_id}")
    coordinator = found[-1][1]
    observe("coordinator killed", coordinator)
    cluster.node(coordinator).kill9()
    t0 = time.monotonic()
    survivors = cluster.bootstrap()
    p2 = txn_producer(survivors, txn_id)
    p2.init_transactions(TIMEOUT_S)
    observe("successor's init_transactions after the coordinator died (s)",
            round(time.monotonic() - t0, 2))
    p2.begin_transaction()
    p2.produce(topic, b"successor", partition=0)
    p2.commit_transaction(TIMEOUT_S)
    expected = sorted([f"committed{i}".encode() for i in range(30)] + [b"successor"])
    assert read_all(survivors, topic, "read_committed") == expected


# --- Transactions V2: the Java client ---------------------------------------------------------

V2_TRANSACTIONS = 6  # the even ones committed, the odd ones aborted
V2_RECORDS = 3  # per partition and transaction
V2_KILL_BEFORE = 3  # a partition leader is killed after transactions 0-2, before 3-5
# A send answers once acknowledged; after the kill that may take up to the driver's
# delivery.timeout.ms (30 s), so a command is given more.
DRIVER_COMMAND_TIMEOUT_S = 45
COMPLETE = ("CompleteCommit", "CompleteAbort")

JAVA = pytest.mark.skipif(
    shutil.which("javac") is None or not list(JAVA_DEPS.glob("kafka-clients-*.jar")),
    reason="javac or .deps/java missing (scripts/install-test-deps.sh)")


@pytest.mark.timeout(240)
@JAVA
def test_transactions_v2_java_client_across_brokers_through_a_leader_kill(cluster, topic,
                                                                          observe, tmp_path):
    """The Java 4.x producer (Transactions V2) runs six transactions, each writing to every
    partition of an RF=3 topic led by all three brokers, committing the even ones and aborting
    the odd ones; between the third and the fourth, the leader of a partition (not the
    transaction coordinator) is killed with SIGKILL. Then: read_committed sees exactly the
    committed records, once each, read_uncommitted every record; no partition's last stable
    offset is behind its high watermark; the coordinator reports the producer epoch moved by one
    per transaction; in the logs, each transaction's batches carry the epoch it ran with and the
    markers that end it the next one."""
    create_rf3(cluster, topic)
    leaders = cluster.leaders(topic)
    assert set(leaders.values()) == cluster.broker_ids, f"leaders not spread: {leaders}"
    txn_id = f"tx2-{topic}"
    classes = compile_txn_driver(tmp_path / "classes")
    driver = TxnDriver(classes, cluster.bootstrap(), txn_id, "txn-v2-cluster",
                       tmp_path / "driver.log", DRIVER_COMMAND_TIMEOUT_S)
    try:
        driver.ok("init")
        coordinator = txn_coordinator(cluster, txn_id)
        start = describe_txn(cluster.running_brokers()[0], txn_id)
        observe("after init", start)
        assert start["state"] == "Empty", start
        assert start["coordinator_id"] == coordinator, (start, coordinator)
        pid, epoch0 = start["producer_id"], start["producer_epoch"]

        sent: dict[int, dict[int, list[int]]] = {}
        durations = []
        for i in range(V2_TRANSACTIONS):
            if i == V2_KILL_BEFORE:
                kill_a_leader(cluster, topic, leaders, coordinator, observe)
            t0 = time.monotonic()
            sent[i] = run_transaction(driver, topic, i)
            durations.append(round(time.monotonic() - t0, 2))
        observe("transaction durations (s)", durations)

        survivor = cluster.running_brokers()[0]
        end = settled_txn(survivor, txn_id)
        observe("after the last transaction", end)
        observe("producer epochs (after init, after the last)",
                (epoch0, end["producer_epoch"]))
    finally:
        driver.close()
        observe("client warnings (error names and refused connections)", driver.warnings())
        print(driver.report())

    assert end["state"] == "CompleteAbort", end  # the last transaction was aborted
    assert end["coordinator_id"] == coordinator, (end, coordinator)
    assert end["producer_id"] == pid, (start, end)
    # Transactions V2: every EndTxn bumps the epoch (the classic protocol keeps it).
    assert end["producer_epoch"] == epoch0 + V2_TRANSACTIONS, (
        f"producer epoch {epoch0} after init, {end['producer_epoch']} after "
        f"{V2_TRANSACTIONS} transactions: Transactions V2 bumps it once per EndTxn")

    survivors = cluster.bootstrap()
    committed = sorted(txn_value(i, p, j).encode() for i in sent if i % 2 == 0
                       for p in range(PARTITIONS) for j in range(V2_RECORDS))
    everything = sorted(txn_value(i, p, j).encode() for i in sent
                        for p in range(PARTITIONS) for j in range(V2_RECORDS))
    assert read_all(survivors, topic, "read_committed") == committed
    assert read_all(survivors, topic, "read_uncommitted") == everything
    assert_nothing_left_open(cluster, topic)
    markers = check_batch_epochs(cluster, topic, sent, pid, epoch0)
    observe("markers per partition (one per transaction expected)", markers)


def txn_value(i: int, p: int, j: int) -> str:
    return f"t{i}-p{p}-r{j}"


def run_transaction(driver: TxnDriver, topic: str, i: int) -> dict[int, list[int]]:
    """Transaction i: V2_RECORDS records to every partition in turn, each acknowledged before
    the next, then commit (even i) or abort (odd i). Returns {partition: offsets}."""
    driver.ok("begin")
    offsets: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
    for j in range(V2_RECORDS):
        for p in range(PARTITIONS):
            _, _, partition, offset = driver.ok(f"send {topic} {p} {txn_value(i, p, j)}").split()
            assert int(partition) == p
            offsets[p].append(int(offset))
    driver.ok("commit" if i % 2 == 0 else "abort")
    return offsets


def txn_coordinator(cluster, txn_id: str) -> int:
    port = cluster.running_brokers()[0].port

    def found():
        err, node_id, _, _ = c.find_coordinator(port, txn_id, 1)
        return node_id if err == c.NONE else None
    return wait_for(found, 30, what=f"the coordinator of {txn_id}")


def describe_txn(node, txn_id: str) -> dict:
    """`millrace-tools transactions describe --json` through `node`: the coordinator's
    DescribeTransactions answer for the id."""
    proc = subprocess.run([tools_binary(), "transactions", "describe", "--transactional-id",
                           txn_id, "--json", "--bootstrap-server", node.bootstrap],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, f"transactions describe: {proc.stdout}{proc.stderr}"
    return json.loads(proc.stdout)


def settled_txn(node, txn_id: str) -> dict:
    """The id's description once its last transaction is complete (markers all written)."""
    last: list[dict] = []

    def complete():
        last.append(describe_txn(node, txn_id))
        return last[-1]["state"] in COMPLETE
    try:
        wait_for(complete, 20, interval_s=0.2, what=f"{txn_id} complete")
    except TimeoutError:
        pass
    assert last and last[-1]["state"] in COMPLETE, f"{txn_id} never completed: {last[-1:]}"
    return last[-1]


def kill_a_leader(cluster, topic: str, leaders: dict[int, int], coordinator: int,
                  observe) -> int:
    """SIGKILL of a broker leading a partition of `topic`, neither the transaction coordinator
    nor (when there is a choice, which the spread leaders give) the active controller; waits
    until every survivor names another leader for its partitions."""
    controller = cluster.active_controller()
    candidates = sorted(set(leaders.values()) - {coordinator})
    victim = ([b for b in candidates if b != controller] or candidates)[0]
    moved = [p for p, leader in leaders.items() if leader == victim]
    observe("coordinator, controller, killed leader, its partitions",
            (coordinator, controller, victim, moved))
    t0 = time.monotonic()
    cluster.node(victim).kill9()

    def elsewhere():
        for x in cluster.running_brokers():
            parts = c.metadata(x.port, [topic]).topics[topic].partitions
            if any(parts[p].leader in (victim, -1) for p in moved):
                return False
        return True
    wait_for(elsewhere, 30, interval_s=0.1, what=f"{topic}: partitions {moved} led elsewhere")
    observe("new leader elected after (s)", round(time.monotonic() - t0, 2))
    return victim


def list_offset_isolated(port: int, topic: str, p: int, isolation: int) -> int:
    """ListOffsets v2 latest at the partition's leader: the high watermark with isolation 0
    (read_uncommitted), the last stable offset with 1 (read_committed)."""
    body = (w.i32(-1) + w.i8(isolation)
            + w.array([w.string(topic) + w.array([w.i32(p) + w.i64(-1)])]))
    [(_, _, err, offset)] = w.parse_list_offsets_v2(c.call(port, c.API_LIST_OFFSETS, 2, body))
    assert err == c.NONE, f"ListOffsets {topic}-{p} isolation {isolation}: {c.error_name(err)}"
    return offset


def assert_nothing_left_open(cluster, topic: str) -> None:
    """Every partition's last stable offset reaches its high watermark (markers are written
    after EndTxn answers, so give them a moment)."""
    seen: dict[int, tuple[int, int]] = {}

    def stable():
        leaders = cluster.leaders(topic)
        for p in range(PARTITIONS):
            port = cluster.node(leaders[p]).port
            seen[p] = (list_offset_isolated(port, topic, p, 1),
                       list_offset_isolated(port, topic, p, 0))
        return all(lso == hw for lso, hw in seen.values())
    try:
        wait_for(stable, 15, interval_s=0.2, what=f"{topic}: last stable offsets")
    except TimeoutError:
        pass
    assert len(seen) == PARTITIONS and all(lso == hw > 0 for lso, hw in seen.values()), \
        f"(last stable offset, high watermark) per partition: {seen}"


def check_batch_epochs(cluster, topic: str, sent: dict[int, dict[int, list[int]]], pid: int,
                       epoch0: int) -> dict[int, list[int]]:
    """Each partition's log, batch by batch at its leader: transaction i's records in batches of
    epoch epoch0 + i (the client's epoch after i bumps), followed by its marker(s) with epoch
    epoch0 + i + 1 (the coordinator's bump at EndTxn), before transaction i + 1's records, and
    nothing after the last marker. Returns the number of markers per transaction, per
    partition."""
    txn_of = {(p, o): i for i, parts in sent.items() for p, offs in parts.items() for o in offs}
    markers: dict[int, list[int]] = {}
    leaders = cluster.leaders(topic)
    for p in range(PARTITIONS):
        err, hw, batches = c.fetch_batches(cluster.node(leaders[p]).port, topic, p)
        assert err == c.NONE, f"Fetch {topic}-{p}: {c.error_name(err)}"
        shape: list[tuple[str, int]] = []
        for b in batches:
            assert b["producer_id"] == pid, (p, b, pid)
            txns = {txn_of.get((p, o)) for o in range(b["base_offset"], b["last_offset"] + 1)}
            if txns == {None}:  # no record the client sent: a control batch
                assert b["records"] == 1, (p, b)
                shape.append(("marker epoch", b["producer_epoch"]))
                continue
            assert None not in txns and len(txns) == 1, f"{topic}-{p} batch {b} mixes {txns}"
            (i,) = txns
            assert b["producer_epoch"] == epoch0 + i, \
                f"{topic}-{p}: transaction {i}'s batch {b}, epoch after init {epoch0}"
            shape.append(("records of transaction", i))
        assert batches and batches[-1]["last_offset"] + 1 == hw, (p, batches[-1:], hw)
        collapsed = [s for k, s in enumerate(shape) if k == 0 or shape[k - 1] != s]
        expected = [s for i in range(len(sent)) for s in (("records of transaction", i),
                                                          ("marker epoch", epoch0 + i + 1))]
        assert collapsed == expected, f"{topic}-{p}: batches {batches}"
        markers[p] = [shape.count(("marker epoch", epoch0 + i + 1)) for i in range(len(sent))]
    return markers
