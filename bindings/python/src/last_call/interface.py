"""ShutdownManager: every public method of the manager, written once.

The real manager (``GracefulShutdownManager``, manager.py) and the no-op one
(``NoopGracefulShutdownManager``, noop.py) are this class over two runtimes:
the native one (the process-wide runtime, through ctypes) and a simulated
one (plain Python, for unit tests that inject a manager). What differs
between them is only what a ``Runtime`` does; argument checks, the waits'
slicing, the registrations' bookkeeping and the readiness report are here.

Annotate an injected manager with ``ShutdownManager``: both managers are
one.
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any, Callable, Optional, Protocol

from ._arguments import metrics_format, seconds
from ._arguments import phase as _phase
from ._arguments import second_signal as _second_signal
from .errors import ArgumentTypeError, ConfigError
from .phase import Phase, SecondSignal
from .readiness import DEFAULT_CHECK_TIMEOUT, ReadinessCheck, ReadinessChecks, ReadinessReport
from .sse import StreamKind
from .status import Status

__all__ = ["PhaseCallback", "Runtime", "ShutdownHook", "ShutdownManager", "SignalHandler"]

PhaseCallback = Callable[[Phase, Phase], None]
#: A shutdown hook gets the seconds left before the deadline and returns
#: whether it finished (None counts as finished).
ShutdownHook = Callable[[float], object]
SignalHandler = Callable[[int, Optional[FrameType]], None]

_PHASES = tuple(Phase)  # indexing a tuple is far cheaper than Phase(int)

# Waits on the main thread return to Python this often so that a Ctrl-C
# (KeyboardInterrupt) or a Python signal handler is noticed. The wake itself
# is not delayed: the runtime still wakes the waiter the moment the
# condition holds.
_MAIN_THREAD_SLICE = 0.1


class Runtime(Protocol):
    """What a manager runs on: the native runtime or a simulated one.

    The hot path and the waits are shaped as the C ABI is (a status, 0 for
    OK, that the manager passes to ``check`` only when it is not OK), so
    that the real manager calls the ctypes functions themselves; the rest
    returns values and raises the package's errors."""

    @property
    def increment_active_streams(self) -> Callable[[], int]:
        """gs_increment_active_streams: a status."""
        ...

    @property
    def decrement_active_streams(self) -> Callable[[], int]:
        """gs_decrement_active_streams: a status."""
        ...

    @property
    def current_phase(self) -> Callable[[], int]:
        """gs_current_phase: the phase's number."""
        ...

    def check(self, status: int) -> int:
        """Raises the error for a failing status; returns OK or TIMED_OUT."""
        ...

    def wait_for_streams(self, timeout: float) -> int: ...
    def begin_work(self) -> int: ...
    def end_work(self) -> int: ...
    def active_work(self) -> int: ...
    def wait_for_phase(self, phase: int, timeout: float) -> int: ...
    def active_streams(self) -> int: ...
    def streams_started_total(self) -> int: ...
    def streams_finished_total(self) -> int: ...

    def stream_end_in(self, kind: StreamKind) -> float:
        """Infinity before ClosingStreams."""
        ...

    def stream_ending_sent(self, kind: StreamKind) -> None:
        """gs_stream_ending_sent: counted for the shutdown log."""
        ...

    def set_reconnect_spread(self, all_at_once: bool) -> None: ...
    def set_draining(self, draining: bool) -> None: ...
    def is_draining(self) -> bool: ...

    def install_signal_handlers(
        self, durations: dict[str, float], second_signal: SecondSignal | None, handle_sigint: bool
    ) -> None:
        """``durations``: install_signal_handlers' keywords that were given
        (``gs_config``'s field names, the exit status among them)."""
        ...

    def begin_shutdown(self) -> None: ...

    def set_up_for_signals(self) -> None:
        """Before ``handle_sigterm`` is handed out."""
        ...

    def add_phase_callback(self, callback: Callable[[int, int], None]) -> int:
        """A key for ``remove_phase_callback``."""
        ...

    def remove_phase_callback(self, key: int) -> bool: ...
    def add_shutdown_hook(self, name: str, hook: ShutdownHook) -> int: ...
    def remove_shutdown_hook(self, key: int) -> bool: ...

    def add_readiness_check(self, name: str, check: ReadinessCheck, timeout: float) -> None:
        """Adds or replaces the check of that name where the runtime's own
        probe listener consults it."""
        ...

    def remove_readiness_check(self, name: str) -> None: ...
    def start_probe_listener(self, addr: str | None) -> str: ...
    def heartbeat(self) -> None: ...
    def render_metrics(self, format_code: int) -> str: ...

    def forget_registrations(self) -> None:
        """After the runtime has been reset: drop what Python still holds."""
        ...


