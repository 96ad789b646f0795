"""``flask run`` (Werkzeug's development server) cannot keep streams alive:
an app with the extension says so, once, when that server serves it."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx
from server_process import eventually

from .conftest import APPS


def test_flask_run_warns_once_that_it_cuts_streams_at_sigterm():
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "gunicorn_app", "run", "--port", "0"],
        cwd=APPS,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output: list[str] = []

        def port() -> int | None:
            line = process.stdout.readline()
            output.append(line)
            found = re.search(r"Running on http://127\.0\.0\.1:(\d+)", line)
            return int(found.group(1)) if found else None

        url = f"http://127.0.0.1:{eventually(port, timeout=30)}"
        for _ in range(3):
            assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
        process.terminate()
        rest, _ = process.communicate(timeout=30)
        text = "".join(output) + rest
        assert text.count("served by the Werkzeug development server") == 2, text  # the warning and the log line
        assert "last_call.waitress.serve" in text
        assert process.returncode == -15  # what it warns of: SIGTERM ends it at once
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
