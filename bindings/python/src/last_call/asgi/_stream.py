"""``async with stream(kind=...)``: one counted stream, with a ``closing``
event set at the moment ClosingStreams asks *this* stream to end: at the
streams' last moment for a pod-bound stream, at its own drawn moment of the
close notice for a resumable one (``manager.stream_end_in(kind)``). A token
generator races against it (``stream.events(source)`` does the racing) and
ends with its kind's ending (``stream.ending()``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Callable
from types import TracebackType
from typing import Any

from ..interface import ShutdownManager
from ..phase import Phase
from ..sse import StreamKind
from ..wsgi import DEFAULT_RECONNECT_RETRY_MS, FinalEvent, _last_id_in, count_ending, stream_ending
from ._relay import call_soon, manager_or_default


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
        self._manager = manager_or_default(manager)
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
            call_soon(self._loop, self._schedule_end)

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
                count_ending(self._manager, self.kind, self._final_event)
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
