"""Transactions across brokers (issue 18): a transactional producer writing to an RF=3 topic
whose partition leaders are spread over three brokers, with its coordinator on one of them, so
markers travel to other brokers (WriteTxnMarkers) and partition leaders verify first batches
with a remote coordinator (AddPartitionsToTxn v4 verify_only). Then the coordinator's broker is
killed with a transaction open: the new coordinator aborts it when the producer's successor
initialises, and read_committed consumers are not held back.

Runs against millrace (in CI) and Apache Kafka 4.4 (the reference).
"""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition

import cwire as c
from cluster import wait_for
from test_replication import PARTITIONS, create_rf3

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
