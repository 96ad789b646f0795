"""Serve a WSGI app with Waitress through the whole shutdown sequence::

    from last_call.waitress import serve
    serve(app, host="0.0.0.0", port=8080, threads=32, expected_streams=24)

SIGTERM (or Ctrl-C) starts the sequence; Waitress keeps serving through the
drain delay and while streams finish; in Stopping the registered hooks run
(your task executor's first, if you registered it before calling ``serve``)
and then Waitress is stopped from its own loop thread; ``serve`` returns and
the process exits 0.

**Thread sizing.** Each open SSE stream holds one Waitress worker thread for
its whole life. Give Waitress more threads than the streams you expect, with
room for task starts: ``threads >= expected_streams + 4`` is a sane floor.
``serve`` warns at start when ``expected_streams`` is set and does not fit,
and while serving when the open streams leave fewer than 4 threads free.

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
import os
import signal
import threading
import time
import warnings
from types import FrameType
from typing import Any, Callable

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, create_server
from waitress.trigger import trigger as Trigger

from .interface import ShutdownManager
from .manager import default_manager
from .phase import Phase

logger = logging.getLogger("last_call.waitress")

PROBE_ADDR_ENV = "GS_PROBE_ADDR"

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
    expected_streams: int | None = None,
    install_signal_handlers: bool = True,
    shutdown: dict[str, Any] | None = None,
    probe_addr: str | None = None,
    **waitress_options: Any,
) -> None:
    """Serves ``app`` with Waitress until the shutdown sequence has run.

    ``waitress_options`` go to ``waitress.create_server`` (host, port,
    threads, ...); ``channel_request_lookahead`` defaults to 1 so that
    streams notice a client that has gone. ``shutdown`` holds keyword
    arguments for ``manager.install_signal_handlers`` (drain_delay, ...;
    unset ones come from the app's ``GracefulShutdown`` settings, then from
    the GS_* environment variables). ``manager`` defaults to the app's
    extension's, then to the process-wide one.

    ``probe_addr`` (``"host:port"``; default ``GS_PROBE_ADDR``, unset: none)
    starts the runtime's probe listener and the heartbeat through Waitress's
    loop.

    Signal handlers are installed only from the main thread; from another
    thread ``serve`` leaves that to the caller and logs so.
    """
    # The app's GracefulShutdown extension, if it has one (a Flask app;
    # looked up by key so that Flask stays optional here).
    state: Any = getattr(app, "extensions", {}).get("last_call")
    if manager is None:
        manager = state.manager if state is not None else default_manager()
    options = dict(state.shutdown_options) if state is not None else {}
    options.update(shutdown or {})
    threads = int(waitress_options.get("threads", 4))
    if expected_streams is not None and threads < expected_streams + THREAD_HEADROOM:
        warnings.warn(
            f"Waitress threads={threads} cannot serve {expected_streams} concurrent SSE streams "
            f"(each holds a thread) with room for probes: use threads >= {expected_streams + THREAD_HEADROOM}",
            RuntimeWarning,
            stacklevel=2,
        )
    waitress_options.setdefault("channel_request_lookahead", 1)
    server = create_server(app, **waitress_options)
    stopper = WaitressStopper(server)
    if probe_addr is None:
        probe_addr = os.environ.get(PROBE_ADDR_ENV) or None
    if probe_addr is not None:
        manager.start_probe_listener(probe_addr)

    on_main_thread = threading.current_thread() is threading.main_thread()
    if install_signal_handlers and on_main_thread:
        # Python's SIGINT handler first, so that the runtime's chains it.
        signal.signal(signal.SIGINT, _sigint_starts_shutdown)
        manager.install_signal_handlers(**options)
        # A host may block SIGTERM until here to close its start-up window
        # (examples/flask_app/run.py does): one that arrived meanwhile is
        # pending, and is handled by the runtime from now on.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    elif install_signal_handlers:
        logger.warning(
            "last_call: serve() is running off the main thread, so it installs no signal handlers; "
            "call manager.install_signal_handlers() or register manager.handle_sigterm from the main thread"
        )
    hook = manager.register_shutdown_hook("waitress", stopper)
    logger.info("last_call: serving on %s", _where(server))
    pump = _LoopPump(stopper, manager, threads, lambda: int(server.task_dispatcher.active_count))
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

    def run(self) -> None:
        beat = self._manager.heartbeat
        while not self._stopped.wait(HEARTBEAT_INTERVAL):
            try:
                self._stopper.pull(beat)
            except OSError:
                return  # the trigger is closed: Waitress is stopping
            self._look_at_sizing()

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
