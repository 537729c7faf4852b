"""aiokafka 0.14 (asyncio; only non-flexible request versions: ApiVersions <= v2, Produce <= v8,
Fetch <= v11): produce keyed records with headers and read them back with assign."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]
COUNT = 300
BASE_TS_MS = 1_720_000_000_000
TIMEOUT_S = 30


async def roundtrip(bootstrap: str, topic: str, codec):
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                compression_type=codec, linger_ms=5)
    await producer.start()
    try:
        batch_futures = []
        for i in range(COUNT):
            batch_futures.append(await producer.send(
                topic, key=f"a{i:04d}".encode(), value=f"payload {i} {codec}".encode(),
                headers=[("n", str(i).encode())], timestamp_ms=BASE_TS_MS + i))
        sent = await asyncio.gather(*batch_futures)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        records = []
        while len(records) < COUNT:
            batch = await consumer.getmany(tp, timeout_ms=500)
            records.extend(batch.get(tp, []))
        end = await consumer.end_offsets([tp])
        begin = await consumer.beginning_offsets([tp])
    finally:
        await consumer.stop()
    return sent, records, begin[tp], end[tp]


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c or "none")
def test_aiokafka_roundtrip(broker, topic, codec):
    sent, records, begin, end = asyncio.run(
        asyncio.wait_for(roundtrip(broker.bootstrap, topic, codec), TIMEOUT_S))
    assert [md.offset for md in sent] == list(range(COUNT))
    assert {md.partition for md in sent} == {0}
    assert (begin, end) == (0, COUNT)
    assert len(records) == COUNT
    for i, rec in enumerate(records):
        assert rec.offset == i
        assert rec.key == f"a{i:04d}".encode()
        assert rec.value == f"payload {i} {codec}".encode()
        assert list(rec.headers) == [("n", str(i).encode())]
        assert rec.timestamp == BASE_TS_MS + i
