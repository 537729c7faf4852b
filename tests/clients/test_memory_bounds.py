"""Memory stays bounded under hostile clients: a connection that declares a large frame and then
sends little must not make the broker reserve the declared size. Measured from the broker's
virtual size (/proc/PID/status VmSize): a zeroed allocation is mapped lazily, so resident memory
would not show it, but the reservation is what a few hundred such connections exhaust.
"""

from __future__ import annotations

import socket
import urllib.request
import struct
import time

import pytest

import kwire as w

pytestmark = pytest.mark.millrace_only

CONNECTIONS = 20
DECLARED_BYTES = 90 * 1024 * 1024  # under socket.request.max.bytes (100 MiB), so it is accepted
GROWTH_LIMIT_BYTES = 256 * 1024 * 1024  # far below CONNECTIONS x DECLARED_BYTES (1.8 GB)


def vm_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmSize line")


def test_declared_but_unsent_frames_do_not_hold_memory(broker):
    before = vm_bytes(broker.proc.pid)
    socks = []
    try:
        for _ in range(CONNECTIONS):
            s = socket.create_connection(("127.0.0.1", broker.port), timeout=5)
            # size prefix, then the first 10 bytes of a header: the rest never comes
            s.sendall(struct.pack(">i", DECLARED_BYTES) + bytes(10))
            socks.append(s)
        time.sleep(1.0)
        grown = vm_bytes(broker.proc.pid) - before
        assert grown < GROWTH_LIMIT_BYTES, f"virtual size grew by {grown} bytes for {CONNECTIONS} idle frames"
        error, _ = w.api_versions_v0(broker.port)
        assert error == 0
    finally:
        for s in socks:
            s.close()


def held_request_bytes(broker) -> float:
    with urllib.request.urlopen(broker.metrics_url, timeout=10) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("kafka_network_socketserver_memorypoolused "):
                return float(line.split()[1])
    raise AssertionError("no kafka_network_socketserver_memorypoolused sample")


def long_poll_fetch(correlation_id: int, topic: str, padding: int, wait_ms: int) -> bytes:
    """A Fetch v12 frame that waits up to `wait_ms` for a megabyte from `topic` partition 0
    at offset 0, padded with an unknown tagged field in its header (which the broker skips)."""
    tag = w.uvarint(1) + w.uvarint(9999) + w.uvarint(padding) + bytes(padding)
    header = w.header_v1(1, 12, correlation_id) + tag
    partition = (w.i32(0) + w.i32(-1) + w.i64(0) + w.i32(-1) + w.i64(-1) + w.i32(1 << 20)
                 + w.uvarint(0))
    body = (w.i32(-1) + w.i32(wait_ms) + w.i32(1 << 20) + w.i32(1 << 20) + w.i8(0)
            + w.i32(0) + w.i32(-1)
            + w.uvarint(2) + w.compact_string(topic) + w.uvarint(2) + partition + w.uvarint(0)
            + w.uvarint(1) + w.compact_string("") + w.uvarint(0))
    return w.frame(header + body)


def test_a_shard_holding_its_request_bytes_reads_no_more_until_one_is_answered(broker_factory):
    """queued.max.request.bytes: with one shard and a 2 MiB bound, two long polls of 1.5 MB
    hold the share (the second is let in although it takes the total over), so the next
    request is not handled until one of them is answered."""
    b = broker_factory()
    b.properties.update({
        "millrace.cores": "1",
        "socket.request.max.bytes": str(2 << 20),
        "queued.max.request.bytes": str(2 << 20),
    })
    b.start()
    with w.connect(b.port) as s:
        error, _ = w.create_topic_v7(s, "memory-bounds", "held", 1)
        assert error == 0
    polls = []
    try:
        for i in range(2):
            s = w.connect(b.port)
            # The first gives up after 4 s, the second after 10 s.
            s.sendall(long_poll_fetch(100 + i, "held", 1_500_000, [4_000, 10_000][i]))
            polls.append(s)
            assert w.wait_until(lambda: held_request_bytes(b) >= 1_500_000 * (i + 1)), \
                f"long poll {i} was not let in"
        with w.connect(b.port) as probe:
            probe.sendall(w.frame(w.header_v1(w.API_API_VERSIONS, 0, 7)))
            probe.settimeout(1.0)
            with pytest.raises(socket.timeout):
                probe.recv(1)  # held back while the share is used up
            # The first long poll's answer gives its bytes back, and the probe is handled.
            polls[0].settimeout(30)
            answer = w.recv_frame(polls[0])
            assert answer is not None and answer[:4] == w.i32(100)
            probe.settimeout(30)
            payload = w.recv_frame(probe)
            assert payload is not None and payload[:4] == w.i32(7)
    finally:
        for s in polls:
            s.close()
    assert w.wait_until(lambda: held_request_bytes(b) == 0), "request bytes stayed held"
