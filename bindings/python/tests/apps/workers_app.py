"""A Starlette app for ``uvicorn --workers N`` without the stream hub, for
test_uvicorn_workers.py: SSE ticks that say which worker sends them.
(``workers_asgi.py`` runs it.)

``PROBE_AT_IMPORT=1`` starts the probe listener when the module is
imported, in each worker, as an app that does not use
``last_call.asgi.lifespan`` might: the second worker cannot bind the pod's
probe port, and the error must say why.
"""

import asyncio
import os

from last_call import GracefulShutdownManager, StreamKind
from last_call.asgi import EventStreamResponse, lifespan
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

manager = GracefulShutdownManager()
if os.environ.get("PROBE_AT_IMPORT") == "1":
    manager.start_probe_listener()


async def _ticks(count: int, interval: float):
    for n in range(1, count + 1):
        yield f"id: {n}\ndata: {os.getpid()} {n}\n\n"
        await asyncio.sleep(interval)
    yield "event: done\ndata: end\n\n"


async def ticks(request: Request) -> EventStreamResponse:
    count, interval = int(request.query_params.get("events", "10")), float(request.query_params.get("interval", "0.1"))
    return EventStreamResponse(_ticks(count, interval), kind=StreamKind.POD_BOUND)


app = Starlette(
    routes=[Route("/ticks", ticks)],
    lifespan=None if os.environ.get("PROBE_AT_IMPORT") == "1" else lifespan(),
)
