"""The schema registry on a three-node cluster: every broker serves the same registry (state in
`_schemas`, replicated to three brokers), a schema registered through one broker is read through
the others at once, registrations racing through two brokers never give one id to two schemas,
and the registry keeps working, with nothing lost, after a kill -9 of `_schemas`' leader.

millrace only (the registry is millrace's).
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest

from cluster import cluster_kind, wait_for

pytestmark = pytest.mark.skipif(cluster_kind() != "millrace", reason="millrace's schema registry")

CT = "application/vnd.schemaregistry.v1+json"


def call(url: str, method: str = "GET", body=None) -> tuple[int, object]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": CT})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    except OSError as e:
        return 0, {"error": str(e)}


def schema(name: str, n: int) -> str:
    fields = [{"name": f"f{i}", "type": "int", "default": 0} for i in range(n)]
    return json.dumps({"type": "record", "name": name, "fields": fields})


def url(node) -> str:
    return f"http://{node.host}:{node.registry_port}"


@pytest.mark.timeout(240)
def test_one_registry_on_every_broker_through_races_and_a_leader_kill(cluster, topic):
    orders = f"{topic}-orders-value"
    a, b, c = cluster.running_brokers()[:3]
    status, body = call(f"{url(a)}/subjects/{orders}/versions", "POST",
                        {"schema": schema("Order", 1)})
    assert status == 200, body
    first = body["id"]
    # Another broker answers at once: every request reads _schemas to its end first.
    status, body = call(f"{url(b)}/subjects/{orders}/versions/latest")
    assert status == 200 and body["id"] == first
    assert cluster.leaders("_schemas", via=a) and len(cluster.leaders("_schemas", via=a)) == 1

    # Two brokers registering different schemas at once: every id names one schema.
    results: dict[str, list[tuple[int, int]]] = {"b": [], "c": []}

    def register(node, tag: str):
        for i in range(15):
            status, body = call(f"{url(node)}/subjects/{topic}-race-{tag}-{i}/versions", "POST",
                                {"schema": schema(f"R{tag}{i}", i + 1)})
            results[tag].append((status, body.get("id", body)))

    threads = [threading.Thread(target=register, args=(n, t)) for n, t in ((b, "b"), (c, "c"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    ids = [i for rs in results.values() for (s, i) in rs]
    refused = [(tag, i, r) for tag, rs in results.items() for i, r in enumerate(rs) if r[0] != 200]
    assert refused == [], refused
    assert len(set(ids)) == len(ids) == 30, results
    for tag in ("b", "c"):
        for i, (_, sid) in enumerate(results[tag]):
            status, body = call(f"{url(a)}/schemas/ids/{sid}")
            assert status == 200 and json.loads(body["schema"])["name"] == f"R{tag}{i}"

    # kill -9 the leader of _schemas: the others keep serving and writing.
    leader_id = cluster.leaders("_schemas", via=a)[0]
    leader = cluster.node(leader_id)
    survivor = next(n for n in (a, b, c) if n.node_id != leader_id)
    leader.kill9()
    try:
        wait_for(lambda: cluster.leaders("_schemas", via=survivor)[0] not in (leader_id, -1), 30,
                 what="a new leader of _schemas")

        def registered():
            status, body = call(f"{url(survivor)}/subjects/{orders}/versions", "POST",
                                {"schema": schema("Order", 2)})
            return status == 200 and body
        second = wait_for(registered, 60, what="a registration after the kill")["id"]
        assert second not in ids and second != first
        status, body = call(f"{url(survivor)}/subjects/{orders}/versions")
        assert status == 200 and body == [1, 2]
        status, body = call(f"{url(survivor)}/subjects?subjectPrefix={topic}-race-")
        assert status == 200 and len(body) == 30
    finally:
        leader.start()
    cluster.wait_ready()
    # The restarted broker serves the same registry.
    status, body = call(f"{url(leader)}/subjects/{orders}/versions/2")
    assert status == 200 and body["id"] == second
