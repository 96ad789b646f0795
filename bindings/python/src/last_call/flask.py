"""Flask integration: the health blueprint and a decorator for SSE views.

::

    app.register_blueprint(health_blueprint(manager))

    @app.get("/api/tasks/<task_id>/stream")
    @sse_stream
    def stream(task_id):
        return generate_events(task_id)
"""

from __future__ import annotations

import functools
import hmac
import os
from typing import Any, Callable, Optional

from flask import Blueprint, Response, current_app, request

from .wsgi import DEFAULT_RECONNECT_RETRY_MS, TrackedStream

DRAIN_TOKEN_ENV = "GS_DRAIN_TOKEN"
_FROM_ENVIRONMENT = object()

#: Headers every SSE response needs behind proxies (nginx buffers otherwise).
SSE_HEADERS = {"X-Accel-Buffering": "no", "Cache-Control": "no-cache"}


def _default_manager():
    from .manager import GracefulShutdownManager

    return GracefulShutdownManager()


def _text(body: str, status: int, **headers: str) -> Response:
    return Response(body + "\n", status=status, mimetype="text/plain", headers=headers)


def health_blueprint(
    manager=None,
    *,
    drain_token: Any = _FROM_ENVIRONMENT,
    url_prefix: Optional[str] = None,
    name: str = "last_call",
) -> Blueprint:
    """A blueprint with the probes and controls Kubernetes needs:

    * ``GET /readyz``: 200 ``ok`` while serving, 503 ``draining`` after;
    * ``GET /healthz``: 200 ``alive``, also while draining (a draining pod
      must not be restarted by its liveness probe);
    * ``POST /drain``: leave rotation (Draining, no shutdown sequence);
      needs ``Authorization: Bearer <drain_token>`` (compared in constant
      time; 401 otherwise). With no token configured the endpoint answers
      403 and never drains. ``drain_token`` defaults to ``$GS_DRAIN_TOKEN``;
    * ``GET /metrics``: Prometheus text, or JSON for ``Accept:
      application/json``.
    """
    manager = manager if manager is not None else _default_manager()
    if drain_token is _FROM_ENVIRONMENT:
        drain_token = os.environ.get(DRAIN_TOKEN_ENV) or None
    if drain_token is not None and (not isinstance(drain_token, str) or not drain_token):
        raise ValueError("drain_token must be a non-empty str or None")
    expected = drain_token.encode("utf-8") if drain_token else None

    blueprint = Blueprint(name, __name__, url_prefix=url_prefix)

    @blueprint.get("/readyz")
    def readyz() -> Response:
        if manager.is_draining():
            return _text("draining", 503)
        return _text("ok", 200)

    @blueprint.get("/healthz")
    def healthz() -> Response:
        return _text("alive", 200)

    @blueprint.post("/drain")
    def drain() -> Response:
        if expected is None:
            return _text(f"the drain endpoint is disabled: set {DRAIN_TOKEN_ENV}", 403)
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("utf-8"), expected):
            return _text("unauthorized", 401, **{"WWW-Authenticate": 'Bearer realm="drain"'})
        manager.set_draining(True)
        current_app.logger.warning("last_call: draining on request from %s", request.remote_addr)
        return _text("draining", 200)

    @blueprint.get("/metrics")
    def metrics() -> Response:
        # Text wins a tie (no Accept header, */*), as Prometheus expects.
        best = request.accept_mimetypes.best_match(["text/plain", "application/json"])
        if best == "application/json":
            return Response(manager.metrics("json"), mimetype="application/json")
        return Response(
            manager.metrics("prometheus"),
            content_type="text/plain; version=0.0.4; charset=utf-8",
        )

    return blueprint


def sse_stream(
    view: Optional[Callable[..., Any]] = None,
    *,
    manager=None,
    reconnect_retry_ms: int = DEFAULT_RECONNECT_RETRY_MS,
):
    """Decorates a Flask view that returns an SSE generator (or a Response
    whose body is one): the body is counted as one active stream while it is
    served, ends with a reconnect event in ClosingStreams, and the response
    gets ``text/event-stream``, ``X-Accel-Buffering: no`` and
    ``Cache-Control: no-cache``. Other responses (a 404, say) pass through."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = function(*args, **kwargs)
            runtime = manager if manager is not None else _default_manager()
            if isinstance(result, Response):
                if not result.is_streamed:
                    return result
                response = result
                body = response.response
            elif _is_stream(result):
                response = Response(mimetype="text/event-stream")
                body = result
            else:
                return result
            response.response = TrackedStream(
                body, runtime, request.environ, reconnect_retry_ms=reconnect_retry_ms
            )
            response.headers.update(SSE_HEADERS)
            return response

        return wrapper

    return decorate(view) if view is not None else decorate


def _is_stream(value: Any) -> bool:
    return hasattr(value, "__iter__") and not isinstance(value, (str, bytes, dict, list, tuple))
