#!/usr/bin/env python3
"""Share-group (KIP-932, "queues for Kafka") consume-and-acknowledge throughput, against any
broker. A measurement for reports, not a test.

    .venv/bin/python tests/clients/share_bench.py --bootstrap 127.0.0.1:PORT [--records 200000]
        [--value-bytes 100] [--batch-records 200] [--consumers 1 2 4] [--rounds 3]
        [--commit sync|async] [--timeout-s 300] [--label X]

For each consumer count N and each round: a new topic of one partition; --records records of
--value-bytes bytes produced to it with confluent-kafka (acks=all, linger.ms=5, at most
--batch-records records per batch), waited for; a new share group whose
``share.auto.offset.reset`` is set to ``earliest`` with IncrementalAlterConfigs on the GROUP
config resource; then java/ShareBench.java: one JVM, N KafkaShareConsumers (kafka-clients 4.4)
on their own threads in that group, explicit acknowledgement (every record ACCEPTed, then
commitSync per poll, or commitAsync with --commit async), until every record has been
acknowledged and the acknowledgement confirmed. commitSync is the default because it gave the
Java client the higher rate on both millrace and Kafka 4.4 in most runs (docs/BENCHMARKS.md).

Measured: records per second from the first record any consumer received to the confirmation of
the last acknowledgement (the JVM start, the group join and the producing are outside it). Also
reported: each consumer's share, records per poll, when each consumer got its first record, the
longest gap between a consumer's polls, and duplicates (an offset delivered twice, which happens
only when an acquisition lock expires or a consumer leaves, so should be 0 here).

All consumers share one partition, so this measures the broker's share-partition path (acquire,
lock, acknowledge, advance the start offset, persist the share state) and how well it lets
several consumers take disjoint batches of one partition at once. Brokers acquire whole record
batches and hold at most group.share.partition.max.record.locks (2000 by default) records of a
partition in flight, so batches larger than that leave one batch in flight at a time and the
consumers take turns: the default of 200 records per batch (about the Java producer's default
16 KiB batch of 100-byte records) lets ten be in flight. The broker should run with its
defaults; this driver changes only the group's config. Prints a line per run, a table of the
median records/s per consumer count, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewTopic, ResourceType)

sys.path.insert(0, str(Path(__file__).parent))
from brokerproc import REPO  # noqa: E402

DEPS = REPO / ".deps/java"
SOURCE = Path(__file__).parent / "java/ShareBench.java"
OP_TIMEOUT_S = 60


def create_topic(admin: AdminClient, topic: str) -> None:
    admin.create_topics([NewTopic(topic, 1, 1)], operation_timeout=30)[topic].result(OP_TIMEOUT_S)
    deadline = time.monotonic() + OP_TIMEOUT_S
    while True:
        md = admin.list_topics(topic, timeout=10).topics.get(topic)
        if md is not None and md.error is None and len(md.partitions) == 1 \
                and md.partitions[0].leader >= 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"topic {topic} has no leader after {OP_TIMEOUT_S} s")
        time.sleep(0.1)


def produce(bootstrap: str, topic: str, records: int, value_bytes: int,
            batch_records: int) -> float:
    """Produces the records to partition 0 in batches of up to batch_records and waits for every
    acknowledgement; returns seconds."""
    value = bytes(ord("a") + i % 26 for i in range(value_bytes))
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                  "batch.num.messages": batch_records, "batch.size": 1 << 20,
                  "queue.buffering.max.messages": 1_000_000,
                  "queue.buffering.max.kbytes": 1 << 20})
    failed: list[str] = []

    def on_delivery(err, _msg) -> None:
        if err is not None:
            failed.append(str(err))

    start = time.monotonic()
    for _ in range(records):
        while True:
            try:
                p.produce(topic, value=value, partition=0, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.01)
    left = p.flush(OP_TIMEOUT_S)
    if left or failed:
        raise RuntimeError(f"produce to {topic}: {left} undelivered, {len(failed)} failed "
                           f"({failed[:3]})")
    return time.monotonic() - start


def earliest(admin: AdminClient, group: str) -> None:
    """The group's share.auto.offset.reset=earliest (a group config, set before it starts)."""
    res = ConfigResource(ResourceType.GROUP, group, incremental_configs=[
        ConfigEntry("share.auto.offset.reset", "earliest",
                    incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([res])[res].result(OP_TIMEOUT_S)


def run_bench(classes: Path, bootstrap: str, group: str, topic: str, consumers: int,
              records: int, commit: str, timeout_s: int) -> dict:
    cmd = ["java", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp",
           f"{DEPS}/*:{classes}", "ShareBench", bootstrap, group, topic, str(consumers),
           str(records), commit, str(timeout_s)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout_s + 120)
    lines = proc.stdout.decode().strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"ShareBench exited with {proc.returncode}: "
                           f"{proc.stderr.decode()[-3000:]}")
    result = json.loads(lines[-1])
    stderr = proc.stderr.decode().strip()
    if stderr:
        result["stderr_tail"] = stderr[-2000:]
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--value-bytes", type=int, default=100)
    ap.add_argument("--batch-records", type=int, default=200,
                    help="records per produced batch at most (librdkafka batch.num.messages)")
    ap.add_argument("--consumers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--commit", choices=("sync", "async"), default="sync")
    ap.add_argument("--timeout-s", type=int, default=300, help="per run")
    ap.add_argument("--label", default="")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="share-bench-"))
    classes = work / "classes"
    subprocess.run(["javac", "-d", str(classes), "-cp", f"{DEPS}/*", str(SOURCE)], check=True,
                   timeout=120)
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    runs: list[dict] = []
    try:
        for n in args.consumers:
            for rnd in range(args.rounds):
                tag = uuid.uuid4().hex[:8]
                topic, group = f"share-bench-{n}-{rnd}-{tag}", f"share-bench-{n}-{rnd}-{tag}"
                create_topic(admin, topic)
                produce_s = produce(args.bootstrap, topic, args.records, args.value_bytes,
                                    args.batch_records)
                earliest(admin, group)
                r = run_bench(classes, args.bootstrap, group, topic, n, args.records,
                              args.commit, args.timeout_s)
                r.update(round=rnd, produce_s=round(produce_s, 3))
                runs.append(r)
                per = "/".join(str(c["received"]) for c in r["per_consumer"])
                late = max(r["seconds"] * 1e3 if c["first_record_ms"] is None
                           else c["first_record_ms"] for c in r["per_consumer"])
                polls = sum(c["polls"] for c in r["per_consumer"])
                gap = max(c["max_gap_ms"] for c in r["per_consumer"])
                print(f"{args.label or args.bootstrap}: consumers={n} round={rnd} "
                      f"{r['records_per_s']:>9.0f} rec/s {r['seconds']:>7.3f} s "
                      f"received {per} ({args.records / max(polls, 1):.0f}/poll, last "
                      f"consumer's first record at {late:.0f} ms, longest gap {gap:.0f} ms) "
                      f"dup={r['duplicates']} ack_failed={r['ack_failed']}"
                      f"{'' if r['complete'] else ' INCOMPLETE'}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    summary = []
    print(f"\n{args.label or args.bootstrap}: {args.records} records of {args.value_bytes} B in "
          f"batches of {args.batch_records}, commit{args.commit.capitalize()} per poll")
    print(f"{'consumers':>9} | {'median rec/s':>12} | {'MB/s':>6} | rounds rec/s")
    for n in args.consumers:
        mine = [r for r in runs if r["consumers"] == n]
        rates = [r["records_per_s"] if r["complete"] else 0.0 for r in mine]
        median = statistics.median(rates)
        summary.append({"consumers": n, "median_records_per_s": round(median),
                        "rounds": [round(x) for x in rates],
                        "duplicates": sum(r["duplicates"] for r in mine),
                        "incomplete": sum(not r["complete"] for r in mine)})
        print(f"{n:>9} | {median:>12,.0f} | {median * args.value_bytes / 1e6:>6.1f} | "
              + ", ".join(f"{x:,.0f}" for x in rates))
    print(json.dumps({"label": args.label, "bootstrap": args.bootstrap, "records": args.records,
                      "value_bytes": args.value_bytes, "batch_records": args.batch_records,
                      "commit": args.commit,
                      "host": platform.node(), "cpus": os.cpu_count(), "summary": summary,
                      "runs": runs}))
    return 0 if all(r["complete"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
