"""Network namespaces for cutting a node off the network (needs root and iproute2).

Each node runs in its own namespace with one veth link to a bridge in the test's namespace:
node i is 10.77.0.(10+i), the bridge (and so the test's clients) 10.77.0.1. Cutting a node
sets its link down: it can reach nobody and nobody can reach it, while its process runs on
(unlike SIGSTOP, its timers, sessions and leaderships go on believing). A test thread can
enter a node's namespace (`enter`) to talk to that node while it is cut off, as a client on
its side of the cut would.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess

CLONE_NEWNET = 0x40000000
SUBNET = "10.77.0"


def available() -> str | None:
    """None when namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "no ip (iproute2)"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


class Netns:
    def __init__(self, ids: list[int]):
        tag = f"mr{os.getpid() % 100000}"
        self.bridge = f"{tag}b"
        self.ids = list(ids)
        self.ns = {i: f"{tag}n{i}" for i in ids}
        self.host_link = {i: f"{tag}h{i}" for i in ids}
        self.made: list[str] = []

    def host(self, node_id: int) -> str:
        return f"{SUBNET}.{10 + node_id}"

    def setup(self) -> None:
        """Creates the bridge and one namespace per node; raises (after undoing what it made)
        when the kernel refuses."""
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            self.made.append("bridge")
            _ip("addr", "add", f"{SUBNET}.1/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for i in self.ids:
                ns, h, inner = self.ns[i], self.host_link[i], f"{self.host_link[i]}c"
                _ip("netns", "add", ns)
                self.made.append(ns)
                _ip("link", "add", h, "type", "veth", "peer", "name", inner)
                _ip("link", "set", inner, "netns", ns)
                _ip("link", "set", h, "master", self.bridge)
                _ip("link", "set", h, "up")
                _ip("-n", ns, "addr", "add", f"{self.host(i)}/24", "dev", inner)
                _ip("-n", ns, "link", "set", inner, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self.teardown()
            raise

    def command(self, node_id: int, cmd: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns[node_id], *cmd]

    def cut(self, node_id: int) -> None:
        _ip("link", "set", self.host_link[node_id], "down")

    def heal(self, node_id: int) -> None:
        _ip("link", "set", self.host_link[node_id], "up")

    def enter(self, node_id: int) -> None:
        """Moves the calling thread (only it) into the node's namespace: sockets it opens from
        then on are on the node's side of any cut."""
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        fd = os.open(f"/var/run/netns/{self.ns[node_id]}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns into {self.ns[node_id]}: {os.strerror(err)}")
        finally:
            os.close(fd)

    def teardown(self) -> None:
        for name in reversed(self.made):
            if name == "bridge":
                subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
            else:
                subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self.made.clear()
