"""Fixtures for the cluster suite.

- ``cluster``: three nodes for the whole session, healed before each test (paused nodes
  resumed, dead nodes restarted, all brokers registered), so a test may kill, pause or wipe nodes
  and leave the cleanup to the next one.
- ``cluster_factory``: a separate cluster with property overrides (e.g. RF=3 offsets on Kafka),
  killed at the end of the test.
- ``topic``: a unique topic name per test.
- ``observe(key, value)``: prints an observation and appends it, with the test's name, to
  target/cluster-observations/<kind>.jsonl (the numbers tests/cluster/README.md quotes).
- marker ``kafka_only``: skipped unless TEST_BROKER=kafka.

When a test fails, the tails of every node's logs are added to the report and the full logs are
copied to target/cluster-logs/<test>/.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid

import pytest

import netns
from cluster import REPO, Cluster, cluster_kind


def pytest_report_header(config):
    return f"cluster of: {cluster_kind()}"


def pytest_collection_modifyitems(config, items):
    if cluster_kind() == "kafka":
        return
    skip = pytest.mark.skip(reason="Apache Kafka only: a setting millrace refuses in this issue")
    for item in items:
        if item.get_closest_marker("kafka_only"):
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when not in ("call", "setup") or not rep.failed:
        return
    clusters = [v for v in getattr(item, "funcargs", {}).values() if isinstance(v, Cluster)]
    clusters += getattr(item, "_clusters_made", [])
    name = re.sub(r"[^a-zA-Z0-9_.-]+", "_", item.nodeid)
    for i, cl in enumerate(clusters):
        dest = cl.collect_logs(REPO / "target/cluster-logs" / name / f"cluster{i}")
        rep.sections.append((f"cluster {i} logs (full copies in {dest})", cl.log_tails()))


@pytest.fixture(scope="session")
def _session_cluster(tmp_path_factory):
    cl = Cluster(cluster_kind(), n=3, tmp=tmp_path_factory.mktemp("cluster"))
    try:
        cl.start()
    except BaseException:
        cl.collect_logs(REPO / "target/cluster-logs/session-start")
        cl.kill_all()  # no node left running when the session cluster cannot start
        raise
    yield cl
    cl.stop()


@pytest.fixture
def cluster(_session_cluster):
    _session_cluster.heal()
    return _session_cluster


@pytest.fixture
def cluster_factory(request, tmp_path):
    made: list[Cluster] = []
    request.node._clusters_made = made

    nets: list[netns.Netns] = []

    def make(overrides: dict[str, str] | None = None, n: int = 3, observers: int = 0,
             controller_only: bool = False, isolated: bool = False,
             node_props=None, start: bool = True) -> Cluster:
        """`node_props(node, props)` edits each node's properties last; `start=False` returns
        the cluster unstarted. `isolated`: every node in its own network namespace, so a test can cut one off
        (skipped where namespaces cannot be made: not root, no iproute2, a kernel that
        refuses)."""
        net = None
        if isolated:
            why = netns.available()
            if why:
                pytest.skip(why)
            net = netns.Netns(list(range(1, n + observers + 1)))
            try:
                net.setup()
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
                detail = getattr(e, "stderr", b"") or b""
                pytest.skip(f"network namespaces refused here: {e} {detail.decode(errors='replace')}")
            nets.append(net)
        cl = Cluster(cluster_kind(), n=n, tmp=tmp_path / f"cluster{len(made)}",
                     overrides=overrides, observers=observers,
                     controller_only=controller_only, netns=net, node_props=node_props)
        made.append(cl)
        return cl.start() if start else cl

    yield make
    for cl in made:
        cl.kill_all()
    for net in nets:
        net.teardown()


@pytest.fixture
def topic(request):
    base = re.sub(r"[^a-zA-Z0-9]+", "-", request.node.name).strip("-")[:60]
    return f"{base}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def observe(request):
    out = REPO / "target/cluster-observations" / f"{cluster_kind()}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)

    def record(key: str, value) -> None:
        print(f"OBSERVED {key}: {value}")
        with open(out, "a") as f:
            f.write(json.dumps({"at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                "test": request.node.nodeid, "key": key, "value": value},
                               default=str) + "\n")
    return record
