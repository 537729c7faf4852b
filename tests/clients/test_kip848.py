"""KIP-848 consumer groups (group.protocol=consumer) with real clients: three members with the
Java client 4.4 (java/GroupMember.java) and with confluent-kafka (librdkafka 2.16,
group_member.py) share six partitions so each has exactly one owner at every sample; a member
that closes and one that is killed with SIGKILL have their partitions moved within the session
timeout; every record is consumed at least once with commits after processing; committed
offsets survive a broker kill -9 and the members of the restarted broker resume from them.
Raw frames (ConsumerGroupHeartbeat/Describe) check the error codes and bad input.

The broker runs with group.consumer.session.timeout.ms=6000 and a 500 ms heartbeat interval (the
group.consumer.min.* keys lowered to match, as Kafka requires).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid

from pathlib import Path

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

import kwire as w
from brokerproc import REPO
from test_groups import HERE, PARTITIONS, Member, consumed_all, create, produce, wait_for
from test_java_groups import DEPS, SOURCE, JavaMember

CONSUMER_SESSION_MS = 6000
API_JOIN_GROUP = 11
API_CGH = 68
API_CGD = 69

pytestmark = pytest.mark.millrace_only


def kip848_broker(broker_factory, tmp_path, data_dir_broker=None):
    b = data_dir_broker or broker_factory()
    cfg = tmp_path / "kip848.properties"
    cfg.write_text(f"group.initial.rebalance.delay.ms=0\n"
                   f"group.consumer.session.timeout.ms={CONSUMER_SESSION_MS}\n"
                   f"group.consumer.min.session.timeout.ms={CONSUMER_SESSION_MS}\n"
                   f"group.consumer.heartbeat.interval.ms=500\n"
                   f"group.consumer.min.heartbeat.interval.ms=500\n")
    b.extra_args = ["--config", str(cfg)]
    b.start()
    return b


def exclusive(members) -> bool:
    """No partition owned by two live members (checked at every sample)."""
    owned = [m.snapshot() for m in members]
    return sum(len(o) for o in owned) == len(set().union(*owned))


def covered(members) -> bool:
    owned = [m.snapshot() for m in members]
    union = set().union(*owned)
    return union == set(range(PARTITIONS)) and all(owned) and exclusive(members)


def sample_until(members, predicate, timeout_s, what):
    """Polls predicate, asserting exclusive ownership at every sample."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert exclusive(members), f"a partition has two owners: {[m.snapshot() for m in members]}"
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}: "
                f"{[m.snapshot() for m in members]}")


def committed(broker, topic, group) -> list[int]:
    """The group's committed offsets, read as an admin (OffsetFetch without member id)."""
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p)
                                               for p in range(PARTITIONS)])
    res = a.list_consumer_group_offsets([req])[group].result(30)
    return [tp.offset for tp in sorted(res.topic_partitions, key=lambda tp: tp.partition)]


@pytest.fixture(scope="module")
def classes(tmp_path_factory):
    if shutil.which("javac") is None or not list(DEPS.glob("kafka-clients-*.jar")):
        pytest.skip("javac or .deps/java missing (scripts/install-test-deps.sh)")
    out = tmp_path_factory.mktemp("java-kip848-classes")
    subprocess.run(["javac", "-d", str(out), "-cp", f"{DEPS}/*", str(SOURCE)], check=True,
                   timeout=120)
    return out


class ConsumerProtocolJava(JavaMember):
    """GroupMember.java with group.protocol=consumer (STRATEGY = server assignor)."""

    def __init__(self, classes, broker, topic, group, assignor, log_path):
        self.log_path = log_path
        self.stderr = open(log_path, "wb")
        self.proc = subprocess.Popen(
            ["java", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp",
             f"{DEPS}/*:{classes}", "GroupMember", broker.bootstrap, topic, group, assignor,
             "0", "consumer"],
            stdout=subprocess.PIPE, stderr=self.stderr, stdin=subprocess.DEVNULL, text=True)
        self.owned, self.consumed, self.closed = set(), set(), False
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def hard_kill(self):
        self.proc.kill()
        self.proc.wait(10)
        with self.lock:
            self.owned = set()


