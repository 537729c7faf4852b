"""Transactions with confluent-kafka (librdkafka: InitProducerId with a transactional id,
AddPartitionsToTxn v0, EndTxn, markers): atomic commit across topics and partitions, aborts
hidden from read_committed (librdkafka's default isolation) and shown to read_uncommitted,
the last stable offset holding read_committed consumers before an open transaction, zombie
fencing, transaction.max.timeout.ms, the coordinator aborting a transaction left open past its
timeout, and a commit that survives kill -9 of the broker.
"""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer,
                             TopicPartition)

from test_confluent_kafka import create_topic

TIMEOUT_S = 30


def txn_producer(bootstrap: str, txn_id: str, **extra) -> Producer:
    conf = {"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 5}
    conf.update(extra)
    return Producer(conf)


def read_quiet(bootstrap: str, partitions: list[tuple[str, int]], isolation: str,
               quiet_s: float = 2.0) -> list[tuple[str, int, int, bytes | None, bytes]]:
    """Every record from the start of each partition, until nothing new arrives for
    ``quiet_s`` (at most TIMEOUT_S): (topic, partition, offset, key, value). The other
    transaction modules read their topics back with it too."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex}",
                  "isolation.level": isolation, "enable.auto.commit": False,
                  "enable.partition.eof": False})
    c.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in partitions])
    out = []
    last = time.monotonic()
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() - last < quiet_s and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            raise KafkaException(m.error())
        out.append((m.topic(), m.partition(), m.offset(), m.key(), m.value()))
        last = time.monotonic()
    c.close()
    return out


def read_all(bootstrap: str, partitions: list[tuple[str, int]], isolation: str,
             quiet_s: float = 2.0) -> list[tuple[str, int, bytes]]:
    """``read_quiet`` as (topic, partition, value)."""
    return [(t, p, v) for t, p, _, _, v in read_quiet(bootstrap, partitions, isolation, quiet_s)]


def values(records) -> list[bytes]:
    return sorted(r[2] for r in records)


def test_commit_is_atomic_across_topics_and_abort_is_hidden_from_read_committed(broker, topic):
    a, b = f"{topic}-a", f"{topic}-b"
    create_topic(broker, a, 2)
    create_topic(broker, b, 1)
    parts = [(a, 0), (a, 1), (b, 0)]
    p = txn_producer(broker.bootstrap, f"tx-{topic}")
    p.init_transactions(TIMEOUT_S)
    p.begin_transaction()
    for i in range(30):
        t, part = parts[i % 3]
        p.produce(t, f"c{i}".encode(), partition=part)
    p.commit_transaction(TIMEOUT_S)
    p.begin_transaction()
    for i in range(30):
        t, part = parts[i % 3]
        p.produce(t, f"x{i}".encode(), partition=part)
    p.flush(TIMEOUT_S)
    p.abort_transaction(TIMEOUT_S)
    p.begin_transaction()
    p.produce(a, b"after", partition=0)
    p.commit_transaction(TIMEOUT_S)

    committed = values(read_all(broker.bootstrap, parts, "read_committed"))
    assert committed == sorted([f"c{i}".encode() for i in range(30)] + [b"after"])
    everything = values(read_all(broker.bootstrap, parts, "read_uncommitted"))
    assert everything == sorted([f"c{i}".encode() for i in range(30)]
                                + [f"x{i}".encode() for i in range(30)] + [b"after"])


def test_an_open_transaction_holds_read_committed_at_the_last_stable_offset(broker, topic):
    create_topic(broker, topic, 1)
    plain = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
    plain.produce(topic, b"before", partition=0)
    plain.flush(TIMEOUT_S)
    p = txn_producer(broker.bootstrap, f"tx-{topic}")
    p.init_transactions(TIMEOUT_S)
    p.begin_transaction()
    p.produce(topic, b"in-txn", partition=0)
    p.flush(TIMEOUT_S)
    plain.produce(topic, b"after-open", partition=0)
    plain.flush(TIMEOUT_S)

    # read_committed stops at the open transaction: not even the later plain record.
    assert values(read_all(broker.bootstrap, [(topic, 0)], "read_committed")) == [b"before"]
    assert values(read_all(broker.bootstrap, [(topic, 0)], "read_uncommitted")) == sorted(
        [b"before", b"in-txn", b"after-open"])
    p.commit_transaction(TIMEOUT_S)
    assert values(read_all(broker.bootstrap, [(topic, 0)], "read_committed")) == sorted(
        [b"before", b"in-txn", b"after-open"])


def test_a_second_producer_fences_the_first(broker, topic):
    create_topic(broker, topic, 1)
    txn_id = f"tx-{topic}"
    first = txn_producer(broker.bootstrap, txn_id)
    first.init_transactions(TIMEOUT_S)
    first.begin_transaction()
    first.produce(topic, b"zombie", partition=0)
    first.flush(TIMEOUT_S)
    second = txn_producer(broker.bootstrap, txn_id)
    # Aborts the zombie's open transaction, then takes the id under a newer epoch.
    second.init_transactions(TIMEOUT_S)
    second.begin_transaction()
    second.produce(topic, b"live", partition=0)
    second.commit_transaction(TIMEOUT_S)
    with pytest.raises(KafkaException) as failed:
        first.commit_transaction(TIMEOUT_S)
    err = failed.value.args[0]
    assert err.fatal() or err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                         KafkaError.INVALID_PRODUCER_EPOCH), err
    assert values(read_all(broker.bootstrap, [(topic, 0)], "read_committed")) == [b"live"]


def test_a_timeout_above_the_maximum_is_refused(broker, topic):
    p = txn_producer(broker.bootstrap, f"tx-{topic}", **{"transaction.timeout.ms": 900_001})
    with pytest.raises(KafkaException) as failed:
        p.init_transactions(TIMEOUT_S)
    assert failed.value.args[0].code() == KafkaError.INVALID_TRANSACTION_TIMEOUT


@pytest.mark.millrace_only
def test_the_coordinator_aborts_a_transaction_left_open(broker_factory, topic):
    b = broker_factory()
    cfg = b.data_dir / "txn.properties"
    cfg.write_text("transaction.abort.timed.out.transaction.cleanup.interval.ms=200\n")
    b.extra_args = ["--config", str(cfg)]
    b.start()
    create_topic(b, topic, 1)
    p = txn_producer(b.bootstrap, f"tx-{topic}", **{"transaction.timeout.ms": 2000})
    p.init_transactions(TIMEOUT_S)
    p.begin_transaction()
    p.produce(topic, b"abandoned", partition=0)
    p.flush(TIMEOUT_S)
    plain = Producer({"bootstrap.servers": b.bootstrap})
    plain.produce(topic, b"later", partition=0)
    plain.flush(TIMEOUT_S)
    time.sleep(3.5)
    # The abort marker releases the last stable offset: the later record becomes readable
    # and the abandoned one never is.
    assert values(read_all(b.bootstrap, [(topic, 0)], "read_committed")) == [b"later"]
    with pytest.raises(KafkaException):
        p.commit_transaction(TIMEOUT_S)


def test_a_commit_survives_kill9(broker_factory, topic):
    b = broker_factory().start()
    create_topic(b, topic, 2)
    p = txn_producer(b.bootstrap, f"tx-{topic}")
    p.init_transactions(TIMEOUT_S)
    p.begin_transaction()
    for i in range(20):
        p.produce(topic, f"k{i}".encode(), partition=i % 2)
    p.commit_transaction(TIMEOUT_S)
    p.begin_transaction()
    p.produce(topic, b"open-at-crash", partition=0)
    p.flush(TIMEOUT_S)
    b.kill9()
    b.start()
    # The committed transaction is whole; the one open at the crash stays invisible until the
    # next producer with the id aborts it.
    p2 = txn_producer(b.bootstrap, f"tx-{topic}")
    p2.init_transactions(TIMEOUT_S)
    got = values(read_all(b.bootstrap, [(topic, 0), (topic, 1)], "read_committed"))
    assert got == sorted(f"k{i}".encode() for i in range(20))


def _retrying(call, retriable=(14, 15, 16, 51), timeout_s: float = TIMEOUT_S):
    """Repeats ``call`` (returning (error_code, ...)) while its error is retriable: coordinator
    loading / not available / not coordinator, concurrent transactions."""
    deadline = time.monotonic() + timeout_s
    while True:
        out = call()
        if out[0] not in retriable or time.monotonic() > deadline:
            return out
        time.sleep(0.2)


def _raw_find_coordinator(port: int, txn_id: str) -> tuple:
    """FindCoordinator v1 for a transactional id: (error,)."""
    import kwire as w
    r = w.request(port, 10, 1, w.string(txn_id) + w.i8(1))
    r.i32()
    return (r.i16(),)


def _raw_init(port: int, txn_id: str) -> tuple:
    """InitProducerId v1 with a transactional id: (error, producer id, epoch)."""
    import kwire as w
    r = w.request(port, 22, 1, w.string(txn_id) + w.i32(60_000))
    r.i32()
    return r.i16(), r.i64(), r.i16()


def _raw_end_txn(port: int, txn_id: str, pid: int, epoch: int, commit: bool) -> tuple:
    """EndTxn v1: (error,)."""
    import kwire as w
    r = w.request(port, 26, 1, w.string(txn_id) + w.i64(pid) + w.i16(epoch) + w.i8(int(commit)))
    r.i32()
    return (r.i16(),)


def test_a_transactional_produce_to_a_partition_not_in_the_transaction_is_refused(broker, topic):
    """KIP-890 part 1 on the raw wire (v1 transactional APIs, Produce v7): the leader checks
    with the coordinator before a producer's first transactional append to a partition."""
    import kwire as w
    create_topic(broker, topic, 1)
    port = int(broker.bootstrap.rsplit(":", 1)[1])
    txn_id = f"tx-{topic}"

    # Kafka creates __transaction_state at the first transactional FindCoordinator.
    assert _retrying(lambda: _raw_find_coordinator(port, txn_id))[0] == 0

    err, pid, epoch = _retrying(lambda: _raw_init(port, txn_id))
    assert err == 0, err

    def produce(seq):
        batch = w.record_batch([b"v"], 1_700_000_000_000, producer_id=pid,
                               producer_epoch=epoch, base_sequence=seq, transactional=True)
        body = w.produce_v7_body(topic, 0, batch, transactional_id=txn_id)
        return w.parse_produce_v7(w.request(port, 0, 7, body))[0][2]

    assert produce(0) == 48  # INVALID_TXN_STATE: Produce v7 predates TRANSACTION_ABORTABLE

    def add_partitions():
        body = (w.string(txn_id) + w.i64(pid) + w.i16(epoch)
                + w.array([w.string(topic) + w.array([w.i32(0)])]))
        r = w.request(port, 24, 1, body)
        r.i32()
        r.i32()
        r.string()
        r.i32()
        r.i32()
        return (r.i16(),)

    assert _retrying(add_partitions)[0] == 0
    assert produce(0) == 0

    assert _retrying(lambda: _raw_end_txn(port, txn_id, pid, epoch, True))[0] == 0
    # The transaction is over: the same producer's next batch is refused again (once the
    # markers are written; meanwhile NOT_ENOUGH_REPLICAS, retriable, as Kafka answers).
    # Kafka 4.4 accepts it: its verification state outlives the transaction for a higher
    # sequence of the same epoch, and the batch opens a transaction the coordinator does not
    # know (the hole TV2 closes); millrace verifies every first batch of a transaction.
    late = _retrying(lambda: (produce(1),), retriable=(19,))[0]
    assert late == (48 if broker.kind == "millrace" else 0)
    if broker.kind == "millrace":
        assert values(read_all(broker.bootstrap, [(topic, 0)], "read_committed")) == [b"v"]


def _consume(c: Consumer, n: int) -> list:
    """The next ``n`` records ``c`` polls (fails after TIMEOUT_S)."""
    got = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(got) < n:
        assert time.monotonic() < deadline, f"consumed {len(got)} of {n}"
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            raise KafkaException(m.error())
        got.append(m)
    return got


def _committed(bootstrap: str, group: str, tp: TopicPartition, isolation: str,
               timeout_s: float = 10) -> int:
    """The group's committed offset for ``tp`` as a consumer outside the group reads it.
    librdkafka asks for stable offsets (OffsetFetch require_stable) under read_committed and
    retries UNSTABLE_OFFSET_COMMIT until ``timeout_s``."""
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                      "isolation.level": isolation, "enable.auto.commit": False})
    try:
        return probe.committed([TopicPartition(tp.topic, tp.partition)], timeout_s)[0].offset
    finally:
        probe.close()


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_send_offsets_to_transaction_commits_and_aborts_with_it(broker, topic, protocol):
    """Consume-transform-produce: the input offsets committed inside the transaction
    (AddOffsetsToTxn + TxnOffsetCommit v3 with the group's metadata, KIP-447) become the group's
    offsets at COMMIT, never at ABORT, and a stable read waits while they are pending; with a
    classic group and with a KIP-848 group."""
    src, out = f"{topic}-in", f"{topic}-out"
    create_topic(broker, src, 1)
    create_topic(broker, out, 1)
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(30):
        plain.produce(src, f"in{i}".encode(), partition=0)
    plain.flush(TIMEOUT_S)
    group = f"g-{topic}"
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                  "group.protocol": protocol, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    c.subscribe([src])
    tp = TopicPartition(src, 0)
    p = txn_producer(broker.bootstrap, f"tx-{topic}")
    p.init_transactions(TIMEOUT_S)

    first = _consume(c, 10)
    p.begin_transaction()
    for m in first:
        p.produce(out, m.value().replace(b"in", b"out"), partition=0)
    p.send_offsets_to_transaction([TopicPartition(src, 0, first[-1].offset() + 1)],
                                  c.consumer_group_metadata(), TIMEOUT_S)
    # Pending: not the group's offset yet, and a stable read cannot get past it.
    assert _committed(broker.bootstrap, group, tp, "read_uncommitted") < 0
    with pytest.raises(KafkaException):
        _committed(broker.bootstrap, group, tp, "read_committed", timeout_s=3)
    p.commit_transaction(TIMEOUT_S)
    assert _committed(broker.bootstrap, group, tp, "read_committed") == 10

    second = _consume(c, 10)
    p.begin_transaction()
    for m in second:
        p.produce(out, m.value().replace(b"in", b"out"), partition=0)
    p.send_offsets_to_transaction([TopicPartition(src, 0, second[-1].offset() + 1)],
                                  c.consumer_group_metadata(), TIMEOUT_S)
    p.abort_transaction(TIMEOUT_S)
    assert _committed(broker.bootstrap, group, tp, "read_committed") == 10
    c.close()

    got = values(read_all(broker.bootstrap, [(out, 0)], "read_committed"))
    assert got == sorted(f"out{i}".encode() for i in range(10))
    # A consumer restarting in the group resumes where the committed transaction left off.
    again = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                      "group.protocol": protocol, "enable.auto.commit": False,
                      "auto.offset.reset": "earliest"})
    again.subscribe([src])
    assert _consume(again, 1)[0].offset() == 10
    again.close()


