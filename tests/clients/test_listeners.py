"""Several client listeners at once (Kafka's `listeners` + `listener.security.protocol.map` +
`advertised.listeners`): every listener is served on every shard, and a client is told each
broker's endpoint of the listener it came in on, as Kafka answers Metadata, so clients that
bootstrap on an "external" listener stay on it.
"""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient

from brokerproc import free_port

pytestmark = pytest.mark.millrace_only

TIMEOUT_S = 15


def brokers_seen(port: int) -> list[tuple[int, str, int]]:
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
    md = admin.list_topics(timeout=TIMEOUT_S)
    return sorted((b.id, b.host, b.port) for b in md.brokers.values())


def test_each_listener_advertises_its_own_endpoint(broker_factory):
    b = broker_factory()
    internal, external = b.port, free_port()
    b.properties.update({
        "listeners": f"INTERNAL://127.0.0.1:{internal},EXTERNAL://127.0.0.1:{external}",
        "listener.security.protocol.map": "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT",
        "inter.broker.listener.name": "INTERNAL",
        # The external name a client would use from elsewhere: localhost, not the bound IP.
        "advertised.listeners": f"INTERNAL://127.0.0.1:{internal},EXTERNAL://localhost:{external}",
    })
    b.start()
    assert brokers_seen(internal) == [(0, "127.0.0.1", internal)]
    assert brokers_seen(external) == [(0, "localhost", external)]


def test_a_listener_with_no_protocol_is_a_startup_error(broker_factory):
    b = broker_factory()
    b.properties.update({
        "listeners": f"PLAINTEXT://127.0.0.1:{b.port},EXTERNAL://127.0.0.1:{free_port()}",
    })
    with pytest.raises(RuntimeError) as failed:
        b.start()
    assert "no security protocol for listener EXTERNAL" in str(failed.value)
