"""Transactions with franz-go (the Go client, github.com/twmb/franz-go, kgo): go/txncopy, built
here with `go build` from the module cache scripts/install-test-deps.sh fills (offline:
GOPROXY=off, GOFLAGS=-mod=readonly against the committed go.sum).

- ``txncopy produce``: a transactional producer commits most of its transactions and aborts a
  seeded share after their records were flushed; read_committed shows exactly the committed
  records at the offsets franz-go was given, read_uncommitted the aborted ones too.
- ``txncopy copy``: an exactly-once consume-transform-produce loop (GroupTransactSession,
  read_committed input, offsets committed inside each transaction), with a classic and with a
  KIP-848 group, aborting a seeded share of its own transactions, stopped part-way and resumed
  by a second process with the same group and transactional id. The output holds every
  committed input record exactly once and nothing of the aborted input; the group's offsets
  end just past the last committed input record of each partition.

franz-go opts into Transactions V2 (KIP-890 part 2: Produce v12+ adds the partition, EndTxn v5
bumps the epoch, TxnOffsetCommit v5+ without AddOffsetsToTxn) once an ApiVersions v3+ answer
showed it ``transaction.version`` finalized at 2. franz-go opens with ApiVersions v5, which
neither broker serves: both answer UNSUPPORTED_VERSION listing ApiVersions' own range, franz-go
asks again at v3 and sees the features, and every transaction is V2 (when millrace listed its
whole key table there, franz-go kept that table and ran its first transaction on the classic
protocol). The tests require the V2 requests throughout, so that a broker that stops offering
V2 cannot pass by silently testing V1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from test_confluent_kafka import create_topic
from test_transactions import read_quiet

MODULE = Path(__file__).parent / "go"
PARTITIONS = 3
RECORDS = 2000
TXN_RECORDS = 40
ABORT_SHARE = 0.25
SEED = 7
TIMEOUT_S = 30
RUN_TIMEOUT_S = 60  # txncopy gives up by itself after 45 s

# The first test also builds txncopy: about 30 s on 2 cores with a cold build cache.
pytestmark = pytest.mark.timeout(180)


def go_binary() -> str | None:
    found = shutil.which("go")
    if found is None and os.access("/usr/local/go/bin/go", os.X_OK):
        found = "/usr/local/go/bin/go"
    return found


def go_env() -> dict[str, str]:
    """Offline, against the committed go.sum, whatever the machine's go env says."""
    env = dict(os.environ)
    env.update(GOFLAGS="-mod=readonly -buildvcs=false", GOPROXY="off", GOTOOLCHAIN="local",
               GOWORK="off")
    return env


