"""kcat and the Java client over the secured listeners, against millrace and Apache Kafka 4.4
alike (TEST_BROKER=kafka): one broker with PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL listeners
and an MTLS listener (SSL with `ssl.client.auth=required`), configured with Kafka's own keys: a
PEM keystore file whose key is encrypted (`ssl.key.password`; Kafka's PEM keystore files require
it), per-listener JAAS lines, a PEM truststore for the client certificates.

- kcat: produce and consume over each of the four listeners, PLAIN on the SASL ones;
  SCRAM-SHA-256 and SCRAM-SHA-512 on both SASL listeners with a user made through
  AlterUserScramCredentials; a wrong password exits non-zero with an authentication error.
  librdkafka before 2.6.1 (Debian's kcat has 2.0.2) repeats the client nonce in its SCRAM
  client-final message, which Kafka 4.x refuses and so must millrace (CVE-2024-56128); that
  refusal is a test of its own, and the SCRAM round trips run kcat on the librdkafka of the
  confluent-kafka wheel.
- The Java client (kafka-clients 4.4, java/RoundTrip.java with a client properties file): SCRAM-
  SHA-512 over SASL_SSL, PLAIN over SASL_PLAINTEXT, mTLS with a PEM keystore whose PKCS#8 key is
  encrypted as PBES2/AES-256-CBC (on a JVM that can read it: JDK 17 cannot) and, separately, as
  the legacy PBE-SHA1-3DES; a wrong password is a SaslAuthenticationException and a client
  without a certificate on the mTLS listener an SslAuthenticationException.

Certificates, librdkafka settings and SCRAM users come from securehelp.py (shared with
test_security.py, which covers the Python clients on millrace).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ScramMechanism

from brokerproc import BrokerProcess, free_port
from securehelp import (ALICE, PLAIN_JAAS, SCRAM_JAAS, add_scram_user, encrypt_key, jaas_properties,
                        librdkafka_config, make_certs, make_client_cert)
from test_java_client import DEPS, SOURCE
from test_kcat import assert_same_lines, lines_payload

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(shutil.which("openssl") is None,
                       reason="openssl is not installed (scripts/install-test-deps.sh)"),
]

needs_kcat = pytest.mark.skipif(shutil.which("kcat") is None,
                                reason="kcat not installed (scripts/install-test-deps.sh)")
needs_java = pytest.mark.skipif(
    shutil.which("javac") is None or not list(DEPS.glob("kafka-clients-*.jar")),
    reason="javac or .deps/java missing (scripts/install-test-deps.sh)")

LISTENERS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
KEY_PASSWORD = "keystore-secret"
CLIENT_KEY_PASSWORD = "client-key-secret"
SCRAM_USER = ("scram-user", "scram-user-secret")
KCAT_TIMEOUT_S = 60
JAVA_TIMEOUT_S = 150
# librdkafka sends the SCRAM nonce RFC 5802 asks for from this version on (librdkafka#4895).
SCRAM_FIXED = (2, 6, 1)


@dataclass
class Secured:
    broker: BrokerProcess
    ports: dict[str, int]  # the four protocols and MTLS
    ca: Path
    dir: Path


def broker_properties(b: BrokerProcess, d: Path, ports: dict[str, int]) -> dict[str, str]:
    """Kafka's keys for the five listeners; Kafka also needs its controller listener named."""
    listeners = {**ports}
    protocols = {name: name for name in LISTENERS} | {"MTLS": "SSL"}
    if b.kind == "kafka":
        b.controller_port = free_port()
        listeners["CONTROLLER"] = b.controller_port
        protocols["CONTROLLER"] = "PLAINTEXT"
    return {
        "listeners": ",".join(f"{n}://127.0.0.1:{p}" for n, p in listeners.items()),
        "advertised.listeners": ",".join(f"{n}://127.0.0.1:{p}" for n, p in ports.items()),
        "listener.security.protocol.map": ",".join(f"{n}:{p}" for n, p in protocols.items()),
        "inter.broker.listener.name": "PLAINTEXT",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(d / "keystore-encrypted.pem"),
        "ssl.key.password": KEY_PASSWORD,
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        **jaas_properties("sasl_plaintext", "sasl_ssl"),
        "listener.name.mtls.ssl.client.auth": "required",
        "listener.name.mtls.ssl.truststore.type": "PEM",
        "listener.name.mtls.ssl.truststore.location": str(d / "ca.pem"),
    }