def test_offsets_from_a_fenced_generation_are_refused(broker, topic):
    """KIP-447: group metadata taken before a rebalance carries the old generation; the
    transaction's offset commit with it is refused (the transaction can only abort) and the
    group's offsets stay as they were."""
    create_topic(broker, topic, 2)
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        plain.produce(topic, f"v{i}".encode(), partition=i % 2)
    plain.flush(TIMEOUT_S)
    group = f"g-{topic}"
    conf = {"bootstrap.servers": broker.bootstrap, "group.id": group,
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "session.timeout.ms": 10_000}
    c1 = Consumer(conf)
    c1.subscribe([topic])
    _consume(c1, 1)
    stale = c1.consumer_group_metadata()
    # A second member joins: the generation moves on, c1 rejoins with its share.
    c2 = Consumer(conf)
    c2.subscribe([topic])
    deadline = time.monotonic() + TIMEOUT_S
    while len(c2.assignment()) == 0 or len(c1.assignment()) == 2:
        assert time.monotonic() < deadline, "no rebalance"
        c1.poll(0.1)
        c2.poll(0.1)
    p = txn_producer(broker.bootstrap, f"tx-{topic}")
    p.init_transactions(TIMEOUT_S)
    p.begin_transaction()
    p.produce(topic, b"x", partition=0)
    with pytest.raises(KafkaException):
        p.send_offsets_to_transaction([TopicPartition(topic, 0, 5)], stale, TIMEOUT_S)
    p.abort_transaction(TIMEOUT_S)
    assert _committed(broker.bootstrap, group, TopicPartition(topic, 0), "read_committed") < 0
    # The current metadata commits.
    p.begin_transaction()
    p.produce(topic, b"y", partition=0)
    fresh = c1 if any(a.partition == 0 for a in c1.assignment()) else c2
    p.send_offsets_to_transaction([TopicPartition(topic, 0, 3)],
                                  fresh.consumer_group_metadata(), TIMEOUT_S)
    p.commit_transaction(TIMEOUT_S)
    assert _committed(broker.bootstrap, group, TopicPartition(topic, 0), "read_committed") == 3
    c1.close()
    c2.close()


