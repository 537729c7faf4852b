"""The schema registry (millrace.schema.registry.listen) through Confluent's own Python client
and serializers, and over HTTP: subjects, versions, ids, references, compatibility levels,
modes, soft and hard deletes; Avro, JSON Schema and Protobuf records produced with the
serializers and read back with the deserializers through the broker; the compatibility tables
of the schema crate (schema/tests/*_pairs.json) pushed through the HTTP API, Avro's also
checked against Python's `avro` package; the registry's state surviving a restart, since it
lives in the `_schemas` topic.

The registry is a Kafka client of the cluster it keeps `_schemas` in, so it runs here as a
millrace process in front of the session broker: millrace, or Apache Kafka with
TEST_BROKER=kafka.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from brokerproc import BrokerProcess, broker_kind
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from resthelp import call, create

REPO = Path(__file__).resolve().parents[2]
CT = "application/vnd.schemaregistry.v1+json"


def start_registry(broker, data_dir) -> BrokerProcess:
    p = BrokerProcess(data_dir, kind="millrace")
    p.extra_args = ["--override", f"millrace.schema.registry.bootstrap.servers={broker.bootstrap}"]
    p.start()
    return p


@pytest.fixture(scope="module")
def registry_proc(broker, tmp_path_factory):
    p = start_registry(broker, tmp_path_factory.mktemp("registry"))
    yield p
    p.stop()


@pytest.fixture
def registry(registry_proc) -> str:
    return f"http://127.0.0.1:{registry_proc.registry_port}"


@pytest.fixture
def subject() -> str:
    return f"s-{uuid.uuid4().hex[:10]}"


def avro_record(*fields: tuple[str, object], default: dict | None = None) -> str:
    out = []
    for name, typ in fields:
        f = {"name": name, "type": typ}
        if default and name in default:
            f["default"] = default[name]
        out.append(f)
    return json.dumps({"type": "record", "name": "User", "namespace": "acme", "fields": out})


def post(url: str, body) -> tuple[int, object]:
    status, doc, _ = call(url, "POST", body, CT)
    return status, doc


def test_register_lookup_versions_and_ids_with_confluents_client(registry, subject):
    sr = SchemaRegistryClient({"url": registry})
    v1 = avro_record(("name", "string"))
    id1 = sr.register_schema(subject, Schema(v1, "AVRO"))
    # The same schema again (other whitespace): the same id, no new version.
    assert sr.register_schema(subject, Schema(json.dumps(json.loads(v1), indent=2), "AVRO")) == id1
    v2 = avro_record(("name", "string"), ("age", "int"), default={"age": 0})
    id2 = sr.register_schema(subject, Schema(v2, "AVRO"))
    assert id2 != id1
    assert sr.get_versions(subject) == [1, 2]
    latest = sr.get_latest_version(subject)
    assert (latest.version, latest.schema_id) == (2, id2)
    assert json.loads(latest.schema.schema_str) == json.loads(v2)
    found = sr.lookup_schema(subject, Schema(v1, "AVRO"))
    assert (found.version, found.schema_id) == (1, id1)
    assert json.loads(sr.get_schema(id1).schema_str) == json.loads(v1)
    # The same schema under another subject keeps its id.
    assert sr.register_schema(f"{subject}-other", Schema(v1, "AVRO")) == id1
    status, body, _ = call(f"{registry}/schemas/ids/{id1}/subjects")
    assert status == 200 and sorted(body) == sorted([subject, f"{subject}-other"])
    status, body, _ = call(f"{registry}/schemas/ids/{id1}/versions")
    assert {"subject": subject, "version": 1} in body
    assert subject in sr.get_subjects()
    status, body, _ = call(f"{registry}/schemas/types")
    assert sorted(body) == ["AVRO", "JSON", "PROTOBUF"]


def test_compatibility_levels_and_the_check_endpoint(registry, subject):
    sr = SchemaRegistryClient({"url": registry})
    sr.register_schema(subject, Schema(avro_record(("a", "int")), "AVRO"))
    no_default = Schema(avro_record(("a", "int"), ("b", "string")), "AVRO")
    # BACKWARD (the default): a new field needs a default.
    assert sr.test_compatibility(subject, no_default) is False
    with pytest.raises(SchemaRegistryError) as e:
        sr.register_schema(subject, no_default)
    assert e.value.http_status_code == 409
    status, body = post(f"{registry}/compatibility/subjects/{subject}/versions/latest"
                        "?verbose=true", {"schema": no_default.schema_str})
    assert status == 200 and body["is_compatible"] is False
    assert any("READER_FIELD_MISSING_DEFAULT_VALUE" in m for m in body["messages"])
    # FORWARD: the old schema must read the new one's records, so adding a field is fine.
    assert sr.set_compatibility(subject, "FORWARD") == {"compatibility": "FORWARD"}
    assert sr.get_compatibility(subject) == "FORWARD"
    assert sr.test_compatibility(subject, no_default) is True
    sr.register_schema(subject, no_default)
    # FORWARD_TRANSITIVE against both versions: dropping "a" (no default) breaks version 1 too.
    sr.set_compatibility(subject, "FULL_TRANSITIVE")
    only_b = Schema(avro_record(("b", "string")), "AVRO")
    assert sr.test_compatibility(subject, only_b) is False
    sr.set_compatibility(subject, "NONE")
    assert sr.test_compatibility(subject, only_b) is True
    # The global level, and a subject without its own.
    status, body, _ = call(f"{registry}/config")
    assert status == 200 and body["compatibilityLevel"] == "BACKWARD"
    status, body, _ = call(f"{registry}/config/{subject}-none")
    assert status == 404 and body["error_code"] == 40408
    status, body, _ = call(f"{registry}/config/{subject}-none?defaultToGlobal=true")
    assert body == {"compatibilityLevel": "BACKWARD"}
    status, body, _ = call(f"{registry}/config/{subject}", "DELETE")
    assert status == 200 and body == {"compatibilityLevel": "NONE"}
    status, body, _ = call(f"{registry}/config", "PUT", {"compatibility": "SOMETIMES"}, CT)
    assert status == 422 and body["error_code"] == 42203


def test_soft_and_hard_deletes_and_modes(registry, subject):
    sr = SchemaRegistryClient({"url": registry})
    a = f"a_{subject[2:]}"  # a schema no other test registers (ids are global)
    id1 = sr.register_schema(subject, Schema(avro_record((a, "int")), "AVRO"))
    sr.register_schema(subject, Schema(avro_record((a, "int"), ("b", "int"), default={"b": 0}),
                                       "AVRO"))
    # A permanent delete needs a soft one first.
    status, body, _ = call(f"{registry}/subjects/{subject}/versions/1?permanent=true", "DELETE")
    assert status == 404 and body["error_code"] == 40407
    status, body, _ = call(f"{registry}/subjects/{subject}/versions/1", "DELETE")
    assert status == 200 and body == 1
    assert sr.get_versions(subject) == [2]
    status, body, _ = call(f"{registry}/subjects/{subject}/versions?deleted=true")
    assert body == [1, 2]
    status, body, _ = call(f"{registry}/subjects/{subject}/versions/1")
    assert status == 404 and body["error_code"] == 40402
    status, body, _ = call(f"{registry}/subjects/{subject}/versions/1?deleted=true")
    assert status == 200 and body["id"] == id1
    status, body, _ = call(f"{registry}/subjects/{subject}?permanent=true", "DELETE")
    assert status == 404 and body["error_code"] == 40405
    assert sr.delete_subject(subject) == [2]
    assert subject not in sr.get_subjects()
    status, body, _ = call(f"{registry}/subjects?deleted=true")
    assert subject in body
    assert sorted(sr.delete_subject(subject, permanent=True)) == [1, 2]
    status, body, _ = call(f"{registry}/subjects/{subject}/versions?deleted=true")
    assert status == 404 and body["error_code"] == 40401
    status, body, _ = call(f"{registry}/schemas/ids/{id1}")
    assert status == 404 and body["error_code"] == 40403
    # A read-only subject refuses writes, and says so.
    sr.register_schema(subject, Schema(avro_record(("a", "int")), "AVRO"))
    status, body, _ = call(f"{registry}/mode/{subject}", "PUT", {"mode": "READONLY"}, CT)
    assert status == 200 and body == {"mode": "READONLY"}
    status, body = post(f"{registry}/subjects/{subject}/versions",
                        {"schema": avro_record(("z", "int"))})
    assert status == 422 and body["error_code"] == 42205
    assert call(f"{registry}/mode/{subject}", "DELETE")[0] == 200
    status, body, _ = call(f"{registry}/mode/{subject}")
    assert body == {"mode": "READWRITE"}
    status, body, _ = call(f"{registry}/mode", "PUT", {"mode": "WRITEONLY"}, CT)
    assert status == 422 and body["error_code"] == 42204


def test_references_and_referencedby(registry, subject):
    sr = SchemaRegistryClient({"url": registry})
    address = json.dumps({"type": "record", "name": "Address", "namespace": "acme",
                          "fields": [{"name": "city", "type": "string"}]})
    addr_subject = f"{subject}-address"
    addr_id = sr.register_schema(addr_subject, Schema(address, "AVRO"))
    user = json.dumps({"type": "record", "name": "User", "namespace": "acme",
                       "fields": [{"name": "home", "type": "acme.Address"}]})
    refs = [SchemaReference("acme.Address", addr_subject, 1)]
    user_id = sr.register_schema(subject, Schema(user, "AVRO", refs))
    got = sr.get_schema(user_id)
    assert [(r.name, r.subject, r.version) for r in got.references] == \
        [("acme.Address", addr_subject, 1)]
    status, body, _ = call(f"{registry}/subjects/{addr_subject}/versions/1/referencedby")
    assert status == 200 and body == [user_id]
    # A referenced schema cannot be deleted.
    status, body, _ = call(f"{registry}/subjects/{addr_subject}/versions/1", "DELETE")
    assert status == 422 and body["error_code"] == 42206
    # Without the reference the schema does not parse.
    status, body = post(f"{registry}/subjects/{subject}-bare/versions", {"schema": user})
    assert status == 422 and body["error_code"] == 42201
    assert addr_id != user_id


def test_bad_requests(registry, subject):
    for body, code in (({"schema": "{\"type\": \"nonsense\"}"}, 42201),
                       ({"schema": "{", "schemaType": "JSON"}, 42201),
                       ({"schema": "message {", "schemaType": "PROTOBUF"}, 42201),
                       ({"schema": "\"int\"", "schemaType": "XML"}, 42201),
                       ({"nothing": 1}, 42201)):
        status, doc = post(f"{registry}/subjects/{subject}/versions", body)
        assert status == 422 and doc["error_code"] == code, (body, doc)
    status, doc, _ = call(f"{registry}/subjects/{subject}/versions", "POST", b"{nope", CT)
    assert status == 400, doc
    status, doc, _ = call(f"{registry}/subjects/{subject}/versions/latest")
    assert status == 404 and doc["error_code"] == 40401
    post(f"{registry}/subjects/{subject}/versions", {"schema": "\"int\""})
    for v, code in (("7", 40402), ("zero", 42202), ("0", 42202)):
        status, doc, _ = call(f"{registry}/subjects/{subject}/versions/{v}")
        assert doc["error_code"] == code, (v, doc)
    status, doc, _ = call(f"{registry}/schemas/ids/999999")
    assert status == 404 and doc["error_code"] == 40403
    status, doc = post(f"{registry}/subjects/{subject}", {"schema": "\"long\""})
    assert status == 404 and doc["error_code"] == 40403
    status, doc, _ = call(f"{registry}/nowhere")
    assert status == 404


def roundtrip(broker, topic: str, serializer, deserializer, values: list) -> list:
    create(broker, topic, 1)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for v in values:
        p.produce(topic, value=serializer(v, SerializationContext(topic, MessageField.VALUE)))
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"{topic}-r",
                  "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    out = []
    for _ in range(120):
        if len(out) >= len(values):
            break
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            out.append(deserializer(m.value(), SerializationContext(topic, MessageField.VALUE)))
    c.close()
    return out


def test_avro_serializer_end_to_end(broker, registry, topic):
    sr = SchemaRegistryClient({"url": registry})
    schema = avro_record(("name", "string"), ("n", "long"))
    values = [{"name": f"u{i}", "n": i} for i in range(5)]
    got = roundtrip(broker, topic, AvroSerializer(sr, schema), AvroDeserializer(sr), values)
    assert got == values
    assert sr.get_latest_version(f"{topic}-value").version == 1


def test_json_schema_serializer_end_to_end(broker, registry, topic):
    sr = SchemaRegistryClient({"url": registry})
    schema = json.dumps({"$schema": "http://json-schema.org/draft-07/schema#", "title": "Item",
                         "type": "object", "properties": {"sku": {"type": "string"},
                                                          "qty": {"type": "integer"}},
                         "required": ["sku"]})
    values = [{"sku": f"s{i}", "qty": i} for i in range(5)]
    # The deserializer is given no schema: it fetches the writer's by id.
    got = roundtrip(broker, topic, JSONSerializer(schema, sr), JSONDeserializer(None,
                    schema_registry_client=sr), values)
    assert got == values


def test_protobuf_serializer_end_to_end(broker, registry, topic):
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    fdp = descriptor_pb2.FileDescriptorProto(name=f"{topic}.proto", package="acme",
                                             syntax="proto3")
    msg = fdp.message_type.add(name="Order")
    msg.field.add(name="id", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                  label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    msg.field.add(name="qty", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
                  label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    Order = message_factory.GetMessageClass(pool.FindMessageTypeByName("acme.Order"))
    sr = SchemaRegistryClient({"url": registry})
    ser = ProtobufSerializer(Order, sr, {"use.deprecated.format": False})
    de = ProtobufDeserializer(Order, {"use.deprecated.format": False})
    values = [Order(id=f"o{i}", qty=i) for i in range(5)]
    got = roundtrip(broker, topic, ser, de, values)
    assert got == values
    # Registered from the client's base64 descriptor, stored and answered as .proto text.
    latest = sr.get_latest_version(f"{topic}-value")
    assert latest.schema.schema_type == "PROTOBUF"
    assert "message Order" in latest.schema.schema_str


def register_references(registry: str, refs: list[dict] | None, kind: str) -> list[dict]:
    """Registers each reference (name, schema) as its own subject; Confluent's references."""
    out = []
    for r in refs or []:
        subj = f"ref-{uuid.uuid4().hex[:10]}"
        status, doc = post(f"{registry}/subjects/{subj}/versions",
                           {"schema": r["schema"], "schemaType": kind})
        assert status == 200, doc
        out.append({"name": r["name"], "subject": subj, "version": 1})
    return out


