"""Serves the Django example through the last-call sequence, with the
server SERVER chooses:

* ``gunicorn`` (the default): Django's WSGI application under
  ``gunicorn -c python:last_call.gunicorn -k gthread -w 1 --threads
  $THREADS``, run in this process so that the process the kubelet signals
  is gunicorn's master;
* ``uvicorn``: Django's ASGI handler with last_call's lifespan
  (``last_call.django.asgi``), one worker.

HOST, PORT, THREADS, SSE_HEARTBEAT_SECONDS, TASK_WORKERS, MAX_TASKS,
TASK_KEEP_SECONDS, MAX_BODY_BYTES and the GS_* settings (GS_PROBE_ADDR
starts the runtime's probe listener) come from the environment, validated
at start (``settings.py``; a bad value: status 2, named). The tasks live
in the memory of the worker that started them, so one worker serves them
all, and the pod scales by replicas.

A SIGTERM during start-up ends the process with status 0: the handler for
it is installed first; gunicorn (or uvicorn) replaces it, and last_call's
handling replaces theirs.

LAST_CALL_DISABLED=1 serves the same project without the sequence
(plain gunicorn, or Django's own ASGI handler under uvicorn): the
baseline the rolling-update harness compares against.

    pip install ../../bindings/python -r requirements.txt
    python run.py
"""

import os
import signal
import sys

# First of all: the early SIGTERM handling (see above).
signal.signal(signal.SIGTERM, lambda _signum, _frame: os._exit(0))

from last_call.testing import check_test_switches  # noqa: E402
from settings import SettingsError, from_env  # noqa: E402

try:
    SETTINGS = from_env()
    check_test_switches(SETTINGS.host)  # test-only, off by default
except (SettingsError, ValueError) as _error:
    print(f"run.py: {_error}", file=sys.stderr)
    sys.exit(2)

HERE = os.path.dirname(os.path.abspath(__file__))
BASELINE = os.environ.get("LAST_CALL_DISABLED") == "1"


def serve_gunicorn() -> None:
    host = f"[{SETTINGS.host}]" if ":" in SETTINGS.host else SETTINGS.host
    config = ["-c", "python:gunicorn_baseline" if BASELINE else "python:last_call.gunicorn"]
    argv = ["gunicorn", *config, "-k", "gthread", "-w", "1", "--threads", str(SETTINGS.threads)]
    argv += ["--chdir", HERE, "--bind", f"{host}:{SETTINGS.port}", "project.wsgi:application"]
    # In this process rather than exec'd: exec would reset the early SIGTERM
    # handler to the default until gunicorn installs its own.
    sys.argv = argv
    from gunicorn.app.wsgiapp import run

    run()


def serve_uvicorn() -> None:
    import contextlib
    import gc
    import logging
    import socket

    import uvicorn
    from uvicorn.config import STARTUP_FAILURE

    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    family = socket.AF_INET6 if ":" in SETTINGS.host else socket.AF_INET
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY on accepted sockets
    # only when the listener says TCP.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((SETTINGS.host, SETTINGS.port))
    sock.listen(2048)
    host, port = sock.getsockname()[:2]
    announce = f"serving on http://{f'[{host}]' if ':' in host else host}:{port}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    sys.path.insert(0, HERE)
    if BASELINE:
        from django.core.asgi import get_asgi_application

        app = get_asgi_application()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # uvicorn's own re-raise: exit 143
        print(announce, flush=True)
    else:
        from last_call.django.asgi import get_asgi_application as with_last_call

        @contextlib.asynccontextmanager
        async def announced(_app):
            # After the runtime's start (its probe listener announced).
            print(announce, flush=True)
            yield

        app = with_last_call(app_lifespan=announced)
    # Django's own handler refuses the lifespan scope: none for the baseline.
    config = uvicorn.Config(app, lifespan="off" if BASELINE else "on", log_level="info", access_log=False)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except SystemExit as exit_:
        # A lifespan that fails at startup (a malformed GS_* setting, a
        # GS_PROBE_ADDR in use: the error above names it) is uvicorn's
        # status 3; the contract's refused setting is status 2.
        if exit_.code == STARTUP_FAILURE:
            sys.exit(2)
        raise
    # The interpreter's last garbage collection, of a heap that held a
    # thousand streams' requests, took 0.65 s after Stopped (most of the
    # short rolling run's 1 s exit watchdog); the process is exiting, so
    # the objects left are not walked again.
    gc.freeze()
    print("uvicorn returned; exiting 0", flush=True)


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    if SETTINGS.server == "uvicorn":
        serve_uvicorn()
    else:
        serve_gunicorn()
