"""Acknowledged writes survive kill -9: a producer records every key the broker acknowledged
(acks=all), the broker is killed mid-stream, restarted on the same data dir and port, and every
acknowledged key must be readable. Several rounds on the same data directory."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROUNDS = 3
PRODUCE_BEFORE_KILL_S = 2.0
PARTITIONS = 2
HERE = Path(__file__).parent


def create_topic(bootstrap: str, topic: str) -> None:
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(topic, PARTITIONS, 1)], operation_timeout=30)[topic].result(30)


def read_all_keys(bootstrap: str, topic: str) -> list[bytes]:
    """Every key in the topic, read from offset 0 up to each partition's high watermark."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "millrace-durability",
                  "enable.auto.commit": False})
    try:
        ends = {}
        deadline = time.monotonic() + 30
        for p in range(PARTITIONS):
            while True:  # right after a restart the partition may not be led yet
                try:
                    ends[p] = c.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1]
                    break
                except Exception:
                    assert time.monotonic() < deadline, "no watermark after restart"
                    time.sleep(0.2)
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        keys, pos = [], {p: 0 for p in range(PARTITIONS)}
        deadline = time.monotonic() + 60
        while any(pos[p] < ends[p] for p in ends):
            assert time.monotonic() < deadline, (pos, ends)
            for m in c.consume(10000, 0.5):
                assert not m.error(), m.error()
                keys.append(m.key())
                pos[m.partition()] = m.offset() + 1
        return keys
    finally:
        c.close()


@pytest.mark.timeout(300)
def test_acknowledged_writes_survive_kill9(broker_factory, tmp_path):
    broker = broker_factory().start()
    topic = "durability"
    create_topic(broker.bootstrap, topic)
    acked_file = tmp_path / "acked.txt"
    for rnd in range(ROUNDS):
        producer = subprocess.Popen(
            [sys.executable, str(HERE / "durable_producer.py"), broker.bootstrap, topic,
             f"r{rnd}", str(acked_file), "30"],
            stderr=subprocess.PIPE)
        time.sleep(PRODUCE_BEFORE_KILL_S)
        broker.kill9()
        try:
            _, err = producer.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            producer.kill()
            _, err = producer.communicate()
        broker.start()

        acked = acked_file.read_bytes().splitlines()
        acked_this_round = [k for k in acked if k.startswith(f"r{rnd}-".encode())]
        assert len(acked_this_round) > 100, (
            f"round {rnd}: only {len(acked_this_round)} acknowledged before the kill; "
            f"producer said {err.decode()[-2000:]}")
        present = set(read_all_keys(broker.bootstrap, topic))
        lost = [k for k in acked if k not in present]
        assert not lost, f"round {rnd}: {len(lost)} acknowledged keys lost, e.g. {lost[:5]}"
