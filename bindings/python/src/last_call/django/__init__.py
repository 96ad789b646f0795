"""Django integration: an app for ``INSTALLED_APPS``, the probes on the
app's port, and a streaming response that counts and ends each stream by
its kind, alike under gunicorn (WSGI) and uvicorn (Django's ASGI)::

    # settings.py
    INSTALLED_APPS = [..., "last_call.django"]
    GS_SHUTDOWN_TIMEOUT_SECONDS = 25          # any setting, by its one name

    # urls.py
    urlpatterns = [..., path("", include("last_call.django.urls"))]

    # views.py
    from last_call.django import EventStreamResponse
    from last_call.sse import StreamKind

    def feed(request):
        return EventStreamResponse(events(), kind=StreamKind.RESUMABLE)

Serve it with ``gunicorn -c python:last_call.gunicorn project.wsgi`` or
under uvicorn with ``last_call.django.asgi.get_asgi_application()`` in
``project/asgi.py`` (Django's ASGI handler speaks no lifespan; this one
does, and runs the runtime's sequence there). docs/django.md.
"""

from __future__ import annotations

from ._state import current_manager, use_manager
from .responses import EventStreamResponse

__all__ = ["EventStreamResponse", "current_manager", "use_manager"]
