"""Exactly-once with the Java client (kafka-clients 4.x): java/TxnCopier.java, compiled here with
javac, copies an input topic to an output topic in a consume-transform-produce loop (the input
offsets committed inside each transaction, KIP-447 group metadata, read_committed input), aborts
a seeded share of its transactions after their copies are written, and keeps going while the
broker is killed with SIGKILL and restarted under it twice: once while the copier holds a
transaction open (copies and offsets written, not committed), once the moment it calls
commitTransaction. A read_committed consumer then finds every input record copied exactly once;
read_uncommitted also shows the aborted copies.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Producer

from brokerproc import REPO
from test_confluent_kafka import create_topic
from test_transactions import read_quiet

DEPS = REPO / ".deps/java"
SOURCE = Path(__file__).parent / "java/TxnCopier.java"
RECORDS = 3000
PARTITIONS = 3
ABORT_PROBABILITY = 0.2
SEED = 7
TIMEOUT_S = 30
COPIER_TIMEOUT_S = 120  # the copier gives up by itself after 100 s

pytestmark = pytest.mark.skipif(
    shutil.which("javac") is None or not list(DEPS.glob("kafka-clients-*.jar")),
    reason="javac or .deps/java missing (scripts/install-test-deps.sh)")


@pytest.fixture(scope="module")
def classes(tmp_path_factory):
    out = tmp_path_factory.mktemp("java-txn-classes")
    subprocess.run(["javac", "-d", str(out), "-cp", f"{DEPS}/*", str(SOURCE)], check=True,
                   timeout=120)
    return out


class Copier:
    """A TxnCopier JVM; its stdout lines are collected by a thread, which also raises events the
    test waits on to kill the broker, and are kept in copier.out beside its stderr (the client's
    log) in copier.log."""

    def __init__(self, classes, args: list[str], log_path: Path):
        self.log_path = log_path
        self.stderr = open(log_path, "wb")
        self.proc = subprocess.Popen(
            ["java", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp",
             f"{DEPS}/*:{classes}", "TxnCopier", *args],
            stdout=subprocess.PIPE, stderr=self.stderr, stdin=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.committed = 0
        self.paused = threading.Event()
        # Run by the reader on the first "committing" once commit_at records are committed.
        self.commit_at: int | None = None
        self.on_commit = None
        self.committing = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            if line.startswith("committed "):
                self.committed = int(line.split()[1])
            elif line == "paused":
                self.paused.set()
            elif line == "committing" and self.commit_at is not None \
                    and self.committed >= self.commit_at and not self.committing.is_set():
                self.on_commit()  # here rather than in the test's thread: sooner
                self.committing.set()
        self.paused.set()  # exited: wake a waiting test, which then sees the exit
        self.committing.set()

    def wait(self, event: threading.Event, what: str, timeout_s: float = 60) -> None:
        assert event.wait(timeout_s), f"no {what} after {timeout_s}s\n{self.report()}"
        assert self.proc.poll() is None, f"copier exited before {what}\n{self.report()}"

    def resume(self) -> None:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def finish(self, timeout_s: float) -> int:
        try:
            code = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.reader.join(5)
        self.proc.stdin.close()
        self.stderr.close()
        self.log_path.with_suffix(".out").write_text("\n".join(self.lines) + "\n")
        return code

    def summary(self) -> dict[str, int]:
        done = [line for line in self.lines if line.startswith("done ")]
        assert len(done) == 1, self.report()
        return {k: int(v) for k, v in (field.split("=") for field in done[0].split()[1:])}

    def report(self) -> str:
        events = [line for line in self.lines if not line.startswith("committ")]
        log = self.log_path.read_text(errors="replace").splitlines()[-40:]
        return ("copier events:\n" + "\n".join(events[-60:]) + "\ncopier stderr:\n"
                + "\n".join(log))


def produce_input(bootstrap: str, topic: str) -> dict[bytes, bytes]:
    """RECORDS values v0.. spread over the partitions; returns value -> b"partition:offset"."""
    where, errors = {}, []

    def delivered(err, msg):
        if err is not None:
            errors.append(err)
        else:
            where[msg.value()] = f"{msg.partition()}:{msg.offset()}".encode()

    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for i in range(RECORDS):
        p.produce(topic, f"v{i}".encode(), partition=i % PARTITIONS, on_delivery=delivered)
    assert p.flush(TIMEOUT_S) == 0 and not errors, errors
    assert len(where) == RECORDS
    return where


def read_keyed(bootstrap: str, topic: str, isolation: str,
               quiet_s: float = 2.0) -> list[tuple[bytes, bytes]]:
    """Every record of ``topic`` from the start, until nothing new arrives for ``quiet_s``:
    (key, value)."""
    parts = [(topic, p) for p in range(PARTITIONS)]
    return [(k, v) for _, _, _, k, v in read_quiet(bootstrap, parts, isolation, quiet_s)]


@pytest.mark.timeout(240)
def test_copy_loop_is_exactly_once_through_aborts_and_kill9(broker_factory, topic, classes,
                                                             tmp_path):
    """Every input record is copied exactly once (no loss, no duplicate) although transactions
    are aborted and the broker dies twice mid-run: the copies of an aborted or crashed
    transaction stay hidden from read_committed, and the group's committed offsets move only
    with a committed transaction, so the copier resumes exactly where the output stops."""
    b = broker_factory().start()
    src, out = f"{topic}-in", f"{topic}-out"
    create_topic(b, src, PARTITIONS)
    create_topic(b, out, PARTITIONS)
    where = produce_input(b.bootstrap, src)

    copier = Copier(classes, [b.bootstrap, src, out, f"g-{topic}", f"tx-{topic}", str(RECORDS),
                              str(ABORT_PROBABILITY), str(SEED), str(RECORDS // 3)],
                    tmp_path / "copier.log")
    try:
        copier.wait(copier.paused, "paused transaction")
        b.kill9()
        b.start()
        copier.on_commit = b.proc.kill
        copier.commit_at = 2 * RECORDS // 3
        copier.resume()
        # The second kill races the commit: it lands while EndTxn or its markers are in flight,
        # or just after; the copier either sees the commit through or recovers.
        copier.wait(copier.committing, "commit past two thirds")
        b.kill9()
        b.start()
        code = copier.finish(COPIER_TIMEOUT_S)
    finally:
        copier.finish(0)
    assert code == 0, f"copier exit {code}\n{copier.report()}\n{b.log_tail()}"
    summary = copier.summary()
    # The transaction open across the first crash is still the producer's to commit.
    after_pause = copier.lines[copier.lines.index("paused") + 1:][:2]
    assert len(after_pause) == 2 and after_pause[0] == "committing" \
        and after_pause[1].startswith("committed "), copier.report()

    expected = Counter(b"out-" + v for v in where)
    committed = read_keyed(b.bootstrap, out, "read_committed")
    got = Counter(v for _, v in committed)
    missing, extra = expected - got, got - expected
    assert not missing and not extra, (
        f"{len(missing)} input records not copied (e.g. {sorted(missing)[:5]}), {len(extra)} "
        f"copied more than once (e.g. {sorted(extra)[:5]}); {summary}\n{copier.report()}")
    # Each copy carries the position of the input record it came from.
    assert all(k == where[v[len(b"out-"):]] for k, v in committed)

    everything = read_keyed(b.bootstrap, out, "read_uncommitted")
    # The aborted copies: only records of the input, each at least once, and at least every
    # copy written by a deliberate abort (crashed transactions may add more).
    assert not Counter(committed) - Counter(everything)
    assert set(everything) == set(committed)
    assert summary["aborted_records"] > 0, f"no copies were aborted: {summary}"
    assert len(everything) >= len(committed) + summary["aborted_records"], summary
