"""SIGTERM and SIGINT under uvicorn: uvicorn's handlers give way to one
that only logs, and the runtime's native handling is installed over it."""

from __future__ import annotations

import logging
import signal
from types import FrameType

from ..interface import ShutdownManager

logger = logging.getLogger("last_call.asgi")


def _signal_seen(signum: int, _frame: FrameType | None) -> None:
    # The Python-level handler left in place of uvicorn's: the runtime's
    # native handler (which chains to this one) has already started the
    # sequence; uvicorn is told to stop only in Stopping.
    logger.info("last_call: %s received; shutting down gracefully", signal.Signals(signum).name)


def take_over(runtime: ShutdownManager) -> None:
    """On the main thread, after uvicorn installed its handlers: the first
    SIGTERM starts the runtime's sequence while uvicorn keeps serving."""
    # Ours first, so that the runtime's native handler chains to it, not to
    # uvicorn's (which would stop uvicorn at once).
    signal.signal(signal.SIGTERM, _signal_seen)
    signal.signal(signal.SIGINT, _signal_seen)
    runtime.install_signal_handlers()