@pytest.fixture(scope="module")
def secured(tmp_path_factory) -> Secured:
    d = tmp_path_factory.mktemp("secured")
    ca = make_certs(d)
    # Kafka on JDK 17 reads only PBES1 encrypted PEM keys (see java_for_keystore).
    encrypt_key(d, "broker.key", "broker.3des.key", KEY_PASSWORD, "-v1", "PBE-SHA1-3DES")
    keystore = (d / "broker.3des.key").read_text() + (d / "broker.pem").read_text()
    (d / "keystore-encrypted.pem").write_text(keystore)
    make_client_cert(d, "client", "/O=millrace/OU=tests/CN=java-client")
    for form, how in (("aes256", ("-v2", "aes-256-cbc")), ("3des", ("-v1", "PBE-SHA1-3DES"))):
        encrypt_key(d, "client.key", f"client.{form}.key", CLIENT_KEY_PASSWORD, *how)
        keystore = (d / f"client.{form}.key").read_text() + (d / "client.pem").read_text()
        (d / f"client-{form}.pem").write_text(keystore)
    b = BrokerProcess(d / "broker")
    ports = {"PLAINTEXT": b.port, **{n: free_port() for n in (*LISTENERS[1:], "MTLS")}}
    b.properties.update(broker_properties(b, d, ports))
    b.start()
    # Kafka opens the broker port first; wait until the secured listeners take logins too.
    wait_for_login(librdkafka_config("SASL_SSL", ports["SASL_SSL"], ca))
    yield Secured(b, ports, ca, d)
    b.stop()


@pytest.fixture(scope="module")
def scram_user(secured) -> tuple[str, str]:
    """SCRAM_USER with a SCRAM-SHA-256 and a SCRAM-SHA-512 credential, usable on both SASL
    listeners."""
    for mechanism in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512):
        add_scram_user(secured.ports, secured.ca, SCRAM_USER[0], mechanism, SCRAM_USER[1])
    for name in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
        conf = librdkafka_config("SASL_SSL", secured.ports["SASL_SSL"], secured.ca, SCRAM_USER,
                                 name)
        wait_for_login(conf)
    return SCRAM_USER


def wait_for_login(conf: dict, timeout_s: float = 30) -> None:
    """Until a metadata request with `conf` succeeds: a new SCRAM credential reaches a Kafka
    broker through its metadata log, a moment after AlterUserScramCredentials answers."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            AdminClient(conf).list_topics(timeout=5)
            return
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


# --- kcat --------------------------------------------------------------------------------------

def kcat_args(conf: dict) -> list[str]:
    """librdkafka settings as kcat's -b and -X options."""
    args = ["-b", conf["bootstrap.servers"]]
    for key, value in conf.items():
        if key != "bootstrap.servers":
            args += ["-X", f"{key}={value}"]
    return args


def kcat(conf: dict, *args: str, stdin: bytes | None = None,
         env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["kcat", *kcat_args(conf), *args], input=stdin, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=KCAT_TIMEOUT_S)


def librdkafka_version(env: dict | None = None) -> tuple[int, ...]:
    """The librdkafka version kcat runs on, from `kcat -V`."""
    out = subprocess.run(["kcat", "-V"], env=env, capture_output=True, text=True).stdout
    found = re.search(r"librdkafka (\d+)\.(\d+)\.(\d+)", out)
    assert found, out
    return tuple(int(n) for n in found.groups())


@pytest.fixture(scope="module")
def scram_kcat_env(tmp_path_factory) -> dict:
    """An environment in which kcat runs on a librdkafka whose SCRAM works with Kafka 4.x:
    librdkafka before 2.6.1 sends the client nonce twice in its client-final message
    (librdkafka#4895), which Kafka 4.x and millrace refuse as RFC 5802 and CVE-2024-56128 say.
    Debian's kcat has 2.0.2; then kcat is given the librdkafka of the confluent-kafka wheel."""
    env = dict(os.environ)
    if librdkafka_version(env) >= SCRAM_FIXED:
        return env
    import confluent_kafka
    libs = Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs"
    found = sorted(libs.glob("librdkafka*.so.1"))
    if not found:
        pytest.skip(f"kcat has librdkafka {librdkafka_version(env)} and {libs} has none newer")
    lib_dir = tmp_path_factory.mktemp("kcat-librdkafka")
    (lib_dir / "librdkafka.so.1").symlink_to(found[0])
    env["LD_LIBRARY_PATH"] = str(lib_dir)
    assert librdkafka_version(env) >= SCRAM_FIXED
    return env


