#!/usr/bin/env python3
"""One consumer-group member in its own process, for the group tests: subscribes with
confluent-kafka, commits synchronously after each message it processes, and prints one JSON line
per event on stdout: {"assigned": [...]}, {"revoked": [...]}, {"msg": [partition, offset]}.
SIGTERM closes the consumer (leaving the group); SIGKILL is how a test crashes it.

    group_member.py BOOTSTRAP TOPIC GROUP [--strategy S] [--instance-id ID] [--session-ms N]
                    [--protocol classic|consumer]

With --protocol consumer (KIP-848) the strategy is the server assignor ("-" for the broker's
default) and the session timeout is the broker's: librdkafka refuses the classic settings then.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys

from confluent_kafka import Consumer

stopping = False


def emit(event: dict) -> None:
    print(json.dumps(event), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("topic")
    ap.add_argument("group")
    ap.add_argument("--strategy", default="range")
    ap.add_argument("--instance-id")
    ap.add_argument("--session-ms", type=int, default=6000)
    ap.add_argument("--protocol", default="classic")
    args = ap.parse_args()
    conf = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
    if args.protocol == "classic":
        conf.update({"partition.assignment.strategy": args.strategy,
                     "session.timeout.ms": args.session_ms, "heartbeat.interval.ms": 500})
    else:
        conf["group.protocol"] = args.protocol
        if args.strategy != "-":
            conf["group.remote.assignor"] = args.strategy
    if args.instance_id:
        conf["group.instance.id"] = args.instance_id
    c = Consumer(conf)

    def on_assign(consumer, parts):
        emit({"assigned": sorted(p.partition for p in parts)})

    def on_revoke(consumer, parts):
        emit({"revoked": sorted(p.partition for p in parts)})

    def stop(*_):
        global stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    c.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke)
    while not stopping:
        m = c.poll(0.2)
        if m is None or m.error():
            continue
        c.commit(message=m, asynchronous=False)  # commit after processing
        emit({"msg": [m.partition(), m.offset()]})
    c.close()
    emit({"closed": True})
    return 0


if __name__ == "__main__":
    sys.exit(main())
