"""Testing support: returning the process-wide runtime to a clean state.

The runtime is process-wide, so one test that drains, starts the shutdown
sequence or registers a hook would change every later test in the same
process. ``reset()`` undoes all of it. The pytest plugin
(``last_call.pytest_plugin``, loaded by itself through the package's entry
point) calls it before and after each test.

A reset is refused with InvalidStateError while the runtime's signal
handlers are installed in this process: a process that can receive a real
SIGTERM is serving for real, and a reset must never undo a real shutdown.
Tests that install signal handlers belong in a child process.
"""

from __future__ import annotations

from . import _native
from .errors import InvalidStateError
from .manager import GracefulShutdownManager
from .status import Status

__all__ = ["reset"]


def reset() -> None:
    """Serving, no stream counted, no sequence running, every phase
    callback, shutdown hook and readiness check removed, the figures
    cleared. Does nothing if this process has not loaded the native library
    (then nothing has touched the runtime). Raises InvalidStateError while
    signal handlers are installed in this process."""
    if not _native.is_loaded():
        return
    status = _native.function("gs_testing_reset")()
    if status == Status.ALREADY_INSTALLED:
        error = InvalidStateError(
            "last_call.testing.reset() is refused: the runtime's signal handlers are installed in this "
            "process, so it may be shutting down for real. Install signal handlers only in child processes "
            "in tests."
        )
        error.status = int(status)
        raise error
    _native.check(status)
    # The runtime no longer holds any callback; drop the Python side too.
    _native.phase_callbacks.forget_all()
    _native.shutdown_hooks.forget_all()
    _native.readiness_checks.forget_all()
    instance = GracefulShutdownManager._instance
    if instance is not None:
        instance._forget_registrations()
