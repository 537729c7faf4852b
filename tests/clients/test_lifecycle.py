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
