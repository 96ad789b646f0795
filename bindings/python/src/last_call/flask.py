"""Flask integration: the ``GracefulShutdown`` extension, the health
blueprint and a decorator for SSE views.

::

    shutdown = GracefulShutdown(app)    # or GracefulShutdown() + init_app(app)

    @app.get("/api/tasks/<task_id>/stream")
    @sse_stream
    def stream(task_id):
        return generate_events(task_id)

Settings come from ``app.config`` (``LAST_CALL_*`` keys, below), falling
back to the ``GS_*`` environment variables the runtime reads.
"""

from __future__ import annotations

import functools
import hmac
import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar, cast

from flask import Blueprint, Flask, Response, current_app, request
from flask.blueprints import BlueprintSetupState
from werkzeug.datastructures import Headers

from . import _environ
from ._arguments import second_signal as _second_signal
from .errors import ConfigError
from .interface import ShutdownManager
from .manager import GracefulShutdownManager, default_manager, validate_environment
from .readiness import ReadinessCheck
from .sse import StreamKind
from .wsgi import DEFAULT_RECONNECT_RETRY_MS, FinalEvent, TrackedStream

__all__ = [
    "EXTENSION_KEY",
    "SSE_HEADERS",
    "GracefulShutdown",
    "current_manager",
    "health_blueprint",
    "sse_stream",
]

DRAIN_TOKEN_ENV = "GS_DRAIN_TOKEN"
#: The key under which an app's state is kept in ``app.extensions``.
EXTENSION_KEY = "last_call"
_FROM_ENVIRONMENT: Any = object()

#: Headers every SSE response needs behind proxies (nginx buffers otherwise).
SSE_HEADERS = {"X-Accel-Buffering": "no", "Cache-Control": "no-cache"}

#: ``app.config`` key -> keyword of ``install_signal_handlers``. Unset keys
#: fall back to the runtime's GS_* variable of the same name.
_DURATION_KEYS = {
    "LAST_CALL_DRAIN_DELAY_SECONDS": "drain_delay",
    "LAST_CALL_SHUTDOWN_TIMEOUT_SECONDS": "shutdown_timeout",
    "LAST_CALL_CLOSE_NOTICE_SECONDS": "close_notice",
    "LAST_CALL_EXIT_WATCHDOG_SECONDS": "exit_watchdog",
}


@dataclass
class ExtensionState:
    """What ``init_app`` keeps in ``app.extensions["last_call"]``."""

    manager: ShutdownManager
    #: Keyword arguments for ``manager.install_signal_handlers``, from
    #: app.config; ``last_call.waitress.serve(app)`` uses them.
    shutdown_options: dict[str, Any] = field(default_factory=dict)
    drain_token: str | None = None


