"""Raw Kafka requests sent to ONE chosen node, for the cluster rig.

The clients (librdkafka, the Java AdminClient) pick the node they send an admin request to
themselves; the cluster tests must instead say "this CreateTopics goes to node 2" and "this
Metadata answer is node 3's view". So the requests here are hand-encoded on a socket to one
port. Primitives (frames, Reader, record batches) come from tests/clients/kwire.py.

Versions are chosen so that both Apache Kafka 4.x (which dropped the oldest versions, KIP-896)
and millrace (broker/src/handlers/mod.rs REGISTRY) serve them:

  Metadata v8, FindCoordinator v1, InitProducerId v1, CreateTopics v4, DeleteTopics v3,
  CreatePartitions v1, IncrementalAlterConfigs v0, DescribeConfigs v1, ListOffsets v2,
  Produce v7, Fetch v4 (non-flexible, request header v1)
  DescribeCluster v0, DescribeQuorum v0 (flexible only, request header v2, response header v1)
"""

from __future__ import annotations

import socket
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "clients"))

import kwire as w  # noqa: E402
from kwire import Reader, array, i8, i16, i32, i64, string, uvarint, compact_string  # noqa: E402

API_PRODUCE = 0
API_FETCH = 1
API_LIST_OFFSETS = 2
API_METADATA = 3
API_FIND_COORDINATOR = 10
API_CREATE_TOPICS = 19
API_DELETE_TOPICS = 20
API_INIT_PRODUCER_ID = 22
API_DESCRIBE_CONFIGS = 32
API_CREATE_PARTITIONS = 37
API_INCREMENTAL_ALTER_CONFIGS = 44
API_DESCRIBE_QUORUM = 55
API_DESCRIBE_CLUSTER = 60

RESOURCE_TOPIC = 2
OP_SET, OP_DELETE = 0, 1

# Kafka error codes the rig names (clients/src/main/java/org/apache/kafka/common/protocol/Errors)
ERRORS = {
    0: "NONE", 3: "UNKNOWN_TOPIC_OR_PARTITION", 5: "LEADER_NOT_AVAILABLE",
    6: "NOT_LEADER_OR_FOLLOWER", 7: "REQUEST_TIMED_OUT", 14: "COORDINATOR_LOAD_IN_PROGRESS",
    15: "COORDINATOR_NOT_AVAILABLE", 16: "NOT_COORDINATOR", 19: "NOT_ENOUGH_REPLICAS",
    36: "TOPIC_ALREADY_EXISTS", 37: "INVALID_PARTITIONS", 38: "INVALID_REPLICATION_FACTOR",
    41: "NOT_CONTROLLER", 56: "KAFKA_STORAGE_ERROR", 2: "CORRUPT_MESSAGE",
    -1: "UNKNOWN_SERVER_ERROR", 44: "POLICY_VIOLATION", 74: "FENCED_LEADER_EPOCH",
    75: "UNKNOWN_LEADER_EPOCH", 100: "UNKNOWN_TOPIC_ID", 88: "INVALID_UPDATE_VERSION",
    101: "FEATURE_UPDATE_FAILED", 103: "OFFSET_NOT_AVAILABLE", 89: "THROTTLING_QUOTA_EXCEEDED",
    42: "INVALID_REQUEST", 77: "STALE_BROKER_EPOCH", 104: "INCONSISTENT_CLUSTER_ID",
}
NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
LEADER_NOT_AVAILABLE = 5
NOT_LEADER_OR_FOLLOWER = 6
REQUEST_TIMED_OUT = 7
COORDINATOR_NOT_AVAILABLE = 15
TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37
COORDINATOR_LOAD_IN_PROGRESS = 14
NOT_COORDINATOR = 16
NOT_CONTROLLER = 41
INVALID_REQUEST = 42
STALE_BROKER_EPOCH = 77
UNKNOWN_TOPIC_ID = 100
INCONSISTENT_CLUSTER_ID = 104


def error_name(code: int) -> str:
    return ERRORS.get(code, f"error {code}")


# --- flexible (compact) encoding -----------------------------------------------------------------

