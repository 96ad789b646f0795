"""How the runtime reaches the loop: the manager in use, and a call handed
from one of the runtime's threads (its delivery thread, a hook's thread)
onto the loop."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Callable

from ..interface import ShutdownManager
from ..manager import default_manager


def manager_or_default(manager: ShutdownManager | None) -> ShutdownManager:
    return manager if manager is not None else default_manager()


def call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., Any], *args: Any) -> None:
    """From the runtime's delivery thread onto ``loop``; a loop already
    closed (the app is gone) is not an error there."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)
