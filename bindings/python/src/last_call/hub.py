"""The stream hub: Server-Sent Events held by the runtime, not by the app.

The app publishes to named channels from any thread; the runtime's own
thread holds every subscriber's connection, so a Waitress app on 8 threads
serves thousands of streams, learns at once when a client goes away, and
ends each stream by its kind at shutdown::

    from last_call import hub
    from last_call.sse import StreamKind

    hub.start()                              # GS_STREAM_ADDR, GS_STREAM_SECRET
    hub.set_final_event(f"task-{id}", "task_failed", '{"reason": "shutdown"}')
    url = hub.subscribe_url(f"task-{id}", ttl=3600)   # hand it to the browser
    hub.publish(f"task-{id}", '{"step": 1}', event="step", kind=StreamKind.POD_BOUND)
    hub.close(f"task-{id}", ("task_completed", "{}"))

``publish`` is one ctypes call (``gs_hub_send``), which releases the GIL
while the runtime queues the event to every subscriber; it never blocks on
a client.
"""

from __future__ import annotations

import ctypes
import urllib.parse
from typing import Callable

from . import _native, settings
from .sse import StreamKind
from .status import Status, error_for

__all__ = [
    "PUBLIC_URL_ENV",
    "address",
    "close",
    "publish",
    "set_final_event",
    "slow_clients_disconnected",
    "start",
    "subscribe_token",
    "subscribe_url",
]

#: The public base URL of the hub as browsers reach it (an ingress path such
#: as ``https://app.example.com/hub``, or ``/hub`` for same-origin), used by
#: :func:`subscribe_url` when no ``base_url`` is given.
PUBLIC_URL_ENV = "GS_STREAM_PUBLIC_URL"

_KIND_CODES = {StreamKind.RESUMABLE: 0, StreamKind.POD_BOUND: 1}
_RESUMABLE = StreamKind.RESUMABLE
_POD_BOUND = StreamKind.POD_BOUND
#: gs_hub_send, once the library is loaded.
_send: Callable[..., int] | None = None
_address: tuple[str, int] | None = None


def start(addr: str | None = None) -> tuple[str, int]:
    """Starts the hub (``None``: ``GS_STREAM_ADDR``); the secret comes from
    ``GS_STREAM_SECRET`` (required), the rest from the other ``GS_STREAM_*``
    settings (an app's ``GracefulShutdown``/Django settings, else the
    environment). Prints ``streams on http://HOST:PORT`` and returns
    ``(host, port)``. Once per process (``InvalidStateError`` again)."""
    global _address
    buffer = ctypes.create_string_buffer(128)
    encoded = None if addr is None else addr.encode("utf-8")
    _native.check(_native.library().gs_hub_start(encoded, buffer, len(buffer), None))
    settings.mark_read(settings.GROUPS["hub"], "the stream hub (started)")
    host, _, port = buffer.value.decode("utf-8").rpartition(":")
    _address = (host.strip("[]"), int(port))
    return _address


def address() -> tuple[str, int] | None:
    """``(host, port)`` of the hub this process started, if any."""
    return _address


def publish(
    channel: str,
    data: str | bytes,
    *,
    event: str = "message",
    id: str | None = None,  # noqa: A002 - the SSE field's name
    kind: StreamKind = StreamKind.RESUMABLE,
) -> str:
    """Publishes ``data`` (several lines become several ``data:`` lines) to
    ``channel`` as ``event``, from any thread, without blocking; returns the
    event's id (``id``, or the channel's next number; ``""`` with a shared
    store, ``GS_STREAM_STORE``, which gives it the id valid on every pod when
    it is written, and does not use ``id``). ``kind`` is the
    channel's from now on. ``InvalidArgumentError`` for a bad channel name (1
    to 200 of ``A-Z a-z 0-9 - _ . ~ :``), a line break in ``event`` or
    ``id``, data holding a NUL, or (without a shared store) a closed channel; ``InvalidStateError``
    before :func:`start`, or when the queue to the shared store is full
    (``Status.HUB_BUSY``: the store is slower than the publishers)."""
    # A host's hot path, measured in benches/hub_publish.py: one ctypes call
    # of five arguments (each costs ctypes a conversion), no buffer to copy
    # the id out of, no enum call for the two kinds, the function looked up
    # once.
    payload = data.encode() if isinstance(data, str) else data
    if 0 in payload:
        # The data is passed NUL-terminated: refuse it rather than cut it.
        raise error_for(Status.INVALID_ARGUMENT, "event data must not contain NUL")
    code = 0 if kind is _RESUMABLE else 1 if kind is _POD_BOUND else _KIND_CODES[StreamKind(kind)]
    if id is not None:
        return _publish_with_id(channel, code, event, payload, id)
    result: int = (_send or _bind_send())(channel.encode(), code, event.encode(), payload, None)
    if result > 0:
        return str(result)
    if result == 0:
        return ""  # a shared store numbers it when it is written
    _native.check(-result)
    raise error_for(Status.PANIC, f"gs_hub_send returned {result}")


