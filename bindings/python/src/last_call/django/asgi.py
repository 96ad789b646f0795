"""Django's ASGI application under uvicorn with the runtime's sequence::

    # project/asgi.py
    import os
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    from last_call.django.asgi import get_asgi_application
    application = get_asgi_application()

Django's own handler answers no ``lifespan`` scope (uvicorn then runs
without one, and SIGTERM stops it at once); this one answers it with
``last_call.asgi.lifespan``: the runtime's SIGTERM handling, the probe
listener and its heartbeat, uvicorn stopped in Stopping, and ``uvicorn
--workers N`` sharing the pod's ports. The ``GS_*`` settings come from
``settings.py`` (the app's ``ready()``), keywords here winning.
"""

from __future__ import annotations

from typing import Any

from ..asgi import ASGIApp, Lifespan, with_lifespan


def get_asgi_application(app_lifespan: Lifespan | None = None, **settings: Any) -> ASGIApp:
    """Django's ASGI application (``django.setup()`` included), answering
    the lifespan protocol with the runtime's sequence (and
    ``app_lifespan``, the project's own start and end, inside it).
    ``settings``: any setting by keyword (docs/configuration.md)."""
    from django.core.asgi import get_asgi_application as django_application  # type: ignore[import-untyped]

    application: ASGIApp = django_application()
    return with_lifespan(application, app_lifespan, **settings)
