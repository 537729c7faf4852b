"""Fixtures for the client integration suite.

- ``broker``: one broker for the whole session (started lazily, stopped at the end).
- ``broker_factory``: a fresh broker per test (own port and data directory), for tests that kill
  and restart it.
- ``topic``: a new, unique topic name for each test.
- marker ``millrace_only``: skipped when TEST_BROKER=kafka (tests of Millrace's own handling of
  bad input, where the reference broker's answer is not what is being checked).
"""

from __future__ import annotations

import re
import uuid

import pytest

import brokerproc
from brokerproc import BrokerProcess, broker_kind


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "millrace_only: run only against millrace, skipped with TEST_BROKER=kafka")


def pytest_report_header(config):
    return f"broker under test: {broker_kind()}"


def pytest_collection_modifyitems(config, items):
    if broker_kind() != "kafka":
        return
    skip = pytest.mark.skip(reason="millrace only (TEST_BROKER=kafka)")
    for item in items:
        if item.get_closest_marker("millrace_only"):
            item.add_marker(skip)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item._brokers_before = len(brokerproc.CREATED)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test's report carries the log tail of every broker it created and of any
    earlier one (the session broker) that is no longer running: a broker that went away
    mid-test otherwise leaves only the client's "connection refused"."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    first = getattr(item, "_brokers_before", 0)
    for i, b in enumerate(brokerproc.CREATED):
        exited = b.proc is not None and b.proc.poll() is not None
        if i < first and not exited:
            continue
        state = f"exited with {b.proc.returncode}" if exited else "running"
        report.sections.append((f"broker on port {b.port} ({state})", b.log_tail(60)))


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    b = BrokerProcess(tmp_path_factory.mktemp("broker"))
    if b.kind == "millrace":
        # Several tests produce records stamped in 2023-2024; the default retention.ms (7 days)
        # would let a retention pass delete them mid-test, as it would on Apache Kafka.
        # test_kip848_regex waits for regex subscriptions to see new topics: 1 s between two
        # resolutions of a group instead of Kafka's 10 s.
        cfg = b.data_dir / "session.properties"
        cfg.write_text("log.retention.ms=-1\n"
                       "millrace.group.consumer.regex.refresh.min.interval.ms=1000\n")
        b.extra_args = ["--config", str(cfg)]
    b.start()
    yield b
    if not b.alive():
        pytest.fail(f"session broker died during the run:\n{b.log_tail()}")
    b.stop()


@pytest.fixture
def broker_factory(tmp_path):
    started: list[BrokerProcess] = []

    def make() -> BrokerProcess:
        b = BrokerProcess(tmp_path / f"broker{len(started)}")
        started.append(b)
        return b

    yield make
    for b in started:
        b.kill9()


@pytest.fixture
def topic(request):
    base = re.sub(r"[^a-zA-Z0-9]+", "-", request.node.name).strip("-")[:80]
    return f"{base}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def proxy(broker, tmp_path_factory):
    """A millrace process whose REST proxy is a client of the session broker (millrace or
    Kafka), with a small body bound for the 413 test."""
    from resthelp import start_proxy

    p = start_proxy(broker, tmp_path_factory.mktemp("rest-proxy"))
    yield f"http://127.0.0.1:{p.rest_port}"
    p.stop()
