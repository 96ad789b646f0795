"""The task API and, on the app's port, last_call's probes (the probe
port, GS_PROBE_ADDR, stays the recommended one)."""

from django.urls import include, path

urlpatterns = [
    path("api/", include("tasks.urls")),
    path("", include("last_call.django.urls")),
]
