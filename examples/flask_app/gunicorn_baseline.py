"""gunicorn settings of the baseline (``LAST_CALL_DISABLED=1 python
serve_gunicorn.py``): plain gunicorn, which only announces its address the
way the other example servers do."""

from typing import Any


def when_ready(server: Any) -> None:
    for listener in server.LISTENERS:
        server.log.info("serving on %s", listener)
