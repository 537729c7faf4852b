"""franz-go's own kgo tests against the session broker (millrace, or Apache Kafka with
TEST_BROKER=kafka): the package's test binary is compiled offline from the module cache that
scripts/install-test-deps.sh fills (``go test -c`` in go/, GOPROXY=off against the committed
go.sum) and run with ``-test.run`` naming exactly FRANZ_GO_TESTS.

franz-go's tests read the seed broker from KGO_SEEDS and create topics with KGO_TEST_RF replicas
(default 3, so 1 here). A test skips itself when the broker lacks what it needs (KIP-848 needs
ConsumerGroupHeartbeat v1, share groups ShareFetch/ShareAcknowledge v2), so each named test must
report PASS, not SKIP, in the ``-test.v`` output.

- Test848RegexBrokerResolves: a KIP-848 consumer subscribed with ConsumeRegex sends
  ``.*(?:(?:P-orders)|(?:__consumer_offsets)).*`` as SubscribedTopicRegex; the broker resolves
  it (whole names, the internal ``__consumer_offsets`` included: franz-go's own fake broker can
  mark a topic internal, a real one cannot, so the test falls back to ``__consumer_offsets``)
  and the client consumes P-orders and P-orders-v2 and is assigned ``__consumer_offsets``.

- TestShareGroup, TestShareGroupETL: share consumers (ShareFetch/ShareAcknowledge v2) read
  topics together, each record accepted once; the ETL one chains consumers and producers.
- TestShareGroupAckOnClose: records a consumer acknowledged before closing are not delivered
  again to the next one.
- TestShareGroupOffsetsAdmin: Alter/Describe/DeleteShareGroupOffsets on an empty group, routed
  to the group coordinator; describe with null topics lists the altered partition.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from test_franz_go import MODULE, go_binary, go_env

FRANZ_GO_TESTS = (
    "Test848RegexBrokerResolves",
    "TestShareGroup",
    "TestShareGroupETL",
    "TestShareGroupAckOnClose",
    "TestShareGroupOffsetsAdmin",
)
PACKAGE = "github.com/twmb/franz-go/pkg/kgo"
RUN_TIMEOUT_S = 240
RESULT = re.compile(r"^\s*--- (PASS|FAIL|SKIP): (\S+) \(")
HEADER = re.compile(r"^=== (?:RUN|CONT|NAME|PAUSE)\s+(\S+)")

pytestmark = pytest.mark.timeout(420)


@pytest.fixture(scope="module")
def kgo_test(tmp_path_factory) -> tuple[Path, Path]:
    """The kgo test binary and the package directory it runs in (where go test runs it)."""
    go = go_binary()
    if go is None:
        pytest.skip("no go toolchain on PATH or in /usr/local/go")
    listed = subprocess.run([go, "list", "-f", "{{.Dir}}", PACKAGE], cwd=MODULE, env=go_env(),
                            capture_output=True, text=True, timeout=120)
    if listed.returncode != 0 or not listed.stdout.strip():
        pytest.skip("franz-go is not in the Go module cache (scripts/install-test-deps.sh): "
                    + (listed.stderr.strip() or "no package directory"))
    out = tmp_path_factory.mktemp("franz-go-suite") / "kgo.test"
    built = subprocess.run([go, "test", "-c", "-o", str(out), PACKAGE], cwd=MODULE, env=go_env(),
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, f"go test -c failed:\n{built.stdout}{built.stderr}"
    return out, Path(listed.stdout.strip())


@pytest.fixture(scope="module")
def suite_results(broker, kgo_test, tmp_path_factory) -> tuple[dict[str, str], str]:
    """Runs every test in FRANZ_GO_TESTS once: ({name: PASS|FAIL|SKIP}, the -test.v output)."""
    binary, package_dir = kgo_test
    env = go_env()
    env.update(KGO_SEEDS=broker.bootstrap, KGO_TEST_RF="1")
    pattern = "^(" + "|".join(FRANZ_GO_TESTS) + ")$"
    done = subprocess.run(
        [str(binary), "-test.run", pattern, "-test.v", "-test.count", "1",
         "-test.timeout", f"{RUN_TIMEOUT_S - 10}s"],
        cwd=package_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, text=True, timeout=RUN_TIMEOUT_S)
    log = tmp_path_factory.mktemp("franz-go-suite-log") / "kgo.test.log"
    log.write_text(done.stdout)
    results: dict[str, str] = {}
    for line in done.stdout.splitlines():
        m = RESULT.match(line)
        if m:
            results[m.group(2)] = m.group(1)
    return results, done.stdout


def lines_of(output: str, name: str) -> list[str]:
    """The -test.v lines a parallel test printed itself: go test heads each stretch of a
    test's own lines with ``=== RUN|CONT|NAME <test>``; client log lines in between (no
    header) are left out, and so are the other tests' stretches."""
    mine, current = [], None
    for line in output.splitlines():
        m = HEADER.match(line)
        if m:
            current = m.group(1)
            continue
        if current is not None and (current == name or current.startswith(name + "/")):
            if line.startswith("    ") or line.startswith("--- "):
                mine.append(line)
    return mine


def test_a_tests_own_lines_are_picked_out():
    output = "\n".join([
        "=== RUN   TestA", "=== PAUSE TestA", "=== CONT  TestA", "    a_test.go:1: from A",
        "[12:00 1][INFO] client log", "=== NAME  TestB", "    b_test.go:2: from B",
        "=== NAME  TestA", "    a_test.go:3: A again", "--- FAIL: TestA (0.10s)"])
    assert lines_of(output, "TestA") == ["    a_test.go:1: from A", "    a_test.go:3: A again",
                                         "--- FAIL: TestA (0.10s)"]
    assert lines_of(output, "TestB") == ["    b_test.go:2: from B"]


def test_the_result_lines_are_parsed():
    lines = ["=== RUN   TestA", "--- PASS: TestA (1.20s)", "    --- SKIP: TestA/sub (0.00s)",
             "--- FAIL: TestB (0.01s)", "PASS"]
    found = {m.group(2): m.group(1) for m in map(RESULT.match, lines) if m}
    assert found == {"TestA": "PASS", "TestA/sub": "SKIP", "TestB": "FAIL"}


@pytest.mark.parametrize("name", FRANZ_GO_TESTS)
def test_franz_go(suite_results, name):
    results, output = suite_results
    own = "\n".join(lines_of(output, name)[-60:])
    tail = "\n".join(output.splitlines()[-30:])
    assert results.get(name) == "PASS", (
        f"franz-go {name}: {results.get(name, 'no result line')}\n"
        f"-- its own lines:\n{own}\n-- the end of the run:\n{tail}")
