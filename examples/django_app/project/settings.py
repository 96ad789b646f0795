"""Django's settings for the example. last_call's settings go here under
their one name (GS_*), like any Django setting; each may be overridden by
the environment variable of the same name only when it is left out here
(docs/configuration.md: keyword, then settings.py, then environment). The
example leaves them to the environment, so that the e2e tests and the
rolling harness set them per run; see docs/django.md for one set here."""

import os
from pathlib import Path

from settings import from_env

EXAMPLE = from_env()

BASE_DIR = Path(__file__).resolve().parent.parent
# The example keeps no session, no user and no form: a fixed key does no
# harm here, and a real project reads its own from a Secret.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-a-secret")
DEBUG = False
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "last_call.django",
    "tasks",
]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"
ASGI_APPLICATION = "project.asgi.application"
DATABASES = {}
USE_TZ = True
TIME_ZONE = "UTC"
APPEND_SLASH = False
# The task API reads the body itself, up to MAX_BODY_BYTES (413 beyond).
DATA_UPLOAD_MAX_MEMORY_SIZE = EXAMPLE.max_body_bytes

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout"}},
    "root": {"handlers": ["stdout"], "level": "INFO"},
    "loggers": {"django.request": {"level": "ERROR"}},
}
