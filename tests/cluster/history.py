"""Recording what clients saw, for the history checker, and comparing replicas on disk.

The checker is ``replication/src/history.rs`` (the same code the deterministic simulation
calls), run here as ``millrace-tools history check --json FILE``. Its module doc defines the
JSON-lines format this file writes: ``produce`` (one unique value, its producer and send
sequence, and its outcome: ``acked`` at an offset, ``failed`` with a code, ``unknown``),
``read`` (a consumer saw a value at an offset), ``final`` + ``final_read`` (the full read of a
partition after the test, log start to high watermark) and ``note`` (free text).

- ``HistoryRecorder``: appends those lines, thread-safe.
- ``TrackedProducer``: a confluent-kafka producer thread sending unique values round-robin to
  every partition at a fixed pace; a delivery report with an offset is ``acked``, any error is
  ``unknown`` (librdkafka retries, so no error it reports proves the value absent), and what is
  still queued when it stops is ``unknown``.
- ``raw_produce``: one Produce v7 request, one attempt: its error code is the broker's word for
  that value, so a refusal before the append (NOT_ENOUGH_REPLICAS) is recorded ``failed``;
  REQUEST_TIMED_OUT, NOT_ENOUGH_REPLICAS_AFTER_APPEND and a lost answer are ``unknown``.
- ``ReaderThread``: a consumer reading every partition from offset 0 while the test runs.
- ``final_read``: reads every partition from its log start to its high watermark.
- ``check_history``: runs the checker, returns its JSON report.
- ``replica_batches`` / ``compare_replicas``: the record batches of one partition in one node's
  segment files (``<log dir>/<topic>-<partition>/<20 digits>.log``, the same layout for both
  kinds), and whether all replicas hold the same bytes.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import threading
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

import cwire as c
import kwire as w
from cluster import REPO

# Produce error codes that prove the broker did not append the batch (see REFUSED_BEFORE_APPEND
# in replication/src/history.rs; that list is what the checker uses, this one only decides how
# a raw answer is recorded: a code outside it is recorded "unknown").
DEFINITE_REFUSALS = {2, 3, 6, 10, 18, 19, 21, 45, 47, 87, 90}
NOT_ENOUGH_REPLICAS = 19
NOT_ENOUGH_REPLICAS_AFTER_APPEND = 20


def tools_binary() -> str:
    """millrace-tools: $MILLRACE_TOOLS, beside $MILLRACE_BIN, or in the workspace's target
    (release, else debug). The checker is part of it, so there is no test without it."""
    candidates = [os.environ.get("MILLRACE_TOOLS")]
    if os.environ.get("MILLRACE_BIN"):
        candidates.append(str(Path(os.environ["MILLRACE_BIN"]).parent / "millrace-tools"))
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    candidates += [str(target / "release/millrace-tools"), str(target / "debug/millrace-tools")]
    for cand in candidates:
        if cand and os.access(cand, os.X_OK):
            return cand
    raise RuntimeError("millrace-tools not found: cargo build --release -p millrace-tools "
                       "(or set MILLRACE_TOOLS)")


class HistoryRecorder:
    """Writes history lines to `path` as they happen (a test that dies leaves what it saw)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._f = open(self.path, "w")
        self._lock = threading.Lock()
        self._t0 = time.monotonic()

    def _line(self, obj: dict) -> None:
        with self._lock:
            self._f.write(json.dumps(obj) + "\n")
            self._f.flush()

    def note(self, text: str) -> None:
        self._line({"op": "note", "text": f"t={time.monotonic() - self._t0:.2f}s {text}"})

    def produce(self, topic: str, partition: int, producer: str, seq: int, value: str,
                outcome: str, offset: int | None = None, error: int | None = None) -> None:
        op = {"op": "produce", "topic": topic, "partition": partition, "producer": producer,
              "seq": seq, "value": value, "outcome": outcome}
        if outcome == "acked":
            op["offset"] = offset
        else:
            op["error"] = error
        self._line(op)

    def read(self, topic: str, partition: int, offset: int, value: str, reader: str) -> None:
        self._line({"op": "read", "topic": topic, "partition": partition, "offset": offset,
                    "value": value, "reader": reader})

    def final(self, topic: str, partition: int, log_start: int, high_watermark: int,
              records: list[tuple[int, str]]) -> None:
        self._line({"op": "final", "topic": topic, "partition": partition,
                    "log_start_offset": log_start, "high_watermark": high_watermark})
        for offset, value in records:
            self._line({"op": "final_read", "topic": topic, "partition": partition,
                        "offset": offset, "value": value})

    def close(self) -> None:
        with self._lock:
            self._f.close()


