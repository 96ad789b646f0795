"""The app's settings from the environment, validated at start: a bad value
stops the app with an error naming the setting, never a silent default or a
server that starts and answers nothing."""

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
    threads: int
    heartbeat_seconds: float
    task_workers: int
    max_tasks: int
    keep_finished_seconds: float
    max_body_bytes: int
    #: "thread": each stream holds a Waitress thread (the default); "hub":
    #: streams are held by the runtime's stream hub (GS_STREAM_ADDR,
    #: GS_STREAM_SECRET), tasks publish to it.
    streams: str = "thread"
    #: Where browsers reach the hub (absolute, or a path such as /hub that
    #: an ingress routes to it); unset: the hub's own address.
    public_stream_base_url: str | None = None
    #: gunicorn worker processes (serve_gunicorn.py; Waitress runs one).
    #: More than one needs STREAMS=hub: a task lives in the worker that
    #: started it, and only the hub (on a shared store) reaches its
    #: subscribers from any worker.
    workers: int = 1


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


def _streams() -> str:
    value = os.environ.get("STREAMS", "thread")
    if value not in ("thread", "hub"):
        raise SettingsError(f"invalid STREAMS={value!r}: expected thread or hub")
    if value == "hub":
        for name in ("GS_STREAM_ADDR", "GS_STREAM_SECRET"):
            if not os.environ.get(name):
                raise SettingsError(f"STREAMS=hub needs {name}")
    return value


def _workers(streams: str) -> int:
    workers = _integer("WORKERS", 1, 1, 64)
    if workers > 1 and streams != "hub":
        raise SettingsError(
            f"WORKERS={workers} needs STREAMS=hub: with a thread per stream, a task's stream "
            "request could reach a worker that does not hold the task"
        )
    return workers


def from_env() -> Settings:
    streams = _streams()
    return Settings(
        streams=streams,
        workers=_workers(streams),
        public_stream_base_url=os.environ.get("PUBLIC_STREAM_BASE_URL") or None,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=_integer("PORT", 8080, 0, 65535),
        threads=_integer("THREADS", 16, 1, 10_000),
        heartbeat_seconds=_seconds("SSE_HEARTBEAT_SECONDS", 1.0),
        task_workers=_integer("TASK_WORKERS", 8, 1, 1_000),
        max_tasks=_integer("MAX_TASKS", 500, 1, 1_000_000),
        keep_finished_seconds=_seconds("TASK_KEEP_SECONDS", 300.0),
        max_body_bytes=_integer("MAX_BODY_BYTES", 64 * 1024, 1, 16 * 1024 * 1024),
    )
