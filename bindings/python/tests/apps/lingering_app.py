"""A Flask app whose gunicorn worker outlives its own shutdown sequence,
for test_host_settings.py: its shutdown hook hands work to a non-daemon
thread (a last flush, say) and returns at once; the interpreter waits for
that thread at exit, so the worker lives ``LINGER_SECONDS`` more, then
prints "lingered PID". Such a worker is ended only by gunicorn's master,
which SIGKILLs the workers still alive ``graceful_timeout`` seconds after
its own Stopping: whether the line comes tells which ``graceful_timeout``
the master had. The settings are the app's: ``app.config`` from
``APP_CONFIG`` (JSON), the keywords of ``GracefulShutdown`` from
``SETTINGS_KEYWORDS`` (JSON).

    gunicorn -c python:last_call.gunicorn --preload lingering_app:app
"""

import json
import os
import threading
import time

from flask import Flask
from last_call import GracefulShutdownManager
from last_call.flask import GracefulShutdown

LINGER_SECONDS = float(os.environ["LINGER_SECONDS"])
#: The process that imported the app: with --preload, gunicorn's master,
#: whose own sequence runs this app's hooks too; it must not linger.
IMPORTED_IN = os.getpid()

manager = GracefulShutdownManager()
app = Flask(__name__)
app.config.update(json.loads(os.environ.get("APP_CONFIG", "{}")))
GracefulShutdown(app, manager=manager, **json.loads(os.environ.get("SETTINGS_KEYWORDS", "{}")))


def linger() -> None:
    pid = os.getpid()
    print(f"lingering {pid} for {LINGER_SECONDS} s", flush=True)
    time.sleep(LINGER_SECONDS)
    print(f"lingered {pid}", flush=True)


def hand_off(_seconds_left: float) -> bool:
    if os.getpid() != IMPORTED_IN:
        threading.Thread(target=linger, name="linger", daemon=False).start()
    return True


manager.register_shutdown_hook("hand-off", hand_off)
