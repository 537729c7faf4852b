"""GET /metrics (millrace.metrics.listen): Prometheus text that Prometheus's own parser and
promtool accept, with values that follow what the clients did: bytes and records produced,
requests and their errors, a group's lag equal to end minus committed offset. Also the
listener's answers to bad HTTP, its settings, and that it can be turned off.

millrace only: Apache Kafka serves its metrics over JMX, not HTTP.
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from brokerproc import REPO, BrokerProcess, broker_kind, free_port, port_accepts
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

import kwire

pytestmark = pytest.mark.skipif(broker_kind() != "millrace",
                                reason="millrace's HTTP metrics (Kafka has JMX)")

PROMTOOL = REPO / ".venv/bin/promtool"


def scrape_text(broker) -> str:
    with urllib.request.urlopen(broker.metrics_url, timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return resp.read().decode()


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample as (name, labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found: dict, name: str, **labels) -> float | None:
    return found.get((name, frozenset(labels.items())))


def create(broker, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)


def produce(broker, topic: str, counts: dict[int, int], size: int = 100) -> None:
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, "acks": "all"})
    for partition, n in counts.items():
        for i in range(n):
            p.produce(topic, value=b"v" * size, key=f"{partition}-{i}".encode(),
                      partition=partition)
    assert p.flush(30) == 0


def test_a_scrape_is_valid_prometheus_text(broker, topic):
    create(broker, topic, 2)
    produce(broker, topic, {0: 10, 1: 5})
    # A group with committed offsets, so the lint sees the group families with samples too.
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"{topic}-lint",
                  "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition(topic, 0, 3)], asynchronous=False)
    c.close()
    text = scrape_text(broker)
    assert f'consumergroup="{topic}-lint"' in text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ["millrace_kafka_requests", "millrace_kafka_request_latency_seconds",
                 "kafka_server_brokertopicmetrics_bytesin",
                 "kafka_server_replicamanager_underreplicatedpartitions",
                 "kafka_controller_kafkacontroller_offlinepartitionscount",
                 "kafka_consumergroup_lag", "millrace_storage_fsync_seconds",
                 "process_cpu_seconds", "process_resident_memory_bytes"]:
        assert name in families, f"{name} missing; families: {sorted(families)}"
    # Histograms: cumulative buckets that never decrease, +Inf equal to the count.
    for f in families.values():
        if f.type != "histogram":
            continue
        series: dict[frozenset, list] = {}
        counts = {}
        for s in f.samples:
            rest = frozenset((k, v) for k, v in s.labels.items() if k != "le")
            if s.name.endswith("_bucket"):
                series.setdefault(rest, []).append((float(s.labels["le"]), s.value))
            elif s.name.endswith("_count"):
                counts[rest] = s.value
        assert series, f.name
        for rest, buckets in series.items():
            values = [v for _, v in sorted(buckets)]
            assert values == sorted(values), (f.name, rest, buckets)
            assert sorted(buckets)[-1][0] == float("inf")
            assert values[-1] == counts[rest], (f.name, rest)
    # promtool's lint (names, types, help, counter suffixes) finds nothing.
    assert PROMTOOL.exists(), "promtool missing: run scripts/install-test-deps.sh"
    lint = subprocess.run([str(PROMTOOL), "check", "metrics"], input=text.encode(),
                          capture_output=True, timeout=30)
    assert lint.returncode == 0, (lint.stdout + lint.stderr).decode()
    # The one-shard gather is fast enough to report, and reported.
    assert value(samples(text), "millrace_metrics_gather_seconds") is not None


def test_bytes_records_and_requests_follow_the_clients(broker, topic):
    before = samples(scrape_text(broker))
    create(broker, topic, 1)
    produce(broker, topic, {0: 200}, size=300)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"{topic}-g",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    got = 0
    deadline = time.monotonic() + 30
    while got < 200 and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is not None and m.error() is None:
            got += 1
    c.close()
    assert got == 200
    after = samples(scrape_text(broker))
    assert value(after, "kafka_server_brokertopicmetrics_messagesin_total", topic=topic) == 200
    bytes_in = value(after, "kafka_server_brokertopicmetrics_bytesin_total", topic=topic)
    assert bytes_in >= 200 * 300, bytes_in  # batches carry the values and their framing
    bytes_out = value(after, "kafka_server_brokertopicmetrics_bytesout_total", topic=topic)
    assert bytes_out >= bytes_in, (bytes_out, bytes_in)  # every batch read at least once
    # Produce requests counted, each with one observation per stage.
    def produced(s):
        return value(s, "millrace_kafka_requests_total", request="Produce") or 0
    assert produced(after) > produced(before)
    for stage in ["queue", "local", "remote", "response", "total"]:
        n = value(after, "millrace_kafka_request_latency_seconds_count", request="Produce",
                  stage=stage)
        assert n == produced(after), (stage, n, produced(after))
    # A consumer's fetches are FetchConsumer; the fsync histogram saw the acks=all writes.
    assert value(after, "millrace_kafka_requests_total", request="FetchConsumer") > 0
    fsyncs = value(after, "millrace_storage_fsync_seconds_count")
    assert fsyncs > (value(before, "millrace_storage_fsync_seconds_count") or 0)
    # The partition's size and offsets on this broker.
    assert value(after, "kafka_log_log_logendoffset", topic=topic, partition="0") == 200
    assert value(after, "kafka_topic_partition_current_offset", topic=topic, partition="0") == 200
    assert value(after, "kafka_log_log_size", topic=topic, partition="0") >= bytes_in


def test_open_connections_are_counted(broker):
    def count():
        found = samples(scrape_text(broker))
        [n] = [v for (name, _), v in found.items()
               if name == "millrace_kafka_connections"]
        return n
    # Other clients of the session broker (other modules' proxies) come and go meanwhile, so
    # the three are measured by what their closing takes away.
    socks = [kwire.connect(broker.port) for _ in range(3)]
    try:
        for s in socks:  # served, so accepted and counted
            s.sendall(kwire.frame(kwire.header_v1(18, 0, 1)))
            assert kwire.recv_frame(s) is not None
        during = count()
        assert during >= 3
    finally:
        for s in socks:
            s.close()
    assert kwire.wait_until(lambda: count() <= during - 3, 10), (during, count())


def test_error_codes_are_counted_by_request_and_name(broker, topic):
    def errors(s):
        return value(s, "millrace_kafka_request_errors_total", request="ListOffsets",
                     error="UNKNOWN_TOPIC_OR_PARTITION") or 0
    before = errors(samples(scrape_text(broker)))
    for _ in range(3):
        r = kwire.request(broker.port, 2, 2, kwire.list_offsets_v2_body(f"{topic}-absent", 0))
        [(_, _, code, _)] = kwire.parse_list_offsets_v2(r)
        assert code == 3  # UNKNOWN_TOPIC_OR_PARTITION
    assert errors(samples(scrape_text(broker))) == before + 3


def test_group_lag_is_end_offset_minus_committed(broker, topic):
    create(broker, topic, 3)
    produce(broker, topic, {0: 40, 1: 25, 2: 7})
    group = f"{topic}-lag"
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                  "enable.auto.commit": False})
    committed = {0: 10, 1: 25, 2: 0}
    c.commit(offsets=[TopicPartition(topic, p, o) for p, o in committed.items()],
             asynchronous=False)
    c.close()
    found = samples(scrape_text(broker))
    ends = {0: 40, 1: 25, 2: 7}
    for p in range(3):
        labels = dict(consumergroup=group, topic=topic, partition=str(p))
        assert value(found, "kafka_consumergroup_current_offset", **labels) == committed[p]
        assert value(found, "kafka_consumergroup_lag", **labels) == ends[p] - committed[p]
    assert value(found, "millrace_consumergroup_topic_lag", consumergroup=group, topic=topic) == 37
    assert value(found, "millrace_consumergroup_lag_max", consumergroup=group) == 30
    assert value(found, "kafka_consumergroup_members", consumergroup=group) == 0
    assert value(found, "millrace_consumergroup_state", consumergroup=group, state="Empty",
                 type="classic") == 1
    # More records: the lag grows by as many.
    produce(broker, topic, {2: 5})
    found = samples(scrape_text(broker))
    assert value(found, "kafka_consumergroup_lag", consumergroup=group, topic=topic,
                 partition="2") == 12


def test_a_member_shows_in_its_group(broker, topic):
    create(broker, topic, 1)
    group = f"{topic}-member"
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                  "session.timeout.ms": 6000})
    c.subscribe([topic])
    try:
        def members():
            c.poll(0.2)
            found = samples(scrape_text(broker))
            return value(found, "kafka_consumergroup_members", consumergroup=group) == 1
        assert kwire.wait_until(members, 30), "the member never showed"
    finally:
        c.close()


def http_raw(port: int, data: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def test_bad_http_gets_an_error_and_the_listener_keeps_serving(broker):
    url = broker.metrics_url
    base = url.rsplit("/", 1)[0]
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"{base}/nowhere", timeout=10)
    assert e.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(urllib.request.Request(url, data=b"x", method="POST"), timeout=10)
    assert e.value.code == 405 and "GET" in e.value.headers["Allow"]
    # HEAD: the headers without a body.
    conn = http.client.HTTPConnection("127.0.0.1", broker.metrics_port, timeout=10)
    conn.request("HEAD", "/metrics")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read() == b""
    conn.close()
    # Not HTTP at all, and a header far past the buffer: an error status, then closed.
    answer = http_raw(broker.metrics_port, b"\x00\x01garbage\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400"), answer[:80]
    huge = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n"
    answer = http_raw(broker.metrics_port, huge)
    assert answer.startswith(b"HTTP/1.1 431") or answer == b"", answer[:80]
    # Half a request on several sockets does not hold up a scrape.
    stalled = []
    for _ in range(8):
        s = socket.create_connection(("127.0.0.1", broker.metrics_port), timeout=10)
        s.sendall(b"GET /metr")
        stalled.append(s)
    try:
        t0 = time.monotonic()
        assert "millrace_kafka_requests_total" in scrape_text(broker)
        assert time.monotonic() - t0 < 5
    finally:
        for s in stalled:
            s.close()
    # Keep-alive: two scrapes on one connection.
    conn = http.client.HTTPConnection("127.0.0.1", broker.metrics_port, timeout=10)
    for _ in range(2):
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        assert resp.status == 200 and b"process_cpu_seconds_total" in resp.read()
    conn.close()
    assert broker.alive()


def run_to_exit(b: BrokerProcess, timeout_s: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(b.command(), capture_output=True, timeout=timeout_s,
                          stdin=subprocess.DEVNULL)


def test_settings_are_checked_and_an_empty_value_turns_it_off(tmp_path: Path):
    b = BrokerProcess(tmp_path / "bad")
    b.extra_args = ["--override", "millrace.metrics.listen=nowhere"]
    done = run_to_exit(b)
    assert done.returncode == 2, done
    assert b"millrace.metrics.listen" in done.stderr, done.stderr
    # The port taken by someone else: a clear error at start, as for the Kafka listener.
    holder = socket.socket()
    holder.bind(("127.0.0.1", b.metrics_port))
    holder.listen(1)
    try:
        b2 = BrokerProcess(tmp_path / "taken")
        b2.metrics_port = holder.getsockname()[1]
        done = run_to_exit(b2)
        assert done.returncode == 1, done
        assert b"millrace.metrics.listen" in done.stderr, done.stderr
    finally:
        holder.close()
    # Empty: no listener; the broker serves Kafka clients as ever.
    off = BrokerProcess(tmp_path / "off")
    port = free_port()
    off.extra_args = ["--override", "millrace.metrics.listen="]
    off.metrics_port = port
    off.start()
    try:
        assert kwire.api_versions_v0(off.port)[0] == 0
        assert not port_accepts(port)
    finally:
        off.stop()


def test_the_grafana_dashboard_queries_only_served_families(broker):
    """docs/grafana/millrace.json: every metric its queries and variables name is one the
    broker serves (a renamed family would leave an empty panel)."""
    import json
    import re

    text = scrape_text(broker)
    served = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        served.add(name)
        if kind == "histogram":
            served |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    dashboard = json.loads((REPO / "docs/grafana/millrace.json").read_text())
    queries = []

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("expr", "query", "definition") and isinstance(v, str):
                    queries.append(v)
                elif k == "query" and isinstance(v, dict) and isinstance(v.get("query"), str):
                    queries.append(v["query"])
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(dashboard)
    named = {m for q in queries for m in re.findall(r"\b((?:millrace|kafka|process)_[a-z0-9_]+)", q)}
    assert len(named) >= 20, named
    assert not named - served, f"queried but not served: {sorted(named - served)}"


def test_the_cleaner_backlog_grows_and_drains(broker_factory, topic):
    from confluent_kafka.admin import ConfigResource
    b = broker_factory()
    b.extra_args = ["--override", "log.cleaner.backoff.ms=200"]
    b.start()
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    # Records stay uncompacted for an hour: the closed segments pile up dirty.
    admin.create_topics([NewTopic(topic, 1, 1, config={
        "cleanup.policy": "compact", "segment.bytes": "1024",
        "min.compaction.lag.ms": "3600000"})])[topic].result(30)
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0, "acks": "all"})
    for i in range(80):  # one small batch each: a segment holds a few
        p.produce(topic, key=f"k{i % 10}".encode(), value=b"v" * 100)
        assert p.flush(30) == 0

    def backlog() -> tuple[float | None, float | None]:
        found = samples(scrape_text(b))
        return (value(found, "millrace_log_cleaner_dirty_bytes", topic=topic, partition="0"),
                value(found, "kafka_log_logcleanermanager_max_dirty_percent"))

    # Closed segments count once their index is written and their data synced.
    deadline = time.time() + 30
    while time.time() < deadline and not (backlog()[0] or 0) > 4096:
        time.sleep(0.2)
    dirty, percent = backlog()
    assert dirty is not None and dirty > 4096, dirty  # several closed segments
    assert percent == 100
    # Compactable now: the cleaner takes the backlog down to nothing.
    res = ConfigResource(ConfigResource.Type.TOPIC, topic,
                         set_config={"cleanup.policy": "compact", "segment.bytes": "1024",
                                     "min.compaction.lag.ms": "0"})
    admin.alter_configs([res])[res].result(30)
    deadline = time.time() + 30
    while time.time() < deadline and backlog() != (0, 0):
        time.sleep(0.2)
    assert backlog() == (0, 0)
