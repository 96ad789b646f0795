"""Counting WSGI streams exactly once, however they end.

A stream is counted when the server starts iterating it and uncounted once,
in ``close()``, which PEP 3333 servers call whatever happened. That rule is
what survives the pitfalls measured against Waitress and Werkzeug:

* a HEAD request: the body is never iterated, so never counted;
* an ``after_request`` hook that raises after the view returned the stream:
  the stream is dropped un-iterated, so never counted;
* a client that disconnects mid-stream: the server stops iterating and calls
  ``close()``; with ``channel_request_lookahead >= 1`` Waitress also exposes
  ``waitress.client_disconnected``, checked between events so the stream
  ends promptly even while the generator is idle-waiting for its next event;
* a generator that raises: ``close()`` runs (from the wrapper and again from
  the server; the second is a no-op);
* a stream never iterated: never counted.

In ClosingStreams the wrapper ends the stream itself, by its kind
(``last_call.sse.StreamKind``), at the stream's own moment:

* a **resumable** stream, at its own moment of the close notice (drawn by
  the runtime, uniformly over the notice window: the reconnect spread),
  gets ``retry:``, the ``id:`` of the last event it carried and ``event:
  reconnect``, so the browser's EventSource reconnects to another pod,
  resuming after that id, instead of seeing a reset at SIGKILL;
* a **pod-bound** stream gets the host's ``final_event`` (if any) at the
  streams' last moment (``manager.stream_end_in(StreamKind.POD_BOUND)``),
  then ends; it is never told to reconnect, since no other pod can serve it.

Waking the generator at that moment
-----------------------------------

On a thread-per-stream server (Waitress, gunicorn's gthread worker) the
wrapper can only speak when the generator yields: a generator blocked in
``queue.get(timeout=1)`` keeps its thread until its heartbeat, and every
generator of a pod beats on the same second, so the reconnects of a whole
pod would land together. Each counted stream therefore has a **waker**: at
ClosingStreams the stream draws its moment, and one scheduler thread per
process (started on first use, never inherited by a forked child; it sleeps
until the next moment, it never polls) calls the stream's waker at that
moment. The waker makes the generator's wait return; the generator yields;
the wrapper sends the last words in its place and ends the stream. A
generator that gives no waker is ended at its next yield after its moment,
as before.

What a host's generator does:

* **It waits on a ``queue.Queue``** (the common subscriber shape): pass the
  queue through ``wake_queue(q)`` inside the generator (it registers
  ``q.put_nowait(WAKE)`` as the waker of the stream being served on this thread
  and returns ``q``). When the wait returns ``WAKE``, yield it (``yield
  item``): the wrapper never sends ``WAKE`` to the client, it sends the
  last words instead. Any other yield (a heartbeat) works too.
* **It waits on something else** (a ``threading.Event``, a condition, a
  socket): call ``on_wake(callback)`` inside the generator with something
  that makes that wait return (``event.set``), or pass ``wake=callback`` to
  ``track_stream``; then yield anything (``WAKE`` is never sent).
* The waker is called once, and must not block: on the scheduler thread,
  or at once on the caller's thread when the stream's moment has already
  passed as it is set; it may be called before the generator waits (a queue or an event keeps
  the wake for the next wait).
* Without a waker the generator must yield something (an event or a
  heartbeat comment) more often than the close notice, or the wrapper
  cannot get a word in; its stream then ends at its first yield after its
  moment, which bunches with the heartbeats.
"""

from __future__ import annotations

import json
import queue
import re
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Callable, TypeVar, Union

from ._scheduler import Scheduled, call_at
from .interface import ShutdownManager
from .manager import default_manager
from .phase import Phase
from .sse import StreamKind

#: How long browsers wait before reconnecting after the reconnect event.
DEFAULT_RECONNECT_RETRY_MS = 1000


#: A pod-bound stream's last words: SSE text, or a callable that returns it
#: (called once, when ClosingStreams ends the stream).
FinalEvent = Union[str, bytes, Callable[[], Union[str, bytes]]]

#: An ``id:`` field at the start of a line of a chunk the stream yielded.
_ID_LINE = re.compile(rb"(?:^|\n)id:[ ]?([^\r\n]*)")


def stream_ending(kind: StreamKind, retry_ms: int, last_event_id: str | None, final_event: FinalEvent | None) -> bytes:
    """What ClosingStreams ends a stream with, by its kind: a resumable one
    is told to reconnect (with its last id), a pod-bound one gets its final
    event (nothing if it has none, or if the stream already carried it: an
    event with the final event's ``id:`` was its last, as when the task
    ended on its own a moment before). One rule for the WSGI and ASGI
    streams."""
    if kind is StreamKind.RESUMABLE:
        return reconnect_event(retry_ms, last_event_id=last_event_id)
    final = final_event() if callable(final_event) else final_event
    if final is None:
        return b""
    encoded = final.encode() if isinstance(final, str) else final
    if last_event_id is not None and _last_id_in(encoded) == last_event_id:
        return b""
    return encoded