class TrackedProducer(threading.Thread):
    """Sends `name-<partition>-<seq>` to partitions 0..n-1 in turn, one every `interval_s`,
    until stop(); records each value's outcome. Errors from error_cb are kept in `errors`."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, rec: HistoryRecorder,
                 name: str = "p1", interval_s: float = 0.01, config: dict | None = None):
        super().__init__(name=f"producer-{name}", daemon=True)
        self.topic, self.partitions, self.rec, self.label = topic, partitions, rec, name
        self.interval_s = interval_s
        self.errors: list[str] = []
        self.acked = self.unknown = 0
        self.outstanding: dict[str, tuple[int, int]] = {}
        self.seq = [0] * partitions
        self._halt = threading.Event()
        self._flush_timeout_s = 30.0
        self.fatal: str | None = None
        self.producer = Producer({
            "bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
            "linger.ms": 5, "message.timeout.ms": 60000,
            "error_cb": lambda e: self.errors.append(e.name()), **(config or {})})

    def _delivered(self, err, msg) -> None:
        value = msg.value().decode()
        partition, seq = self.outstanding.pop(value)
        if err is None:
            self.acked += 1
            self.rec.produce(self.topic, partition, self.label, seq, value, "acked",
                             offset=msg.offset())
        else:
            self.unknown += 1
            self.rec.produce(self.topic, partition, self.label, seq, value, "unknown",
                             error=err.code())

    def run(self) -> None:
        turn = 0
        while not self._halt.is_set():
            partition = turn % self.partitions
            seq = self.seq[partition]
            value = f"{self.label}-{partition}-{seq}"
            self.outstanding[value] = (partition, seq)
            try:
                self.producer.produce(self.topic, value=value.encode(), partition=partition,
                                      on_delivery=self._delivered)
            except BufferError:
                del self.outstanding[value]
                self.producer.poll(0.1)
                continue
            except KafkaException as e:  # fatal idempotence error: the producer is done
                del self.outstanding[value]
                self.fatal = str(e)
                self.rec.note(f"{self.label}: produce raised {e}")
                break
            self.seq[partition] += 1
            turn += 1
            self.producer.poll(0)
            time.sleep(self.interval_s)
        left = self.producer.flush(self._flush_timeout_s)
        for value, (partition, seq) in sorted(self.outstanding.items()):
            self.unknown += 1
            self.rec.produce(self.topic, partition, self.label, seq, value, "unknown")
        self.outstanding.clear()
        self.rec.note(f"{self.label}: stopped, {left} messages still queued after flush")
        self.producer = None  # let librdkafka's threads go now, not at interpreter exit

    def stop(self, flush_timeout_s: float = 30.0) -> None:
        self._flush_timeout_s = flush_timeout_s
        self._halt.set()
        self.join(flush_timeout_s + 10)
        assert not self.is_alive(), f"{self.name} did not stop"

    @property
    def sent(self) -> int:
        return sum(self.seq)


class ReaderThread(threading.Thread):
    """Reads every partition from offset 0 and records each record as a `read`."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, rec: HistoryRecorder,
                 name: str = "c1"):
        super().__init__(name=f"reader-{name}", daemon=True)
        self.topic, self.rec, self.label = topic, rec, name
        self.count = 0
        self.errors: list[str] = []
        self.positions: dict[int, int] = {}
        self._halt = threading.Event()
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": f"history-{name}-{topic}",
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 100, "error_cb": lambda e: self.errors.append(e.name())})
        self.consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                m = self.consumer.poll(0.2)
                if m is None:
                    continue
                if m.error():
                    self.errors.append(m.error().name())
                    continue
                self.rec.read(self.topic, m.partition(), m.offset(), m.value().decode(),
                              self.label)
                self.positions[m.partition()] = m.offset() + 1
                self.count += 1
        finally:
            self.consumer.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(15)
        assert not self.is_alive(), f"{self.name} did not stop"


def raw_produce(port: int, topic: str, partition: int, value: str, rec: HistoryRecorder,
                seq: int, producer: str = "raw", timeout_ms: int = 3000) -> int | None:
    """One acks=all Produce v7 of one record to the node on `port`, one attempt; records the
    outcome and returns the error code (None when no answer came)."""
    batch = w.record_batch([value.encode()], int(time.time() * 1000))
    body = (w.string(None) + w.i16(-1) + w.i32(timeout_ms)
            + w.array([w.string(topic) + w.array([w.i32(partition) + w.i32(len(batch))
                                                   + batch])]))
    try:
        # A broker should answer by timeout_ms (Kafka: REQUEST_TIMED_OUT right then); one that
        # holds the request longer counts as no answer.
        r = c.call(port, c.API_PRODUCE, 7, body, timeout_s=timeout_ms / 1000 + 5)
        [(_, _, err, base)] = w.parse_produce_v7(r)
    except (OSError, ConnectionError):
        rec.produce(topic, partition, producer, seq, value, "unknown")
        return None
    if err == c.NONE:
        rec.produce(topic, partition, producer, seq, value, "acked", offset=base)
    elif err in DEFINITE_REFUSALS:
        rec.produce(topic, partition, producer, seq, value, "failed", error=err)
    else:
        rec.produce(topic, partition, producer, seq, value, "unknown", error=err)
    return err