@pytest.fixture(scope="module")
def txncopy(tmp_path_factory) -> Path:
    go = go_binary()
    if go is None:
        pytest.skip("no go toolchain on PATH or in /usr/local/go")
    cached = subprocess.run([go, "list", "-m", "-f", "{{.Dir}}", "github.com/twmb/franz-go"],
                            cwd=MODULE, env=go_env(), capture_output=True, text=True, timeout=60)
    if cached.returncode != 0 or not cached.stdout.strip():
        pytest.skip("franz-go is not in the Go module cache (scripts/install-test-deps.sh): "
                    + (cached.stderr.strip() or "no module directory"))
    out = tmp_path_factory.mktemp("franz-go") / "txncopy"
    built = subprocess.run([go, "build", "-o", str(out), "./txncopy"], cwd=MODULE, env=go_env(),
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, f"go build failed:\n{built.stdout}{built.stderr}"
    return out


def run(txncopy: Path, log: Path, mode: str, bootstrap: str, **flags) -> dict:
    """Runs ``txncopy MODE`` with ``-flag value`` for each keyword (underscores as dashes); its
    stderr (the client's log) goes to ``log``. Returns its JSON summary."""
    args = [str(txncopy), mode, "-brokers", bootstrap]
    for name, value in flags.items():
        args += [f"-{name.replace('_', '-')}", str(value)]
    with open(log, "wb") as err:
        done = subprocess.run(args, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                              timeout=RUN_TIMEOUT_S)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
    assert done.returncode == 0, f"txncopy {mode} exit {done.returncode}; stderr:\n{tail}"
    return json.loads(done.stdout)


def read_records(bootstrap: str, topic: str, isolation: str,
                 quiet_s: float = 2.0) -> list[tuple[int, int, str | None, str]]:
    """Every record of ``topic`` from the start, until nothing new arrives for ``quiet_s``:
    (partition, offset, key, value)."""
    parts = [(topic, p) for p in range(PARTITIONS)]
    return [(p, o, None if k is None else k.decode(), v.decode())
            for _, p, o, k, v in read_quiet(bootstrap, parts, isolation, quiet_s)]


def positions(records: list[dict]) -> list[tuple[int, int, str]]:
    """The (partition, offset, value) of txncopy's summary records, sorted."""
    return sorted((r["partition"], r["offset"], r["value"]) for r in records)


def transactional_versions(requests: dict[str, int]) -> dict[str, set[int]]:
    """The versions of the transactional requests among txncopy's ``requests`` ("EndTxn v5":
    12): {"EndTxn": {5}, ...}."""
    apis = ("Produce", "EndTxn", "AddPartitionsToTxn", "AddOffsetsToTxn", "TxnOffsetCommit")
    out: dict[str, set[int]] = {}
    for request in requests:
        name, version = request.split(" v")
        if name in apis:
            out.setdefault(name, set()).add(int(version))
    return out


def copy_problems(inputs: list[tuple[int, int, str]],
                  copies: list[tuple[int, int, str | None, str]]) -> list[str]:
    """What is wrong with ``copies`` (records of the output topic) as exactly one copy of each
    of ``inputs`` (partition, offset, value), keyed "PARTITION:OFFSET" in the same partition."""
    expected = Counter((f"{p}:{o}", v) for p, o, v in inputs)
    got = Counter((k, v) for _, _, k, v in copies)
    missing, extra = expected - got, got - expected
    problems = []
    if missing:
        problems.append(f"{sum(missing.values())} input records not copied, e.g. "
                        f"{sorted(missing)[:5]}")
    duplicated = [c for c, n in got.items() if n > 1]
    if duplicated:
        problems.append(f"{len(duplicated)} input records copied more than once, e.g. "
                        f"{sorted(duplicated)[:5]}")
    foreign = [c for c in extra if c not in expected]
    if foreign:
        problems.append(f"{len(foreign)} copies of no committed input record, e.g. "
                        f"{sorted(foreign)[:5]}")
    moved = [(p, k) for p, _, k, _ in copies if k is None or k.split(":")[0] != str(p)]
    if moved:
        problems.append(f"{len(moved)} copies outside their input's partition, e.g. {moved[:5]}")
    return problems


def produce_input(txncopy: Path, tmp_path: Path, bootstrap: str, topic: str) -> dict:
    summary = run(txncopy, tmp_path / "produce.log", "produce", bootstrap, txn_id=f"tx-{topic}",
                  topic=topic, partitions=PARTITIONS, records=RECORDS, txn_records=TXN_RECORDS,
                  abort_share=ABORT_SHARE, seed=SEED)
    assert summary["transactions"] == RECORDS // TXN_RECORDS, summary["transactions"]
    assert 0 < summary["aborts"] < summary["transactions"], "the seed must give both outcomes"
    assert len(summary["aborted"]) == summary["aborts"] * TXN_RECORDS
    produced = sorted(r["value"] for r in summary["committed"] + summary["aborted"])
    assert produced == sorted(f"r{i}" for i in range(RECORDS))
    return summary


def test_the_copy_check_finds_missing_duplicated_and_foreign_copies():
    """The check the copy test relies on: it must be able to fail."""
    inputs = [(0, 0, "r0"), (1, 0, "r1"), (0, 1, "r3")]
    good = [(0, 0, "0:0", "r0"), (1, 0, "1:0", "r1"), (0, 1, "0:1", "r3")]
    assert copy_problems(inputs, good) == []
    assert "not copied" in " ".join(copy_problems(inputs, good[:2]))
    assert "more than once" in " ".join(copy_problems(inputs, good + [(0, 2, "0:0", "r0")]))
    assert "no committed input" in " ".join(copy_problems(inputs, good + [(1, 1, "1:1", "r2")]))
    assert "outside" in " ".join(copy_problems(inputs, [(1, 0, "0:0", "r0")] + good[1:]))


def test_transactional_producer_commits_and_aborts_whole_transactions(broker, topic, txncopy,
                                                                       tmp_path):
    create_topic(broker, topic, PARTITIONS)
    summary = produce_input(txncopy, tmp_path, broker.bootstrap, topic)

    visible = sorted((p, o, v) for p, o, _, v in read_records(broker.bootstrap, topic,
                                                              "read_committed"))
    assert visible == positions(summary["committed"])
    everything = sorted((p, o, v) for p, o, _, v in read_records(broker.bootstrap, topic,
                                                                 "read_uncommitted"))
    assert everything == positions(summary["committed"] + summary["aborted"])

    versions = transactional_versions(summary["requests"])
    assert set(versions) == {"Produce", "EndTxn"} and min(versions["Produce"]) >= 12 and \
        min(versions["EndTxn"]) >= 5, f"not Transactions V2 throughout: {summary['requests']}"


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_copy_loop_is_exactly_once_through_aborts_and_a_restart(broker, topic, txncopy,
                                                                 tmp_path, protocol):
    src, out = f"{topic}-in", f"{topic}-out"
    create_topic(broker, src, PARTITIONS)
    create_topic(broker, out, PARTITIONS)
    inputs = positions(produce_input(txncopy, tmp_path, broker.bootstrap, src)["committed"])
    group, txn_id = f"g-{topic}", f"tx-{topic}-copy"

    def copy(n: int, seed: int, log: str) -> dict:
        return run(txncopy, tmp_path / log, "copy", broker.bootstrap, txn_id=txn_id,
                   group=group, input=src, output=out, records=n, max_poll=50,
                   abort_share=ABORT_SHARE, seed=seed, group_protocol=protocol)

    # Stopped after a third, then resumed by a new process from the group's committed offsets.
    first = copy(len(inputs) // 3, SEED, "copy1.log")
    assert len(inputs) // 3 <= first["copied"] < len(inputs), first
    second = copy(len(inputs) - first["copied"], SEED + 1, "copy2.log")
    runs = (first, second)
    assert sum(r["aborts"] for r in runs) > 0, f"no transaction was aborted: {runs}"

    committed = read_records(broker.bootstrap, out, "read_committed")
    problems = copy_problems(inputs, committed)
    assert not problems, f"{problems}; runs: {runs}"

    # The aborted copies are in the log, hidden from read_committed; each batch written once.
    everything = read_records(broker.bootstrap, out, "read_uncommitted")
    assert set((k, v) for _, _, k, v in everything) == set((k, v) for _, _, k, v in committed)
    written = sum(r["copied"] + r["aborted_records"] + r["refused_records"] for r in runs)
    assert len(everything) == written, runs

    # The offsets committed in the transactions: just past the last committed input record of
    # each partition (kgo commits the offset after the last record it returned, so the trailing
    # transaction markers, and aborted records before them, stay below the end offset).
    probe = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                      "isolation.level": "read_committed", "enable.auto.commit": False})
    try:
        tps = [TopicPartition(src, p) for p in range(PARTITIONS)]
        offsets = {tp.partition: tp.offset for tp in probe.committed(tps, TIMEOUT_S)}
        ends = {p: probe.get_watermark_offsets(TopicPartition(src, p), TIMEOUT_S)[1]
                for p in range(PARTITIONS)}
    finally:
        probe.close()
    last = {p: max(o for q, o, _ in inputs if q == p) for p in range(PARTITIONS)}
    assert offsets == {p: last[p] + 1 for p in range(PARTITIONS)}, (offsets, ends)
    assert all(offsets[p] < ends[p] for p in range(PARTITIONS)), (offsets, ends)

    for r in runs:
        versions = transactional_versions(r["requests"])
        assert set(versions) == {"Produce", "EndTxn", "TxnOffsetCommit"} and \
            min(versions["Produce"]) >= 12 and min(versions["EndTxn"]) >= 5 and \
            min(versions["TxnOffsetCommit"]) >= 5, (
                f"not Transactions V2 throughout: {r['requests']}")