def as_text(s, kind: str) -> str:
    """A table's schema as the API takes it: Avro and JSON Schema tables hold JSON values,
    Protobuf's .proto text."""
    return s if kind == "PROTOBUF" else json.dumps(s)


@pytest.mark.parametrize("kind,table", [("AVRO", "avro_pairs.json"), ("JSON", "json_pairs.json"),
                                        ("PROTOBUF", "protobuf_pairs.json")])
def test_the_compatibility_tables_through_the_api(registry, kind, table):
    doc = json.loads((REPO / "schema/tests" / table).read_text())
    pairs = doc["pairs"] if isinstance(doc, dict) else doc
    checker = None
    if kind == "AVRO":
        import avro.compatibility
        import avro.schema
        checker = avro.compatibility.ReaderWriterCompatibilityChecker()
    disagreements = []
    for pair in pairs:
        writer = {"schema": as_text(pair["writer"], kind), "schemaType": kind,
                  "references": register_references(registry, pair.get("writerReferences"), kind)}
        reader = {"schema": as_text(pair["reader"], kind), "schemaType": kind,
                  "references": register_references(registry, pair.get("readerReferences"), kind)}
        # BACKWARD: the new schema (the reader) reads what the old one wrote. FORWARD, the
        # roles swapped: the old schema (the reader) reads what the new one writes. Same verdict.
        for level, old, new in (("BACKWARD", writer, reader), ("FORWARD", reader, writer)):
            subj = f"pair-{uuid.uuid4().hex[:10]}"
            status, body, _ = call(f"{registry}/config/{subj}", "PUT", {"compatibility": level},
                                   CT)
            assert status == 200, body
            status, body = post(f"{registry}/subjects/{subj}/versions", old)
            assert status == 200, (pair["name"], body)
            status, body = post(f"{registry}/compatibility/subjects/{subj}/versions/latest"
                                "?verbose=true", new)
            assert status == 200, (pair["name"], body)
            assert body["is_compatible"] == pair["compatible"], (pair["name"], level, body)
            if not pair["compatible"] and pair.get("errorType"):
                assert any(pair["errorType"] in m for m in body["messages"]), (pair["name"], body)
        if checker is not None and "note" not in pair:
            # Python's avro decides the same.
            r = avro.schema.parse(as_text(pair["reader"], kind))
            w = avro.schema.parse(as_text(pair["writer"], kind))
            verdict = checker.get_compatibility(r, w).compatibility is \
                avro.compatibility.SchemaCompatibilityType.compatible
            if verdict != body["is_compatible"]:
                disagreements.append(pair["name"])
    assert disagreements == []


