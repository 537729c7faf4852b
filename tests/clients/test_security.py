"""TLS and SASL listeners with real clients (issue 21): one broker with a PLAINTEXT, an SSL, a
SASL_PLAINTEXT and a SASL_SSL listener, configured with Kafka's own keys (PEM keystore,
per-listener JAAS lines), certificates made by the test with openssl (IP SAN 127.0.0.1, so
clients verify the host name as they do by default). PLAIN users come from the JAAS line;
SCRAM-SHA-256/512 users are created with AlterUserScramCredentials (confluent-kafka's admin
client salts the password, the broker stores salt and keys in the cluster metadata).

Round trips with confluent-kafka (librdkafka), kafka-python and aiokafka over each listener;
then what must be refused, each with a clear log line and nothing else affected: a wrong
password, a plaintext client on a TLS port, a request before authentication, an oversized
frame before authentication, an unknown mechanism. Secrets are described as sensitive.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import struct
import uuid

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (AdminClient, ConfigResource, ScramCredentialInfo,
                                  ScramMechanism, UserScramCredentialDeletion,
                                  UserScramCredentialUpsertion)

import kwire as w
from brokerproc import free_port
from securehelp import (ALICE, TIMEOUT_S, add_scram_user, jaas_properties, librdkafka_config,
                        make_certs, round_trip, scram_admin)

pytestmark = [pytest.mark.millrace_only, pytest.mark.timeout(300)]

CAROL = ("carol", "carol-secret")


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    """(broker, {protocol: port}, ca file)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (scripts/install-test-deps.sh)")
    from brokerproc import BrokerProcess
    d = tmp_path_factory.mktemp("secure")
    ca = make_certs(d)
    b = BrokerProcess(d / "broker")
    ports = {"PLAINTEXT": b.port, "SSL": free_port(), "SASL_PLAINTEXT": free_port(),
             "SASL_SSL": free_port()}
    b.properties.update({
        "listeners": ",".join(f"{p}://127.0.0.1:{port}" for p, port in ports.items()),
        "advertised.listeners": ",".join(f"{p}://127.0.0.1:{port}" for p, port in ports.items()),
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(d / "keystore.pem"),
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        **jaas_properties("sasl_plaintext", "sasl_ssl"),
    })
    b.start()
    yield b, ports, ca
    b.stop()


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"])
def test_confluent_round_trip_on_every_listener(secure, protocol):
    _, ports, ca = secure
    # 200 records of about 500 bytes: several TLS records per fetch answer.
    round_trip(librdkafka_config(protocol, ports[protocol], ca), n=200, repeat=100)


def test_kafka_python_over_sasl_ssl(secure):
    from kafka import KafkaConsumer, KafkaProducer
    _, ports, ca = secure
    common = dict(bootstrap_servers=f"127.0.0.1:{ports['SASL_SSL']}", security_protocol="SASL_SSL",
                  sasl_mechanism="PLAIN", sasl_plain_username=ALICE[0],
                  sasl_plain_password=ALICE[1], ssl_cafile=str(ca))
    topic = f"sec-kp-{uuid.uuid4().hex[:6]}"
    p = KafkaProducer(**common)
    for i in range(50):
        p.send(topic, f"kp-{i}".encode())
    p.flush(TIMEOUT_S)
    p.close()
    c = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=TIMEOUT_S * 1000,
                      **common)
    got = [m.value for _, m in zip(range(50), c)]
    c.close()
    assert got == [f"kp-{i}".encode() for i in range(50)]


def test_aiokafka_over_ssl_and_sasl_plaintext(secure):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.helpers import create_ssl_context
    _, ports, ca = secure

    async def round_trip(**conf):
        topic = f"sec-aio-{uuid.uuid4().hex[:6]}"
        p = AIOKafkaProducer(**conf)
        await p.start()
        try:
            for i in range(20):
                await p.send_and_wait(topic, f"aio-{i}".encode())
        finally:
            await p.stop()
        c = AIOKafkaConsumer(topic, auto_offset_reset="earliest", **conf)
        await c.start()
        try:
            got = []
            while len(got) < 20:
                batch = await asyncio.wait_for(c.getmany(timeout_ms=1000), TIMEOUT_S)
                for msgs in batch.values():
                    got += [m.value for m in msgs]
            return got
        finally:
            await c.stop()

    want = [f"aio-{i}".encode() for i in range(20)]
    ssl_conf = dict(bootstrap_servers=f"127.0.0.1:{ports['SSL']}", security_protocol="SSL",
                    ssl_context=create_ssl_context(cafile=str(ca)))
    assert asyncio.run(round_trip(**ssl_conf)) == want
    sasl_conf = dict(bootstrap_servers=f"127.0.0.1:{ports['SASL_PLAINTEXT']}",
                     security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                     sasl_plain_username=ALICE[0], sasl_plain_password=ALICE[1])
    assert asyncio.run(round_trip(**sasl_conf)) == want


