"""A cluster of broker processes on loopback: millrace nodes or Apache Kafka KRaft nodes.

``Cluster(kind, n=3, tmp)`` gives every node a broker port and a controller port (free, below
the ephemeral range; millrace nodes also one for their HTTP metrics listener,
``millrace.metrics.listen``), a data directory and a rack (``a``, ``b``, ``c``...), writes each
node's properties with Kafka's KRaft keys and a static voter set, and starts, stops (SIGTERM),
kills (SIGKILL), pauses (SIGSTOP), resumes, restarts and wipes single nodes.

millrace nodes run as ``millrace --config nodeN.properties``. Kafka nodes run through
bench/peers/apache-kafka-cluster.sh, which formats a node's log directory with the cluster's id
on first start. Both run in the foreground as the direct child (the Kafka wrapper execs the JVM),
so a signal reaches the broker itself.

Observations go through raw requests to one chosen node (cwire.py): Metadata and DescribeCluster
on the broker port, DescribeQuorum on the controller port (what ``kafka-metadata-quorum
--bootstrap-controller`` sends), and the Java AdminClient's describeMetadataQuorum as a second
opinion (java/Quorum.java).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import cwire as c

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "clients"))
from brokerproc import REPO, free_port, port_accepts  # noqa: E402

HERE = Path(__file__).resolve().parent
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colours in millrace's log lines
JAVA_DEPS = REPO / ".deps/java"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
READY_TIMEOUT_S = 60.0

# Failure-detection settings shared by both kinds (Kafka's defaults in brackets). The tests'
# time bounds are derived from these.
HEARTBEAT_INTERVAL_MS = 500  # [2000]
SESSION_TIMEOUT_MS = 3000  # [9000]
ELECTION_TIMEOUT_MS = 1000  # [1000]
FETCH_TIMEOUT_MS = 2000  # [2000]
REQUEST_TIMEOUT_MS = 2000  # [2000]
OFFSETS_PARTITIONS = 6
# How long a follower may stay behind before its leader drops it from the ISR (test_replication).
# Well below the session timeout on purpose: with both at 3 s, Kafka fenced a SIGSTOPped
# follower (and so took it out of the ISR) before its leader's lag check did, and at 1.5 s the
# two still raced; at 1 s the leaders drop it first.
REPLICA_LAG_TIME_MAX_MS = 1000  # [30000]

COMMON_PROPS = {
    "broker.heartbeat.interval.ms": str(HEARTBEAT_INTERVAL_MS),
    "broker.session.timeout.ms": str(SESSION_TIMEOUT_MS),
    "controller.quorum.election.timeout.ms": str(ELECTION_TIMEOUT_MS),
    "controller.quorum.fetch.timeout.ms": str(FETCH_TIMEOUT_MS),
    "controller.quorum.request.timeout.ms": str(REQUEST_TIMEOUT_MS),
    "controller.quorum.retry.backoff.ms": "20",
    "auto.create.topics.enable": "false",
    "num.partitions": "1",
    "default.replication.factor": "1",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": str(OFFSETS_PARTITIONS),
    "group.initial.rebalance.delay.ms": "0",
}


def cluster_kind() -> str:
    kind = os.environ.get("TEST_BROKER", "millrace").strip().lower()
    if kind not in ("millrace", "kafka"):
        raise ValueError(f"TEST_BROKER must be 'millrace' or 'kafka', not {kind!r}")
    return kind


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (22 characters).
    Like Kafka's Uuid.randomUuid, never one starting with '-', which command-line parsers
    (kafka-storage format --cluster-id) take for an option."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def wait_for(predicate, timeout_s: float, interval_s: float = 0.1, what: str = "condition"):
    """Polls predicate until it returns a truthy value (returned) or raises TimeoutError.
    Exceptions inside predicate count as "not yet" (a node may be restarting)."""
    deadline = time.monotonic() + timeout_s
    last_error = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (OSError, AssertionError, ConnectionError) as e:
            last_error = e
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached in {timeout_s}s (last error: {last_error!r})")
        time.sleep(interval_s)


class Node:
    def __init__(self, cluster: "Cluster", node_id: int, port: int | None,
                 controller_port: int | None, metrics_port: int | None = None,
                 rest_port: int | None = None, registry_port: int | None = None):
        self.cluster = cluster
        self.node_id = node_id
        # None for a controller-only node (process.roles=controller: no client listener).
        self.port = port
        # None for a broker-only node (process.roles=broker: an observer of the quorum).
        self.controller_port = controller_port
        # millrace's HTTP metrics listener (millrace.metrics.listen; its default 127.0.0.1:9644
        # would collide between nodes), chosen once so that it stays across restarts. None for
        # Kafka, which has no such key.
        self.metrics_port: int | None = None
        # Its REST proxy (millrace.rest.listen) and schema registry
        # (millrace.schema.registry.listen), the same way.
        self.rest_port: int | None = None
        self.registry_port: int | None = None
        if cluster.kind == "millrace":
            self.metrics_port = metrics_port or free_port()
            self.rest_port = rest_port or free_port()
            self.registry_port = registry_port or free_port()
        self.rack = chr(ord("a") + node_id - 1)
        self.dir = cluster.tmp / f"node{node_id}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.paused = False
        self.starts = 0
        self.stdout_path = self.dir / "stdout.log"

    def __repr__(self):
        return f"Node({self.node_id}, port {self.port})"

    @property
    def host(self) -> str:
        """Where the node listens: 127.0.0.1, or its address in its own network namespace."""
        net = self.cluster.netns
        return net.host(self.node_id) if net else "127.0.0.1"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def metrics_url(self) -> str | None:
        """millrace's Prometheus endpoint on this node; None for Kafka."""
        if self.metrics_port is None:
            return None
        return f"http://{self.host}:{self.metrics_port}/metrics"

    @property
    def is_voter(self) -> bool:
        return self.controller_port is not None

    @property
    def is_broker(self) -> bool:
        return self.port is not None

    @property
    def roles(self) -> str:
        return ",".join(r for r, on in (("broker", self.is_broker),
                                        ("controller", self.is_voter)) if on)

    @property
    def log_dir(self) -> Path:
        """The node's data (log.dirs): what wipe() deletes."""
        return self.dir / ("kafka-logs" if self.cluster.kind == "kafka" else "data")

    # --- configuration ---------------------------------------------------------------------------

    def properties(self) -> dict[str, str]:
        """The node's properties, the same keys for both kinds (Kafka's wrapper adds its own
        test defaults first; these override them)."""
        listeners = []
        if self.is_broker:
            listeners.append(f"PLAINTEXT://{self.host}:{self.port}")
        if self.is_voter:
            listeners.append(f"CONTROLLER://{self.host}:{self.controller_port}")
        props = {
            "process.roles": self.roles,
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.cluster.voters,
            "listeners": ",".join(listeners),
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.log_dir),
            "broker.rack": self.rack,
            **COMMON_PROPS,
        }
        if self.is_broker:
            props["advertised.listeners"] = f"PLAINTEXT://{self.host}:{self.port}"
            props["inter.broker.listener.name"] = "PLAINTEXT"
        props["replica.lag.time.max.ms"] = str(REPLICA_LAG_TIME_MAX_MS)
        if self.cluster.kind == "millrace":
            props["millrace.cores"] = "1"
            props["millrace.pin.cores"] = "false"
            props["millrace.metrics.listen"] = f"{self.host}:{self.metrics_port}"
            if self.is_broker:
                props["millrace.rest.listen"] = f"{self.host}:{self.rest_port}"
                props["millrace.schema.registry.listen"] = f"{self.host}:{self.registry_port}"
            else:
                props["millrace.rest.listen"] = ""
                props["millrace.schema.registry.listen"] = ""
        props.update(self.cluster.overrides)
        if self.cluster.node_props:
            self.cluster.node_props(self, props)
        return props

    def command(self) -> list[str]:
        props = self.properties()
        if self.cluster.kind == "kafka":
            cmd = [str(REPO / "bench/peers/apache-kafka-cluster.sh"),
                   "--node-id", str(self.node_id), "--voters", self.cluster.voters,
                   "--port", str(self.port or free_port()),
                   "--controller-port", str(self.controller_port or free_port()),
                   "--data-dir", str(self.dir), "--cluster-id", self.cluster.cluster_id,
                   "--rack", self.rack]
            for k, v in props.items():
                cmd += ["--prop", f"{k}={v}"]
            return cmd
        binary = os.environ.get("MILLRACE_BIN", str(REPO / "target/release/millrace"))
        if not os.access(binary, os.X_OK):
            raise RuntimeError(f"millrace binary {binary} not found: cargo build --release, set "
                               "MILLRACE_BIN, or run against Kafka with TEST_BROKER=kafka")
        path = self.dir / f"node{self.node_id}.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return [binary, "--config", str(path)]

    def accepts(self, port: int) -> bool:
        if self.host == "127.0.0.1":
            return port_accepts(port)
        try:
            with socket.create_connection((self.host, port), timeout=0.5):
                return True
        except OSError:
            return False

    def launch_command(self) -> list[str]:
        cmd = self.command()
        net = self.cluster.netns
        return net.command(self.node_id, cmd) if net else cmd

    # --- process control -------------------------------------------------------------------------

    def launch(self) -> None:
        """Starts the process without waiting for it to listen."""
        assert not self.alive(), f"{self} already running"
        cmd = self.launch_command()
        with open(self.stdout_path, "ab") as log:
            log.write(f"\n=== start #{self.starts} at {time.time():.3f}: {' '.join(cmd)}\n"
                      .encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.paused = False
        self.starts += 1

    def unfenced_since_start(self) -> bool:
        """True once this node's latest start logged its broker's first unfencing (millrace:
        the lifecycle's "fenced=false" after this start's marker in stdout.log; Kafka: one
        "Transition from STARTING to STARTED" per start in server.log, logged once the broker
        was first unfenced)."""
        if self.cluster.kind == "kafka":
            log = self.dir / "server.log"
            text = log.read_text(errors="replace") if log.exists() else ""
            return text.count("Transition from STARTING to STARTED") >= self.starts
        text = ANSI.sub("", self.stdout_path.read_text(errors="replace"))
        at = text.rfind(f"=== start #{self.starts - 1} ")
        return at >= 0 and "fenced=false" in text[at:]

    def wait_listening(self, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self} exited with {self.proc.returncode} before listening;"
                                   f"\n{self.log_tail()}")
            if self.accepts(self.port if self.is_broker else self.controller_port):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self} not listening after {timeout_s}s\n{self.log_tail()}")

    def start(self, wait: bool = True) -> "Node":
        self.launch()
        if wait:
            self.wait_listening()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def running(self) -> bool:
        """Alive and not paused: expected to answer requests."""
        return self.alive() and not self.paused

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM (a clean shutdown), SIGKILL if it has not exited after timeout_s."""
        if not self.alive():
            return self.proc.returncode if self.proc else None
        self.resume()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill9()
        self._wait_ports_free()
        return self.proc.returncode

    def kill9(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT_S)
        self.paused = False
        self._wait_ports_free()

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets but answers nothing (a stalled node)."""
        assert self.alive()
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        if self.alive() and self.paused:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def restart(self) -> "Node":
        self.stop()
        return self.start()

    def wipe(self) -> None:
        """Deletes the node's data directory (the node must be down)."""
        assert not self.alive(), "wipe a stopped node"
        shutil.rmtree(self.log_dir, ignore_errors=True)

    def _wait_ports_free(self) -> None:
        ports = [p for p in (self.port, self.controller_port, self.metrics_port, self.rest_port,
                             self.registry_port) if p is not None]
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline and any(self.accepts(p) for p in ports):
            time.sleep(0.05)

    # --- logs ------------------------------------------------------------------------------------

    def log_files(self) -> list[Path]:
        return [p for p in (self.stdout_path, self.dir / "server.log") if p.exists()]

    def log_tail(self, lines: int = 40) -> str:
        out = ""
        for path in self.log_files():
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            out += f"--- {path}\n" + "\n".join(t[:300] for t in tail) + "\n"
        return out


