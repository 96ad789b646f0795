"""The probes and controls on the app's port (the probe port,
``GS_PROBE_ADDR``, stays the recommended one: it answers whatever the
app's workers are doing): the same answers as the Flask blueprint's and
the runtime's own listener's."""

from __future__ import annotations

import hmac
import logging

from django.http import HttpRequest, HttpResponse  # type: ignore[import-untyped]
from django.views.decorators.csrf import csrf_exempt  # type: ignore[import-untyped]
from django.views.decorators.http import require_GET, require_POST  # type: ignore[import-untyped]

from . import _state

logger = logging.getLogger("last_call.django")


def _text(body: str, status: int = 200, **headers: str) -> HttpResponse:
    response = HttpResponse(body + "\n", status=status, content_type="text/plain")
    for name, value in headers.items():
        response[name] = value
    return response


@require_GET  # type: ignore[untyped-decorator]
def readyz(_request: HttpRequest) -> HttpResponse:
    """200 ``ok`` while serving and every readiness check passes; 503
    ``draining`` once the drain began; 503 ``not ready: <checks>``."""
    report = _state.current_manager().check_readiness()
    if report.ready:
        return _text("ok")
    if "phase" in report.failures:
        return _text("draining", 503)
    return _text("not ready: " + ", ".join(sorted(report.failures)), 503)


@require_GET  # type: ignore[untyped-decorator]
def healthz(_request: HttpRequest) -> HttpResponse:
    """200 ``alive``, also while draining."""
    return _text("alive")


@csrf_exempt  # type: ignore[untyped-decorator]
@require_POST  # type: ignore[untyped-decorator]
def drain(request: HttpRequest) -> HttpResponse:
    """Leave rotation (Draining, no shutdown sequence): needs
    ``Authorization: Bearer $GS_DRAIN_TOKEN`` (403 when none is set)."""
    token = _state.text(_state.DRAIN_TOKEN)
    if not token:
        return _text("the drain endpoint is disabled: set GS_DRAIN_TOKEN", 403)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        return _text("unauthorized", 401, **{"WWW-Authenticate": 'Bearer realm="drain"'})
    _state.current_manager().set_draining(True)
    logger.warning("last_call: draining on request from %s", request.META.get("REMOTE_ADDR"))
    return _text("draining")


@require_GET  # type: ignore[untyped-decorator]
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text, or JSON for ``Accept: application/json``."""
    accept = request.headers.get("Accept", "")
    manager = _state.current_manager()
    if "application/json" in accept and "text/plain" not in accept:
        return HttpResponse(manager.metrics("json"), content_type="application/json")
    return HttpResponse(manager.metrics("prometheus"), content_type="text/plain; version=0.0.4; charset=utf-8")