def compact_array(items: list[bytes]) -> bytes:
    return uvarint(len(items) + 1) + b"".join(items)


TAGS_NONE = uvarint(0)


class FlexReader(Reader):
    def uvarint(self) -> int:
        shift = value = 0
        while True:
            b = self.take(1)[0]
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7

    def compact_string(self) -> str | None:
        n = self.uvarint()
        return None if n == 0 else self.take(n - 1).decode()

    def compact_len(self) -> int:
        return max(self.uvarint() - 1, 0)

    def skip_tags(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())


# The host of a port that is not on 127.0.0.1 (a node in its own network namespace).
HOSTS: dict[int, str] = {}


def _exchange(port: int, header: bytes, body: bytes, correlation_id: int, timeout_s: float,
              flexible_response: bool) -> FlexReader:
    host = HOSTS.get(port, "127.0.0.1")
    with socket.create_connection((host, port), timeout=timeout_s) as s:
        s.settimeout(timeout_s)
        s.sendall(w.frame(header + body))
        payload = w.recv_frame(s)
    if payload is None:
        raise ConnectionError(f"port {port}: connection closed without a response")
    r = FlexReader(payload)
    got = r.i32()
    assert got == correlation_id, f"correlation id {got}, sent {correlation_id}"
    if flexible_response:
        r.skip_tags()
    return r


_next_correlation = [100]


def call(port: int, api: int, version: int, body: bytes, timeout_s: float = 15.0) -> FlexReader:
    """A non-flexible request (header v1); the reader starts after the response header."""
    _next_correlation[0] += 1
    cid = _next_correlation[0]
    return _exchange(port, w.header_v1(api, version, cid), body, cid, timeout_s, False)


def call_flexible(port: int, api: int, version: int, body: bytes,
                  timeout_s: float = 15.0) -> FlexReader:
    """A flexible request (header v2, response header v1)."""
    _next_correlation[0] += 1
    cid = _next_correlation[0]
    return _exchange(port, w.header_v2(api, version, cid), body, cid, timeout_s, True)


# --- Metadata v8 ---------------------------------------------------------------------------------

@dataclass
class PartitionMeta:
    partition: int
    error: int
    leader: int
    leader_epoch: int
    replicas: list[int]
    isr: list[int]
    offline: list[int]


@dataclass
class TopicMeta:
    name: str
    error: int
    internal: bool
    partitions: dict[int, PartitionMeta] = field(default_factory=dict)


@dataclass
class Metadata:
    brokers: dict[int, tuple[str, int, str | None]]  # node id -> (host, port, rack)
    cluster_id: str | None
    controller_id: int
    topics: dict[str, TopicMeta]


def metadata(port: int, topics: list[str] | None = None, timeout_s: float = 10.0) -> Metadata:
    """Metadata v8 from the node on `port`; topics=None asks for all topics."""
    names = i32(-1) if topics is None else array([string(t) for t in topics])
    body = names + i8(0) + i8(0) + i8(0)  # no auto-create, no authorized operations
    r = call(port, API_METADATA, 8, body, timeout_s)
    r.i32()  # throttle_time_ms
    brokers = {}
    for _ in range(r.i32()):
        node, host, bport, rack = r.i32(), r.string(), r.i32(), r.string()
        brokers[node] = (host, bport, rack)
    cluster_id, controller_id = r.string(), r.i32()
    out = {}
    for _ in range(r.i32()):
        err, name, internal = r.i16(), r.string(), bool(r.i8())
        t = TopicMeta(name, err, internal)
        for _ in range(r.i32()):
            perr, idx, leader, epoch = r.i16(), r.i32(), r.i32(), r.i32()
            replicas = [r.i32() for _ in range(r.i32())]
            isr = [r.i32() for _ in range(r.i32())]
            offline = [r.i32() for _ in range(r.i32())]
            t.partitions[idx] = PartitionMeta(idx, perr, leader, epoch, replicas, isr, offline)
        r.i32()  # topic_authorized_operations
        out[name] = t
    r.i32()  # cluster_authorized_operations
    return Metadata(brokers, cluster_id, controller_id, out)


# --- DescribeCluster v0 / DescribeQuorum v0 (flexible) ----------------------------------------

