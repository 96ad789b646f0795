"""Serve a WSGI app with Waitress through the whole shutdown sequence::

    from last_call.waitress import serve
    serve(app, host="0.0.0.0", port=8080, threads=32, expected_streams=24)

Every setting is a keyword here too (``shutdown_timeout_seconds=6``), over
the app's own (``app.config["GS_SHUTDOWN_TIMEOUT_SECONDS"]``) and the
environment's (docs/configuration.md).

SIGTERM (or Ctrl-C) starts the sequence; Waitress keeps serving through the
drain delay and while streams finish; in Stopping the registered hooks run
(your task executor's first, if you registered it before calling ``serve``)
and then Waitress is stopped from its own loop thread; ``serve`` returns and
the process exits 0.

**Thread sizing.** Each open SSE stream holds one Waitress worker thread for
its whole life. Give Waitress more threads than the streams you expect, with
room for task starts: ``threads >= expected_streams + 4`` is the floor.
``serve`` refuses to start when ``expected_streams`` (``GS_EXPECTED_STREAMS``)
is set and does not fit (a refusal, not a warning: the pod would queue
requests behind its streams, and a warning scrolls by unread in a
rollout), and warns while serving when the open streams that hold a thread
leave fewer than 4 threads free.

**Probes on a port of their own.** With ``probe_addr`` (or ``GS_PROBE_ADDR``)
set, ``serve`` starts the runtime's probe listener: ``/readyz``, ``/healthz``,
``/metrics`` and ``/drain`` are then answered from a native thread, whatever
Waitress's threads and the GIL are doing, and after Waitress has closed its
own listener at shutdown. Liveness follows a heartbeat that ``serve`` sends
from **Waitress's main loop** (the asyncore loop that accepts connections and
hands requests to the threads): a thread pulls Waitress's trigger with the
heartbeat once a second, and the loop runs it. A saturated thread pool is
not a dead process (the loop still runs); a wedged loop is, and the kubelet
should restart it.

**Off the main thread.** Python installs signal handlers from the main
thread only, so ``serve`` called from another thread (as legacy code that
runs Waitress in a daemon thread does) installs none: it logs that it leaves
signal installation to the caller, who calls
``manager.install_signal_handlers()`` (any thread) or registers
``manager.handle_sigterm`` from the main thread. Everything else is the
same: the stop hook, the drain, the exit of ``serve``.

**Ctrl-C.** Python's own SIGINT handler raises KeyboardInterrupt in the main
thread, which would make Waitress stop at once and cut every stream. So the
first Ctrl-C starts the graceful sequence (like SIGTERM) and logs how to
force; a second Ctrl-C exits at once (status 130).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType
from typing import Any, Callable

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, create_server
from waitress.trigger import trigger as Trigger

from . import settings
from ._limits import raise_open_file_limit
from .errors import ConfigError
from .interface import ShutdownManager
from .manager import GracefulShutdownManager, default_manager
from .phase import Phase

logger = logging.getLogger("last_call.waitress")

PROBE_ADDR_ENV = "GS_PROBE_ADDR"
EXPECTED_STREAMS = "GS_EXPECTED_STREAMS"
#: The readiness check ``not_ready_when_saturated`` adds.
SATURATION_CHECK = "waitress-threads"

#: Spare threads for probes and task starts while streams hold the rest.
THREAD_HEADROOM = 4
#: How often the heartbeat is sent through Waitress's loop (and the thread
#: sizing looked at).
HEARTBEAT_INTERVAL = 1.0
#: How often the stop hook looks again for channels still flushing.
_FLUSH_RECHECK_SECONDS = 0.05


class WaitressStopper:
    """Stops a Waitress server from its own loop thread, in order: stop
    accepting, let every channel finish its request and flush what it still
    has to send, and close, then close the trigger, which empties the socket
    map and ends ``server.run()``.

    A channel is closed only once it has no request in progress: Waitress
    calls the body's ``close()`` (where the stream is uncounted, and so
    where Stopping may begin) *before* it writes the response's terminating
    chunk, so a stream's last bytes can still be on their way when Stopping
    starts.

    Waitress is not thread-safe: ``server.close()`` from another thread can
    crash it. Everything here runs as a thunk on the loop thread, handed over
    with ``trigger.pull_trigger``."""

    def __init__(self, server: Any) -> None:
        socket_map: dict[Any, Any] | None = getattr(server, "_map", None)
        if socket_map is None:
            socket_map = server.map  # MultiSocketServer
        self._map: dict[Any, Any] = socket_map
        triggers = [obj for obj in self._map.values() if isinstance(obj, Trigger)]
        if not triggers:
            raise ValueError("this Waitress server has no trigger to reach its loop thread")
        self._trigger = triggers[0]

    def _objects(self, kind: type) -> list[Any]:
        return [obj for obj in list(self._map.values()) if isinstance(obj, kind)]

    def _begin(self) -> None:
        for listener in self._objects(BaseWSGIServer):
            # dispatcher.close, not the server's close(): the trigger closes last.
            wasyncore.dispatcher.close(listener)

    def _finish_if_flushed(self, force: bool) -> bool:
        channels = self._objects(HTTPChannel)
        for channel in channels:
            if force:
                channel.handle_close()
            elif not channel.requests:
                # Idle: close as soon as its output is flushed.
                channel.close_when_flushed = True
        if not force and self._objects(HTTPChannel):
            return False
        for trigger in self._objects(Trigger):
            trigger.close()
        return True

    def _on_loop(self, action: Callable[[], Any], timeout: float) -> Any:
        """Runs ``action`` on the loop thread; its result, or None on timeout."""
        done = threading.Event()
        result: list[Any] = []

        def thunk() -> None:
            try:
                result.append(action())
            finally:
                done.set()

        self.pull(thunk)
        if not done.wait(max(timeout, 0.0)):
            return None
        return result[0] if result else None

    def pull(self, thunk: Callable[[], Any]) -> None:
        """Hands ``thunk`` to the loop thread, which runs it."""
        # The stubs say a thunk takes an argument; Waitress calls it with none.
        self._trigger.pull_trigger(thunk)  # type: ignore[arg-type]

    def __call__(self, seconds_left: float) -> bool:
        deadline = time.monotonic() + max(seconds_left, 0.0)
        self._on_loop(self._begin, seconds_left)
        while True:
            left = deadline - time.monotonic()
            force = left <= 0
            finished = self._on_loop(lambda: self._finish_if_flushed(force=force), max(left, 0.5))  # noqa: B023 - called before the next iteration
            if finished or left <= 0:
                return bool(finished)
            time.sleep(min(_FLUSH_RECHECK_SECONDS, left))


def _sigint_starts_shutdown(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
    # The runtime's chained native handler has already started the sequence
    # (or, for a second Ctrl-C, exited). Not raising KeyboardInterrupt is the
    # point: it would stop Waitress at once and cut the streams.
    logger.warning("Ctrl-C: shutting down gracefully; press Ctrl-C again to exit at once")


def serve(
    app: Any,
    *,
    manager: ShutdownManager | None = None,
    install_signal_handlers: bool = True,
    not_ready_when_saturated: float | None = None,
    **options: Any,
) -> None:
    """Serves ``app`` with Waitress until the shutdown sequence has run.

    ``options`` are settings and Waitress's own options. A setting is given
    by its keyword (``shutdown_timeout_seconds=6`` for
    ``GS_SHUTDOWN_TIMEOUT_SECONDS``, ``probe_addr=`` for ``GS_PROBE_ADDR``,
    ``expected_streams=`` for ``GS_EXPECTED_STREAMS``; docs/configuration.md),
    which wins over the app's ``GracefulShutdown`` settings, which win over
    the environment. The rest go to ``waitress.create_server`` (host, port,
    threads, ...); ``channel_request_lookahead`` defaults to 1 so that
    streams notice a client that has gone. A keyword that is neither is a
    TypeError naming the closest. ``manager`` defaults to the app's
    extension's, then to the process-wide one.

    ``probe_addr`` (unset: none) starts the runtime's probe listener and the
    heartbeat through Waitress's loop. ``expected_streams``: the streams
    that hold a Waitress thread at once; ``threads`` below it plus 4 (room
    for probes and task starts) is refused at start, naming both.

    ``not_ready_when_saturated`` (seconds; default None: off) adds the
    readiness check ``waitress-threads``: ``/readyz`` answers 503 once
    every Waitress thread has been taken for longer than that, so that the
    Service sends new work elsewhere while liveness stays 200. The
    trade-off: a pod whose threads are all held by long streams leaves the
    rotation until one frees (its streams go on); if every pod is so, the
    Service has no ready endpoint.

    Signal handlers are installed only from the main thread; from another
    thread ``serve`` leaves that to the caller and logs so.
    """
    given, waitress_options = _split_options(options)
    on_main_thread = threading.current_thread() is threading.main_thread()
    holding = install_signal_handlers and on_main_thread
    if holding:
        # From here until the runtime's handling is installed, a SIGTERM is
        # held (pending), not delivered: with its default disposition it
        # would end the process mid-start. The runtime's own threads (the
        # hub's, the probe listener's) never take it either.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        _serve(app, manager, given, install_signal_handlers, on_main_thread, not_ready_when_saturated, waitress_options)
    finally:
        if holding:
            # Normally unblocked once the handling is installed; on an error
            # before that, a held SIGTERM has its usual effect now.
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def _split_options(options: dict[str, Any]) -> tuple[dict[str, settings.Given], dict[str, Any]]:
    """``serve``'s keywords: the settings, and Waitress's options."""
    from waitress.adjustments import Adjustments

    if "shutdown" in options:
        raise TypeError(
            "serve() no longer takes shutdown={...}: give each setting as a keyword of its own "
            "(shutdown_timeout_seconds=, drain_delay_seconds=, close_notice_seconds=, hook_budget_seconds=, "
            "exit_watchdog_seconds=, second_signal=; docs/configuration.md)"
        )
    # Waitress's own list of its options (the one create_server checks).
    known = set(getattr(Adjustments, "_param_map", {}))
    ours = {k: v for k, v in options.items() if settings.by_keyword(k) is not None}
    theirs = {k: v for k, v in options.items() if k not in ours}
    for keyword in theirs:
        if keyword not in known:
            near = settings.closest(keyword, [s.keyword for s in settings.SETTINGS] + sorted(known))
            hint = f"; did you mean {near}?" if near else ""
            raise TypeError(
                f"serve() got an unexpected keyword argument {keyword!r}: neither a setting of last_call nor "
                f"an option of Waitress{hint}"
            )
    return settings.from_keywords(ours, "serve()"), theirs


def _serve(
    app: Any,
    manager: ShutdownManager | None,
    given: dict[str, settings.Given],
    install_signal_handlers: bool,
    on_main_thread: bool,
    not_ready_when_saturated: float | None,
    waitress_options: dict[str, Any],
) -> None:
    raise_open_file_limit()
    # The app's GracefulShutdown extension, if it has one (a Flask app;
    # looked up by key so that Flask stays optional here): its settings
    # were handed to the runtime when it was built.
    state: Any = getattr(app, "extensions", {}).get("last_call")
    if manager is None:
        manager = state.manager if state is not None else default_manager()
    settings.report_unknown_environment()
    if given:
        # Checked with the rest in force; without keywords, the handling
        # installed below checks what it reads.
        settings.take(given, native=isinstance(manager, GracefulShutdownManager))
    threads = int(waitress_options.get("threads", 4))
    expected = given[EXPECTED_STREAMS].text if EXPECTED_STREAMS in given else settings.package_value(EXPECTED_STREAMS)
    if expected is not None and threads < int(expected) + THREAD_HEADROOM:
        source = given[EXPECTED_STREAMS].source if EXPECTED_STREAMS in given else settings.source_of(EXPECTED_STREAMS)
        raise ConfigError(
            f"last_call.waitress.serve: threads={threads} cannot hold {EXPECTED_STREAMS}={expected} (from {source}) "
            f"streams, each of which holds a Waitress thread for its whole life, with {THREAD_HEADROOM} threads to "
            f"spare for probes and task starts: new requests would queue behind the streams. Give threads >= "
            f"{int(expected) + THREAD_HEADROOM}, or hold the streams in the runtime's hub ({EXPECTED_STREAMS}=0)"
        )
    waitress_options.setdefault("channel_request_lookahead", 1)
    server = create_server(app, **waitress_options)
    stopper = WaitressStopper(server)
    probe_addr = given[PROBE_ADDR_ENV].text if PROBE_ADDR_ENV in given else settings.address(PROBE_ADDR_ENV)
    if probe_addr is not None:
        manager.start_probe_listener(probe_addr)
    # Registered before the signal handling, so that a SIGTERM held during
    # the start finds the hook that stops Waitress (the sequence ran to its
    # end without it, and Waitress then served until the exit watchdog).
    # Its thunk waits in the trigger for the loop to run.
    hook = manager.register_shutdown_hook("waitress", stopper)

    if install_signal_handlers and on_main_thread:
        # Python's SIGINT handler first, so that the runtime's chains it.
        signal.signal(signal.SIGINT, _sigint_starts_shutdown)
        manager.install_signal_handlers()
        # SIGTERM was blocked from serve()'s first line (and a host may
        # block it earlier, as examples/flask_app/run.py does): one that
        # arrived meanwhile is pending, and is handled by the runtime now.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    elif install_signal_handlers:
        logger.warning(
            "last_call: serve() is running off the main thread, so it installs no signal handlers; "
            "call manager.install_signal_handlers() or register manager.handle_sigterm from the main thread"
        )
    logger.info("last_call: serving on %s", _where(server))
    pump = _LoopPump(stopper, manager, threads, lambda: int(server.task_dispatcher.active_count))
    if not_ready_when_saturated is not None:
        limit = float(not_ready_when_saturated)
        if not limit > 0:
            raise ValueError(f"not_ready_when_saturated must be a number of seconds above 0, not {limit!r}")
        manager.add_readiness_check(SATURATION_CHECK, lambda: pump.saturated_for() <= limit)
    pump.start()
    try:
        server.run()
    finally:
        pump.stop()
        manager.remove_shutdown_hook(hook)  # no-op once it has run
        # Waitress stops its worker threads only on KeyboardInterrupt; do it
        # here, within what is left of the budget.
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
    manager.wait_for_phase(Phase.STOPPED, timeout=10)


class _LoopPump(threading.Thread):
    """Once a second: sends the heartbeat *through Waitress's main loop*
    (the loop runs the thunk, so a wedged loop stops the heartbeat), and
    warns when the open streams leave fewer than THREAD_HEADROOM threads."""

    def __init__(
        self, stopper: WaitressStopper, manager: ShutdownManager, threads: int, busy: Callable[[], int]
    ) -> None:
        super().__init__(name="last-call-heartbeat", daemon=True)
        self._stopper = stopper
        self._manager = manager
        self._threads = threads
        #: Waitress's threads running a request now.
        self._busy = busy
        self._stopped = threading.Event()
        self._warned = False
        #: Since when every thread has been taken (None: not now).
        self._saturated_since: float | None = None

    def saturated_for(self) -> float:
        """Seconds every Waitress thread has been taken, as last sampled
        (sampled once a second; 0 when one is free)."""
        since = self._saturated_since
        return 0.0 if since is None else time.monotonic() - since

    def run(self) -> None:
        beat = self._manager.heartbeat
        while not self._stopped.wait(HEARTBEAT_INTERVAL):
            try:
                self._stopper.pull(beat)
            except OSError:
                return  # the trigger is closed: Waitress is stopping
            self._look_at_sizing()
            self._look_at_saturation()

    def _look_at_saturation(self) -> None:
        if self._busy() >= self._threads:
            if self._saturated_since is None:
                self._saturated_since = time.monotonic()
        else:
            self._saturated_since = None

    def _look_at_sizing(self) -> None:
        # The streams that hold a thread: the process's open streams include
        # the stream hub's, which hold none (the hub has its own thread), so
        # no more than the threads busy now. Counting the hub's told a host
        # whose streams are all in the hub to raise its threads.
        held = min(self._manager.active_streams, self._busy())
        free = self._threads - held
        if free < THREAD_HEADROOM and not self._warned:
            self._warned = True
            logger.warning(
                "last_call: %d open streams hold %d of Waitress's %d threads; new requests will queue. "
                "Raise threads (>= streams + %d), or hold streams in the runtime's hub",
                held,
                min(held, self._threads),
                self._threads,
                THREAD_HEADROOM,
            )
        elif free >= 2 * THREAD_HEADROOM:
            self._warned = False

    def stop(self) -> None:
        self._stopped.set()


def _where(server: Any) -> str:
    try:
        return f"http://{server.effective_host}:{server.effective_port}"
    except AttributeError:
        return "several sockets"
