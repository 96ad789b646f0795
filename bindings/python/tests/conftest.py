"""Fixtures: the test app in a real Waitress child process, over loopback;
the runtime of this process with a test's own settings; a stream served
by a thread of its own, as a WSGI server's thread would.

Every child is killed by the test that started it; every wait is bounded.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
from last_call import GracefulShutdownManager

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tools"))

from server_process import ServerProcess  # noqa: E402

APPS = Path(__file__).parent / "apps"
#: gunicorn with the package's config module, on a free port of 127.0.0.1
#: (its "serving on" line says which); the test adds workers and the app.
GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "python:last_call.gunicorn", "--bind", "127.0.0.1:0"]


@pytest.fixture
def start_server():
    """start_server(command, env=...) -> ServerProcess, run in the apps'
    folder (a script, gunicorn, ...); all killed at teardown."""
    started: list[ServerProcess] = []

    def start(command: list[str], env: dict[str, str] | None = None) -> ServerProcess:
        server = ServerProcess(command, env or {}, cwd=APPS)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture
def start_app(start_server):
    """start_app(env=..., script=...) -> ServerProcess: an app of apps/ run
    by this interpreter; all killed at teardown."""

    def start(env: dict[str, str] | None = None, script: str = "stream_app.py") -> ServerProcess:
        return start_server([sys.executable, str(APPS / script)], env)

    return start


@pytest.fixture
def app_server(start_app) -> ServerProcess:
    """The stream app with a long drain delay, never signalled."""
    return start_app({"GS_DRAIN_DELAY_SECONDS": "5"})


@pytest.fixture
def manager_with_env(monkeypatch: pytest.MonkeyPatch):
    """manager_with_env(env) -> GracefulShutdownManager: this process's real
    runtime (the package's plugin resets it around each test), with the
    test's own GS_* settings in the environment for this test only."""

    def make(env: dict[str, str]) -> GracefulShutdownManager:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return GracefulShutdownManager()

    return make


class Served:
    """Iterates a stream (``track_stream``'s) in a thread of its own, as a
    WSGI server's thread would, and closes it at the end: its chunks, when
    it ended, and ``done`` set then."""

    def __init__(self, stream: object) -> None:
        self.stream = stream
        self.chunks: list[object] = []
        self.ended_at: float | None = None
        self.done = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            for chunk in self.stream:  # type: ignore[attr-defined]
                self.chunks.append(chunk)
        finally:
            self.ended_at = time.monotonic()
            self.stream.close()  # type: ignore[attr-defined]
            self.done.set()

    def text(self) -> str:
        return "".join(c.decode() if isinstance(c, bytes) else str(c) for c in self.chunks)
