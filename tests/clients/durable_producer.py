"""Producer half of the durability test, run as its own process.

    python durable_producer.py BOOTSTRAP TOPIC KEY_PREFIX ACKED_FILE MAX_SECONDS

Produces keys KEY_PREFIX-000000, -000001, ... with acks=all and idempotence as fast as the broker
takes them, and appends each key to ACKED_FILE the moment its delivery report says the broker
acknowledged it (one unbuffered write per key, so a key in the file was acknowledged even if this
process is killed right after). Stops after MAX_SECONDS, on SIGTERM, or after the first delivery
failure (the broker is gone), and never retries past that.
"""

import os
import signal
import sys
import time

from confluent_kafka import Producer


def main() -> int:
    bootstrap, topic, prefix, acked_path, max_s = sys.argv[1:6]
    deadline = time.monotonic() + float(max_s)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append("sigterm"))
    fd = os.open(acked_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    failures = []

    def on_delivery(err, msg):
        if err is None:
            os.write(fd, msg.key() + b"\n")
        else:
            failures.append(err)

    producer = Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 2,
        "message.timeout.ms": 3000,
        "queue.buffering.max.messages": 20000,
    })
    i = 0
    while not stop and not failures and time.monotonic() < deadline:
        try:
            producer.produce(topic, key=f"{prefix}-{i:06d}".encode(), value=b"x" * 100,
                             on_delivery=on_delivery)
            i += 1
        except BufferError:
            producer.poll(0.05)
        producer.poll(0)
    producer.flush(5)  # collect the reports still in flight; failures are expected here
    os.close(fd)
    print(f"produced {i}, failures {len(failures)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
