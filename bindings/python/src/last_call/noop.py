"""NoopGracefulShutdownManager: the manager's interface with no native
library and no signals, for apps that inject a manager in their unit tests.

It simulates the runtime faithfully enough for those tests to mean
something: the same counts and errors, the same phase rules (Draining ->
Serving only before the sequence has started), waits that honour their
timeouts, phase callbacks and shutdown hooks that run, in order. Time does
not pass on its own: the simulated sequence has no drain delay, goes to
Stopping when the last stream ends (or at once with none open), and
``close_streams()`` / ``expire()`` stand in for the deadline. Callbacks and
hooks run on the thread that caused the change, not on a runtime thread.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from types import FrameType
from typing import Any, Callable

from ._arguments import checked_seconds, metrics_format
from ._arguments import phase as _phase
from ._arguments import second_signal as _second_signal
from .errors import (
    ArgumentTypeError,
    InvalidStateError,
    NoActiveStreamError,
    ReentrantCallError,
)
from .phase import Phase, SecondSignal
from .protocol import PhaseCallback, ShutdownHook, ShutdownManager, SignalHandler
from .readiness import DEFAULT_CHECK_TIMEOUT, ReadinessCheck, ReadinessChecks, ReadinessReport
from .sse import StreamKind
from .status import Status

logger = logging.getLogger("last_call")

#: As the runtime's default GS_SHUTDOWN_TIMEOUT_SECONDS.
DEFAULT_SHUTDOWN_TIMEOUT = 25.0

_METRICS = (
    # name, type, help
    ("gs_active_streams", "gauge", "Streams open now."),
    ("gs_phase", "gauge", "Shutdown phase: 0 serving, 1 draining, 2 closing_streams, 3 stopping, 4 stopped."),
    ("gs_draining", "gauge", "1 when the process is not ready for new work (any phase but serving)."),
    ("gs_streams_started_total", "counter", "Streams begun since the process started."),
    ("gs_streams_finished_total", "counter", "Streams ended since the process started."),
    ("gs_shutdown_started_timestamp_seconds", "gauge", "Unix time the shutdown sequence started (0: not started)."),
    (
        "gs_shutdown_duration_seconds",
        "gauge",
        "Seconds from the start of the shutdown sequence to Stopped (0: not stopped).",
    ),
    (
        "gs_streams_closed_by_deadline_total",
        "counter",
        "Streams still open when ClosingStreams began, asked to reconnect elsewhere.",
    ),
    (
        "gs_hub_slow_clients_disconnected_total",
        "counter",
        "Stream hub clients disconnected for falling too far behind.",
    ),
)


class NoopGracefulShutdownManager:
    """Same interface as GracefulShutdownManager (the ShutdownManager
    Protocol), simulated in plain Python; one independent instance per
    construction."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._active = 0
        self._started = 0
        self._finished = 0
        self._phase = Phase.SERVING
        self._sequence_started = False
        self._installed = False
        self._shutdown_timeout = DEFAULT_SHUTDOWN_TIMEOUT
        self._started_at = 0.0
        self._started_monotonic = 0.0
        self._duration = 0.0
        self._closed_by_deadline = 0
        self._callbacks: list[PhaseCallback] = []
        self._hooks: list[tuple[str, ShutdownHook]] = []
        self._readiness = ReadinessChecks()
        self._last_heartbeat: float | None = None
        self._in_callback = threading.local()

    # ----- streams -----

    def increment_active_streams(self) -> None:
        with self._lock:
            self._active += 1
            self._started += 1

    def stream_end_in(self, kind: StreamKind = StreamKind.RESUMABLE) -> float | None:  # noqa: ARG002 - same signature as the real one
        """None before ClosingStreams, then 0: the no-op manager has no
        timeline to spread over, so every stream ends at once."""
        return None if self._phase < Phase.CLOSING_STREAMS else 0.0

    def set_reconnect_spread(self, all_at_once: bool = False) -> None:
        """Accepted and ignored: the no-op manager always ends at once."""
        del all_at_once

    def decrement_active_streams(self) -> None:
        with self._lock:
            if self._active == 0:
                error = NoActiveStreamError("a stream ended without a matching begin (no stream is active)")
                error.status = Status.NO_ACTIVE_STREAM
                raise error
            self._active -= 1
            self._finished += 1
            self._lock.notify_all()
            finish = self._active == 0 and self._sequence_started and self._phase < Phase.STOPPING
        if finish:
            self._finish()

    @property
    def active_streams(self) -> int:
        return self._active

    @property
    def streams_started_total(self) -> int:
        return self._started

    @property
    def streams_finished_total(self) -> int:
        return self._finished

    def wait_for_streams(self, timeout: float | None = None) -> bool:
        return self._wait(lambda: self._active == 0, timeout)

    # ----- the phase -----

    def set_draining(self, draining: bool) -> None:
        if not isinstance(draining, bool):
            raise ArgumentTypeError(f"draining must be a bool, not {type(draining).__name__}")
        with self._lock:
            if not draining and self._sequence_started:
                error = InvalidStateError("the shutdown sequence has started; draining cannot be turned off")
                error.status = Status.SEQUENCE_STARTED
                raise error
            if self._sequence_started or self._phase == (Phase.DRAINING if draining else Phase.SERVING):
                return
        self._move(Phase.DRAINING if draining else Phase.SERVING)

    def is_draining(self) -> bool:
        return self._phase != Phase.SERVING

    @property
    def phase(self) -> Phase:
        return self._phase

    def wait_for_phase(self, phase: Phase | int, timeout: float | None = None) -> bool:
        target = _phase(phase)
        return self._wait(lambda: self._phase >= target, timeout)

    def wait_for_shutdown(self, timeout: float | None = None) -> bool:
        return self.wait_for_phase(Phase.DRAINING, timeout)

    # ----- the simulated sequence -----

    def install_signal_handlers(
        self,
        *,
        drain_delay: float | None = None,
        shutdown_timeout: float | None = None,
        close_notice: float | None = None,
        exit_watchdog: float | None = None,
        second_signal: SecondSignal | str | None = None,
        handle_sigint: bool = True,  # noqa: ARG002 - the Protocol's signature
    ) -> None:
        """Checks the arguments as the real one does; installs nothing."""
        for name, value in (
            ("drain_delay", drain_delay),
            ("close_notice", close_notice),
            ("exit_watchdog", exit_watchdog),
        ):
            if value is not None:
                checked_seconds(value, name)
        if second_signal is not None:
            _second_signal(second_signal)
        with self._lock:
            if self._installed:
                error = InvalidStateError("signal handlers are already installed in this process")
                error.status = Status.ALREADY_INSTALLED
                raise error
            self._installed = True
            if shutdown_timeout is not None:
                self._shutdown_timeout = checked_seconds(shutdown_timeout, "shutdown_timeout")

    def begin_shutdown(self) -> None:
        with self._lock:
            if self._sequence_started:
                return
            self._sequence_started = True
            self._started_at = time.time()
            self._started_monotonic = time.monotonic()
            was_serving = self._phase == Phase.SERVING
            finish = self._active == 0
        if was_serving:
            self._move(Phase.DRAINING)
        if finish:
            self._finish()

    @property
    def handle_sigterm(self) -> SignalHandler:
        return self._on_sigterm

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:  # noqa: ARG002
        self.begin_shutdown()

    def close_streams(self) -> None:
        """Simulates the close notice: Draining -> ClosingStreams, once the
        sequence has started and streams are still open."""
        with self._lock:
            if not self._sequence_started or self._phase != Phase.DRAINING:
                return
            self._closed_by_deadline = self._active
        self._move(Phase.CLOSING_STREAMS)

    def expire(self) -> None:
        """Simulates the deadline: Stopping whatever is still open, then the
        hooks, then Stopped."""
        with self._lock:
            if not self._sequence_started:
                return
        self._finish()

    def _finish(self) -> None:
        with self._lock:
            if self._phase >= Phase.STOPPING:
                return
        self._move(Phase.STOPPING)
        with self._lock:
            hooks = list(self._hooks)
            self._hooks.clear()
        deadline = self._started_monotonic + self._shutdown_timeout
        for name, hook in hooks:
            left = max(0.0, deadline - time.monotonic())
            self._call_out(hook, left, what=f"shutdown hook {name!r}")
        with self._lock:
            self._duration = time.monotonic() - self._started_monotonic
        self._move(Phase.STOPPED)

    def _move(self, to: Phase) -> None:
        with self._lock:
            old = self._phase
            if old == to:
                return
            self._phase = to
            self._lock.notify_all()
            callbacks = list(self._callbacks)
        for callback in callbacks:
            self._call_out(callback, old, to, what=f"phase callback {callback!r}")

    def _call_out(self, function: Callable[..., Any], *args: Any, what: str) -> Any:
        """Calls a callback or hook as the runtime does: errors logged, and
        blocking waits refused inside it."""
        self._in_callback.active = True
        try:
            return function(*args)
        except BaseException:
            logger.exception("last_call: %s failed", what)
            return None
        finally:
            self._in_callback.active = False

    def _wait(self, condition: Callable[[], bool], timeout: float | None) -> bool:
        limit = checked_seconds(timeout)
        if getattr(self._in_callback, "active", False):
            error = ReentrantCallError("a blocking wait was called from inside a phase callback or shutdown hook")
            error.status = Status.REENTRANT
            raise error
        with self._lock:
            return self._lock.wait_for(condition, None if math.isinf(limit) else limit)

    # ----- registrations -----

    def on_phase(self, callback: PhaseCallback) -> PhaseCallback:
        if not callable(callback):
            raise ArgumentTypeError("callback must be callable")
        with self._lock:
            self._callbacks.append(callback)
        return callback

    def remove_phase_callback(self, callback: PhaseCallback) -> bool:
        with self._lock:
            return _remove_one(self._callbacks, callback)

    def register_shutdown_hook(self, name: str, hook: ShutdownHook) -> ShutdownHook:
        if not isinstance(name, str):
            raise ArgumentTypeError(f"name must be a str, not {type(name).__name__}")
        if not callable(hook):
            raise ArgumentTypeError("hook must be callable")
        with self._lock:
            self._hooks.append((name, hook))
        return hook

    def remove_shutdown_hook(self, hook: ShutdownHook) -> bool:
        with self._lock:
            for index, (_, registered) in enumerate(self._hooks):
                if registered == hook:
                    del self._hooks[index]
                    return True
        return False

    # ----- readiness and metrics -----

    def add_readiness_check(self, name: str, check: ReadinessCheck, *, timeout: float = DEFAULT_CHECK_TIMEOUT) -> None:
        self._readiness.add(name, check, timeout=timeout)

    def remove_readiness_check(self, name: str) -> bool:
        return self._readiness.remove(name)

    def check_readiness(self) -> ReadinessReport:
        if self.is_draining():
            return ReadinessReport(ready=False, failures={"phase": self.phase.label})
        return self._readiness.run()

    def start_probe_listener(self, addr: str | None = None) -> tuple[str, int]:  # noqa: ARG002
        """The no-op manager has no native listener to start."""
        raise InvalidStateError("the no-op manager has no probe listener; use GracefulShutdownManager")

    def heartbeat(self) -> None:
        """Records the time, as the runtime does (see ``heartbeat_age``)."""
        with self._lock:
            self._last_heartbeat = time.monotonic()

    @property
    def heartbeat_age(self) -> float | None:
        """Seconds since the last heartbeat (None: never)."""
        with self._lock:
            beat = self._last_heartbeat
        return None if beat is None else time.monotonic() - beat

    def metrics(self, format: str = "prometheus") -> str:  # noqa: A002
        """The same figures, names and types as the runtime's rendering."""
        code = metrics_format(format)
        with self._lock:
            values: dict[str, float] = {
                "gs_active_streams": self._active,
                "gs_phase": int(self._phase),
                "gs_draining": int(self._phase != Phase.SERVING),
                "gs_streams_started_total": self._started,
                "gs_streams_finished_total": self._finished,
                "gs_shutdown_started_timestamp_seconds": self._started_at,
                "gs_shutdown_duration_seconds": self._duration,
                "gs_streams_closed_by_deadline_total": self._closed_by_deadline,
                # The no-op manager has no stream hub.
                "gs_hub_slow_clients_disconnected_total": 0,
            }
            phase_name = self._phase.label
        if code == 1:
            figures: dict[str, Any] = {"phase_name": phase_name}
            figures.update({name[len("gs_") :]: value for name, value in values.items()})
            return json.dumps(figures, separators=(",", ":"))
        lines = []
        for name, kind, help_text in _METRICS:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {values[name]}"]
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        return f"<NoopGracefulShutdownManager phase={self.phase.label} active_streams={self.active_streams}>"


def _remove_one(registrations: list[PhaseCallback], callable_: PhaseCallback) -> bool:
    for index, registered in enumerate(registrations):
        if registered == callable_:
            del registrations[index]
            return True
    return False


def _conforms(manager: NoopGracefulShutdownManager) -> ShutdownManager:
    # mypy checks here that the no-op manager implements the Protocol.
    return manager
