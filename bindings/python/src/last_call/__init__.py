"""last_call: keep SSE streams alive through Kubernetes pod terminations.

A Flask app served by Waitress adds::

    from last_call.flask import GracefulShutdown, sse_stream
    from last_call.waitress import serve

    GracefulShutdown(app)            # /readyz /healthz /drain /metrics

    @app.get("/api/tasks/<task_id>/stream")
    @sse_stream
    def stream(task_id):
        return generate_events(task_id)     # a generator of SSE text

    serve(app, host="0.0.0.0", port=8080, threads=32)

Importing the package, its enums, its errors and the no-op manager does not
load the native library; the first real call (constructing
GracefulShutdownManager) does.
"""

from ._version import __version__
from .errors import (
    ArgumentTypeError,
    ConfigError,
    GracefulShutdownError,
    InvalidArgumentError,
    InvalidStateError,
    LibraryLoadError,
    NativeError,
    NoActiveStreamError,
    NotFoundError,
    ReentrantCallError,
    TooManyStreamsError,
)
from .interface import ShutdownManager
from .manager import GracefulShutdownManager, NoopGracefulShutdownManager
from .phase import Phase, SecondSignal
from .readiness import ReadinessReport
from .sse import StreamKind
from .status import Status

__all__ = [
    "ArgumentTypeError",
    "ConfigError",
    "GracefulShutdownError",
    "GracefulShutdownManager",
    "InvalidArgumentError",
    "InvalidStateError",
    "LibraryLoadError",
    "NativeError",
    "NoActiveStreamError",
    "NoopGracefulShutdownManager",
    "NotFoundError",
    "Phase",
    "ReadinessReport",
    "ReentrantCallError",
    "SecondSignal",
    "ShutdownManager",
    "Status",
    "StreamKind",
    "TooManyStreamsError",
    "__version__",
    "native_version",
]


def native_version() -> str:
    """The version of the native runtime (loads it)."""
    from . import _native

    return str(_native.library().gs_version().decode())
