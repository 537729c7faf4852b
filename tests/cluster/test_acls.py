"""ACLs on a three-node cluster: CreateAcls and CreateTopics sent to a node that is not the
active controller are forwarded inside an Envelope with the client's principal, and the
controller judges them as that client (KIP-590); the bindings reach every node.

Every connection here is PLAINTEXT, so the principal is User:ANONYMOUS; with
`allow.everyone.if.no.acl.found=true` it may do what no ACL covers, and a DENY binding on a
topic prefix is what the controller must see it by.
"""

from __future__ import annotations


import pytest

import cwire as c
from cluster import cluster_kind, wait_for

# Kafka's controllers need their own (here ANONYMOUS) principal among the super users before
# the authorizer has loaded the metadata (their Raft votes fail otherwise), and a super
# user is not held to the DENY this test is about.
pytestmark = pytest.mark.skipif(cluster_kind() != "millrace",
                                reason="Kafka's KRaft bootstrap needs ANONYMOUS as super user")

STANDARD = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
TOPIC_AUTHORIZATION_FAILED = 29


def create_acl_v1(port: int, name: str, pattern: int, op: int, permission: int) -> int:
    """CreateAcls v1 for User:ANONYMOUS on a topic (host *): the creation's error code."""
    body = (c.i32(1) + c.i8(2) + c.string(name) + c.i8(pattern) + c.string("User:ANONYMOUS")
            + c.string("*") + c.i8(op) + c.i8(permission))
    r = c.call(port, 30, 1, body)
    r.i32()  # throttle
    assert r.i32() == 1
    return r.i16()


def described_acls(port: int) -> int:
    """DescribeAcls v1 of every binding: how many there are (-1 on an error)."""
    body = (c.i8(1) + c.string(None) + c.i8(1) + c.string(None) + c.string(None)
            + c.i8(1) + c.i8(1))
    r = c.call(port, 29, 1, body)
    r.i32()
    if r.i16() != c.NONE:
        return -1
    r.string()
    count = 0
    for _ in range(r.i32()):
        r.i8(), r.string(), r.i8()
        for _ in range(r.i32()):
            r.string(), r.string(), r.i8(), r.i8()
            count += 1
    return count


def test_forwarded_changes_are_judged_as_the_client(cluster_factory):
    cl = cluster_factory({"authorizer.class.name": STANDARD,
                          "allow.everyone.if.no.acl.found": "true"})
    leader = cl.wait_active_controller()
    other = next(n for n in cl.running() if n.node_id != leader)
    made = c.create_topics(other.port, {"denied-topic": 1, "allowed-topic": 1})
    assert all(code == c.NONE for code, _ in made.values()), made
    # DENY DELETE (6) on the prefix "denied-" (pattern 4), created through a non-controller.
    # (CREATE would not do: CREATE on the cluster, which allow-everyone grants, covers every
    # topic, in Kafka too.)
    assert create_acl_v1(other.port, "denied-", 4, 6, 2) == c.NONE
    wait_for(lambda: all(described_acls(n.port) == 1 for n in cl.running()), 15,
             what="the binding on every node")
    # Forwarded bare, the controller would trust the request and delete both.
    gone = c.delete_topics(other.port, ["denied-topic", "allowed-topic"])
    assert gone == {"denied-topic": TOPIC_AUTHORIZATION_FAILED, "allowed-topic": c.NONE}, gone
    # The same decision on the controller itself.
    gone = c.delete_topics(cl.node(leader).port, ["denied-topic"])
    assert gone == {"denied-topic": TOPIC_AUTHORIZATION_FAILED}, gone
