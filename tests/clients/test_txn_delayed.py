"""A delayed Produce or EndTxn must not commit, abort or tear the next transaction (the class of
KAFKA-17754).

The Java client (kafka-clients 4.x, java/TxnDelay.java driven one command at a time) talks to
the broker through txn_proxy.TxnProxy, which the broker advertises as its own address, so that
every client connection crosses it. The proxy holds one request of the transaction under test;
the client times out (request.timeout.ms 3 s), closes that connection and retries the request
on a new one, where it succeeds; the producer goes on to its next transaction; only then does the
proxy hand the stale request to the broker, on the connection the client has abandoned. A
read_committed consumer then checks that the stale request changed nothing.

Each case runs with the broker's ``transaction.version`` feature at 2 (Transactions V2, KIP-890
part 2: the client sends EndTxn v5 and Produce v12+, and the producer epoch is bumped by every
transaction end, so a request of the previous transaction carries an older epoch) and at 1 (the
classic protocol: one epoch for all transactions of a producer session). Apache Kafka gets the
level at storage format (KAFKA_FORMAT_FEATURES), millrace from ``millrace.transaction.version``.

What Apache Kafka 4.4 answers the stale request (printed by each test, shown with -rP): at level
2, INVALID_PRODUCER_EPOCH to the Produce and PRODUCER_FENCED to the EndTxn; at level 1, the
Produce is a duplicate of the retried batch (same epoch and sequence), answered NONE with the
first copy's offset and not written again, while the EndTxn(commit) is answered NONE and commits
the next transaction, whose abort then fails with InvalidTxnStateException: the classic
protocol's known hole, expected to fail (CLASSIC_STALE_END_TXN) on either broker.
"""

from __future__ import annotations

import shutil
import struct
import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, IsolationLevel, KafkaError, \
    KafkaException, TopicPartition
from confluent_kafka.admin import OffsetSpec

from brokerproc import REPO
from test_confluent_kafka import admin, create_topic
from txn_driver import TxnDriver, compile_txn_driver
from txn_proxy import Held, TxnProxy

DEPS = REPO / ".deps/java"
CLIENT_ID = "txn-delay"
PARTITIONS = 2  # the records go to partition 0; the whole topic is read back
MODES = ["v1", "v2"]  # transaction.version 1 and 2
API_PRODUCE = 0
API_END_TXN = 26
COMMAND_TIMEOUT_S = 30  # a command whose request is held: request.timeout.ms 3 s, then a retry
RESPONSE_TIMEOUT_S = 15
READ_TIMEOUT_S = 20
# The first request versions of Transactions V2 (KIP-890 part 2); the client sends lower ones
# when the broker finalizes transaction.version below 2.
V2_VERSIONS = {API_PRODUCE: 12, API_END_TXN: 5}
ERRORS = {0: "NONE", 45: "OUT_OF_ORDER_SEQUENCE_NUMBER", 46: "DUPLICATE_SEQUENCE_NUMBER",
          47: "INVALID_PRODUCER_EPOCH", 48: "INVALID_TXN_STATE",
          49: "INVALID_PRODUCER_ID_MAPPING", 51: "CONCURRENT_TRANSACTIONS", 90: "PRODUCER_FENCED",
          111: "TRANSACTION_ABORTABLE"}

# The classic protocol cannot tell a commit sent for the previous transaction from one for the
# current: both carry the producer's one epoch. KIP-890 part 2 bumps the epoch per transaction.
CLASSIC_STALE_END_TXN = pytest.mark.xfail(
    strict=True, raises=AssertionError,
    reason="transaction.version 1 (classic protocol): EndTxn carries no transaction identity "
           "beyond the producer id and epoch, which stay the same from one transaction to the "
           "next, so a stale EndTxn(commit) of the previous transaction is taken for the current "
           "one and commits it; Transactions V2 (KIP-890 part 2) bumps the epoch at every "
           "transaction end and closes this")

pytestmark = pytest.mark.skipif(
    shutil.which("javac") is None or not list(DEPS.glob("kafka-clients-*.jar")),
    reason="javac or .deps/java missing (scripts/install-test-deps.sh)")


