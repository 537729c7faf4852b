"""ACLs with Kafka's StandardAuthorizer keys, the same assertions against millrace and (with
TEST_BROKER=kafka) Apache Kafka 4.4: CreateAcls/DescribeAcls/DeleteAcls with confluent-kafka's
admin client, and each decision seen by real clients over a SASL_PLAINTEXT listener (PLAIN
users admin, alice, bob): produce, consume with a group, Metadata listing only what a principal
may describe, transactions and idempotence, deny over allow, prefixed patterns, ACLs kept across
a restart, SECURITY_DISABLED without an authorizer.

The PLAINTEXT listener's principal is User:ANONYMOUS, a super user here as the brokers' own
traffic needs on Kafka (its inter-broker listener is PLAINTEXT); every decision tested goes
through the SASL listener.
"""

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation,
                                   AclPermissionType, AdminClient, NewTopic,
                                   ResourcePatternType, ResourceType)

import kwire
from brokerproc import BrokerProcess, free_port

TIMEOUT_S = 30
USERS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret"}
JAAS = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
        + " ".join(f'user_{u}="{p}"' for u, p in USERS.items()) + ";")
STANDARD = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


def secured(d, authorizer: bool = True) -> tuple[BrokerProcess, int]:
    """A broker with a PLAINTEXT and a SASL_PLAINTEXT listener; returns it and the SASL port."""
    b = BrokerProcess(d)
    sasl = free_port()
    plain = f"PLAINTEXT://127.0.0.1:{b.port}"
    secure = f"SASL_PLAINTEXT://127.0.0.1:{sasl}"
    listeners = f"{plain},{secure}"
    props = {
        "advertised.listeners": listeners,
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
    }
    if b.kind == "kafka":
        # The wrapper script reads the controller port from the data directory.
        controller = free_port()
        d.mkdir(parents=True, exist_ok=True)
        (d / "controller.port").write_text(str(controller))
        props["listeners"] = f"{listeners},CONTROLLER://127.0.0.1:{controller}"
        props["listener.security.protocol.map"] = (
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT")
    else:
        props["listeners"] = listeners
    if authorizer:
        props.update({"authorizer.class.name": STANDARD,
                      "super.users": "User:admin;User:ANONYMOUS"})
    b.properties.update(props)
    return b, sasl


@pytest.fixture(scope="module")
def acl_broker(tmp_path_factory):
    b, sasl = secured(tmp_path_factory.mktemp("acls") / "broker")
    b.start()
    yield b, sasl
    b.stop()


def conf(port: int, user: str) -> dict:
    return {"bootstrap.servers": f"127.0.0.1:{port}", "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": "PLAIN", "sasl.username": user, "sasl.password": USERS[user]}


def admin(port: int, user: str = "admin") -> AdminClient:
    return AdminClient(conf(port, user))


def allow(name: str, op: AclOperation, who: str = "User:alice",
          rtype: ResourceType = ResourceType.TOPIC,
          pattern: ResourcePatternType = ResourcePatternType.LITERAL,
          permission: AclPermissionType = AclPermissionType.ALLOW) -> AclBinding:
    return AclBinding(rtype, name, pattern, who, "*", op, permission)


def create(port: int, bindings: list, user: str = "admin") -> None:
    a = admin(port, user)  # kept until the answers are in: a dropped client fails them
    for f in a.create_acls(bindings).values():
        f.result(timeout=TIMEOUT_S)


def error_code(exc: BaseException):
    err = exc.args[0] if exc.args else None
    return err.code() if isinstance(err, KafkaError) else None


def make_topics(port: int, *names: str) -> None:
    a = admin(port)
    futures = a.create_topics([NewTopic(n, 1, 1) for n in names])
    for f in futures.values():
        f.result(timeout=TIMEOUT_S)


def produce_one(port: int, user: str, topic: str, extra: dict | None = None):
    """Delivers one record; returns None or the delivery error's code."""
    outcome = []
    p = Producer({**conf(port, user), "message.timeout.ms": 10000, **(extra or {})})
    p.produce(topic, b"v", on_delivery=lambda e, m: outcome.append(e))
    p.flush(TIMEOUT_S)
    assert outcome, "no delivery report"
    return None if outcome[0] is None else outcome[0].code()


def wait_until(check, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_without_an_authorizer_the_acl_apis_are_security_disabled(tmp_path):
    b, sasl = secured(tmp_path / "open", authorizer=False)
    b.start()
    try:
        # Raw frames: librdkafka's describe_acls drops DescribeAcls' top-level error.
        s = kwire.connect(b.port)
        any_filter = (kwire.i8(1) + kwire.string(None) + kwire.i8(1) + kwire.string(None)
                      + kwire.string(None) + kwire.i8(1) + kwire.i8(1))
        s.sendall(kwire.frame(kwire.header_v1(29, 1, 5) + any_filter))
        r = kwire.Reader(kwire.recv_frame(s))
        assert (r.i32(), r.i32(), r.i16()) == (5, 0, KafkaError.SECURITY_DISABLED)
        creation = (kwire.i32(1) + kwire.i8(2) + kwire.string("t") + kwire.i8(3)
                    + kwire.string("User:a") + kwire.string("*") + kwire.i8(3) + kwire.i8(3))
        s.sendall(kwire.frame(kwire.header_v1(30, 1, 6) + creation))
        r = kwire.Reader(kwire.recv_frame(s))
        assert (r.i32(), r.i32(), r.i32(), r.i16()) == (6, 0, 1, KafkaError.SECURITY_DISABLED)
        s.close()
        # Everybody may do everything: alice writes without any ACL.
        assert produce_one(sasl, "alice", f"open-{uuid.uuid4().hex[:6]}") is None
    finally:
        b.stop()


def test_produce_and_metadata_follow_topic_acls(acl_broker):
    _, sasl = acl_broker
    mine, other = f"alice-{uuid.uuid4().hex[:6]}", f"other-{uuid.uuid4().hex[:6]}"
    make_topics(sasl, mine, other)
    assert produce_one(sasl, "alice", mine) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    create(sasl, [allow("alice-", AclOperation.WRITE, pattern=ResourcePatternType.PREFIXED)])
    wait_until(lambda: produce_one(sasl, "alice", mine) is None, "alice's WRITE to apply")
    assert produce_one(sasl, "alice", other) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert produce_one(sasl, "bob", mine) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # WRITE implies DESCRIBE: alice's metadata lists her topics and hides the other.
    listed = set(admin(sasl, "alice").list_topics(timeout=TIMEOUT_S).topics)
    assert mine in listed and other not in listed
    assert other in set(admin(sasl).list_topics(timeout=TIMEOUT_S).topics)
    # Asked by name, a topic she may not describe is refused, whether or not it exists.
    md = admin(sasl, "alice").list_topics(topic=other, timeout=TIMEOUT_S)
    assert md.topics[other].error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_consumer_groups_need_read_on_the_group_and_the_topic(acl_broker):
    _, sasl = acl_broker
    topic, group = f"alice-c-{uuid.uuid4().hex[:6]}", f"g-{uuid.uuid4().hex[:6]}"
    make_topics(sasl, topic)
    p = Producer(conf(sasl, "admin"))
    for i in range(5):
        p.produce(topic, str(i).encode())
    p.flush(TIMEOUT_S)

    def consume(user: str):
        c = Consumer({**conf(sasl, user), "group.id": group, "auto.offset.reset": "earliest",
                      "enable.auto.commit": False})
        c.subscribe([topic])
        got, error = [], None
        deadline = time.monotonic() + 20
        try:
            while time.monotonic() < deadline and len(got) < 5 and error is None:
                m = c.poll(0.5)
                if m is None:
                    continue
                if m.error():
                    error = m.error().code()
                else:
                    got.append(m.value())
            if got:
                c.commit(asynchronous=False)
        except KafkaException as e:
            error = error_code(e)
        finally:
            c.close()
        return got, error

    got, error = consume("alice")
    assert not got and error == KafkaError.GROUP_AUTHORIZATION_FAILED
    create(sasl, [allow(group, AclOperation.READ, rtype=ResourceType.GROUP)])
    got, error = consume("alice")
    assert not got and error == KafkaError.TOPIC_AUTHORIZATION_FAILED
    create(sasl, [allow(topic, AclOperation.READ)])
    got, error = consume("alice")
    assert error is None and len(got) == 5
    # DescribeGroups with authorized operations: READ on the group implies DESCRIBE; bob, with
    # no ACL on it, is refused.
    a = admin(sasl, "alice")
    [f] = a.describe_consumer_groups([group], include_authorized_operations=True).values()
    described = f.result(timeout=TIMEOUT_S)
    assert set(described.authorized_operations) == {AclOperation.READ, AclOperation.DESCRIBE}
    b = admin(sasl, "bob")  # kept until the answer is in
    [f] = b.describe_consumer_groups([group]).values()
    with pytest.raises(KafkaException) as refused:
        f.result(timeout=TIMEOUT_S)
    assert error_code(refused.value) == KafkaError.GROUP_AUTHORIZATION_FAILED


def test_a_regex_subscription_assigns_only_topics_the_member_may_describe(acl_broker):
    """KIP-848 regex subscription (librdkafka, group.protocol=consumer): the broker resolves
    the expression to the matching topics the member's principal may describe, so alice, with
    READ on one of two matching topics, is assigned and consumes only that one (never a
    TOPIC_AUTHORIZATION_FAILED from the other), and ConsumerGroupDescribe shows her group."""
    _, sasl = acl_broker
    prefix = f"rx-{uuid.uuid4().hex[:6]}"
    visible, hidden, group = f"{prefix}-open", f"{prefix}-secret", f"g-{prefix}"
    make_topics(sasl, visible, hidden)
    p = Producer(conf(sasl, "admin"))
    for t in (visible, hidden):
        for i in range(3):
            p.produce(t, f"{t}-{i}".encode())
    p.flush(TIMEOUT_S)
    create(sasl, [allow(group, AclOperation.READ, rtype=ResourceType.GROUP),
                  allow(visible, AclOperation.READ)])
    c = Consumer({**conf(sasl, "alice"), "group.id": group, "group.protocol": "consumer",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([f"^{prefix}-.*"])
    got, errors = [], []

    def poll_until(deadline: float, enough) -> None:
        while time.monotonic() < deadline and not enough():
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                errors.append(m.error().code())
            else:
                got.append((m.topic(), m.value()))

    try:
        # Kafka resolves a new regex in the background: allow for its first heartbeats.
        poll_until(time.monotonic() + 45, lambda: len(got) >= 3)
        poll_until(time.monotonic() + 3, lambda: False)  # nothing else comes
        assigned = {tp.topic for tp in c.assignment()}
    finally:
        c.close()
    assert sorted(got) == [(visible, f"{visible}-{i}".encode()) for i in range(3)], got
    assert assigned == {visible}
    assert KafkaError.TOPIC_AUTHORIZATION_FAILED not in errors, errors
    a = admin(sasl, "alice")  # kept until the answer is in
    [f] = a.describe_consumer_groups([group]).values()
    assert f.result(timeout=TIMEOUT_S).group_id == group


def test_deny_wins_over_allow_and_cluster_operations_need_alter(acl_broker):
    _, sasl = acl_broker
    shared = f"shared-{uuid.uuid4().hex[:6]}"
    make_topics(sasl, shared)
    create(sasl, [allow(shared, AclOperation.ALL, who="User:*"),
                  allow(shared, AclOperation.WRITE,
                        permission=AclPermissionType.DENY)])
    wait_until(lambda: produce_one(sasl, "bob", shared) is None, "bob's WRITE to apply")
    assert produce_one(sasl, "alice", shared) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    with pytest.raises(KafkaException) as e:
        create(sasl, [allow("x", AclOperation.READ)], user="alice")
    assert error_code(e.value) == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    name, bob = f"bob-{uuid.uuid4().hex[:6]}", admin(sasl, "bob")
    with pytest.raises(KafkaException) as e:
        bob.create_topics([NewTopic(name, 1, 1)])[name].result(timeout=TIMEOUT_S)
    assert error_code(e.value) == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_transactions_and_idempotence_need_their_acls(acl_broker):
    _, sasl = acl_broker
    topic, txn = f"alice-tx-{uuid.uuid4().hex[:6]}", f"tx-{uuid.uuid4().hex[:6]}"
    make_topics(sasl, topic)
    # bob may write nowhere: an idempotent producer cannot get a producer id.
    code = produce_one(sasl, "bob", topic, {"enable.idempotence": True})
    assert code in (KafkaError.CLUSTER_AUTHORIZATION_FAILED,
                    KafkaError.TOPIC_AUTHORIZATION_FAILED), code
    create(sasl, [allow(topic, AclOperation.WRITE)])
    p = Producer({**conf(sasl, "alice"), "transactional.id": txn})
    with pytest.raises(KafkaException) as e:
        p.init_transactions(TIMEOUT_S)
    assert error_code(e.value) == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    create(sasl, [allow(txn, AclOperation.WRITE, rtype=ResourceType.TRANSACTIONAL_ID)])
    p = Producer({**conf(sasl, "alice"), "transactional.id": txn})
    p.init_transactions(TIMEOUT_S)
    p.begin_transaction()
    p.produce(topic, b"in a transaction")
    p.commit_transaction(TIMEOUT_S)


def test_describe_and_delete_acls_with_filters(acl_broker):
    _, sasl = acl_broker
    tag = uuid.uuid4().hex[:6]
    bindings = [allow(f"d-{tag}-a", AclOperation.READ),
                allow(f"d-{tag}-a", AclOperation.WRITE, who="User:bob"),
                allow(f"d-{tag}-", AclOperation.DESCRIBE, pattern=ResourcePatternType.PREFIXED)]
    create(sasl, bindings)
    create(sasl, bindings[:1])  # the same binding again: accepted, not stored twice
    a = admin(sasl)

    def described(name, pattern, principal=None):
        f = AclBindingFilter(ResourceType.TOPIC, name, pattern, principal, None,
                             AclOperation.ANY, AclPermissionType.ANY)
        return sorted((b.name, b.principal, b.operation.name, b.resource_pattern_type.name)
                      for b in a.describe_acls(f).result(timeout=TIMEOUT_S))

    assert described(f"d-{tag}-a", ResourcePatternType.MATCH) == sorted([
        (f"d-{tag}-a", "User:alice", "READ", "LITERAL"),
        (f"d-{tag}-a", "User:bob", "WRITE", "LITERAL"),
        (f"d-{tag}-", "User:alice", "DESCRIBE", "PREFIXED")])
    assert described(f"d-{tag}-a", ResourcePatternType.LITERAL, "User:bob") == [
        (f"d-{tag}-a", "User:bob", "WRITE", "LITERAL")]
    gone = a.delete_acls([AclBindingFilter(ResourceType.TOPIC, f"d-{tag}-a",
                                           ResourcePatternType.LITERAL, None, None,
                                           AclOperation.ANY, AclPermissionType.ANY)])
    removed = list(gone.values())[0].result(timeout=TIMEOUT_S)
    assert sorted(b.principal for b in removed) == ["User:alice", "User:bob"]
    assert described(f"d-{tag}-a", ResourcePatternType.MATCH) == [
        (f"d-{tag}-", "User:alice", "DESCRIBE", "PREFIXED")]
    with pytest.raises(KafkaException) as e:
        create(sasl, [AclBinding(ResourceType.BROKER, "not-the-cluster",
                                 ResourcePatternType.LITERAL, "User:alice", "*",
                                 AclOperation.ALTER, AclPermissionType.ALLOW)])
    assert error_code(e.value) == KafkaError.INVALID_REQUEST


def test_acls_survive_a_restart(tmp_path):
    b, sasl = secured(tmp_path / "restart")
    b.start()
    try:
        topic = f"keep-{uuid.uuid4().hex[:6]}"
        make_topics(sasl, topic)
        create(sasl, [allow(topic, AclOperation.WRITE)])
        wait_until(lambda: produce_one(sasl, "alice", topic) is None, "alice's WRITE")
        b.stop()
        b.start()
        wait_until(lambda: produce_one(sasl, "alice", topic) is None, "alice's WRITE after restart",
                   timeout=60)
        assert produce_one(sasl, "bob", topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    finally:
        b.stop()

