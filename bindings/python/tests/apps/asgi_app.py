"""A Starlette app under uvicorn with last_call.asgi, for test_asgi.py.

Routes (``events`` and ``interval`` query parameters where it streams):

* ``/ticks``: an EventStreamResponse (resumable), ``id: n`` per tick;
* ``/pod-bound``: the same, pod-bound, ending with ``event: final``;
* ``/raises``: one tick, then the generator raises;
* ``/plain``: Starlette's own StreamingResponse, counted by CountStreams;
* ``/sse``: sse-starlette's EventSourceResponse: the last_call adapter's,
  or with ``LAST_CALL_DISABLED=1`` sse-starlette's own (its automatic
  drain on);
* ``/metrics``: the runtime's figures as JSON.

LAST_CALL_DISABLED=1 serves plain uvicorn + sse-starlette (no lifespan
helper, and the adapter never imported): what an app gets without us.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys

signal.signal(signal.SIGTERM, lambda _signum, _frame: os._exit(0))

import anyio  # noqa: E402
import uvicorn  # noqa: E402
from last_call import GracefulShutdownManager, StreamKind  # noqa: E402
from last_call.asgi import CountStreams, EventStreamResponse, lifespan  # noqa: E402
from left_behind import install as leave_behind  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response, StreamingResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

ADAPTER = os.environ.get("LAST_CALL_DISABLED") != "1"
if ADAPTER:
    from last_call.sse_starlette import EventSourceResponse
else:
    from sse_starlette.sse import EventSourceResponse

manager = GracefulShutdownManager()
leave_behind(manager)  # LEFT_BEHIND: test_host_exit.py


def _arguments(request: Request) -> tuple[int, float]:
    return int(request.query_params.get("events", "10")), float(request.query_params.get("interval", "0.1"))


async def _ticks(events: int, interval: float):
    for n in range(1, events + 1):
        yield f"id: {n}\ndata: tick {n}\n\n"
        await asyncio.sleep(interval)
    yield "event: done\ndata: done\n\n"


async def ticks(request: Request) -> EventStreamResponse:
    return EventStreamResponse(_ticks(*_arguments(request)), kind=StreamKind.RESUMABLE)


async def pod_bound(request: Request) -> EventStreamResponse:
    return EventStreamResponse(
        _ticks(*_arguments(request)), kind=StreamKind.POD_BOUND, final_event="event: final\ndata: shutdown\n\n"
    )


async def raises(_request: Request) -> EventStreamResponse:
    async def body():
        yield "id: 1\ndata: tick 1\n\n"
        await asyncio.sleep(0.05)
        raise RuntimeError("the generator failed")

    return EventStreamResponse(body())


async def plain(request: Request) -> StreamingResponse:
    return StreamingResponse(_ticks(*_arguments(request)), media_type="text/event-stream")


async def sse(request: Request) -> Response:
    events, interval = _arguments(request)

    shutdown_event = anyio.Event()

    async def body():
        try:
            for n in range(1, events + 1):
                yield {"id": str(n), "data": f"tick {n}"}
                await asyncio.sleep(interval)
            yield {"event": "done", "data": "done"}
        finally:
            print(f"sse generator closed; shutdown_event set: {shutdown_event.is_set()}", flush=True)

    return EventSourceResponse(body(), ping=600, shutdown_event=shutdown_event)


async def metrics(_request: Request) -> Response:
    return Response(manager.metrics("json"), media_type="application/json")


ANNOUNCE: list[str] = []


@contextlib.asynccontextmanager
async def announce(_app: Starlette):
    # After the runtime's lifespan started the probe listener ("probes on").
    print(*ANNOUNCE, flush=True)
    yield


app = CountStreams(
    Starlette(
        routes=[
            Route("/ticks", ticks),
            Route("/pod-bound", pod_bound),
            Route("/raises", raises),
            Route("/plain", plain),
            Route("/sse", sse),
            Route("/metrics", metrics),
        ],
        lifespan=lifespan(announce, manager=manager) if ADAPTER else announce,
    )
)


if __name__ == "__main__":
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    if not ADAPTER:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    ANNOUNCE.append(f"serving on http://127.0.0.1:{sock.getsockname()[1]}")
    uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="info")).run(sockets=[sock])
    print("uvicorn returned", flush=True)
    sys.exit(0)
