"""A server under test in a child process, read line by line; a free port
of 127.0.0.1 for one to listen on; a bounded re-check helper; the processes
a server started (gunicorn's workers). Shared by the package tests, the
end-to-end tests, the demo, the benchmarks and the rolling-update harness.

Every wait is bounded; ``close()`` kills the child if it is still running.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Set

import httpx

GS_VARIABLES = (
    "GS_DRAIN_DELAY_SECONDS",
    "GS_SHUTDOWN_TIMEOUT_SECONDS",
    "GS_CLOSE_NOTICE_SECONDS",
    "GS_SECOND_SIGNAL",
    "GS_EXIT_WATCHDOG_SECONDS",
    "GS_EXIT_WATCHDOG_STATUS",
    "GS_HOOK_BUDGET_SECONDS",
    "GS_SHUTDOWN_LOG",
    "GS_DRAIN_TOKEN",
    "GS_PROBE_ADDR",
    "GS_HEARTBEAT_STALE_SECONDS",
    "GS_LISTEN_BACKLOG",
)


def free_port() -> int:
    """A port of 127.0.0.1 that was free a moment ago, for a child process
    to listen on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def eventually(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02):
    """Re-checks `predicate` until it holds or `timeout` passes (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


class ServerProcess:
    """One server in a child process, on 127.0.0.1 and a free port, which
    it announces with a "serving on http://127.0.0.1:PORT" line."""

    def __init__(self, command: List[str], env: Dict[str, str], cwd: Optional[Path] = None) -> None:
        child_env = {k: v for k, v in os.environ.items() if k not in GS_VARIABLES}
        child_env.update({"HOST": "127.0.0.1", "PORT": "0", "PYTHONUNBUFFERED": "1"})
        child_env.update(env)
        self.process = subprocess.Popen(
            command,
            cwd=str(cwd) if cwd else None,
            env=child_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: List[str] = []
        self._queue: "queue.Queue[Optional[str]]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        # Ours say "serving on", plain Waitress (the baseline) "Serving on".
        try:
            line = self.wait_for_log(r"(?i)serving on http://127\.0\.0\.1:(\d+)", timeout=30)
        except AssertionError:
            self._kill()  # nobody else holds it yet
            raise
        self.port = int(re.search(r"(?i)serving on http://127\.0\.0\.1:(\d+)", line).group(1))
        self.url = f"http://127.0.0.1:{self.port}"
        self.client = httpx.Client(base_url=self.url, timeout=10.0)
        # The runtime's own probe listener, when GS_PROBE_ADDR started one
        # (it announces itself before the server does).
        self.probe_url: Optional[str] = None
        # The runtime's stream hub, when the host started one (STREAMS=hub:
        # "streams on http://HOST:PORT", before the server's line too).
        self.stream_url: Optional[str] = None
        for seen in self.lines:
            found = re.search(r"probes on (http://[^\s]+)", seen)
            if found:
                self.probe_url = found.group(1)
            found = re.search(r"streams on (http://[^\s]+)", seen)
            if found:
                self.stream_url = found.group(1)

    def _read(self) -> None:
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for_log(self, pattern: str, timeout: float = 15.0) -> str:
        """The first output line (new or already seen) matching `pattern`."""
        return self.wait_for_logs(pattern, 1, timeout)[0]

    def wait_for_logs(self, pattern: str, count: int, timeout: float = 15.0) -> List[str]:
        """The first `count` output lines (new or already seen) matching
        `pattern` (several workers announce the same line)."""
        deadline = time.monotonic() + timeout
        matching = [line for line in self.lines if re.search(pattern, line)]
        while len(matching) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                found = "no line" if not matching else f"{len(matching)} of {count} lines"
                raise AssertionError(
                    f"{found} matching {pattern!r} in {timeout} s; output:\n" + "\n".join(self.lines)
                )
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"the app exited before {pattern!r}; output:\n" + "\n".join(self.lines))
            self.lines.append(line)
            if re.search(pattern, line):
                matching.append(line)
        return matching[:count]

    def signal(self, signum: int) -> float:
        """Sends `signum`; returns when it was sent (time.monotonic())."""
        sent = time.monotonic()
        self.process.send_signal(signum)
        return sent

    def wait_exit(self, timeout: float = 30.0) -> int:
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError("the app did not exit in time; output:\n" + "\n".join(self.lines))
        # Collect the rest of its output for assertions and failure reports.
        while True:
            try:
                line = self._queue.get(timeout=5)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
        return code

    def counts(self) -> dict:
        return self.client.get("/counts").json()

    def close(self) -> None:
        self.client.close()
        self._kill()

    def _kill(self) -> None:
        if self.process.poll() is not None:
            return
        # A server's own children (gunicorn's workers) outlive a SIGKILLed
        # parent: they are killed too, after it (it respawns none then).
        try:
            children = child_pids(self.process.pid)
        except OSError:
            children = set()
        self.process.kill()
        self.process.wait(timeout=10)
        for child in children:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass


def child_pids(pid: int) -> Set[int]:
    """The processes `pid` started (a gunicorn master's workers), as Linux
    lists them; an OSError once `pid` is gone."""
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
