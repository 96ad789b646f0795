"""last_call.testing's test-only switch (SSE_TEST_HANG_SHUTDOWN_HOOK): off
by default, a hook that never returns when on, refused by name for a bad
value or beyond loopback. (What the runtime does with such a hook, a real
pod exiting before SIGKILL, is the rolling harness's hung-hook scenario.)"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from last_call.testing import HANG_SHUTDOWN_HOOK, check_test_switches, install_test_switches


class RecordingManager:
    """Records the hooks registered on it (the switch's only effect)."""

    def __init__(self) -> None:
        self.hooks: list[tuple[str, Any]] = []

    def register_shutdown_hook(self, name: str, hook: Any) -> Any:
        self.hooks.append((name, hook))
        return hook


@pytest.mark.parametrize("value", [None, "", "0"])
def test_off_by_default_and_when_zero(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv(HANG_SHUTDOWN_HOOK, raising=False)
    else:
        monkeypatch.setenv(HANG_SHUTDOWN_HOOK, value)
    manager = RecordingManager()
    assert check_test_switches("0.0.0.0") is False  # off: even a production host is fine
    install_test_switches(manager, "127.0.0.1")  # type: ignore[arg-type]
    assert manager.hooks == []


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_on_it_registers_a_hook_that_does_not_return(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    monkeypatch.setenv(HANG_SHUTDOWN_HOOK, "1")
    manager = RecordingManager()
    install_test_switches(manager, host)  # type: ignore[arg-type]
    assert [name for name, _ in manager.hooks] == ["test-hung-hook"]
    _, hook = manager.hooks[0]
    runner = threading.Thread(target=hook, args=(1.0,), daemon=True)
    runner.start()
    runner.join(timeout=0.5)
    assert runner.is_alive(), "the hook returned"


@pytest.mark.parametrize(("value", "host"), [("1", "0.0.0.0"), ("1", "10.0.0.5"), ("yes", "127.0.0.1"), ("2", "::1")])
def test_refused_by_name(monkeypatch: pytest.MonkeyPatch, value: str, host: str) -> None:
    monkeypatch.setenv(HANG_SHUTDOWN_HOOK, value)
    manager = RecordingManager()
    with pytest.raises(ValueError, match=HANG_SHUTDOWN_HOOK):
        install_test_switches(manager, host)  # type: ignore[arg-type]
    assert manager.hooks == []
