"""The example as an ASGI application for uvicorn (run.py starts it):
Django's handler with last_call's lifespan (the runtime's SIGTERM
handling, the probe listener, uvicorn stopped in Stopping). With
LAST_CALL_DISABLED=1, Django's own handler: the baseline."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

if os.environ.get("LAST_CALL_DISABLED") == "1":
    from django.core.asgi import get_asgi_application
else:
    from last_call.django.asgi import get_asgi_application

application = get_asgi_application()