def test_the_registry_state_survives_a_restart(broker, tmp_path, subject):
    p = start_registry(broker, tmp_path / "r")
    try:
        url = f"http://127.0.0.1:{p.registry_port}"
        sr = SchemaRegistryClient({"url": url})
        ids = [sr.register_schema(subject, Schema(avro_record(("a", "int"), *[
            (f"f{i}", "int") for i in range(n)], default={f"f{i}": 0 for i in range(n)}), "AVRO"))
            for n in range(3)]
        sr.set_compatibility(subject, "FULL")
        call(f"{url}/subjects/{subject}/versions/2", "DELETE")
        p.stop()
        p.start()
        sr = SchemaRegistryClient({"url": url})
        assert sr.get_versions(subject) == [1, 3]
        assert [sr.get_version(subject, v).schema_id for v in (1, 3)] == [ids[0], ids[2]]
        assert sr.get_compatibility(subject) == "FULL"
        # New ids continue after the old ones.
        new = sr.register_schema(f"{subject}-2", Schema(avro_record(("zz", "int")), "AVRO"))
        assert new > max(ids)
    finally:
        p.stop()


@pytest.mark.skipif(broker_kind() != "millrace", reason="millrace's topic configs")
def test_produce_checks_schema_ids_on_topics_that_ask(broker, topic):
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1, config={
        "confluent.value.schema.validation": "true"})])[topic].result(30)
    sr = SchemaRegistryClient({"url": f"http://127.0.0.1:{broker.registry_port}"})
    user = avro_record(("name", "string"))
    ser = AvroSerializer(sr, user)
    ctx = SerializationContext(topic, MessageField.VALUE)
    other_id = sr.register_schema(f"{topic}-elsewhere", Schema(avro_record(("x", "long")), "AVRO"))

    def send(value, key=b"k") -> KafkaError | None:
        p = Producer({"bootstrap.servers": broker.bootstrap, "retries": 0})
        outcome = []
        p.produce(topic, key=key, value=value, on_delivery=lambda err, _m: outcome.append(err))
        p.flush(30)
        return outcome[0]

    assert send(ser({"name": "a"}, ctx)) is None  # registers under <topic>-value, then passes
    for bad in (b"plain bytes", b"\x00\x00\x01\x86\xa0rest",  # no framing; unknown id 100000
                b"\x00" + other_id.to_bytes(4, "big") + b"x"):  # registered, other subject
        err = send(bad)
        assert err is not None and err.code() == KafkaError.INVALID_RECORD, (bad, err)
    assert send(None) is None  # a tombstone carries no schema
    # RecordNameStrategy: the subject is the record's full name.
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, set_config={
        "confluent.value.schema.validation": "true",
        "confluent.value.subject.name.strategy": "io.confluent.kafka.serializers.subject.RecordNameStrategy"})
    admin.alter_configs([res])[res].result(30)
    framed = ser({"name": "b"}, ctx)
    assert send(framed).code() == KafkaError.INVALID_RECORD  # not under "acme.User" yet
    sr.register_schema("acme.User", Schema(user, "AVRO"))
    assert send(framed) is None
    bad = ConfigResource(ConfigResource.Type.TOPIC, topic, set_config={
        "confluent.value.subject.name.strategy": "SomeOtherStrategy"})
    with pytest.raises(Exception):
        admin.alter_configs([bad])[bad].result(30)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"{topic}-r",
                  "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = []
    for _ in range(60):
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m.value())
        if len(got) >= 3:
            break
    c.close()
    assert len(got) == 3 and got[1] is None  # the two valid records and the tombstone
