"""Retention, DeleteRecords, log compaction and replay by timestamp, with confluent-kafka and
kafka-python against the real binary.

- Small segments and a short retention.ms: old segments go, the earliest offset advances, a
  consumer positioned before it gets OFFSET_OUT_OF_RANGE and resets per its policy; the new
  log start survives a kill -9.
- retention.bytes keeps the partition near its bound.
- DeleteRecords moves the log start offset explicitly, durably.
- A compacted topic with overwrites and tombstones: after cleaning, a consumer from the
  beginning sees exactly the latest value per key at its original offset, also after a kill -9
  (including one in the middle of cleaning); keyless records are refused.
- offsets_for_times (confluent-kafka and kafka-python) finds the first record at or after a
  timestamp, and the earliest remaining one once retention has removed older data.

The broker runs with short maintenance intervals (log.retention.check.interval.ms,
log.cleaner.backoff.ms) so these tests take seconds; they are millrace-only because they set
broker keys through millrace's --config file.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaException, Producer,
                             TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic

pytestmark = pytest.mark.millrace_only

OP_TIMEOUT_S = 30


@pytest.fixture
def fast_broker(broker_factory, tmp_path):
    b = broker_factory()
    cfg = tmp_path / "maintenance.properties"
    cfg.write_text("log.retention.check.interval.ms=200\nlog.cleaner.backoff.ms=200\n")
    b.extra_args = ["--config", str(cfg)]
    return b.start()


def create(broker, topic, configs, partitions=1):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(topic, partitions, 1, config=configs)])[topic].result(OP_TIMEOUT_S)
    return a


def produce_each(broker, topic, records, partition=0):
    """Produces every (key, value, timestamp) as its own batch; returns the acked offsets."""
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 0,
                  "enable.idempotence": True})
    offsets = []
    for key, value, ts in records:
        out = []
        kw = {"timestamp": ts} if ts else {}
        p.produce(topic, key=key, value=value, partition=partition,
                  on_delivery=lambda err, msg: out.append((err, msg)), **kw)
        p.flush(OP_TIMEOUT_S)
        (err, msg), = out
        assert err is None, err
        offsets.append(msg.offset())
    return offsets


def watermarks(broker, topic, partition=0):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "wm"})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=5)
            except KafkaException:
                assert time.monotonic() < deadline, "no watermarks"
                time.sleep(0.2)
    finally:
        c.close()


def wait_for(predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def read_from(broker, topic, offset, until, partition=0, reset="earliest"):
    """(offset, key, value) of every record from `offset` up to `until` (exclusive)."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"read-{time.time()}",
                  "enable.auto.commit": False, "auto.offset.reset": reset})
    c.assign([TopicPartition(topic, partition, offset)])
    out = []
    deadline = time.monotonic() + 30
    try:
        while (not out or out[-1][0] < until - 1) and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                raise KafkaException(m.error())
            out.append((m.offset(), m.key(), m.value()))
    finally:
        c.close()
    return out


def test_time_retention_drops_old_segments_and_consumers_reset(fast_broker, topic):
    b = fast_broker
    a = create(b, topic, {"segment.bytes": "1024", "retention.ms": "-1"})
    value = b"r" * 400
    produce_each(b, topic, [(None, value, None)] * 30)
    assert watermarks(b, topic) == (0, 30)
    time.sleep(1.0)
    assert watermarks(b, topic)[0] == 0, "retention.ms=-1 deleted data"
    # Shortening retention applies without a restart: everything is older than 500 ms, so
    # every segment goes (the active one rolls first) and the log start reaches the end.
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "500", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(OP_TIMEOUT_S)
    wait_for(lambda: watermarks(b, topic)[0] == 30, 20, "retention to empty the log")

    def segment_files():
        return sorted(p.name for p in (b.data_dir / "millrace-data" / f"{topic}-0").iterdir()
                      if p.name.endswith(".log"))
    # The log start moves (durably) before the deleted segments' files are unlinked.
    wait_for(lambda: len(segment_files()) == 1, 10, "the old segment files to go")
    files = segment_files()
    assert len(files) == 1, files
    # A consumer at offset 0 is out of range: with auto.offset.reset=error it is told so ...
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": topic, "auto.offset.reset": "error"})
    c.assign([TopicPartition(topic, 0, 0)])
    m = wait_for(lambda: c.poll(0.5), 20, "an offset-reset error")
    c.close()
    assert m.error() is not None and m.error().code() == -140, m.error()  # _AUTO_OFFSET_RESET
    # ... and with earliest it resets to the new log start and reads what comes next (with a
    # retention long enough for the new record to stay).
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(OP_TIMEOUT_S)
    produce_each(b, topic, [(b"k", b"after", None)])
    got = read_from(b, topic, 0, 31)
    assert got == [(30, b"k", b"after")], got
    # The log start survives a crash.
    b.kill9()
    b.start()
    assert watermarks(b, topic) == (30, 31)


