"""The example as a WSGI application for gunicorn (run.py starts it): one
per worker process, built when the worker loads it.

A body refused with 413 is read and discarded (up to ``DISCARD_LIMIT``)
before the answer goes out: gunicorn closes a connection whose body was
not read, and a client still sending would get a reset instead of the 413.
"""

import os
from collections.abc import Iterable
from typing import Any, Callable

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

from django.core.wsgi import get_wsgi_application

DISCARD_LIMIT = 1024 * 1024
_CHUNK = 64 * 1024

django_application = get_wsgi_application()


def application(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
    statuses: list[str] = []

    def recording_start_response(status: str, headers: list, exc_info: Any = None) -> Any:
        statuses.append(status)
        return start_response(status, headers, exc_info)

    body = django_application(environ, recording_start_response)
    if statuses and statuses[-1].startswith("413"):
        stream, left = environ["wsgi.input"], DISCARD_LIMIT
        while left > 0 and stream.read(min(_CHUNK, left)):
            left -= _CHUNK
    return body
