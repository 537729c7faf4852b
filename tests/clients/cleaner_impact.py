"""Measures what the compaction cleaner costs foreground traffic (a measurement, not a test).

Fills a compacted topic with overwrites (all dirty), then measures acks=all produce latency and
end-to-end (produce to consume) latency of a separate topic at a fixed rate, twice on the same
data directory, each right after a restart: once with the cleaner off (log.cleaner.enable=false)
and once with it on, while it compacts the backlog. Prints p50/p99/p99.9 of both and how long
the cleaner was busy during the second window (from the broker log).

With --tool python (the default) the windows are measured with confluent-kafka; its delivery
callbacks run at the next send, so produce latencies are rounded up to the send interval (1 ms
at 1000/s). With --tool bench they are measured with millrace-bench e2e (acks=all, HDR
histograms in microseconds, latency from each record's intended send time). With --tool closed
confluent-kafka sends one record at a time (no --rate), each timed from its own send: a VM
stall then lengthens one sample instead of every record scheduled during it.

  .venv/bin/python tests/clients/cleaner_impact.py --churn-mb 600 --seconds 20 --rate 2000
  .venv/bin/python tests/clients/cleaner_impact.py --tool bench --churn-mb 400 --seconds 15

With --device-waits S (needs perf and root) the first S seconds of each window are traced with
`perf record -e sched:sched_switch -g` on the broker, and what its io_uring workers blocked on
is summarised: the produce path's direct writes, inode writes and device flushes (count of
blocking waits, p50, p99) and all their blocked time per second. Unlike the client's
latencies these are not swamped by the VM's stalls: a stall lengthens one wait, not every
record scheduled during it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).parent))
from brokerproc import BrokerProcess  # noqa: E402


def percentile(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def fill_churn(bootstrap, mb, keys):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                  "batch.size": 1 << 20, "queue.buffering.max.kbytes": 1 << 20})
    value = b"c" * 1024
    n = mb * 1024
    for i in range(n):
        while True:
            try:
                p.produce("churn", key=f"k{i % keys}".encode(), value=value)
                break
            except BufferError:
                p.poll(0.05)
    p.flush(120)


def start_consumer(bootstrap, topic, e2e_ms):
    """Reads `topic` from its end, appending each record's time since the send stamped in its
    value (ms) to `e2e_ms`; returns once it is assigned, with a function that stops it."""
    stop = threading.Event()
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"m-{time.time()}",
                  "fetch.wait.max.ms": 100})
    c.assign([TopicPartition(topic, 0, -1)])  # from the end

    def consume():
        while not stop.is_set():
            m = c.poll(0.1)
            if m is not None and m.error() is None:
                sent = float(m.value()[:20].decode())
                e2e_ms.append((time.perf_counter() - sent) * 1000)
    t = threading.Thread(target=consume)
    t.start()
    time.sleep(1.0)

    def stop_consumer():
        stop.set()
        t.join()
        c.close()
    return stop_consumer


def measure(bootstrap, topic, seconds, rate):
    """acks=all delivery latency and end-to-end latency at a fixed rate, in ms."""
    produce_ms, e2e_ms = [], []
    stop_consumer = start_consumer(bootstrap, topic, e2e_ms)
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    pad = b"p" * 1000
    start = time.perf_counter()
    n = int(seconds * rate)
    for i in range(n):
        intended = start + i / rate
        now = time.perf_counter()
        if intended > now:
            time.sleep(intended - now)
        stamp = f"{intended:20.6f}".encode()

        def done(err, msg, intended=intended):
            if err is None:
                produce_ms.append((time.perf_counter() - intended) * 1000)
        p.produce(topic, value=stamp + pad, partition=0, on_delivery=done)
        p.poll(0)
    p.flush(30)
    time.sleep(1.0)
    stop_consumer()
    return produce_ms, e2e_ms


def measure_closed(bootstrap, topic, seconds):
    """One acks=all record at a time, for `seconds`: each produce's time from send to
    acknowledgement and each record's from send to receipt, in ms. A VM stall lengthens the
    one record in flight, where a fixed schedule makes every record due during it late."""
    produce_ms, e2e_ms = [], []
    stop_consumer = start_consumer(bootstrap, topic, e2e_ms)
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    pad = b"p" * 1000
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sent = time.perf_counter()
        p.produce(topic, value=f"{sent:20.6f}".encode() + pad, partition=0)
        if p.flush(30) != 0:
            raise RuntimeError("a record was not acknowledged within 30 s")
        produce_ms.append((time.perf_counter() - sent) * 1000)
    time.sleep(1.0)
    stop_consumer()
    return produce_ms, e2e_ms


def measure_bench(bootstrap, topic, seconds, rate, out):
    """The same window measured by millrace-bench e2e; returns its two latency summaries (us)."""
    root = Path(__file__).resolve().parents[2]
    exe = os.environ.get("MILLRACE_BENCH_BIN", str(root / "target/release/millrace-bench"))
    subprocess.run([exe, "e2e", "--bootstrap-server", bootstrap, "--topic", topic,
                    "--rate", str(int(rate)), "--record-size", "1024", "--acks", "all",
                    "--linger-ms", "0", "--executors", "1", "--warmup", "1s",
                    "--duration", f"{seconds}s", "--json", str(out), "--quiet"],
                   check=True, stdout=subprocess.DEVNULL)
    results = json.loads(Path(out).read_text())["results"]
    return results["produce_latency_us"], results["e2e_latency_us"]


# What a produce's group commit blocks on in the kernel, told apart by a frame of the stack the
# io_uring worker thread slept in: the direct write, the sync's inode write, the device flush.
WAIT_KINDS = {"write": "ext4_file_write_iter", "inode": "ext4_write_inode",
              "flush": "blkdev_issue_flush"}
SWITCH = re.compile(r"^\S.*?\s+\d+\s+\[\d+\]\s+([\d.]+): sched:sched_switch: prev_comm=(.*?) "
                    r"prev_pid=(\d+) prev_prio=\d+ prev_state=(\S+) ==> next_comm=(.*?) "
                    r"next_pid=(\d+)")


def trace_waits(pid, seconds, data):
    """Starts recording the broker's context switches (with stacks) for `seconds`."""
    return subprocess.Popen(["perf", "record", "-q", "-e", "sched:sched_switch", "-g",
                             "-p", str(pid), "-o", str(data), "--", "sleep", str(seconds)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def device_waits(data):
    """Uninterruptible sleeps of the broker's io_uring workers, by kind, in ms. A sleep runs
    from the switch away from a thread in state D to the switch back to it; its kind is the
    first WAIT_KINDS frame on the stack it slept with."""
    text = subprocess.run(["perf", "script", "-i", str(data)], capture_output=True,
                          text=True, check=True).stdout
    waits = {k: [] for k in (*WAIT_KINDS, "other")}
    asleep = {}  # pid -> (time, state, frames)
    switch = None
    frames = []

    def close():
        if switch is None:
            return
        t, prev, state, next_comm, nxt = switch
        asleep[prev] = (t, state, list(frames))
        if nxt in asleep:
            t0, state0, stack = asleep.pop(nxt)
            if state0 == "D" and next_comm.startswith("iou-wrk"):
                kind = next((k for k, f in WAIT_KINDS.items() if f in stack), "other")
                waits[kind].append((t - t0) * 1000)

    for line in text.splitlines():
        m = SWITCH.match(line)
        if m:
            close()
            switch = (float(m[1]), int(m[3]), m[4], m[5], int(m[6]))
            frames = []
        elif switch is not None and line.strip():
            parts = line.split()
            if len(parts) >= 2:
                frames.append(parts[1].split("+")[0])
    close()
    return waits


def waits_summary(name, waits, seconds):
    cells = [f"{k} n={len(v)} p50={percentile(v, 50):.2f} p99={percentile(v, 99):.2f}"
             for k, v in waits.items() if k != "other"]
    total = sum(sum(v) for v in waits.values()) / seconds
    return f"{name}: " + " | ".join(cells) + f" | all waits {total:.0f} ms/s"


def bench_summary(name, s):
    return (f"{name}: n={s['count']} p50={s['p50_us'] / 1e3:.2f} p99={s['p99_us'] / 1e3:.2f} "
            f"p99.9={s['p999_us'] / 1e3:.2f} ms mean={s['mean_us'] / 1e3:.2f}")


def summary(name, values):
    return (f"{name}: n={len(values)} p50={percentile(values, 50):.2f} "
            f"p99={percentile(values, 99):.2f} p99.9={percentile(values, 99.9):.2f} ms "
            f"mean={statistics.mean(values) if values else float('nan'):.2f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--churn-mb", type=int, default=600)
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rate", type=float, default=2000)
    ap.add_argument("--tool", choices=["python", "bench", "closed"], default="python",
                    help="what measures the windows: confluent-kafka at --rate, millrace-bench "
                         "e2e at --rate, or confluent-kafka one record at a time")
    ap.add_argument("--out", type=Path,
                    help="with --tool bench: keep millrace-bench's off.json and on.json here")
    ap.add_argument("--broker-config", action="append", default=[], metavar="KEY=VALUE",
                    help="an extra server.properties line for both runs (repeatable)")
    ap.add_argument("--device-waits", type=float, default=0, metavar="SECONDS",
                    help="trace the broker's io_uring workers with perf for the first SECONDS "
                         "of each window and summarise what they waited on (needs perf, root)")
    ap.add_argument("--dir", type=Path, default=Path("/tmp"),
                    help="where the broker's data directory is made (e.g. another filesystem)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        b = BrokerProcess(Path(tmp))
        cfg = Path(tmp) / "off.properties"
        extra = "".join(f"{line}\n" for line in args.broker_config)
        cfg.write_text("log.cleaner.enable=false\n" + extra)
        b.extra_args = ["--config", str(cfg)]
        b.start()
        a = AdminClient({"bootstrap.servers": b.bootstrap})
        for f in a.create_topics([
                NewTopic("churn", 8, 1, config={"cleanup.policy": "compact",
                                                "segment.bytes": str(8 << 20),
                                                "min.cleanable.dirty.ratio": "0.01"}),
                NewTopic("lat", 1, 1)]).values():
            f.result(30)
        t0 = time.time()
        fill_churn(b.bootstrap, args.churn_mb, args.keys)
        print(f"filled {args.churn_mb} MB of overwrites in {time.time() - t0:.1f} s", flush=True)
        # Both windows start right after a restart, so whatever a restart costs is in both.
        b.stop()
        b.start()
        traced = {}

        def window(name):
            if args.device_waits:
                data = Path(tmp) / f"{name}.perf"
                traced[name] = (trace_waits(b.proc.pid, args.device_waits, data), data)
            if args.tool == "bench":
                out = args.out or Path(tmp)
                out.mkdir(parents=True, exist_ok=True)
                return measure_bench(b.bootstrap, "lat", args.seconds, args.rate,
                                     out / f"{name}.json")
            if args.tool == "closed":
                return measure_closed(b.bootstrap, "lat", args.seconds)
            return measure(b.bootstrap, "lat", args.seconds, args.rate)
        off = window("off")
        b.stop()
        cfg.write_text("log.cleaner.enable=true\nlog.cleaner.backoff.ms=200\n" + extra)
        log_mark = b.log_path.stat().st_size
        b.start()
        on_start = time.time()
        on = window("on")
        on_end = time.time()
        b.stop()
        text = b.log_path.read_text(errors="replace")[log_mark:]
        text = re.sub(r"\x1b\[[0-9;]*m", "", text)
        cleaned = re.findall(r"cleaned log .*? read=(\d+) written=(\d+)", text)
        # When each clean finished, in seconds after the cleaner-on window's generator started.
        finished = []
        for stamp in re.findall(r"^(\S+Z) .*cleaned log", text, re.M):
            at = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
            finished.append(f"{at - on_start:.1f}")
        print("cleans finished at (s into the window): " + " ".join(finished))
        read = sum(int(r) for r, _ in cleaned)
        written = sum(int(w) for _, w in cleaned)
        print(f"cleaner during the second window ({on_end - on_start:.1f} s): "
              f"{len(cleaned)} cleans, {read / 1e6:.0f} MB read, {written / 1e6:.0f} MB written")
        show = bench_summary if args.tool == "bench" else summary
        print(show("produce (cleaner off)", off[0]))
        print(show("produce (cleaner on) ", on[0]))
        print(show("e2e     (cleaner off)", off[1]))
        print(show("e2e     (cleaner on) ", on[1]))
        for name, (perf, data) in traced.items():
            perf.wait()
            print(waits_summary(f"device waits, first {args.device_waits:g} s (cleaner {name})",
                                device_waits(data), args.device_waits))


if __name__ == "__main__":
    main()
