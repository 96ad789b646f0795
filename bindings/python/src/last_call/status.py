"""The runtime's status codes (``enum gs_status`` in include/last_call.h)
and the one table that maps each failing code to its exception. A test
checks both names and values against the header."""

from __future__ import annotations

import enum

from .errors import (
    ConfigError,
    GracefulShutdownError,
    InvalidArgumentError,
    InvalidStateError,
    NativeError,
    NoActiveStreamError,
    NotFoundError,
    ReentrantCallError,
    TooManyStreamsError,
)


class Status(enum.IntEnum):
    """``gs_status``: ``GS_OK`` is 0, every other value distinct and stable.
    Member names are the header's without the ``GS_`` / ``GS_ERR_`` prefix."""

    OK = 0
    INVALID_ARGUMENT = 1
    NO_ACTIVE_STREAM = 2
    TOO_MANY_STREAMS = 3
    SEQUENCE_STARTED = 4
    TIMED_OUT = 5
    ALREADY_INSTALLED = 6
    INVALID_CONFIG = 7
    BUFFER_TOO_SMALL = 8
    OS = 9
    PANIC = 10
    NOT_FOUND = 11
    REENTRANT = 12
    ALREADY_STARTED = 13
    HUB_NOT_STARTED = 14
    HUB_FULL = 15
    HUB_BUSY = 16
    TOO_LATE = 17


#: The exception raised for each failing status. OK and TIMED_OUT are
#: results, not failures; BUFFER_TOO_SMALL is handled where buffers are.
EXCEPTIONS: dict[Status, type[GracefulShutdownError]] = {
    Status.INVALID_ARGUMENT: InvalidArgumentError,
    Status.NO_ACTIVE_STREAM: NoActiveStreamError,
    Status.TOO_MANY_STREAMS: TooManyStreamsError,
    Status.SEQUENCE_STARTED: InvalidStateError,
    Status.ALREADY_INSTALLED: InvalidStateError,
    Status.INVALID_CONFIG: ConfigError,
    Status.BUFFER_TOO_SMALL: NativeError,
    Status.OS: NativeError,
    Status.PANIC: NativeError,
    Status.NOT_FOUND: NotFoundError,
    Status.REENTRANT: ReentrantCallError,
    Status.ALREADY_STARTED: InvalidStateError,
    Status.HUB_NOT_STARTED: InvalidStateError,
    Status.HUB_FULL: InvalidStateError,
    Status.HUB_BUSY: InvalidStateError,
    Status.TOO_LATE: InvalidStateError,
}


def error_for(status: int, message: str) -> GracefulShutdownError:
    """The exception for a failing status code, carrying the code."""
    try:
        exception_type: type[GracefulShutdownError] = EXCEPTIONS[Status(status)]
    except (ValueError, KeyError):
        exception_type = NativeError
    error = exception_type(message)
    error.status = status
    return error
