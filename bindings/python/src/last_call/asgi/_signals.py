"""SIGTERM and SIGINT under uvicorn: uvicorn's handlers give way to one
that starts the sequence, and the runtime's native handling is installed
over it, with both signals held (blocked) on the main thread in between."""

from __future__ import annotations

import logging
import signal
from types import FrameType

from ..interface import ShutdownManager

logger = logging.getLogger("last_call.asgi")

_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def take_over(runtime: ShutdownManager) -> None:
    """On the main thread, after uvicorn installed its handlers: the first
    SIGTERM (or SIGINT) starts the runtime's sequence while uvicorn keeps
    serving.

    A SIGTERM between uvicorn's handler and the runtime's handling was lost:
    the handler in between only logged, and the server served on (1 of 40
    sent just after "Waiting for application startup"). Now both signals are
    blocked on this thread from before the first replacement until the
    runtime's handling is installed, so that one sent then waits, pending,
    for the runtime; and the Python handler in between starts the sequence
    itself (idempotent), for a signal another thread of the process took."""

    def signal_seen(signum: int, _frame: FrameType | None) -> None:
        # The Python-level handler left in place of uvicorn's. The runtime's
        # native handler (which chains to this one) has already started the
        # sequence, unless the signal came before it was installed; uvicorn
        # is told to stop only in Stopping.
        logger.info("last_call: %s received; shutting down gracefully", signal.Signals(signum).name)
        runtime.begin_shutdown()

    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        # Ours first, so that the runtime's native handler chains to it, not
        # to uvicorn's (which would stop uvicorn at once).
        signal.signal(signal.SIGTERM, signal_seen)
        signal.signal(signal.SIGINT, signal_seen)
        runtime.install_signal_handlers()
    finally:
        # A signal held meanwhile is delivered here, to the runtime's
        # handling (or, had the installation failed, to the handler above).
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
