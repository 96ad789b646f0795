"""Set-ups that look right and would cut streams, each started as a real
server: refused at start, the message naming the cause and the fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from server_process import ServerProcess

from .conftest import APPS, GUNICORN


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GS_")}
    return subprocess.run(
        command, cwd=APPS, env={**clean, **env}, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("options", "env", "needed"),
    [
        # The case: -w 2 and no --threads, one thread per worker.
        (["-w", "2"], {}, "--threads 2 or more"),
        (["-w", "2", "--threads", "8"], {"GS_EXPECTED_STREAMS": "10"}, "--threads 14 or more"),
    ],
    ids=["no-threads", "too-few-for-the-expected-streams"],
)
def test_gunicorn_gthread_workers_that_cannot_hold_their_streams_are_refused(options, env, needed):
    done = _run([*GUNICORN, *options, "gunicorn_app:app"], env)
    assert done.returncode != 0
    assert needed in done.stderr, done.stderr
    assert "GS_EXPECTED_STREAMS" in done.stderr and "cannot hold its streams" in done.stderr, done.stderr
    assert "Booting worker" not in done.stderr, "refused before any worker started"


def test_gunicorn_with_the_streams_in_the_hub_needs_no_thread_per_stream():
    server = ServerProcess([*GUNICORN, "-w", "1", "gunicorn_app:app"], {"GS_EXPECTED_STREAMS": "0"}, cwd=APPS)
    try:
        assert server.client.get("/pid").status_code == 200
    finally:
        server.close()


def test_waitress_threads_that_cannot_hold_the_expected_streams_are_refused():
    command = [sys.executable, str(APPS / "settings_app.py"), "waitress"]
    done = _run(command, {"GS_EXPECTED_STREAMS": "10", "PORT": "0"})
    assert done.returncode != 0
    assert "threads=8 cannot hold GS_EXPECTED_STREAMS=10 (from the environment)" in done.stderr, done.stderr
    assert "threads >= 14" in done.stderr, done.stderr
    keyword = _run(command, {"SERVE_KEYWORDS": json.dumps({"expected_streams": 6}), "PORT": "0"})
    assert keyword.returncode != 0
    assert "(from keyword expected_streams= of serve())" in keyword.stderr, keyword.stderr
