"""The Java client (org.apache.kafka:kafka-clients 4.x from Maven Central, in .deps/java):
java/RoundTrip.java, compiled here with javac, produces keyed records with acks=all and
idempotence and reads them back with assign + seekToBeginning; it exits non-zero on mismatch."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from brokerproc import REPO

DEPS = REPO / ".deps/java"
SOURCE = Path(__file__).parent / "java/RoundTrip.java"

pytestmark = pytest.mark.skipif(
    shutil.which("javac") is None or not list(DEPS.glob("kafka-clients-*.jar")),
    reason="javac or .deps/java missing (scripts/install-test-deps.sh)")


@pytest.fixture(scope="module")
def classes(tmp_path_factory):
    out = tmp_path_factory.mktemp("java-classes")
    subprocess.run(["javac", "-d", str(out), "-cp", f"{DEPS}/*", str(SOURCE)], check=True,
                   timeout=120)
    return out


@pytest.mark.timeout(150)
@pytest.mark.parametrize("partitions,compression", [
    (1, "none"), (3, "none"), (1, "gzip"), (3, "snappy"), (1, "lz4"), (3, "zstd"),
])
def test_java_roundtrip(broker, topic, classes, partitions, compression):
    proc = subprocess.run(
        ["java", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", f"{DEPS}/*:{classes}",
         "RoundTrip", broker.bootstrap, topic, "2000", str(partitions), compression],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err[-4000:]}"
    assert out.startswith("OK 2000 records"), out
