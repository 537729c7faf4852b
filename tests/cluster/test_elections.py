"""Preferred-leader elections (issue 17): after a broker restarts, leadership of the partitions
it preferred stays where failover put it until an ElectLeaders request (kafka-leader-election,
AdminClient.elect_leaders) or the controller's automatic round (auto.leader.rebalance.enable,
every leader.imbalance.check.interval.seconds) moves it back to the first replica.

Runs against millrace (in CI) and Apache Kafka 4.4 (the reference).
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import ElectionType, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

import cwire as c
from cluster import wait_for
from test_replication import ALL, BACK_IN_ISR_S, OUT_OF_ISR_S, create_rf3, isr_is, partitions


def error_name(answer) -> str | None:
    """A per-partition answer of AdminClient.elect_leaders: None, a KafkaError or a
    KafkaException."""
    if isinstance(answer, KafkaException):
        answer = answer.args[0]
    return answer.name() if isinstance(answer, KafkaError) else answer


def restart_a_preferred_leader(cluster, topic, observe) -> tuple[int, int]:
    """SIGTERMs the preferred leader of one partition (not the active controller), waits for
    leadership to move, restarts it and waits until it is back in every ISR. Returns
    (partition, preferred broker)."""
    controller = cluster.active_controller()
    view = partitions(cluster.node(controller), topic)
    p, pm = next(((p, pm) for p, pm in sorted(view.items())
                  if pm.leader == pm.replicas[0] and pm.leader != controller))
    preferred = pm.replicas[0]
    victim = cluster.node(preferred)
    watcher = cluster.node(controller)
    t0 = time.monotonic()
    victim.stop()
    wait_for(lambda: partitions(watcher, topic)[p].leader not in (preferred, -1), OUT_OF_ISR_S,
             what=f"{topic}-{p}: leadership moved off {preferred}")
    observe("preferred leader stopped: leadership moved after (s)",
            round(time.monotonic() - t0, 2))
    victim.start()
    wait_for(lambda: isr_is(cluster.running_brokers(), topic, ALL), BACK_IN_ISR_S,
             interval_s=0.2, what=f"{topic}: node {preferred} back in every ISR")
    return p, preferred


@pytest.mark.timeout(150)
def test_elect_leaders_moves_leadership_back_to_the_preferred_replica(cluster, topic, observe):
    create_rf3(cluster, topic)
    p, preferred = restart_a_preferred_leader(cluster, topic, observe)
    # The session cluster checks imbalance every 300 s (the default): nothing moved back yet.
    now = partitions(cluster.node(preferred), topic)[p]
    observe("after the restart: (leader, preferred)", (now.leader, preferred))
    assert now.leader != preferred, now

    admin = AdminClient({"bootstrap.servers": cluster.bootstrap()})
    tp = TopicPartition(topic, p)
    t0 = time.monotonic()
    result = admin.elect_leaders(ElectionType.PREFERRED, [tp]).result(30)
    assert list(result.values()) == [None], result
    wait_for(lambda: all(partitions(x, topic)[p].leader == preferred
                         for x in cluster.running_brokers()), 30,
             what=f"{topic}-{p}: preferred leader {preferred} everywhere")
    observe("ElectLeaders(PREFERRED): preferred replica leads everywhere after (s)",
            round(time.monotonic() - t0, 2))
    # The new leader takes acks=all writes.
    err, _ = c.produce(cluster.node(preferred).port, topic, p, [b"after-election"])
    assert err == c.NONE, c.error_name(err)

    # Again: nothing to do; an unknown partition is named as such.
    again = admin.elect_leaders(ElectionType.PREFERRED, [tp, TopicPartition(topic, 99)])
    answers = {k.partition: error_name(v) for k, v in again.result(30).items()}
    observe("ElectLeaders again: per-partition answers", answers)
    # librdkafka's name for UNKNOWN_TOPIC_OR_PARTITION.
    assert answers == {p: "ELECTION_NOT_NEEDED", 99: "UNKNOWN_TOPIC_OR_PART"}, answers
    # An unclean election of a partition that has a leader is not needed either.
    unclean = admin.elect_leaders(ElectionType.UNCLEAN, [tp]).result(30)[tp]
    assert error_name(unclean) == "ELECTION_NOT_NEEDED", unclean


@pytest.mark.timeout(180)
def test_auto_leader_rebalance_moves_leadership_back(cluster_factory, topic, observe):
    cl = cluster_factory({"leader.imbalance.check.interval.seconds": "2"})
    create_rf3(cl, topic)
    p, preferred = restart_a_preferred_leader(cl, topic, observe)
    t0 = time.monotonic()
    wait_for(lambda: all(partitions(x, topic)[p].leader == preferred
                         for x in cl.running_brokers()), 60, interval_s=0.2,
             what=f"{topic}-{p}: leadership back on {preferred}")
    observe("auto.leader.rebalance (interval 2 s): preferred leader back after ISR rejoin (s)",
            round(time.monotonic() - t0, 2))