def _several_workers_hint() -> str:
    """What a probe port already in use most often means: this process is
    one of several workers that each start their own listener on the pod's
    one port (uvicorn ``--workers N`` with the listener started at import,
    a pre-fork server without ``last_call.gunicorn``)."""
    import multiprocessing

    worker = multiprocessing.parent_process() is not None or "gunicorn.workers" in sys.modules
    who = (
        "This process is one of uvicorn's --workers processes"
        if worker and "uvicorn" in sys.modules
        else "This process is one of several worker processes"
        if worker
        else "Another process holds the port; if this process is one of several workers (uvicorn --workers N, "
        "gunicorn -w N)"
    )
    return (
        f"{who}: each one started a probe listener on the pod's one port. Under uvicorn --workers N, start it "
        "from last_call.asgi.lifespan() (each worker then shares the port, SO_REUSEPORT); under gunicorn, serve "
        "with -c python:last_call.gunicorn (its master answers for the pod); in another pre-fork host, call "
        "last_call.workers.set_worker_processes(N) in each worker before its listener starts; or run one "
        "worker per pod (--workers 1) and scale with replicas (docs/asgi-uvicorn.md)"
    )


def _remove_one(registrations: list[tuple[Callable[..., Any], int]], callable_: Callable[..., Any]) -> int | None:
    """Pops the earliest registration of ``callable_`` (compared with ==, so
    that a bound method found again is the same callable); its key."""
    for index, (registered, key) in enumerate(registrations):
        if registered == callable_:
            del registrations[index]
            return key
    return None


