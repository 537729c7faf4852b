"""Memory stays bounded under hostile clients: a connection that declares a large frame and then
sends little must not make the broker reserve the declared size. Measured from the broker's
virtual size (/proc/PID/status VmSize): a zeroed allocation is mapped lazily, so resident memory
would not show it, but the reservation is what a few hundred such connections exhaust.
"""

from __future__ import annotations

import socket
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
