"""REST proxy produce throughput (a measurement for docs/BENCHMARKS.md, not a test).

Starts millrace (2 shards, fsync on) and drives its own REST proxy with --clients HTTP/1.1
keep-alive connections, each posting Confluent v2 binary produce requests of --batch records of
--size bytes to an 8-partition topic for --seconds. Prints records/s, MB/s of values and the
request latency percentiles.

    .venv/bin/python tests/clients/rest_bench.py [--clients 4] [--batch 100] [--size 1024]
        [--seconds 20]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from brokerproc import BrokerProcess  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402


def worker(port: int, body: bytes, deadline: float, out: list, errors: list) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/vnd.kafka.binary.v2+json"}
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        conn.request("POST", "/topics/rest-bench", body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200 or b'"error_code":null' not in data:
            errors.append(data[:200])
            continue
        out.append(time.monotonic() - t0)
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--seconds", type=int, default=20)
    args = ap.parse_args()
    value = base64.b64encode(os.urandom(args.size)).decode()
    body = json.dumps({"records": [{"value": value} for _ in range(args.batch)]}).encode()
    with tempfile.TemporaryDirectory(prefix="rest-bench-") as tmp:
        b = BrokerProcess(Path(tmp))
        b.start()
        try:
            admin = AdminClient({"bootstrap.servers": b.bootstrap})
            admin.create_topics([NewTopic("rest-bench", 8, 1)])["rest-bench"].result(30)
            # Warm-up: the proxy's producer id and connections.
            worker(b.rest_port, body, time.monotonic() + 1, [], [])
            latencies: list[float] = []
            errors: list[bytes] = []
            deadline = time.monotonic() + args.seconds
            threads = [threading.Thread(target=worker,
                                        args=(b.rest_port, body, deadline, latencies, errors))
                       for _ in range(args.clients)]
            t0 = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - t0
        finally:
            b.stop()
    latencies.sort()
    records = len(latencies) * args.batch
    pct = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3  # noqa: E731
    print(f"{args.clients} clients x {args.batch} records of {args.size} B: "
          f"{records / elapsed:,.0f} records/s, {records * args.size / elapsed / 1e6:.1f} MB/s "
          f"of values; request p50 {pct(0.5):.2f} ms p99 {pct(0.99):.2f} ms; "
          f"{len(errors)} errors")
    print(json.dumps({"clients": args.clients, "batch": args.batch, "size": args.size,
                      "seconds": round(elapsed, 2), "records_per_s": round(records / elapsed),
                      "mb_per_s": round(records * args.size / elapsed / 1e6, 1),
                      "p50_ms": round(pct(0.5), 2), "p99_ms": round(pct(0.99), 2),
                      "errors": len(errors)}))


if __name__ == "__main__":
    main()