@dataclass
class ClusterInfo:
    error: int
    cluster_id: str
    controller_id: int
    brokers: dict[int, tuple[str, int, str | None]]


def describe_cluster(port: int) -> ClusterInfo:
    r = call_flexible(port, API_DESCRIBE_CLUSTER, 0, i8(0) + TAGS_NONE)
    r.i32()  # throttle
    err = r.i16()
    r.compact_string()  # error message
    cluster_id, controller_id = r.compact_string(), r.i32()
    brokers = {}
    for _ in range(r.compact_len()):
        node, host, bport, rack = r.i32(), r.compact_string(), r.i32(), r.compact_string()
        r.skip_tags()
        brokers[node] = (host, bport, rack)
    return ClusterInfo(err, cluster_id, controller_id, brokers)


@dataclass
class QuorumInfo:
    error: int
    leader_id: int
    leader_epoch: int
    high_watermark: int
    voters: dict[int, int]  # replica id -> log end offset
    observers: dict[int, int]


def describe_quorum(port: int, timeout_s: float = 5.0) -> QuorumInfo:
    """DescribeQuorum v0 for __cluster_metadata-0. Kafka answers it on the controller listener
    (what `kafka-metadata-quorum --bootstrap-controller` uses) and forwards it from brokers."""
    body = (compact_array([compact_string("__cluster_metadata")
                           + compact_array([i32(0) + TAGS_NONE]) + TAGS_NONE]) + TAGS_NONE)
    r = call_flexible(port, API_DESCRIBE_QUORUM, 0, body, timeout_s)
    top_error = r.i16()
    topics = r.compact_len()
    assert topics == 1, f"DescribeQuorum: {topics} topics (top-level error {top_error})"
    r.compact_string()
    assert r.compact_len() == 1
    r.i32()  # partition index
    err, leader, epoch, hw = r.i16(), r.i32(), r.i32(), r.i64()

    def replicas() -> dict[int, int]:
        out = {}
        for _ in range(r.compact_len()):
            rid, leo = r.i32(), r.i64()
            r.skip_tags()
            out[rid] = leo
        return out

    voters = replicas()
    observers = replicas()
    return QuorumInfo(top_error or err, leader, epoch, hw, voters, observers)


# --- FindCoordinator v1, InitProducerId v1 --------------------------------------------------------

def find_coordinator(port: int, group: str, key_type: int = 0) -> tuple[int, int, str, int]:
    """(error_code, node_id, host, port) for a consumer group (key type 1: a transactional
    id)."""
    r = call(port, API_FIND_COORDINATOR, 1, string(group) + i8(key_type))
    r.i32()
    err = r.i16()
    r.string()
    return err, r.i32(), r.string(), r.i32()


def init_producer_id(port: int) -> tuple[int, int, int]:
    """(error_code, producer_id, producer_epoch) for a new idempotent producer."""
    r = call(port, API_INIT_PRODUCER_ID, 1, string(None) + i32(60_000))
    r.i32()
    return r.i16(), r.i64(), r.i16()


# --- topic administration -------------------------------------------------------------------------

def create_topics(port: int, topics: dict[str, int], timeout_ms: int = 10_000,
                  configs: dict[str, str] | None = None, replication_factor: int = 1,
                  socket_timeout_s: float = 30.0) -> dict[str, tuple[int, str | None]]:
    """CreateTopics v4: {name: partitions} -> {name: (error_code, error_message)}."""
    cfg = array([string(k) + string(v) for k, v in (configs or {}).items()])
    body = array([string(t) + i32(n) + i16(replication_factor) + array([]) + cfg
                  for t, n in topics.items()]) + i32(timeout_ms) + i8(0)
    r = call(port, API_CREATE_TOPICS, 4, body, socket_timeout_s)
    r.i32()
    return {r.string(): (r.i16(), r.string()) for _ in range(r.i32())}


def delete_topics(port: int, topics: list[str], timeout_ms: int = 10_000) -> dict[str, int]:
    r = call(port, API_DELETE_TOPICS, 3, array([string(t) for t in topics]) + i32(timeout_ms))
    r.i32()
    return {r.string(): r.i16() for _ in range(r.i32())}


