"""max.connections: at the bound the broker serves no new connection until one closes.

The broker accepts the next connection and holds it unserved (as Kafka's acceptor does), so the
client sees a TCP connection whose requests get no answer; once a connection closes, the held
one is served. The count is broker-wide although connections land on both shards.
"""

from __future__ import annotations

import socket

import pytest

import kwire as w

pytestmark = pytest.mark.millrace_only

MAX_CONNECTIONS = 4
# Answers to connections within the bound; generous, since a slot freed by the start-up probe's
# connection is released asynchronously.
ANSWER_TIMEOUT_S = 10.0
# How long a connection over the bound must stay unanswered.
HELD_WAIT_S = 1.5


def send_api_versions(s: socket.socket, correlation_id: int) -> None:
    s.sendall(w.frame(w.header_v1(w.API_API_VERSIONS, 0, correlation_id)))


def assert_answered(s: socket.socket, correlation_id: int) -> None:
    s.settimeout(ANSWER_TIMEOUT_S)
    payload = w.recv_frame(s)
    assert payload is not None, "connection closed instead of answering ApiVersions"
    r = w.Reader(payload)
    assert r.i32() == correlation_id
    error, versions = w.parse_api_versions_v0_body(r)
    assert error == 0 and w.API_API_VERSIONS in versions


def test_connections_over_the_bound_wait_for_a_close(broker_factory, tmp_path):
    b = broker_factory()
    cfg = tmp_path / "server.properties"
    cfg.write_text(f"max.connections={MAX_CONNECTIONS}\n")
    b.extra_args = ["--config", str(cfg)]
    b.start()
    held = []
    try:
        for i in range(MAX_CONNECTIONS):
            s = w.connect(b.port)
            held.append(s)
            send_api_versions(s, 100 + i)
            assert_answered(s, 100 + i)

        extra = w.connect(b.port)  # the kernel completes the handshake; the broker holds it
        held.append(extra)
        send_api_versions(extra, 200)
        extra.settimeout(HELD_WAIT_S)
        with pytest.raises(socket.timeout):
            data = extra.recv(1)
            pytest.fail(f"connection over max.connections got {data!r} instead of waiting")

        held.pop(0).close()
        assert_answered(extra, 200)  # the held connection takes the freed slot

        # Back at the bound: one more close, and a brand-new connection is served.
        held.pop(0).close()
        fresh = w.connect(b.port)
        held.append(fresh)
        send_api_versions(fresh, 300)
        assert_answered(fresh, 300)
    finally:
        for s in held:
            s.close()
    assert b.alive(), b.log_tail()
    assert "max.connections reached" in b.log_tail(200)