def count_ending(manager: ShutdownManager, kind: StreamKind, final_event: FinalEvent | None) -> None:
    """Tells the runtime, for the shutdown log, that a stream is ending at
    its moment with its kind's ending: a resumable one nudged to reconnect,
    a pod-bound one with a final event given it (now, or just before: the
    event that ended its task). A pod-bound stream without a final event
    ends with nothing and is not counted. One rule for the WSGI and ASGI
    streams."""
    if kind is StreamKind.RESUMABLE or final_event is not None:
        manager.stream_ending_sent(kind)


def reconnect_event(
    retry_ms: int = DEFAULT_RECONNECT_RETRY_MS,
    reason: str = "server shutting down",
    last_event_id: str | None = None,
) -> bytes:
    """The last event of a resumable stream closed by the deadline: with
    the id of the last event sent, so that the reconnect resumes after it."""
    data = json.dumps({"reason": reason, "retry_ms": retry_ms})
    id_line = f"id: {last_event_id}\n" if last_event_id is not None else ""
    return f"retry: {retry_ms}\n{id_line}event: reconnect\ndata: {data}\n\n".encode()


def _last_id_in(chunk: Any) -> str | None:
    data = chunk.encode() if isinstance(chunk, str) else chunk
    if not isinstance(data, (bytes, bytearray)):
        return None
    found = None
    for match in _ID_LINE.finditer(data):
        found = match.group(1).decode("utf-8", "replace")
    return found


class _Wake:
    """The type of ``WAKE``."""

    _instance: _Wake | None = None

    def __new__(cls) -> _Wake:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "last_call.wsgi.WAKE"


#: What a waker puts in a stream's queue (``wake_queue``), and what a
#: generator may yield when woken: the wrapper never sends it to the client.
WAKE = _Wake()

#: The stream whose generator runs on this thread (set by the wrapper
#: around each step of the generator), for ``on_wake`` and ``wake_queue``.
_serving = threading.local()

Q = TypeVar("Q", bound="queue.Queue[Any]")


def on_wake(waker: Callable[[], object]) -> bool:
    """Called from inside a generator served by ``TrackedStream``: makes
    ``waker()`` the call that wakes this stream at its moment in
    ClosingStreams (called once, on the scheduler thread; it must make the
    generator's wait return and must not block). Called after the moment
    has passed, it calls ``waker()`` at once. False (and nothing is
    registered) when no wrapped stream is being served on this thread."""
    stream = getattr(_serving, "stream", None)
    if stream is None:
        return False
    stream.set_waker(waker)
    return True


def wake_queue(subscriber: Q) -> Q:
    """Returns ``subscriber`` after making ``subscriber.put_nowait(WAKE)``
    the waker of the stream served on this thread (see ``on_wake``). The
    generator yields ``WAKE`` when it gets it from the queue."""
    on_wake(lambda: subscriber.put_nowait(WAKE))
    return subscriber


def _weakly(method: Callable[..., None]) -> Callable[..., None]:
    """``method``, called through a weak reference: what the runtime and
    the scheduler hold must not keep a stream alive, or a server that drops
    a body without ``close()`` would leave it counted (``__del__`` is the
    backstop that uncounts it)."""
    reference = weakref.WeakMethod(method)

    def call(*args: Any) -> None:
        target = reference()
        if target is not None:
            target(*args)

    return call


