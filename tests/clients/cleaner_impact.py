"""Measures what the compaction cleaner costs foreground traffic (a measurement, not a test).

Each round fills a compacted topic with overwrites (all dirty), then measures acks=all produce
latency and end-to-end (produce to consume) latency of a separate topic in three windows on the
same data directory, each right after a restart: cleaner off, cleaner on (while it compacts the
backlog), cleaner off again. The two cleaner-off windows are an A/A pair: how far they differ is
how far two identical windows differ on this host, the yardstick for the cleaner's excess (the
on window against the mean of the two around it). Prints each window's p50/p99/p99.9 and, with
--out, writes report.md and results.json. `bench/suite --cleaner` runs it with the closed-loop
tool and three rounds.

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
    if p.flush(120) != 0:
        raise RuntimeError("the backlog was not all acknowledged within 120 s")


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


# The windows of one round, in the order they run. Both cleaner-off windows see the same
# foreground load on the same broker; the one before and the one after the cleaner's window
# are the A/A pair that shows how far two identical windows differ on this host.
WINDOWS = (("off-before", False), ("on", True), ("off-after", False))
# The percentiles the report compares, as (key, label).
MARKS = (("p99", "p99"), ("p999", "p99.9"))


def window_stats(tool, result):
    """A window's produce and end-to-end latency percentiles in ms (and sample counts), from
    millrace-bench's summaries (--tool bench) or from the sample lists of the other tools."""
    def from_bench(s):
        return {"n": s["count"], "p50": s["p50_us"] / 1e3, "p99": s["p99_us"] / 1e3,
                "p999": s["p999_us"] / 1e3}

    def from_samples(v):
        return {"n": len(v), "p50": percentile(v, 50), "p99": percentile(v, 99),
                "p999": percentile(v, 99.9)}
    conv = from_bench if tool == "bench" else from_samples
    return {"produce": conv(result[0]), "e2e": conv(result[1])}


def compare_round(windows):
    """For each of produce and e2e and each percentile of MARKS: the cleaner's excess (the on
    window minus the mean of the two off windows around it) and the A/A difference (off-after
    minus off-before), in ms."""
    out = {}
    for kind in ("produce", "e2e"):
        for key, _ in MARKS:
            before = windows["off-before"][kind][key]
            after = windows["off-after"][kind][key]
            on = windows["on"][kind][key]
            out[f"{kind}_{key}_excess"] = on - (before + after) / 2
            out[f"{kind}_{key}_aa"] = after - before
    return out


def render_report(rounds, meta):
    """The markdown report: one row per window, then the cleaner's excess beside the A/A
    difference per round and their medians."""
    lines = [f"# Compaction cleaner's cost to foreground latency ({meta['broker']})", "",
             f"Tool `{meta['tool']}`, {meta['seconds']:g} s windows"
             + (f" at {meta['rate']:g} records/s" if meta["tool"] != "closed" else
                " (one acks=all record at a time)")
             + f", {meta['churn_mb']} MB of overwrites of {meta['keys']} keys per round.",
             "Each window starts right after a restart; the middle one has the cleaner on.", "",
             "| round | window | produce p50 / p99 / p99.9 ms | e2e p50 / p99 / p99.9 ms "
             "| cleans (MB read) | compacted topic on disk, MB |",
             "|---|---|---|---|---|---|"]
    for i, r in enumerate(rounds, 1):
        for name, _ in WINDOWS:
            w = r["windows"][name]
            cells = [" / ".join(f"{w[k][m]:.2f}" for m in ("p50", "p99", "p999"))
                     for k in ("produce", "e2e")]
            cleans = disk = ""
            if name == "on":
                cleans = (f"{r['cleans']} ({r['read_mb']:.0f})" if r["cleans"] is not None
                          else "n/a")
                disk = f"{r['backlog_mb'][0]:.0f} → {r['backlog_mb'][1]:.0f}"
            lines.append(f"| {i} | {name} | {cells[0]} | {cells[1]} | {cleans} | {disk} |")
    lines += ["", "Cleaner's excess (on minus the mean of the off windows around it) against "
              "the A/A difference (off-after minus off-before), ms:", "",
              "| round | " + " | ".join(f"{k} {label} excess / A/A" for k in ("produce", "e2e")
                                        for _, label in MARKS) + " |",
              "|---|" + "---|" * (2 * len(MARKS))]
    keys = [f"{k}_{m}" for k in ("produce", "e2e") for m, _ in MARKS]
    for i, r in enumerate(rounds, 1):
        c = r["compare"]
        lines.append(f"| {i} | " + " | ".join(f"{c[k + '_excess']:+.2f} / {c[k + '_aa']:+.2f}"
                                              for k in keys) + " |")
    med = {}
    for k in keys:
        med[k] = (statistics.median(r["compare"][k + "_excess"] for r in rounds),
                  statistics.median(abs(r["compare"][k + "_aa"]) for r in rounds))
    lines.append("| median (A/A as its size) | "
                 + " | ".join(f"{med[k][0]:+.2f} / {med[k][1]:.2f}" for k in keys) + " |")
    lines += ["", "An excess inside the A/A difference is not told apart from the host's noise."]
    return "\n".join(lines) + "\n"