def test_size_retention_keeps_the_partition_near_its_bound(fast_broker, topic):
    b = fast_broker
    create(b, topic, {"segment.bytes": "2048", "retention.bytes": "4096"})
    produce_each(b, topic, [(None, b"s" * 500, None)] * 40)
    low = wait_for(lambda: watermarks(b, topic)[0] or None, 20, "size retention")
    time.sleep(1.0)
    low, high = watermarks(b, topic)
    assert high == 40 and 20 < low < 40, (low, high)
    got = read_from(b, topic, OFFSET_BEGINNING, 40)
    assert [o for o, _, _ in got] == list(range(low, 40))


def test_delete_records_moves_the_log_start_durably(fast_broker, topic):
    b = fast_broker
    a = create(b, topic, {})
    produce_each(b, topic, [(None, f"v{i}".encode(), None) for i in range(20)])
    res = a.delete_records([TopicPartition(topic, 0, 12)])
    deleted = res[TopicPartition(topic, 0)].result(OP_TIMEOUT_S)
    assert deleted.low_watermark == 12
    assert watermarks(b, topic) == (12, 20)
    got = read_from(b, topic, OFFSET_BEGINNING, 20)
    assert [o for o, _, _ in got] == list(range(12, 20))
    # Past the high watermark is out of range, and changes nothing.
    res = a.delete_records([TopicPartition(topic, 0, 99)])
    with pytest.raises(KafkaException) as e:
        res[TopicPartition(topic, 0)].result(OP_TIMEOUT_S)
    assert e.value.args[0].name() == "OFFSET_OUT_OF_RANGE", e.value
    assert watermarks(b, topic) == (12, 20)
    b.kill9()
    b.start()
    assert watermarks(b, topic) == (12, 20)


def compacted_view(broker, topic, end):
    got = read_from(broker, topic, OFFSET_BEGINNING, end)
    return got


