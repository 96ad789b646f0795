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

``install_test_switches()`` arms a rehearsal of the worst host: with
``SSE_TEST_HANG_SHUTDOWN_HOOK=1`` it registers a shutdown hook that never
returns, so that a harness can show the pod still exits before SIGKILL (the
runtime leaves the hook behind, or its exit watchdog ends the process). It
is off by default and refused for a server listening beyond loopback, as a
production configuration does.
"""

from __future__ import annotations

import os
import threading

from . import _native, settings
from .errors import InvalidStateError
from .manager import GracefulShutdownManager
from .status import Status

__all__ = ["HANG_SHUTDOWN_HOOK", "check_test_switches", "install_test_switches", "reset"]

#: The test-only switch: "1" registers a shutdown hook that never returns.
HANG_SHUTDOWN_HOOK = "SSE_TEST_HANG_SHUTDOWN_HOOK"
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def check_test_switches(host: str) -> bool:
    """Whether the test-only switches read from the environment (see the
    module's documentation) are on, for a server bound to `host`. Raises
    ValueError, naming the variable, for a value other than 1 or 0, or for
    a switch set with `host` beyond loopback."""
    value = os.environ.get(HANG_SHUTDOWN_HOOK)
    if value in (None, "", "0"):
        return False
    if value != "1":
        raise ValueError(f"invalid {HANG_SHUTDOWN_HOOK}={value!r}: expected 1 or 0")
    if host not in _LOOPBACK:
        raise ValueError(f"{HANG_SHUTDOWN_HOOK} is a test-only switch, refused with HOST={host!r} (not loopback)")
    return True


def install_test_switches(manager: GracefulShutdownManager, host: str) -> None:
    """Applies the test-only switches to `manager` (``check_test_switches``
    says when, and raises ValueError for a refused one)."""
    if check_test_switches(host):
        manager.register_shutdown_hook("test-hung-hook", lambda _seconds: threading.Event().wait())


def reset() -> None:
    """Serving, no stream counted, no sequence running, every phase
    callback, shutdown hook and readiness check removed, the figures
    cleared, the settings handed over from code forgotten. Does nothing
    to the runtime if this process has not loaded the native library (then
    nothing has touched it). Raises InvalidStateError while signal handlers
    are installed in this process."""
    if not _native.is_loaded():
        settings.forget()
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
    # The settings handed to the runtime are gone from it (the reset) and
    # from here.
    settings.forget()
    # The runtime no longer holds any callback; drop the Python side too.
    _native.phase_callbacks.forget_all()
    _native.shutdown_hooks.forget_all()
    _native.readiness_checks.forget_all()
    instance = GracefulShutdownManager._instance
    if instance is not None:
        instance._forget_registrations()