class GracefulShutdown:
    """The Flask extension: ``GracefulShutdown(app)`` or, with an app
    factory, ``shutdown = GracefulShutdown()`` then ``shutdown.init_app(app)``.

    ``init_app`` reads these ``app.config`` keys:

    * ``LAST_CALL_DRAIN_DELAY_SECONDS``, ``LAST_CALL_SHUTDOWN_TIMEOUT_SECONDS``,
      ``LAST_CALL_CLOSE_NOTICE_SECONDS``, ``LAST_CALL_EXIT_WATCHDOG_SECONDS``,
      ``LAST_CALL_SECOND_SIGNAL``: the shutdown sequence's settings, used by
      ``last_call.waitress.serve(app)``; unset ones come from the GS_*
      environment variables;
    * ``LAST_CALL_DRAIN_TOKEN``: the bearer token of ``POST /drain``
      (default ``$GS_DRAIN_TOKEN``; none: the endpoint answers 403);
    * ``LAST_CALL_HEALTH_BLUEPRINT`` (default True): register the health
      blueprint; ``LAST_CALL_DRAIN_ENDPOINT`` and
      ``LAST_CALL_METRICS_ENDPOINT`` (default True) leave out ``/drain`` or
      ``/metrics``; ``LAST_CALL_URL_PREFIX`` mounts it under a prefix.

    A malformed value raises ConfigError naming the key, at ``init_app``;
    so does, with the real manager, a GS_* environment variable that is
    malformed, or durations that do not fit together.
    The app's state goes into ``app.extensions["last_call"]``; ``@sse_stream``
    and the blueprint find the manager there, so two apps in one process
    may each have their own (a no-op one in tests, say).
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        manager: ShutdownManager | None = None,
        readiness_checks: Mapping[str, ReadinessCheck] | None = None,
    ) -> None:
        self.manager = manager
        self.readiness_checks = dict(readiness_checks or {})
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, *, manager: ShutdownManager | None = None) -> None:
        runtime = manager or self.manager or default_manager()
        config = app.config
        state = ExtensionState(
            manager=runtime,
            shutdown_options=_shutdown_options(config),
            drain_token=_drain_token(config),
        )
        if isinstance(runtime, GracefulShutdownManager):
            # The GS_* settings with this app's LAST_CALL_* ones in their
            # place, validated where the host starts, not at SIGTERM.
            durations = {k: v for k, v in state.shutdown_options.items() if k != "second_signal"}
            try:
                validate_environment(**durations)
            except ConfigError as error:
                given = ", ".join(key for key, keyword in _DURATION_KEYS.items() if keyword in durations)
                raise ConfigError(f"{error}" + (f" (with app.config's {given})" if given else "")) from None
        app.extensions[EXTENSION_KEY] = state
        app.before_request(_warn_once_on_the_development_server)
        if _flag(config, "LAST_CALL_HEALTH_BLUEPRINT", True):
            app.register_blueprint(
                health_blueprint(
                    runtime,
                    drain=_flag(config, "LAST_CALL_DRAIN_ENDPOINT", True),
                    metrics=_flag(config, "LAST_CALL_METRICS_ENDPOINT", True),
                    drain_token=state.drain_token,
                    url_prefix=config.get("LAST_CALL_URL_PREFIX"),
                    readiness_checks=self.readiness_checks,
                )
            )


#: Logged once per process when Werkzeug's development server serves a request.
DEVELOPMENT_SERVER_WARNING = (
    "last_call: this app is served by the Werkzeug development server (flask run, app.run), "
    "which stops at the first SIGTERM and cuts every open stream (exit 143); the runtime cannot "
    "keep streams alive there. Serve it with last_call.waitress.serve(app) or "
    "gunicorn -c python:last_call.gunicorn"
)
_development_server_warned = False


def _warn_once_on_the_development_server() -> None:
    # Werkzeug's server says who it is in SERVER_SOFTWARE; Waitress and
    # gunicorn say otherwise. Checked per request (a string compare) because
    # nothing tells an extension which server will run the app.
    global _development_server_warned
    if _development_server_warned:
        return
    if str(request.environ.get("SERVER_SOFTWARE", "")).startswith("Werkzeug/"):
        _development_server_warned = True
        warnings.warn(DEVELOPMENT_SERVER_WARNING, RuntimeWarning, stacklevel=1)
        current_app.logger.warning(DEVELOPMENT_SERVER_WARNING)


def _shutdown_options(config: Mapping[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key, keyword in _DURATION_KEYS.items():
        value = config.get(key)
        if value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be a number of seconds, not {value!r}") from None
        if math.isnan(number) or number < 0 or isinstance(value, bool):
            raise ConfigError(f"{key} must be a non-negative number of seconds, not {value!r}")
        options[keyword] = number
    second = config.get("LAST_CALL_SECOND_SIGNAL")
    if second is not None:
        try:
            options["second_signal"] = _second_signal(second)
        except (ValueError, TypeError):
            raise ConfigError(f"LAST_CALL_SECOND_SIGNAL must be 'ignore' or 'exit', not {second!r}") from None
    return options


def _drain_token(config: Mapping[str, Any]) -> str | None:
    token = config.get("LAST_CALL_DRAIN_TOKEN")
    if token is None:
        token = _environ.secret(DRAIN_TOKEN_ENV)
    if token is not None and (not isinstance(token, str) or not token):
        raise ConfigError("LAST_CALL_DRAIN_TOKEN must be a non-empty str")
    return token


def _flag(config: Mapping[str, Any], key: str, default: bool) -> bool:
    value = config.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be True or False, not {value!r}")
    return value


def current_manager() -> ShutdownManager:
    """The manager of the app serving the request: the one its
    ``GracefulShutdown`` extension holds, else the process-wide one."""
    return _manager_of(current_app)


def _manager_of(app: Any) -> ShutdownManager:
    # Any: a Flask app, or the app object a blueprint's setup state holds.
    state = app.extensions.get(EXTENSION_KEY)
    if isinstance(state, ExtensionState):
        return state.manager
    return default_manager()


def _text(body: str, status: int, **headers: str) -> Response:
    return Response(body + "\n", status=status, mimetype="text/plain", headers=headers)


def health_blueprint(
    manager: ShutdownManager | None = None,
    *,
    drain: bool = True,
    metrics: bool = True,
    drain_token: Any = _FROM_ENVIRONMENT,
    readiness_checks: Mapping[str, ReadinessCheck] | None = None,
    url_prefix: str | None = None,
    name: str = "last_call",
) -> Blueprint:
    """A blueprint with the probes and controls Kubernetes needs:

    * ``GET /readyz``: 200 ``ok`` while serving and every readiness check
      passes; 503 ``draining`` after the drain began, 503 ``not ready: <checks>``
      when a check fails or does not answer in time;
    * ``GET /healthz``: 200 ``alive``, also while draining (a draining pod
      must not be restarted by its liveness probe);
    * ``POST /drain`` (unless ``drain=False``): leave rotation (Draining, no
      shutdown sequence); needs ``Authorization: Bearer <drain_token>``
      (compared in constant time; 401 otherwise). With no token configured
      the endpoint answers 403 and never drains. ``drain_token`` defaults to
      ``$GS_DRAIN_TOKEN``;
    * ``GET /metrics`` (unless ``metrics=False``): Prometheus text, or JSON
      for ``Accept: application/json``.

    ``manager`` None: the manager of the app serving each request (see
    ``current_manager``). ``readiness_checks`` (name -> callable) are added
    to that manager's registry when the blueprint is registered.
    """
    if drain_token is _FROM_ENVIRONMENT:
        drain_token = _environ.secret(DRAIN_TOKEN_ENV)
    if drain_token is not None and (not isinstance(drain_token, str) or not drain_token):
        raise ValueError("drain_token must be a non-empty str or None")
    expected = drain_token.encode("utf-8") if drain_token else None

    def runtime() -> ShutdownManager:
        return manager if manager is not None else current_manager()

    blueprint = Blueprint(name, __name__, url_prefix=url_prefix)

    checks = dict(readiness_checks or {})
    if checks:

        def add_checks(state: BlueprintSetupState) -> None:
            target = manager if manager is not None else _manager_of(state.app)
            for check_name, check in checks.items():
                target.add_readiness_check(check_name, check)

        blueprint.record_once(add_checks)

    @blueprint.get("/readyz")
    def readyz() -> Response:
        report = runtime().check_readiness()
        if report.ready:
            return _text("ok", 200)
        if "phase" in report.failures:
            return _text("draining", 503)
        return _text("not ready: " + ", ".join(sorted(report.failures)), 503)

    @blueprint.get("/healthz")
    def healthz() -> Response:
        return _text("alive", 200)

    if drain:

        @blueprint.post("/drain")
        def drain_endpoint() -> Response:
            if expected is None:
                return _text(f"the drain endpoint is disabled: set {DRAIN_TOKEN_ENV}", 403)
            header = request.headers.get("Authorization", "")
            scheme, _, given = header.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("utf-8"), expected):
                return _text("unauthorized", 401, **{"WWW-Authenticate": 'Bearer realm="drain"'})
            runtime().set_draining(True)
            current_app.logger.warning("last_call: draining on request from %s", request.remote_addr)
            return _text("draining", 200)

    if metrics:

        @blueprint.get("/metrics")
        def metrics_endpoint() -> Response:
            # Text wins a tie (no Accept header, */*), as Prometheus expects.
            best = request.accept_mimetypes.best_match(["text/plain", "application/json"])
            if best == "application/json":
                return Response(runtime().metrics("json"), mimetype="application/json")
            return Response(
                runtime().metrics("prometheus"),
                content_type="text/plain; version=0.0.4; charset=utf-8",
            )

    return blueprint


View = TypeVar("View", bound=Callable[..., Any])


def sse_stream(
    view: View | None = None,
    *,
    manager: ShutdownManager | None = None,
    reconnect_retry_ms: int = DEFAULT_RECONNECT_RETRY_MS,
    kind: StreamKind = StreamKind.RESUMABLE,
    final_event: FinalEvent | None = None,
) -> View | Callable[[View], View]:
    """Decorates a Flask view that returns an SSE generator, a
    ``(generator, status[, headers])`` tuple, or a streamed Response: the
    body is counted as one active stream while it is served, ends with a
    reconnect event in ClosingStreams, and the response gets
    ``text/event-stream`` (unless the view set a Content-Type),
    ``X-Accel-Buffering: no`` and ``Cache-Control: no-cache``. Other
    responses (a 404, say) pass through.

    ``kind`` says what ClosingStreams does (``last_call.sse.StreamKind``):
    a resumable stream is told to reconnect, at its own moment of the close
    notice; a pod-bound one gets ``final_event`` at the streams' last
    moment and ends. A view whose final event depends on the request returns
    ``track_stream(...)`` itself; such a body is kept as it is.

    So that the stream ends at its moment while its generator waits, the
    generator registers its waker from inside (``last_call.wsgi.wake_queue``
    for a ``queue.Queue`` subscriber, ``on_wake`` otherwise): a waker is per
    request, so it is not an option of the decorator (see
    ``last_call.wsgi``).

    The manager is looked up at each request (``current_manager()``: the
    app's extension, else the process-wide one) unless one is given here."""

    def decorate(function: View) -> View:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = function(*args, **kwargs)
            response = _streamed_response(result)
            if response is None:
                return result
            runtime = manager if manager is not None else current_manager()
            if not isinstance(response.response, TrackedStream):
                response.response = TrackedStream(
                    cast(Iterable[Any], response.response),
                    runtime,
                    request.environ,
                    reconnect_retry_ms=reconnect_retry_ms,
                    kind=kind,
                    final_event=final_event,
                )
            response.headers.update(SSE_HEADERS)
            return response

        return cast(View, wrapper)

    return decorate(view) if view is not None else decorate


def _streamed_response(result: Any) -> Response | None:
    """The Response to track for a view's result, or None to pass it on."""
    if isinstance(result, Response):
        return result if result.is_streamed else None
    if _is_stream(result):
        return Response(result, mimetype="text/event-stream")
    if isinstance(result, tuple) and result and _is_stream(result[0]):
        # Flask's own tuple rules: (body, status), (body, headers),
        # (body, status, headers).
        response = current_app.make_response(result)
        headers = result[-1] if len(result) > 1 and not isinstance(result[-1], (int, str)) else None
        if headers is None or "Content-Type" not in Headers(headers):
            response.mimetype = "text/event-stream"
        return response
    return None


def _is_stream(value: Any) -> bool:
    return hasattr(value, "__iter__") and not isinstance(value, (str, bytes, bytearray, dict, list, tuple))
