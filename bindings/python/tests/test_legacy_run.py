"""The legacy run.py shape in a child process with a real SIGTERM: the
handler set up through signal.signal, Waitress in a daemon thread, the main
thread in wait_for_shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

APPS = Path(__file__).parent / "apps"


@pytest.mark.parametrize("mode", ["legacy", "serve"])
def test_a_real_sigterm_drains_and_the_open_stream_ends_naturally(start_app, mode):
    server = start_app({"MODE": mode, "EVENTS": "10", "GS_DRAIN_DELAY_SECONDS": "0.5"}, script="legacy_run.py")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        with client.stream("GET", "/stream") as stream:
            lines = stream.iter_lines()
            assert next(lines) == "data: 0"
            server.process.send_signal(signal.SIGTERM)
            server.wait_for_log("shutdown requested")
            assert server.client.get("/readyz").status_code == 503
            assert server.client.get("/healthz").status_code == 200
            received = []
            try:
                received.extend(line for line in lines if line.startswith("data:"))
            except httpx.RemoteProtocolError:
                # The legacy shape exits as soon as the count is zero, and
                # Waitress uncounts a stream (calls its close()) *before* it
                # writes the terminating chunk: the process may end in
                # between. Every event arrives; the chunked framing's end may
                # not. serve() closes that gap (its stop hook waits for the
                # channel to flush), so it is strict there.
                if mode != "legacy":
                    raise
    assert received == [f"data: {n}" for n in range(1, 10)], "the stream was cut"
    assert server.process.wait(timeout=30) == 0
    if mode == "legacy":
        server.wait_for_log("streams finished: True")
    else:
        server.wait_for_log("stopped")


def test_a_bad_gs_value_fails_at_start_up():
    result = subprocess.run(
        [sys.executable, str(APPS / "legacy_run.py")],
        env={"PATH": "/usr/bin:/bin", "PORT": "0", "GS_SHUTDOWN_TIMEOUT_SECONDS": "abc"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ConfigError" in result.stderr and "GS_SHUTDOWN_TIMEOUT_SECONDS" in result.stderr
    assert "serving on" not in result.stdout.lower(), "it must fail before serving"


def test_a_configuration_that_does_not_fit_fails_at_construction_not_at_sigterm():
    """Each value is well formed, but the close notice and the hooks'
    budget, both set, do not fit in the timeout: GracefulShutdownManager()
    itself refuses, naming them, before anything serves."""
    result = subprocess.run(
        [sys.executable, "-c", "import last_call; last_call.GracefulShutdownManager(); print('constructed')"],
        env={
            **{name: value for name, value in os.environ.items() if not name.startswith("GS_")},
            "GS_SHUTDOWN_TIMEOUT_SECONDS": "3",
            "GS_CLOSE_NOTICE_SECONDS": "2",
            "GS_HOOK_BUDGET_SECONDS": "2",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "constructed" not in result.stdout
    assert "ConfigError" in result.stderr and "GS_CLOSE_NOTICE_SECONDS" in result.stderr, result.stderr


@pytest.mark.parametrize("spoil", ["GS_CLOSE_NOTICE_SECONDS=soon", "GS_SHUTDOWN_TIMEOUT_SECONDS=1"])
def test_the_signal_handler_never_raises_when_the_configuration_went_bad_after_start_up(start_app, spoil):
    """The legacy drop-in (``signal.signal(SIGTERM, manager.handle_sigterm)``)
    with a GS_* value spoiled after the handler was installed: a real
    SIGTERM still drains the stream to its end and the process exits 0,
    with no traceback and at most one line about it on stderr."""
    server = start_app(
        {"MODE": "serve", "EVENTS": "8", "GS_DRAIN_DELAY_SECONDS": "0.5", "SPOIL": spoil}, script="legacy_run.py"
    )
    with httpx.Client(base_url=server.url, timeout=20) as client, client.stream("GET", "/stream") as response:
        lines = response.iter_lines()
        first = next(line for line in lines if line.startswith("data:"))
        server.signal(signal.SIGTERM)
        received = [first, *(line for line in lines if line.startswith("data:"))]
    assert received == [f"data: {n}" for n in range(8)], "the stream was cut"
    assert server.wait_exit(30) == 0, "\n".join(server.lines)
    output = "\n".join(server.lines)
    assert "Traceback" not in output, output
    assert len([line for line in server.lines if "last_call: SIGTERM" in line]) <= 1, output
    assert "stopped" in output