def test_a_txn_offset_commit_outside_the_transaction_is_refused(broker, topic):
    """The raw wire (TxnOffsetCommit v2): offsets for a group whose offsets partition the
    transaction does not hold (no AddOffsetsToTxn) are refused, so nothing waits for a marker
    that never comes; after AddOffsetsToTxn they are taken."""
    import kwire as w
    create_topic(broker, topic, 1)
    port = int(broker.bootstrap.rsplit(":", 1)[1])
    txn_id, group = f"tx-{topic}", f"g-{topic}"

    assert _retrying(lambda: _raw_find_coordinator(port, txn_id))[0] == 0

    err, pid, epoch = _retrying(lambda: _raw_init(port, txn_id))
    assert err == 0, err

    def txn_offset_commit():
        part = w.i32(0) + w.i64(4) + w.i32(-1) + w.string(None)
        body = (w.string(txn_id) + w.string(group) + w.i64(pid) + w.i16(epoch)
                + w.array([w.string(topic) + w.array([part])]))
        r = w.request(port, 28, 2, body)
        r.i32()
        assert r.i32() == 1 and r.string() == topic and r.i32() == 1
        assert r.i32() == 0
        return (r.i16(),)

    # Kafka's group coordinator finds the group's coordinator first: retriable codes until then.
    assert _retrying(txn_offset_commit)[0] == 48  # INVALID_TXN_STATE

    def add_offsets():
        body = w.string(txn_id) + w.i64(pid) + w.i16(epoch) + w.string(group)
        r = w.request(port, 25, 1, body)
        r.i32()
        return (r.i16(),)

    assert _retrying(add_offsets)[0] == 0
    assert _retrying(txn_offset_commit)[0] == 0

    assert _retrying(lambda: _raw_end_txn(port, txn_id, pid, epoch, True))[0] == 0
    tp = TopicPartition(topic, 0)
    w.wait_until(lambda: _committed(broker.bootstrap, group, tp, "read_uncommitted") == 4)


