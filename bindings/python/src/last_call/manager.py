"""GracefulShutdownManager: the process-wide runtime, with the method names
the legacy Flask app already calls."""

from __future__ import annotations

import ctypes
import math
import threading
import time
from typing import Callable, Optional, Union

from . import _native
from .phase import Phase, SecondSignal

# The hot path, bound once: a method call and one ctypes call per operation,
# and check() only when the status is not GS_OK (0).
_increment = _native.lib.gs_increment_active_streams
_decrement = _native.lib.gs_decrement_active_streams
_current_phase = _native.lib.gs_current_phase
_PHASES = tuple(Phase)  # indexing a tuple is far cheaper than Phase(int)

# Waits on the main thread return to Python this often so that a Ctrl-C
# (KeyboardInterrupt) is noticed. The wake itself is not delayed: the runtime
# still wakes the waiter the moment the condition holds.
_MAIN_THREAD_SLICE = 0.1


def _wait(native_call: Callable[[float], int], timeout: Optional[float]) -> bool:
    """Runs a native wait, in short slices on the main thread only."""
    total = _native.seconds(timeout)
    if threading.current_thread() is not threading.main_thread():
        return _native.check(native_call(total)) == _native.OK
    if math.isnan(total) or total < 0:
        return _native.check(native_call(total)) == _native.OK
    deadline = None if math.isinf(total) else time.monotonic() + total
    while True:
        left = math.inf if deadline is None else max(0.0, deadline - time.monotonic())
        status = _native.check(native_call(min(left, _MAIN_THREAD_SLICE)))
        if status == _native.OK:
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False


class GracefulShutdownManager:
    """The process-wide last-call state.

    ``GracefulShutdownManager()`` always returns the same object: signals and
    the runtime are process-wide, so there is exactly one.
    """

    _instance: Optional["GracefulShutdownManager"] = None
    _instance_lock = threading.Lock()

    def __new__(cls) -> "GracefulShutdownManager":
        with cls._instance_lock:
            if cls._instance is None:
                instance = super().__new__(cls)
                # id(callable) -> registry key, for removal.
                instance._registrations = {}
                cls._instance = instance
            return cls._instance

    # ----- stream accounting (the names the legacy app uses) -----

    def increment_active_streams(self) -> None:
        """Counts one more open stream (lock-free in the runtime)."""
        status = _increment()
        if status:
            _native.check(status)

    def decrement_active_streams(self) -> None:
        """Counts one stream as ended. Raises NoActiveStreamError (a
        ValueError) when none is active; the count stays at zero."""
        status = _decrement()
        if status:
            _native.check(status)

    @property
    def active_streams(self) -> int:
        return _native.lib.gs_active_streams()

    @property
    def streams_started_total(self) -> int:
        return _native.lib.gs_streams_started_total()

    @property
    def streams_finished_total(self) -> int:
        return _native.lib.gs_streams_finished_total()

    def wait_for_streams(self, timeout: Optional[float] = None) -> bool:
        """Blocks until no stream is active (True) or ``timeout`` seconds
        pass (False). ``None`` waits without limit. The GIL is released while
        waiting; from the main thread, Ctrl-C still interrupts it."""
        return _wait(_native.lib.gs_wait_for_streams, timeout)

    # ----- the phase -----

    def set_draining(self, draining: bool) -> None:
        """True: leave rotation without starting the shutdown sequence.
        False: back to serving; raises InvalidStateError once the sequence
        has started."""
        if not isinstance(draining, bool):
            raise TypeError(f"draining must be a bool, not {type(draining).__name__}")
        _native.check(_native.lib.gs_set_draining(draining))

    def is_draining(self) -> bool:
        """True in every phase but SERVING: not ready, refuse new tasks."""
        return bool(_native.lib.gs_is_draining())

    @property
    def phase(self) -> Phase:
        return _PHASES[_current_phase()]

    def wait_for_phase(self, phase: Union[Phase, int], timeout: Optional[float] = None) -> bool:
        """Blocks until the phase is at least ``phase`` (True) or ``timeout``
        seconds pass (False)."""
        target = Phase(phase)
        return _wait(lambda left: _native.lib.gs_wait_for_phase(int(target), left), timeout)

    # ----- the shutdown sequence -----

    def install_signal_handlers(
        self,
        *,
        drain_delay: Optional[float] = None,
        shutdown_timeout: Optional[float] = None,
        close_notice: Optional[float] = None,
        exit_watchdog: Optional[float] = None,
        second_signal: Optional[Union[SecondSignal, str]] = None,
        handle_sigint: bool = True,
    ) -> None:
        """Makes SIGTERM (and SIGINT) start the shutdown sequence. Each
        duration, in seconds, defaults to its GS_* environment variable (see
        the README); a malformed value raises ConfigError naming it. Raises
        InvalidStateError if already installed in this process.

        Python-level handlers installed *before* this call keep running
        (they are chained); a later ``signal.signal(SIGTERM, ...)`` replaces
        the runtime's handler.
        """
        config = _native.Config()
        _native.check(_native.lib.gs_config_from_env(ctypes.byref(config)))
        for field, value in (
            ("drain_delay_seconds", drain_delay),
            ("shutdown_timeout_seconds", shutdown_timeout),
            ("close_notice_seconds", close_notice),
            ("exit_watchdog_seconds", exit_watchdog),
        ):
            if value is not None:
                setattr(config, field, _native.seconds(value, field.replace("_seconds", "")))
        if second_signal is not None:
            if isinstance(second_signal, str):
                try:
                    second_signal = SecondSignal[second_signal.upper()]
                except KeyError:
                    raise ValueError(
                        f"second_signal must be 'ignore', 'exit' or 'sigint_exits', not {second_signal!r}"
                    ) from None
            config.second_signal = int(SecondSignal(second_signal))
        config.handle_sigint = bool(handle_sigint)
        _native.check(_native.lib.gs_install_signal_handlers(ctypes.byref(config)))

    def begin_shutdown(self) -> None:
        """Starts the shutdown sequence as SIGTERM would. Idempotent."""
        _native.check(_native.lib.gs_begin_shutdown())

    def handle_sigterm(self, signum, frame) -> None:  # noqa: ARG002 - signal.signal's signature
        """A Python signal handler: ``signal.signal(SIGTERM,
        manager.handle_sigterm)`` starts the sequence. (Prefer
        ``install_signal_handlers``: it does not need the main thread.)"""
        self.begin_shutdown()

    def on_phase(self, callback: Callable[[Phase, Phase], None]) -> Callable[[Phase, Phase], None]:
        """Calls ``callback(from_phase, to_phase)`` at every phase change,
        on the runtime's thread, in order, one call at a time. Usable as a
        decorator; returns the callback (pass it to ``remove_phase_callback``)."""
        if not callable(callback):
            raise TypeError("callback must be callable")
        key = _native.add_phase_callback(lambda old, new: callback(Phase(old), Phase(new)))
        self._registrations[id(callback)] = key
        return callback

    def remove_phase_callback(self, callback: Callable) -> bool:
        """Unregisters; when this returns the callback is not running and
        will not be called again. False if it was not registered."""
        key = self._registrations.pop(id(callback), None)
        return key is not None and _native.remove_phase_callback(key)

    def register_shutdown_hook(self, name: str, hook: Callable[[float], object]) -> Callable[[float], object]:
        """Runs ``hook(seconds_left)`` in STOPPING, after the hooks registered
        before it, on a thread of its own; it returns whether it finished
        (None counts as finished). One still running at the deadline is left
        behind. Returns the hook."""
        if not callable(hook):
            raise TypeError("hook must be callable")
        key = _native.add_shutdown_hook(name, hook)
        self._registrations[id(hook)] = key
        return hook

    def remove_shutdown_hook(self, hook: Callable) -> bool:
        key = self._registrations.pop(id(hook), None)
        return key is not None and _native.remove_shutdown_hook(key)

    # ----- metrics -----

    def metrics(self, format: str = "prometheus") -> str:  # noqa: A002 - the natural name
        """The runtime's figures: Prometheus text ("prometheus") or "json"."""
        codes = {"prometheus": 0, "json": 1}
        if format not in codes:
            raise ValueError(f"format must be 'prometheus' or 'json', not {format!r}")
        return _native.render_metrics(codes[format])

    def __repr__(self) -> str:
        return f"<GracefulShutdownManager phase={self.phase.label} active_streams={self.active_streams}>"


