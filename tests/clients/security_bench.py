#!/usr/bin/env python3
"""Produce and catch-up throughput over PLAINTEXT and SASL_SSL (PLAIN over TLS 1.3), on the
broker TEST_BROKER names (millrace, or Apache Kafka with TEST_BROKER=kafka). A measurement for
docs/BENCHMARKS.md, not a test.

    .venv/bin/python tests/clients/security_bench.py [--records 300000] [--size 1024] \
        [--client confluent|kcat]

One broker with both listeners (a CA and broker certificate made by openssl, the key encrypted
as Kafka's PEM keystores need); `throughput.py` runs against each listener in turn, each on a
new topic, and a table line per listener is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from brokerproc import BrokerProcess, free_port
from securehelp import ALICE, encrypt_key, jaas_properties, make_certs

HERE = Path(__file__).resolve().parent
KEY_PASSWORD = "bench-keystore-secret"


def start(d: Path) -> tuple[BrokerProcess, int, Path]:
    ca = make_certs(d)
    encrypt_key(d, "broker.key", "broker.3des.key", KEY_PASSWORD, "-v1", "PBE-SHA1-3DES")
    (d / "keystore.pem").write_text((d / "broker.3des.key").read_text()
                                    + (d / "broker.pem").read_text())
    b = BrokerProcess(d / "broker")
    sasl_ssl = free_port()
    listeners = {"PLAINTEXT": b.port, "SASL_SSL": sasl_ssl}
    protocols = {n: n for n in listeners}
    bound = dict(listeners)
    if b.kind == "kafka":
        b.controller_port = free_port()
        bound["CONTROLLER"] = b.controller_port
        protocols["CONTROLLER"] = "PLAINTEXT"
    b.properties.update({
        "listeners": ",".join(f"{n}://127.0.0.1:{p}" for n, p in bound.items()),
        "advertised.listeners": ",".join(f"{n}://127.0.0.1:{p}" for n, p in listeners.items()),
        "listener.security.protocol.map": ",".join(f"{n}:{p}" for n, p in protocols.items()),
        "inter.broker.listener.name": "PLAINTEXT",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(d / "keystore.pem"),
        "ssl.key.password": KEY_PASSWORD,
        "sasl.enabled.mechanisms": "PLAIN",
        **jaas_properties("sasl_ssl"),
    })
    b.start()
    return b, sasl_ssl, ca


def measure(bootstrap: str, extra: list[str], args, label: str) -> dict:
    cmd = [sys.executable, str(HERE / "throughput.py"), "--bootstrap", bootstrap,
           "--records", str(args.records), "--size", str(args.size), "--client", args.client,
           "--label", label]
    for kv in extra:
        cmd += ["-X", kv]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    print(out, end="")
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--client", choices=["confluent", "kcat"], default="confluent")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        b, sasl_ssl, ca = start(Path(tmp))
        try:
            secure = ["security.protocol=SASL_SSL", "sasl.mechanisms=PLAIN",
                      f"sasl.username={ALICE[0]}", f"sasl.password={ALICE[1]}",
                      f"ssl.ca.location={ca}"]
            rows = [("PLAINTEXT", measure(b.bootstrap, [], args, f"{b.kind} PLAINTEXT")),
                    ("SASL_SSL", measure(f"127.0.0.1:{sasl_ssl}", secure, args,
                                         f"{b.kind} SASL_SSL"))]
        finally:
            b.stop()
    print("\n| broker | listener | produce MB/s | catch-up MB/s |")
    for listener, r in rows:
        print(f"| {b.kind} | {listener} | {r['produce_mb_s']} | {r['consume_mb_s']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
