"""NoopGracefulShutdownManager: the manager's interface (ShutdownManager,
interface.py) over a simulated runtime, with no native library and no
signals, for apps that inject a manager in their unit tests.

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

import itertools
import json
import logging
import math
import threading
import time
from typing import Any, Callable

from ._arguments import checked_seconds
from .errors import InvalidStateError
from .interface import ShutdownHook, ShutdownManager
from .phase import Phase, SecondSignal
from .readiness import ReadinessCheck
from .sse import StreamKind
from .status import Status, error_for

logger = logging.getLogger("last_call")

#: As the runtime's default GS_SHUTDOWN_TIMEOUT_SECONDS.
DEFAULT_SHUTDOWN_TIMEOUT = 25.0

#: The runtime's metrics, as it renders them (a test compares this table
#: with the native library's rendering, help texts included).
METRICS = (
    # name, type, help
    ("gs_active_streams", "gauge", "Streams open now."),
    ("gs_active_work", "gauge", "Work the shutdown waits for beside the streams (tasks), counted now."),
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
        "Streams still open when ClosingStreams began, asked to finish.",
    ),
    (
        "gs_log_lines_dropped_total",
        "counter",
        "Diagnostic lines not written because stderr could not take them (full, closed, no reader).",
    ),
    (
        "gs_hub_slow_clients_disconnected_total",
        "counter",
        "Stream hub clients dropped for taking no bytes for the stall time.",
    ),
    (
        "gs_hub_events_skipped_total",
        "counter",
        "Events stream hub subscribers skipped (told gap) for falling behind their channel.",
    ),
    (
        "gs_hub_store_degraded",
        "gauge",
        "1 while the stream hub's shared store is unreachable (streams degraded to this pod).",
    ),
    (
        "gs_hub_store_degraded_seconds",
        "gauge",
        "How long the stream hub's shared store has been unreachable (0: healthy).",
    ),
)


class _SimulatedRuntime:
    """The Runtime (interface.py) in plain Python: the same counts,
    statuses and phase rules as the native one, on the caller's thread."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._active = 0
        self._work = 0
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
        self._keys = itertools.count(1)
        self._callbacks: dict[int, Callable[[int, int], None]] = {}
        self._hooks: dict[int, tuple[str, ShutdownHook]] = {}
        self.last_heartbeat: float | None = None
        self._in_callback = threading.local()
        # What the last failing status of each thread was about.
        self._error = threading.local()

    def _fail(self, status: Status, message: str) -> int:
        self._error.message = message
        return int(status)

    def check(self, status: int) -> int:
        if status == Status.OK or status == Status.TIMED_OUT:
            return status
        raise error_for(status, getattr(self._error, "message", "") or Status(status).name.lower())

    # ----- streams -----

    def increment_active_streams(self) -> int:
        with self._lock:
            self._active += 1
            self._started += 1
        return Status.OK

    def decrement_active_streams(self) -> int:
        with self._lock:
            if self._active == 0:
                return self._fail(
                    Status.NO_ACTIVE_STREAM, "a stream ended without a matching begin (no stream is active)"
                )
            self._active -= 1
            self._finished += 1
            self._lock.notify_all()
            finish = self._idle() and self._sequence_started and self._phase < Phase.STOPPING
        if finish:
            self._finish()
        return Status.OK

    def _idle(self) -> bool:
        """No stream and no work (the caller holds the lock)."""
        return self._active == 0 and self._work == 0

    def begin_work(self) -> int:
        with self._lock:
            self._work += 1
        return Status.OK

    def end_work(self) -> int:
        with self._lock:
            if self._work == 0:
                return self._fail(Status.NO_ACTIVE_STREAM, "work ended without a matching begin (none is counted)")
            self._work -= 1
            self._lock.notify_all()
            finish = self._idle() and self._sequence_started and self._phase < Phase.STOPPING
        if finish:
            self._finish()
        return Status.OK

    def active_work(self) -> int:
        return self._work

    def active_streams(self) -> int:
        return self._active

    def streams_started_total(self) -> int:
        return self._started

    def streams_finished_total(self) -> int:
        return self._finished

    def stream_end_in(self, kind: StreamKind) -> float:  # noqa: ARG002 - the Runtime's signature
        # No timeline to spread over: every stream ends at once.
        return math.inf if self._phase < Phase.CLOSING_STREAMS else 0.0

    def stream_ending_sent(self, kind: StreamKind) -> None:
        """Nothing to count: the no-op manager writes no shutdown log."""
        del kind

    def set_reconnect_spread(self, all_at_once: bool) -> None:
        """Accepted and ignored: the simulation always ends at once."""
        del all_at_once

    def wait_for_streams(self, timeout: float) -> int:
        return self._wait(lambda: self._active == 0, timeout)

    # ----- the phase -----

    def current_phase(self) -> int:
        return self._phase

    def set_draining(self, draining: bool) -> None:
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

    def wait_for_phase(self, phase: int, timeout: float) -> int:
        return self._wait(lambda: self._phase >= phase, timeout)

    def _wait(self, condition: Callable[[], bool], timeout: float) -> int:
        if math.isnan(timeout) or timeout < 0:
            return self._fail(
                Status.INVALID_ARGUMENT, f"timeout must be a non-negative number of seconds or None, not {timeout!r}"
            )
        if getattr(self._in_callback, "active", False):
            return self._fail(
                Status.REENTRANT, "a blocking wait was called from inside a phase callback or shutdown hook"
            )
        with self._lock:
            held = self._lock.wait_for(condition, None if math.isinf(timeout) else timeout)
        return Status.OK if held else Status.TIMED_OUT

    # ----- the simulated sequence -----

    def install_signal_handlers(
        self,
        durations: dict[str, float],
        second_signal: SecondSignal | None,  # noqa: ARG002 - checked by the manager; nothing to install
        handle_sigint: bool,  # noqa: ARG002 - nothing to install
    ) -> None:
        """Checks the durations as the real one does; installs nothing."""
        checked = {
            name: checked_seconds(value, name) for name, value in durations.items() if name != "exit_watchdog_status"
        }
        with self._lock:
            if self._installed:
                error = InvalidStateError("signal handlers are already installed in this process")
                error.status = Status.ALREADY_INSTALLED
                raise error
            self._installed = True
            self._shutdown_timeout = checked.get("shutdown_timeout_seconds", self._shutdown_timeout)

    def begin_shutdown(self) -> None:
        with self._lock:
            if self._sequence_started:
                return
            self._sequence_started = True
            self._started_at = time.time()
            self._started_monotonic = time.monotonic()
            was_serving = self._phase == Phase.SERVING
            finish = self._idle()
        if was_serving:
            self._move(Phase.DRAINING)
        if finish:
            self._finish()

    def set_up_for_signals(self) -> None:
        """Nothing to set up: no signal reaches the simulation."""

    def close_streams(self) -> None:
        with self._lock:
            if not self._sequence_started or self._phase != Phase.DRAINING:
                return
            self._closed_by_deadline = self._active
        self._move(Phase.CLOSING_STREAMS)

    def expire(self) -> None:
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
            hooks = list(self._hooks.values())
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
            callbacks = list(self._callbacks.values())
        for callback in callbacks:
            self._call_out(callback, int(old), int(to), what=f"phase callback {callback!r}")

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

    # ----- registrations -----

    def add_phase_callback(self, callback: Callable[[int, int], None]) -> int:
        key = next(self._keys)
        with self._lock:
            self._callbacks[key] = callback
        return key

    def remove_phase_callback(self, key: int) -> bool:
        with self._lock:
            return self._callbacks.pop(key, None) is not None

    def add_shutdown_hook(self, name: str, hook: ShutdownHook) -> int:
        key = next(self._keys)
        with self._lock:
            self._hooks[key] = (name, hook)
        return key

    def remove_shutdown_hook(self, key: int) -> bool:
        with self._lock:
            return self._hooks.pop(key, None) is not None

    # ----- readiness, probes, metrics -----

    def add_readiness_check(self, name: str, check: ReadinessCheck, timeout: float) -> None:
        """No probe listener of its own: the manager's checks are all."""

    def remove_readiness_check(self, name: str) -> None:
        """As add_readiness_check."""

    def start_probe_listener(self, addr: str | None) -> str:  # noqa: ARG002 - the Runtime's signature
        raise InvalidStateError("the no-op manager has no probe listener; use GracefulShutdownManager")

    def heartbeat(self) -> None:
        with self._lock:
            self.last_heartbeat = time.monotonic()

    def render_metrics(self, format_code: int) -> str:
        with self._lock:
            values: dict[str, float] = {
                "gs_active_streams": self._active,
                "gs_active_work": self._work,
                "gs_phase": int(self._phase),
                "gs_draining": int(self._phase != Phase.SERVING),
                "gs_streams_started_total": self._started,
                "gs_streams_finished_total": self._finished,
                "gs_shutdown_started_timestamp_seconds": self._started_at,
                "gs_shutdown_duration_seconds": self._duration,
                "gs_streams_closed_by_deadline_total": self._closed_by_deadline,
                # The no-op manager writes no diagnostics of its own.
                "gs_log_lines_dropped_total": 0,
                # The no-op manager has no stream hub.
                "gs_hub_slow_clients_disconnected_total": 0,
                "gs_hub_events_skipped_total": 0,
                "gs_hub_store_degraded": 0,
                "gs_hub_store_degraded_seconds": 0,
            }
            phase_name = self._phase.label
        if format_code == 1:
            figures: dict[str, Any] = {"phase_name": phase_name}
            figures.update({name[len("gs_") :]: value for name, value in values.items()})
            return json.dumps(figures, separators=(",", ":"))
        lines = []
        for name, kind, help_text in METRICS:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {values[name]}"]
        return "\n".join(lines) + "\n"

    def forget_registrations(self) -> None:
        """Never reset: each no-op manager is a fresh simulation."""


class NoopGracefulShutdownManager(ShutdownManager):
    """The manager's interface over a simulated runtime; one independent
    instance per construction. Time does not pass on its own:
    ``close_streams()`` and ``expire()`` stand in for the close notice and
    the deadline."""

    def __init__(self) -> None:
        self._simulation = _SimulatedRuntime()
        self._attach(self._simulation)

    def close_streams(self) -> None:
        """Simulates the close notice: Draining -> ClosingStreams, once the
        sequence has started and streams are still open."""
        self._simulation.close_streams()

    def expire(self) -> None:
        """Simulates the deadline: Stopping whatever is still open, then the
        hooks, then Stopped."""
        self._simulation.expire()

    @property
    def heartbeat_age(self) -> float | None:
        """Seconds since the last heartbeat (None: never)."""
        beat = self._simulation.last_heartbeat
        return None if beat is None else time.monotonic() - beat