class ConfluentMember(Member):
    """group_member.py with group.protocol=consumer (librdkafka's KIP-848 support)."""

    def __init__(self, broker, topic, group):
        cmd = [sys.executable, str(HERE / "group_member.py"), broker.bootstrap, topic, group,
               "--strategy", "-", "--protocol", "consumer"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        self.owned, self.consumed, self.revocations = set(), set(), 0
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()


def run_share_close_kill(b, topic, members, close, kill):
    """Three members share; one closes, one is killed; the last owns everything in time."""
    sample_until(members, lambda: covered(members), 45, "three members to share six partitions")
    stable = [m.snapshot() for m in members]
    time.sleep(1.5)
    assert [m.snapshot() for m in members] == stable, "ownership changed after it was stable"

    close(members[0])
    sent = time.monotonic()
    sample_until(members[1:], lambda: covered(members[1:]), CONSUMER_SESSION_MS / 1000 - 1,
                 "the closed member's partitions to move (leave heartbeat, epoch -1)")
    closed_moved = time.monotonic() - sent

    kill(members[1])
    killed = time.monotonic()
    sample_until(members[2:], lambda: covered(members[2:]), CONSUMER_SESSION_MS / 1000 + 10,
                 "the killed member's partitions to move after its session")
    killed_moved = time.monotonic() - killed
    produce(b, topic, 50, start=50)
    wait_for(lambda: consumed_all(members, 100), 30, "every record to be consumed")
    return closed_moved, killed_moved


@pytest.mark.timeout(150)
@pytest.mark.parametrize("assignor", ["uniform", "range"])
def test_java_consumer_protocol_share_close_kill(broker_factory, tmp_path, classes, assignor):
    b = kip848_broker(broker_factory, tmp_path)
    topic, group = f"kip848-java-{assignor}", f"k848-java-{assignor}"
    create(b, topic)
    produce(b, topic, 50)
    members = [ConsumerProtocolJava(classes, b, topic, group, assignor, tmp_path / f"m{i}.log")
               for i in range(3)]
    try:
        closed_moved, killed_moved = run_share_close_kill(
            b, topic, members, close=lambda m: m.terminate(), kill=lambda m: m.hard_kill())
        assert members[0].closed, f"no close() after SIGTERM\n{members[0].log_tail()}"
        wait_for(lambda: committed(b, topic, group) == [100] * PARTITIONS, 30,
                 "the commits (OffsetCommit v9) to reach the end of every partition")
        print(f"java {assignor}: closed moved in {closed_moved:.2f}s, killed in {killed_moved:.2f}s")
    except BaseException:
        for i, m in enumerate(members):
            print(f"--- member {i} stderr\n{m.log_tail()}")
        raise
    finally:
        for m in members:
            m.kill()


@pytest.mark.timeout(150)
def test_confluent_consumer_protocol_share_close_kill(broker_factory, tmp_path):
    b = kip848_broker(broker_factory, tmp_path)
    topic, group = "kip848-confluent", "k848-confluent"
    create(b, topic)
    produce(b, topic, 50)
    members = [ConfluentMember(b, topic, group) for _ in range(3)]
    try:
        run_share_close_kill(b, topic, members, close=lambda m: m.close(),
                             kill=lambda m: m.kill())
        wait_for(lambda: committed(b, topic, group) == [100] * PARTITIONS, 30,
                 "the commits to reach the end of every partition")
    finally:
        for m in members:
            if m.proc.poll() is None:
                m.kill()


@pytest.mark.timeout(150)
def test_offsets_survive_broker_kill9_and_members_resume(broker_factory, tmp_path, classes):
    b = kip848_broker(broker_factory, tmp_path)
    topic, group = "kip848-restart", "k848-restart"
    create(b, topic)
    produce(b, topic, 30)
    members = [ConsumerProtocolJava(classes, b, topic, group, "-", tmp_path / f"a{i}.log")
               for i in range(2)]
    try:
        wait_for(lambda: consumed_all(members, 30), 45, "the first records to be consumed")
        wait_for(lambda: committed(b, topic, group) == [30] * PARTITIONS, 30, "the commits")
    finally:
        for m in members:
            m.kill()
    b.kill9()
    b.start()
    assert committed(b, topic, group) == [30] * PARTITIONS, "commits lost in the crash"
    produce(b, topic, 20, start=30)
    members = [ConsumerProtocolJava(classes, b, topic, group, "-", tmp_path / f"b{i}.log")
               for i in range(2)]
    try:
        wait_for(lambda: all((p, o) in set().union(*(m.consumed for m in members))
                             for p in range(PARTITIONS) for o in range(30, 50)),
                 60, "the records after the restart (none skipped)")
        seen = set().union(*(m.consumed for m in members))
        assert not any(o < 30 for _, o in seen), "consumption restarted below the commits"
    except BaseException:
        for i, m in enumerate(members):
            print(f"--- member {i} stderr\n{m.log_tail()}")
        raise
    finally:
        for m in members:
            m.kill()


def tools_binary():
    """millrace-tools: $MILLRACE_TOOLS, beside $MILLRACE_BIN, or in the workspace's target."""
    candidates = [os.environ.get("MILLRACE_TOOLS")]
    if os.environ.get("MILLRACE_BIN"):
        candidates.append(str(Path(os.environ["MILLRACE_BIN"]).parent / "millrace-tools"))
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    candidates += [str(target / "release/millrace-tools"), str(target / "debug/millrace-tools")]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    return None


def check_tools_see_consumer_group(b, group, member_id, topic):
    tools = tools_binary()
    if tools is None:
        print("millrace-tools not built: groups list/describe not checked")
        return
    run = lambda *a: subprocess.run([tools, *a, "--bootstrap-server", b.bootstrap],  # noqa: E731
                                    capture_output=True, text=True, timeout=30)
    listed = run("groups", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {g["group"]: g for g in json.loads(listed.stdout)}
    assert rows[group]["protocol_type"] == "consumer", rows
    described = run("groups", "describe", group, "--json")
    assert described.returncode == 0, described.stderr
    view = json.loads(described.stdout)
    assert view["protocol"] == "uniform" and view["protocol_type"] == "consumer", view
    [member] = view["members"]
    assert member["member_id"] == member_id, view
    assert member["assignment"] == [{"topic": topic, "partitions": list(range(PARTITIONS))}]


def describe_epochs(b, group):
    """(group epoch, {member id: member epoch}) from ConsumerGroupDescribe v1."""
    body = w.uvarint(2) + cstr(group) + b"\x00" + w.uvarint(0)
    r = flexible_request(b.port, API_CGD, 1, body)
    r.i32()
    assert r.uvarint() - 1 == 1
    assert r.i16() == 0, "ConsumerGroupDescribe error"
    r.cstring()
    r.cstring()
    r.cstring()  # state
    group_epoch = r.i32()
    r.i32()
    r.cstring()
    members = {}
    for _ in range(r.uvarint() - 1):
        member_id = r.cstring()
        r.cstring(), r.cstring()
        members[member_id] = r.i32()
        r.cstring(), r.cstring()
        for _ in range(r.uvarint() - 1):
            r.cstring()
        r.cstring()
        for _ in range(2):  # assignment, target assignment
            for _ in range(r.uvarint() - 1):
                r.take(16), r.cstring()
                [r.i32() for _ in range(r.uvarint() - 1)]
                r.uvarint()
            r.uvarint()
        r.i8()
        r.uvarint()
    return group_epoch, members


@pytest.mark.timeout(150)
def test_running_members_survive_broker_kill9_without_rebalance(broker_factory, tmp_path,
                                                                 classes):
    """The group's state is persisted: after kill -9 and a restart the running members keep
    their member ids and epochs (no one is fenced), ownership stays exclusive, nothing is
    skipped."""
    b = kip848_broker(broker_factory, tmp_path)
    topic, group = "kip848-persist", "k848-persist"
    create(b, topic)
    produce(b, topic, 20)
    members = [ConsumerProtocolJava(classes, b, topic, group, "-", tmp_path / f"p{i}.log")
               for i in range(2)]
    try:
        sample_until(members, lambda: covered(members), 45, "two members to share")
        wait_for(lambda: consumed_all(members, 20), 30, "the first records")
        before = describe_epochs(b, group)
        b.kill9()
        b.start()
        assert describe_epochs(b, group) == before, "group state lost in the crash"
        produce(b, topic, 20, start=20)
        deadline = time.monotonic() + 45
        while not consumed_all(members, 40):
            assert exclusive(members)
            assert time.monotonic() < deadline, "records after the restart not consumed"
            time.sleep(0.1)
        after_epoch, after_members = describe_epochs(b, group)
        assert set(after_members) == set(before[1]), "members were replaced after the restart"
        assert after_epoch == before[0], "the group rebalanced after the restart"
    except BaseException:
        for i, m in enumerate(members):
            print(f"--- member {i} stderr\n{m.log_tail()}")
        raise
    finally:
        for m in members:
            m.kill()


# --- raw frames ---------------------------------------------------------------------------------

def cstr(s):
    return w.compact_string(s)


def heartbeat_body(group, member, epoch, topics=("t",), owned=(), regex=None, assignor=None,
                   instance=None, rebalance_ms=30000, version=1):
    body = cstr(group) + cstr(member) + w.i32(epoch) + cstr(instance) + cstr(None)
    body += w.i32(rebalance_ms)
    if topics is None:
        body += w.uvarint(0)
    else:
        body += w.uvarint(len(topics) + 1) + b"".join(cstr(t) for t in topics)
    if version >= 1:
        body += cstr(regex)
    body += cstr(assignor)
    if owned is None:
        body += w.uvarint(0)
    else:
        body += w.uvarint(len(owned) + 1)
        for tid, parts in owned:
            body += tid.bytes + w.uvarint(len(parts) + 1) + b"".join(w.i32(p) for p in parts)
            body += w.uvarint(0)
    return body + w.uvarint(0)


class CReader(w.Reader):
    def uvarint(self):
        shift = value = 0
        while True:
            b = self.take(1)[0]
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7

    def cstring(self):
        n = self.uvarint()
        return None if n == 0 else self.take(n - 1).decode()


def flexible_request(port, api_key, version, body, correlation_id=5):
    with w.connect(port) as s:
        s.sendall(w.frame(w.header_v2(api_key, version, correlation_id) + body))
        payload = w.recv_frame(s)
    assert payload is not None, f"api {api_key} v{version}: closed without an answer"
    r = CReader(payload)
    assert r.i32() == correlation_id
    r.uvarint()  # response header tagged fields
    return r


def heartbeat(port, body, version=1):
    r = flexible_request(port, API_CGH, version, body)
    r.i32()  # throttle
    error, message, member, epoch, interval = (r.i16(), r.cstring(), r.cstring(), r.i32(),
                                               r.i32())
    assignment = None
    if r.i8() == 1:
        assignment = {}
        for _ in range(r.uvarint() - 1):
            tid = uuid.UUID(bytes=r.take(16))
            assignment[tid] = [r.i32() for _ in range(r.uvarint() - 1)]
            r.uvarint()
        r.uvarint()
    return {"error": error, "message": message, "member": member, "epoch": epoch,
            "interval": interval, "assignment": assignment}


def assert_serving(b):
    err, versions = w.api_versions_v0(b.port)
    assert err == 0 and API_CGH in versions


@pytest.mark.timeout(60)
def test_raw_heartbeat_errors(broker_factory, tmp_path):
    b = kip848_broker(broker_factory, tmp_path)
    create(b, "raw848")
    g = "raw-group"
    r = heartbeat(b.port, heartbeat_body(g, "m1", 0, topics=["raw848"]))
    assert r["error"] == 0 and r["epoch"] >= 1, r
    assert sum(len(p) for p in r["assignment"].values()) == PARTITIONS
    epoch = r["epoch"]
    owned = [(t, p) for t, p in r["assignment"].items()]
    # The same epoch with what it owns: fine, no assignment resent.
    r = heartbeat(b.port, heartbeat_body(g, "m1", epoch, topics=None, owned=owned,
                                         rebalance_ms=-1))
    assert (r["error"], r["epoch"], r["assignment"]) == (0, epoch, None), r
    # A newer epoch than the member's: FENCED_MEMBER_EPOCH (110).
    r = heartbeat(b.port, heartbeat_body(g, "m1", epoch + 5, topics=None, owned=None,
                                         rebalance_ms=-1))
    assert r["error"] == 110, r
    # Unknown member: UNKNOWN_MEMBER_ID (25).
    r = heartbeat(b.port, heartbeat_body(g, "nobody", 3, topics=None, owned=None,
                                         rebalance_ms=-1))
    assert r["error"] == 25, r
    # Unknown assignor: UNSUPPORTED_ASSIGNOR (112); a regex that does not compile:
    # INVALID_REGULAR_EXPRESSION (128), with the reason.
    r = heartbeat(b.port, heartbeat_body(g, "m2", 0, topics=["raw848"], assignor="sticky"))
    assert r["error"] == 112, r
    r = heartbeat(b.port, heartbeat_body(g, "m2", 0, topics=[], regex="raw(848"))
    assert r["error"] == 128 and "raw(848" in (r["message"] or ""), r
    # A regex (and null names, as the Java client joins) resolves to whole topic names.
    r = heartbeat(b.port, heartbeat_body("raw-regex", "r1", 0, topics=None, regex="raw8.8"))
    assert r["error"] == 0 and sum(len(p) for p in r["assignment"].values()) == PARTITIONS, r
    r = heartbeat(b.port, heartbeat_body("raw-regex-part", "r1", 0, topics=None, regex="raw8"))
    assert r["error"] == 0 and r["assignment"] == {}, r
    # Neither names nor a regex on a join: INVALID_REQUEST.
    r = heartbeat(b.port, heartbeat_body("raw-regex", "r2", 0, topics=None))
    assert r["error"] == 42, r
    # v1 requires the client's own member id; a join must not claim to own partitions.
    assert heartbeat(b.port, heartbeat_body(g, "", 0, topics=["raw848"]))["error"] == 42
    assert heartbeat(b.port, heartbeat_body(g, "m2", 0, topics=["raw848"], owned=owned))[
        "error"] == 42
    # Oversized member id: INVALID_REQUEST.
    assert heartbeat(b.port, heartbeat_body(g, "x" * 5000, 0, topics=["raw848"]))["error"] == 42
    # v0: the broker makes the member id.
    r = heartbeat(b.port, heartbeat_body("raw-v0", "", 0, topics=["raw848"], version=0),
                  version=0)
    assert r["error"] == 0 and r["member"], r
    # A classic JoinGroup for the live consumer group: INCONSISTENT_GROUP_PROTOCOL (23).
    join = (w.string(g) + w.i32(10000) + w.i32(10000) + w.string("m9") + w.string(None)
            + w.string("consumer") + w.array([w.string("range") + w.i32(0)]))
    rj = w.request(b.port, API_JOIN_GROUP, 5, join)
    rj.i32()  # throttle
    assert rj.i16() == 23
    # ConsumerGroupDescribe: the member with its assignment; an unknown group: 69.
    body = w.uvarint(3) + cstr(g) + cstr("no-such-group") + b"\x00" + w.uvarint(0)
    r = flexible_request(b.port, API_CGD, 1, body)
    r.i32()
    assert r.uvarint() - 1 == 2
    assert r.i16() == 0
    r.cstring()
    assert r.cstring() == g
    assert r.cstring() in ("Stable", "Reconciling")
    check_tools_see_consumer_group(b, g, "m1", "raw848")
    # Leaving: epoch -1 echoed; the group is then empty and a commit without member is allowed.
    r = heartbeat(b.port, heartbeat_body(g, "m1", -1, topics=None, owned=None, rebalance_ms=-1))
    assert (r["error"], r["epoch"]) == (0, -1), r
    assert_serving(b)


@pytest.mark.timeout(60)
def test_raw_heartbeat_bad_input_closes_connection(broker_factory, tmp_path):
    b = kip848_broker(broker_factory, tmp_path)
    # i32::MAX-ish compact count of topic names with nothing behind it.
    body = (cstr("g") + cstr("m") + w.i32(0) + cstr(None) + cstr(None) + w.i32(1000)
            + w.uvarint(0x7FFFFFFF))
    for cut_body in (body, heartbeat_body("g", "m", 0)[:-3]):
        with w.connect(b.port) as s:
            s.sendall(w.frame(w.header_v2(API_CGH, 1, 9) + cut_body))
            assert w.closed_by_peer(s), "a malformed heartbeat must close the connection"
    assert_serving(b)
