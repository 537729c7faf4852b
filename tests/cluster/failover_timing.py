#!/usr/bin/env python3
"""Soak: kill -9 the active controller N times and time "kill -> first successful CreateTopics
through a survivor". Prints each round, then the median and the maximum. Not part of the pytest
run (it is a measurement, not a check).

    TEST_BROKER=kafka .venv/bin/python tests/cluster/failover_timing.py [--kills 10]

Each round: find the active controller (DescribeQuorum), kill -9 it, send CreateTopics of a new
RF=1 topic to a survivor until one succeeds (create_until_ok in cluster.py), note the new
leader, restart the killed node and wait until all brokers are registered again.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster import Cluster, cluster_kind, create_until_ok  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=10)
    args = ap.parse_args()
    cl = Cluster(cluster_kind(), n=3, tmp=Path(tempfile.mkdtemp(prefix="failover-timing-")))
    print(f"{cl.kind}: starting 3 nodes in {cl.tmp}", flush=True)
    cl.start()
    times = []
    try:
        for i in range(args.kills):
            old = cl.wait_active_controller()
            survivor = next(x for x in cl.nodes if x.node_id != old)
            cl.node(old).kill9()
            took, errors = create_until_ok(survivor, f"failover-{i}", timeout_s=60)
            new = cl.wait_active_controller(not_id=old)
            times.append(took)
            print(f"kill {i + 1}: controller {old} -> {new}, CreateTopics via "
                  f"{survivor.node_id} ok after {took:.2f}s, errors before: {errors}",
                  flush=True)
            cl.node(old).start()
            cl.wait_ready()
    finally:
        cl.kill_all()
    print(f"{cl.kind}: {len(times)} kills, kill -> CreateTopics ok: median "
          f"{statistics.median(times):.2f}s, max {max(times):.2f}s, min {min(times):.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