class NoopGracefulShutdownManager:
    """Same interface, no native runtime and no signals: for apps that
    inject a manager in their unit tests. It keeps a plain count and a phase
    so that code under test still sees the effect of its calls."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._active = 0
        self._started = 0
        self._phase = Phase.SERVING

    def increment_active_streams(self) -> None:
        with self._lock:
            self._active += 1
            self._started += 1

    def decrement_active_streams(self) -> None:
        from .errors import NoActiveStreamError

        with self._lock:
            if self._active == 0:
                raise NoActiveStreamError("a stream ended without a matching begin (no stream is active)")
            self._active -= 1
            self._lock.notify_all()

    @property
    def active_streams(self) -> int:
        return self._active

    @property
    def streams_started_total(self) -> int:
        return self._started

    @property
    def streams_finished_total(self) -> int:
        return self._started - self._active

    def wait_for_streams(self, timeout: Optional[float] = None) -> bool:
        limit = _native.seconds(timeout)
        if math.isnan(limit) or limit < 0:
            raise ValueError(f"invalid timeout {timeout}")
        with self._lock:
            return self._lock.wait_for(lambda: self._active == 0, None if math.isinf(limit) else limit)

    def set_draining(self, draining: bool) -> None:
        if not isinstance(draining, bool):
            raise TypeError(f"draining must be a bool, not {type(draining).__name__}")
        self._phase = Phase.DRAINING if draining else Phase.SERVING

    def is_draining(self) -> bool:
        return self._phase != Phase.SERVING

    @property
    def phase(self) -> Phase:
        return self._phase

    def wait_for_phase(self, phase, timeout: Optional[float] = None) -> bool:
        return self._phase >= Phase(phase)

    def install_signal_handlers(self, **durations) -> None:
        return None

    def begin_shutdown(self) -> None:
        self._phase = Phase.DRAINING

    def handle_sigterm(self, signum, frame) -> None:  # noqa: ARG002
        self.begin_shutdown()

    def on_phase(self, callback):
        return callback

    def remove_phase_callback(self, callback) -> bool:
        return False

    def register_shutdown_hook(self, name: str, hook):
        return hook

    def remove_shutdown_hook(self, hook) -> bool:
        return False

    def metrics(self, format: str = "prometheus") -> str:  # noqa: A002
        return ""
