"""Shared by the TLS and SASL client tests (test_security.py, test_security_clients.py): test
certificates made with the openssl CLI, Kafka's listener keys for PLAIN and SCRAM, librdkafka
settings for each security protocol, a produce-then-consume round trip, and SCRAM users created
with confluent-kafka's admin client (AlterUserScramCredentials)."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                  UserScramCredentialUpsertion)

TIMEOUT_S = 20
ALICE = ("alice", "alice-secret")
PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              'username="admin" password="admin-secret" user_admin="admin-secret" '
              'user_alice="alice-secret";')
SCRAM_JAAS = "org.apache.kafka.common.security.scram.ScramLoginModule required;"


def openssl(d: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)


def make_certs(d: Path) -> Path:
    """A CA (ca.pem, ca.key) and a broker certificate for localhost/127.0.0.1 (broker.pem, its
    PKCS#8 key broker.key) in keystore.pem (the key, then the certificate). Returns the CA
    file."""
    openssl(d, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key")
    openssl(d, "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=millrace-test-ca",
            "-days", "2", "-out", "ca.pem", "-addext", "basicConstraints=critical,CA:TRUE")
    openssl(d, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "b.key")
    openssl(d, "pkcs8", "-topk8", "-nocrypt", "-in", "b.key", "-out", "broker.key")
    openssl(d, "req", "-new", "-key", "broker.key", "-subj", "/CN=localhost", "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1", "-out", "broker.csr")
    openssl(d, "x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-copy_extensions", "copy", "-out", "broker.pem")
    (d / "keystore.pem").write_text((d / "broker.key").read_text() + (d / "broker.pem").read_text())
    return d / "ca.pem"


def encrypt_key(d: Path, src: str, dst: str, password: str, *how: str) -> None:
    """PKCS#8 `src` encrypted into `dst` with `openssl pkcs8 -topk8 <how>` (e.g. `-v2
    aes-256-cbc` or the legacy `-v1 PBE-SHA1-3DES`)."""
    openssl(d, "pkcs8", "-topk8", "-in", src, "-out", dst, *how, "-passout", f"pass:{password}")


def make_client_cert(d: Path, name: str, subject: str) -> None:
    """`<name>.key` (plain PKCS#8) and `<name>.pem`, a client certificate signed by make_certs'
    CA in the same directory."""
    openssl(d, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.ec.key")
    openssl(d, "pkcs8", "-topk8", "-nocrypt", "-in", f"{name}.ec.key", "-out", f"{name}.key")
    openssl(d, "req", "-new", "-key", f"{name}.key", "-subj", subject, "-addext",
            "extendedKeyUsage=clientAuth", "-out", f"{name}.csr")
    openssl(d, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-copy_extensions", "copy", "-out", f"{name}.pem")


def jaas_properties(*listeners: str) -> dict[str, str]:
    """The per-listener, per-mechanism `sasl.jaas.config` keys: PLAIN users from PLAIN_JAAS,
    SCRAM users from the cluster metadata."""
    return {f"listener.name.{listener}.{mech}.sasl.jaas.config": jaas
            for listener in listeners
            for mech, jaas in (("plain", PLAIN_JAAS), ("scram-sha-256", SCRAM_JAAS),
                               ("scram-sha-512", SCRAM_JAAS))}


def librdkafka_config(protocol: str, port: int, ca: Path, user=ALICE, mechanism="PLAIN") -> dict:
    conf = {"bootstrap.servers": f"127.0.0.1:{port}", "security.protocol": protocol}
    if "SSL" in protocol:
        conf["ssl.ca.location"] = str(ca)
    if "SASL" in protocol:
        conf.update({"sasl.mechanisms": mechanism, "sasl.username": user[0],
                     "sasl.password": user[1]})
    return conf


def round_trip(conf: dict, n: int = 50, repeat: int = 1) -> None:
    """Produces n records (each its index `repeat` times over) to a new topic and reads them
    back in order with the same settings."""
    topic = f"sec-{uuid.uuid4().hex[:8]}"
    p = Producer(conf)
    values = [f"v{i}-".encode() * repeat for i in range(n)]
    for v in values:
        p.produce(topic, v)
    assert p.flush(TIMEOUT_S) == 0
    c = Consumer({**conf, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = []
    try:
        while len(got) < n:
            m = c.poll(TIMEOUT_S)
            assert m is not None and m.error() is None, m and m.error()
            got.append(m.value())
    finally:
        c.close()
    assert got == values


def scram_admin(ports, ca) -> AdminClient:
    return AdminClient(librdkafka_config("SASL_SSL", ports["SASL_SSL"], ca))


def add_scram_user(ports, ca, user: str, mechanism: ScramMechanism, password: str) -> None:
    """Creates (or replaces) `user`'s credential for `mechanism` with 4096 iterations."""
    up = UserScramCredentialUpsertion(user, ScramCredentialInfo(mechanism, 4096), password.encode())
    admin = scram_admin(ports, ca)  # held until the answer: a dropped client cancels it
    admin.alter_user_scram_credentials([up])[user].result(TIMEOUT_S)
