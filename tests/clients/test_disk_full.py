"""A full disk: the producer gets an error, nothing acknowledged is lost, the broker keeps
serving, and once space is freed producing works again.

The broker's data directory sits on a small tmpfs mounted for the test (root only; skipped
otherwise). An 8 MiB ballast file is written to the same tmpfs before the broker starts, so the
test can free space afterwards without touching the broker's files. confluent-kafka produces
1 KiB records with acks=all and no retries to one partition until a delivery fails (Kafka's
answer is KAFKA_STORAGE_ERROR, code 56), bounded by a record count and a time limit. Then:

* the broker process is alive and answers Metadata;
* every acknowledged record reads back, at its acknowledged offset, with its key and value;
* after the ballast is deleted a new producer's records are acknowledged and read back;
* after a restart on the same data directory (recovery meets whatever the failed writes left in
  the segment), every record acknowledged before and after the full disk still reads back.
"""

from __future__ import annotations

import gc
import os
import subprocess
import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from brokerproc import BrokerProcess

pytestmark = [pytest.mark.millrace_only, pytest.mark.timeout(420)]

TMPFS_BYTES = 24 << 20
BALLAST_BYTES = 8 << 20
RECORD_BYTES = 1024
SEGMENT_BYTES = 4 << 20  # several rolls before the disk fills, so a roll meets ENOSPC too
CHUNK_RECORDS = 256  # produced, then flushed, per round
PRODUCE_RECORDS_MAX = 4 * TMPFS_BYTES // RECORD_BYTES  # far beyond what fits
FILL_TIME_MAX_S = 150.0
OP_TIMEOUT_S = 30.0
AFTER_RECORDS = 200
KAFKA_STORAGE_ERROR = 56


class TmpfsBroker(BrokerProcess):
    """The suite's broker process, with its log on the ordinary disk and its data directory on
    the tmpfs."""

    def __init__(self, home, data_dir):
        super().__init__(home)
        self.millrace_data = data_dir

    def command(self) -> list[str]:
        cmd = super().command()
        cmd[cmd.index("--data-dir") + 1] = str(self.millrace_data)
        return cmd