@pytest.fixture(scope="module")
def classes(tmp_path_factory):
    return compile_txn_driver(tmp_path_factory.mktemp("java-txn-delay-classes"))


class Rig:
    """A fresh broker at one transaction.version, the proxy it advertises, and the driver."""

    def __init__(self, broker, proxy: TxnProxy, driver: TxnDriver, mode: str):
        self.broker = broker
        self.proxy = proxy
        self.driver = driver
        self.mode = mode

    def report(self) -> str:
        seen = [f"conn {r.conn_id} key {r.api_key} v{r.api_version} corr {r.correlation_id} "
                f"{r.client_id}" for r in self.proxy.seen(CLIENT_ID)]
        return ("requests of the client at the proxy:\n" + "\n".join(seen[-40:]) + "\n"
                + self.driver.report() + "\n" + self.broker.log_tail(20))


@pytest.fixture
def rig(request, broker_factory, classes, topic, tmp_path, monkeypatch):
    mode = request.param
    level = {"v1": 1, "v2": 2}[mode]
    b = broker_factory()
    proxy = TxnProxy(b.port)
    request.addfinalizer(proxy.close)
    b.advertise = proxy.address
    if b.kind == "kafka":
        monkeypatch.setenv("KAFKA_FORMAT_FEATURES", f"transaction.version={level}")
    else:
        cfg = b.data_dir / "txn.properties"
        cfg.write_text(f"millrace.transaction.version={level}\n")
        b.extra_args = ["--config", str(cfg)]
    b.start()
    create_topic(b, topic, PARTITIONS)
    driver = TxnDriver(classes, proxy.address, f"tx-{topic}", CLIENT_ID,
                       tmp_path / "driver.log", COMMAND_TIMEOUT_S)
    request.addfinalizer(driver.close)
    rig = Rig(b, proxy, driver, mode)
    rig.driver.ok("init")
    return rig


# --- the scenarios ----------------------------------------------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("rig", MODES, indirect=True)
def test_delayed_produce_stays_out_of_the_next_transaction(rig, topic):
    """Record A's first Produce is held while the client retries it and commits A's transaction;
    delivered during the next transaction (B, same producer and partition), the stale Produce
    must not add a second A to the log, committed or not."""
    d = rig.driver
    d.ok("begin")
    rig.proxy.arm(API_PRODUCE, CLIENT_ID)
    d.ok(f"send {topic} 0 A")  # answers once the retry on a new connection is acknowledged
    held = held_and_abandoned(rig)
    d.ok("commit")
    d.ok("begin")
    d.ok(f"send {topic} 0 B")
    stale = deliver_stale(rig, held)
    d.ok("commit")

    committed = read_topic(rig.broker, topic, "read_committed")
    everything = read_topic(rig.broker, topic, "read_uncommitted")
    assert committed == [(0, b"A"), (0, b"B")], \
        f"read_committed {committed}; stale Produce answered {stale}\n{rig.report()}"
    assert everything == committed, \
        f"read_uncommitted {everything}; stale Produce answered {stale}\n{rig.report()}"
    assert_stable(rig.broker, topic)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "rig", [pytest.param("v1", marks=CLASSIC_STALE_END_TXN), "v2"], indirect=True)
def test_delayed_commit_does_not_end_the_next_transaction(rig, topic):
    """The EndTxn(commit) of A's transaction is held while the client retries it; delivered
    during the next transaction (B), the stale commit must not commit B, which the producer then
    aborts: read_committed shows A alone, and the last stable offset reaches the end."""
    d = rig.driver
    d.ok("begin")
    d.ok(f"send {topic} 0 A")
    rig.proxy.arm(API_END_TXN, CLIENT_ID)
    d.ok("commit")  # answers once the retry on a new connection has committed
    held = held_and_abandoned(rig)
    d.ok("begin")
    d.ok(f"send {topic} 0 B")
    stale = deliver_stale(rig, held)
    abort = d.call("abort")
    print(f"abort of the next transaction: {abort}")

    committed = read_topic(rig.broker, topic, "read_committed")
    everything = read_topic(rig.broker, topic, "read_uncommitted")
    assert committed == [(0, b"A")], (
        f"read_committed {committed} after the stale EndTxn(commit) answered {stale} and the "
        f"abort of B answered {abort!r}\n{rig.report()}")
    assert abort == "ok abort", f"abort of B: {abort}; stale EndTxn answered {stale}\n" \
        f"{rig.report()}"
    assert everything == [(0, b"A"), (0, b"B")], \
        f"read_uncommitted {everything}; stale EndTxn answered {stale}\n{rig.report()}"
    assert_stable(rig.broker, topic)


