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


@pytest.fixture
def start_app():
    """start_app(env=..., script=...) -> ServerProcess; all killed at teardown."""
    started: list[ServerProcess] = []

    def start(env: dict[str, str] | None = None, script: str = "stream_app.py") -> ServerProcess:
        server = ServerProcess([sys.executable, str(APPS / script)], env or {}, cwd=APPS)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture
def app_server(start_app) -> ServerProcess:
    """The stream app with a long drain delay, never signalled."""
    return start_app({"GS_DRAIN_DELAY_SECONDS": "5"})




