"""Partition replication with replication factor 3 and min.insync.replicas=2 (issue 17).

Each scenario records what its clients saw (history.py) and hands it to the history checker
(replication/src/history.rs through `millrace-tools history check`): no acknowledged value
lost or moved, none duplicated or reordered, no consumer read of something the final log does
not hold, and no value the broker refused before appending ever read. After the scenario the
three replicas of every partition must hold the same batches, byte for byte.

Runs against millrace (in CI) and Apache Kafka 4.4 (the reference).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from confluent_kafka import Producer

import cwire as c
from cluster import (REPLICA_LAG_TIME_MAX_MS, REPO, SESSION_TIMEOUT_MS, cluster_kind,
                     wait_for)
from history import (NOT_ENOUGH_REPLICAS, NOT_ENOUGH_REPLICAS_AFTER_APPEND, HistoryRecorder,
                     ReaderThread, TrackedProducer, check_history, compare_replicas, final_read,
                     kafka_error_name, raw_produce, replica_batches, tools_log_check)

PARTITIONS = 3
RF = 3
MIN_ISR = 2
ALL = {1, 2, 3}
# Bounds: a dead or stalled replica leaves the ISR once the session timeout or the lag time
# has run (both 3 s here); restarts and catching up are given generous room on two cores.
OUT_OF_ISR_S = max(SESSION_TIMEOUT_MS, REPLICA_LAG_TIME_MAX_MS) / 1000 + 12
BACK_IN_ISR_S = 45.0


@pytest.fixture
def history_path(request):
    """Where the test's history goes: kept after the run (target/cluster-histories/), so a
    failed run can be checked again with `millrace-tools history check FILE`."""
    out = REPO / "target/cluster-histories" / f"{cluster_kind()}-{request.node.name}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def partitions(node, topic) -> dict[int, c.PartitionMeta]:
    t = c.metadata(node.port, [topic]).topics[topic]
    assert t.error == c.NONE, c.error_name(t.error)
    return t.partitions


def isr_is(nodes, topic, want: set[int]) -> bool:
    """Every node in `nodes` reports ISR = `want` and a leader in it, for every partition."""
    for x in nodes:
        for pm in partitions(x, topic).values():
            if set(pm.isr) != want or pm.leader not in want:
                return False
    return True


def isr_view(node, topic) -> dict[int, list[int]]:
    return {p: sorted(pm.isr) for p, pm in sorted(partitions(node, topic).items())}


def create_rf3(cluster, topic, n=PARTITIONS, min_isr=MIN_ISR) -> float:
    cluster.create_topic(topic, n, configs={"min.insync.replicas": str(min_isr)},
                         replication_factor=RF)
    t0 = time.monotonic()
    wait_for(lambda: isr_is(cluster.running_brokers(), topic, ALL), 30,
             what=f"{topic}: ISR of all three everywhere")
    return time.monotonic() - t0


def wait_full_isr(cluster, topic, observe, what: str, t0: float) -> None:
    wait_for(lambda: isr_is(cluster.running_brokers(), topic, ALL), BACK_IN_ISR_S,
             interval_s=0.2, what=f"{topic}: {what}")
    observe(what + " (s)", round(time.monotonic() - t0, 2))


def check_and_report(path, observe, label: str) -> dict:
    rc, report, text = check_history(path)
    print(text)
    observe(f"{label}: history", {"stats": report["stats"], "errors": report["errors"],
                                  "warnings": report["warnings"]})
    assert report["errors"] == 0, text
    assert rc == 0, text
    for category in ("lost", "duplicated", "reordered", "offset_mismatch", "read_uncommitted",
                     "refused_but_present", "unexpected_value"):
        assert report["counts"][category] == 0, text
    return report


def assert_replicas_identical(cluster, topic, n, high_watermarks: dict[int, int], observe):
    """(d) the three copies of each partition hold the same batches, ending at the high
    watermark of the final read; `millrace-tools log check` accepts each copy."""
    t0 = time.monotonic()
    nodes = cluster.nodes
    for p in range(n):
        def same():
            ok, why = compare_replicas(nodes, topic, p)
            assert ok, why
            return True
        wait_for(same, 30, interval_s=0.5, what=f"{topic}-{p}: replicas identical")
        batches = replica_batches(nodes[0].log_dir, topic, p)
        assert batches, f"{topic}-{p}: no batches on disk"
        assert batches[-1][1] + 1 == high_watermarks[p], (p, batches[-1][:2], high_watermarks)
        for x in nodes:
            rc, out = tools_log_check(x.log_dir, topic, p)
            assert rc == 0, f"node {x.node_id} {topic}-{p}: {out}"
    observe(f"{topic}: replicas identical on disk after (s)", round(time.monotonic() - t0, 2))


@contextlib.contextmanager
def tracked_load(cluster, topic, history_path, observe, label: str, min_acked: int = 500,
                 only_tracked_writers: bool = True):
    """Runs the tracked acks=all producer and a reader around the with-block's faults (it
    gets the HistoryRecorder), then the final read, the history checker (nothing lost,
    duplicated, reordered or read uncommitted; at least `min_acked` acknowledged; with
    `only_tracked_writers`, every value the producer sent acknowledged or unknown) and the
    byte-for-byte comparison of the replicas."""
    rec = HistoryRecorder(history_path)
    producer = TrackedProducer(cluster.bootstrap(), topic, PARTITIONS, rec, name="p1")
    reader = ReaderThread(cluster.bootstrap(), topic, PARTITIONS, rec, name="c1")
    t_start = time.monotonic()
    producer.start()
    reader.start()
    try:
        yield rec
    finally:
        producer.stop(flush_timeout_s=30)
        observe("producer: sent / acked / unknown / error_cb",
                (producer.sent, producer.acked, producer.unknown, sorted(set(producer.errors))))
        time.sleep(1)
        reader.stop()
    observe(f"{label}: scenario took (s)", round(time.monotonic() - t_start, 2))
    ranges = final_read(cluster.bootstrap(), topic, PARTITIONS, rec)
    rec.close()
    observe("final read {partition: (log_start, hw, records)}",
            {p: (low, hw, len(records)) for p, (low, hw, records) in ranges.items()})
    assert producer.fatal is None, producer.fatal
    assert reader.count > 0, reader.errors
    report = check_and_report(rec.path, observe, label)
    stats = report["stats"]
    assert stats["acked"] >= min_acked, stats
    if only_tracked_writers:
        assert stats["acked"] + stats["unknown"] == producer.sent, (stats, producer.sent)
    assert stats["final_records"] >= stats["acked"], stats
    assert_replicas_identical(cluster, topic, PARTITIONS,
                              {p: hw for p, (_, hw, _) in ranges.items()}, observe)


# --- (a) ---------------------------------------------------------------------------------------

@pytest.mark.timeout(90)
def test_rf3_topic_metadata_shows_three_replicas_all_in_sync_and_a_leader(cluster, topic,
                                                                            observe):
    took = create_rf3(cluster, topic)
    observe("RF=3 topic: ISR of three on every node after creation (s)", round(took, 2))
    views = {}
    for x in cluster.nodes:
        view = partitions(x, topic)
        assert sorted(view) == list(range(PARTITIONS))
        for p, pm in view.items():
            assert pm.error == c.NONE, (x, p, c.error_name(pm.error))
            assert sorted(pm.replicas) == sorted(ALL), (x, p, pm)
            assert set(pm.isr) == ALL, (x, p, pm)
            assert pm.leader in pm.replicas, (x, p, pm)
            assert pm.offline == [], (x, p, pm)
        views[x.node_id] = {p: (pm.leader, pm.replicas) for p, pm in sorted(view.items())}
        err, cfg = c.describe_topic_configs(x.port, topic, ["min.insync.replicas"])
        assert err == c.NONE and cfg["min.insync.replicas"][0] == str(MIN_ISR), (err, cfg)
    first = next(iter(views.values()))
    assert all(v == first for v in views.values()), views
    observe("RF=3 topic: {partition: (leader, replicas)}", first)
    observe("RF=3 topic: leader is the first replica",
            all(leader == replicas[0] for leader, replicas in first.values()))

    # The leader takes acks=all writes; a follower refuses them.
    for p, (leader, _) in first.items():
        err, base = c.produce(cluster.node(leader).port, topic, p, [f"a-{p}".encode()])
        assert (err, base) == (c.NONE, 0), (p, c.error_name(err), base)
        follower = next(i for i in ALL if i != leader)
        err, _ = c.produce(cluster.node(follower).port, topic, p, [b"to-a-follower"])
        assert err == c.NOT_LEADER_OR_FOLLOWER, (p, follower, c.error_name(err))


# --- (b) + (d) ---------------------------------------------------------------------------------

@pytest.mark.timeout(150)
def test_acked_writes_survive_a_leader_kill_and_a_stalled_follower(cluster, topic, observe,
                                                                   history_path):
    """An idempotent acks=all producer writes unique values to 3 partitions for ~25 s while
    the leader of one partition is killed (-9) and restarted, then a follower is SIGSTOPped
    past replica.lag.time.max.ms and resumed. The ISR shrinks and regrows each time; the
    history has nothing lost, duplicated or reordered; the replicas end identical."""
    create_rf3(cluster, topic)
    with tracked_load(cluster, topic, history_path, observe,
                      "leader kill + follower stall") as rec:
        time.sleep(3)
        kill_a_leader_and_restart_it(cluster, topic, rec, observe)
        time.sleep(2)
        stall_a_follower(cluster, topic, rec, observe)
        time.sleep(3)


def kill_a_leader_and_restart_it(cluster, topic, rec, observe) -> None:
    controller = cluster.active_controller()
    leaders = cluster.leaders(topic)
    # A leader that is not the active controller: only the partition fails over.
    p, victim_id = next(((p, n) for p, n in sorted(leaders.items()) if n != controller),
                        sorted(leaders.items())[0])
    victim = cluster.node(victim_id)
    watcher = next(x for x in cluster.running_brokers() if x is not victim)
    rec.note(f"kill -9 node {victim_id}, leader of partition {p}; controller {controller}")
    t0 = time.monotonic()
    victim.kill9()

    def new_leader():
        pm = partitions(watcher, topic)[p]
        return pm.leader if pm.leader not in (victim_id, -1) else None
    leader = wait_for(new_leader, OUT_OF_ISR_S, interval_s=0.1, what=f"new leader of {p}")
    observe("kill -9 leader: new leader in Metadata after (s)", round(time.monotonic() - t0, 2))
    wait_for(lambda: isr_is([watcher], topic, ALL - {victim_id}), OUT_OF_ISR_S,
             interval_s=0.1, what=f"node {victim_id} out of every ISR")
    observe("kill -9 leader: out of every ISR after (s)", round(time.monotonic() - t0, 2))
    observe("kill -9 leader: ISR while it is down", isr_view(watcher, topic))
    rec.note(f"partition {p} led by {leader}; restarting node {victim_id}")
    t1 = time.monotonic()
    victim.start()
    wait_full_isr(cluster, topic, observe, "killed leader restarted: back in every ISR after",
                  t1)
    rec.note(f"node {victim_id} back in every ISR")


def stall_a_follower(cluster, topic, rec, observe) -> None:
    controller = cluster.active_controller()
    leaders = set(cluster.leaders(topic).values())
    # A follower of every partition if there is one (not the controller: only replication
    # is under test here), else any non-controller.
    candidates = [x for x in cluster.nodes if x.node_id != controller]
    follower = next((x for x in candidates if x.node_id not in leaders), candidates[0])
    watcher = cluster.node(controller)
    rec.note(f"SIGSTOP node {follower.node_id}; leaders {sorted(leaders)}")
    t0 = time.monotonic()
    follower.pause()
    try:
        wait_for(lambda: isr_is([watcher], topic, ALL - {follower.node_id}), OUT_OF_ISR_S,
                 interval_s=0.1, what=f"stalled node {follower.node_id} out of every ISR")
        out_s = time.monotonic() - t0
        registered = follower.node_id in c.metadata(watcher.port, []).brokers
        observe("SIGSTOP follower: out of every ISR after (s)", round(out_s, 2))
        observe("SIGSTOP follower: still registered (not fenced) when out of the ISR",
                registered)
        observe("SIGSTOP follower: ISR while it is stopped", isr_view(watcher, topic))
        # Not dropped at the first missed fetch, and dropped by its leaders for lagging
        # (replica.lag.time.max.ms) while still registered, not only when the controller
        # fences it for missing heartbeats (which takes it out of every ISR too).
        assert out_s >= REPLICA_LAG_TIME_MAX_MS / 1000 / 2, out_s
        assert registered, f"out of the ISR only once fenced ({out_s:.2f} s)"
        # Stay stopped past the session timeout too: fenced, then back.
        stop_s = max(REPLICA_LAG_TIME_MAX_MS, SESSION_TIMEOUT_MS) / 1000 + 1
        time.sleep(max(0.0, stop_s - (time.monotonic() - t0)))
    finally:
        follower.resume()
    rec.note(f"SIGCONT node {follower.node_id}")
    wait_full_isr(cluster, topic, observe, "SIGCONT follower: back in every ISR after",
                  time.monotonic())


# --- (c) + (d) ---------------------------------------------------------------------------------

@pytest.mark.timeout(150)
def test_two_of_three_down_acks_all_fails_and_nothing_refused_is_read(cluster, topic, observe,
                                                                     history_path):
    """One broker down: acks=all still succeeds with min.insync.replicas=2 and is refused with
    NOT_ENOUGH_REPLICAS on a topic with min.insync.replicas=3. Two down: no acks=all write
    succeeds (NOT_ENOUGH_REPLICAS or a timeout, one attempt each, and through librdkafka).
    After both return, writes succeed again, no refused value is in any log, and the replicas
    are identical."""
    strict = f"{topic}-min3"
    create_rf3(cluster, topic)
    create_rf3(cluster, strict, n=1, min_isr=3)
    rec = HistoryRecorder(history_path)
    seq = itertools.count()

    def raw(node, t, p, phase, timeout_ms=3000):
        n = next(seq)
        t0 = time.monotonic()
        err = raw_produce(node.port, t, p, f"raw-{phase}-{n}", rec, seq=n, timeout_ms=timeout_ms)
        return err, round(time.monotonic() - t0, 2)

    def via_leaders(t, n, phase, view_node=None):
        view = partitions(view_node or cluster.running_brokers()[0], t)
        return {p: raw(cluster.node(view[p].leader), t, p, phase) for p in range(n)}

    # All up: every write acknowledged.
    for t, n in ((topic, PARTITIONS), (strict, 1)):
        got = via_leaders(t, n, "all-up")
        assert all(err == c.NONE for err, _ in got.values()), (t, got)

    controller = cluster.active_controller()
    others = [x for x in cluster.nodes if x.node_id != controller]
    first, survivor, second = others[-1], others[0], cluster.node(controller)

    # One down (not the controller, so the ISR can still change).
    rec.note(f"kill -9 node {first.node_id}")
    t0 = time.monotonic()
    first.kill9()
    for t in (topic, strict):
        wait_for(lambda: isr_is(cluster.running_brokers(), t, ALL - {first.node_id}),
                 OUT_OF_ISR_S, interval_s=0.1, what=f"{t}: node {first.node_id} out of every ISR")
    observe("one down: out of every ISR after (s)", round(time.monotonic() - t0, 2))
    got = via_leaders(topic, PARTITIONS, "one-down", survivor)
    observe("one down, min.insync.replicas=2: acks=all answers",
            {p: (c.error_name(e), s) for p, (e, s) in got.items()})
    assert all(err == c.NONE for err, _ in got.values()), got
    # The leader may apply the smaller ISR a moment after Metadata shows it: a few attempts.
    answers = []
    for _ in range(5):
        err, took = via_leaders(strict, 1, "one-down-min3", survivor)[0]
        answers.append((kafka_error_name(err), took))
        assert err != c.NONE, f"min.insync.replicas=3 acknowledged with two in sync: {answers}"
        if err == NOT_ENOUGH_REPLICAS:
            break
        time.sleep(0.3)
    observe("one down, min.insync.replicas=3: acks=all answers (error, s)", answers)
    assert answers[-1][0] == "NOT_ENOUGH_REPLICAS", answers

    # Two down: the survivor alone (and no controller quorum).
    rec.note(f"kill -9 node {second.node_id} (the active controller); survivor "
             f"{survivor.node_id}")
    second.kill9()
    t_two = time.monotonic()
    observe("two down: survivor's Metadata {partition: (leader, isr)}",
            {p: (pm.leader, sorted(pm.isr)) for p, pm in partitions(survivor, topic).items()})
    lib = TwoDownLibrdkafka(survivor.bootstrap, topic, rec)
    # At once: a request may be held until its timeout.
    with ThreadPoolExecutor(PARTITIONS + 1) as pool:
        futures = {p: pool.submit(raw, survivor, topic, p, "two-down")
                   for p in range(PARTITIONS)}
        futures["min3"] = pool.submit(raw, survivor, strict, 0, "two-down-min3")
        answers = {p: f.result() for p, f in futures.items()}
    lib_outcomes = lib.finish()
    observe("two down: raw acks=all answers via the survivor {partition: (error, s)}",
            {p: (kafka_error_name(e), s) for p, (e, s) in answers.items()})
    observe("two down: librdkafka delivery reports", lib_outcomes)
    observe("two down: phase took (s)", round(time.monotonic() - t_two, 2))
    for p, (err, _) in answers.items():
        assert err != c.NONE, f"partition {p}: acks=all acknowledged with two of three down"
        assert err in (None, NOT_ENOUGH_REPLICAS, NOT_ENOUGH_REPLICAS_AFTER_APPEND,
                       c.REQUEST_TIMED_OUT, c.NOT_LEADER_OR_FOLLOWER, c.LEADER_NOT_AVAILABLE), \
            (p, kafka_error_name(err))
    assert "acked" not in lib_outcomes, lib_outcomes

    # Both back: writes work again.
    rec.note("restarting both")
    t1 = time.monotonic()
    cluster.start()
    for t, label in ((topic, "min.insync.replicas=2"), (strict, "min.insync.replicas=3")):
        wait_full_isr(cluster, t, observe, f"two restarted: {label} topic in full ISR after", t1)
    for t, n in ((topic, PARTITIONS), (strict, 1)):
        got = via_leaders(t, n, "healed", None)
        assert all(err == c.NONE for err, _ in got.values()), (t, got)

    ranges = {t: final_read(cluster.bootstrap(), t, n, rec)
              for t, n in ((topic, PARTITIONS), (strict, 1))}
    rec.close()
    in_log = {value for t in ranges.values() for _, _, records in t.values()
              for _, value in records}
    observe("two down: values without an acknowledgement found in the log after the restart",
            sorted(v for v in in_log if "-two-down-" in v or v.startswith("lib-")))
    report = check_and_report(rec.path, observe, "two of three down")
    stats = report["stats"]
    assert stats["failed"] >= 1, stats  # the min3 refusal at least: the check is not vacuous
    for t, n in ((topic, PARTITIONS), (strict, 1)):
        assert_replicas_identical(cluster, t, n, {p: hw for p, (_, hw, _) in ranges[t].items()},
                                  observe)


class TwoDownLibrdkafka:
    """An idempotent acks=all librdkafka producer bootstrapped on the survivor, two values per
    partition, delivery timeout 6 s: every outcome is recorded as it arrives."""

    def __init__(self, bootstrap: str, topic: str, rec: HistoryRecorder):
        self.topic, self.rec = topic, rec
        self.outcomes: dict[str, int] = {}
        self.p = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                           "enable.idempotence": True, "message.timeout.ms": 6000,
                           "linger.ms": 0})
        for part in range(PARTITIONS):
            for k in range(2):
                value = f"lib-{part}-{k}"
                self.p.produce(topic, value=value.encode(), partition=part,
                               on_delivery=lambda err, msg, part=part, k=k, value=value:
                               self._report(err, msg, part, k, value))
        self.p.poll(0)

    def _report(self, err, msg, part, k, value):
        if err is None:
            key = "acked"
            self.rec.produce(self.topic, part, "lib", k, value, "acked", offset=msg.offset())
        else:
            key = err.name()
            self.rec.produce(self.topic, part, "lib", k, value, "unknown", error=err.code())
        self.outcomes[key] = self.outcomes.get(key, 0) + 1

    def finish(self) -> dict[str, int]:
        left = self.p.flush(20)
        assert left == 0, f"{left} messages neither delivered nor failed after 20 s"
        self.p = None
        return self.outcomes


# --- controller bounce + rolling restart -------------------------------------------------------

@pytest.mark.timeout(300)
def test_acked_writes_survive_a_controller_bounce_and_a_rolling_restart(cluster, topic, observe,
                                                                       history_path):
    """The same producer and reader while the rig kills -9 the active controller (a voter and
    a broker leading partitions) and restarts it, then restarts the three nodes one by one
    with SIGTERM (controlled shutdown: leadership moves off each before it stops), waiting for
    the full ISR between them. The producer sees only retriable errors; the history checker
    finds nothing lost, duplicated or reordered; the replicas end identical."""
    create_rf3(cluster, topic)
    with tracked_load(cluster, topic, history_path, observe,
                      "controller bounce + rolling restart") as rec:
        time.sleep(3)
        controller = cluster.active_controller()
        bounced = cluster.node(controller)
        rec.note(f"kill -9 node {controller}, the active controller")
        t0 = time.monotonic()
        bounced.kill9()
        others = [x for x in cluster.nodes if x is not bounced]
        new = cluster.wait_active_controller(not_id=controller)
        observe("controller kill -9: new active controller after (s)",
                round(time.monotonic() - t0, 2))
        assert new != controller and new in {x.node_id for x in others}
        wait_for(lambda: isr_is(others, topic, ALL - {controller}), OUT_OF_ISR_S,
                 interval_s=0.1, what=f"node {controller} out of every ISR")
        t1 = time.monotonic()
        bounced.start()
        wait_full_isr(cluster, topic, observe, "controller restarted: back in every ISR after",
                      t1)
        rec.note(f"node {controller} back in every ISR")
        time.sleep(2)
        for x in list(cluster.nodes):
            rec.note(f"rolling restart: SIGTERM node {x.node_id}")
            t2 = time.monotonic()
            x.stop()
            observe(f"rolling restart: node {x.node_id} stopped after (s)",
                    round(time.monotonic() - t2, 2))
            x.start()
            wait_full_isr(cluster, topic, observe,
                          f"rolling restart: node {x.node_id} back in every ISR after", t2)
            rec.note(f"node {x.node_id} back in every ISR")
        time.sleep(2)


# --- network cut -------------------------------------------------------------------------------

@pytest.mark.timeout(300)
def test_a_leader_cut_off_the_network_acknowledges_nothing_and_loses_nothing(
        cluster_factory, topic, observe, history_path):
    """Every node in its own network namespace (root only; skipped elsewhere). Under the
    tracked producer, the leader of one partition (not the active controller) is cut off the
    network while its process runs on, and a writer on its side of the cut keeps sending it
    acks=all writes for that partition. The others fence it and elect a new leader; the
    cut-off leader, still believing it leads, acknowledges none of those writes (its
    followers no longer fetch and it cannot reach the controller to shrink its ISR). Healed,
    it truncates what it took and catches up: the history checker finds nothing lost,
    duplicated or reordered and the replicas end identical."""
    cl = cluster_factory(isolated=True)
    create_rf3(cl, topic)
    cut_side = {"sent": 0, "acked": 0, "errors": {}}
    stop_cut_writer = threading.Event()
    with tracked_load(cl, topic, history_path, observe, "network cut of a leader",
                      min_acked=300, only_tracked_writers=False) as rec:
        try:
            cut_a_leader_off(cl, topic, rec, observe, cut_side, stop_cut_writer)
        finally:
            stop_cut_writer.set()
    assert cut_side["sent"] > 0
    assert cut_side["acked"] == 0, cut_side


def cut_a_leader_off(cl, topic, rec, observe, cut_side, stop_cut_writer) -> None:
    net = cl.netns
    time.sleep(3)
    controller = cl.active_controller()
    leaders = cl.leaders(topic)
    p, victim_id = next((p, n) for p, n in sorted(leaders.items()) if n != controller)
    victim = cl.node(victim_id)
    others = [x for x in cl.nodes if x is not victim]

    def cut_writer():
        net.enter(victim_id)
        n = 0
        while not stop_cut_writer.is_set():
            err = raw_produce(victim.port, topic, p, f"cut-{n}", rec, seq=n,
                              producer="cut-side", timeout_ms=2000)
            cut_side["sent"] += 1
            if err == c.NONE:
                cut_side["acked"] += 1
            else:
                name = "no answer" if err is None else c.error_name(err)
                cut_side["errors"][name] = cut_side["errors"].get(name, 0) + 1
            n += 1
            time.sleep(0.05)

    rec.note(f"cut node {victim_id} (leader of {p}) off the network")
    t0 = time.monotonic()
    net.cut(victim_id)
    writer = threading.Thread(target=cut_writer, name="cut-side", daemon=True)
    writer.start()

    def new_leader():
        pm = partitions(others[0], topic)[p]
        return pm.leader if pm.leader not in (victim_id, -1) else None
    leader = wait_for(new_leader, OUT_OF_ISR_S, interval_s=0.1, what=f"new leader of {p}")
    observe("network cut: new leader in Metadata after (s)", round(time.monotonic() - t0, 2))
    wait_for(lambda: isr_is(others, topic, ALL - {victim_id}), OUT_OF_ISR_S,
             interval_s=0.1, what=f"node {victim_id} out of every ISR")
    rec.note(f"partition {p} led by {leader}; node {victim_id} still cut off")
    time.sleep(3)
    t1 = time.monotonic()
    net.heal(victim_id)
    rec.note(f"node {victim_id} back on the network")
    stop_cut_writer.set()
    writer.join(30)
    observe("network cut: writes sent to the cut-off leader / acknowledged / answers",
            (cut_side["sent"], cut_side["acked"], cut_side["errors"]))
    wait_full_isr(cl, topic, observe, "network cut healed: back in every ISR after", t1)
    time.sleep(2)
