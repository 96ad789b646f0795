"""asyncio and ASGI hosts (uvicorn with Starlette or FastAPI).

::

    from last_call.asgi import EventStreamResponse, lifespan

    app = Starlette(routes=..., lifespan=lifespan())     # under uvicorn

    async def feed(request):
        return EventStreamResponse(token_generator(), kind=StreamKind.RESUMABLE)

What is here, and why each piece is built the way it is:

* **Awaitable waits** (``wait_for_phase``, ``wait_for_shutdown``,
  ``wait_for_streams``) that never block a thread: a phase callback hands the
  change to the loop with ``loop.call_soon_threadsafe``, so cancelling the
  wait (``asyncio.wait_for``, a task's ``cancel()``) leaves nothing behind
  and ``asyncio.run`` can return. ``await asyncio.to_thread(manager.wait_...)``
  would leave a thread parked in the native wait that no cancellation
  reaches.
* **``async with stream(kind=...)``** counts one stream and gives it a
  ``closing`` event, set at the moment ClosingStreams asks *this* stream to
  end: at the streams' last moment for a pod-bound stream, at its own drawn
  moment of the close notice for a resumable one (``manager.stream_end_in(kind)``). A token
  generator races against it (``stream.events(source)`` does the racing) and
  ends with its kind's ending (``stream.ending()``).
* **``EventStreamResponse``**, a plain ASGI response that counts its stream
  exactly once, however it ends (natural end, client disconnect, exception,
  cancellation), and **``CountStreams``**, a middleware that counts the
  ``text/event-stream`` responses of an app that builds its own.
* **``lifespan()``**, the Starlette/FastAPI lifespan that installs the
  runtime's handling *after* uvicorn installed its own, starts the probe
  listener and a heartbeat from the loop, and stops uvicorn in Stopping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from types import FrameType, TracebackType
from typing import Any, Union

from ._arguments import checked_seconds
from ._arguments import phase as _phase
from .interface import ShutdownManager
from .manager import GracefulShutdownManager, default_manager, validate_environment
from .phase import Phase
from .sse import StreamKind
from .wsgi import DEFAULT_RECONNECT_RETRY_MS, FinalEvent, _last_id_in, stream_ending

__all__ = [
    "CountStreams",
    "EventStreamResponse",
    "Stream",
    "lifespan",
    "stream",
    "wait_for_phase",
    "wait_for_shutdown",
    "wait_for_streams",
]

logger = logging.getLogger("last_call.asgi")

PROBE_ADDR_ENV = "GS_PROBE_ADDR"
#: How often the loop sends the liveness heartbeat.
HEARTBEAT_INTERVAL = 1.0
#: How often ``wait_for_streams`` looks at the count: streams end on any
#: thread (WSGI threads, the native hub), and the runtime calls back on
#: phase changes only, so the count itself is polled, on the loop.
STREAMS_POLL_SECONDS = 0.02
#: ``wait_for_phase`` is woken by a phase callback at once, and also
#: re-reads the phase this often: callbacks are delivered one at a time, so
#: an app's callback that blocks would otherwise starve the wait (and the
#: lifespan's end, which waits for Stopped, until the exit watchdog).
PHASE_RECHECK_SECONDS = 0.25
#: How long the lifespan's end waits for the hooks registered after it.
_STOPPED_WAIT_SECONDS = 10.0

#: An ASGI message, scope, and the callables that pass them.
Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The key a counted response sets in its scope, so that ``CountStreams``
#: does not count it a second time.
COUNTED_SCOPE_KEY = "last_call.stream_counted"


def _manager(manager: ShutdownManager | None) -> ShutdownManager:
    return manager if manager is not None else default_manager()


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., Any], *args: Any) -> None:
    """From the runtime's delivery thread onto ``loop``; a loop already
    closed (the app is gone) is not an error there."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)


# ----- awaitable waits -------------------------------------------------------


