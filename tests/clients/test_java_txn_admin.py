"""Kafka's Admin transaction APIs from the Java client (java/TxnAdmin.java, what
kafka-transactions.sh uses): ListTransactions, DescribeTransactions and DescribeProducers show
a transaction left open, and abortTransaction (WriteTxnMarkers sent by the Admin client to the
partition leader) ends it there, so the last stable offset moves past it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from brokerproc import REPO
from test_confluent_kafka import create_topic

DEPS = REPO / ".deps/java"
SOURCE = Path(__file__).parent / "java/TxnAdmin.java"

pytestmark = pytest.mark.skipif(
    shutil.which("javac") is None or not list(DEPS.glob("kafka-clients-*.jar")),
    reason="javac or .deps/java missing (scripts/install-test-deps.sh)")


@pytest.fixture(scope="module")
def classes(tmp_path_factory):
    out = tmp_path_factory.mktemp("java-txn-admin")
    subprocess.run(["javac", "-d", str(out), "-cp", f"{DEPS}/*", str(SOURCE)], check=True,
                   timeout=120)
    return out


@pytest.mark.timeout(150)
def test_admin_lists_describes_and_aborts_an_open_transaction(broker, topic, classes):
    create_topic(broker, topic, 1)
    txn_id = f"tx-{topic}"
    proc = subprocess.run(
        ["java", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", f"{DEPS}/*:{classes}",
         "TxnAdmin", broker.bootstrap, topic, txn_id],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err[-4000:]}"
    lines = {line.split(" ", 1)[0]: line.split(" ")[1:] for line in out.splitlines() if line}
    sent = int(lines["sent_offset"][0])
    state, pid = lines["listed"]
    assert state == "Ongoing"
    d_state, d_pid, _epoch, timeout_ms, has_tp, has_start = lines["described"]
    assert (d_state, d_pid, has_tp, has_start) == ("Ongoing", pid, "true", "true")
    assert int(timeout_ms) == 60_000  # the Java producer's default transaction.timeout.ms
    p_pid, _p_epoch, start = lines["producer"]
    assert p_pid == pid and int(start) == sent
    # The open transaction holds read_committed at its first offset; the abort marker frees it.
    assert int(lines["lso_before"][0]) == sent
    assert int(lines["lso_after"][0]) == sent + 2
