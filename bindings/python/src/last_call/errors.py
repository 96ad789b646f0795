"""The package's exceptions: one hierarchy rooted in GracefulShutdownError.

Where Python users expect a built-in exception type, the error subclasses it
too, so ``except ValueError`` keeps working: a bad argument is a ValueError,
a wrong type a TypeError, an unknown registration a KeyError, a library that
cannot be loaded an ImportError.
"""

from __future__ import annotations


class GracefulShutdownError(Exception):
    """Base class of every error this package raises."""

    #: The gs_status code, when the error came from the runtime.
    status: int | None = None


class InvalidArgumentError(GracefulShutdownError, ValueError):
    """An argument is out of range: a NaN or negative timeout, an unknown
    phase or format."""


class ArgumentTypeError(GracefulShutdownError, TypeError):
    """An argument has the wrong type (a str where seconds are expected)."""


class NoActiveStreamError(InvalidArgumentError):
    """A stream ended without a matching begin; the count stays at zero."""


class TooManyStreamsError(GracefulShutdownError):
    """Too many streams are active to count another."""


class InvalidStateError(GracefulShutdownError):
    """The runtime is in a state where this call is not allowed (the
    shutdown sequence has started, signal handlers are already installed)."""


class ReentrantCallError(InvalidStateError):
    """A blocking wait was called from inside a phase callback or a
    shutdown hook, where it could never return."""


class ConfigError(InvalidArgumentError):
    """A configuration value is malformed; the message names the variable."""


class NotFoundError(GracefulShutdownError, KeyError):
    """No registration has that id."""

    def __str__(self) -> str:
        # KeyError quotes its argument; this is a sentence, not a key.
        return str(self.args[0]) if self.args else ""


class NativeError(GracefulShutdownError, OSError):
    """The operating system refused, or the runtime hit an internal error."""


class LibraryLoadError(GracefulShutdownError, ImportError):
    """The native library is missing, cannot be loaded, or is not the
    version this package was built for."""