def log_text(broker) -> str:
    return broker.log_path.read_text(errors="replace")


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_a_wrong_password_is_refused_and_logged(secure, protocol):
    b, ports, ca = secure
    before = log_text(b).count("SASL authentication failed")
    conf = librdkafka_config(protocol, ports[protocol], ca, user=("alice", "wrong"))
    admin = AdminClient(conf)
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=5)
    assert log_text(b).count("SASL authentication failed") > before
    # Nothing else is affected: the right password still works.
    AdminClient(librdkafka_config(protocol, ports[protocol], ca)).list_topics(timeout=TIMEOUT_S)


def test_an_unknown_user_and_an_unknown_mechanism_are_refused(secure):
    _, ports, ca = secure
    conf = librdkafka_config("SASL_PLAINTEXT", ports["SASL_PLAINTEXT"], ca, user=("mallory", "x"))
    with pytest.raises(KafkaException):
        AdminClient(conf).list_topics(timeout=5)
    s = w.connect(ports["SASL_PLAINTEXT"])
    s.sendall(w.frame(w.header_v1(17, 1, 5) + w.string("GSSAPI")))
    reply = w.recv_frame(s)
    assert reply is not None
    correlation, error = struct.unpack(">ih", reply[:6])
    assert (correlation, error) == (5, 33)  # UNSUPPORTED_SASL_MECHANISM, mechanisms listed
    assert b"PLAIN" in reply
    assert w.closed_by_peer(s)


def test_a_plaintext_client_on_a_tls_port_is_closed(secure):
    b, ports, ca = secure
    s = w.connect(ports["SSL"])
    s.sendall(w.frame(w.header_v1(w.API_API_VERSIONS, 0, 1)))
    s.settimeout(TIMEOUT_S)
    got = b""
    while chunk := s.recv(4096):
        got += chunk
    # At most a TLS alert record (content type 21) telling the client why, then the close.
    assert got == b"" or got[0] == 21, got[:16]
    assert "TLS handshake failed" in log_text(b)
    AdminClient(librdkafka_config("SSL", ports["SSL"], ca)).list_topics(timeout=TIMEOUT_S)


def test_a_tls_client_with_the_wrong_ca_is_refused(secure, tmp_path):
    _, ports, _ = secure
    other = make_certs(tmp_path)
    ctx = ssl.create_default_context(cafile=str(other))
    with socket.create_connection(("127.0.0.1", ports["SSL"]), timeout=TIMEOUT_S) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def test_only_api_versions_and_sasl_before_authentication(secure):
    b, ports, _ = secure
    s = w.connect(ports["SASL_PLAINTEXT"])
    s.sendall(w.frame(w.header_v1(w.API_API_VERSIONS, 0, 1)))
    assert w.recv_frame(s) is not None, "ApiVersions is answered before authentication"
    s.sendall(w.frame(w.header_v1(w.API_METADATA, 1, 2) + w.i32(-1)))
    assert w.closed_by_peer(s)
    assert "request before SASL authentication" in log_text(b)


def test_an_oversized_frame_before_authentication_is_closed(secure):
    _, ports, _ = secure
    s = w.connect(ports["SASL_PLAINTEXT"])
    # sasl.server.max.receive.size is 512 KiB; 1 MiB is declared, nothing sent behind it.
    s.sendall(struct.pack(">i", 1 << 20))
    assert w.closed_by_peer(s)


def test_secrets_are_described_as_sensitive(secure):
    _, ports, ca = secure
    admin = AdminClient(librdkafka_config("SASL_SSL", ports["SASL_SSL"], ca))
    res = ConfigResource(ConfigResource.Type.BROKER, "0")
    configs = admin.describe_configs([res])[res].result(TIMEOUT_S)
    jaas = configs["listener.name.sasl_ssl.plain.sasl.jaas.config"]
    assert jaas.is_sensitive and jaas.value is None
    assert configs["ssl.keystore.location"].value.endswith("keystore.pem")


