"""The app's settings from the environment, validated at start: a bad value
stops the app with status 2 and an error naming the setting."""

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


def from_env() -> Settings:
    return Settings(
        host=os.environ.get("HOST", "127.0.0.1"),
        port=_integer("PORT", 8080, 0, 65535),
        heartbeat_seconds=_seconds("SSE_HEARTBEAT_SECONDS", 1.0),
        task_workers=_integer("TASK_WORKERS", 8, 1, 1_000),
        max_tasks=_integer("MAX_TASKS", 500, 1, 1_000_000),
        keep_finished_seconds=_seconds("TASK_KEEP_SECONDS", 300.0),
        max_body_bytes=_integer("MAX_BODY_BYTES", 64 * 1024, 1, 16 * 1024 * 1024),
    )