def kcat_round_trip(conf: dict, n: int, seed: int, env: dict | None = None) -> None:
    topic = f"sec-kcat-{uuid.uuid4().hex[:8]}"
    payload = lines_payload(n, seed)
    produced = kcat(conf, "-P", "-t", topic, "-X", "acks=all", stdin=payload, env=env)
    assert produced.returncode == 0, produced.stderr.decode()
    consumed = kcat(conf, "-C", "-t", topic, "-e", "-o", "beginning", "-q", env=env)
    assert consumed.returncode == 0, consumed.stderr.decode()
    assert_same_lines(payload, consumed.stdout)


def assert_authentication_failed(listed: subprocess.CompletedProcess) -> None:
    stderr = listed.stderr.decode(errors="replace")
    assert listed.returncode != 0, stderr
    assert "Authentication failed" in stderr, stderr


@needs_kcat
@pytest.mark.parametrize("protocol", LISTENERS)
def test_kcat_round_trip_on_every_listener(secured, protocol):
    conf = librdkafka_config(protocol, secured.ports[protocol], secured.ca)
    kcat_round_trip(conf, n=2000, seed=LISTENERS.index(protocol))


@needs_kcat
@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_kcat_scram(secured, scram_user, scram_kcat_env, protocol, mechanism):
    conf = librdkafka_config(protocol, secured.ports[protocol], secured.ca, scram_user, mechanism)
    kcat_round_trip(conf, n=500, seed=7, env=scram_kcat_env)


@needs_kcat
@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_kcat_before_librdkafka_2_6_1_is_refused_for_its_scram_nonce(secured, scram_user,
                                                                     mechanism):
    """Kafka 4.x refuses these clients' SCRAM logins, and so must millrace: accepting a nonce
    other than client + server nonce is CVE-2024-56128."""
    if librdkafka_version() >= SCRAM_FIXED:
        pytest.skip(f"kcat's librdkafka {librdkafka_version()} sends the right nonce")
    conf = librdkafka_config("SASL_PLAINTEXT", secured.ports["SASL_PLAINTEXT"], secured.ca,
                             scram_user, mechanism)
    assert_authentication_failed(kcat(conf, "-L", "-m", "10"))
    if secured.broker.kind == "millrace":
        log = secured.broker.log_path.read_text(errors="replace")
        assert "Invalid client nonce in the final client message" in log


@needs_kcat
@pytest.mark.parametrize("protocol,mechanism", [
    ("SASL_PLAINTEXT", "PLAIN"), ("SASL_SSL", "PLAIN"), ("SASL_PLAINTEXT", "SCRAM-SHA-256"),
    ("SASL_SSL", "SCRAM-SHA-512"),
])
def test_kcat_wrong_password_fails_authentication(secured, scram_user, scram_kcat_env, protocol,
                                                  mechanism):
    user = ALICE[0] if mechanism == "PLAIN" else scram_user[0]
    conf = librdkafka_config(protocol, secured.ports[protocol], secured.ca, (user, "wrong"),
                             mechanism)
    # A kcat whose right-password SCRAM login works (test_kcat_scram), so the refusal is the
    # password's.
    assert_authentication_failed(kcat(conf, "-L", "-m", "10", env=scram_kcat_env))


# --- the Java client ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def classes(tmp_path_factory):
    """java/RoundTrip.java compiled as test_java_client.py compiles it."""
    out = tmp_path_factory.mktemp("java-classes")
    subprocess.run(["javac", "-d", str(out), "-cp", f"{DEPS}/*", str(SOURCE)], check=True,
                   timeout=120)
    return out


def jaas_line(module_line: str, user: tuple[str, str]) -> str:
    """A client's sasl.jaas.config: the login module of `module_line` with `user`."""
    module = module_line.split()[0]
    return f'{module} required username="{user[0]}" password="{user[1]}";'


def java_round_trip(secured, classes, tmp_path, listener: str, props: dict[str, str],
                    count: int = 300, java: str = "java") -> subprocess.CompletedProcess:
    """RoundTrip with `props` as its client properties file, on `listener`'s port."""
    conf = tmp_path / "client.properties"
    conf.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    topic = f"sec-java-{uuid.uuid4().hex[:8]}"
    return subprocess.run(
        [java, "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", f"{DEPS}/*:{classes}",
         "RoundTrip", f"127.0.0.1:{secured.ports[listener]}", topic, str(count), "1", "none",
         str(conf)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=JAVA_TIMEOUT_S)


def assert_round_trip_ok(proc: subprocess.CompletedProcess, count: int = 300) -> None:
    out, err = proc.stdout.decode(), proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err[-4000:]}"
    assert out.startswith(f"OK {count} records"), out


