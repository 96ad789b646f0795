"""GracefulShutdownManager: the process-wide runtime, with the method names
the legacy Flask app already calls.

Constructing it is the first real call: it loads the native library (an
ImportError that says what was searched if it cannot) and validates the GS_*
configuration (ConfigError naming the variable), so that a bad setting
stops the host where it starts, never in a signal handler."""

from __future__ import annotations

import ctypes
import math
import sys
import threading
import time
from types import FrameType
from typing import Any, Callable

from . import _native
from ._arguments import metrics_format, seconds
from ._arguments import phase as _phase
from ._arguments import second_signal as _second_signal
from .errors import ArgumentTypeError
from .noop import NoopGracefulShutdownManager
from .phase import Phase, SecondSignal
from .protocol import PhaseCallback, ShutdownHook, ShutdownManager, SignalHandler
from .readiness import DEFAULT_CHECK_TIMEOUT, ReadinessCheck, ReadinessChecks, ReadinessReport
from .sse import StreamKind
from .status import Status

__all__ = ["GracefulShutdownManager", "NoopGracefulShutdownManager", "default_manager"]

_PHASES = tuple(Phase)  # indexing a tuple is far cheaper than Phase(int)

# Waits on the main thread return to Python this often so that a Ctrl-C
# (KeyboardInterrupt) or a Python signal handler is noticed. The wake itself
# is not delayed: the runtime still wakes the waiter the moment the
# condition holds.
_MAIN_THREAD_SLICE = 0.1


def _wait(native_call: Callable[[float], int], timeout: float | None) -> bool:
    """Runs a native wait, in short slices on the main thread only."""
    total = seconds(timeout)
    if threading.current_thread() is not threading.main_thread():
        return _native.check(native_call(total)) == Status.OK
    if math.isnan(total) or total < 0:
        return _native.check(native_call(total)) == Status.OK
    deadline = None if math.isinf(total) else time.monotonic() + total
    while True:
        left = math.inf if deadline is None else max(0.0, deadline - time.monotonic())
        status = _native.check(native_call(min(left, _MAIN_THREAD_SLICE)))
        if status == Status.OK:
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False


def _remove_one(registrations: list[tuple[Callable[..., Any], int]], callable_: Callable[..., Any]) -> int | None:
    """Pops the earliest registration of ``callable_`` (compared with ==, so
    that a bound method found again is the same callable); its key."""
    for index, (registered, key) in enumerate(registrations):
        if registered == callable_:
            del registrations[index]
            return key
    return None


