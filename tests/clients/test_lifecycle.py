"""Broker lifecycle: SIGTERM stops cleanly (exit code 0) with clients still connected, and the
broker restarts at once on the same port and data directory with everything it acknowledged.
"""

from __future__ import annotations

import socket

import pytest

import kwire as w

pytestmark = pytest.mark.millrace_only


def test_sigterm_with_open_connections_then_immediate_restart(broker_factory):
    b = broker_factory()
    b.start()
    # produce something acknowledged, over the real protocol
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all"})
    acked = []
    for i in range(100):
        p.produce("lifecycle", value=f"v{i}".encode(),
                  on_delivery=lambda err, msg: acked.append(msg.offset()) if err is None else None)
    p.flush(30)
    assert len(acked) == 100
    # idle clients that stay connected through the shutdown
    idle = [socket.create_connection(("127.0.0.1", b.port), timeout=5) for _ in range(5)]
    try:
        assert b.stop() == 0, b.log_tail()
        b.start()  # same port, same data dir: must bind at once
        error, _ = w.api_versions_v0(b.port)
        assert error == 0
        from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING

        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "lifecycle",
                      "enable.auto.commit": False})
        c.assign([TopicPartition("lifecycle", 0, OFFSET_BEGINNING)])
        values = []
        for _ in range(200):
            if len(values) == 100:
                break
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                values.append(m.value())
        c.close()
        assert values == [f"v{i}".encode() for i in range(100)]
    finally:
        for s in idle:
            s.close()


@pytest.mark.parametrize("line, key", [
    ("no.such.key=1", "no.such.key"),
    ("num.partitions=zero", "num.partitions"),
    ("listeners=SSL://127.0.0.1", "listeners"),
    ("ssl.client.auth=sometimes", "ssl.client.auth"),
    ("sasl.enabled.mechanisms=GSSAPI", "sasl.enabled.mechanisms"),
])
def test_bad_config_file_is_a_startup_error_naming_the_key(tmp_path, line, key):
    import subprocess

    from brokerproc import BrokerProcess

    cfg = tmp_path / "server.properties"
    cfg.write_text(f"# test\n{line}\n")
    cmd = BrokerProcess(tmp_path / "b").command() + ["--config", str(cfg)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2, done.stderr
    assert key in done.stderr, done.stderr


def test_message_max_bytes_is_enforced_and_the_connection_stays_usable(broker_factory, tmp_path):
    b = broker_factory()
    cfg = tmp_path / "server.properties"
    cfg.write_text("message.max.bytes=10000\n")
    b.extra_args = ["--config", str(cfg)]
    b.start()
    now = 1_700_000_000_000
    r = w.request(b.port, w.API_CREATE_TOPICS, 4, w.create_topics_v4_body("big", 1))
    assert w.parse_create_topics_v4(r)[0][1] == 0
    s = w.connect(b.port)
    try:
        big = w.record_batch([bytes(20_000)], now)
        r = w.request(b.port, w.API_PRODUCE, 7, w.produce_v7_body("big", 0, big), s=s)
        ((_, _, err, _),) = w.parse_produce_v7(r)
        assert err == 10  # MESSAGE_TOO_LARGE
        small = w.record_batch([bytes(100)], now)
        r = w.request(b.port, w.API_PRODUCE, 7, w.produce_v7_body("big", 0, small), correlation_id=2, s=s)
        ((_, _, err, base),) = w.parse_produce_v7(r)
        assert (err, base) == (0, 0), "the oversized batch was appended or broke the connection"
    finally:
        s.close()
