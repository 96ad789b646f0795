"""A one-file Django project for test_host_settings.py: ``settings.py``'s
values from ``DJANGO_SETTINGS_JSON`` (JSON), last_call's app and URLs.

* ``gunicorn -c python:last_call.gunicorn settings_django:application``;
* ``python settings_django.py``: Django's ASGI under uvicorn, with
  ``last_call.django.asgi.get_asgi_application(**LIFESPAN_KEYWORDS)``.
"""

import contextlib
import json
import os
import socket

import django
from django.conf import settings

settings.configure(
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=["last_call.django"],
    ALLOWED_HOSTS=["*"],
    **json.loads(os.environ.get("DJANGO_SETTINGS_JSON", "{}")),
)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.urls import include, path  # noqa: E402

urlpatterns = [path("", include("last_call.django.urls"))]
application = get_wsgi_application()

if __name__ == "__main__":
    import uvicorn
    from last_call.django.asgi import get_asgi_application

    sock = socket.socket()
    sock.bind((os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "0"))))
    sock.listen(128)

    @contextlib.asynccontextmanager
    async def announce(_app):
        print(f"serving on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
        yield

    asgi = get_asgi_application(announce, **json.loads(os.environ.get("LIFESPAN_KEYWORDS", "{}")))
    uvicorn.Server(uvicorn.Config(asgi, lifespan="on", log_level="info")).run(sockets=[sock])
