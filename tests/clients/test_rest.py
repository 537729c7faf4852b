"""The REST proxy (millrace.rest.listen) driven over HTTP with Confluent's content types:
v2 produce (json and binary embedded) and topic metadata, the v2 partition read, v3 produce,
and the /api/v1 forms; what it writes is read back with confluent-kafka and what Kafka clients
write is read through it; bad requests get Confluent's error bodies.

The proxy is a Kafka client of whatever cluster it is pointed at, so the same tests run with
TEST_BROKER=kafka: a millrace process whose proxy fronts the Apache Kafka broker
(millrace.rest.bootstrap.servers), and the answers must be the same.
"""

from __future__ import annotations

import base64
import json

import pytest
from brokerproc import broker_kind
from resthelp import BODY_MAX, call, create
from confluent_kafka import Consumer, Producer, TopicPartition

V2_JSON = "application/vnd.kafka.json.v2+json"
V2_BINARY = "application/vnd.kafka.binary.v2+json"


def read_all(broker, topic: str, partitions: int, count: int) -> list:
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"{topic}-reader",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out = []
    for _ in range(200):
        if len(out) >= count:
            break
        for m in c.consume(num_messages=count, timeout=0.5):
            if m.error() is None:
                out.append(m)
    c.close()
    return out


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (signed 32-bit), for where the default partitioner puts a key."""
    m, r = 0x5BD1E995, 24
    h = (0x9747B28C ^ len(data)) & 0xFFFFFFFF
    n = len(data) // 4
    for i in range(n):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = data[4 * n:]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def test_v2_json_produce_lands_where_kafkas_partitioner_puts_it(broker, proxy, topic):
    create(broker, topic, 3)
    records = [{"key": f"user-{i}", "value": {"n": i, "tags": ["a", i]}} for i in range(30)]
    status, body, ctype = call(f"{proxy}/topics/{topic}", "POST", {"records": records}, V2_JSON)
    assert status == 200, body
    assert ctype.startswith("application/vnd.kafka.v2+json")
    assert body["key_schema_id"] is None and body["value_schema_id"] is None
    offsets = body["offsets"]
    assert len(offsets) == 30 and all(o["error_code"] is None for o in offsets)
    for r, o in zip(records, offsets):
        key = json.dumps(r["key"]).encode()  # a json key is its JSON text
        assert o["partition"] == (murmur2(key) & 0x7FFFFFFF) % 3, (r, o)
    got = read_all(broker, topic, 3, 30)
    by_offset = {(m.partition(), m.offset()): m for m in got}
    for r, o in zip(records, offsets):
        m = by_offset[(o["partition"], o["offset"])]
        assert json.loads(m.value()) == r["value"] and json.loads(m.key()) == r["key"]


def test_v2_binary_produce_to_a_partition_and_the_partition_read(broker, proxy, topic):
    create(broker, topic, 2)
    values = [bytes([i, 255 - i, 0, 7]) * (i + 1) for i in range(10)]
    records = [{"value": base64.b64encode(v).decode(), "key": None} for v in values]
    status, body, _ = call(f"{proxy}/topics/{topic}/partitions/1", "POST",
                           {"records": records}, V2_BINARY)
    assert status == 200, body
    assert [o["partition"] for o in body["offsets"]] == [1] * 10
    assert [o["offset"] for o in body["offsets"]] == list(range(10))
    got = read_all(broker, topic, 2, 10)
    assert [m.value() for m in sorted(got, key=lambda m: m.offset())] == values
    # Read back through the proxy, binary and from an offset.
    status, rows, ctype = call(f"{proxy}/topics/{topic}/partitions/1/records?offset=4&timeout=500",
                               accept=V2_BINARY)
    assert status == 200, rows
    assert ctype.startswith(V2_BINARY)
    assert [r["offset"] for r in rows] == list(range(4, 10))
    assert [base64.b64decode(r["value"]) for r in rows] == values[4:]
    assert all(r["key"] is None and r["partition"] == 1 and r["topic"] == topic for r in rows)
    # Not JSON records asked for as json: a clear refusal, not garbage.
    status, body, _ = call(f"{proxy}/topics/{topic}/partitions/1/records?offset=0",
                           accept=V2_JSON)
    assert status == 422 and body["error_code"] == 42205, body


def test_records_written_by_a_kafka_client_read_through_the_proxy(broker, proxy, topic):
    create(broker, topic, 1)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(5):
        p.produce(topic, key=json.dumps(f"k{i}").encode(), value=json.dumps({"i": i}).encode(),
                  headers=[("trace", f"t{i}".encode())])
    assert p.flush(30) == 0
    status, rows, _ = call(f"{proxy}/topics/{topic}/partitions/0/records?offset=0&timeout=500",
                           accept=V2_JSON)
    assert status == 200, rows
    assert [r["value"] for r in rows] == [{"i": i} for i in range(5)]
    assert [r["key"] for r in rows] == [f"k{i}" for i in range(5)]
    status, body, _ = call(f"{proxy}/api/v1/topics/{topic}/partitions/0/messages?offset=1&limit=3")
    assert status == 200, body
    msgs = body["messages"]
    assert [m["offset"] for m in msgs] == [1, 2, 3]
    assert [m["key"] for m in msgs] == ['"k1"', '"k2"', '"k3"']
    assert [m["headers"] for m in msgs] == [{"trace": "t1"}, {"trace": "t2"}, {"trace": "t3"}]
    assert body["high_watermark"] == 5 and all(m["encoding"] == "utf8" for m in msgs)


def test_v3_produce_one_record_and_a_stream(broker, proxy, topic):
    create(broker, topic, 1)
    status, clusters, _ = call(f"{proxy}/v3/clusters")
    assert status == 200
    cluster = clusters["data"][0]["cluster_id"]
    one = {"key": {"type": "STRING", "data": "k"}, "value": {"type": "JSON", "data": {"a": 1}},
           "headers": [{"name": "h", "value": base64.b64encode(b"hv").decode()}]}
    status, body, _ = call(f"{proxy}/v3/clusters/{cluster}/topics/{topic}/records", "POST", one,
                           "application/json")
    assert status == 200, body
    assert body["error_code"] == 200 and body["offset"] == 0 and body["partition_id"] == 0
    assert body["key"] == {"type": "STRING", "size": 1}
    assert body["value"] == {"type": "JSON", "size": len(b'{"a":1}')}
    assert body["timestamp"].endswith("Z") and body["cluster_id"] == cluster
    stream = b"".join(json.dumps({"value": {"type": "BINARY", "data": base64.b64encode(
        bytes([i])).decode()}}).encode() for i in range(3))
    status, text, _ = call(f"{proxy}/v3/clusters/{cluster}/topics/{topic}/records", "POST",
                           stream, "application/json")
    assert status == 200
    lines = [json.loads(x) for x in (text if isinstance(text, str) else json.dumps(text)).split("\n")]
    assert [x["offset"] for x in lines] == [1, 2, 3]
    got = sorted(read_all(broker, topic, 1, 4), key=lambda m: m.offset())
    assert got[0].key() == b"k" and got[0].value() == b'{"a":1}'
    assert got[0].headers() == [("h", b"hv")]
    assert [m.value() for m in got[1:]] == [b"\x00", b"\x01", b"\x02"]
    status, body, _ = call(f"{proxy}/v3/clusters/not-this-one/topics/{topic}/records", "POST",
                           one, "application/json")
    assert status == 404 and body["error_code"] == 404


def test_api_v1_produce_read_and_commit(broker, proxy, topic):
    create(broker, topic, 1)
    for i in range(4):
        status, body, _ = call(f"{proxy}/api/v1/topics/{topic}/messages", "POST",
                               {"key": f"k{i}", "value": {"n": i} if i % 2 else f"text {i}",
                                "headers": {"source": "rest"}}, "application/json")
        assert status == 200, body
        assert body["partition"] == 0 and body["offset"] == i
    status, body, _ = call(f"{proxy}/api/v1/topics/{topic}/partitions/0/messages?limit=10")
    assert status == 200
    assert [m["value"] for m in body["messages"]] == ["text 0", '{"n":1}', "text 2", '{"n":3}']
    assert body["messages"][0]["headers"] == {"source": "rest"}
    group = f"{topic}-g"
    status, body, _ = call(f"{proxy}/api/v1/consumer-groups/{group}/offsets", "POST",
                           {"offsets": [{"topic": topic, "partition": 0, "offset": 3}]},
                           "application/json")
    assert status == 200, body
    assert body["offsets"] == [{"topic": topic, "partition": 0, "error_code": 0, "error": None}]
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    [tp] = c.committed([TopicPartition(topic, 0)], timeout=30)
    c.close()
    assert tp.offset == 3
    # A group with an active member refuses an admin commit: 409 with Kafka's error name.
    live = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                     "session.timeout.ms": 6000})
    live.subscribe([topic])
    try:
        for _ in range(60):
            live.poll(0.2)
            if live.assignment():
                break
        assert live.assignment(), "the member never got its partition"
        status, body, _ = call(f"{proxy}/api/v1/consumer-groups/{group}/offsets", "POST",
                               {"offsets": [{"topic": topic, "partition": 0, "offset": 1}]},
                               "application/json")
        assert status == 409, body
        assert body["offsets"][0]["error"] in ("UNKNOWN_MEMBER_ID", "ILLEGAL_GENERATION"), body
    finally:
        live.close()


def test_topic_metadata(broker, proxy, topic):
    create(broker, topic, 3)
    status, names, _ = call(f"{proxy}/topics")
    assert status == 200 and topic in names
    assert not any(n.startswith("__") for n in names), names
    status, body, _ = call(f"{proxy}/topics/{topic}")
    assert status == 200, body
    assert body["name"] == topic and body["configs"]["cleanup.policy"] == "delete"
    assert [p["partition"] for p in body["partitions"]] == [0, 1, 2]
    for p in body["partitions"]:
        [r] = p["replicas"]
        assert r["broker"] == p["leader"] and r["leader"] and r["in_sync"]
    status, one, _ = call(f"{proxy}/topics/{topic}/partitions/2")
    assert status == 200 and one == body["partitions"][2]


def test_bad_requests_get_confluents_errors(broker, proxy, topic):
    create(broker, topic, 1)
    cases = [
        (f"{proxy}/topics/{topic}-absent", "GET", None, None, 404, 40401),
        (f"{proxy}/topics/{topic}/partitions/7", "GET", None, None, 404, 40402),
        (f"{proxy}/topics/{topic}/partitions/7", "POST", {"records": [{"value": 1}]}, V2_JSON,
         404, 40402),
        (f"{proxy}/topics/{topic}", "POST", {"records": [{"value": 1}]}, "text/plain", 415, 415),
        (f"{proxy}/topics/{topic}", "POST", {"records": [{"value": 1}]},
         "application/vnd.kafka.avro.v2+json", 415, 415),
        (f"{proxy}/topics/{topic}", "POST", b"{not json", V2_JSON, 400, 400),
        (f"{proxy}/topics/{topic}", "POST", {"records": []}, V2_JSON, 422, 422),
        (f"{proxy}/topics/{topic}", "POST", {"records": [{"value": 1, "color": "red"}]},
         V2_JSON, 422, 422),
        (f"{proxy}/topics/{topic}", "POST", {"records": [{"value": "not base64!"}]}, V2_BINARY,
         422, 422),
        (f"{proxy}/topics/{topic}/partitions/0/records?offset=0", "GET", None, None, 406, 406),
        (f"{proxy}/topics/{topic}/partitions/0/records", "GET", None, None, 406, 406),
        (f"{proxy}/no/such/path", "GET", None, None, 404, 404),
        (f"{proxy}/topics", "DELETE", None, None, 405, 405),
        (f"{proxy}/api/v1/topics/{topic}/partitions/0/messages?limit=0", "GET", None, None, 422,
         422),
        (f"{proxy}/api/v1/consumer-groups/g/offsets", "POST", {"offsets": [{"topic": topic}]},
         "application/json", 422, 422),
    ]
    for url, method, body, ctype, status, error_code in cases:
        got_status, got, _ = call(url, method, body, ctype)
        assert (got_status, got.get("error_code") if isinstance(got, dict) else got) \
            == (status, error_code), (url, method, got)
        assert isinstance(got["message"], str) and got["message"]
    # A body past the bound: 413, and the proxy goes on serving.
    big = {"records": [{"value": "x" * (BODY_MAX + 10)}]}
    status, body, _ = call(f"{proxy}/topics/{topic}", "POST", big, V2_JSON)
    assert status == 413 and body["error_code"] == 413
    status, _, _ = call(f"{proxy}/topics")
    assert status == 200


@pytest.mark.skipif(broker_kind() != "millrace", reason="the broker's own proxy")
def test_a_broker_proxies_to_itself_by_default(broker, topic):
    create(broker, topic, 1)
    url = f"http://127.0.0.1:{broker.rest_port}"
    status, body, _ = call(f"{url}/topics/{topic}", "POST", {"records": [{"value": {"a": 1}}]},
                           V2_JSON)
    assert status == 200 and body["offsets"][0]["offset"] == 0, body
    got = read_all(broker, topic, 1, 1)
    assert [m.value() for m in got] == [b'{"a":1}']