class TrackedStream:
    """An iterable that counts one stream while it is being served, and
    ends it at its own moment of ClosingStreams (see the module's doc)."""

    def __init__(
        self,
        iterable: Iterable[Any],
        manager: ShutdownManager | None = None,
        environ: Mapping[str, Any] | None = None,
        *,
        reconnect_retry_ms: int = DEFAULT_RECONNECT_RETRY_MS,
        kind: StreamKind = StreamKind.RESUMABLE,
        final_event: FinalEvent | None = None,
        wake: Callable[[], object] | None = None,
    ) -> None:
        if manager is None:
            manager = default_manager()
        self._iterable = iterable
        self._iterator: Iterator[Any] | None = None
        self._manager = manager
        self._disconnected: Callable[[], bool] | None = (environ or {}).get("waitress.client_disconnected")
        self._retry_ms = reconnect_retry_ms
        self._counted = False
        self._closed = False
        self._reconnect_sent = False
        self.kind = StreamKind(kind)
        self._final_event = final_event
        #: The id of the last event this stream carried (None before any).
        self.last_event_id: str | None = None
        #: When this stream ends in ClosingStreams (time.monotonic), once drawn.
        self._end_at: float | None = None
        #: Set (by the scheduler thread) once the moment has come.
        self._due = False
        self._waker = wake
        self._scheduled: Scheduled | None = None
        # The moment is drawn once, by whichever comes first: the phase
        # callback (ClosingStreams began while the stream is open) or the
        # stream's start (it began during ClosingStreams).
        self._draw_lock = threading.Lock()
        self._phase_callback: Callable[..., None] | None = None

    def __iter__(self) -> TrackedStream:
        return self

    def __next__(self) -> Any:
        if self._closed:
            raise StopIteration
        if not self._counted:
            # Counted when iteration starts, never before: a body that is
            # never iterated (HEAD, an error after the view) is never counted.
            self._manager.increment_active_streams()
            self._counted = True
            self._iterator = iter(self._iterable)
            self._watch()
        assert self._iterator is not None
        while True:
            if self._disconnected is not None and self._disconnected():
                self.close()
                raise StopIteration
            if self._reconnect_sent:
                self.close()
                raise StopIteration
            if self._due or self._is_due():
                self._reconnect_sent = True
                return self._last_words()
            if self._waker is not None:
                # The common step, once the generator has its waker: no
                # thread-local bookkeeping on the per-event path.
                try:
                    chunk = next(self._iterator)
                except BaseException:
                    # StopIteration (the natural end) or the generator's exception.
                    self.close()
                    raise
            else:
                # Until then, on_wake/wake_queue inside the generator find
                # this stream through the thread.
                _serving.stream = self
                try:
                    chunk = next(self._iterator)
                except BaseException:
                    self.close()
                    raise
                finally:
                    _serving.stream = None
            if chunk is WAKE:
                # Woken (or a stale wake): never sent; the checks above
                # decide whether the stream ends now.
                continue
            last_id = _last_id_in(chunk)
            if last_id is not None:
                self.last_event_id = last_id
            return chunk

    def _is_due(self) -> bool:
        if self._end_at is None:
            # A manager whose phase moved without calling back (the no-op
            # one in tests): read the phase at each step.
            if self._manager.phase < Phase.CLOSING_STREAMS:
                return False
            self._draw()
        return self._end_at is not None and time.monotonic() >= self._end_at

    # ----- the moment -----

    def _watch(self) -> None:
        """At the stream's start: draw at ClosingStreams, or now if it has
        begun. The callback is registered before the phase is read, so no
        change falls in between."""
        self._phase_callback = _weakly(self._on_phase)
        self._manager.on_phase(self._phase_callback)
        if self._manager.phase >= Phase.CLOSING_STREAMS:
            self._draw()

    def _on_phase(self, _old: Phase, new: Phase) -> None:
        # On the runtime's delivery thread.
        if new >= Phase.CLOSING_STREAMS:
            self._draw()

    def _draw(self) -> None:
        with self._draw_lock:
            if self._end_at is not None or self._closed:
                return
            end_in = self._manager.stream_end_in(self.kind)
            self._end_at = time.monotonic() + (end_in or 0.0)
            self._scheduled = call_at(self._end_at, _weakly(self._wake_now))

    def _wake_now(self) -> None:
        # On the scheduler thread, at the stream's moment.
        self._due = True
        waker = self._waker
        if waker is not None and not self._closed:
            waker()

    def set_waker(self, waker: Callable[[], object]) -> None:
        """Makes ``waker()`` the call that wakes this stream's generator at
        its moment; called at once if the moment has passed."""
        self._waker = waker
        if self._due and not self._closed:
            waker()

    def _last_words(self) -> bytes:
        """What ClosingStreams ends this stream with, by its kind."""
        count_ending(self._manager, self.kind, self._final_event)
        return stream_ending(self.kind, self._retry_ms, self.last_event_id, self._final_event)

    def close(self) -> None:
        """Ends the stream: closes the wrapped iterable and uncounts it,
        exactly once, whoever calls this and however often."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._scheduled is not None:
                self._scheduled.cancel()
            if self._phase_callback is not None:
                callback, self._phase_callback = self._phase_callback, None
                self._manager.remove_phase_callback(callback)
            close = getattr(self._iterable, "close", None)
            if close is not None:
                close()
        finally:
            if self._counted:
                self._manager.decrement_active_streams()

    def __del__(self) -> None:
        # Backstop for servers that drop an iterated body without close().
        try:
            self.close()
        except Exception:  # noqa: BLE001 - nothing to report to at collection time
            pass


def track_stream(
    iterable: Iterable[Any],
    manager: ShutdownManager | None = None,
    environ: Mapping[str, Any] | None = None,
    **options: Any,
) -> TrackedStream:
    """Wraps a WSGI response body (an SSE generator) so that it is counted
    as one active stream while it is served. Pass the request's ``environ``
    to end promptly when Waitress reports the client gone, ``kind``
    (``StreamKind.RESUMABLE``, the default, or ``StreamKind.POD_BOUND``) and,
    for a pod-bound stream, the ``final_event`` it ends with in
    ClosingStreams, and ``wake``: a callable that makes the generator's
    wait return, called at the stream's moment (see the module's doc; the
    generator may instead call ``on_wake``/``wake_queue`` itself). Options:
    ``reconnect_retry_ms``, ``kind``, ``final_event``, ``wake``."""
    return TrackedStream(iterable, manager, environ, **options)
