"""Hand-built Kafka frames for the bad-input tests: just enough encoding to write requests
byte by byte and read the few response fields the tests check. Big-endian throughout.

Frame:            size:i32 | request header | body
Request header v1: api_key:i16 api_version:i16 correlation_id:i32 client_id:nullable_string(i16)
Request header v2: v1 + tagged fields (uvarint count, 0 here)
Response header v0: correlation_id:i32      (v1 adds tagged fields)
"""

from __future__ import annotations

import socket
import struct
import time

API_PRODUCE = 0
API_LIST_OFFSETS = 2
API_METADATA = 3
API_API_VERSIONS = 18
API_CREATE_TOPICS = 19
API_INIT_PRODUCER_ID = 22

RECV_TIMEOUT_S = 10.0


# --- primitives --------------------------------------------------------------------------------

def i8(v): return struct.pack(">b", v)
def i16(v): return struct.pack(">h", v)
def i32(v): return struct.pack(">i", v)
def i64(v): return struct.pack(">q", v)
def u32(v): return struct.pack(">I", v)


def string(s: str | None) -> bytes:
    if s is None:
        return i16(-1)
    b = s.encode()
    return i16(len(b)) + b


def uvarint(v: int) -> bytes:
    out = bytearray()
    while True:
        byte = v & 0x7F
        v >>= 7
        if v:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def varint(v: int) -> bytes:
    """Zig-zag signed varint (records use these)."""
    return uvarint((v << 1) ^ (v >> 63))


def compact_string(s: str | None) -> bytes:
    if s is None:
        return uvarint(0)
    b = s.encode()
    return uvarint(len(b) + 1) + b


def array(items: list[bytes]) -> bytes:
    return i32(len(items)) + b"".join(items)


# --- frames ------------------------------------------------------------------------------------

def header_v1(api_key: int, version: int, correlation_id: int, client_id="millrace-tests"):
    return i16(api_key) + i16(version) + i32(correlation_id) + string(client_id)


def header_v2(api_key: int, version: int, correlation_id: int, client_id="millrace-tests"):
    return header_v1(api_key, version, correlation_id, client_id) + uvarint(0)


def frame(payload: bytes) -> bytes:
    return i32(len(payload)) + payload


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=RECV_TIMEOUT_S)
    s.settimeout(RECV_TIMEOUT_S)
    return s


def recv_exact(s: socket.socket, n: int) -> bytes | None:
    """n bytes, or None if the peer closed (or reset) the connection first."""
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = s.recv(n - len(buf))
        except ConnectionResetError:
            return None
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def recv_frame(s: socket.socket) -> bytes | None:
    """One response frame's payload, or None if the connection was closed instead."""
    size = recv_exact(s, 4)
    if size is None:
        return None
    (n,) = struct.unpack(">i", size)
    assert 0 <= n < 64 << 20, f"response size {n}"
    return recv_exact(s, n)


def closed_by_peer(s: socket.socket, timeout_s: float = RECV_TIMEOUT_S) -> bool:
    """True when the peer closes the connection within timeout_s without sending anything
    more; False when it sends bytes; raises socket.timeout if it does neither."""
    s.settimeout(timeout_s)
    try:
        data = s.recv(1)
    except ConnectionResetError:
        return True
    return data == b""


def api_versions_v0(port: int, correlation_id: int = 7) -> tuple[int, dict[int, tuple[int, int]]]:
    """A well-formed ApiVersions v0 on a new connection: (error_code, {api_key: (min, max)})."""
    with connect(port) as s:
        s.sendall(frame(header_v1(API_API_VERSIONS, 0, correlation_id)))
        payload = recv_frame(s)
    assert payload is not None, "ApiVersions v0 got no answer"
    r = Reader(payload)
    assert r.i32() == correlation_id
    return parse_api_versions_v0_body(r)


def parse_api_versions_v0_body(r: "Reader"):
    error = r.i16()
    versions = {}
    for _ in range(r.i32()):
        key, lo, hi = r.i16(), r.i16(), r.i16()
        versions[key] = (lo, hi)
    return error, versions


class Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        assert self.pos + n <= len(self.data), "response shorter than its fields"
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def i8(self): return struct.unpack(">b", self.take(1))[0]
    def i16(self): return struct.unpack(">h", self.take(2))[0]
    def i32(self): return struct.unpack(">i", self.take(4))[0]
    def i64(self): return struct.unpack(">q", self.take(8))[0]

    def string(self) -> str | None:
        n = self.i16()
        return None if n < 0 else self.take(n).decode()


# --- record batch v2 ---------------------------------------------------------------------------