async def wait_for_phase(
    phase: Phase | int, timeout: float | None = None, *, manager: ShutdownManager | None = None
) -> bool:
    """True once the phase is at least ``phase``; False when ``timeout``
    seconds (None: no limit) pass first. Cancellable: nothing is left
    waiting on another thread."""
    runtime = _manager(manager)
    target = _phase(phase)
    limit = checked_seconds(timeout)
    loop = asyncio.get_running_loop()
    reached = asyncio.Event()

    def on_phase(_old: Phase, new: Phase) -> None:
        if new >= target:
            _call_soon(loop, reached.set)

    # Registered before the phase is read, so no change falls in between.
    runtime.on_phase(on_phase)
    try:
        deadline = loop.time() + limit
        while runtime.phase < target:
            left = deadline - loop.time()
            if left <= 0:
                return False
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(reached.wait(), min(left, PHASE_RECHECK_SECONDS))
        return True
    finally:
        runtime.remove_phase_callback(on_phase)


async def wait_for_shutdown(timeout: float | None = None, *, manager: ShutdownManager | None = None) -> bool:
    """True once draining has begun (a signal, ``begin_shutdown``,
    ``set_draining(True)``); False after ``timeout`` seconds. Cancellable."""
    return await wait_for_phase(Phase.DRAINING, timeout, manager=manager)


async def wait_for_streams(timeout: float | None = None, *, manager: ShutdownManager | None = None) -> bool:
    """True once no stream is active; False after ``timeout`` seconds.
    Looks at the count every ``STREAMS_POLL_SECONDS`` on the loop (no thread
    is blocked); cancellable."""
    runtime = _manager(manager)
    limit = checked_seconds(timeout)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while runtime.active_streams > 0:
        left = deadline - loop.time()
        if left <= 0:
            return False
        await asyncio.sleep(min(STREAMS_POLL_SECONDS, left))
    return True


# ----- one stream --------------------------------------------------------------


