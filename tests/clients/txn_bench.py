#!/usr/bin/env python3
"""Transactional produce throughput, millrace against Apache Kafka in the same run.
A measurement for reports, not a test.

    .venv/bin/python tests/clients/txn_bench.py [--records 200000] [--sizes 100,10000]
        [--bytes 1024] [--partitions 8] [--rounds 2] [--kafka-fsync] [--brokers millrace,kafka]

For each round and each broker (a fresh millrace from target/release/millrace with 2 cores, a
fresh single-node Apache Kafka from .deps/kafka, alternating), a new topic of P partitions and,
per transaction size, java/TxnBench.java: the Java client (kafka-clients 4.4) sends the records
in transactions of that size (begin, sends, commit), linger.ms=5, batch.size=256 KiB. Kafka runs
with its defaults (no fsync per write) unless --kafka-fsync (log.flush.interval.messages=1);
millrace always fsyncs before acknowledging. Prints one line per run and a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from brokerproc import REPO, BrokerProcess  # noqa: E402

DEPS = REPO / ".deps/java"
SOURCE = Path(__file__).parent / "java/TxnBench.java"


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        f.result(60)


def run_one(classes: Path, bootstrap: str, topic: str, records: int, size: int,
            nbytes: int) -> dict:
    proc = subprocess.run(
        ["java", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", f"{DEPS}/*:{classes}",
         "TxnBench", bootstrap, topic, str(records), str(size), str(nbytes)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"TxnBench failed: {proc.stderr.decode()[-3000:]}")
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--sizes", default="100,10000")
    ap.add_argument("--bytes", type=int, default=1024)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--kafka-fsync", action="store_true")
    ap.add_argument("--brokers", default="millrace,kafka")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.kafka_fsync:
        os.environ["KAFKA_FSYNC"] = "1"
    work = Path(tempfile.mkdtemp(prefix="txn-bench-"))
    classes = work / "classes"
    subprocess.run(["javac", "-d", str(classes), "-cp", f"{DEPS}/*", str(SOURCE)], check=True)
    results = []
    for rnd in range(args.rounds):
        for kind in args.brokers.split(","):
            b = BrokerProcess(work / f"{kind}-{rnd}", kind=kind).start()
            try:
                for size in sizes:
                    topic = f"txn-{size}"
                    create_topic(b.bootstrap, topic, args.partitions)
                    r = run_one(classes, b.bootstrap, topic, args.records, size, args.bytes)
                    r.update(broker=kind, round=rnd)
                    results.append(r)
                    print(f"round {rnd} {kind:8} txn={size:>6}: {r['records_per_s']:>9.0f} rec/s "
                          f"{r['mb_per_s']:>7.1f} MB/s {r['txn_per_s']:>8.1f} txn/s", flush=True)
            finally:
                b.stop()
                shutil.rmtree(b.data_dir, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"kafka_fsync": args.kafka_fsync, "results": results}))


if __name__ == "__main__":
    main()
