"""A data directory written before the metadata log is upgraded when the new broker starts.

The old broker kept its whole image in ``<data>/__cluster_metadata/metadata`` (format 1, a
text file with a CRC-32C line). This writes such a file by hand (a topic with an id, a shard
per partition and config overrides, no segment data), starts the broker on it, and checks with
confluent-kafka that the topic, its id (Metadata v10+ ``topic_id``), its configs and the
cluster id survived, that the topic works, and that a second start finds the upgrade done.
"""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicCollection
from confluent_kafka.admin import AdminClient, ConfigResource

pytestmark = pytest.mark.millrace_only

TOPIC = "legacy-orders"
TOPIC_ID = uuid.UUID("6f1c2a4e-9b3d-4c8a-a1e2-53b7d9f0c4aa")
CLUSTER_ID = "0f9e8d7c6b5a49382716a5b4c3d2e1f0"
CONFIGS = {"retention.ms": "3600000", "max.message.bytes": "65536"}


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), bit by bit: small input, no extra dependency."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def old_metadata_file() -> bytes:
    lines = [
        "millrace-metadata 1",
        "version 4",
        "producer_id_block_end 2000",
        f"cluster_id {CLUSTER_ID}",
        f"topic {TOPIC} {TOPIC_ID} 1,0,1",
    ]
    lines += [f"config {TOPIC} {k} {v}" for k, v in sorted(CONFIGS.items())]
    body = "".join(line + "\n" for line in lines)
    return (body + f"crc32c {crc32c(body.encode()):08x}\n").encode()


def uuid_of(kafka_uuid) -> uuid.UUID:
    msb = kafka_uuid.get_most_significant_bits() & (2**64 - 1)
    lsb = kafka_uuid.get_least_significant_bits() & (2**64 - 1)
    return uuid.UUID(int=(msb << 64) | lsb)


def check_topic(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    md = admin.list_topics(timeout=10)
    assert md.cluster_id == CLUSTER_ID
    assert TOPIC in md.topics, sorted(md.topics)
    assert sorted(md.topics[TOPIC].partitions) == [0, 1, 2]
    described = admin.describe_topics(TopicCollection([TOPIC]))[TOPIC].result(timeout=10)
    assert uuid_of(described.topic_id) == TOPIC_ID
    resource = ConfigResource(ConfigResource.Type.TOPIC, TOPIC)
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    for key, value in CONFIGS.items():
        assert configs[key].value == value, key
        assert not configs[key].is_default, key


def test_an_old_metadata_file_is_upgraded_on_start(broker_factory):
    b = broker_factory()
    data = b.data_dir / "millrace-data"
    old = data / "__cluster_metadata" / "metadata"
    old.parent.mkdir(parents=True)
    old.write_bytes(old_metadata_file())

    b.start()
    check_topic(b.bootstrap)
    assert not old.exists()
    assert (old.parent / "metadata.migrated").read_bytes() == old_metadata_file()
    props = (data / "meta.properties").read_text()
    assert f"cluster.id={CLUSTER_ID}\n" in props and "version=1\n" in props

    p = Producer({"bootstrap.servers": b.bootstrap, "enable.idempotence": True})
    for partition in range(3):
        p.produce(TOPIC, value=f"after-upgrade-{partition}".encode(), partition=partition)
    assert p.flush(10) == 0

    # A second start finds the upgrade done: same topic, same id, and the records are there.
    b.stop()
    b.start()
    check_topic(b.bootstrap)
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "upgrade-check",
                  "auto.offset.reset": "earliest"})
    c.subscribe([TOPIC])
    seen = set()
    for _ in range(100):
        msg = c.poll(0.5)
        if msg is not None and msg.error() is None:
            seen.add(msg.value().decode())
        if len(seen) == 3:
            break
    c.close()
    assert seen == {f"after-upgrade-{p}" for p in range(3)}