@pytest.mark.timeout(240)
def test_compaction_keeps_the_latest_value_per_key(fast_broker, topic):
    b = fast_broker
    create(b, topic, {"cleanup.policy": "compact", "segment.bytes": "1024",
                      "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "3600000"})
    records, latest = [], {}
    for round_ in range(12):
        for k in range(15):
            key = f"key-{k:02d}".encode()
            value = None if (round_ == 11 and k % 5 == 0) else f"{k}-{round_}".encode()
            records.append((key, value, None))
    offsets = produce_each(b, topic, records)
    for (key, value, _), off in zip(records, offsets):
        latest[key] = (off, value)
    # A last record in a segment of its own, so every key above sits in cleanable segments.
    end_off, = produce_each(b, topic, [(b"zz-end", b"e" * 1000, None)])
    expected = sorted((off, key, value) for key, (off, value) in latest.items())
    expected.append((end_off, b"zz-end", b"e" * 1000))

    wait_for(lambda: compacted_view(b, topic, end_off + 1) == expected, 90,
             "the cleaner to leave exactly the latest value per key")
    tombstones = [e for e in expected if e[2] is None]
    assert len(tombstones) == 3, "tombstones within delete.retention.ms must stay"
    b.kill9()
    b.start()
    assert compacted_view(b, topic, end_off + 1) == expected, "compaction did not survive a crash"


@pytest.mark.timeout(240)
def test_a_crash_during_cleaning_loses_nothing(fast_broker, topic):
    b = fast_broker
    create(b, topic, {"segment.bytes": "1024"})
    records = [(f"key-{i % 40:02d}".encode(), f"{i}".encode() * 30, None) for i in range(600)]
    offsets = produce_each(b, topic, records)
    latest = {}
    for (key, value, _), off in zip(records, offsets):
        latest[key] = (off, value)
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("min.cleanable.dirty.ratio", "0.01",
                    incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(OP_TIMEOUT_S)
    time.sleep(0.3)  # the cleaner is now (or soon) rewriting segments
    b.kill9()
    b.start()
    got = read_from(b, topic, OFFSET_BEGINNING, offsets[-1] + 1)
    seen = {}
    for off, key, value in got:
        seen[key] = (off, value)
    assert seen == latest, "a latest value was lost or changed"
    assert [o for o, _, _ in got] == sorted(o for o, _, _ in got)


def test_keyless_records_are_refused_by_a_compacted_topic(fast_broker, topic):
    b = fast_broker
    create(b, topic, {"cleanup.policy": "compact"})
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "retries": 0})
    out = []
    p.produce(topic, value=b"no key", partition=0, on_delivery=lambda err, msg: out.append(err))
    p.flush(OP_TIMEOUT_S)
    assert out and out[0] is not None and out[0].name() == "INVALID_RECORD", out
    assert produce_each(b, topic, [(b"k", b"v", None)]) == [0], "the refused batch took offsets"


def test_offsets_for_times_before_and_after_retention(fast_broker, topic):
    b = fast_broker
    create(b, topic, {"segment.bytes": "1024"})
    base = int(time.time() * 1000) - 100_000
    produce_each(b, topic, [(None, b"t" * 300, base + i * 1000) for i in range(40)])
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": topic})
    found = c.offsets_for_times([TopicPartition(topic, 0, base + 5500)], timeout=10)
    assert found[0].offset == 6
    found = c.offsets_for_times([TopicPartition(topic, 0, base + 10**7)], timeout=10)
    assert found[0].offset == -1
    # kafka-python agrees.
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP
    kc = KafkaConsumer(bootstrap_servers=b.bootstrap)
    tp = KTP(topic, 0)
    assert kc.offsets_for_times({tp: base + 20_000})[tp].offset == 20
    # Replaying from a timestamp starts at the first record at or after it.
    c.assign([TopicPartition(topic, 0, 31)])
    m = wait_for(lambda: c.poll(0.5), 20, "a record")
    assert m.offset() == 31 and m.timestamp()[1] == base + 31_000
    # Delete the first 25 records; a timestamp before the new start finds the start.
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.delete_records([TopicPartition(topic, 0, 25)])[TopicPartition(topic, 0)].result(30)
    found = c.offsets_for_times([TopicPartition(topic, 0, base)], timeout=10)
    assert found[0].offset == 25
    assert kc.offsets_for_times({tp: base + 3000})[tp].offset == 25
    kc.close()
    c.close()


@pytest.mark.timeout(240)
def test_consumer_offsets_is_compacted_and_commits_survive(broker_factory, tmp_path, topic):
    b = broker_factory()
    cfg = tmp_path / "offsets.properties"
    cfg.write_text("log.cleaner.backoff.ms=200\noffsets.topic.num.partitions=1\n")
    b.extra_args = ["--config", str(cfg)]
    b.start()
    a = create(b, topic, {})
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType
    res = ConfigResource(ResourceType.TOPIC, "__consumer_offsets", incremental_configs=[
        ConfigEntry("segment.bytes", "4096", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("min.cleanable.dirty.ratio", "0.01",
                    incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(OP_TIMEOUT_S)
    produce_each(b, topic, [(None, b"x", None)])
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "g-" + topic,
                  "enable.auto.commit": False})
    commits = 600
    for i in range(commits):
        c.commit(offsets=[TopicPartition(topic, 0, i)], asynchronous=False)
    c.close()
    # The cleaner runs while the commits go on; the broker logs what each clean removed.
    import re

    def removed():
        text = re.sub(r"\x1b\[[0-9;]*m", "", b.log_path.read_text(errors="replace"))
        return sum(int(n) for n in re.findall(
            r"cleaned log topic=__consumer_offsets partition=0 .*?removed=(\d+)", text))
    # 600 commits of one key: all but the latest of each cleaned segment go.
    wait_for(lambda: removed() >= commits // 2, 90, "__consumer_offsets to be compacted")
    b.kill9()
    b.start()
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "g-" + topic})
    committed = c.committed([TopicPartition(topic, 0)], timeout=30)
    c.close()
    assert committed[0].offset == commits - 1