def final_read(bootstrap: str, topic: str, partitions: int, rec: HistoryRecorder,
               timeout_s: float = 30.0) -> dict[int, tuple[int, int, list[tuple[int, str]]]]:
    """Reads each partition from its log start to its high watermark (asked of the leader
    first) and records it. Returns {partition: (log_start, high_watermark, [(offset, value)])}.
    Raises if a partition cannot be read up to its high watermark in time: a short final read
    would turn into false "lost" values."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"history-final-{topic}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "fetch.wait.max.ms": 100})
    try:
        ranges = {}
        for p in range(partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10,
                                                       cached=False)
            ranges[p] = (low, high)
        consumer.assign([TopicPartition(topic, p, low) for p, (low, _) in ranges.items()])
        got: dict[int, list[tuple[int, str]]] = {p: [] for p in ranges}
        position = {p: low for p, (low, _) in ranges.items()}
        deadline = time.monotonic() + timeout_s
        while any(position[p] < high for p, (_, high) in ranges.items()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"final read of {topic}: at {position}, want {ranges}")
            m = consumer.poll(0.2)
            if m is None or m.error():
                continue
            p = m.partition()
            if m.offset() >= ranges[p][1]:
                continue  # past the high watermark taken at the start
            got[p].append((m.offset(), m.value().decode()))
            position[p] = m.offset() + 1
        out = {}
        for p, (low, high) in ranges.items():
            rec.final(topic, p, low, high, got[p])
            out[p] = (low, high, got[p])
        return out
    finally:
        consumer.close()


def check_history(path: Path, max_anomalies: int = 20) -> tuple[int, dict, str]:
    """Runs `millrace-tools history check --json`: (exit status, report, summary text).
    Raises when the checker could not read the history (no report printed)."""
    tools = tools_binary()
    out = subprocess.run([tools, "history", "check", "--json", "--max", str(max_anomalies),
                          str(path)], capture_output=True, text=True, timeout=120)
    if not out.stdout.strip():
        raise RuntimeError(f"history check of {path} failed: {out.stderr.strip()}")
    report = json.loads(out.stdout)
    text = subprocess.run([tools, "history", "check", "--max", str(max_anomalies), str(path)],
                          capture_output=True, text=True, timeout=120).stdout
    return out.returncode, report, text


# --- replicas on disk --------------------------------------------------------------------------

BATCH_OVERHEAD = 12  # base_offset i64, batch_length i32
LAST_OFFSET_DELTA_AT = 23  # after partition_leader_epoch i32, magic i8, crc u32, attributes i16


def replica_batches(log_dir: Path, topic: str, partition: int) -> list[tuple[int, int, bytes]]:
    """[(base_offset, last_offset, batch bytes)] from the partition's segment files in offset
    order. A zero length (block padding) ends a segment; a batch cut short is returned as it is
    (its bytes then differ from the other replicas')."""
    pdir = Path(log_dir) / f"{topic}-{partition}"
    segments = sorted(f for f in pdir.glob("*.log")
                      if len(f.stem) == 20 and f.stem.isdigit())
    out = []
    for seg in segments:
        data = seg.read_bytes()
        pos = 0
        while pos + BATCH_OVERHEAD <= len(data):
            base, length = struct.unpack_from(">qi", data, pos)
            if length == 0:
                break
            end = pos + BATCH_OVERHEAD + length
            last = base
            if pos + LAST_OFFSET_DELTA_AT + 4 <= len(data):
                last = base + struct.unpack_from(">i", data, pos + LAST_OFFSET_DELTA_AT)[0]
            out.append((base, last, data[pos:end]))
            pos = end
    return out


def compare_replicas(nodes, topic: str, partition: int) -> tuple[bool, str]:
    """Whether every node's copy of the partition holds the same batches, byte for byte;
    the reason when not."""
    logs = {x.node_id: replica_batches(x.log_dir, topic, partition) for x in nodes}
    first_id, first = next(iter(logs.items()))
    for node_id, batches in logs.items():
        if batches == first:
            continue
        for i, (a, b) in enumerate(zip(first, batches)):
            if a != b:
                return False, (f"{topic}-{partition}: node {first_id} and node {node_id} differ "
                               f"at batch {i}: offsets {a[0]}..{a[1]} vs {b[0]}..{b[1]}")
        return False, (f"{topic}-{partition}: node {first_id} has {len(first)} batches "
                       f"(to offset {first[-1][1] if first else None}), node {node_id} "
                       f"{len(batches)} (to {batches[-1][1] if batches else None})")
    return True, ""


def tools_log_check(log_dir: Path, topic: str, partition: int) -> tuple[int, str]:
    """`millrace-tools log check` of one replica's partition directory: CRCs, lengths,
    increasing offsets (it reads Kafka's segment files too)."""
    out = subprocess.run([tools_binary(), "log", "check",
                          str(Path(log_dir) / f"{topic}-{partition}")],
                         capture_output=True, text=True, timeout=60)
    return out.returncode, (out.stdout + out.stderr).strip()


def kafka_error_name(code: int | None) -> str:
    if code is None:
        return "no answer"
    return c.error_name(code) if code >= 0 else KafkaError(code).name()
