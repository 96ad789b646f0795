"""Exceptions raised for the runtime's status codes."""

from __future__ import annotations


class GracefulShutdownError(Exception):
    """Base class of every error this package raises."""

    status = None  # the gs_status code, when the error came from the runtime


class NoActiveStreamError(GracefulShutdownError, ValueError):
    """A stream ended without a matching begin; the count stays at zero."""


class TooManyStreamsError(GracefulShutdownError):
    """Too many streams are active to count another."""


class InvalidStateError(GracefulShutdownError):
    """The runtime is in a state where this call is not allowed (the
    shutdown sequence has started, signal handlers are already installed)."""


class ConfigError(GracefulShutdownError, ValueError):
    """A configuration value is malformed; the message names the variable."""


class NativeError(GracefulShutdownError, OSError):
    """The operating system refused, or the runtime hit an internal error."""