@pytest.fixture
def small_disk(tmp_path):
    """A TMPFS_BYTES tmpfs holding a BALLAST_BYTES file; unmounted at teardown."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs this suite as root)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs",
                           str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip() or done.returncode}")
    try:
        ballast = mnt / "ballast"
        with open(ballast, "wb") as f:
            f.write(os.urandom(BALLAST_BYTES))
            f.flush()
            os.fsync(f.fileno())
        (mnt / "data").mkdir()
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.fixture
def full_disk_broker(tmp_path, small_disk):
    b = TmpfsBroker(tmp_path / "broker", small_disk / "data")
    b.start()
    yield b
    b.kill9()


def key_of(i: int) -> bytes:
    return f"key-{i:08d}".encode()


def value_of(i: int) -> bytes:
    head = f"value-{i:08d}-".encode()
    # Incompressible, and derived from i so a read-back can be checked without keeping it.
    body = uuid.UUID(int=i * 0x9E3779B97F4A7C15 % (1 << 128)).bytes * (RECORD_BYTES // 16)
    return (head + body)[:RECORD_BYTES]


def create_topic(broker, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, 1, 1, config={"segment.bytes": str(SEGMENT_BYTES)})],
        operation_timeout=OP_TIMEOUT_S)
    futures[name].result(timeout=OP_TIMEOUT_S)
    assert_metadata_answers(broker, name)


def assert_metadata_answers(broker, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    deadline = time.monotonic() + OP_TIMEOUT_S
    last = None
    while time.monotonic() < deadline:
        last = admin.list_topics(name, timeout=10).topics.get(name)
        if last is not None and last.error is None and 0 in last.partitions \
                and last.partitions[0].leader >= 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"Metadata for {name} has no leader for partition 0: {last}\n"
                         f"{broker.log_tail()}")


def producer(broker, **extra) -> Producer:
    config = {
        "bootstrap.servers": broker.bootstrap,
        "acks": "all",
        "linger.ms": 2,
        "message.timeout.ms": 20_000,
        "request.timeout.ms": 15_000,
    }
    config.update(extra)
    return Producer(config)


def fill_until_error(broker, topic: str):
    """Produces until a delivery fails. Returns ({index: offset} acknowledged, [errors])."""
    # No retries: the first storage error is reported, not retried until the timeout.
    p = producer(broker, **{"enable.idempotence": False, "retries": 0})
    acked: dict[int, int] = {}
    errors: list[KafkaError] = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked[int(msg.key()[4:])] = msg.offset()

    deadline = time.monotonic() + FILL_TIME_MAX_S
    sent = 0
    while not errors and sent < PRODUCE_RECORDS_MAX and time.monotonic() < deadline:
        for i in range(sent, sent + CHUNK_RECORDS):
            p.produce(topic, key=key_of(i), value=value_of(i), partition=0,
                      on_delivery=on_delivery)
        sent += CHUNK_RECORDS
        left = p.flush(OP_TIMEOUT_S)
        assert left == 0, f"{left} records neither acknowledged nor failed in {OP_TIMEOUT_S}s " \
                          f"(a hang?)\n{broker.log_tail()}"
    assert errors, (f"no delivery failed after {sent} records of {RECORD_BYTES} bytes on a "
                    f"{TMPFS_BYTES >> 20} MiB disk\n{broker.log_tail()}")
    return acked, errors


def consume(broker, topic: str, start: int, wanted: set[int]) -> dict[int, tuple]:
    """Reads partition 0 from ``start`` until every offset in ``wanted`` has been seen (or the
    timeout). Returns {offset: (key, value)} of everything read."""
    c = Consumer({
        "bootstrap.servers": broker.bootstrap,
        "group.id": "millrace-tests-assign-only",  # required by the client, never joined
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
    })
    got: dict[int, tuple] = {}
    try:
        c.assign([TopicPartition(topic, 0, start)])
        deadline = time.monotonic() + OP_TIMEOUT_S
        while not wanted <= got.keys() and time.monotonic() < deadline:
            for msg in c.consume(num_messages=1000, timeout=0.5):
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise AssertionError(f"consume error: {msg.error()}")
                got[msg.offset()] = (msg.key(), msg.value())
    finally:
        c.close()
    return got


def check_read_back(acked: dict[int, int], got: dict[int, tuple], what: str) -> None:
    missing = sorted(o for o in acked.values() if o not in got)
    assert not missing, (f"{len(missing)} of {len(acked)} acknowledged records {what} did not "
                         f"read back, first offsets {missing[:10]}")
    for i, offset in acked.items():
        assert got[offset] == (key_of(i), value_of(i)), f"record {i} at offset {offset} differs"
    offsets = sorted(acked.values())
    assert len(set(offsets)) == len(offsets), "two acknowledged records share an offset"


def test_full_disk_errors_keeps_acknowledged_data_and_recovers(full_disk_broker, small_disk):
    broker = full_disk_broker
    topic = f"disk-full-{uuid.uuid4().hex[:8]}"
    create_topic(broker, topic)

    acked, errors = fill_until_error(broker, topic)
    codes = {e.code() for e in errors}
    print(f"acknowledged {len(acked)} records before the disk filled; errors: "
          f"{sorted({str(e) for e in errors})[:5]}")
    assert acked, "nothing was acknowledged before the disk filled"
    assert codes <= {KAFKA_STORAGE_ERROR, KafkaError._MSG_TIMED_OUT, KafkaError._TIMED_OUT}, \
        f"unexpected delivery errors on a full disk: {errors[:5]}"

    assert broker.alive(), f"broker exited on a full disk:\n{broker.log_tail()}"
    assert_metadata_answers(broker, topic)
    got = consume(broker, topic, OFFSET_BEGINNING, set(acked.values()))
    check_read_back(acked, got, "before the disk filled")

    (small_disk / "ballast").unlink()
    p = producer(broker, **{"enable.idempotence": True})
    after: dict[int, int] = {}
    failed: list = []

    def on_delivery(err, msg):
        if err is not None:
            failed.append(err)
        else:
            after[int(msg.key()[4:])] = msg.offset()

    base = 10_000_000
    for i in range(base, base + AFTER_RECORDS):
        p.produce(topic, key=key_of(i), value=value_of(i), partition=0, on_delivery=on_delivery)
    left = p.flush(OP_TIMEOUT_S)
    assert left == 0 and not failed, (f"after freeing {BALLAST_BYTES >> 20} MiB: {left} "
                                      f"undelivered, errors {failed[:5]}\n{broker.log_tail()}")
    assert len(after) == AFTER_RECORDS
    assert min(after.values()) > max(acked.values()), "new records must follow the old ones"
    got = consume(broker, topic, min(after.values()), set(after.values()))
    check_read_back(after, got, "after space was freed")
    assert broker.alive(), f"broker exited:\n{broker.log_tail()}"

    # Close every client first: a connection the broker closes itself lingers in FIN-WAIT-2 or
    # TIME-WAIT on the listen port, and millrace's listener lacks SO_REUSEADDR, so a restart on
    # the same port would fail with EADDRINUSE for up to a minute (reported separately).
    del p
    gc.collect()
    code = broker.stop()
    assert code == 0, f"broker exited with {code} on SIGTERM:\n{broker.log_tail()}"
    broker.start()
    assert_metadata_answers(broker, topic)
    everything = {**acked, **after}
    got = consume(broker, topic, OFFSET_BEGINNING, set(everything.values()))
    check_read_back(everything, got, "after a restart")
