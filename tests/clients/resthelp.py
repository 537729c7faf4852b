"""What the REST proxy tests share: a proxy process in front of the session broker, an HTTP
call that returns Confluent's error bodies as data, and topic creation."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from brokerproc import BrokerProcess
from confluent_kafka.admin import AdminClient, NewTopic

BODY_MAX = 2 * 1024 * 1024


def start_proxy(broker, data_dir, *overrides: str) -> BrokerProcess:
    """A millrace process whose REST proxy is a client of `broker` (millrace or Kafka), with a
    small body bound for the 413 test and `overrides` (KEY=VALUE)."""
    p = BrokerProcess(data_dir, kind="millrace")
    p.extra_args = ["--override", f"millrace.rest.bootstrap.servers={broker.bootstrap}",
                    "--override", f"socket.request.max.bytes={BODY_MAX}"]
    for o in overrides:
        p.extra_args += ["--override", o]
    p.start()
    return p


def call(url: str, method: str = "GET", body=None, content_type: str | None = None,
         accept: str | None = None) -> tuple[int, object, str]:
    """(status, parsed JSON body or the text, content type)."""
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if content_type:
        req.add_header("Content-Type", content_type)
    if accept:
        req.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            status, raw, ctype = resp.status, resp.read(), resp.headers["Content-Type"]
    except urllib.error.HTTPError as e:
        status, raw, ctype = e.code, e.read(), e.headers["Content-Type"]
    text = raw.decode()
    try:
        return status, json.loads(text), ctype
    except json.JSONDecodeError:
        return status, text, ctype


def create(broker, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)


