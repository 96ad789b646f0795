"""The process's exit while the native runtime is loaded.

The runtime calls into Python from threads of its own: phase callbacks,
shutdown hooks, readiness checks. Once the interpreter finalizes, none of
them may run Python code: before Python 3.14, a thread that takes the GIL
during finalization is ended with ``pthread_exit()``, whose forced unwind
runs up into the runtime thread's panic boundary, and glibc aborts the
process ("FATAL: exception not rethrown"): exit status 134 and a core,
whatever the host meant. A hook left running past its share (the runtime
leaves overrunning hooks behind) hits it as soon as it wakes.

So, at exit (``atexit``, before the interpreter finalizes):

1. ``gs_host_exiting`` makes the runtime call no Python code from then on,
   and waits at most ``HOST_EXIT_WAIT_SECONDS`` for calls in flight;
2. if one is still running, the interpreter must not finalize: the process
   ends here with ``os._exit``, after flushing the standard streams and the
   logging handlers, with the status the host meant (see ``exit_status``).
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from typing import Any

from .status import Status

logger = logging.getLogger("last_call")

#: How long an exiting process waits for calls into Python still in flight.
#: Short: such a call has usually overrun already, and the exit watchdog
#: (GS_EXIT_WATCHDOG_SECONDS after Stopped, 3 s by default) must not be the
#: one to end the process.
HOST_EXIT_WAIT_SECONDS = 1.0

_lib: Any = None
_noted_status: int | None = None


def arm(lib: Any) -> None:
    """Called once the library is loaded: closes the gate at exit."""
    global _lib
    if _lib is None:
        _lib = lib
        atexit.register(_at_exit)


def note_exit_status(code: object) -> None:
    """Records the status the process is about to exit with, as
    ``sys.exit(code)`` would make it, for the one case in which this
    module ends the process itself. The gunicorn hooks call it."""
    global _noted_status
    _noted_status = _status_of(code)


def _status_of(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    return 1  # sys.exit("message"): Python prints it and exits 1


def exit_status() -> int:
    """The status the interpreter was about to exit with, as far as it can
    be told from inside ``atexit``: the one noted, else 1 after an uncaught
    exception (``sys.last_value``), else 0. A ``SystemExit(n)`` raised
    outside the hooks that note it is not visible here."""
    if _noted_status is not None:
        return _noted_status
    if getattr(sys, "last_value", None) is not None:
        return 1
    return 0


def _flush() -> None:
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass


def _at_exit() -> None:
    status = _lib.gs_host_exiting(HOST_EXIT_WAIT_SECONDS)
    if status == Status.OK:
        return
    if status != Status.TIMED_OUT:
        logger.error("last_call: gs_host_exiting failed with status %d", status)
        return
    code = exit_status()
    logger.warning(
        "last_call: a call into Python from the runtime (a shutdown hook past its share, or a phase "
        "callback or readiness check that blocks) is still running at exit; the process ends now "
        "with status %d, without finalizing the interpreter (which would abort it)",
        code,
    )
    _flush()
    os._exit(code)