class GracefulShutdownManager:
    """The process-wide last-call state.

    ``GracefulShutdownManager()`` always returns the same object: signals and
    the runtime are process-wide, so there is exactly one. Its first
    construction validates the GS_* environment and raises ConfigError
    naming a malformed or ill-fitting variable (no manager is kept then).
    """

    _instance: GracefulShutdownManager | None = None
    _instance_lock = threading.Lock()

    _lib: ctypes.CDLL
    _increment: Callable[[], int]
    _decrement: Callable[[], int]
    _current_phase: Callable[[], int]
    _lock: threading.Lock
    _phase_callbacks: list[tuple[Callable[..., Any], int]]
    _hooks: list[tuple[Callable[..., Any], int]]
    _readiness: ReadinessChecks
    _native_checks: dict[str, int]
    _signals_set_up: bool

    def __new__(cls) -> GracefulShutdownManager:
        with cls._instance_lock:
            if cls._instance is None:
                lib = _native.library()
                # Where the host starts: a configuration that cannot run
                # fails here, not at the first SIGTERM.
                validate_environment()
                instance = super().__new__(cls)
                instance._lib = lib
                # The hot path, bound once: a method call and one ctypes call
                # per operation, and check() only when the status is not OK.
                instance._increment = lib.gs_increment_active_streams
                instance._decrement = lib.gs_decrement_active_streams
                instance._current_phase = lib.gs_current_phase
                instance._lock = threading.Lock()
                instance._phase_callbacks = []
                instance._hooks = []
                instance._readiness = ReadinessChecks()
                instance._native_checks = {}
                instance._signals_set_up = False
                cls._instance = instance
            return cls._instance

    # ----- stream accounting (the names the legacy app uses) -----

    def increment_active_streams(self) -> None:
        """Counts one more open stream (lock-free in the runtime)."""
        status = self._increment()
        if status:
            _native.check(status)

    def decrement_active_streams(self) -> None:
        """Counts one stream as ended. Raises NoActiveStreamError (a
        ValueError) when none is active; the count stays at zero."""
        status = self._decrement()
        if status:
            _native.check(status)

    @property
    def active_streams(self) -> int:
        return int(self._lib.gs_active_streams())

    @property
    def streams_started_total(self) -> int:
        return int(self._lib.gs_streams_started_total())

    @property
    def streams_finished_total(self) -> int:
        return int(self._lib.gs_streams_finished_total())

    def stream_end_in(self, kind: StreamKind = StreamKind.RESUMABLE) -> float | None:
        """None while a stream of ``kind`` should go on (before
        ClosingStreams); then the seconds it may still run: for a pod-bound
        stream the time until the streams' last moment (streams_end, just
        before the hooks' budget), and for a resumable one the time until a freshly
        drawn, uniformly jittered moment of the close notice (the reconnect
        spread; 0 when all at once). Call it once per stream, then count
        down (the stream wrapper does)."""
        seconds = ctypes.c_double()
        _native.check(self._lib.gs_stream_end_in(kind.native, ctypes.byref(seconds)))
        return None if math.isinf(seconds.value) else seconds.value

    def set_reconnect_spread(self, all_at_once: bool = False) -> None:
        """``all_at_once=True`` nudges every resumable stream at the start
        of ClosingStreams instead of spreading them over the close notice."""
        _native.check(self._lib.gs_set_reconnect_spread(1 if all_at_once else 0))

    def wait_for_streams(self, timeout: float | None = None) -> bool:
        """Blocks until no stream is active (True) or ``timeout`` seconds
        pass (False). ``None`` waits without limit. The GIL is released while
        waiting; from the main thread, Ctrl-C still interrupts it."""
        return _wait(self._lib.gs_wait_for_streams, timeout)

    # ----- the phase -----

    def set_draining(self, draining: bool) -> None:
        """True: leave rotation without starting the shutdown sequence.
        False: back to serving; raises InvalidStateError once the sequence
        has started."""
        if not isinstance(draining, bool):
            raise ArgumentTypeError(f"draining must be a bool, not {type(draining).__name__}")
        _native.check(self._lib.gs_set_draining(draining))

    def is_draining(self) -> bool:
        """True in every phase but SERVING: not ready, refuse new tasks."""
        return bool(self._lib.gs_is_draining())

    @property
    def phase(self) -> Phase:
        return _PHASES[self._current_phase()]

    def wait_for_phase(self, phase: Phase | int, timeout: float | None = None) -> bool:
        """Blocks until the phase is at least ``phase`` (True) or ``timeout``
        seconds pass (False)."""
        target = _phase(phase)
        return _wait(lambda left: int(self._lib.gs_wait_for_phase(int(target), left)), timeout)

    def wait_for_shutdown(self, timeout: float | None = None) -> bool:
        """Blocks until draining has begun, by a signal, ``begin_shutdown``
        or ``set_draining(True)`` (True), or ``timeout`` seconds pass
        (False). ``None`` waits without limit. Called from the main thread
        it stays responsive to Ctrl-C and to Python signal handlers."""
        return self.wait_for_phase(Phase.DRAINING, timeout)

    # ----- the shutdown sequence -----

    def install_signal_handlers(
        self,
        *,
        drain_delay: float | None = None,
        shutdown_timeout: float | None = None,
        close_notice: float | None = None,
        exit_watchdog: float | None = None,
        second_signal: SecondSignal | str | None = None,
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
        _native.check(self._lib.gs_config_from_env(ctypes.byref(config)))
        for field, value in (
            ("drain_delay_seconds", drain_delay),
            ("shutdown_timeout_seconds", shutdown_timeout),
            ("close_notice_seconds", close_notice),
            ("exit_watchdog_seconds", exit_watchdog),
        ):
            if value is not None:
                setattr(config, field, seconds(value, field.replace("_seconds", "")))
        if second_signal is not None:
            config.second_signal = int(_second_signal(second_signal))
        config.handle_sigint = bool(handle_sigint)
        _native.check(self._lib.gs_install_signal_handlers(ctypes.byref(config)))

    def begin_shutdown(self) -> None:
        """Starts the shutdown sequence as SIGTERM would. Idempotent."""
        _native.check(self._lib.gs_begin_shutdown())

    @property
    def handle_sigterm(self) -> SignalHandler:
        """A Python signal handler that starts the sequence:
        ``signal.signal(SIGTERM, manager.handle_sigterm)``.

        Reading it sets the manager up for it, once per process: the GS_*
        configuration is validated (ConfigError naming the variable, at
        start-up rather than at the first SIGTERM) and the exit watchdog is
        armed. (``install_signal_handlers`` does all this without needing
        the main thread; prefer it, or ``last_call.waitress.serve``.)"""
        with self._lock:
            if not self._signals_set_up:
                self._set_up_for_signals()
                self._signals_set_up = True
        return self._on_sigterm

    def _set_up_for_signals(self) -> None:
        _native.check(_native.function("gs_configure")(None))
        _native.check(_native.function("gs_arm_exit_watchdog")())

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:  # noqa: ARG002 - signal.signal's signature
        # A signal handler never raises: an exception here would surface in
        # whatever the main thread was doing, at the one moment the pod
        # must drain. The configuration was validated at start-up (and made
        # the sequence's by reading handle_sigterm); what is left is said in
        # one line.
        try:
            self.begin_shutdown()
        except Exception as error:  # noqa: BLE001 - see above
            print(f"last_call: SIGTERM: the shutdown sequence could not start: {error}", file=sys.stderr, flush=True)

    def on_phase(self, callback: PhaseCallback) -> PhaseCallback:
        """Calls ``callback(from_phase, to_phase)`` at every phase change,
        on the runtime's delivery thread, in order, one call at a time. A
        callback that blocks delays only the callbacks after it, never the
        shutdown sequence or the exit watchdog; inside it, blocking waits
        raise ReentrantCallError at once. Usable as a
        decorator; returns the callback (pass it to ``remove_phase_callback``).
        Registering the same callback twice calls it twice, and takes two
        removals."""
        if not callable(callback):
            raise ArgumentTypeError("callback must be callable")
        key = _native.add_phase_callback(lambda old, new: callback(_PHASES[old], _PHASES[new]))
        with self._lock:
            self._phase_callbacks.append((callback, key))
        return callback

    def remove_phase_callback(self, callback: PhaseCallback) -> bool:
        """Unregisters one registration of ``callback``. False if it was not
        registered as a phase callback.

        * A callback removed before its delivery starts is never called.
        * Called from outside any callback, this returns once the callback
          is not running, and it is never called again.
        * Called from inside a callback (to remove itself, even on its first
          delivery, or another one), it returns at once and never
          deadlocks; the removed callback is not called again after the
          call in flight, if any, returns."""
        with self._lock:
            key = _remove_one(self._phase_callbacks, callback)
        return key is not None and _native.remove_phase_callback(key)

    def register_shutdown_hook(self, name: str, hook: ShutdownHook) -> ShutdownHook:
        """Runs ``hook(seconds_given)`` in STOPPING, after the hooks
        registered before it, on a thread of its own; it returns whether it
        finished (None counts as finished). Each hook is given an equal share
        of the time left when it starts (at least GS_HOOK_BUDGET_SECONDS in
        total); one still running at the end of its share is left behind,
        and the next keeps its own share. Returns the hook."""
        if not isinstance(name, str):
            raise ArgumentTypeError(f"name must be a str, not {type(name).__name__}")
        if not callable(hook):
            raise ArgumentTypeError("hook must be callable")
        key = _native.add_shutdown_hook(name, hook)
        with self._lock:
            self._hooks.append((hook, key))
        return hook

    def remove_shutdown_hook(self, hook: ShutdownHook) -> bool:
        """Unregisters one registration of ``hook``. False if it was not
        registered as a shutdown hook (or has already run)."""
        with self._lock:
            key = _remove_one(self._hooks, hook)
        return key is not None and _native.remove_shutdown_hook(key)

    # ----- readiness -----

    def add_readiness_check(self, name: str, check: ReadinessCheck, *, timeout: float = DEFAULT_CHECK_TIMEOUT) -> None:
        """Adds (or replaces) a named check that ``/readyz`` consults while
        serving: the process is ready only if it returns truthy within
        ``timeout``. Both the blueprint's ``/readyz`` and the native probe
        listener's consult it (the latter calls it on one of its own threads,
        which takes the GIL for the call)."""
        self._readiness.add(name, check, timeout=timeout)
        with self._lock:
            previous = self._native_checks.pop(name, None)
            if previous is not None:
                _native.remove_readiness_check(previous)
            self._native_checks[name] = _native.add_readiness_check(name, check, timeout)

    def remove_readiness_check(self, name: str) -> bool:
        with self._lock:
            key = self._native_checks.pop(name, None)
            if key is not None:
                _native.remove_readiness_check(key)
        return self._readiness.remove(name)

    # ----- the probe listener and the heartbeat -----

    def start_probe_listener(self, addr: str | None = None) -> tuple[str, int]:
        """Starts the runtime's own probe listener (``/readyz``, ``/healthz``,
        ``/metrics``, ``/drain``), answered from a native thread that needs
        neither a Waitress thread nor the GIL. ``addr`` is ``"host:port"``
        (port 0: a free port); None reads ``GS_PROBE_ADDR``. The drain token
        comes from ``GS_DRAIN_TOKEN``, the heartbeat staleness from
        ``GS_HEARTBEAT_STALE_SECONDS``. Prints ``probes on http://HOST:PORT``
        and returns ``(host, port)``. ConfigError names ``GS_PROBE_ADDR`` for
        a malformed address or a port in use; once per process."""
        bound = _native.start_probe_listener(addr)
        host, _, port = bound.rpartition(":")
        return host.strip("[]"), int(port)

    def heartbeat(self) -> None:
        """The liveness heartbeat: call it from the loop that matters. Once
        one was sent, the probe listener's ``/healthz`` answers 503 when the
        last is older than ``GS_HEARTBEAT_STALE_SECONDS`` (default 10)."""
        self._lib.gs_heartbeat()

    def check_readiness(self) -> ReadinessReport:
        """Not ready while draining; otherwise the checks decide."""
        if self.is_draining():
            return ReadinessReport(ready=False, failures={"phase": self.phase.label})
        return self._readiness.run()

    # ----- metrics -----

    def metrics(self, format: str = "prometheus") -> str:  # noqa: A002 - the natural name
        """The runtime's figures: Prometheus text ("prometheus") or "json"."""
        return _native.render_metrics(metrics_format(format))

    # ----- testing -----

    def _forget_registrations(self) -> None:
        """After the runtime has been reset: drop what Python still holds."""
        with self._lock:
            self._phase_callbacks.clear()
            self._hooks.clear()
            self._native_checks.clear()
            self._signals_set_up = False
        self._readiness.clear()

    def __repr__(self) -> str:
        return f"<GracefulShutdownManager phase={self.phase.label} active_streams={self.active_streams}>"


def validate_environment(**overrides: float | None) -> None:
    """Raises ConfigError naming the GS_* variable that is malformed, or
    the durations that do not fit together, with ``overrides`` (keywords of
    ``install_signal_handlers``: drain_delay, shutdown_timeout,
    close_notice, exit_watchdog) in place of their variables. The runtime's
    own parser and rules (``gs_config_from_env``, ``gs_config_resolve``),
    so they cannot drift apart; nothing is configured."""
    lib = _native.library()
    config = _native.Config()
    _native.check(lib.gs_config_from_env(ctypes.byref(config)))
    for name, value in overrides.items():
        if value is not None and name in _DURATION_FIELDS:
            setattr(config, _DURATION_FIELDS[name], seconds(value, name))
    _native.check(lib.gs_config_resolve(ctypes.byref(config)))


#: install_signal_handlers' keywords -> gs_config's fields.
_DURATION_FIELDS = {
    "drain_delay": "drain_delay_seconds",
    "shutdown_timeout": "shutdown_timeout_seconds",
    "close_notice": "close_notice_seconds",
    "exit_watchdog": "exit_watchdog_seconds",
}


def default_manager() -> GracefulShutdownManager:
    """The process-wide manager (loads the native library on first use)."""
    return GracefulShutdownManager()


def _conforms(manager: GracefulShutdownManager) -> ShutdownManager:
    # mypy checks here that the real manager implements the Protocol.
    return manager
