"""Serves the Starlette example app with uvicorn through the last-call
sequence. HOST, PORT, SSE_HEARTBEAT_SECONDS, TASK_WORKERS, MAX_TASKS,
TASK_KEEP_SECONDS, MAX_BODY_BYTES and the GS_* settings (GS_PROBE_ADDR
starts the runtime's probe listener) come from the environment, validated at
start (``settings.py``).

A SIGTERM during start-up ends the process with status 0: the handler for
it is installed first; uvicorn replaces it while it serves
(``capture_signals``) and ``last_call.asgi.lifespan`` replaces uvicorn's
with the runtime's. Should uvicorn itself see a SIGTERM in between, it
re-raises it after its shutdown, once it has put this first handler back:
status 0 again.

LAST_CALL_DISABLED=1 serves the app as it would be without last_call
(uvicorn's own signal handling, streams served by sse-starlette's own
EventSourceResponse): the baseline the rolling-update harness compares
against.

    pip install ../../bindings/python -r requirements.txt
    python run.py
"""

import os
import signal
import sys

# First of all: the early SIGTERM handling (see above).
signal.signal(signal.SIGTERM, lambda _signum, _frame: os._exit(0))

import logging  # noqa: E402 - after the early signal handling, on purpose
import socket  # noqa: E402

from last_call.testing import check_test_switches, install_test_switches  # noqa: E402
from settings import SettingsError, from_env  # noqa: E402

try:
    SETTINGS = from_env()
    check_test_switches(SETTINGS.host)  # test-only, off by default
except (SettingsError, ValueError) as _error:
    print(f"run.py: {_error}", file=sys.stderr)
    sys.exit(2)

import uvicorn  # noqa: E402
from app import create_app  # noqa: E402
from app.task_service import TaskService  # noqa: E402
from last_call import ConfigError, GracefulShutdownManager  # noqa: E402
from uvicorn.config import STARTUP_FAILURE  # noqa: E402

logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
sys.stdout.reconfigure(line_buffering=True)


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that PORT=0 can be announced."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY on accepted sockets
    # only when the listener says TCP (with proto 0 every small response
    # waits ~40 ms for the client's delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


if __name__ == "__main__":
    settings = SETTINGS
    try:
        # Validates the GS_* configuration: a bad one stops here, named.
        manager = GracefulShutdownManager()
    except ConfigError as error:
        print(f"run.py: {error}", file=sys.stderr)
        sys.exit(2)
    manager.on_phase(lambda old, new: logging.getLogger("run").info("phase %s -> %s", old.label, new.label))
    service = TaskService(
        manager,
        max_workers=settings.task_workers,
        max_tasks=settings.max_tasks,
        keep_finished_seconds=settings.keep_finished_seconds,
        heartbeat_seconds=settings.heartbeat_seconds,
    )
    # Registered before the lifespan's uvicorn hook: the tasks are stopped
    # first, then uvicorn.
    manager.register_shutdown_hook("task-service", service.shutdown)
    install_test_switches(manager, settings.host)  # test-only, off by default
    sock = _listen(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    disabled = os.environ.get("LAST_CALL_DISABLED") == "1"
    app = create_app(
        manager,
        service,
        max_body_bytes=settings.max_body_bytes,
        announce=f"serving on http://{shown}:{port}",
        runtime=not disabled,
    )
    if disabled:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # uvicorn's own re-raise: exit 143
    config = uvicorn.Config(app, lifespan="on", log_level="info", access_log=False)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except SystemExit as exit_:
        # A lifespan that fails at startup (a malformed GS_* variable, a
        # GS_PROBE_ADDR in use: the error above names it) is uvicorn's
        # status 3; the contract's refused setting is status 2.
        if exit_.code == STARTUP_FAILURE:
            sys.exit(2)
        raise
    logging.getLogger("run").info("uvicorn returned; exiting 0")
