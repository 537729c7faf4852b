#!/usr/bin/env python3
"""Consumer-group rebalance time and offset-commit throughput, against any broker.
A measurement for reports, not a test.

    .venv/bin/python tests/clients/group_bench.py --bootstrap 127.0.0.1:PORT --consumers N \
        [--partitions 24] [--commits 5000] [--rounds 5] [--heartbeat-ms 500] [--label X]
        [--protocol classic|consumer]

Rebalance: a new topic of P partitions with a few records in each; N confluent-kafka consumers,
one process each, are created and connected first, then all told to subscribe at once (one group,
partition.assignment.strategy=range, auto.offset.reset=earliest, nothing committed). The time runs
from the last subscribe() call to the moment every member holds its share of an assignment that
covers every partition exactly once and has polled a record from each partition it holds (in that
assignment). A rebalance that follows one that looked complete is waited for (--settle-s) and
counted. Each round uses a new group; the median and every round are printed.

Clients learn that a group is rebalancing from a heartbeat response, so heartbeat.interval.ms
(--heartbeat-ms, 500 here, librdkafka's default is 3000) bounds what is measured, and so does the
broker's group.initial.rebalance.delay.ms (Kafka's default 3000): start the broker with 0.

With --protocol consumer (KIP-848) the members use group.protocol=consumer and the broker's
server assignor; assignments arrive incrementally (revoke before assign), the heartbeat interval
is the broker's group.consumer.heartbeat.interval.ms (start it with 500, and
group.consumer.min.heartbeat.interval.ms=500, to compare with the
classic runs) and --heartbeat-ms/--session-ms do not apply. The initial rebalance delay does not
exist in this protocol.

Commits: one consumer subscribed alone in its own group, once assigned: K synchronous commits of
one partition's offset (each waits for its OffsetCommit response), then K asynchronous commits
with a final synchronous one as the flush, counted until every callback has arrived.

Prints a summary and one JSON line. Monotonic times from different processes are compared, which
is valid on Linux (CLOCK_MONOTONIC is system-wide).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import queue
import statistics
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROUND_TIMEOUT_S = 120


def create_topic(bootstrap: str, topic: str, partitions: int, per_partition: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=30)[topic].result(30)
    deadline = time.monotonic() + 30
    while True:
        md = admin.list_topics(topic, timeout=10).topics.get(topic)
        if md and md.error is None and len(md.partitions) == partitions \
                and all(p.leader >= 0 for p in md.partitions.values()):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"topic {topic} has no leaders after 30 s")
        time.sleep(0.1)
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for part in range(partitions):
        for i in range(per_partition):
            p.produce(topic, value=f"{part}-{i}".encode(), partition=part)
    if p.flush(30) != 0:
        raise SystemExit("produce did not finish in 30 s")


def consumer_conf(args, group: str) -> dict:
    conf = {
        "bootstrap.servers": args.bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
    if args.protocol == "consumer":
        conf["group.protocol"] = "consumer"
    else:
        conf.update({"partition.assignment.strategy": "range",
                     "session.timeout.ms": args.session_ms,
                     "heartbeat.interval.ms": args.heartbeat_ms})
    return conf


def member(index: int, conf: dict, topic: str, go, stop, events) -> None:
    """One group member (a process). Reports (index, kind, monotonic time, data) on `events`:
    ready, subscribed, assigned [partitions], revoked [partitions], complete [partitions] (a
    record polled from each partition of the current assignment)."""
    incremental = conf.get("group.protocol") == "consumer"
    c = Consumer(conf)
    c.list_topics(topic, timeout=30)  # connected, metadata known: startup is not measured
    need: set[int] = set()
    held: list[int] = []

    def report(kind, data=None):
        events.put((index, kind, time.monotonic(), data))

    def on_assign(consumer, parts):
        nonlocal need, held
        added = {p.partition for p in parts}
        held = sorted(set(held) | added) if incremental else sorted(added)
        need = (need | added) if incremental else set(held)
        report("assigned", held)
        if not need:
            report("complete", held)

    def on_revoke(consumer, parts):
        nonlocal need, held
        gone = {p.partition for p in parts}
        if incremental:
            held = sorted(set(held) - gone)
            need -= gone
        else:
            need, held = set(), []
        report("revoked", sorted(gone))
        if incremental and held and not need:
            report("complete", held)

    report("ready")
    go.wait()
    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    report("subscribed")
    while not stop.is_set():
        m = c.poll(0.05)
        if m is None or m.error():
            continue
        if m.partition() in need:
            need.discard(m.partition())
            if not need:
                report("complete", held)
    c.close()


def rebalance_round(args, topic: str) -> float:
    ctx = mp.get_context("spawn")  # no librdkafka state inherited through fork
    go, stop, events = ctx.Event(), ctx.Event(), ctx.Queue()
    conf = consumer_conf(args, f"bench-{uuid.uuid4().hex[:8]}")
    procs = [ctx.Process(target=member, args=(i, conf, topic, go, stop, events), daemon=True)
             for i in range(args.consumers)]
    for p in procs:
        p.start()
    try:
        ready = 0
        deadline = time.monotonic() + ROUND_TIMEOUT_S
        while ready < args.consumers:
            _, kind, _, _ = events.get(timeout=max(0.1, deadline - time.monotonic()))
            ready += kind == "ready"
        go.set()
        subscribed: dict[int, float] = {}
        complete: dict[int, tuple[float, list[int]]] = {}  # member -> (time, partitions)
        last_event = time.monotonic()
        rebalances = 0
        while True:
            if time.monotonic() > deadline:
                raise SystemExit(f"round not complete after {ROUND_TIMEOUT_S}s: "
                                 f"{len(complete)}/{args.consumers} members complete")
            try:
                i, kind, t, data = events.get(timeout=0.05)
            except queue.Empty:
                if done(args, subscribed, complete) and time.monotonic() - last_event > args.settle_s:
                    break
                continue
            last_event = time.monotonic()
            if kind == "subscribed":
                subscribed[i] = t
            elif kind == "assigned":
                complete.pop(i, None)
                rebalances += 1
            elif kind == "revoked":
                complete.pop(i, None)
            elif kind == "complete":
                complete[i] = (t, data)
        start = max(subscribed.values())
        end = max(t for t, _ in complete.values())
        if args.verbose:
            print(f"  round: {end - start:.3f}s, {rebalances} assignments seen", file=sys.stderr)
        return end - start
    finally:
        stop.set()
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()


def done(args, subscribed, complete) -> bool:
    if len(subscribed) < args.consumers or len(complete) < args.consumers:
        return False
    held = [p for _, parts in complete.values() for p in parts]
    return sorted(held) == list(range(args.partitions))


def commit_throughput(args, topic: str) -> tuple[float, float]:
    acked = {"n": 0, "errors": 0}

    def on_commit(err, _parts):
        acked["n"] += 1
        acked["errors"] += err is not None

    # a member of its own group (its generation is checked on every commit)
    conf = consumer_conf(args, f"bench-commit-{uuid.uuid4().hex[:8]}")
    conf["on_commit"] = on_commit
    c = Consumer(conf)
    c.subscribe([topic])
    deadline = time.monotonic() + 60
    while not c.assignment():
        if time.monotonic() > deadline:
            raise SystemExit("the commit consumer got no assignment in 60 s")
        c.poll(0.1)
    part = c.assignment()[0].partition
    span = args.records_per_partition + 1  # offsets 0..records, so every one is in the log

    start = time.perf_counter()
    for i in range(args.commits):
        c.commit(offsets=[TopicPartition(topic, part, i % span)], asynchronous=False)
    sync_rate = args.commits / (time.perf_counter() - start)
    c.poll(0)
    acked["n"], acked["errors"] = 0, 0

    start = time.perf_counter()
    for i in range(args.commits):
        c.commit(offsets=[TopicPartition(topic, part, i % span)], asynchronous=True)
    c.commit(offsets=[TopicPartition(topic, part, span - 1)], asynchronous=False)  # the flush
    deadline = time.monotonic() + 120
    while acked["n"] < args.commits:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {acked['n']}/{args.commits} async commit callbacks in 120 s")
        c.poll(0.01)
    async_rate = args.commits / (time.perf_counter() - start)
    if acked["errors"]:
        raise SystemExit(f"{acked['errors']} async commits failed")
    (tp,) = c.committed([TopicPartition(topic, part)], timeout=30)
    if tp.offset != span - 1:
        raise SystemExit(f"committed offset {tp.offset}, expected {span - 1}")
    c.close()
    return sync_rate, async_rate


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--consumers", type=int, required=True)
    ap.add_argument("--partitions", type=int, default=24)
    ap.add_argument("--commits", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--records-per-partition", type=int, default=3)
    ap.add_argument("--heartbeat-ms", type=int, default=500)
    ap.add_argument("--session-ms", type=int, default=10000)
    ap.add_argument("--settle-s", type=float, default=2.0,
                    help="quiet time after a complete assignment before a round ends")
    ap.add_argument("--protocol", choices=["classic", "consumer"], default="classic")
    ap.add_argument("--label", default="")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()

    topic = f"group-bench-{uuid.uuid4().hex[:8]}"
    create_topic(args.bootstrap, topic, args.partitions, args.records_per_partition)
    rounds = [rebalance_round(args, topic) for _ in range(args.rounds)]
    sync_rate, async_rate = commit_throughput(args, topic)

    result = {
        "label": args.label, "bootstrap": args.bootstrap, "consumers": args.consumers,
        "partitions": args.partitions, "heartbeat_ms": args.heartbeat_ms,
        "protocol": args.protocol,
        "rebalance_s_median": round(statistics.median(rounds), 3),
        "rebalance_s_rounds": [round(r, 3) for r in rounds],
        "commits": args.commits, "sync_commits_per_s": round(sync_rate, 1),
        "async_commits_per_s": round(async_rate, 1), "host": platform.node(),
    }
    print(f"{args.label or args.bootstrap} ({args.protocol}): {args.consumers} consumers, "
          f"{args.partitions} partitions: "
          f"rebalance {result['rebalance_s_median']:.3f} s median of {result['rebalance_s_rounds']}; "
          f"{args.commits} commits: sync {sync_rate:,.0f}/s, async {async_rate:,.0f}/s")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KafkaException as e:
        sys.exit(f"client error: {e}")
