"""``EventStreamResponse``, a plain ASGI response that counts its stream
exactly once, however it ends (natural end, client disconnect, exception,
cancellation), and ``CountStreams``, a middleware that counts the
``text/event-stream`` responses of an app that builds its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Union

from ..interface import ShutdownManager
from ..sse import StreamKind
from ..wsgi import DEFAULT_RECONNECT_RETRY_MS, FinalEvent
from ._relay import manager_or_default
from ._stream import Stream
from ._types import COUNTED_SCOPE_KEY, ASGIApp, Message, Receive, Scope, Send

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
        runtime = manager_or_default(self._manager)
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
