"""Fixtures: the test app in a real Waitress child process, over loopback.

Every child is killed by the test that started it; every wait is bounded.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import httpx
import pytest

APPS = Path(__file__).parent / "apps"
GS_VARIABLES = (
    "GS_DRAIN_DELAY_SECONDS",
    "GS_SHUTDOWN_TIMEOUT_SECONDS",
    "GS_CLOSE_NOTICE_SECONDS",
    "GS_SECOND_SIGNAL",
    "GS_EXIT_WATCHDOG_SECONDS",
    "GS_DRAIN_TOKEN",
)


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


class AppServer:
    """One child process running an app under graceful_shutdown.waitress."""

    def __init__(self, script: Path, env: Dict[str, str]) -> None:
        child_env = {k: v for k, v in os.environ.items() if k not in GS_VARIABLES}
        child_env.update({"HOST": "127.0.0.1", "PORT": "0", "PYTHONUNBUFFERED": "1"})
        child_env.update(env)
        self.process = subprocess.Popen(
            [sys.executable, str(script)],
            cwd=str(script.parent),
            env=child_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: List[str] = []
        self._queue: "queue.Queue[Optional[str]]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        line = self.wait_for_log(r"serving on http://127\.0\.0\.1:(\d+)", timeout=30)
        self.port = int(re.search(r":(\d+)", line.split("serving on")[1]).group(1))
        self.url = f"http://127.0.0.1:{self.port}"
        self.client = httpx.Client(base_url=self.url, timeout=10.0)

    def _read(self) -> None:
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for_log(self, pattern: str, timeout: float = 15.0) -> str:
        """The first output line (new or already seen) matching `pattern`."""
        for line in self.lines:
            if re.search(pattern, line):
                return line
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line matching {pattern!r} in {timeout} s; output:\n" + "\n".join(self.lines))
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"the app exited before {pattern!r}; output:\n" + "\n".join(self.lines))
            self.lines.append(line)
            if re.search(pattern, line):
                return line

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
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def start_app():
    """start_app(env=..., script=...) -> AppServer; all killed at teardown."""
    started: List[AppServer] = []

    def start(env: Optional[Dict[str, str]] = None, script: str = "stream_app.py") -> AppServer:
        server = AppServer(APPS / script, env or {})
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture
def app_server(start_app) -> AppServer:
    """The stream app with a long drain delay, never signalled."""
    return start_app({"GS_DRAIN_DELAY_SECONDS": "5"})


SIGTERM = signal.SIGTERM
SIGINT = signal.SIGINT
