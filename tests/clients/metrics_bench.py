"""What a /metrics scrape costs (a measurement for docs/BENCHMARKS.md, not a test).

Starts millrace (2 shards, fsync on) with a topic the load generator produces to and
--extra-partitions more spread over topics, each with a consumer group's committed offsets
(so the scrape carries per-partition and lag series), then, per round, runs the same
acks=all produce at a fixed rate twice: once with nobody scraping, once with a scraper hitting
/metrics every --interval seconds. Prints the produce latency percentiles of both, the scrape's
wall time, its size and the broker's own gather time.

    .venv/bin/python tests/clients/metrics_bench.py [--extra-partitions 2000] [--rate 20000]
        [--seconds 30] [--rounds 2] [--interval 1.0]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from brokerproc import REPO, BrokerProcess  # noqa: E402
from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402


def produce(bootstrap: str, rate: int, seconds: int, out: Path) -> dict:
    exe = os.environ.get("MILLRACE_BENCH_BIN", str(REPO / "target/release/millrace-bench"))
    subprocess.run([exe, "produce", "--bootstrap-server", bootstrap, "--topic", "load",
                    "--rate", str(rate), "--record-size", "1024", "--acks", "all",
                    "--warmup", "2s", "--duration", f"{seconds}s", "--executors", "1",
                    "--json", str(out), "--quiet"], check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())["results"]["produce_latency_us"]


class Scraper(threading.Thread):
    def __init__(self, url: str, interval: float):
        super().__init__(daemon=True)
        self.url, self.interval = url, interval
        self.stop = threading.Event()
        self.walls: list[float] = []
        self.gathers: list[float] = []
        self.sizes: list[int] = []

    def run(self):
        while not self.stop.is_set():
            t0 = time.monotonic()
            with urllib.request.urlopen(self.url, timeout=30) as resp:
                body = resp.read()
            self.walls.append(time.monotonic() - t0)
            self.sizes.append(len(body))
            for line in body.decode().splitlines():
                if line.startswith("millrace_metrics_gather_seconds "):
                    self.gathers.append(float(line.split()[1]))
            self.stop.wait(max(0.0, self.interval - (time.monotonic() - t0)))


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--extra-partitions", type=int, default=2000)
    ap.add_argument("--topics", type=int, default=20, help="the extra partitions' topics")
    ap.add_argument("--rate", type=int, default=20000)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--interval", type=float, default=1.0)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="metrics-bench-") as tmp:
        b = BrokerProcess(Path(tmp))
        b.start()
        try:
            admin = AdminClient({"bootstrap.servers": b.bootstrap})
            per = max(1, args.extra_partitions // args.topics)
            topics = [f"extra-{i}" for i in range(args.topics)]
            new = [NewTopic(t, per, 1) for t in topics] + [NewTopic("load", 16, 1)]
            for f in admin.create_topics(new, operation_timeout=60).values():
                f.result(120)
            for t in topics:  # one group per topic, an offset committed on every partition
                c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": f"g-{t}",
                              "enable.auto.commit": False})
                c.commit(offsets=[TopicPartition(t, p, 0) for p in range(per)],
                         asynchronous=False)
                c.close()
            rows = []
            for r in range(args.rounds):
                quiet = produce(b.bootstrap, args.rate, args.seconds, Path(tmp) / f"q{r}.json")
                scraper = Scraper(b.metrics_url, args.interval)
                scraper.start()
                busy = produce(b.bootstrap, args.rate, args.seconds, Path(tmp) / f"s{r}.json")
                scraper.stop.set()
                scraper.join()
                rows.append((quiet, busy, scraper))
                print(f"round {r + 1}: produce p50/p99/p99.9 ms  no scrape "
                      f"{quiet['p50_us'] / 1e3:.2f}/{quiet['p99_us'] / 1e3:.2f}/"
                      f"{quiet['p999_us'] / 1e3:.2f}   scrape every {args.interval:g} s "
                      f"{busy['p50_us'] / 1e3:.2f}/{busy['p99_us'] / 1e3:.2f}/"
                      f"{busy['p999_us'] / 1e3:.2f}")
                print(f"         {len(scraper.walls)} scrapes: wall median "
                      f"{statistics.median(scraper.walls) * 1e3:.1f} ms, p99 "
                      f"{pct(scraper.walls, 0.99) * 1e3:.1f} ms; gather median "
                      f"{statistics.median(scraper.gathers) * 1e3:.2f} ms; "
                      f"{statistics.median(scraper.sizes) / 1e6:.2f} MB")
            print(json.dumps({
                "partitions": per * args.topics + 16, "groups": args.topics,
                "rate": args.rate, "seconds": args.seconds, "interval": args.interval,
                "rounds": [{"quiet": q, "scraped": s, "scrape_wall_ms": [
                    round(x * 1e3, 2) for x in (statistics.median(sc.walls),
                                                pct(sc.walls, 0.99))],
                    "gather_ms": round(statistics.median(sc.gathers) * 1e3, 3),
                    "bytes": int(statistics.median(sc.sizes))} for q, s, sc in rows]}))
        finally:
            b.stop()


if __name__ == "__main__":
    main()
