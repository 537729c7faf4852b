"""Topic configs through the Java AdminClient (kafka-clients 4.x): java/ConfigsAdmin.java
creates a topic with a config, changes it with incrementalAlterConfigs (SET, APPEND, DELETE),
has a bad value refused, and prints what describeConfigs reports after each step."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from brokerproc import REPO

DEPS = REPO / ".deps/java"
SOURCE = Path(__file__).parent / "java/ConfigsAdmin.java"

pytestmark = pytest.mark.skipif(
    shutil.which("javac") is None or not list(DEPS.glob("kafka-clients-*.jar")),
    reason="javac or .deps/java missing (scripts/install-test-deps.sh)")


@pytest.mark.timeout(150)
def test_java_admin_config_round_trip(broker, topic, tmp_path):
    subprocess.run(["javac", "-d", str(tmp_path), "-cp", f"{DEPS}/*", str(SOURCE)], check=True,
                   timeout=120)
    proc = subprocess.run(
        ["java", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", f"{DEPS}/*:{tmp_path}",
         "ConfigsAdmin", broker.bootstrap, topic],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err[-4000:]}"
    lines = set(out.splitlines())
    expected = {
        "created retention.ms=3600000 DYNAMIC_TOPIC_CONFIG",
        "created cleanup.policy=delete DEFAULT_CONFIG",
        "incremental segment.ms=120000 DYNAMIC_TOPIC_CONFIG",
        "incremental cleanup.policy=delete,compact DYNAMIC_TOPIC_CONFIG",
        "incremental retention.ms=3600000 DYNAMIC_TOPIC_CONFIG",
        "deleted segment.ms=604800000 DEFAULT_CONFIG",
        "deleted cleanup.policy=delete,compact DYNAMIC_TOPIC_CONFIG",
        "refused InvalidConfigurationException",
        "after-refusal retention.ms=3600000 DYNAMIC_TOPIC_CONFIG",
        "after-refusal segment.ms=604800000 DEFAULT_CONFIG",
    }
    missing = expected - lines
    assert not missing, f"missing {sorted(missing)} in:\n{out}"
