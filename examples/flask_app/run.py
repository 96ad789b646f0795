"""Serves the example app with Waitress through the last-call
sequence. HOST, PORT, THREADS, GS_EXPECTED_STREAMS (the streams one pod should
carry; serve() refuses THREADS that cannot hold them), SSE_HEARTBEAT_SECONDS,
TASK_WORKERS, MAX_TASKS, TASK_KEEP_SECONDS, MAX_BODY_BYTES and the GS_*
settings (GS_PROBE_ADDR starts the runtime's probe listener) come from the
environment, validated at start (``settings.py``).

A SIGTERM during start-up (the imports below take a few hundred ms) ends the
process with status 0: nothing is served yet, so nothing is cut. The
handler for that is installed first, before the slow imports; ``serve``
then replaces it with the runtime's own handling. Between the two there are
only a few Python statements, no import.

STREAMS=hub (with GS_STREAM_ADDR and GS_STREAM_SECRET) hands task streams
to the runtime's stream hub: tasks publish to a channel each, and
``POST /api/tasks`` answers a ``stream_url`` on the hub (absolute, or under
PUBLIC_STREAM_BASE_URL when an ingress routes a path to the hub).

LAST_CALL_DISABLED=1 serves it with plain ``waitress.serve`` and no
signal handling: the default SIGTERM behaviour (the process dies at once),
the baseline the rolling-update harness compares against.

    pip install ../../bindings/python -r requirements.txt
    python run.py
"""

import os
import signal
import sys

# First of all: the early SIGTERM handling (see above).
signal.signal(signal.SIGTERM, lambda _signum, _frame: os._exit(0))

import logging  # noqa: E402 - after the early signal handling, on purpose

from settings import SettingsError, from_env  # noqa: E402

# Validated before the app is imported: its container reads the same
# variables when its module loads, and would fail without naming them well.
try:
    SETTINGS = from_env()
except SettingsError as _error:
    print(f"run.py: {_error}", file=sys.stderr)
    sys.exit(2)

from app import create_app  # noqa: E402
from last_call import ConfigError, hub  # noqa: E402
from last_call.testing import install_test_switches  # noqa: E402
from last_call.waitress import serve  # noqa: E402

logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
sys.stdout.reconfigure(line_buffering=True)


def main() -> None:
    settings = SETTINGS
    # Builds the manager, which validates the GS_* configuration.
    app = create_app()
    manager = app.extensions["container"].shutdown_manager()
    manager.on_phase(lambda old, new: logging.getLogger("run").info("phase %s -> %s", old.label, new.label))
    install_test_switches(manager, settings.host)  # test-only, off by default
    threads = settings.threads
    # Waitress stops accepting at 100 open connections by default, fewer
    # than THREADS streams can hold on a large pool: room for every thread
    # and as many more for the API's short requests.
    connection_limit = max(100, 2 * threads)
    if settings.streams == "hub":
        # The hub's heartbeat follows the app's unless set on its own. (The
        # baseline below keeps the hub, so that it shows the streams the
        # default SIGTERM behaviour cuts.)
        os.environ.setdefault("GS_STREAM_HEARTBEAT_SECONDS", str(settings.heartbeat_seconds))
        hub.start()  # prints "streams on http://HOST:PORT"
    if os.environ.get("LAST_CALL_DISABLED") == "1":
        import waitress

        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the baseline dies at once
        waitress.serve(app, host=settings.host, port=settings.port, threads=threads, connection_limit=connection_limit)
        sys.exit(0)
    # The runtime's handling replaces the early one (it chains handlers
    # installed before it, so the early one must go first). From here until
    # serve() has installed it, a SIGTERM would have its default effect:
    # blocked instead, it waits, pending, for the runtime, which serve()
    # unblocks it for.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    serve(
        app,
        host=settings.host,
        port=settings.port,
        threads=threads,
        connection_limit=connection_limit,
    )
    logging.getLogger("run").info("serve returned; exiting 0")


if __name__ == "__main__":
    try:
        main()
    except (ConfigError, ValueError) as error:
        # A bad value anywhere in the start (the app's GS_* settings, the
        # hub's, the probe address, the test switches): one line naming it,
        # and the contract's status 2, not a traceback and status 1.
        print(f"run.py: {error}", file=sys.stderr)
        sys.exit(2)
