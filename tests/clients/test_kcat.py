"""kcat (Debian's, librdkafka 2.0.2): produce lines with -P, read them back with -C -e."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.skipif(shutil.which("kcat") is None,
                                reason="kcat not installed (scripts/install-test-deps.sh)")

KCAT_TIMEOUT_S = 90


def lines_payload(count: int, seed: int) -> bytes:
    """Distinct lines of varying length, so lost, duplicated or reordered messages all show."""
    rnd = random.Random(seed)
    out = []
    for i in range(count):
        filler = rnd.randbytes(rnd.randint(0, 48)).hex()
        out.append(f"{i:07d} {filler}\n")
    return "".join(out).encode()


def kcat(*args: str, stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(["kcat", *args], input=stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=KCAT_TIMEOUT_S)
    assert proc.returncode == 0, f"kcat {args} exited {proc.returncode}: {proc.stderr.decode()}"
    return proc.stdout


def produce_and_consume(broker, topic: str, payload: bytes, *extra: str) -> bytes:
    # -X acks=all is librdkafka's default too; say it, the test is about acknowledged data.
    kcat("-P", "-b", broker.bootstrap, "-t", topic, "-X", "acks=all", *extra, stdin=payload)
    return kcat("-C", "-b", broker.bootstrap, "-t", topic, "-e", "-o", "beginning", "-q")


def assert_same_lines(sent: bytes, got: bytes) -> None:
    sent_lines, got_lines = sent.splitlines(), got.splitlines()
    assert len(got_lines) == len(sent_lines)
    # One partition: order is preserved, so compare the in-order checksum.
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(sent).hexdigest()


@pytest.mark.timeout(180)
def test_kcat_100k_roundtrip(broker, topic):
    payload = lines_payload(100_000, seed=1)
    got = produce_and_consume(broker, topic, payload)
    assert_same_lines(payload, got)


CODECS = ["gzip", "snappy", "lz4", "zstd"]


@pytest.mark.parametrize("codec", CODECS)
def test_kcat_compressed_roundtrip(broker, topic, codec):
    payload = lines_payload(10_000, seed=2 + CODECS.index(codec))
    got = produce_and_consume(broker, topic, payload, "-z", codec)
    assert_same_lines(payload, got)


def test_kcat_keys_and_metadata(broker, topic):
    payload = b"".join(f"key{i}:value{i}\n".encode() for i in range(100))
    kcat("-P", "-b", broker.bootstrap, "-t", topic, "-K", ":", stdin=payload)
    got = kcat("-C", "-b", broker.bootstrap, "-t", topic, "-e", "-o", "beginning", "-q",
               "-f", "%k=%s\n")
    assert got == payload.replace(b":", b"=")

    meta = json.loads(kcat("-L", "-J", "-b", broker.bootstrap, "-t", topic))
    topics = {t["topic"]: t for t in meta["topics"]}
    assert topic in topics, meta
    entry = topics[topic]
    assert "error" not in entry, entry
    assert len(entry["partitions"]) == 1
    assert entry["partitions"][0]["leader"] in {b["id"] for b in meta["brokers"]}
    assert any(b["name"].endswith(f":{broker.port}") for b in meta["brokers"]), meta["brokers"]
