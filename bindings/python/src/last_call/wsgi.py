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
(``last_call.sse.StreamKind``):

* a **resumable** stream, at its own moment of the close notice (the
  reconnect spread, drawn by the runtime), gets ``retry:``, the ``id:`` of
  the last event it carried and ``event: reconnect``, so the browser's
  EventSource reconnects to another pod, resuming after that id, instead of
  seeing a reset at SIGKILL;
* a **pod-bound** stream gets the host's ``final_event`` (if any) at once,
  then ends; it is never told to reconnect, since no other pod can serve it.

A generator must yield something (an event or a heartbeat comment) more
often than the close notice, or the wrapper cannot get a word in.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Callable, Union

from .manager import default_manager
from .phase import Phase
from .protocol import ShutdownManager
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
    event (nothing if it has none). One rule for the WSGI and ASGI streams."""
    if kind is StreamKind.RESUMABLE:
        return reconnect_event(retry_ms, last_event_id=last_event_id)
    final = final_event() if callable(final_event) else final_event
    if final is None:
        return b""
    return final.encode() if isinstance(final, str) else final


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


class TrackedStream:
    """An iterable that counts one stream while it is being served."""

    def __init__(
        self,
        iterable: Iterable[Any],
        manager: ShutdownManager | None = None,
        environ: Mapping[str, Any] | None = None,
        *,
        reconnect_retry_ms: int = DEFAULT_RECONNECT_RETRY_MS,
        kind: StreamKind = StreamKind.RESUMABLE,
        final_event: FinalEvent | None = None,
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
        if self._disconnected is not None and self._disconnected():
            self.close()
            raise StopIteration
        if self._reconnect_sent:
            self.close()
            raise StopIteration
        if self._end_at is None and self._manager.phase >= Phase.CLOSING_STREAMS:
            end_in = self._manager.stream_end_in(self.kind)
            self._end_at = time.monotonic() + (end_in or 0.0)
        if self._end_at is not None and time.monotonic() >= self._end_at:
            self._reconnect_sent = True
            return self._last_words()
        assert self._iterator is not None
        try:
            chunk = next(self._iterator)
        except BaseException:
            # StopIteration (the natural end) or the generator's exception.
            self.close()
            raise
        last_id = _last_id_in(chunk)
        if last_id is not None:
            self.last_event_id = last_id
        return chunk

    def _last_words(self) -> bytes:
        """What ClosingStreams ends this stream with, by its kind."""
        return stream_ending(self.kind, self._retry_ms, self.last_event_id, self._final_event)

    def close(self) -> None:
        """Ends the stream: closes the wrapped iterable and uncounts it,
        exactly once, whoever calls this and however often."""
        if self._closed:
            return
        self._closed = True
        try:
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
    ClosingStreams. Options: ``reconnect_retry_ms``, ``kind``,
    ``final_event``."""
    return TrackedStream(iterable, manager, environ, **options)