def backlog_mb(data_dir):
    """MB of the compacted topic's files under `data_dir` (its partitions' directories are named
    churn-N by both brokers): what the cleaner left of the backlog so far. Kafka renames the
    segments a clean replaced to *.deleted and removes them a minute later
    (file.delete.delay.ms), so those are not counted."""
    total = 0
    for d in Path(data_dir).rglob("churn-*"):
        if not d.is_dir():
            continue
        for f in d.iterdir():
            if f.name.endswith(".deleted"):
                continue
            try:
                total += f.stat().st_size
            except FileNotFoundError:  # removed since the listing (a swap, a deletion)
                pass
    return total / 1e6


def cleaner_activity(text):
    """(cleans, MB read) from the part of a millrace log written during a window."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    cleaned = re.findall(r"cleaned log .*? read=(\d+) written=(\d+)", text)
    return len(cleaned), sum(int(r) for r, _ in cleaned) / 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--churn-mb", type=int, default=600)
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rate", type=float, default=2000)
    ap.add_argument("--tool", choices=["python", "bench", "closed"], default="python",
                    help="what measures the windows: confluent-kafka at --rate, millrace-bench "
                         "e2e at --rate, or confluent-kafka one record at a time")
    ap.add_argument("--rounds", type=int, default=1,
                    help="rounds of: fill the backlog, then a cleaner-off, a cleaner-on and "
                         "another cleaner-off window")
    ap.add_argument("--broker", choices=["millrace", "kafka"], default=None,
                    help="which broker (default: $TEST_BROKER, else millrace); Kafka is "
                         "started by bench/peers/apache-kafka.sh")
    ap.add_argument("--out", type=Path,
                    help="write report.md and results.json here (and, with --tool bench, "
                         "millrace-bench's JSON of each window)")
    ap.add_argument("--broker-config", action="append", default=[], metavar="KEY=VALUE",
                    help="an extra broker setting for every window (repeatable)")
    ap.add_argument("--device-waits", type=float, default=0, metavar="SECONDS",
                    help="trace the broker's io_uring workers with perf for the first SECONDS "
                         "of each window and summarise what they waited on (needs perf, root)")
    ap.add_argument("--dir", type=Path, default=Path("/tmp"),
                    help="where the broker's data directory is made (e.g. another filesystem)")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    extra = {}
    for line in args.broker_config:
        key, sep, value = line.partition("=")
        if not sep:
            ap.error(f"--broker-config takes KEY=VALUE, not {line!r}")
        extra[key.strip()] = value.strip()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        b = BrokerProcess(Path(tmp), kind=args.broker)
        b.properties = {"log.cleaner.enable": "false", **extra}
        b.start()
        # log_level 2: this client lives through every restart of the broker below, and
        # librdkafka would log each one as a failure; a failed CreateTopics still raises.
        a = AdminClient({"bootstrap.servers": b.bootstrap, "log_level": 2})
        for f in a.create_topics([
                NewTopic("churn", 8, 1, config={"cleanup.policy": "compact",
                                                "segment.bytes": str(8 << 20),
                                                "min.cleanable.dirty.ratio": "0.01"}),
                NewTopic("lat", 1, 1)]).values():
            f.result(30)
        rounds = []
        for r in range(1, args.rounds + 1):
            t0 = time.time()
            fill_churn(b.bootstrap, args.churn_mb, args.keys)
            print(f"round {r}: filled {args.churn_mb} MB of overwrites in "
                  f"{time.time() - t0:.1f} s", flush=True)
            windows, cleans, read_mb, backlog = {}, None, 0.0, (0.0, 0.0)
            for name, cleaner in WINDOWS:
                # Every window starts right after a restart, so whatever a restart costs is
                # in each of them.
                b.stop()
                b.properties = {"log.cleaner.enable": str(cleaner).lower(),
                                "log.cleaner.backoff.ms": "200", **extra}
                log_mark = b.log_path.stat().st_size
                b.start()
                started = time.time()
                backlog_before = backlog_mb(b.data_dir)
                label = f"r{r}-{name}"
                traced = None
                if args.device_waits:
                    data = Path(tmp) / f"{label}.perf"
                    traced = (trace_waits(b.proc.pid, args.device_waits, data), data)
                if args.tool == "bench":
                    out = args.out or Path(tmp)
                    out.mkdir(parents=True, exist_ok=True)
                    result = measure_bench(b.bootstrap, "lat", args.seconds, args.rate,
                                           out / f"{label}.json")
                elif args.tool == "closed":
                    result = measure_closed(b.bootstrap, "lat", args.seconds)
                else:
                    result = measure(b.bootstrap, "lat", args.seconds, args.rate)
                windows[name] = window_stats(args.tool, result)
                show = bench_summary if args.tool == "bench" else summary
                print(show(f"round {r} produce ({name})", result[0]))
                print(show(f"round {r} e2e     ({name})", result[1]), flush=True)
                if cleaner:
                    backlog = (backlog_before, backlog_mb(b.data_dir))
                    print(f"round {r}: the compacted topic went from {backlog[0]:.0f} to "
                          f"{backlog[1]:.0f} MB on disk in the window", flush=True)
                if cleaner and b.kind == "millrace":
                    text = b.log_path.read_text(errors="replace")[log_mark:]
                    cleans, read_mb = cleaner_activity(text)
                    print(f"round {r}: {cleans} cleans, {read_mb:.0f} MB read in the "
                          f"{time.time() - started:.1f} s after the restart", flush=True)
                if traced is not None:
                    traced[0].wait()
                    print(waits_summary(f"device waits, first {args.device_waits:g} s "
                                        f"({label})", device_waits(traced[1]),
                                        args.device_waits))
            rounds.append({"windows": windows, "cleans": cleans, "read_mb": read_mb,
                           "backlog_mb": backlog, "compare": compare_round(windows)})
        b.stop()
    meta = {"broker": b.kind, "tool": args.tool, "seconds": args.seconds, "rate": args.rate,
            "churn_mb": args.churn_mb, "keys": args.keys, "rounds": args.rounds,
            "broker_config": extra}
    report = render_report(rounds, meta)
    print()
    print(report)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "report.md").write_text(report)
        (args.out / "results.json").write_text(json.dumps({"meta": meta, "rounds": rounds},
                                                          indent=2))
        print(f"wrote {args.out / 'report.md'} and {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