# --- helpers ----------------------------------------------------------------------------------

def held_and_abandoned(rig: Rig) -> Held:
    """The held request, after checking that it is the mode's protocol version and that the
    client gave up on it (closed that connection) before its retry succeeded elsewhere."""
    held = rig.proxy.wait_held(0)
    assert held is not None, f"the armed request never reached the proxy\n{rig.report()}"
    key, version = held.request.api_key, held.request.api_version
    if rig.mode == "v2":
        assert version >= V2_VERSIONS[key], \
            f"api {key} v{version} at transaction.version 2\n{rig.report()}"
    else:
        assert version < V2_VERSIONS[key], \
            f"api {key} v{version} at transaction.version 1\n{rig.report()}"
    assert held.client_closed.wait(10), \
        f"the client kept the held request's connection open\n{rig.report()}"
    retries = [r for r in rig.proxy.requests_of(key, CLIENT_ID)
               if r.conn_id != held.request.conn_id]
    assert retries, f"no retry of api {key} on another connection\n{rig.report()}"
    return held


def deliver_stale(rig: Rig, held: Held) -> str:
    """Releases the held request to the broker and returns its answer, decoded."""
    rig.proxy.release()
    assert held.client_open_at_release is False, "the client came back to the held connection"
    response = held.wait_response(RESPONSE_TIMEOUT_S)
    assert response is not None, \
        f"no answer to the released request in {RESPONSE_TIMEOUT_S}s\n{rig.report()}"
    answer = describe_response(held.request.api_key, held.request.api_version, response)
    print(f"stale request answered: {answer}")  # shown with -rP; the broker's choice of error
    return answer


def read_topic(broker, topic: str, isolation: str) -> list[tuple[int, bytes]]:
    """Every record of ``topic`` as (partition, value), partition by partition in offset order,
    read until each partition's high watermark; a read_committed consumer that stops short of
    it (the last stable offset held back by a transaction left open) fails the test."""
    hwm = end_offsets(broker, topic, IsolationLevel.READ_UNCOMMITTED)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"g-{uuid.uuid4().hex}",
                  "isolation.level": isolation, "enable.auto.commit": False,
                  "enable.partition.eof": True})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    out: list[tuple[int, int, bytes]] = []
    reached = {p: hwm[p] == 0 for p in range(PARTITIONS)}
    at: dict[int, int] = {}
    deadline = time.monotonic() + READ_TIMEOUT_S
    try:
        while not all(reached.values()) and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    at[m.partition()] = m.offset()
                    reached[m.partition()] = m.offset() >= hwm[m.partition()]
                    continue
                raise KafkaException(m.error())
            out.append((m.partition(), m.offset(), m.value()))
    finally:
        c.close()
    assert all(reached.values()), (
        f"{isolation} consumer of {topic} stopped at {at}, high watermarks {hwm}: the last "
        "stable offset is held back")
    return [(p, v) for p, _, v in sorted(out)]


def end_offsets(broker, topic: str, isolation: IsolationLevel) -> dict[int, int]:
    a = admin(broker)
    specs = {TopicPartition(topic, p): OffsetSpec.latest() for p in range(PARTITIONS)}
    futures = a.list_offsets(specs, isolation_level=isolation, request_timeout=10)
    return {tp.partition: f.result(timeout=15).offset for tp, f in futures.items()}


