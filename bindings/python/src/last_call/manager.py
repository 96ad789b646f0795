"""GracefulShutdownManager: the process-wide runtime, with the method names
the legacy Flask app already calls (every method is ShutdownManager's, in
interface.py; this is the native runtime it runs on).

Constructing it is the first real call: it loads the native library (an
ImportError that says what was searched if it cannot) and validates the GS_*
configuration (ConfigError naming the variable), so that a bad setting
stops the host where it starts, never in a signal handler."""

from __future__ import annotations

import ctypes
import threading
from typing import Callable

from . import _native, settings
from ._arguments import seconds
from .interface import ShutdownHook, ShutdownManager
from .noop import NoopGracefulShutdownManager
from .phase import SecondSignal
from .readiness import ReadinessCheck
from .sse import StreamKind

__all__ = ["GracefulShutdownManager", "NoopGracefulShutdownManager", "default_manager"]


class _NativeRuntime:
    """The Runtime (interface.py) over the native library: the ctypes
    functions themselves where the C ABI's shape is the interface's."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._lib = lib
        self.increment_active_streams: Callable[[], int] = lib.gs_increment_active_streams
        self.decrement_active_streams: Callable[[], int] = lib.gs_decrement_active_streams
        self.current_phase: Callable[[], int] = lib.gs_current_phase
        self.wait_for_streams: Callable[[float], int] = lib.gs_wait_for_streams
        self.wait_for_phase: Callable[[int, float], int] = lib.gs_wait_for_phase
        self._lock = threading.Lock()
        self._checks: dict[str, int] = {}
        self._signals_set_up = False
        # The shutdown log on stderr, on by default in every Python host so
        # that the host's default logging shows the shutdown as it happens
        # (GS_SHUTDOWN_LOG=0 turns it off; the runtime reads it).
        _native.check(lib.gs_set_shutdown_log(1))

    def check(self, status: int) -> int:
        return _native.check(status)

    def active_streams(self) -> int:
        return int(self._lib.gs_active_streams())

    def streams_started_total(self) -> int:
        return int(self._lib.gs_streams_started_total())

    def begin_work(self) -> int:
        return int(self._lib.gs_work_begin())

    def end_work(self) -> int:
        return int(self._lib.gs_work_end())

    def active_work(self) -> int:
        return int(self._lib.gs_active_work())

    def streams_finished_total(self) -> int:
        return int(self._lib.gs_streams_finished_total())

    def stream_end_in(self, kind: StreamKind) -> float:
        left = ctypes.c_double()
        _native.check(self._lib.gs_stream_end_in(kind.native, ctypes.byref(left)))
        return left.value

    def stream_ending_sent(self, kind: StreamKind) -> None:
        _native.check(self._lib.gs_stream_ending_sent(kind.native))

    def set_reconnect_spread(self, all_at_once: bool) -> None:
        _native.check(self._lib.gs_set_reconnect_spread(1 if all_at_once else 0))

    def set_draining(self, draining: bool) -> None:
        _native.check(self._lib.gs_set_draining(draining))

    def is_draining(self) -> bool:
        return bool(self._lib.gs_is_draining())

    def install_signal_handlers(
        self, durations: dict[str, float], second_signal: SecondSignal | None, handle_sigint: bool
    ) -> None:
        config = _config(durations)
        if second_signal is not None:
            config.second_signal = int(second_signal)
        config.handle_sigint = handle_sigint
        _native.check(self._lib.gs_install_signal_handlers(ctypes.byref(config)))
        # Read now: a value handed over later could not take effect.
        settings.mark_read(settings.GROUPS["sequence"], "the runtime's signal handling (installed)")

    def begin_shutdown(self) -> None:
        _native.check(self._lib.gs_begin_shutdown())

    def set_up_for_signals(self) -> None:
        with self._lock:
            if not self._signals_set_up:
                _native.check(_native.function("gs_configure")(None))
                _native.check(_native.function("gs_arm_exit_watchdog")())
                self._signals_set_up = True
                settings.mark_read(settings.GROUPS["sequence"], "the runtime's signal handling (handle_sigterm)")

    def add_phase_callback(self, callback: Callable[[int, int], None]) -> int:
        return _native.add_phase_callback(callback)

    def remove_phase_callback(self, key: int) -> bool:
        return _native.remove_phase_callback(key)

    def add_shutdown_hook(self, name: str, hook: ShutdownHook) -> int:
        return _native.add_shutdown_hook(name, hook)

    def remove_shutdown_hook(self, key: int) -> bool:
        return _native.remove_shutdown_hook(key)

    def add_readiness_check(self, name: str, check: ReadinessCheck, timeout: float) -> None:
        # Called under the manager's lock.
        previous = self._checks.pop(name, None)
        if previous is not None:
            _native.remove_readiness_check(previous)
        self._checks[name] = _native.add_readiness_check(name, check, timeout)

    def remove_readiness_check(self, name: str) -> None:
        key = self._checks.pop(name, None)
        if key is not None:
            _native.remove_readiness_check(key)

    def start_probe_listener(self, addr: str | None) -> str:
        bound = _native.start_probe_listener(addr)
        settings.mark_read(settings.GROUPS["probes"], "the probe listener (started)")
        return bound

    def heartbeat(self) -> None:
        self._lib.gs_heartbeat()

    def render_metrics(self, format_code: int) -> str:
        return _native.render_metrics(format_code)

    def forget_registrations(self) -> None:
        self._checks.clear()
        with self._lock:
            self._signals_set_up = False


class GracefulShutdownManager(ShutdownManager):
    """The process-wide last-call state.

    ``GracefulShutdownManager()`` always returns the same object: signals and
    the runtime are process-wide, so there is exactly one. Its first
    construction validates the GS_* environment and raises ConfigError
    naming a malformed or ill-fitting variable (no manager is kept then).
    """

    _instance: GracefulShutdownManager | None = None
    _instance_lock = threading.Lock()

    def __new__(cls) -> GracefulShutdownManager:
        with cls._instance_lock:
            if cls._instance is None:
                lib = _native.library()
                # Where the host starts: a configuration that cannot run
                # fails here, not at the first SIGTERM.
                validate_environment()
                instance = super().__new__(cls)
                instance._attach(_NativeRuntime(lib))
                cls._instance = instance
            return cls._instance


def _config(durations: dict[str, float]) -> _native.Config:
    """The GS_* configuration in force (the environment, with the values
    handed over from code), with ``durations`` (install_signal_handlers'
    keywords: gs_config's field names) in place of their settings."""
    config = _native.Config()
    _native.check(_native.library().gs_config_from_env(ctypes.byref(config)))
    for name, value in durations.items():
        if name not in _CONFIG_FIELDS:
            raise TypeError(f"unknown setting of the shutdown sequence: {name}")
        setattr(config, name, value)
    return config


def validate_environment(**overrides: float | None) -> None:
    """Raises ConfigError naming the GS_* setting that is malformed, or the
    durations that do not fit together, with ``overrides``
    (install_signal_handlers' keywords: shutdown_timeout_seconds,
    drain_delay_seconds, close_notice_seconds, hook_budget_seconds,
    exit_watchdog_seconds) in place of their settings. The runtime's own
    parser and rules (``gs_config_from_env``, ``gs_config_resolve``), so
    they cannot drift apart; nothing is configured."""
    given = {name: value for name, value in overrides.items() if value is not None}
    config = _config({name: seconds(value, name) for name, value in given.items()})
    _native.check(_native.library().gs_config_resolve(ctypes.byref(config)))


#: install_signal_handlers' keywords, gs_config's fields.
_CONFIG_FIELDS = (
    "drain_delay_seconds",
    "shutdown_timeout_seconds",
    "close_notice_seconds",
    "hook_budget_seconds",
    "exit_watchdog_seconds",
    "exit_watchdog_status",
)


def default_manager() -> GracefulShutdownManager:
    """The process-wide manager (loads the native library on first use)."""
    return GracefulShutdownManager()
