"""sse-starlette under the runtime's sequence::

    from last_call.sse_starlette import EventSourceResponse

    async def feed(request):
        return EventSourceResponse(tokens(), kind=StreamKind.RESUMABLE)

sse-starlette ends every stream on its own as soon as uvicorn is told to
exit (its "automatic graceful drain": a watcher that sees the SIGTERM and
cancels the streams 0 to 0.5 s later: it polls every 0.5 s). Under the runtime that is the wrong
moment: Draining keeps streams running, and ClosingStreams ends each with
its kind's ending at its own moment. So this adapter:

* turns the automatic drain off (``AppStatus.disable_automatic_graceful_drain``)
  when it is first used, and sets ``AppStatus.should_exit`` itself in
  Stopping, as sse-starlette asks of whoever disables the drain (any stream
  it does not count then ends; there should be none);
* counts each response as one stream (``last_call.asgi.Stream``) for as long
  as sse-starlette iterates its content, and races the content against the
  stream's ``closing`` event, ending with ``retry:`` + last ``id:`` +
  ``event: reconnect`` (resumable) or the host's ``final_event`` (pod-bound);
* sets the response's ``shutdown_event`` (sse-starlette's cooperative
  signal to the generator) at that same moment.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncGenerator
from typing import Any

import anyio
from sse_starlette.sse import AppStatus
from sse_starlette.sse import EventSourceResponse as _EventSourceResponse

from .asgi._response import Content, _as_async
from .asgi._stream import Stream
from .asgi._types import COUNTED_SCOPE_KEY, Receive, Scope, Send
from .interface import ShutdownManager
from .manager import default_manager
from .phase import Phase
from .sse import StreamKind
from .wsgi import DEFAULT_RECONNECT_RETRY_MS, FinalEvent

__all__ = ["EventSourceResponse", "install"]

_installed_on: set[int] = set()
_install_lock = threading.Lock()


def install(manager: ShutdownManager | None = None) -> None:
    """Disables sse-starlette's automatic drain and sets its
    ``AppStatus.should_exit`` in Stopping. Idempotent per manager; called by
    ``EventSourceResponse`` (call it at startup to have it done early)."""
    runtime = manager if manager is not None else default_manager()
    with _install_lock:
        if id(runtime) in _installed_on:
            return
        _installed_on.add(id(runtime))
    AppStatus.disable_automatic_graceful_drain()  # type: ignore[no-untyped-call]

    def at_stopping(_old: Phase, new: Phase) -> None:
        if new >= Phase.STOPPING:
            AppStatus.should_exit = True

    runtime.on_phase(at_stopping)


class EventSourceResponse(_EventSourceResponse):
    """sse-starlette's response, counted and ended by the runtime (see the
    module's documentation). ``kind``, ``final_event``, ``manager`` and
    ``reconnect_retry_ms`` are ours; every other (keyword) argument is
    sse-starlette's."""

    def __init__(
        self,
        content: Content,
        *,
        kind: StreamKind = StreamKind.RESUMABLE,
        final_event: FinalEvent | None = None,
        manager: ShutdownManager | None = None,
        reconnect_retry_ms: int = DEFAULT_RECONNECT_RETRY_MS,
        shutdown_event: anyio.Event | None = None,
        **kwargs: Any,
    ) -> None:
        install(manager)
        self._counted_stream = Stream(
            kind, manager=manager, final_event=final_event, reconnect_retry_ms=reconnect_retry_ms
        )
        self._cooperative_event = shutdown_event
        self._body = self._counted(content)
        super().__init__(self._body, shutdown_event=shutdown_event, **kwargs)

    async def _counted(self, content: Content) -> AsyncGenerator[Any, None]:
        counted = self._counted_stream
        if self._cooperative_event is not None:
            counted.on_closing(self._cooperative_event.set)
        async with counted:
            async for item in counted.events(_as_async(content)):
                yield item

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[COUNTED_SCOPE_KEY] = True
        try:
            await super().__call__(scope, receive, send)
        finally:
            # A stream cancelled while suspended at a yield is closed here,
            # so that it is uncounted now rather than at garbage collection.
            with contextlib.suppress(Exception):
                await self._body.aclose()
