"""``uvicorn --workers N`` without the stream hub, as a real server: each
worker runs the lifespan, shares the pod's probe port (SO_REUSEPORT),
drains its own streams at SIGTERM (uvicorn's supervisor forwards it to
every worker and waits), and the pod exits 0. A probe listener started
outside the lifespan in each worker fails naming --workers and what to do
(it said only "Address already in use")."""

from __future__ import annotations

import re
import signal
import sys
import threading
import time

import httpx
from server_process import ServerProcess, eventually, free_port

from .conftest import APPS

SHUTDOWN = {
    "GS_DRAIN_DELAY_SECONDS": "0.5",
    "GS_SHUTDOWN_TIMEOUT_SECONDS": "8",
    "GS_CLOSE_NOTICE_SECONDS": "2",
    "GS_HOOK_BUDGET_SECONDS": "1",
}


def _follow(url: str, into: list[str]) -> None:
    with httpx.Client(timeout=30) as client, client.stream("GET", url) as response:
        for line in response.iter_lines():
            into.append(line)


def test_two_workers_share_the_probe_port_drain_their_streams_and_exit_0():
    probe_port = free_port()
    env = {**SHUTDOWN, "PORT": str(free_port()), "GS_PROBE_ADDR": f"127.0.0.1:{probe_port}"}
    server = ServerProcess([sys.executable, str(APPS / "workers_asgi.py"), "2"], env, cwd=APPS)
    try:
        server.wait_for_logs(rf"probes on http://127\.0\.0\.1:{probe_port}\b", 2, timeout=30)
        streams: list[list[str]] = []
        # New connections until both workers hold a stream (its pid in each tick).
        while len({s[0].split()[1] for s in streams if s}) < 2:
            assert len(streams) < 40, "the kernel never gave the second worker a connection"
            into: list[str] = []
            url = f"{server.url}/ticks?events=15&interval=0.2"
            threading.Thread(target=_follow, args=(url, into), daemon=True).start()
            eventually(lambda into=into: any(line.startswith("data: ") for line in into), timeout=10)
            into[:] = [line for line in into if line.startswith("data: ")]
            streams.append(into)
        sent = server.signal(signal.SIGTERM)
        with httpx.Client(base_url=f"http://127.0.0.1:{probe_port}", timeout=5) as probe:
            eventually(lambda: probe.get("/readyz").status_code == 503, timeout=5)
        assert server.wait_exit(30) == 0, "\n".join(server.lines)
        assert time.monotonic() - sent < 15
        for lines in streams:
            # Every stream ran to its end (15 ticks, 3 s), never cut.
            data = [line for line in lines if line.startswith("data: ")]
            assert data[-1] == "data: end", lines
            assert len(data) == 16, lines
    finally:
        server.close()


def test_a_probe_listener_started_in_each_worker_outside_the_lifespan_names_workers_and_the_fix():
    probe_port = free_port()
    env = {**SHUTDOWN, "PORT": str(free_port()), "GS_PROBE_ADDR": f"127.0.0.1:{probe_port}"}
    env["PROBE_AT_IMPORT"] = "1"
    server = ServerProcess([sys.executable, str(APPS / "workers_asgi.py"), "2"], env, cwd=APPS)
    try:
        line = server.wait_for_log(r"ConfigError: invalid GS_PROBE_ADDR", timeout=30)
    finally:
        server.close()
    assert "Address already in use" in line
    assert "uvicorn's --workers" in line and "last_call.asgi.lifespan()" in line, line
    assert re.search(r"--workers 1", line), line
