"""The example app as a WSGI module for gunicorn (``serve_gunicorn.py``
starts it): one app per worker process, built when the worker loads it.

A body refused with 413 is read and discarded (up to ``DISCARD_LIMIT``)
before the answer goes out: gunicorn closes a connection whose body was
not read, and a client still sending then gets a reset instead of the 413.
(Waitress reads every body before the app runs, so run.py needs none of
this.)"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, Callable

from app import create_app
from last_call import hub
from last_call.testing import install_test_switches
from settings import from_env

#: The most of a refused body read to let the client see its 413.
DISCARD_LIMIT = 1024 * 1024
_CHUNK = 64 * 1024

flask_app = create_app()
if from_env().streams == "hub":
    # In the worker (this module is loaded there): each worker holds a hub
    # on the pod's one hub port (last_call.gunicorn's post_fork told the
    # runtime how many workers share it). The heartbeat follows the app's.
    os.environ.setdefault("GS_STREAM_HEARTBEAT_SECONDS", str(from_env().heartbeat_seconds))
    hub.start()
# Test-only, off by default (serve_gunicorn.py refused a bad value already).
install_test_switches(flask_app.extensions["container"].shutdown_manager(), from_env().host)


def app(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
    statuses: list[str] = []

    def recording_start_response(status: str, headers: list, exc_info: Any = None) -> Any:
        statuses.append(status)
        return start_response(status, headers, exc_info)

    body = flask_app(environ, recording_start_response)
    if statuses and statuses[-1].startswith("413"):
        stream, left = environ["wsgi.input"], DISCARD_LIMIT
        while left > 0 and stream.read(min(_CHUNK, left)):
            left -= _CHUNK
    return body
