"""The load generator against a three-node cluster: it must find each partition's leader for
everything it asks, as any Kafka client does (ListOffsets is answered only by a partition's
leader), and count every record it produced when it reads them back.

Runs against millrace (in CI) and Apache Kafka 4.4 (the reference).
"""

from __future__ import annotations

import json
import subprocess

from cluster import REPO

BENCH = REPO / "target/release/millrace-bench"
PARTITIONS = 6


def bench(*args: str, out) -> dict:
    subprocess.run([str(BENCH), *args, "--no-pin", "--json", str(out)], check=True,
                   stdin=subprocess.DEVNULL, timeout=120)
    return json.loads(out.read_text())["results"]


def test_produce_then_catch_up_on_rf3_counts_every_record(cluster, topic, tmp_path):
    cluster.create_topic(topic, PARTITIONS, replication_factor=3)
    node = cluster.nodes[0]
    leaders = cluster.leaders(topic, via=node)
    # The point of the test: the bootstrap node does not lead everything.
    assert len(set(leaders.values())) > 1, f"leaders not spread: {leaders}"

    common = ["--bootstrap-server", node.bootstrap, "--topic", topic, "--record-size", "100"]
    produced = bench("produce", *common, "--acks", "all", "--rate", "3000", "--warmup", "0s",
                     "--duration", "2s", out=tmp_path / "produce.json")
    assert produced["produce_errors"] == 0
    assert produced["acked_records_total"] > 1000
    caught_up = bench("consume", *common, "--from", "beginning", "--duration", "60s",
                      "--drain-timeout", "0s", out=tmp_path / "catchup.json")
    assert caught_up["consumed_records_total"] == produced["acked_records_total"]