def create_partitions(port: int, topic: str, count: int,
                      timeout_ms: int = 10_000) -> tuple[int, str | None]:
    body = array([string(topic) + i32(count) + i32(-1)]) + i32(timeout_ms) + i8(0)
    r = call(port, API_CREATE_PARTITIONS, 1, body)
    r.i32()
    assert r.i32() == 1
    r.string()
    return r.i16(), r.string()


def incremental_alter_topic_configs(port: int, topic: str,
                                    sets: dict[str, str | None]) -> tuple[int, str | None]:
    """IncrementalAlterConfigs v0 on one topic: value None deletes the key, else SET."""
    ops = array([string(k) + i8(OP_DELETE if v is None else OP_SET) + string(v)
                 for k, v in sets.items()])
    body = array([i8(RESOURCE_TOPIC) + string(topic) + ops]) + i8(0)
    r = call(port, API_INCREMENTAL_ALTER_CONFIGS, 0, body)
    r.i32()
    assert r.i32() == 1
    err, msg = r.i16(), r.string()
    r.i8()
    r.string()
    return err, msg


def describe_topic_configs(port: int, topic: str,
                           keys: list[str]) -> tuple[int, dict[str, tuple[str | None, int]]]:
    """DescribeConfigs v1: (error_code, {key: (value, source)})."""
    body = array([i8(RESOURCE_TOPIC) + string(topic) + array([string(k) for k in keys])]) + i8(0)
    r = call(port, API_DESCRIBE_CONFIGS, 1, body)
    r.i32()
    assert r.i32() == 1
    err = r.i16()
    r.string()
    r.i8()
    r.string()
    out = {}
    for _ in range(r.i32()):
        name, value = r.string(), r.string()
        r.i8()  # read_only
        source = r.i8()
        r.i8()  # sensitive
        for _ in range(r.i32()):
            r.string(), r.string(), r.i8()
        out[name] = (value, source)
    return err, out


# --- data path ------------------------------------------------------------------------------------

def produce(port: int, topic: str, partition: int, values: list[bytes], acks: int = -1,
            timestamp_ms: int = 1_700_000_000_000, timeout_s: float = 15.0) -> tuple[int, int]:
    """Produce v7 of one uncompressed batch: (error_code, base_offset)."""
    batch = w.record_batch(values, timestamp_ms)
    r = call(port, API_PRODUCE, 7, w.produce_v7_body(topic, partition, batch, acks), timeout_s)
    [(_, _, err, base)] = w.parse_produce_v7(r)
    return err, base


def list_offset(port: int, topic: str, partition: int, timestamp: int = -1) -> tuple[int, int]:
    """ListOffsets v2 (-1 latest, -2 earliest): (error_code, offset)."""
    r = call(port, API_LIST_OFFSETS, 2, w.list_offsets_v2_body(topic, partition, timestamp))
    [(_, _, err, off)] = w.parse_list_offsets_v2(r)
    return err, off


def fetch_batches(port: int, topic: str, partition: int, offset: int = 0,
                  max_bytes: int = 1 << 20) -> tuple[int, int, list[dict]]:
    """Fetch v4 of one partition: (error_code, high_watermark, [batch header fields]) where each
    batch is {base_offset, records, producer_id, producer_epoch, base_sequence}."""
    body = (i32(-1) + i32(100) + i32(1) + i32(max_bytes) + i8(0)
            + array([string(topic) + array([i32(partition) + i64(offset) + i32(max_bytes)])]))
    r = call(port, API_FETCH, 4, body)
    r.i32()
    assert r.i32() == 1
    r.string()
    assert r.i32() == 1
    r.i32()
    err, hw = r.i16(), r.i64()
    r.i64()  # last_stable_offset
    n_aborted = r.i32()
    for _ in range(max(n_aborted, 0)):
        r.i64(), r.i64()
    data = r.take(r.i32())
    batches = []
    pos = 0
    while pos + 61 <= len(data):
        br = Reader(data[pos:])
        base, length = br.i64(), br.i32()
        if pos + 12 + length > len(data):
            break
        br.i32()  # partition leader epoch
        br.i8()  # magic
        br.i32()  # crc
        br.i16()  # attributes
        last_delta = br.i32()
        br.i64(), br.i64()
        pid, pepoch, seq = br.i64(), br.i16(), br.i32()
        count = br.i32()
        batches.append({"base_offset": base, "records": count, "last_offset": base + last_delta,
                        "producer_id": pid, "producer_epoch": pepoch, "base_sequence": seq})
        pos += 12 + length
    return err, hw, batches