def test_scram_users_are_created_described_used_and_deleted(secure):
    _, ports, ca = secure
    admin = scram_admin(ports, ca)
    upserts = [UserScramCredentialUpsertion(CAROL[0], ScramCredentialInfo(m, it), CAROL[1].encode())
               for m, it in ((ScramMechanism.SCRAM_SHA_256, 8192),
                             (ScramMechanism.SCRAM_SHA_512, 4096))]
    for fut in admin.alter_user_scram_credentials(upserts).values():
        fut.result(TIMEOUT_S)
    described = admin.describe_user_scram_credentials([CAROL[0]])[CAROL[0]].result(TIMEOUT_S)
    infos = sorted((i.mechanism, i.iterations) for i in described.scram_credential_infos)
    assert infos == [(ScramMechanism.SCRAM_SHA_256, 8192), (ScramMechanism.SCRAM_SHA_512, 4096)]
    everyone = admin.describe_user_scram_credentials().result(TIMEOUT_S)
    assert CAROL[0] in everyone
    for protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            round_trip(librdkafka_config(protocol, ports[protocol], ca, CAROL, mech), n=20)
    wrong = librdkafka_config("SASL_SSL", ports["SASL_SSL"], ca, (CAROL[0], "nope"), "SCRAM-SHA-512")
    with pytest.raises(KafkaException):
        AdminClient(wrong).list_topics(timeout=5)
    deletion = UserScramCredentialDeletion(CAROL[0], ScramMechanism.SCRAM_SHA_512)
    admin.alter_user_scram_credentials([deletion])[CAROL[0]].result(TIMEOUT_S)
    gone = librdkafka_config("SASL_SSL", ports["SASL_SSL"], ca, CAROL, "SCRAM-SHA-512")
    with pytest.raises(KafkaException):
        AdminClient(gone).list_topics(timeout=5)
    round_trip(librdkafka_config("SASL_SSL", ports["SASL_SSL"], ca, CAROL, "SCRAM-SHA-256"), n=5)


def test_scram_credentials_kafka_refuses_are_refused(secure):
    _, ports, ca = secure
    admin = scram_admin(ports, ca)
    too_few = UserScramCredentialUpsertion(
        "dave", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 1000), b"pw")
    with pytest.raises(KafkaException, match="(?i)iterations"):
        admin.alter_user_scram_credentials([too_few])["dave"].result(TIMEOUT_S)
    missing = UserScramCredentialDeletion("nobody", ScramMechanism.SCRAM_SHA_256)
    with pytest.raises(KafkaException, match="does not exist"):
        admin.alter_user_scram_credentials([missing])["nobody"].result(TIMEOUT_S)
    with pytest.raises(KafkaException, match="does not exist"):
        admin.describe_user_scram_credentials(["nobody"])["nobody"].result(TIMEOUT_S)


def test_kafka_python_and_aiokafka_with_scram(secure):
    from kafka import KafkaProducer
    from aiokafka import AIOKafkaProducer
    from aiokafka.helpers import create_ssl_context
    _, ports, ca = secure
    add_scram_user(ports, ca, "erin", ScramMechanism.SCRAM_SHA_512, "erin-secret")
    topic = f"sec-scram-{uuid.uuid4().hex[:6]}"
    p = KafkaProducer(bootstrap_servers=f"127.0.0.1:{ports['SASL_SSL']}",
                      security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                      sasl_plain_username="erin", sasl_plain_password="erin-secret",
                      ssl_cafile=str(ca))
    p.send(topic, b"from kafka-python").get(TIMEOUT_S)
    p.close()

    async def aio():
        ap = AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{ports['SASL_SSL']}",
                              security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                              sasl_plain_username="erin", sasl_plain_password="erin-secret",
                              ssl_context=create_ssl_context(cafile=str(ca)))
        await ap.start()
        try:
            await ap.send_and_wait(topic, b"from aiokafka")
        finally:
            await ap.stop()
    asyncio.run(aio())


def test_scram_credentials_survive_a_restart(secure):
    """Last in the file: restarts the module's broker."""
    b, ports, ca = secure
    add_scram_user(ports, ca, "frank", ScramMechanism.SCRAM_SHA_256, "frank-secret")
    b.kill9()
    b.start()
    conf = librdkafka_config("SASL_SSL", ports["SASL_SSL"], ca, ("frank", "frank-secret"),
                             "SCRAM-SHA-256")
    round_trip(conf, n=5)
