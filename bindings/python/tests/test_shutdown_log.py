"""The shutdown log on every Python host: Waitress ``serve()``, uvicorn
and gunicorn in real child processes with their default logging, real SSE
clients over 127.0.0.1 and a real SIGTERM. The runtime writes the lines
to stderr itself (the package turns the log on; ``GS_SHUTDOWN_LOG=0``
turns it off), so they are the same on every host and need no logging
configuration: one when the shutdown begins, one at ClosingStreams and
Stopping, one at the end with what became of the streams and hooks."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading

import pytest
from server_process import ServerProcess, eventually
from sse_follow import follow

from .conftest import APPS, GUNICORN

SHUTDOWN = {
    "GS_DRAIN_DELAY_SECONDS": "0.5",
    "GS_SHUTDOWN_TIMEOUT_SECONDS": "5",
    "GS_CLOSE_NOTICE_SECONDS": "2",
    "GS_HOOK_BUDGET_SECONDS": "1",
    "GS_EXIT_WATCHDOG_SECONDS": "3",
}

LINE = re.compile(r"^last-call: shutdown \(pid (\d+)\) (.*)$")



@pytest.fixture
def servers(start_server):
    def start(command: list[str], env: dict[str, str] | None = None) -> ServerProcess:
        return start_server(command, {**SHUTDOWN, **(env or {})})

    return start


def _open(url: str) -> tuple[threading.Thread, dict]:
    thread, box = follow(url)
    eventually(lambda: any(line.startswith("data:") for line in box.get("lines", [])), timeout=15)
    return thread, box


def _log(server: ServerProcess) -> dict[int, list[str]]:
    """The shutdown log's lines, by process."""
    by_pid: dict[int, list[str]] = {}
    for line in server.lines:
        found = LINE.match(line)
        if found:
            by_pid.setdefault(int(found.group(1)), []).append(found.group(2))
    return by_pid


def _stop(server: ServerProcess, streams: list[tuple[threading.Thread, dict]]) -> None:
    server.signal(signal.SIGTERM)
    for thread, _ in streams:
        thread.join(30)
    assert server.wait_exit(30) == 0, "\n".join(server.lines)


def _assert_one_run(lines: list[str], open_streams: int, nudged: int, final: int, cause: str = "SIGTERM") -> None:
    """The four lines of a run whose streams were all still open at
    ClosingStreams, each ended at its moment with its kind's ending."""
    assert len(lines) == 4, lines
    began, closing, stopping, done = lines
    assert began.startswith(f"began on {cause}: {open_streams} stream"), began
    assert "drain delay 0.5 s, deadline in 5.0 s (streams asked to close from 2.0 s, hooks from 4.0 s)" in began
    assert re.match(rf"closing streams at [\d.]+ s: {open_streams} streams? still open; ", closing), closing
    assert re.match(r"stopping at [\d.]+ s: 0 streams open; ", stopping), stopping
    assert re.match(r"done in [\d.]+ s: ", done), done
    assert (
        f"{open_streams} stream{'s' if open_streams != 1 else ''} open at the start: 0 ended on their own, "
        f"{nudged} nudged to reconnect, {final} given their final event, 0 left open when the deadline came; hooks: "
    ) in done, done


def test_waitress_serve_writes_the_lines_at_sigterm(servers):
    server = servers([sys.executable, str(APPS / "stream_app.py")])
    stream = _open(f"{server.url}/stream?events=0&interval=0.2")
    _stop(server, [stream])
    log = _log(server)
    assert list(log) == [server.process.pid], server.lines
    _assert_one_run(log[server.process.pid], open_streams=1, nudged=1, final=0)
    # The client got the nudge the log counts.
    assert "event: reconnect" in stream[1]["lines"]


def test_uvicorn_writes_the_lines_at_sigterm(servers):
    server = servers([sys.executable, str(APPS / "asgi_app.py")])
    resumable = _open(f"{server.url}/ticks?events=1000&interval=0.2")
    pod_bound = _open(f"{server.url}/pod-bound?events=1000&interval=0.2")
    _stop(server, [resumable, pod_bound])
    log = _log(server)
    assert list(log) == [server.process.pid], server.lines
    _assert_one_run(log[server.process.pid], open_streams=2, nudged=1, final=1)
    assert "event: reconnect" in resumable[1]["lines"]
    assert "event: final" in pod_bound[1]["lines"]


def test_gunicorn_master_and_worker_each_write_their_lines_at_sigterm(servers):
    server = servers([*GUNICORN, "-w", "1", "--threads", "8", "gunicorn_app:app"])
    resumable = _open(f"{server.url}/stream?events=1000&interval=0.2")
    pod_bound = _open(f"{server.url}/pod-bound?events=1000&interval=0.2")
    # Each tick names the worker that serves it.
    worker = int(next(line for line in resumable[1]["lines"] if line.startswith("data:")).split()[1])
    _stop(server, [resumable, pod_bound])
    log = _log(server)
    master = server.process.pid
    assert set(log) == {master, worker}, server.lines
    # The worker's sequence is started by the package's SIGTERM handler
    # (gunicorn's replaced in post_worker_init), through begin_shutdown.
    _assert_one_run(log[worker], open_streams=2, nudged=1, final=1, cause="begin_shutdown")
    # The master's run: its first line at the signal, its last when its
    # worker is gone.
    assert log[master][0].startswith("began on SIGTERM: "), log[master]
    assert log[master][-1].startswith("done in "), log[master]


def test_gs_shutdown_log_0_turns_it_off(servers):
    server = servers([sys.executable, str(APPS / "stream_app.py")], {"GS_SHUTDOWN_LOG": "0"})
    stream = _open(f"{server.url}/stream?events=0&interval=0.2")
    _stop(server, [stream])
    assert _log(server) == {}, server.lines


def test_a_typo_in_gs_shutdown_log_stops_the_host_at_start_naming_it():
    child = {k: v for k, v in os.environ.items() if not k.startswith("GS_")}
    result = subprocess.run(
        [sys.executable, "-c", "import last_call; last_call.GracefulShutdownManager()"],
        env={**child, "GS_SHUTDOWN_LOG": "loud"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "GS_SHUTDOWN_LOG" in result.stderr and "loud" in result.stderr, result.stderr
