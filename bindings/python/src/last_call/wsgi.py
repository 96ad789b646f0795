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

In ClosingStreams the wrapper ends the stream itself with an SSE ``retry:``
line and an ``event: reconnect``, so the browser's EventSource reconnects
(to another pod) instead of seeing a reset at SIGKILL. A generator must
yield something (an event or a heartbeat comment) more often than the close
notice, or the wrapper cannot get a word in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Callable

from .manager import default_manager
from .phase import Phase
from .protocol import ShutdownManager

#: How long browsers wait before reconnecting after the reconnect event.
DEFAULT_RECONNECT_RETRY_MS = 1000


def reconnect_event(retry_ms: int = DEFAULT_RECONNECT_RETRY_MS, reason: str = "server shutting down") -> bytes:
    """The last event of a stream closed by the deadline."""
    data = json.dumps({"reason": reason, "retry_ms": retry_ms})
    return f"retry: {retry_ms}\nevent: reconnect\ndata: {data}\n\n".encode()


class TrackedStream:
    """An iterable that counts one stream while it is being served."""

    def __init__(
        self,
        iterable: Iterable[Any],
        manager: ShutdownManager | None = None,
        environ: Mapping[str, Any] | None = None,
        *,
        reconnect_retry_ms: int = DEFAULT_RECONNECT_RETRY_MS,
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
        if self._manager.phase >= Phase.CLOSING_STREAMS:
            self._reconnect_sent = True
            return reconnect_event(self._retry_ms)
        assert self._iterator is not None
        try:
            return next(self._iterator)
        except BaseException:
            # StopIteration (the natural end) or the generator's exception.
            self.close()
            raise

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
    to end promptly when Waitress reports the client gone."""
    return TrackedStream(iterable, manager, environ, **options)
