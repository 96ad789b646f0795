"""What the Django app keeps: the manager its views and responses count
on, and the settings ``settings.py`` gave."""

from __future__ import annotations

import threading
from typing import Any

from .. import _environ
from .. import settings as settings_
from ..interface import ShutdownManager
from ..manager import GracefulShutdownManager, default_manager

_lock = threading.Lock()
_manager: ShutdownManager | None = None
_given: dict[str, settings_.Given] = {}

DRAIN_TOKEN = "GS_DRAIN_TOKEN"


def use_manager(manager: ShutdownManager | None) -> None:
    """Makes ``manager`` the one the app counts on (a no-op manager in
    tests); None: the process-wide one again."""
    global _manager
    with _lock:
        _manager = manager


def current_manager() -> ShutdownManager:
    """The manager the app counts on: the one given to ``use_manager``,
    else the process-wide one."""
    with _lock:
        chosen = _manager
    return chosen if chosen is not None else default_manager()


def _django_settings() -> dict[str, Any]:
    from django.conf import settings  # type: ignore[import-untyped]

    return {name: getattr(settings, name) for name in dir(settings) if name.startswith(("GS_", "LAST_CALL_"))}


def configure() -> None:
    """Reads the ``GS_*`` names of ``settings.py`` (a ``LAST_CALL_*`` one is
    refused naming its new name, an unknown ``GS_*`` one reported with the
    closest) and hands them to the runtime, checked by its own rules: a bad
    value stops the project where it loads (``ConfigError`` naming it)."""
    global _given
    given = settings_.from_config(_django_settings(), describe="settings.{key}")
    settings_.report_unknown_environment()
    settings_.take(given, native=isinstance(current_manager(), GracefulShutdownManager))
    with _lock:
        _given = given


def given() -> dict[str, settings_.Given]:
    with _lock:
        return dict(_given)


def text(name: str) -> str | None:
    """The value in force for ``name``: ``settings.py``'s, else the
    environment's."""
    chosen = given().get(name)
    if chosen is not None:
        return chosen.text
    if name == DRAIN_TOKEN:
        return _environ.secret(name)
    return settings_.package_value(name)


def flag(name: str) -> bool:
    value = text(name)
    return True if value is None else settings_.flag(value)
