"""millrace-bench over the secured listeners, against millrace and Apache Kafka 4.4 alike
(TEST_BROKER=kafka): produce, then consume from the beginning, with a `--command-config` file of
Kafka client properties (the file Kafka's shell tools take) on SSL, SASL_PLAINTEXT and SASL_SSL,
with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512; the consume also joins a consumer group, so the
group coordinator's connection is secured too. A wrong password and a truststore without the
broker's CA each end the run with a clear error and a non-zero exit.

The broker and its five listeners, and the SCRAM user, are test_security_clients.py's fixtures.
The bench binary is MILLRACE_BENCH_BIN, by default target/release/millrace-bench.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

import test_security_clients as secured_broker
from brokerproc import REPO
from securehelp import ALICE, make_certs

pytestmark = secured_broker.pytestmark

# The broker with PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL and MTLS listeners, and a user with
# SCRAM-SHA-256 and SCRAM-SHA-512 credentials.
secured = secured_broker.secured
scram_user = secured_broker.scram_user

BENCH = Path(os.environ.get("MILLRACE_BENCH_BIN", REPO / "target/release/millrace-bench"))
BENCH_TIMEOUT_S = 120
PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"

# Skipped outside CI when the bench is not built; under CI (CI=true) a missing bench fails.
needs_bench = pytest.mark.skipif(not os.access(BENCH, os.X_OK) and os.environ.get("CI") != "true",
                                 reason=f"{BENCH} not built (cargo build --release)")


def command_config(path: Path, protocol: str, ca: Path, mechanism: str | None = None,
                   user: tuple[str, str] = ALICE) -> Path:
    """A Kafka client properties file for `protocol`, trusting `ca`, logging in as `user`."""
    lines = [f"security.protocol={protocol}"]
    if "SSL" in protocol:
        lines += ["ssl.truststore.type=PEM", f"ssl.truststore.location={ca}",
                  "ssl.endpoint.identification.algorithm=https"]
    if mechanism is not None:
        module = PLAIN_MODULE if mechanism == "PLAIN" else SCRAM_MODULE
        lines += [f"sasl.mechanism={mechanism}",
                  f'sasl.jaas.config={module} required \\\n'
                  f'    username="{user[0]}" password="{user[1]}";']
    path.write_text("\n".join(lines) + "\n")
    return path


def bench(workload: str, port: int, config: Path, topic: str, json_out: Path,
          *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BENCH), workload, "--bootstrap-server", f"127.0.0.1:{port}",
         "--command-config", str(config), "--topic", topic, "--record-size", "512",
         "--executors", "1", "--no-pin", "--quiet", "--json", str(json_out), *extra],
        capture_output=True, text=True, timeout=BENCH_TIMEOUT_S)


def results(json_out: Path) -> dict:
    return json.loads(json_out.read_text())["results"]


@needs_bench
@pytest.mark.parametrize("protocol,mechanism", [
    ("SSL", None),
    ("SASL_SSL", "PLAIN"),
    ("SASL_SSL", "SCRAM-SHA-256"),
    ("SASL_PLAINTEXT", "SCRAM-SHA-512"),
])
def test_bench_produces_and_consumes_over_a_secured_listener(secured, scram_user, tmp_path,
                                                             protocol, mechanism):
    user = ALICE if mechanism in (None, "PLAIN") else scram_user
    config = command_config(tmp_path / "client.properties", protocol, secured.ca, mechanism,
                            user)
    port = secured.ports[protocol]
    topic = f"bench-sec-{uuid.uuid4().hex[:8]}"
    produced = bench("produce", port, config, topic, tmp_path / "produce.json",
                     "--partitions", "2", "--rate", "2000", "--warmup", "0s", "--duration", "2s")
    assert produced.returncode == 0, produced.stderr
    p = results(tmp_path / "produce.json")
    assert p["produce_errors"] == 0 and not p["errors"], p["errors"]
    assert p["acked_records_total"] >= 1000, p
    consumed = bench("consume", port, config, topic, tmp_path / "consume.json",
                     "--from", "beginning", "--group", f"g-{topic}", "--consumers", "2",
                     "--duration", "30s")
    assert consumed.returncode == 0, consumed.stderr
    c = results(tmp_path / "consume.json")
    assert not c["errors"], c["errors"]
    # Catch-up reads to the end offsets seen at start: every acknowledged record, no more.
    assert c["consumed_records_total"] == p["acked_records_total"], (c, p)


@needs_bench
@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_a_wrong_password_ends_the_run_with_the_brokers_refusal(secured, scram_user, tmp_path,
                                                                 mechanism):
    user = (ALICE if mechanism == "PLAIN" else scram_user)[0]
    config = command_config(tmp_path / "client.properties", "SASL_SSL", secured.ca, mechanism,
                            (user, "not-the-password"))
    out = bench("produce", secured.ports["SASL_SSL"], config, f"bench-sec-{uuid.uuid4().hex[:8]}",
                tmp_path / "produce.json", "--partitions", "1", "--warmup", "0s",
                "--duration", "1s")
    assert out.returncode != 0
    assert "SASL_AUTHENTICATION_FAILED" in out.stderr, out.stderr
    assert f"SASL {mechanism} authentication as {user}" in out.stderr, out.stderr
    assert not (tmp_path / "produce.json").exists()


@needs_bench
def test_an_untrusted_broker_certificate_ends_the_run(secured, tmp_path):
    other = tmp_path / "other-ca"
    other.mkdir()
    config = command_config(tmp_path / "client.properties", "SSL", make_certs(other))
    out = bench("produce", secured.ports["SSL"], config, f"bench-sec-{uuid.uuid4().hex[:8]}",
                tmp_path / "produce.json", "--partitions", "1", "--duration", "1s")
    assert out.returncode != 0
    assert "TLS handshake failed" in out.stderr, out.stderr
    assert "invalid peer certificate" in out.stderr, out.stderr


@needs_bench
def test_an_unknown_key_in_the_command_config_is_refused(secured, tmp_path):
    config = tmp_path / "client.properties"
    config.write_text("security.protocol=SSL\nssl.truststore.locaton=/nowhere.pem\n")
    out = bench("produce", secured.ports["SSL"], config, "unused", tmp_path / "produce.json")
    assert out.returncode != 0
    assert "unknown key ssl.truststore.locaton" in out.stderr, out.stderr
    assert str(config) in out.stderr, out.stderr