def _crc32c_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def record(offset_delta: int, key: bytes | None, value: bytes) -> bytes:
    body = (i8(0) + varint(0) + varint(offset_delta)
            + (varint(-1) if key is None else varint(len(key)) + key)
            + varint(len(value)) + value + varint(0))
    return varint(len(body)) + body


def record_batch(values: list[bytes], timestamp_ms: int, corrupt_crc: bool = False,
                 producer_id: int = -1, producer_epoch: int = -1, base_sequence: int = -1,
                 transactional: bool = False) -> bytes:
    """An uncompressed magic-2 batch with base offset 0; idempotent when producer_id >= 0."""
    records = b"".join(record(i, f"k{i}".encode(), v) for i, v in enumerate(values))
    after_crc = (i16(0x10 if transactional else 0) + i32(len(values) - 1) + i64(timestamp_ms) + i64(timestamp_ms)
                 + i64(producer_id) + i16(producer_epoch) + i32(base_sequence)
                 + i32(len(values)) + records)
    crc = crc32c(after_crc)
    if corrupt_crc:
        crc ^= 0x00010000
    after_length = i32(0) + i8(2) + u32(crc) + after_crc
    return i64(0) + i32(len(after_length)) + after_length


# --- requests used by the tests (non-flexible versions, header v1) -------------------------------

def produce_v7_body(topic: str, partition: int, batch: bytes, acks: int = -1,
                    transactional_id: str | None = None) -> bytes:
    return (string(transactional_id) + i16(acks) + i32(10_000)
            + array([string(topic) + array([i32(partition) + i32(len(batch)) + batch])]))


def parse_produce_v7(r: Reader) -> list[tuple[str, int, int, int]]:
    """[(topic, partition, error_code, base_offset)]"""
    out = []
    for _ in range(r.i32()):
        name = r.string()
        for _ in range(r.i32()):
            part, err, base = r.i32(), r.i16(), r.i64()
            r.i64()  # log_append_time_ms
            r.i64()  # log_start_offset
            out.append((name, part, err, base))
    return out


def list_offsets_v2_body(topic: str, partition: int, timestamp: int = -1) -> bytes:
    return i32(-1) + i8(0) + array([string(topic) + array([i32(partition) + i64(timestamp)])])


def parse_list_offsets_v2(r: Reader) -> list[tuple[str, int, int, int]]:
    """[(topic, partition, error_code, offset)]"""
    r.i32()  # throttle_time_ms
    out = []
    for _ in range(r.i32()):
        name = r.string()
        for _ in range(r.i32()):
            part, err = r.i32(), r.i16()
            r.i64()  # timestamp
            out.append((name, part, err, r.i64()))
    return out


def create_topics_v4_body(topic: str, partitions: int) -> bytes:
    return array([string(topic) + i32(partitions) + i16(1) + array([]) + array([])]) \
        + i32(10_000) + i8(0)


def parse_create_topics_v4(r: Reader) -> list[tuple[str, int, str | None]]:
    r.i32()  # throttle_time_ms
    return [(r.string(), r.i16(), r.string()) for _ in range(r.i32())]


def create_topic_v7(s: socket.socket, client_id: str, name: str, partitions: int,
                    correlation_id: int = 9) -> tuple[int, int]:
    """CreateTopics v7 (strict controller mutation quota) for one topic with replication
    factor 1, on an open connection: (error code, throttle_time_ms)."""
    topic = (compact_string(name) + i32(partitions) + i16(1)
             + uvarint(1) + uvarint(1) + uvarint(0))
    body = uvarint(2) + topic + i32(30000) + i8(0) + uvarint(0)
    s.sendall(frame(header_v2(19, 7, correlation_id, client_id) + body))
    r = Reader(recv_frame(s))
    assert r.i32() == correlation_id
    r.take(1)  # the response header's empty tagged fields
    throttle = r.i32()
    assert r.take(1) == b"\x02", "one topic"
    r.take(r.take(1)[0] - 1)  # its name
    r.take(16)  # its id
    return r.i16(), throttle


def request(port: int, api_key: int, version: int, body: bytes, correlation_id: int = 1,
            s: socket.socket | None = None) -> Reader:
    """Sends one header-v1 request and returns a Reader positioned after the response's
    correlation id (checked)."""
    own = s is None
    s = s or connect(port)
    try:
        s.sendall(frame(header_v1(api_key, version, correlation_id) + body))
        payload = recv_frame(s)
        assert payload is not None, f"api {api_key} v{version}: connection closed, no response"
        r = Reader(payload)
        assert r.i32() == correlation_id
        return r
    finally:
        if own:
            s.close()


def wait_until(predicate, timeout_s: float = 30.0, interval_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval_s)
