"""Starting and stopping the broker under test: the millrace binary, or Apache Kafka.

TEST_BROKER selects which (``millrace``, the default, or ``kafka``). Both run in the foreground as
one child process on a free loopback port with their own data directory, so a test can SIGTERM,
SIGKILL and restart them on the same data directory and port. millrace also gets a free loopback
port of its own for its HTTP metrics listener (``millrace.metrics.listen``, by default the fixed
127.0.0.1:9644, on which a second broker on this host would fail to bind).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def broker_kind() -> str:
    kind = os.environ.get("TEST_BROKER", "millrace").strip().lower()
    if kind not in ("millrace", "kafka"):
        raise ValueError(f"TEST_BROKER must be 'millrace' or 'kafka', not {kind!r}")
    return kind


# Ports below the kernel's ephemeral range (32768+ here): an outgoing connection of any client
# can take an ephemeral port as its local port, and would then block a broker restarting on it.
PORT_RANGE = (20000, 32000)


def free_port() -> int:
    import random

    for _ in range(200):
        port = random.randrange(*PORT_RANGE)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORT_RANGE}")


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# Every broker this test process created, in order: conftest's report hook appends the logs
# of those a failed test created or saw die, so a failure in CI shows why a broker went away.
CREATED: list["BrokerProcess"] = []


class BrokerProcess:
    """One broker process. ``start`` may be called again after ``stop``/``kill9`` (same port and
    data directory), which is how the durability tests restart it."""

    def __init__(self, data_dir: Path, port: int | None = None, kind: str | None = None):
        CREATED.append(self)
        self.kind = kind or broker_kind()
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        # millrace's metrics listener (millrace.metrics.listen), kept across restarts like the
        # port; None for Kafka, which has no such key.
        self.metrics_port: int | None = None
        # Its REST proxy (millrace.rest.listen, default 127.0.0.1:8082) likewise.
        self.rest_port: int | None = None
        # Its schema registry (millrace.schema.registry.listen, default 127.0.0.1:8081) too.
        self.registry_port: int | None = None
        if self.kind == "millrace":
            self.metrics_port = free_port()
            while self.metrics_port == self.port:
                self.metrics_port = free_port()
            self.rest_port = free_port()
            while self.rest_port in (self.port, self.metrics_port):
                self.rest_port = free_port()
            self.registry_port = free_port()
            while self.registry_port in (self.port, self.metrics_port, self.rest_port):
                self.registry_port = free_port()
        # Kafka's controller listener port (bench/peers/apache-kafka.sh --controller-port), for
        # a test that rewrites `listeners` and must name it; None: the script picks one.
        self.controller_port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.extra_args: list[str] = []  # appended to millrace's command line
        # Broker settings both kinds take: millrace as --override, Kafka in server.properties
        # (through bench/peers/apache-kafka.sh's KAFKA_EXTRA_PROPERTIES).
        self.properties: dict[str, str] = {}
        # The "127.0.0.1:PORT" given to clients in Metadata, when it is not the broker's own (a
        # proxy in front of it); None: the listen address.
        self.advertise: str | None = None
        self.log_path = self.data_dir / f"{self.kind}-stdout.log"
        self.starts = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str | None:
        """millrace's Prometheus endpoint; None for Kafka."""
        if self.metrics_port is None:
            return None
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def command(self) -> list[str]:
        if self.kind == "kafka":
            cmd = [str(REPO / "bench/peers/apache-kafka.sh"), "--port", str(self.port),
                   "--data-dir", str(self.data_dir)]
            if self.advertise is not None:
                host, _, port = self.advertise.rpartition(":")
                if host != "127.0.0.1":
                    raise ValueError(f"Kafka is advertised on 127.0.0.1 only, not {host!r}")
                cmd += ["--advertised-port", port]
            if self.controller_port is not None:
                cmd += ["--controller-port", str(self.controller_port)]
            return cmd
        binary = os.environ.get("MILLRACE_BIN", str(REPO / "target/release/millrace"))
        if not os.access(binary, os.X_OK):
            raise RuntimeError(
                f"millrace binary {binary} not found: build it (cargo build --release), set "
                "MILLRACE_BIN, or run against Apache Kafka with TEST_BROKER=kafka")
        addr = self.bootstrap
        return [binary, "--listen", addr, "--advertise", self.advertise or addr,
                "--data-dir", str(self.data_dir / "millrace-data"), "--cores", "2",
                "--override", f"millrace.metrics.listen=127.0.0.1:{self.metrics_port}",
                "--override", f"millrace.rest.listen=127.0.0.1:{self.rest_port}",
                "--override", f"millrace.schema.registry.listen=127.0.0.1:{self.registry_port}",
                *[a for k, v in self.properties.items() for a in ("--override", f"{k}={v}")],
                *self.extra_args]

    def start(self) -> "BrokerProcess":
        assert self.proc is None or self.proc.poll() is not None, "broker already running"
        cmd = self.command()
        log = open(self.log_path, "ab")
        log.write(f"\n=== start #{self.starts}: {' '.join(cmd)}\n".encode())
        log.flush()
        # A new session, so that kill9 reaches the JVM even through the Kafka wrapper's exec.
        env = dict(os.environ)
        if self.kind == "kafka" and self.properties:
            # One per line, ending with a newline: values may hold spaces (sasl.jaas.config).
            env["KAFKA_EXTRA_PROPERTIES"] = "".join(f"{k}={v}\n" for k, v in self.properties.items())
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        log.close()
        self.starts += 1
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode} before "
                                   f"listening; log:\n{self.log_tail()}")
            if port_accepts(self.port):
                return self
            time.sleep(0.05)
        self.kill9()
        raise RuntimeError(f"{self.kind} not listening on {self.port} after {READY_TIMEOUT_S}s;"
                           f" log:\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_S. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill9()
        return self.proc.returncode

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT_S)
        self._wait_port_free()

    def _wait_port_free(self) -> None:
        ports = [p for p in (self.port, self.metrics_port, self.rest_port, self.registry_port)
                 if p is not None]
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline and any(port_accepts(p) for p in ports):
            time.sleep(0.05)

    def log_tail(self, lines: int = 40) -> str:
        text = ""
        for path in (self.log_path, self.data_dir / "server.log"):
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                text += f"--- {path}\n" + "\n".join(tail) + "\n"
        return text