def java_major(java: str) -> int:
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    found = re.search(r'version "(\d+)', out)
    return int(found.group(1)) if found else 0


def java_for_keystore(form: str) -> str:
    """The JVM for a client keystore form: PATH's for the PBES1 form (PBE-SHA1-3DES); for PBES2
    (AES-256-CBC) the newest JVM found, as JDK 17's EncryptedPrivateKeyInfo names such keys
    "PBES2", for which it has no SecretKeyFactory, so Kafka's PEM keystore cannot decrypt them
    (JDK 25 names the scheme, PBEWithHmacSHA256AndAES_256, and can)."""
    path_java = shutil.which("java") or "java"
    if form != "aes256":
        return path_java
    found = {os.path.realpath(j): j for j in
             [path_java, *map(str, Path("/usr/lib/jvm").glob("*/bin/java"))]
             + ([f"{os.environ['JAVA_HOME']}/bin/java"] if "JAVA_HOME" in os.environ else [])
             if os.access(j, os.X_OK)}
    return max(found.values(), key=java_major)


def truststore(secured) -> dict[str, str]:
    return {"ssl.truststore.type": "PEM", "ssl.truststore.location": str(secured.ca)}


@needs_java
def test_java_scram_sha512_over_sasl_ssl(secured, scram_user, classes, tmp_path):
    proc = java_round_trip(secured, classes, tmp_path, "SASL_SSL", {
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.jaas.config": jaas_line(SCRAM_JAAS, scram_user), **truststore(secured)})
    assert_round_trip_ok(proc)


@needs_java
def test_java_plain_over_sasl_plaintext(secured, classes, tmp_path):
    proc = java_round_trip(secured, classes, tmp_path, "SASL_PLAINTEXT", {
        "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
        "sasl.jaas.config": jaas_line(PLAIN_JAAS, ALICE)})
    assert_round_trip_ok(proc)


@needs_java
@pytest.mark.parametrize("form", ["aes256", "3des"])
def test_java_mtls_with_an_encrypted_pem_keystore(secured, classes, tmp_path, form):
    keystore = secured.dir / f"client-{form}.pem"
    assert "ENCRYPTED PRIVATE KEY" in keystore.read_text()
    java = java_for_keystore(form)
    proc = java_round_trip(secured, classes, tmp_path, "MTLS", {
        "security.protocol": "SSL", **truststore(secured), "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(keystore), "ssl.key.password": CLIENT_KEY_PASSWORD},
        java=java)
    if b"PBES2 SecretKeyFactory not available" in proc.stderr:
        pytest.xfail(f"{java} (Java {java_major(java)}) cannot decrypt a PBES2 PEM key, and no "
                     "newer JVM is installed; the client fails before connecting")
    assert_round_trip_ok(proc)


@needs_java
@pytest.mark.parametrize("listener,mechanism", [
    ("SASL_PLAINTEXT", "PLAIN"), ("SASL_SSL", "SCRAM-SHA-512"),
])
def test_java_wrong_password_is_a_sasl_authentication_exception(secured, scram_user, classes,
                                                                tmp_path, listener, mechanism):
    module, user = (PLAIN_JAAS, ALICE[0]) if mechanism == "PLAIN" else (SCRAM_JAAS, scram_user[0])
    proc = java_round_trip(secured, classes, tmp_path, listener, {
        "security.protocol": listener, "sasl.mechanism": mechanism,
        "sasl.jaas.config": jaas_line(module, (user, "wrong")), **truststore(secured)}, count=5)
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 2, f"exit {proc.returncode}\n{err[-4000:]}"
    assert "org.apache.kafka.common.errors.SaslAuthenticationException" in err, err[-4000:]


@needs_java
def test_java_without_a_certificate_is_refused_by_the_mtls_listener(secured, classes, tmp_path):
    proc = java_round_trip(secured, classes, tmp_path, "MTLS",
                           {"security.protocol": "SSL", **truststore(secured)}, count=5)
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 2, f"exit {proc.returncode}\n{err[-4000:]}"
    assert "org.apache.kafka.common.errors.SslAuthenticationException" in err, err[-4000:]
