"""last_call: keep SSE streams alive through Kubernetes pod
terminations.

A Flask app served by Waitress adds::

    from last_call import GracefulShutdownManager
    from last_call.flask import health_blueprint, sse_stream
    from last_call.waitress import serve

    manager = GracefulShutdownManager()
    app.register_blueprint(health_blueprint(manager))

    @app.get("/api/tasks/<task_id>/stream")
    @sse_stream
    def stream(task_id):
        return generate_events(task_id)     # a generator of SSE text

    serve(app, host="0.0.0.0", port=8080, threads=32)
"""

from .errors import (
    ConfigError,
    GracefulShutdownError,
    InvalidStateError,
    NativeError,
    NoActiveStreamError,
    TooManyStreamsError,
)
from .manager import GracefulShutdownManager, NoopGracefulShutdownManager
from .phase import Phase, SecondSignal

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "GracefulShutdownError",
    "GracefulShutdownManager",
    "InvalidStateError",
    "NativeError",
    "NoActiveStreamError",
    "NoopGracefulShutdownManager",
    "Phase",
    "SecondSignal",
    "TooManyStreamsError",
    "native_version",
]


def native_version() -> str:
    """The version of the native runtime this package loaded."""
    from . import _native

    return _native.lib.gs_version().decode()
