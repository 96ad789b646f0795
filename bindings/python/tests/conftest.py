"""Fixtures: the test app in a real Waitress child process, over loopback.

Every child is killed by the test that started it; every wait is bounded.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

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




