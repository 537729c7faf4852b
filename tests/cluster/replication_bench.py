"""Measurements for partition replication (issue 17), against millrace or Apache Kafka
(TEST_BROKER=kafka), three nodes of the cluster rig on this host:

1. produce throughput and ack latency with RF=3, acks=all (millrace-bench, idempotent);
2. the same while one follower is SIGSTOPped until it leaves the ISR (and some time after);
3. time from kill -9 of a partition leader to the first acknowledged produce on the new
   leader (raw Produce v7 to each live node in turn), over N kills.

Usage: .venv/bin/python tests/cluster/replication_bench.py [--kills 10] [--duration 15]
Results are printed and appended to target/cluster-observations/<kind>-replication.jsonl.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import cwire as c
from cluster import REPO, Cluster, cluster_kind, wait_for

LAG_MS = 3000
BENCH = REPO / "target/release/millrace-bench"


def bench(cluster: Cluster, topic: str, duration_s: int, out: Path, rate: int = 0) -> dict:
    cmd = [str(BENCH), "produce", "--bootstrap-server", cluster.nodes[0].bootstrap, "--topic", topic,
           "--acks", "all", "--record-size", "1024", "--warmup", "2s",
           "--duration", f"{duration_s}s", "--no-pin", "--json", str(out)]
    if rate:
        cmd += ["--rate", str(rate)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=duration_s + 120)
    return json.loads(out.read_text())


def summary(result: dict) -> dict:
    r = result["results"]
    t = r.get("produce") or {}
    lat = r.get("produce_latency_us") or {}
    ms = lambda k: round(lat[k] / 1000, 3) if k in lat else None
    return {
        "records_per_s": round(t.get("records_per_sec", 0)),
        "mb_per_s": round(t.get("mb_per_sec", 0), 1),
        "p50_ms": ms("p50_us"), "p99_ms": ms("p99_us"), "p99.9_ms": ms("p999_us"),
        "max_ms": ms("max_us"), "errors": r.get("produce_errors"),
    }


def leader_of(cluster: Cluster, topic: str, partition: int) -> int:
    for node in cluster.running_brokers():
        try:
            md = c.metadata(node.port, [topic])
            return md.topics[topic].partitions[partition].leader
        except Exception:
            continue
    return -1


def time_failover(cluster: Cluster, topic: str) -> float:
    """kill -9 the leader of partition 0; seconds until a produce to it is acknowledged."""
    old = leader_of(cluster, topic, 0)
    victim = cluster.node(old)
    survivors = [n for n in cluster.running_brokers() if n.node_id != old]
    t0 = time.monotonic()
    victim.kill9()
    i = 0
    while time.monotonic() - t0 < 60:
        node = survivors[i % len(survivors)]
        i += 1
        try:
            err, _ = c.produce(node.port, topic, 0, [b"after-kill"], acks=-1)
            if err == c.NONE:
                took = time.monotonic() - t0
                victim.start()
                cluster.wait_ready()
                return took
        except Exception:
            pass
        time.sleep(0.01)
    raise AssertionError("no produce acknowledged within 60 s of the kill")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--duration", type=int, default=15)
    args = ap.parse_args()
    kind = cluster_kind()
    tmp = Path(tempfile.mkdtemp(prefix="replication-bench-"))
    cl = Cluster(kind, n=3, tmp=tmp, overrides={"replica.lag.time.max.ms": str(LAG_MS)})
    cl.start()
    results: dict = {"kind": kind, "lag_ms": LAG_MS}
    try:
        node = cl.nodes[0]
        topic = "bench-rf3"
        errs = c.create_topics(node.port, {topic: 6}, replication_factor=3,
                               configs={"min.insync.replicas": "2"})
        assert errs[topic][0] == c.NONE, errs
        cl.wait_topic_everywhere(topic, 6)
        results["steady"] = summary(bench(cl, topic, args.duration, tmp / "steady.json"))
        print("steady", results["steady"], flush=True)

        # One follower stalled (SIGSTOP) for the run: the ISR shrinks after the lag time. A
        # one-partition topic, so the stalled node is a follower of everything measured.
        stall_topic = "bench-rf3-stall"
        errs = c.create_topics(node.port, {stall_topic: 1}, replication_factor=3,
                               configs={"min.insync.replicas": "2"})
        assert errs[stall_topic][0] == c.NONE, errs
        cl.wait_topic_everywhere(stall_topic, 1)
        results["one_partition"] = summary(bench(cl, stall_topic, args.duration,
                                                 tmp / "one.json"))
        print("one partition", results["one_partition"], flush=True)
        leader = leader_of(cl, stall_topic, 0)
        stalled = next(n for n in cl.nodes if n.node_id != leader and n is not cl.nodes[0])
        out = tmp / "stalled.json"
        proc = subprocess.Popen(
            [str(BENCH), "produce", "--bootstrap-server", cl.nodes[0].bootstrap,
             "--topic", stall_topic, "--acks", "all", "--record-size", "1024",
             "--warmup", "1s", "--duration", f"{args.duration}s", "--no-pin",
             "--json", str(out)],
            stdout=subprocess.DEVNULL)
        time.sleep(2)
        stalled.pause()
        t0 = time.monotonic()
        proc.wait(timeout=args.duration + 120)
        stalled.resume()
        results["stalled_follower"] = summary(json.loads(out.read_text()))
        results["stalled_follower"]["stalled_for_s"] = round(time.monotonic() - t0, 1)
        print("stalled follower", results["stalled_follower"], flush=True)
        cl.wait_ready()
        wait_for(lambda: all(len(c.metadata(cl.nodes[0].port, [topic]).topics[topic]
                                 .partitions[p].isr) == 3 for p in range(6)), 60,
                 what="ISR back to 3")

        kills = []
        for k in range(args.kills):
            took = time_failover(cl, topic)
            kills.append(round(took, 3))
            print(f"kill {k + 1}: first acknowledged produce after {took:.3f} s", flush=True)
            time.sleep(1)
        if kills:
            results["leader_kill_to_produce_s"] = {
                "median": statistics.median(kills), "max": max(kills), "min": min(kills),
                "all": kills}
        print(json.dumps(results, indent=1))
        obs = REPO / "target/cluster-observations"
        obs.mkdir(parents=True, exist_ok=True)
        with open(obs / f"{kind}-replication.jsonl", "a") as f:
            f.write(json.dumps(results) + "\n")
    finally:
        cl.stop()


if __name__ == "__main__":
    main()
