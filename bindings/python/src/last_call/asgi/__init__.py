"""asyncio and ASGI hosts (uvicorn with Starlette or FastAPI).

::

    from last_call.asgi import EventStreamResponse, lifespan

    app = Starlette(routes=..., lifespan=lifespan())     # under uvicorn

    async def feed(request):
        return EventStreamResponse(token_generator(), kind=StreamKind.RESUMABLE)

Everything is imported from here; one module per concern holds it, and says
why it is built the way it is:

* ``_waits``: the awaitable waits (``wait_for_phase``, ``wait_for_shutdown``,
  ``wait_for_streams``), which never block a thread and cancel cleanly;
* ``_stream``: ``async with stream(kind=...)``, one counted stream with its
  ``closing`` event and its kind's ending;
* ``_response``: ``EventStreamResponse``, counted exactly once however it
  ends, and the ``CountStreams`` middleware;
* ``_lifespan``: ``lifespan()``, the Starlette/FastAPI lifespan (the probe
  listener, the heartbeat, the runtime's sequence under uvicorn), over
* ``_wrap``: ``with_lifespan(app)``, that lifespan for an app that speaks no
  lifespan protocol itself (Django's ASGI handler);
* ``_signals``: uvicorn's SIGTERM/SIGINT handlers giving way to the runtime's;
* ``_uvicorn``: uvicorn's server, found behind its handler and stopped in
  Stopping;
* ``_relay``: calls handed from the runtime's threads onto the loop;
* ``_types``: the ASGI message, scope and callable shapes.
"""

# The public names (in __all__), and beside them, importable from here as
# before the split, the constants and the ASGI shapes (``X as X``: re-exported).
from ._lifespan import HEARTBEAT_INTERVAL as HEARTBEAT_INTERVAL
from ._lifespan import PROBE_ADDR_ENV as PROBE_ADDR_ENV
from ._lifespan import Lifespan as Lifespan
from ._lifespan import lifespan
from ._response import SSE_HEADERS as SSE_HEADERS
from ._response import Content as Content
from ._response import CountStreams, EventStreamResponse
from ._stream import Stream, stream
from ._types import COUNTED_SCOPE_KEY as COUNTED_SCOPE_KEY
from ._types import ASGIApp as ASGIApp
from ._types import Message as Message
from ._types import Receive as Receive
from ._types import Scope as Scope
from ._types import Send as Send
from ._waits import PHASE_RECHECK_SECONDS as PHASE_RECHECK_SECONDS
from ._waits import STREAMS_POLL_SECONDS as STREAMS_POLL_SECONDS
from ._waits import wait_for_phase, wait_for_shutdown, wait_for_streams
from ._wrap import with_lifespan

__all__ = [
    "CountStreams",
    "EventStreamResponse",
    "Stream",
    "lifespan",
    "stream",
    "wait_for_phase",
    "wait_for_shutdown",
    "wait_for_streams",
    "with_lifespan",
]
