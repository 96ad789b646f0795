"""Server-Sent Events helpers: the two kinds of stream, event ids, and the
``Last-Event-ID`` a reconnecting client sends.

::

    from last_call.sse import StreamKind, format_event, last_event_id

    after = last_event_id(request.environ)          # "41", or None
    yield format_event(json.dumps(event), event="task_event", id=42)
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

__all__ = ["StreamKind", "format_event", "last_event_id"]


class StreamKind(str, enum.Enum):
    """What another pod can do for a stream's client, chosen when the
    stream is opened (``track_stream(..., kind=...)``, ``@sse_stream(kind=...)``).

    * ``RESUMABLE``: any pod can serve it (a feed, shared state). In
      ClosingStreams it gets ``retry:``, its last event's ``id:`` and
      ``event: reconnect``, at its own moment of the close notice (the
      reconnect spread).
    * ``POD_BOUND``: only this process can serve it (a task in its memory).
      It runs through the close notice and gets the host's final event at
      the streams' last moment (just before the hooks' budget), then ends;
      it is never pointed at another pod.
    """

    RESUMABLE = "resumable"
    POD_BOUND = "pod_bound"

    @property
    def native(self) -> int:
        """The C ABI's value (``GS_STREAM_RESUMABLE`` / ``GS_STREAM_POD_BOUND``)."""
        return 0 if self is StreamKind.RESUMABLE else 1


def _field(name: str, value: object) -> str:
    text = str(value)
    if "\n" in text or "\r" in text:
        raise ValueError(f"an SSE {name} must be one line")
    return f"{name}: {text}\n"


def format_event(
    data: str,
    *,
    event: str | None = None,
    id: str | int | None = None,  # noqa: A002 - the SSE field's name
    retry_ms: int | None = None,
) -> str:
    """One SSE event as text: optional ``retry:``, ``id:`` and ``event:``
    lines, then one ``data:`` line per line of ``data``, then a blank line.
    An id or event name with a line break (which would inject fields) is a
    ValueError; so is an id with a NUL (browsers ignore such an id)."""
    lines = []
    if retry_ms is not None:
        lines.append(_field("retry", int(retry_ms)))
    if id is not None:
        if "\0" in str(id):
            raise ValueError("an SSE id must not contain NUL")
        lines.append(_field("id", id))
    if event is not None:
        lines.append(_field("event", event))
    lines.extend(f"data: {line}\n" for line in data.splitlines() or [""])
    return "".join(lines) + "\n"


def last_event_id(environ: Mapping[str, Any]) -> str | None:
    """The ``Last-Event-ID`` header of a WSGI request (sent by an
    EventSource that reconnects), stripped; None when absent or empty."""
    value = environ.get("HTTP_LAST_EVENT_ID")
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None
