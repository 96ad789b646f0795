"""End-to-end tests of the example-server contract, against each example
server in a child process, with real SIGTERM and real SSE clients."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List, Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import hosts  # noqa: E402
from server_process import ServerProcess  # noqa: E402


@pytest.fixture(params=hosts.NAMES)
def start_server(request):
    """start_server(env) -> ServerProcess for the parametrized host (the Rust
    one as `make test` builds it: cargo build --all-targets)."""
    command, cwd = hosts.command(request.param)
    started: List[ServerProcess] = []

    def start(env: Optional[Dict[str, str]] = None) -> ServerProcess:
        server = ServerProcess(command, {"GS_EXIT_WATCHDOG_SECONDS": "2", **(env or {})}, cwd=cwd)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()