def _publish_with_id(channel: str, code: int, event: str, payload: bytes, id: str) -> str:  # noqa: A002
    """A publish with the host's own id, through ``gs_hub_publish``, which
    copies back the id the event has: ``id`` itself, or ``""`` with a
    shared store, which does not use it (``gs_hub_send`` answers 0 for
    both)."""
    given = id.encode()
    out = ctypes.create_string_buffer(len(given) + 1)
    _native.check(
        _native.library().gs_hub_publish(
            channel.encode(), event.encode(), payload, len(payload), given, code, out, len(out), None
        )
    )
    return out.value.decode()


def _bind_send() -> Callable[..., int]:
    global _send
    _send = _native.library().gs_hub_send
    return _send


def close(channel: str, final_event: tuple[str, str] | None = None) -> bool:
    """Closes ``channel``: every subscriber gets the final event
    (``(event, data)``, else the one set with :func:`set_final_event`, else
    ``event: close``) and its stream ends. ``False`` if it was unknown."""
    known = ctypes.c_bool(False)
    event, data = (None, None) if final_event is None else (final_event[0].encode(), final_event[1].encode())
    _native.check(_native.library().gs_hub_close_channel(channel.encode("utf-8"), event, data, ctypes.byref(known)))
    return bool(known.value)


def set_final_event(channel: str, event: str, data: str, *, kind: StreamKind = StreamKind.POD_BOUND) -> None:
    """Sets the final event ``channel`` ends with: at the streams' last
    moment (the end of the close notice) for a pod-bound channel (such as
    ``task_failed`` with reason ``shutdown``), and on :func:`close` without
    one."""
    _native.check(
        _native.library().gs_hub_set_final_event(
            channel.encode("utf-8"), _KIND_CODES[StreamKind(kind)], event.encode("utf-8"), data.encode("utf-8")
        )
    )


def subscribe_token(channel: str, ttl: float = 3600.0) -> str:
    """A token for ``channel`` valid ``ttl`` seconds on every pod that shares
    ``GS_STREAM_SECRET``."""
    buffer = ctypes.create_string_buffer(512)
    _native.check(_native.library().gs_hub_subscribe_token(channel.encode("utf-8"), ttl, buffer, len(buffer), None))
    return buffer.value.decode("ascii")


def subscribe_url(channel: str, ttl: float = 3600.0, base_url: str | None = None) -> str:
    """The URL a browser's ``EventSource`` opens for ``channel``, token
    included: under ``base_url``, else ``GS_STREAM_PUBLIC_URL``, else the
    hub's own ``http://HOST:PORT``. A relative base (``/hub``) gives a
    relative URL, for an ingress that routes that path to the hub."""
    base = base_url or settings.package_value(PUBLIC_URL_ENV)
    if not base:
        if _address is None:
            raise error_for(Status.HUB_NOT_STARTED, "the stream hub has not been started")
        host, port = _address
        host = f"[{host}]" if ":" in host else host
        base = f"http://{host}:{port}"
    token = urllib.parse.quote(subscribe_token(channel, ttl), safe="")
    return f"{base.rstrip('/')}/streams/{urllib.parse.quote(channel, safe=':~')}?token={token}"


def slow_clients_disconnected() -> int:
    """Subscribers disconnected for falling too far behind."""
    return int(_native.library().gs_hub_slow_clients_disconnected_total())
