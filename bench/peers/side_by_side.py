"""The side-by-side suite: millrace and Apache Kafka, RF=1 and RF=3, in alternating rounds.

Each round starts every chosen broker setup on a fresh data directory, runs bench/suite against
it (max produce, e2e at half of that, catch-up; 1 KiB records, 16 partitions, acks=all) with
the broker's PIDs for the CPU figures, stops it and deletes its data. The order of the setups
rotates from round to round, so that no setup always runs first on a quiet or last on a warm
machine. At the end it writes, into the output directory:

  report.md    the side-by-side table: the median of the rounds with their range, the ratios
               of millrace to Kafka at RF=1 and RF=3, and broker CPU-seconds per GB;
  produce.svg  latency percentiles and throughput over time of each setup's max produce run
               (the round with its median throughput), from `millrace-bench report`;
  e2e.svg      the same for the e2e runs;
  results.json every round's figures; round-K/SETUP/ the suite's own files.

Setups (--setups, comma-separated, all by default):
  millrace      one node, `--cores 2`, fsync before every acknowledgement (its default);
  kafka         Apache Kafka, one node, its defaults (no fsync: the page cache is flushed later);
  kafka-fsync   the same with log.flush.interval.messages=1 (an fsync per append);
  millrace-rf3  three millrace nodes on this host (one core each, unpinned), RF=3,
                min.insync.replicas=2;
  kafka-rf3     three Kafka nodes (Kafka's JVM options and thread counts), RF=3,
                min.insync.replicas=2; KAFKA_HEAP_OPTS and KAFKA_JVM_OPTS, when set, replace
                the JVM options (e.g. the test rig's lighter serial GC and C1 compiler).
The clusters come from the test rig (tests/cluster/cluster.py) with Kafka's own failure
detection timings restored (broker session 9 s, heartbeat 2 s, replica.lag.time.max.ms 30 s).
Kafka comes from scripts/install-test-deps.sh (.deps/kafka).

  bench/suite --peers [--rounds 3] [--duration 10s] [--warmup 2s] [--out DIR]
                      [--setups millrace,kafka,...]

A round of all five setups takes about six minutes with the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests/cluster"))
from cluster import Cluster  # noqa: E402

SETUPS = ["millrace", "kafka", "kafka-fsync", "millrace-rf3", "kafka-rf3"]
NAMES = {
    "millrace": "millrace RF=1 (fsync on)",
    "kafka": "Apache Kafka RF=1 (default, no fsync)",
    "kafka-fsync": "Apache Kafka RF=1 (fsync per append)",
    "millrace-rf3": "millrace RF=3 (3 nodes, fsync on)",
    "kafka-rf3": "Apache Kafka RF=3 (3 nodes, default)",
}
# Both kinds of cluster: RF=3 topics, Kafka's default failure detection.
RF3_PROPS = {
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "replica.lag.time.max.ms": "30000",
    "broker.session.timeout.ms": "9000",
    "broker.heartbeat.interval.ms": "2000",
}
# Kafka's own defaults where the rig lowers them for three JVMs on two cores.
KAFKA_RF3_PROPS = {
    "num.network.threads": "3",
    "num.io.threads": "8",
    "background.threads": "10",
    "num.recovery.threads.per.data.dir": "2",
}
KAFKA_JVM = {
    "KAFKA_HEAP_OPTS": "-Xms1g -Xmx1g",
    "KAFKA_JVM_OPTS": "-XX:+UseG1GC -XX:MaxGCPauseMillis=20 "
                      "-XX:InitiatingHeapOccupancyPercent=35",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, log: Path, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before listening:\n"
                               + log.read_text(errors="replace")[-3000:])
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"not listening on {port} after {timeout_s}s")


class Single:
    """One broker process."""

    def __init__(self, setup: str, tmp: Path, millrace_bin: Path):
        self.tmp = tmp
        port = free_port()
        self.bootstrap = f"127.0.0.1:{port}"
        log = tmp / "broker.log"
        env = dict(os.environ)
        if setup == "millrace":
            cmd = [str(millrace_bin), "--listen", self.bootstrap, "--advertise", self.bootstrap,
                   "--data-dir", str(tmp / "data"), "--cores", "2",
                   "--override", "millrace.metrics.listen=",
                   "--override", "millrace.rest.listen=",
                   "--override", "millrace.schema.registry.listen="]
        else:
            cmd = [str(REPO / "bench/peers/apache-kafka.sh"), "--port", str(port),
                   "--data-dir", str(tmp / "kafka")]
            env["KAFKA_FSYNC"] = "1" if setup == "kafka-fsync" else "0"
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env,
                                         start_new_session=True)
        wait_listening(port, self.proc, log)
        # The Kafka script execs the JVM: one PID either way.
        self.pids = [self.proc.pid]
        self.log = log

    def keep_logs(self, dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        for log in [self.log, *self.tmp.glob("*/server.log")]:
            shutil.copy(log, dest / log.name)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Three:
    """A three-node cluster of the test rig."""

    def __init__(self, setup: str, tmp: Path):
        kind = "kafka" if setup.startswith("kafka") else "millrace"
        props = dict(RF3_PROPS)
        if kind == "kafka":
            props.update(KAFKA_RF3_PROPS)
            for key, value in KAFKA_JVM.items():
                os.environ.setdefault(key, value)
        self.cluster = Cluster(kind, n=3, tmp=tmp, overrides=props)
        self.cluster.start()
        # millrace-bench takes one bootstrap address, as one is enough for any Kafka client.
        self.bootstrap = self.cluster.nodes[0].bootstrap
        self.pids = [n.proc.pid for n in self.cluster.nodes]

    def stop(self) -> None:
        self.cluster.stop()

    def keep_logs(self, dest: Path) -> None:
        self.cluster.collect_logs(dest)


def run_setup(setup: str, out: Path, args) -> dict:
    tmp = out / "data"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    print(f"side-by-side: {setup}: starting", file=sys.stderr, flush=True)
    broker = Three(setup, tmp) if setup.endswith("rf3") else Single(setup, tmp, args.millrace_bin)
    try:
        cmd = [str(REPO / "bench/suite"), "--bootstrap-server", broker.bootstrap,
               "--broker-name", NAMES[setup], "--broker-pid", ",".join(map(str, broker.pids)),
               "--out", str(out), "--duration", args.duration, "--warmup", args.warmup]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                       timeout=1800)
    finally:
        broker.stop()
        broker.keep_logs(out / "logs")
        shutil.rmtree(tmp, ignore_errors=True)
    return figures(out)


def figures(out: Path) -> dict:
    def load(name):
        return json.loads((out / name).read_text())

    produce, e2e, catchup, cpu = (load(n) for n in
                                  ("produce.json", "e2e.json", "catchup.json", "cpu.json"))
    ms = lambda lat, k: lat[k] / 1000 if lat else None
    pl = produce["results"].get("produce_latency_us")
    el = e2e["results"].get("e2e_latency_us")
    return {
        "produce_mb_s": produce["results"]["produce"]["mb_per_sec"],
        "produce_p50_ms": ms(pl, "p50_us"),
        "produce_p99_ms": ms(pl, "p99_us"),
        "produce_p999_ms": ms(pl, "p999_us"),
        "e2e_rate": e2e["parameters"].get("rate") if isinstance(e2e.get("parameters"), dict)
        else None,
        "e2e_p50_ms": ms(el, "p50_us"),
        "e2e_p99_ms": ms(el, "p99_us"),
        "e2e_p999_ms": ms(el, "p999_us"),
        "e2e_acked": e2e["results"]["acked_records_total"],
        "e2e_consumed": e2e["results"]["consumed_records_total"],
        "catchup_mb_s": (catchup["results"].get("consume") or {}).get("mb_per_sec"),
        "produce_cpu_s_per_gb": cpu["produce"]["cpu_s_per_gb"],
        "catchup_cpu_s_per_gb": cpu["catchup"]["cpu_s_per_gb"],
        "produce_errors": produce["results"]["produce_errors"] + e2e["results"]["produce_errors"],
    }


ROWS = [
    ("max produce, MB/s", "produce_mb_s", "{:.1f}"),
    ("max produce p50 ms", "produce_p50_ms", "{:.2f}"),
    ("max produce p99 ms", "produce_p99_ms", "{:.2f}"),
    ("max produce p99.9 ms", "produce_p999_ms", "{:.2f}"),
    ("e2e rate (50% of its max), records/s", "e2e_rate", "{:.0f}"),
    ("e2e p50 ms", "e2e_p50_ms", "{:.2f}"),
    ("e2e p99 ms", "e2e_p99_ms", "{:.2f}"),
    ("e2e p99.9 ms", "e2e_p999_ms", "{:.2f}"),
    ("catch-up, MB/s", "catchup_mb_s", "{:.1f}"),
    ("broker CPU s per GB produced", "produce_cpu_s_per_gb", "{:.2f}"),
    ("broker CPU s per GB caught up", "catchup_cpu_s_per_gb", "{:.2f}"),
]


def cell(values: list, fmt: str) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    med = fmt.format(statistics.median(values))
    if len(values) == 1:
        return med
    return f"{med} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def median_of(results: dict, setup: str, key: str):
    values = [r[key] for r in results[setup] if r.get(key) is not None]
    return statistics.median(values) if values else None


def report(results: dict, setups: list[str], rounds: int) -> str:
    lines = [f"Median of {rounds} round(s), range in brackets. 1 KiB records, 16 partitions, "
             "acks=all; broker(s) and generator on this host.", "",
             "| | " + " | ".join(NAMES[s] for s in setups) + " |",
             "|---" * (len(setups) + 1) + "|"]
    for label, key, fmt in ROWS:
        lines.append(f"| {label} | "
                     + " | ".join(cell([r[key] for r in results[s]], fmt) for s in setups)
                     + " |")
    lines.append("| e2e acked = consumed, produce errors | " + " | ".join(
        ", ".join(f"{r['e2e_acked']}={r['e2e_consumed']}"
                  if r["e2e_acked"] == r["e2e_consumed"] else
                  f"{r['e2e_acked']}≠{r['e2e_consumed']}" for r in results[s])
        + f"; {sum(r['produce_errors'] for r in results[s])}" for s in setups) + " |")
    ratios = []
    for mine, theirs in (("millrace", "kafka"), ("millrace", "kafka-fsync"),
                         ("millrace-rf3", "kafka-rf3")):
        if mine in results and theirs in results:
            parts = []
            for label, key, better in (("max produce", "produce_mb_s", "higher"),
                                       ("catch-up", "catchup_mb_s", "higher"),
                                       ("CPU s/GB produced", "produce_cpu_s_per_gb", "lower")):
                a, b = median_of(results, mine, key), median_of(results, theirs, key)
                if a and b:
                    parts.append(f"{label} {a / b:.2f}x")
            ratios.append(f"- {NAMES[mine]} / {NAMES[theirs]}: " + ", ".join(parts))
    if ratios:
        lines += ["", "Ratios of the medians (millrace / Kafka):", ""] + ratios
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", default="10s")
    ap.add_argument("--warmup", default="2s")
    ap.add_argument("--setups", default=",".join(SETUPS))
    ap.add_argument("--out", type=Path,
                    default=REPO / "bench-results" / time.strftime("side-by-side-%Y%m%dT%H%M%SZ",
                                                                   time.gmtime()))
    ap.add_argument("--millrace-bin", type=Path,
                    default=Path(os.environ.get("MILLRACE_BIN",
                                                REPO / "target/release/millrace")))
    args = ap.parse_args()
    if "KAFKA_JVM_OPTS" in os.environ or "KAFKA_HEAP_OPTS" in os.environ:
        NAMES["kafka-rf3"] = ("Apache Kafka RF=3 (3 nodes, JVM: "
                              + " ".join(os.environ.get(k, KAFKA_JVM[k]) for k in KAFKA_JVM)
                              + ")")
    setups = [s for s in args.setups.split(",") if s]
    unknown = [s for s in setups if s not in SETUPS]
    if unknown or not setups:
        ap.error(f"unknown setup(s) {unknown}; choose from {SETUPS}")
    if any(s.startswith("kafka") for s in setups) and not list(
            (REPO / ".deps/kafka").glob("kafka_2.13-*.jar")):
        sys.exit("side-by-side: no Kafka jars in .deps/kafka: run scripts/install-test-deps.sh")
    for binary in (args.millrace_bin, REPO / "target/release/millrace-bench"):
        if not os.access(binary, os.X_OK):
            sys.exit(f"side-by-side: {binary} missing: "
                     "cargo build --release -p millrace -p millrace-bench")
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict]] = {s: [] for s in setups}
    for k in range(args.rounds):
        order = setups[k % len(setups):] + setups[:k % len(setups)]
        for setup in order:
            r = run_setup(setup, args.out / f"round-{k + 1}" / setup, args)
            r["round"] = k + 1
            results[setup].append(r)
            print(f"side-by-side: round {k + 1} {setup}: {r['produce_mb_s']:.1f} MB/s produce, "
                  f"e2e p99 {r['e2e_p99_ms']} ms, catch-up {r['catchup_mb_s']} MB/s",
                  file=sys.stderr, flush=True)
            (args.out / "results.json").write_text(json.dumps(results, indent=1))
    table = report(results, setups, args.rounds)
    (args.out / "report.md").write_text(table)
    # The plots: each setup's round with its median max-produce throughput.
    picks = {}
    for s in setups:
        ranked = sorted(results[s], key=lambda r: r["produce_mb_s"])
        picks[s] = args.out / f"round-{ranked[len(ranked) // 2]['round']}" / s
    bench = str(REPO / "target/release/millrace-bench")
    for kind in ("produce", "e2e"):
        subprocess.run([bench, "report", *[str(picks[s] / f"{kind}.json") for s in setups],
                        "--svg", str(args.out / f"{kind}.svg")],
                       check=True, stdout=subprocess.DEVNULL)
    print(table)
    print(f"side-by-side: results in {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