class Stream:
    """One counted stream (``async with stream(kind=...) as s``).

    * ``s.closing``: an ``asyncio.Event`` set when ClosingStreams asks this
      stream to end (pod-bound: at the streams' last moment; resumable: at
      its own moment of the close notice);
    * ``s.events(source)``: the items of an async iterable until ``closing``
      is set, then the stream's ending, then the end;
    * ``s.ending()``: that ending, by kind: ``retry:`` + the last ``id:`` +
      ``event: reconnect`` for a resumable stream, the host's ``final_event``
      for a pod-bound one;
    * ``s.record(chunk)``: remembers the last ``id:`` of a chunk sent
      without ``events()``;
    * ``s.on_closing(callback)``: called at that moment, before ``closing``
      wakes its waiters (the sse-starlette adapter sets its
      ``shutdown_event`` there).

    Counted on entry, uncounted exactly once on exit, whatever ends it.
    """

    def __init__(
        self,
        kind: StreamKind = StreamKind.RESUMABLE,
        *,
        manager: ShutdownManager | None = None,
        final_event: FinalEvent | None = None,
        reconnect_retry_ms: int = DEFAULT_RECONNECT_RETRY_MS,
    ) -> None:
        self.kind = StreamKind(kind)
        self.closing = asyncio.Event()
        #: The id of the last event this stream carried (None before any).
        self.last_event_id: str | None = None
        self._manager = _manager(manager)
        self._final_event = final_event
        self._retry_ms = reconnect_retry_ms
        self._loop: asyncio.AbstractEventLoop | None = None
        self._end_timer: asyncio.TimerHandle | None = None
        self._counted = False
        self._open = False
        self._closing_callbacks: list[Callable[[], Any]] = []

    async def __aenter__(self) -> Stream:
        if self._counted:
            raise RuntimeError("a Stream is entered once")
        self._loop = asyncio.get_running_loop()
        self._manager.increment_active_streams()
        self._counted = True
        self._open = True
        self._manager.on_phase(self._on_phase)
        if self._manager.phase >= Phase.CLOSING_STREAMS:
            self._schedule_end()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._close()

    def _close(self) -> None:
        if not self._open:
            return
        self._open = False
        try:
            self._manager.remove_phase_callback(self._on_phase)
            if self._end_timer is not None:
                self._end_timer.cancel()
        finally:
            self._manager.decrement_active_streams()

    def _on_phase(self, _old: Phase, new: Phase) -> None:
        # On the runtime's delivery thread: hand over to the loop.
        if new >= Phase.CLOSING_STREAMS and self._loop is not None:
            _call_soon(self._loop, self._schedule_end)

    def _schedule_end(self) -> None:
        # On the loop; once per stream: stream_end_in draws this stream's
        # moment of the reconnect spread.
        if not self._open or self._end_timer is not None or self.closing.is_set():
            return
        assert self._loop is not None
        end_in = self._manager.stream_end_in(self.kind) or 0.0
        self._end_timer = self._loop.call_later(end_in, self._signal_closing)

    def _signal_closing(self) -> None:
        for callback in self._closing_callbacks:
            callback()
        self.closing.set()

    def on_closing(self, callback: Callable[[], Any]) -> None:
        """Calls ``callback()`` on the loop when ``closing`` is set, just
        before the tasks waiting on it wake."""
        self._closing_callbacks.append(callback)

    def record(self, chunk: Any) -> Any:
        """Remembers the last ``id:`` in ``chunk`` (SSE text or bytes, or an
        object with an ``id`` such as sse-starlette's ServerSentEvent, or a
        dict with ``"id"``); returns ``chunk``."""
        found = _last_id_in(chunk)
        if found is None:
            candidate = chunk.get("id") if isinstance(chunk, dict) else getattr(chunk, "id", None)
            if isinstance(candidate, (str, int)) and not isinstance(candidate, bool):
                found = str(candidate)
        if found is not None:
            self.last_event_id = found
        return chunk

    def ending(self) -> bytes:
        """What ClosingStreams ends this stream with, by its kind."""
        return stream_ending(self.kind, self._retry_ms, self.last_event_id, self._final_event)

    async def events(self, source: AsyncIterable[Any]) -> AsyncIterator[Any]:
        """The items of ``source``, each raced against ``closing``; when
        ``closing`` wins, the pending item is cancelled, ``source`` closed,
        and the stream's ending (if not empty) is the last item."""
        iterator = source.__aiter__()
        closing = asyncio.ensure_future(self.closing.wait())
        pending: asyncio.Future[Any] | None = None
        try:
            while True:
                pending = asyncio.ensure_future(iterator.__anext__())
                done, _ = await asyncio.wait({pending, closing}, return_when=asyncio.FIRST_COMPLETED)
                if pending in done:
                    finished, pending = pending, None
                    try:
                        item = finished.result()
                    except StopAsyncIteration:
                        return
                    yield self.record(item)
                    continue
                ending = self.ending()
                if ending:
                    yield ending
                return
        finally:
            closing.cancel()
            if pending is not None and not pending.done():
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()


def stream(
    kind: StreamKind = StreamKind.RESUMABLE,
    *,
    manager: ShutdownManager | None = None,
    final_event: FinalEvent | None = None,
    reconnect_retry_ms: int = DEFAULT_RECONNECT_RETRY_MS,
) -> Stream:
    """``async with stream(kind=...) as s:`` counts one stream (see Stream)."""
    return Stream(kind, manager=manager, final_event=final_event, reconnect_retry_ms=reconnect_retry_ms)


# ----- responses ---------------------------------------------------------------

#: Headers every SSE response needs behind proxies (nginx buffers otherwise).
SSE_HEADERS = {"content-type": "text/event-stream", "x-accel-buffering": "no", "cache-control": "no-cache"}

Content = Union[AsyncIterable[Union[str, bytes]], Iterable[Union[str, bytes]]]


async def _as_async(content: Content) -> AsyncIterator[str | bytes]:
    if isinstance(content, AsyncIterable):
        async for item in content:
            yield item
    else:
        for item in content:
            yield item