class Cluster:
    def __init__(self, kind: str, n: int = 3, tmp: Path | None = None,
                 overrides: dict[str, str] | None = None, observers: int = 0,
                 controller_only: bool = False, netns=None, node_props=None):
        """`n` voters (process.roles=broker,controller; =controller with controller_only)
        with ids 1..n, then `observers` broker-only nodes (process.roles=broker) with the
        next ids."""
        self.kind = kind
        # A netns.Netns: every node in its own network namespace (cut with netns.cut).
        self.netns = netns
        self.tmp = Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.overrides = dict(overrides or {})
        # node_props(node, props): edits a node's properties last (per-node listeners, keys).
        self.node_props = node_props
        self.cluster_id = new_cluster_id()
        ports = set()
        while len(ports) < 2 * n + observers:
            ports.add(free_port())
        # Three HTTP ports per node (metrics, REST proxy, schema registry; millrace nodes
        # only), distinct from the others.
        http_ports: list[int] = []
        while len(http_ports) < 3 * (n + observers):
            port = free_port()
            if port not in ports and port not in http_ports:
                http_ports.append(port)
        self.assigned_ports = ports | set(http_ports)
        ports = sorted(ports)
        self.nodes = [Node(self, i + 1, None if controller_only else ports[2 * i],
                           ports[2 * i + 1], *http_ports[3 * i:3 * i + 3])
                      for i in range(n)]
        self.nodes += [Node(self, n + i + 1, ports[2 * n + i], None,
                            *http_ports[3 * (n + i):3 * (n + i) + 3]) for i in range(observers)]
        self.voters = ",".join(f"{x.node_id}@{x.host}:{x.controller_port}"
                               for x in self.nodes if x.is_voter)
        for x in self.nodes:
            for port in (x.port, x.controller_port):
                if port is not None and x.host != "127.0.0.1":
                    c.HOSTS[port] = x.host
        self._java_classes: Path | None = None

    def __repr__(self):
        return f"Cluster({self.kind}, {[x.node_id for x in self.nodes]})"

    # --- lifecycle -------------------------------------------------------------------------------

    def node(self, node_id: int) -> Node:
        return self.nodes[node_id - 1]

    @property
    def ids(self) -> set[int]:
        return {x.node_id for x in self.nodes}

    @property
    def broker_ids(self) -> set[int]:
        return {x.node_id for x in self.nodes if x.is_broker}

    def running(self) -> list[Node]:
        return [x for x in self.nodes if x.running()]

    def running_brokers(self) -> list[Node]:
        return [x for x in self.running() if x.is_broker]

    def bootstrap(self, nodes: list[Node] | None = None) -> str:
        return ",".join(x.bootstrap for x in (nodes or self.running_brokers()))

    def start(self, ready: bool = True) -> "Cluster":
        """Starts every node that is not running, all at once (a KRaft node needs a quorum
        to finish starting, so they cannot be started one after another)."""
        down = [x for x in self.nodes if not x.alive()]
        for x in down:
            x.launch()
        for x in down:
            x.wait_listening()
        for x in self.nodes:
            x.resume()
        if ready:
            self.wait_ready()
            # Metadata still lists a restarted broker under its old registration until the new
            # one commits (which fences it for a moment): wait for this start's own unfencing.
            for x in down:
                if x.is_broker:
                    wait_for(x.unfenced_since_start, READY_TIMEOUT_S,
                             what=f"{x} registered and unfenced")
        return self

    def stop(self) -> None:
        """SIGTERM to every node at once, then waits for all (kill -9 after the timeout)."""
        for x in self.nodes:
            x.resume()
            if x.alive():
                x.proc.send_signal(signal.SIGTERM)
        for x in self.nodes:
            x.stop()

    def kill_all(self) -> None:
        for x in self.nodes:
            x.kill9()

    def heal(self) -> None:
        """Brings every node back (resume the paused, start the dead) and waits until ready."""
        for x in self.nodes:
            x.resume()
        self.start(ready=True)

    # --- observation -----------------------------------------------------------------------------

    def registered_brokers(self, node: Node) -> set[int]:
        return set(c.metadata(node.port, topics=[]).brokers)

    def spare_port(self) -> int:
        """A free port none of the cluster's nodes was given (they bind theirs only when they
        start, so free_port alone may hand out one of them), for a listener a test adds."""
        while True:
            port = free_port()
            if port not in self.assigned_ports:
                self.assigned_ports.add(port)
                return port

    def is_ready(self, expect: set[int] | None = None) -> bool:
        expect = self.broker_ids if expect is None else expect
        live = self.running_brokers()
        if not live:
            return False
        for x in live:
            if self.registered_brokers(x) != expect:
                return False
        return self.active_controller() is not None

    def wait_ready(self, expect: set[int] | None = None,
                   timeout_s: float = READY_TIMEOUT_S) -> float:
        """Waits until every running node's Metadata lists exactly `expect` (default: all
        nodes) and the quorum has a leader. Returns the seconds it took."""
        t0 = time.monotonic()
        wait_for(lambda: self.is_ready(expect), timeout_s,
                 what=f"{self} ready with brokers {sorted(expect or self.broker_ids)}")
        return time.monotonic() - t0

    def quorum(self, via: list[Node] | None = None) -> c.QuorumInfo | None:
        """DescribeQuorum from the first running node whose controller answers without error
        (Kafka answers NOT_LEADER_OR_FOLLOWER on a follower's controller listener; the leader
        answers). None when no running node knows a leader."""
        for x in via or self.running():
            if not x.is_voter:
                continue
            try:
                q = c.describe_quorum(x.controller_port)
            except (OSError, ConnectionError, AssertionError):
                # A secured controller listener (test_secure_cluster): ask its client
                # listener, which forwards DescribeQuorum to the active controller.
                if x.port is None:
                    continue
                try:
                    q = c.describe_quorum(x.port)
                except (OSError, ConnectionError, AssertionError):
                    continue
            if q.error == c.NONE and q.leader_id >= 0:
                return q
        return None

    def active_controller(self) -> int | None:
        q = self.quorum()
        if q is None or q.leader_id not in self.ids:
            return None
        if not self.node(q.leader_id).running():
            return None
        return q.leader_id

    def wait_active_controller(self, not_id: int | None = None, timeout_s: float = 30.0) -> int:
        def found():
            leader = self.active_controller()
            return leader if leader is not None and leader != not_id else None
        return wait_for(found, timeout_s, what="an active controller")

    def java_quorum(self, nodes: list[Node] | None = None) -> dict:
        """describeMetadataQuorum through the Java AdminClient (bootstrap.controllers):
        {"leader": id, "epoch": e, "hw": h, "voters": {id: leo}, "observers": {id: leo}}."""
        classes = self._compile_java()
        controllers = ",".join(f"{x.host}:{x.controller_port}" for x in nodes or self.running()
                               if x.is_voter)
        proc = subprocess.run(
            ["java", "-XX:TieredStopAtLevel=1", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
             "-cp", f"{JAVA_DEPS}/*:{classes}", "Quorum", controllers],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        if proc.returncode != 0 or not line.startswith("leader="):
            raise RuntimeError(f"Quorum.java failed ({proc.returncode}): {line}\n"
                               f"{proc.stderr[-2000:]}")
        out = {}
        for part in line.split():
            key, _, value = part.partition("=")
            if key in ("voters", "observers"):
                out[key] = {int(a): int(b) for a, b in
                            (r.split(":") for r in value.split(",") if r)}
            else:
                out[key] = int(value)
        return out

    def _compile_java(self) -> Path:
        if self._java_classes is None:
            out = self.tmp / "java-classes"
            out.mkdir(exist_ok=True)
            subprocess.run(["javac", "-d", str(out), "-cp", f"{JAVA_DEPS}/*",
                            str(HERE / "java/Quorum.java")], check=True, timeout=120)
            self._java_classes = out
        return self._java_classes

    def leaders(self, topic: str, via: Node | None = None) -> dict[int, int]:
        """{partition: leader id} as `via` (default: the first running node) reports it."""
        via = via or self.running_brokers()[0]
        t = c.metadata(via.port, [topic]).topics[topic]
        return {p: pm.leader for p, pm in t.partitions.items()}

    def create_topic(self, topic: str, partitions: int, via: Node | None = None,
                     configs: dict[str, str] | None = None, replication_factor: int = 1,
                     timeout_s: float = 30.0) -> None:
        """Creates a topic through `via` and waits until every running node reports a leader
        for every partition."""
        via = via or self.running_brokers()[0]
        res = c.create_topics(via.port, {topic: partitions}, configs=configs,
                              replication_factor=replication_factor)
        assert res[topic][0] == c.NONE, f"CreateTopics {topic} via {via}: {res}"
        self.wait_topic_everywhere(topic, partitions, timeout_s)

    def wait_topic_everywhere(self, topic: str, partitions: int,
                              timeout_s: float = 30.0) -> float:
        t0 = time.monotonic()

        def everywhere():
            for x in self.running_brokers():
                t = c.metadata(x.port, [topic]).topics.get(topic)
                if t is None or t.error != c.NONE or len(t.partitions) != partitions:
                    return False
                if any(pm.leader < 0 for pm in t.partitions.values()):
                    return False
            # Kafka updates a broker's metadata cache a moment before its replica manager
            # takes leadership: until then the leader answers NOT_LEADER_OR_FOLLOWER. Ready
            # means each leader serves its partition too.
            if topic.startswith("__"):
                return True
            for p, pm in t.partitions.items():
                leader = self.node(pm.leader)
                if leader.running() and c.list_offset(leader.port, topic, p)[0] != c.NONE:
                    return False
            return True
        wait_for(everywhere, timeout_s, what=f"{topic} with {partitions} led and served "
                                              "partitions on every node")
        return time.monotonic() - t0

    def node_of_port(self, port: int) -> Node:
        return next(x for x in self.nodes if x.port == port)

    # --- logs ------------------------------------------------------------------------------------

    def collect_logs(self, dest: Path) -> Path:
        dest.mkdir(parents=True, exist_ok=True)
        for x in self.nodes:
            for path in x.log_files() + list(x.dir.glob("*.properties")):
                shutil.copy(path, dest / f"node{x.node_id}-{path.name}")
        return dest

    def log_tails(self, lines: int = 15) -> str:
        return "".join(f"===== node {x.node_id} ({'running' if x.running() else 'down'})\n"
                       + x.log_tail(lines) for x in self.nodes)


def java_hash(s: str) -> int:
    """Java's String.hashCode (UTF-16 code units, 32-bit wrapping), signed."""
    h = 0
    for unit in s.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def offsets_partition(group: str, partitions: int = OFFSETS_PARTITIONS) -> int:
    """The __consumer_offsets partition of a group: Kafka's Utils.abs(hashCode) % partitions,
    where Utils.abs maps Integer.MIN_VALUE to 0."""
    h = java_hash(group)
    return (0 if h == -(1 << 31) else abs(h)) % partitions


def create_until_ok(node: Node, prefix: str, timeout_s: float = 60.0,
                    request_timeout_ms: int = 3000) -> tuple[float, list[str]]:
    """Sends CreateTopics (one new RF=1 topic per attempt) to `node` until one succeeds.
    Returns (seconds until the first success, the errors answered before it, in order, with
    consecutive repeats collapsed). Raises TimeoutError after timeout_s."""
    t0 = time.monotonic()
    seen: list[str] = []
    attempt = 0
    while time.monotonic() - t0 < timeout_s:
        attempt += 1
        name = f"{prefix}-{attempt}"
        try:
            res = c.create_topics(node.port, {name: 1}, timeout_ms=request_timeout_ms,
                                  socket_timeout_s=request_timeout_ms / 1000 + 10)
            err = res[name][0]
            what = c.error_name(err)
        except (OSError, ConnectionError) as e:
            err, what = None, f"socket: {type(e).__name__}"
        if err == c.NONE:
            return time.monotonic() - t0, seen
        # A retry after a timeout may find the first attempt's topic done: a new name each time.
        if not seen or seen[-1] != what:
            seen.append(what)
        time.sleep(0.05)
    raise TimeoutError(f"CreateTopics via {node} failed for {timeout_s}s: {seen}")
