"""Serves the example app with gunicorn through the last-call sequence:

    python serve_gunicorn.py      # HOST, PORT, THREADS, ... as for run.py

which validates the settings (status 2 naming a bad one) and then runs, in
the same process, ``gunicorn -c python:last_call.gunicorn -k gthread -w 1
--threads $THREADS --bind $HOST:$PORT wsgi:app``, so that the process the
kubelet signals is gunicorn's master.

**One worker, many threads** by default. The tasks live in the memory of
the process that started them, so with several workers a stream request
could reach a worker that does not hold its task (404). One gthread worker
holds them all; it serves each SSE stream on a thread of its own (THREADS,
default 16), and the pod scales by replicas. With STREAMS=hub and a shared
store (GS_STREAM_STORE=redis://...), WORKERS=N runs N workers: each holds a
hub on the one hub port (``last_call.workers``), and a task's events reach
its subscribers whichever worker holds them. The probe listener is the master's, one per pod
whatever the worker count (``last_call.gunicorn``).

LAST_CALL_DISABLED=1 runs plain gunicorn (``gunicorn_baseline.py``, which
only announces the address): the baseline.
"""

import os
import signal
import sys

# A SIGTERM before gunicorn is running: nothing is served yet, exit 0.
signal.signal(signal.SIGTERM, lambda _signum, _frame: os._exit(0))

from last_call.testing import check_test_switches  # noqa: E402
from settings import SettingsError, from_env  # noqa: E402

try:
    SETTINGS = from_env()
    check_test_switches(SETTINGS.host)  # test-only, off by default; wsgi.py applies them
except (SettingsError, ValueError) as _error:
    print(f"serve_gunicorn.py: {_error}", file=sys.stderr)
    sys.exit(2)

if __name__ == "__main__":
    host = f"[{SETTINGS.host}]" if ":" in SETTINGS.host else SETTINGS.host
    baseline = os.environ.get("LAST_CALL_DISABLED") == "1"
    config = ["-c", "python:gunicorn_baseline" if baseline else "python:last_call.gunicorn"]
    argv = ["gunicorn", *config, "-k", "gthread", "-w", str(SETTINGS.workers), "--threads", str(SETTINGS.threads)]
    here = os.path.dirname(os.path.abspath(__file__))
    argv += ["--chdir", here, "--bind", f"{host}:{SETTINGS.port}", "wsgi:app"]
    # In this process rather than exec'd: exec would reset the early SIGTERM
    # handler to the default until gunicorn installs its own.
    sys.argv = argv
    from gunicorn.app.wsgiapp import run

    run()
