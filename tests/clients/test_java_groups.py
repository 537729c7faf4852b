"""Consumer groups with the Java client (kafka-clients 4.x, group.protocol=classic): three members,
one JVM each (java/GroupMember.java, compiled here with javac), share six partitions so each has
exactly one owner under the range and the cooperative-sticky assignors; a member terminated with
SIGTERM closes its consumer (LeaveGroup) and its partitions move to the others well before its
session would have expired; every record is consumed at least once and the synchronous commits
after each poll reach the end of every partition.

Helpers (broker with no initial rebalance delay, topic creation, producing, ownership checks) come
from test_groups.py so that the two clients are held to the same conditions.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from brokerproc import REPO
from test_groups import (PARTITIONS, SESSION_MS, consumed_all, create, exclusive_cover,
                         fast_group_broker, produce, wait_for)

DEPS = REPO / ".deps/java"
SOURCE = Path(__file__).parent / "java/GroupMember.java"
ASSIGNORS = {
    "range": "org.apache.kafka.clients.consumer.RangeAssignor",
    "cooperative-sticky": "org.apache.kafka.clients.consumer.CooperativeStickyAssignor",
}

pytestmark = pytest.mark.skipif(
    shutil.which("javac") is None or not list(DEPS.glob("kafka-clients-*.jar")),
    reason="javac or .deps/java missing (scripts/install-test-deps.sh)")


@pytest.fixture(scope="module")
def classes(tmp_path_factory):
    out = tmp_path_factory.mktemp("java-group-classes")
    subprocess.run(["javac", "-d", str(out), "-cp", f"{DEPS}/*", str(SOURCE)], check=True,
                   timeout=120)
    return out


class JavaMember:
    """A GroupMember JVM and what it reported on stdout (stderr, the client's log, goes to a file
    shown when a test fails)."""

    def __init__(self, classes, broker, topic, group, assignor, log_path: Path):
        self.log_path = log_path
        self.stderr = open(log_path, "wb")
        self.proc = subprocess.Popen(
            ["java", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp",
             f"{DEPS}/*:{classes}", "GroupMember", broker.bootstrap, topic, group, assignor,
             str(SESSION_MS)],
            stdout=subprocess.PIPE, stderr=self.stderr, stdin=subprocess.DEVNULL, text=True)
        self.owned: set[int] = set()
        self.consumed: set[tuple[int, int]] = set()
        self.closed = False
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            event = json.loads(line)
            with self.lock:
                if "assigned" in event:
                    self.owned |= set(event["assigned"])
                elif "revoked" in event:
                    self.owned -= set(event["revoked"])
                elif "msg" in event:
                    self.consumed.add(tuple(event["msg"]))
                elif "closed" in event:
                    self.closed = True

    def snapshot(self) -> set[int]:
        with self.lock:
            return set(self.owned)

    def terminate(self) -> int:
        """SIGTERM: the shutdown hook wakes the poll loop, which closes the consumer."""
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(30)
        self.reader.join(5)
        return code

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.stderr.close()

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


def committed(broker, topic, group) -> list[int]:
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                  "enable.auto.commit": False})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=30)
        return [tp.offset for tp in sorted(tps, key=lambda tp: tp.partition)]
    finally:
        c.close()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_java_members_share_and_move_on_close(broker_factory, tmp_path, classes, strategy):
    b = fast_group_broker(broker_factory, tmp_path)
    topic, group = f"java-groups-{strategy}", f"jg-{strategy}"
    create(b, topic)
    produce(b, topic, 50)
    members = [JavaMember(classes, b, topic, group, ASSIGNORS[strategy], tmp_path / f"member{i}.log")
               for i in range(3)]
    try:
        wait_for(lambda: exclusive_cover(members), 45, "three Java members to share six partitions")
        stable = [m.snapshot() for m in members]
        time.sleep(1)
        assert [m.snapshot() for m in members] == stable, "ownership changed after it was stable"

        gone = stable[0]
        sent = time.monotonic()
        code = members[0].terminate()
        assert code in (0, 143), f"exit {code}\n{members[0].log_tail()}"  # 143: JVM after SIGTERM
        assert members[0].closed, f"no close() after SIGTERM\n{members[0].log_tail()}"
        # A LeaveGroup starts the rebalance at once; without one it would wait out the session.
        wait_for(lambda: exclusive_cover(members[1:]), SESSION_MS / 1000 - 1,
                 "the closed member's partitions to move (LeaveGroup)")
        moved_after = time.monotonic() - sent
        assert gone <= members[1].snapshot() | members[2].snapshot()

        produce(b, topic, 50, start=50)
        wait_for(lambda: consumed_all(members, 100), 30, "every record to be consumed")
        wait_for(lambda: committed(b, topic, group) == [100] * PARTITIONS, 30,
                 "the synchronous commits to reach the end of every partition")
        print(f"{strategy}: partitions moved {moved_after:.2f}s after SIGTERM")
    except BaseException:
        for i, m in enumerate(members):
            print(f"--- member {i} stderr\n{m.log_tail()}")
        raise
    finally:
        for m in members:
            m.kill()