@pytest.mark.millrace_only  # the Kafka rig takes no broker configs
def test_an_idle_transactional_id_expires(broker_factory, topic):
    """transactional.id.expiration.ms: an id with no transaction open and no request for that
    long is forgotten (tombstoned in __transaction_state): InitProducerId then starts it over
    with a new producer id instead of bumping the old one's epoch; before expiry, and after a
    restart that reads the log back, the id is still known."""
    b = broker_factory()
    cfg = b.data_dir / "txn.properties"
    cfg.write_text("transactional.id.expiration.ms=1500\n"
                   "transaction.remove.expired.transaction.cleanup.interval.ms=200\n")
    b.extra_args = ["--config", str(cfg)]
    b.start()
    txn_id = f"tx-{topic}"

    def init():
        return _raw_init(int(b.bootstrap.rsplit(":", 1)[1]), txn_id)

    err, pid, epoch = _retrying(init)
    assert err == 0
    err, pid2, epoch2 = _retrying(init)
    assert (err, pid2, epoch2) == (0, pid, epoch + 1), "known: the epoch is bumped"
    b.stop()
    b.start()
    err, pid3, epoch3 = _retrying(init)
    assert (err, pid3, epoch3) == (0, pid, epoch + 2), "known after a restart"
    time.sleep(4)
    err, pid4, epoch4 = _retrying(init)
    assert err == 0 and pid4 != pid and epoch4 == 0, (pid4, epoch4)
    # The expiry is durable: after another restart the id is the new producer's.
    b.stop()
    b.start()
    err, pid5, epoch5 = _retrying(init)
    assert (err, pid5, epoch5) == (0, pid4, 1)
