"""Flask integration: the ``GracefulShutdown`` extension, the health
blueprint and a decorator for SSE views.

::

    shutdown = GracefulShutdown(app)    # or GracefulShutdown() + init_app(app)

    @app.get("/api/tasks/<task_id>/stream")
    @sse_stream
    def stream(task_id):
        return generate_events(task_id)

Settings have one name each, the environment variable's: a keyword of
``GracefulShutdown`` (``shutdown_timeout_seconds=6``), else the
``app.config`` key (``GS_SHUTDOWN_TIMEOUT_SECONDS``), else the environment
(docs/configuration.md).
"""

from __future__ import annotations

import functools
import hmac
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar, cast

from flask import Blueprint, Flask, Response, current_app, request
from flask.blueprints import BlueprintSetupState
from werkzeug.datastructures import Headers

from . import _environ
from . import settings as settings_
from .interface import ShutdownManager
from .manager import GracefulShutdownManager, default_manager
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


@dataclass
class ExtensionState:
    """What ``init_app`` keeps in ``app.extensions["last_call"]``."""

    manager: ShutdownManager
    #: The settings this app gave (keywords over ``app.config``), by name.
    settings: dict[str, settings_.Given] = field(default_factory=dict)
    drain_token: str | None = None


class GracefulShutdown:
    """The Flask extension: ``GracefulShutdown(app)`` or, with an app
    factory, ``shutdown = GracefulShutdown()`` then ``shutdown.init_app(app)``.

    Every setting (docs/configuration.md) may be given here as a keyword
    (``GracefulShutdown(app, shutdown_timeout_seconds=6)``), in
    ``app.config`` under its one name (``GS_SHUTDOWN_TIMEOUT_SECONDS``), or
    in the environment; the keyword wins, then ``app.config``, then the
    environment. ``init_app`` hands the app's values to the runtime, so they
    take effect on every host: Waitress's ``serve``, gunicorn with
    ``last_call.gunicorn`` (a value its master read before the worker loaded
    the app fails the worker's start, naming the setting), the ASGI
    lifespan, or a plain WSGI server whose start calls
    ``manager.install_signal_handlers()`` (one that does not is reported at
    the first request). Besides the runtime's settings, the extension reads:

    * ``GS_DRAIN_TOKEN``: the bearer token of ``POST /drain`` (none: the
      endpoint answers 403);
    * ``GS_HEALTH_BLUEPRINT`` (default True): register the health
      blueprint; ``GS_DRAIN_ENDPOINT`` and ``GS_METRICS_ENDPOINT`` (default
      True) leave out ``/drain`` or ``/metrics``; ``GS_URL_PREFIX`` mounts
      it under a prefix.

    A malformed value raises ConfigError naming the setting and where it
    was given, at ``init_app``; so do durations that do not fit together,
    and a ``LAST_CALL_*`` key (the names before 0.2), naming its new name.
    An unknown ``GS_*`` key is reported once with the closest known name.
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
        **settings: Any,
    ) -> None:
        self.manager = manager
        self.readiness_checks = dict(readiness_checks or {})
        self.settings = settings_.from_keywords(settings, "GracefulShutdown()")
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, *, manager: ShutdownManager | None = None) -> None:
        runtime = manager or self.manager or default_manager()
        given = settings_.merge(self.settings, settings_.from_config(app.config))
        settings_.report_unknown_environment()
        settings_.take(given, native=isinstance(runtime, GracefulShutdownManager))
        state = ExtensionState(manager=runtime, settings=given, drain_token=_drain_token(given))
        app.extensions[EXTENSION_KEY] = state
        app.before_request(_check_the_host_once)
        if _flag(given, "GS_HEALTH_BLUEPRINT"):
            prefix = given.get("GS_URL_PREFIX")
            app.register_blueprint(
                health_blueprint(
                    runtime,
                    drain=_flag(given, "GS_DRAIN_ENDPOINT"),
                    metrics=_flag(given, "GS_METRICS_ENDPOINT"),
                    drain_token=state.drain_token,
                    url_prefix=prefix.text if prefix is not None else settings_.package_value("GS_URL_PREFIX"),
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
_host_checked = False


def _check_the_host_once() -> None:
    """At the first request: the server is known only now (its
    ``SERVER_SOFTWARE``), and so is whether anything installed the
    runtime's SIGTERM handling. Checked per request (one global read)
    because nothing tells an extension which server will run the app."""
    global _host_checked
    if _host_checked:
        return
    _host_checked = True
    server = str(request.environ.get("SERVER_SOFTWARE", "")) or "an unnamed WSGI server"
    if server.startswith("Werkzeug/"):
        warnings.warn(DEVELOPMENT_SERVER_WARNING, RuntimeWarning, stacklevel=1)
        current_app.logger.warning(DEVELOPMENT_SERVER_WARNING)
        return
    state = current_app.extensions.get(EXTENSION_KEY)
    if not isinstance(state, ExtensionState) or not isinstance(state.manager, GracefulShutdownManager):
        return
    if settings_.sequence_installed():
        return
    given = sorted(name for name, value in state.settings.items() if value.setting.group == "sequence")
    ignored = f"; {', '.join(given)} from the app take no effect" if given else ""
    message = (
        f"last_call: this app is served by {server}, and nothing in this process installed the runtime's "
        f"SIGTERM handling: at SIGTERM the server stops as it would without last_call, cutting open "
        f"streams{ignored}. Serve it with last_call.waitress.serve(app) or gunicorn -c python:last_call.gunicorn, "
        "or call manager.install_signal_handlers() (and register a shutdown hook that stops the server) "
        "before serving (docs/configuration.md)"
    )
    warnings.warn(message, RuntimeWarning, stacklevel=1)
    current_app.logger.error(message)


def _drain_token(given: Mapping[str, settings_.Given]) -> str | None:
    token = given.get(DRAIN_TOKEN_ENV)
    if token is not None:
        return token.text
    return _environ.secret(DRAIN_TOKEN_ENV)


def _flag(given: Mapping[str, settings_.Given], name: str) -> bool:
    value = given.get(name)
    text = value.text if value is not None else settings_.package_value(name)
    return True if text is None else settings_.flag(text)


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
