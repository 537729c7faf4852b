"""java/TxnDelay.java, the Java transactional producer driven one command at a time, from
Python: compiled once per test module, run in a JVM whose stdin takes commands (init, begin,
send TOPIC PARTITION VALUE, commit, abort, quit) and whose stdout answers each with one line
("ok ..." or "error CLASS MESSAGE"). Used by the client suite (test_txn_delayed.py) and the
cluster suite (test_transactions.py, which finds this directory on its path).
"""

from __future__ import annotations

import queue
import re
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

SOURCE = Path(__file__).parent / "java/TxnDelay.java"
JAVA_DEPS = Path(__file__).resolve().parents[2] / ".deps/java"


def compile_txn_driver(out: Path) -> Path:
    """javac java/TxnDelay.java into `out` (created); returns it, for TxnDriver's `classes`."""
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["javac", "-d", str(out), "-cp", f"{JAVA_DEPS}/*", str(SOURCE)],
                   check=True, timeout=120)
    return out


class TxnDriver:
    """A TxnDelay JVM: `call` writes one command and returns its answer line; the client logs
    its warnings to `log_path`; `transcript` keeps every command with its answer and time."""

    def __init__(self, classes: Path, bootstrap: str, txn_id: str, client_id: str,
                 log_path: Path, command_timeout_s: float):
        self.log_path = log_path
        self.command_timeout_s = command_timeout_s
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            ["java", "-XX:TieredStopAtLevel=1", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
             "-cp", f"{JAVA_DEPS}/*:{classes}", "TxnDelay", bootstrap, txn_id, client_id],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True)
        self._answers: queue.Queue[str | None] = queue.Queue()
        self.transcript: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._answers.put(line.rstrip("\n"))
        self._answers.put(None)

    def call(self, command: str, timeout_s: float | None = None) -> str:
        timeout_s = self.command_timeout_s if timeout_s is None else timeout_s
        t0 = time.monotonic()
        try:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
            answer = self._answers.get(timeout=timeout_s)
        except OSError as e:
            answer = f"(driver gone: {e})"
        except queue.Empty:
            answer = f"(no answer in {timeout_s}s)"
        if answer is None:
            answer = f"(driver exited with {self.proc.wait(5)})"
        self.transcript.append(f"{command} -> {answer} ({time.monotonic() - t0:.2f} s)")
        return answer

    def ok(self, command: str) -> str:
        answer = self.call(command)
        assert answer.startswith("ok "), f"{command}: {answer}\n{self.report()}"
        return answer

    def close(self) -> None:
        if self.proc.poll() is None:
            self.call("quit", timeout_s=10)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)
        self.proc.stdin.close()
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def warnings(self) -> dict[str, int]:
        """How often the client's log names each Kafka error (NOT_LEADER_OR_FOLLOWER, ...),
        and how many connections it could not establish."""
        text = self.log()
        seen = Counter(re.findall(r"\b[A-Z]{2,}(?:_[A-Z]+)+\b", text))
        refused = text.count("could not be established")
        if refused:
            seen["connection could not be established"] = refused
        return dict(seen)

    def report(self) -> str:
        return ("driver:\n" + "\n".join(self.transcript[-40:]) + "\ndriver stderr:\n"
                + "\n".join(self.log().splitlines()[-40:]))
