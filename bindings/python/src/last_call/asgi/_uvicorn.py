"""What the package knows of uvicorn's server: it finds the Server behind
the SIGTERM handler uvicorn installed, and stops it through
``should_exit`` in Stopping."""

from __future__ import annotations

import asyncio
import signal
import threading
from typing import Any

from ._relay import call_soon


class UvicornStopper:
    """The shutdown hook that stops uvicorn: in Stopping it sets the
    server's ``should_exit`` from the loop, then waits until the lifespan's
    end has run (uvicorn's shutdown is then done but for returning)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, server: Any, previous: Any) -> None:
        self._loop = loop
        self.server = server
        self._previous = previous
        self.lifespan_ended = threading.Event()

    def _stop(self) -> None:
        if self.server is not None:
            # should_exit, not handle_exit: handle_exit records the signal,
            # and uvicorn re-raises recorded signals after its shutdown
            # (capture_signals), which would end the process with 143.
            self.server.should_exit = True
        elif callable(self._previous):
            # Another server's own handler: let it stop as for SIGTERM.
            self._previous(signal.SIGTERM, None)

    def __call__(self, seconds_left: float) -> bool:
        call_soon(self._loop, self._stop)
        return self.lifespan_ended.wait(max(seconds_left, 0.0))


def uvicorn_server(handler: Any) -> Any:
    """The uvicorn Server whose bound ``handle_exit`` is ``handler``, if
    it is one (uvicorn installs it with signal.signal before the lifespan
    starts)."""
    owner = getattr(handler, "__self__", None)
    return owner if owner is not None and hasattr(owner, "should_exit") else None