class EventStreamResponse:
    """A ``text/event-stream`` ASGI response (return it from a Starlette
    endpoint) counted as one stream exactly once: from just before its
    first byte to its end, whether the source ends, the client disconnects
    (``http.disconnect``, or a send that fails), the source raises, or the
    server cancels it. In ClosingStreams it ends with its kind's ending
    (see Stream). A HEAD request gets the headers and is never counted."""

    def __init__(
        self,
        content: Content,
        *,
        kind: StreamKind = StreamKind.RESUMABLE,
        final_event: FinalEvent | None = None,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        manager: ShutdownManager | None = None,
        reconnect_retry_ms: int = DEFAULT_RECONNECT_RETRY_MS,
    ) -> None:
        self.content = content
        self.kind = StreamKind(kind)
        self.final_event = final_event
        self.status_code = status_code
        merged = {**SSE_HEADERS, **{k.lower(): v for k, v in (headers or {}).items()}}
        self.raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in merged.items()]
        self._manager = manager
        self._retry_ms = reconnect_retry_ms

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        if scope.get("method", "GET").upper() == "HEAD":
            scope[COUNTED_SCOPE_KEY] = True  # nor by CountStreams
            await send(start)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        scope[COUNTED_SCOPE_KEY] = True
        counted = Stream(
            self.kind, manager=self._manager, final_event=self.final_event, reconnect_retry_ms=self._retry_ms
        )
        async with counted:
            await send(start)
            writer = asyncio.ensure_future(self._write(counted, send))
            listener = asyncio.ensure_future(_disconnected(receive))
            try:
                done, _ = await asyncio.wait({writer, listener}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (writer, listener):
                    task.cancel()
                await asyncio.gather(writer, listener, return_exceptions=True)
            if writer in done:
                writer.result()  # the source's exception, if any

    async def _write(self, counted: Stream, send: Send) -> None:
        async for chunk in counted.events(_as_async(self.content)):
            body = chunk.encode() if isinstance(chunk, str) else bytes(chunk)
            await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnected(receive: Receive) -> None:
    """Returns when the client has gone (``http.disconnect``)."""
    while True:
        message = await receive()
        if message.get("type") == "http.disconnect":
            return


class CountStreams:
    """ASGI middleware: counts every ``text/event-stream`` response of the
    wrapped app as one stream, from its start message until the app's call
    returns, raises or is cancelled, exactly once. Responses that count
    themselves (``EventStreamResponse``, the sse-starlette adapter) are
    skipped. It counts only: a stream that must end in ClosingStreams uses
    ``stream()``'s ``closing`` event inside its generator."""

    def __init__(self, app: ASGIApp, *, manager: ShutdownManager | None = None) -> None:
        self.app = app
        self._manager = manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("method", "GET").upper() == "HEAD":
            # A HEAD response has no body: never a stream.
            await self.app(scope, receive, send)
            return
        runtime = _manager(self._manager)
        counted = False

        async def counting_send(message: Message) -> None:
            nonlocal counted
            if message.get("type") == "http.response.start" and not counted and not scope.get(COUNTED_SCOPE_KEY):
                headers = dict((bytes(k).lower(), bytes(v)) for k, v in message.get("headers", []))
                if headers.get(b"content-type", b"").split(b";")[0].strip() == b"text/event-stream":
                    runtime.increment_active_streams()
                    counted = True
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            if counted:
                runtime.decrement_active_streams()


# ----- the lifespan: uvicorn's signals, the probes, the heartbeat -------------------

Lifespan = Callable[[Any], contextlib.AbstractAsyncContextManager[Any]]


def _signal_seen(signum: int, _frame: FrameType | None) -> None:
    # The Python-level handler left in place of uvicorn's: the runtime's
    # native handler (which chains to this one) has already started the
    # sequence; uvicorn is told to stop only in Stopping.
    logger.info("last_call: %s received; shutting down gracefully", signal.Signals(signum).name)


class _UvicornStopper:
    """The shutdown hook that stops uvicorn: in Stopping it sets the
    server's ``should_exit`` from the loop, then waits until the lifespan's
    end has run (uvicorn's shutdown is then done but for returning)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, server: Any, previous: Any) -> None:
        self._loop = loop
        self.server = server
        self._previous = previous
        self.lifespan_ended = threading.Event()

    def _stop(self) -> None:
        if self.server is not None:
            # should_exit, not handle_exit: handle_exit records the signal,
            # and uvicorn re-raises recorded signals after its shutdown
            # (capture_signals), which would end the process with 143.
            self.server.should_exit = True
        elif callable(self._previous):
            # Another server's own handler: let it stop as for SIGTERM.
            self._previous(signal.SIGTERM, None)

    def __call__(self, seconds_left: float) -> bool:
        _call_soon(self._loop, self._stop)
        return self.lifespan_ended.wait(max(seconds_left, 0.0))


def _uvicorn_server(handler: Any) -> Any:
    """The uvicorn Server whose bound ``handle_exit`` is ``handler``, if
    it is one (uvicorn installs it with signal.signal before the lifespan
    starts)."""
    owner = getattr(handler, "__self__", None)
    return owner if owner is not None and hasattr(owner, "should_exit") else None


def lifespan(
    app_lifespan: Lifespan | None = None,
    *,
    manager: ShutdownManager | None = None,
    probe_addr: str | None = None,
    shutdown: dict[str, Any] | None = None,
    install_signal_handlers: bool = True,
) -> Lifespan:
    """A Starlette/FastAPI ``lifespan=`` that runs the app under the
    runtime's sequence (wrapping ``app_lifespan``, if given).

    At startup, on uvicorn's main thread, uvicorn's SIGTERM/SIGINT handlers
    are already installed (``Server.capture_signals``). They are replaced by
    a handler that only logs, and the runtime's handling is installed over
    it (``manager.install_signal_handlers(**shutdown)``), so the first
    SIGTERM starts the sequence while uvicorn keeps serving. A shutdown hook
    sets uvicorn's ``should_exit`` in Stopping; uvicorn's own shutdown then
    runs (streams are done by then). Because uvicorn never saw the signal,
    it has none to re-raise after its shutdown, and the process exits 0.

    ``probe_addr`` (default ``GS_PROBE_ADDR``; unset: none) starts the
    runtime's probe listener, and a task on the loop sends the liveness
    heartbeat once a second: a wedged loop goes stale on ``/healthz``.

    The GS_* configuration is validated here, when the app is built
    (ConfigError naming the variable), not at the first SIGTERM.
    """
    if manager is None or isinstance(manager, GracefulShutdownManager):
        validate_environment()

    @contextlib.asynccontextmanager
    async def run(app: Any) -> AsyncIterator[Any]:
        runtime = _manager(manager)
        loop = asyncio.get_running_loop()
        address = probe_addr if probe_addr is not None else (os.environ.get(PROBE_ADDR_ENV) or None)
        if address is not None:
            runtime.start_probe_listener(address)
        previous = signal.getsignal(signal.SIGTERM)
        stopper = _UvicornStopper(loop, _uvicorn_server(previous), previous)
        on_main_thread = threading.current_thread() is threading.main_thread()
        if install_signal_handlers and on_main_thread:
            if stopper.server is None:
                logger.warning("last_call: no uvicorn server found behind SIGTERM; Stopping calls its handler")
            # Ours first, so that the runtime's native handler chains to it,
            # not to uvicorn's (which would stop uvicorn at once).
            signal.signal(signal.SIGTERM, _signal_seen)
            signal.signal(signal.SIGINT, _signal_seen)
            runtime.install_signal_handlers(**(shutdown or {}))
        elif install_signal_handlers:
            logger.warning("last_call: the lifespan runs off the main thread and installs no signal handlers")
        hook = runtime.register_shutdown_hook("uvicorn", stopper)
        beat = asyncio.ensure_future(_heartbeat(runtime))
        try:
            if app_lifespan is None:
                yield None
            else:
                async with app_lifespan(app) as state:
                    yield state
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            stopper.lifespan_ended.set()
            runtime.remove_shutdown_hook(hook)  # no-op once it has run
            if runtime.phase >= Phase.STOPPING:
                # Hooks registered after ours finish before the process ends.
                await wait_for_phase(Phase.STOPPED, _STOPPED_WAIT_SECONDS, manager=runtime)

    return run


async def _heartbeat(runtime: ShutdownManager) -> None:
    while True:
        runtime.heartbeat()
        await asyncio.sleep(HEARTBEAT_INTERVAL)
