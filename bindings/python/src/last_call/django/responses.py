"""``EventStreamResponse``: Django's ``StreamingHttpResponse`` for SSE,
counted as one stream while it is served and ended by its kind in
ClosingStreams, under WSGI and ASGI alike.

* A **synchronous** iterable (gunicorn's gthread workers, any WSGI server)
  is served through ``last_call.wsgi.TrackedStream``: counted when the
  server starts iterating it, uncounted in ``close()`` (which Django's
  response calls, and every WSGI server calls on the response), woken at
  its moment by ``wake_queue``/``on_wake`` inside the generator.
* An **asynchronous** iterable (Django's ASGI handler under uvicorn) is
  served through ``last_call.asgi.Stream``: counted when Django starts
  iterating it, raced against the stream's ``closing`` moment, uncounted
  however it ends (its end, an exception, the client gone: Django cancels
  the response when it hears ``http.disconnect``).

A resumable stream is told to reconnect (``retry:``, its last ``id:``,
``event: reconnect``) at its own moment of the close notice; a pod-bound
one gets ``final_event`` at the streams' last moment. Serve a synchronous
iterable under ASGI and Django consumes it on a thread per chunk (it
warns); an asynchronous one under WSGI, and Django collects it whole before
sending anything: give each server its kind.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any, Union

from django.http import StreamingHttpResponse  # type: ignore[import-untyped]

from ..sse import StreamKind
from ..wsgi import DEFAULT_RECONNECT_RETRY_MS, FinalEvent, TrackedStream
from . import _state

#: Headers every SSE response needs behind proxies (nginx buffers otherwise).
SSE_HEADERS = {"X-Accel-Buffering": "no", "Cache-Control": "no-cache"}

Content = Union[Iterable[Union[str, bytes]], AsyncIterable[Union[str, bytes]]]


async def _counted(
    content: AsyncIterable[Any], kind: StreamKind, final_event: FinalEvent | None, retry_ms: int
) -> AsyncIterator[Any]:
    from ..asgi import Stream

    # Entered at the first iteration: a response never iterated (HEAD, an
    # error after the view) is never counted.
    async with Stream(
        kind, manager=_state.current_manager(), final_event=final_event, reconnect_retry_ms=retry_ms
    ) as s:
        async for chunk in s.events(content):
            yield chunk


class EventStreamResponse(StreamingHttpResponse):  # type: ignore[misc]
    """A ``text/event-stream`` response counted as one stream (see the
    module's documentation). ``kind``: ``StreamKind.RESUMABLE`` (default)
    or ``StreamKind.POD_BOUND``; ``final_event``: a pod-bound stream's last
    words (SSE text, or a callable returning it, called once);
    ``reconnect_retry_ms``: the ``retry:`` of a reconnect nudge. Other
    keywords go to ``StreamingHttpResponse`` (``status``, ``headers``)."""

    def __init__(
        self,
        content: Content,
        *,
        kind: StreamKind = StreamKind.RESUMABLE,
        final_event: FinalEvent | None = None,
        reconnect_retry_ms: int = DEFAULT_RECONNECT_RETRY_MS,
        **options: Any,
    ) -> None:
        options.setdefault("content_type", "text/event-stream")
        kind = StreamKind(kind)
        if isinstance(content, AsyncIterable):
            body: Any = _counted(content, kind, final_event, reconnect_retry_ms)
        else:
            body = TrackedStream(
                content,
                _state.current_manager(),
                reconnect_retry_ms=reconnect_retry_ms,
                kind=kind,
                final_event=final_event,
            )
        super().__init__(body, **options)
        self.tracked = body if isinstance(body, TrackedStream) else None
        for name, value in SSE_HEADERS.items():
            self.setdefault(name, value)
