#!/usr/bin/env python3
"""Measurement: metadata propagation. For N new topics, sends CreateTopics to one node
(rotating) and times, from the answer, until every node's Metadata lists the topic with a
leader for each partition. Prints each round, then the median, p90 and maximum. Not part of
the pytest run (it is a measurement, not a check).

    .venv/bin/python tests/cluster/propagation.py [--topics 30]       # millrace
    TEST_BROKER=kafka .venv/bin/python tests/cluster/propagation.py   # Apache Kafka
    ... propagation.py --observers 2     # plus two broker-only nodes (observers)

Each node is polled in turn with Metadata v8 for that topic, so the resolution is one
round trip per node (well under a millisecond on loopback).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cwire as c  # noqa: E402
from cluster import Cluster, cluster_kind  # noqa: E402


def visible(port: int, topic: str, partitions: int) -> bool:
    t = c.metadata(port, [topic]).topics.get(topic)
    return (t is not None and t.error == c.NONE and len(t.partitions) == partitions
            and all(pm.leader >= 0 for pm in t.partitions.values()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--topics", type=int, default=30)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--observers", type=int, default=0,
                    help="broker-only nodes besides the three voters")
    args = ap.parse_args()
    cl = Cluster(cluster_kind(), n=3, tmp=Path(tempfile.mkdtemp(prefix="propagation-")),
                 observers=args.observers)
    print(f"{cl.kind}: starting 3 voters + {args.observers} observers in {cl.tmp}", flush=True)
    cl.start()
    times = []
    observer_times = []
    try:
        for i in range(args.topics):
            via = cl.nodes[i % len(cl.nodes)]  # voters and observers in turn
            topic = f"propagation-{i}"
            res = c.create_topics(via.port, {topic: args.partitions})
            t0 = time.monotonic()
            assert res[topic][0] == c.NONE, res
            pending = {x.node_id: x for x in cl.nodes}
            observers_done = None
            while pending:
                for node_id, x in list(pending.items()):
                    if visible(x.port, topic, args.partitions):
                        del pending[node_id]
                if observers_done is None and not any(not x.is_voter for x in pending.values()):
                    observers_done = time.monotonic() - t0
                if time.monotonic() - t0 > 30:
                    raise TimeoutError(f"{topic} not on {sorted(pending)} after 30 s")
            took = time.monotonic() - t0
            times.append(took)
            if args.observers:
                observer_times.append(observers_done)
            print(f"{topic} via node {via.node_id}: on every node {took * 1000:.1f} ms after "
                  "the answer", flush=True)
    finally:
        cl.kill_all()
    times.sort()
    p90 = times[int(0.9 * (len(times) - 1))]
    print(f"{cl.kind}: {len(times)} topics, answer -> on every node: median "
          f"{statistics.median(times) * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms, "
          f"max {max(times) * 1000:.1f} ms")
    if observer_times:
        observer_times.sort()
        p90 = observer_times[int(0.9 * (len(observer_times) - 1))]
        print(f"{cl.kind}: answer -> on every observer: median "
              f"{statistics.median(observer_times) * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms, "
              f"max {max(observer_times) * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