class ShutdownManager:
    """The manager's interface: GracefulShutdownManager (the process-wide
    runtime) and NoopGracefulShutdownManager (simulated) are both one."""

    _runtime: Runtime
    _increment: Callable[[], int]
    _decrement: Callable[[], int]
    _current_phase: Callable[[], int]
    _lock: threading.Lock
    _phase_callbacks: list[tuple[Callable[..., Any], int]]
    _hooks: list[tuple[Callable[..., Any], int]]
    _readiness: ReadinessChecks

    def _attach(self, runtime: Runtime) -> None:
        """Sets the manager up over ``runtime`` (once, from the constructor:
        the real manager's constructor returns its one instance again)."""
        self._runtime = runtime
        # The hot path, bound once: a method call and one ctypes call per
        # operation, and check() only when the status is not OK.
        self._increment = runtime.increment_active_streams
        self._decrement = runtime.decrement_active_streams
        self._current_phase = runtime.current_phase
        self._lock = threading.Lock()
        self._phase_callbacks = []
        self._hooks = []
        self._readiness = ReadinessChecks()

    # ----- stream accounting (the names the legacy app uses) -----

    def increment_active_streams(self) -> None:
        """Counts one more open stream (lock-free in the runtime)."""
        status = self._increment()
        if status:
            self._runtime.check(status)

    def decrement_active_streams(self) -> None:
        """Counts one stream as ended. Raises NoActiveStreamError (a
        ValueError) when none is active; the count stays at zero."""
        status = self._decrement()
        if status:
            self._runtime.check(status)

    @property
    def active_streams(self) -> int:
        return self._runtime.active_streams()

    @property
    def streams_started_total(self) -> int:
        return self._runtime.streams_started_total()

    @property
    def streams_finished_total(self) -> int:
        return self._runtime.streams_finished_total()

    # ----- work the shutdown waits for beside the streams -----

    def begin_work(self) -> None:
        """Counts one piece of work (a task that publishes to a hub
        channel): the shutdown sequence waits for it as for a stream, until
        the hooks' budget, but it is not a stream (``gs_active_work``, not
        ``gs_active_streams``). Pair it with :meth:`end_work`, or use
        :meth:`work`."""
        status = self._runtime.begin_work()
        if status:
            self._runtime.check(status)

    def end_work(self) -> None:
        """Counts one piece of work as done (NoActiveStreamError without a
        matching begin; the count stays at zero)."""
        status = self._runtime.end_work()
        if status:
            self._runtime.check(status)

    @contextlib.contextmanager
    def work(self) -> Iterator[None]:
        """Counts the ``with`` block as work the pod waits for: after a
        hand-off through the shared store a pod may hold no stream while its
        tasks still publish, and it must not exit under them. Work bound to
        this pod stops at ``stream_end_in(StreamKind.POD_BOUND)``::

            with manager.work():
                run_task()
        """
        self.begin_work()
        try:
            yield
        finally:
            self.end_work()

    @property
    def active_work(self) -> int:
        return self._runtime.active_work()

    def stream_end_in(self, kind: StreamKind = StreamKind.RESUMABLE) -> float | None:
        """None while a stream of ``kind`` should go on (before
        ClosingStreams); then the seconds it may still run: for a pod-bound
        stream the time until the streams' last moment (streams_end, just
        before the hooks' budget), and for a resumable one the time until a freshly
        drawn, uniformly jittered moment of the close notice (the reconnect
        spread; 0 when all at once). Call it once per stream, then count
        down (the stream wrapper does). The no-op manager has no timeline:
        0 for every stream once ClosingStreams has begun."""
        left = self._runtime.stream_end_in(kind)
        return None if math.isinf(left) else left

    def stream_ending_sent(self, kind: StreamKind) -> None:
        """Tells the runtime that a stream of ``kind`` has just been sent
        its ending at its moment (a resumable one its reconnect hint, a
        pod-bound one its final event) and is ending: counted in the
        shutdown log's last line. The stream wrappers (``track_stream``,
        ``@sse_stream``, the ASGI streams) call it themselves."""
        self._runtime.stream_ending_sent(kind)

    def set_reconnect_spread(self, all_at_once: bool = False) -> None:
        """``all_at_once=True`` nudges every resumable stream at the start
        of ClosingStreams instead of spreading them over the close notice
        (the no-op manager always ends them at once)."""
        self._runtime.set_reconnect_spread(all_at_once)

    def wait_for_streams(self, timeout: float | None = None) -> bool:
        """Blocks until no stream is active (True) or ``timeout`` seconds
        pass (False). ``None`` waits without limit. The GIL is released while
        waiting; from the main thread, Ctrl-C still interrupts it."""
        return self._wait(self._runtime.wait_for_streams, timeout)

    # ----- the phase -----

    def set_draining(self, draining: bool) -> None:
        """True: leave rotation without starting the shutdown sequence.
        False: back to serving; raises InvalidStateError once the sequence
        has started."""
        if not isinstance(draining, bool):
            raise ArgumentTypeError(f"draining must be a bool, not {type(draining).__name__}")
        self._runtime.set_draining(draining)

    def is_draining(self) -> bool:
        """True in every phase but SERVING: not ready, refuse new tasks."""
        return self._runtime.is_draining()

    @property
    def phase(self) -> Phase:
        return _PHASES[self._current_phase()]

    def wait_for_phase(self, phase: Phase | int, timeout: float | None = None) -> bool:
        """Blocks until the phase is at least ``phase`` (True) or ``timeout``
        seconds pass (False)."""
        target = int(_phase(phase))
        return self._wait(lambda left: self._runtime.wait_for_phase(target, left), timeout)

    def wait_for_shutdown(self, timeout: float | None = None) -> bool:
        """Blocks until draining has begun, by a signal, ``begin_shutdown``
        or ``set_draining(True)`` (True), or ``timeout`` seconds pass
        (False). ``None`` waits without limit. Called from the main thread
        it stays responsive to Ctrl-C and to Python signal handlers."""
        return self.wait_for_phase(Phase.DRAINING, timeout)

    def _wait(self, runtime_wait: Callable[[float], int], timeout: float | None) -> bool:
        """Runs a runtime's wait, in short slices on the main thread only."""
        check = self._runtime.check
        total = seconds(timeout)
        if threading.current_thread() is not threading.main_thread():
            return check(runtime_wait(total)) == Status.OK
        if math.isnan(total) or total < 0:
            return check(runtime_wait(total)) == Status.OK
        deadline = None if math.isinf(total) else time.monotonic() + total
        while True:
            left = math.inf if deadline is None else max(0.0, deadline - time.monotonic())
            if check(runtime_wait(min(left, _MAIN_THREAD_SLICE))) == Status.OK:
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

    # ----- the shutdown sequence -----

    def install_signal_handlers(
        self,
        *,
        shutdown_timeout_seconds: float | None = None,
        drain_delay_seconds: float | None = None,
        close_notice_seconds: float | None = None,
        hook_budget_seconds: float | None = None,
        exit_watchdog_seconds: float | None = None,
        exit_watchdog_status: int | None = None,
        second_signal: SecondSignal | str | None = None,
        handle_sigint: bool = True,
    ) -> None:
        """Makes SIGTERM (and SIGINT) start the shutdown sequence. Each
        keyword is its setting (``shutdown_timeout_seconds`` is
        ``GS_SHUTDOWN_TIMEOUT_SECONDS``, docs/configuration.md); one not
        given is the value in force (given by the app's configuration, else
        the environment, else the default). A malformed value raises
        ConfigError naming it. Raises InvalidStateError if already
        installed in this process.

        Python-level handlers installed *before* this call keep running
        (they are chained); a later ``signal.signal(SIGTERM, ...)`` replaces
        the runtime's handler. The no-op manager checks the arguments and
        installs nothing.
        """
        durations = {
            name: seconds(value, name)
            for name, value in (
                ("drain_delay_seconds", drain_delay_seconds),
                ("shutdown_timeout_seconds", shutdown_timeout_seconds),
                ("close_notice_seconds", close_notice_seconds),
                ("hook_budget_seconds", hook_budget_seconds),
                ("exit_watchdog_seconds", exit_watchdog_seconds),
            )
            if value is not None
        }
        if exit_watchdog_status is not None:
            if isinstance(exit_watchdog_status, bool) or not isinstance(exit_watchdog_status, int):
                raise ArgumentTypeError(
                    f"exit_watchdog_status must be an int, not {type(exit_watchdog_status).__name__}"
                )
            durations["exit_watchdog_status"] = exit_watchdog_status
        second = None if second_signal is None else _second_signal(second_signal)
        self._runtime.install_signal_handlers(durations, second, bool(handle_sigint))

    def begin_shutdown(self) -> None:
        """Starts the shutdown sequence as SIGTERM would. Idempotent."""
        self._runtime.begin_shutdown()

    @property
    def handle_sigterm(self) -> SignalHandler:
        """A Python signal handler that starts the sequence:
        ``signal.signal(SIGTERM, manager.handle_sigterm)``.

        Reading it sets the real manager up for it, once per process: the
        GS_* configuration is validated (ConfigError naming the variable, at
        start-up rather than at the first SIGTERM) and the exit watchdog is
        armed. (``install_signal_handlers`` does all this without needing
        the main thread; prefer it, or ``last_call.waitress.serve``.)"""
        self._runtime.set_up_for_signals()
        return self._on_sigterm

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
        in order, one call at a time: on the runtime's delivery thread (the
        no-op manager: on the thread that caused the change). A callback
        that blocks delays only the callbacks after it, never the shutdown
        sequence or the exit watchdog; inside it, blocking waits raise
        ReentrantCallError at once. Usable as a decorator; returns the
        callback (pass it to ``remove_phase_callback``). Registering the
        same callback twice calls it twice, and takes two removals."""
        if not callable(callback):
            raise ArgumentTypeError("callback must be callable")
        key = self._runtime.add_phase_callback(lambda old, new: callback(_PHASES[old], _PHASES[new]))
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
        return key is not None and self._runtime.remove_phase_callback(key)

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
        key = self._runtime.add_shutdown_hook(name, hook)
        with self._lock:
            self._hooks.append((hook, key))
        return hook

    def remove_shutdown_hook(self, hook: ShutdownHook) -> bool:
        """Unregisters one registration of ``hook``. False if it was not
        registered as a shutdown hook (or has already run)."""
        with self._lock:
            key = _remove_one(self._hooks, hook)
        return key is not None and self._runtime.remove_shutdown_hook(key)

    # ----- readiness -----

    def add_readiness_check(self, name: str, check: ReadinessCheck, *, timeout: float = DEFAULT_CHECK_TIMEOUT) -> None:
        """Adds (or replaces) a named check that ``/readyz`` consults while
        serving: the process is ready only if it returns truthy within
        ``timeout``. Both the blueprint's ``/readyz`` and the native probe
        listener's consult it (the latter calls it on one of its own threads,
        which takes the GIL for the call)."""
        self._readiness.add(name, check, timeout=timeout)
        with self._lock:
            self._runtime.add_readiness_check(name, check, timeout)

    def remove_readiness_check(self, name: str) -> bool:
        with self._lock:
            self._runtime.remove_readiness_check(name)
        return self._readiness.remove(name)

    def check_readiness(self) -> ReadinessReport:
        """Not ready while draining; otherwise the checks decide."""
        if self.is_draining():
            return ReadinessReport(ready=False, failures={"phase": self.phase.label})
        return self._readiness.run()

    # ----- the probe listener and the heartbeat -----

    def start_probe_listener(self, addr: str | None = None) -> tuple[str, int]:
        """Starts the runtime's own probe listener (``/readyz``, ``/healthz``,
        ``/metrics``, ``/drain``), answered from a native thread that needs
        neither a Waitress thread nor the GIL. ``addr`` is ``"host:port"``
        (port 0: a free port); None reads ``GS_PROBE_ADDR``. The drain token
        comes from ``GS_DRAIN_TOKEN``, the heartbeat staleness from
        ``GS_HEARTBEAT_STALE_SECONDS``. Prints ``probes on http://HOST:PORT``
        and returns ``(host, port)``. ConfigError names ``GS_PROBE_ADDR`` for
        a malformed address or a port in use; once per process. The no-op
        manager has none (InvalidStateError)."""
        try:
            bound = self._runtime.start_probe_listener(addr)
        except ConfigError as error:
            if "in use" not in str(error):
                raise
            raise ConfigError(f"{error}. {_several_workers_hint()}") from None
        host, _, port = bound.rpartition(":")
        return host.strip("[]"), int(port)

    def heartbeat(self) -> None:
        """The liveness heartbeat: call it from the loop that matters. Once
        one was sent, the probe listener's ``/healthz`` answers 503 when the
        last is older than ``GS_HEARTBEAT_STALE_SECONDS`` (default 10)."""
        self._runtime.heartbeat()

    # ----- metrics -----

    def metrics(self, format: str = "prometheus") -> str:  # noqa: A002 - the natural name
        """The runtime's figures: Prometheus text ("prometheus") or "json"."""
        return self._runtime.render_metrics(metrics_format(format))

    # ----- testing -----

    def _forget_registrations(self) -> None:
        """After the runtime has been reset: drop what Python still holds."""
        with self._lock:
            self._phase_callbacks.clear()
            self._hooks.clear()
            self._runtime.forget_registrations()
        self._readiness.clear()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} phase={self.phase.label} active_streams={self.active_streams}>"
