#!/usr/bin/env python3
"""Produce and consume throughput of fixed-size records with acks=all, against any broker.
A measurement for reports, not a test: it asserts only that every record came back.

    .venv/bin/python tests/clients/throughput.py --bootstrap 127.0.0.1:9092 \
        [--records 500000] [--size 1024] [--partitions 16] [--client confluent|kcat] \
        [-X security.protocol=SASL_SSL -X sasl.mechanisms=SCRAM-SHA-512 ...]

`-X KEY=VALUE` (repeatable) adds a librdkafka setting to every client (admin, producer,
consumer, kcat), e.g. the listener's security settings.

MB are 10^6 bytes of record values (keys are empty, headers none, no compression). The topic is
created with the AdminClient (a new name each run). Prints one line per phase and a JSON line.
The client is part of what is measured: the Python loop of confluent-kafka tops out at a few
hundred thousand records/s, kcat (librdkafka 2.0) is a C loop reading lines from a file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

MEASURE_TIMEOUT_S = 600
# librdkafka settings every client gets (`-X`): the listener's security.
EXTRA: dict[str, str] = {}


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, **EXTRA})
    admin.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=30)[topic].result(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        md = admin.list_topics(topic, timeout=10).topics.get(topic)
        if md and md.error is None and all(p.leader >= 0 for p in md.partitions.values()) \
                and len(md.partitions) == partitions:
            return
        time.sleep(0.1)
    raise SystemExit(f"topic {topic} has no leaders after 30 s")


def produce_confluent(bootstrap: str, topic: str, records: int, size: int, linger_ms: int):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": linger_ms,
                  "batch.size": 1_000_000, "compression.type": "none",
                  "queue.buffering.max.messages": 1_000_000, **EXTRA})
    value = os.urandom(size)
    failed = []

    def report(err, _msg):
        if err is not None:
            failed.append(err)

    start = time.perf_counter()
    for _ in range(records):
        while True:
            try:
                p.produce(topic, value=value, on_delivery=report)
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    left = p.flush(MEASURE_TIMEOUT_S)
    elapsed = time.perf_counter() - start
    if left or failed:
        raise SystemExit(f"produce: {left} undelivered, {len(failed)} failed: {failed[:3]}")
    return elapsed


def consume_confluent(bootstrap: str, topic: str, partitions: int, records: int):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "throughput-assign-only",
                  "enable.auto.commit": False, "fetch.max.bytes": 52_428_800,
                  "max.partition.fetch.bytes": 4_194_304, **EXTRA})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got, nbytes = 0, 0
    start = time.perf_counter()
    deadline = time.monotonic() + MEASURE_TIMEOUT_S
    while got < records:
        if time.monotonic() > deadline:
            raise SystemExit(f"consume: only {got} of {records} records")
        for m in c.consume(10_000, 1.0):
            if m.error():
                raise SystemExit(f"consume: {m.error()}")
            got += 1
            nbytes += len(m.value())
    elapsed = time.perf_counter() - start
    c.close()
    return elapsed, got


def produce_kcat(bootstrap: str, topic: str, records: int, size: int, linger_ms: int):
    line = os.urandom(size // 2 + 1).hex()[: size - 1].encode() + b"\n"  # value is size-1 bytes
    with tempfile.TemporaryFile() as f:
        f.write(line * records)
        f.seek(0)
        start = time.perf_counter()
        subprocess.run(["kcat", "-P", "-b", bootstrap, "-t", topic, "-X", "acks=all",
                        "-X", f"linger.ms={linger_ms}", "-X", "batch.size=1000000",
                        *kcat_extra()],
                       stdin=f, check=True, timeout=MEASURE_TIMEOUT_S)
        return time.perf_counter() - start


def consume_kcat(bootstrap: str, topic: str, records: int):
    start = time.perf_counter()
    proc = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", topic, "-e", "-o", "beginning",
                           "-q", "-f", "\n", *kcat_extra()], stdout=subprocess.PIPE, check=True,
                          timeout=MEASURE_TIMEOUT_S)
    elapsed = time.perf_counter() - start
    return elapsed, proc.stdout.count(b"\n")


def kcat_extra() -> list[str]:
    return [a for k, v in EXTRA.items() for a in ("-X", f"{k}={v}")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--records", type=int, default=500_000)
    ap.add_argument("--size", type=int, default=1024, help="value bytes per record")
    ap.add_argument("--partitions", type=int, default=16)
    ap.add_argument("--linger-ms", type=int, default=5)
    ap.add_argument("--client", choices=["confluent", "kcat"], default="confluent")
    ap.add_argument("--label", default="", help="free text copied into the JSON line")
    ap.add_argument("-X", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                    help="a librdkafka setting for every client (repeatable)")
    args = ap.parse_args()
    for kv in args.extra:
        key, sep, value = kv.partition("=")
        if not sep:
            raise SystemExit(f"-X {kv}: expected KEY=VALUE")
        EXTRA[key] = value

    topic = f"throughput-{uuid.uuid4().hex[:8]}"
    create_topic(args.bootstrap, topic, args.partitions)
    mb = args.records * args.size / 1e6

    if args.client == "confluent":
        p_s = produce_confluent(args.bootstrap, topic, args.records, args.size, args.linger_ms)
    else:
        p_s = produce_kcat(args.bootstrap, topic, args.records, args.size, args.linger_ms)
    print(f"produce  {args.records} x {args.size} B acks=all: {p_s:.2f} s, "
          f"{mb / p_s:.1f} MB/s, {args.records / p_s:,.0f} records/s")

    if args.client == "confluent":
        c_s, got = consume_confluent(args.bootstrap, topic, args.partitions, args.records)
    else:
        c_s, got = consume_kcat(args.bootstrap, topic, args.records)
    if got != args.records:
        raise SystemExit(f"consume: read {got} records, produced {args.records}")
    print(f"consume  {got} records from offset 0: {c_s:.2f} s, {mb / c_s:.1f} MB/s, "
          f"{got / c_s:,.0f} records/s")

    print(json.dumps({
        "label": args.label, "client": args.client, "bootstrap": args.bootstrap,
        "records": args.records, "record_bytes": args.size, "partitions": args.partitions,
        "acks": "all", "linger_ms": args.linger_ms, "compression": "none",
        "security_protocol": EXTRA.get("security.protocol", "PLAINTEXT"),
        "produce_s": round(p_s, 3), "produce_mb_s": round(mb / p_s, 1),
        "consume_s": round(c_s, 3), "consume_mb_s": round(mb / c_s, 1),
        "host": platform.node(), "cpus": os.cpu_count(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