# --- Fetch v13 / v15 of the metadata log (what a broker-only node sends its controller) ---------

METADATA_TOPIC_ID = (1).to_bytes(16, "big")  # Kafka's AAAAAAAAAAAAAAAAAAAAAQ


@dataclass
class MetaFetch:
    error: int  # top level, else the partition's
    high_watermark: int
    records: bytes
    diverging: tuple[int, int] | None  # (epoch, end_offset)
    leader: tuple[int, int] | None  # (leader_id, leader_epoch)


def _tagged(fields: dict[int, bytes]) -> bytes:
    return uvarint(len(fields)) + b"".join(uvarint(t) + uvarint(len(v)) + v
                                           for t, v in sorted(fields.items()))


def fetch_metadata_log(port: int, replica_id: int, fetch_offset: int, last_fetched_epoch: int,
                       version: int = 15, replica_epoch: int = -1, cluster_id: str | None = None,
                       topic_id: bytes = METADATA_TOPIC_ID, max_wait_ms: int = 0,
                       timeout_s: float = 10.0) -> MetaFetch:
    """Fetch (v13: replica_id in the body; v15: in the replica_state tag) of
    __cluster_metadata-0 from a controller listener, as KRaft observers send it."""
    assert version in (13, 15)
    partition = (i32(0) + i32(-1) + i64(fetch_offset) + i32(last_fetched_epoch) + i64(-1)
                 + i32(1 << 20) + TAGS_NONE)
    topics = compact_array([topic_id + compact_array([partition]) + TAGS_NONE])
    body = i32(replica_id) if version < 15 else b""
    body += (i32(max_wait_ms) + i32(1) + i32(1 << 20) + i8(0) + i32(0) + i32(-1) + topics
             + compact_array([]) + compact_string(""))
    tags = {}
    if cluster_id is not None:
        tags[0] = compact_string(cluster_id)
    if version >= 15:
        tags[1] = i32(replica_id) + i64(replica_epoch) + TAGS_NONE
    body += _tagged(tags)
    r = call_flexible(port, API_FETCH, version, body, timeout_s)
    r.i32()  # throttle
    top = r.i16()
    r.i32()  # session id
    err, hw, records, diverging, leader = top, -1, b"", None, None
    for _ in range(r.compact_len()):
        r.take(16)
        for _ in range(r.compact_len()):
            r.i32()
            perr, hw = r.i16(), r.i64()
            r.i64(), r.i64()  # last stable offset, log start offset
            for _ in range(r.compact_len()):
                r.i64(), r.i64()
            r.i32()  # preferred read replica
            n = r.uvarint()
            records = r.take(n - 1) if n else b""
            for _ in range(r.uvarint()):
                tag, size = r.uvarint(), r.uvarint()
                t = FlexReader(r.take(size))
                if tag == 0:
                    diverging = (t.i32(), t.i64())
                elif tag == 1:
                    leader = (t.i32(), t.i32())
            err = top or perr
        r.skip_tags()
    return MetaFetch(err, hw, records, diverging, leader)


def batch_offsets(records: bytes) -> list[tuple[int, int, int]]:
    """(base_offset, record count, partition_leader_epoch) of each batch in a records blob."""
    out, pos = [], 0
    while pos + 61 <= len(records):
        base, length = struct.unpack(">qi", records[pos:pos + 12])
        epoch = struct.unpack(">i", records[pos + 12:pos + 16])[0]
        last_delta = struct.unpack(">i", records[pos + 23:pos + 27])[0]
        out.append((base, last_delta + 1, epoch))
        pos += 12 + length
    return out