def assert_stable(broker, topic: str) -> None:
    """Once the producer is done, the last stable offset of every partition is its high
    watermark: no transaction is left open (markers land shortly after EndTxn answers)."""
    deadline = time.monotonic() + READ_TIMEOUT_S
    while True:
        hwm = end_offsets(broker, topic, IsolationLevel.READ_UNCOMMITTED)
        lso = end_offsets(broker, topic, IsolationLevel.READ_COMMITTED)
        if lso == hwm or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert lso == hwm, f"last stable offsets {lso} behind high watermarks {hwm}"


# --- decoding the stale request's answer --------------------------------------------------------

def describe_response(api_key: int, api_version: int, response: bytes) -> str:
    """The answer's error (and, for Produce, the base offset) as text, for assertion messages
    and the report."""
    flexible = api_version >= (9 if api_key == API_PRODUCE else 3)
    pos = 4  # correlation id
    if flexible:
        pos = _skip_tags(response, pos)
    if api_key == API_END_TXN:
        error = struct.unpack_from(">h", response, pos + 4)[0]  # after throttle_time_ms
        return f"EndTxn v{api_version} {ERRORS.get(error, error)}"
    assert api_key == API_PRODUCE
    count, pos = _array_len(response, pos, flexible)
    assert count >= 1
    if api_version >= 13:
        pos += 16  # topic id
    else:
        n, pos = _string_len(response, pos, flexible)
        pos += n
    count, pos = _array_len(response, pos, flexible)
    assert count >= 1
    partition, error, base_offset = struct.unpack_from(">ihq", response, pos)
    return (f"Produce v{api_version} partition {partition} {ERRORS.get(error, error)} "
            f"base_offset {base_offset}")


def _uvarint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _skip_tags(buf: bytes, pos: int) -> int:
    count, pos = _uvarint(buf, pos)
    for _ in range(count):
        _, pos = _uvarint(buf, pos)
        size, pos = _uvarint(buf, pos)
        pos += size
    return pos


def _array_len(buf: bytes, pos: int, flexible: bool) -> tuple[int, int]:
    if flexible:
        n, pos = _uvarint(buf, pos)
        return n - 1, pos
    return struct.unpack_from(">i", buf, pos)[0], pos + 4


def _string_len(buf: bytes, pos: int, flexible: bool) -> tuple[int, int]:
    if flexible:
        n, pos = _uvarint(buf, pos)
        return n - 1, pos
    return struct.unpack_from(">h", buf, pos)[0], pos + 2


def test_describe_response_decodes_both_apis():
    """The decoder of the stale answers, on hand-built frames of the versions the client uses."""
    end_txn_v5 = struct.pack(">i", 7) + b"\x00" + struct.pack(">ihqh", 0, 90, 5, 1) + b"\x00"
    assert describe_response(API_END_TXN, 5, end_txn_v5) == "EndTxn v5 PRODUCER_FENCED"
    end_txn_v1 = struct.pack(">iih", 7, 0, 48)
    assert describe_response(API_END_TXN, 1, end_txn_v1) == "EndTxn v1 INVALID_TXN_STATE"
    partition = struct.pack(">ihqqq", 0, 47, -1, -1, 0) + b"\x01\x00\x00"
    topic_v11 = b"\x02t" + b"\x02" + partition + b"\x00"
    produce_v11 = struct.pack(">i", 9) + b"\x00" + b"\x02" + topic_v11 + struct.pack(">i", 0)
    assert describe_response(API_PRODUCE, 11, produce_v11) == \
        "Produce v11 partition 0 INVALID_PRODUCER_EPOCH base_offset -1"
    topic_v13 = bytes(16) + b"\x02" + struct.pack(">ihqqq", 0, 0, 42, -1, 0) + b"\x01\x00\x00"
    produce_v13 = struct.pack(">i", 9) + b"\x00" + b"\x02" + topic_v13 + b"\x00" \
        + struct.pack(">i", 0) + b"\x00"
    assert describe_response(API_PRODUCE, 13, produce_v13) == \
        "Produce v13 partition 0 NONE base_offset 42"
