"""``path("", include("last_call.django.urls"))``: ``/readyz``,
``/healthz``, ``/drain`` (unless ``GS_DRAIN_ENDPOINT = False``) and
``/metrics`` (unless ``GS_METRICS_ENDPOINT = False``)."""

from __future__ import annotations

from django.urls import path  # type: ignore[import-untyped]

from . import _state, views

app_name = "last_call"

urlpatterns = [path("readyz", views.readyz, name="readyz"), path("healthz", views.healthz, name="healthz")]
if _state.flag("GS_DRAIN_ENDPOINT"):
    urlpatterns.append(path("drain", views.drain, name="drain"))
if _state.flag("GS_METRICS_ENDPOINT"):
    urlpatterns.append(path("metrics", views.metrics, name="metrics"))
