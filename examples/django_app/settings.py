"""The example's own settings from the environment (the GS_* ones are
last_call's, read by the runtime and Django's settings.py), validated at
start: a bad value stops the app with status 2 and an error naming it."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass


class SettingsError(ValueError):
    """A setting has a value the app cannot run with."""


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    #: "gunicorn" (WSGI, gthread workers; the default) or "uvicorn" (Django's
    #: ASGI handler).
    server: str
    #: gunicorn --threads per worker.
    threads: int
    heartbeat_seconds: float
    task_workers: int
    max_tasks: int
    keep_finished_seconds: float
    max_body_bytes: int


def _integer(name: str, default: int, low: int, high: int) -> int:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        value = int(text.strip())
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise SettingsError(f"invalid {name}={text!r}: expected an integer from {low} to {high}")
    return value


def _seconds(name: str, default: float) -> float:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        value = float(text.strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise SettingsError(f"invalid {name}={text!r}: expected a positive, finite number of seconds")
    return value


def _server() -> str:
    value = os.environ.get("SERVER", "gunicorn")
    if value not in ("gunicorn", "uvicorn"):
        raise SettingsError(f"invalid SERVER={value!r}: expected gunicorn or uvicorn")
    return value


def from_env() -> Settings:
    return Settings(
        host=os.environ.get("HOST", "127.0.0.1"),
        port=_integer("PORT", 8080, 0, 65535),
        server=_server(),
        threads=_integer("THREADS", 16, 2, 10_000),
        heartbeat_seconds=_seconds("SSE_HEARTBEAT_SECONDS", 1.0),
        task_workers=_integer("TASK_WORKERS", 8, 1, 1_000),
        max_tasks=_integer("MAX_TASKS", 500, 1, 1_000_000),
        keep_finished_seconds=_seconds("TASK_KEEP_SECONDS", 300.0),
        max_body_bytes=_integer("MAX_BODY_BYTES", 64 * 1024, 1, 16 * 1024 * 1024),
    )
