"""Test-only switches, off by default, refused in production configuration
(a server listening beyond loopback, as the manifest's HOST=0.0.0.0 does).

SSE_TEST_HANG_SHUTDOWN_HOOK=1 registers a shutdown hook that never returns,
so that the rolling-update harness can show the pod still exits before
SIGKILL (the runtime leaves the hook behind; the exit watchdog ends the
process with its line)."""

from __future__ import annotations

import os
import threading

from last_call import ShutdownManager
from settings import SettingsError

HANG_SHUTDOWN_HOOK = "SSE_TEST_HANG_SHUTDOWN_HOOK"
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def install(manager: ShutdownManager, host: str) -> None:
    value = os.environ.get(HANG_SHUTDOWN_HOOK)
    if value in (None, "", "0"):
        return
    if value != "1":
        raise SettingsError(f"invalid {HANG_SHUTDOWN_HOOK}={value!r}: expected 1 or 0")
    if host not in LOOPBACK:
        raise SettingsError(f"{HANG_SHUTDOWN_HOOK} is a test-only switch, refused with HOST={host!r} (not loopback)")
    manager.register_shutdown_hook("test-hung-hook", lambda _seconds: threading.Event().wait())
