"""A Starlette app for ``uvicorn --workers 2`` whose every worker holds a
stream hub on the pod's one hub port (``last_call.asgi.lifespan`` says how
many workers share it, from uvicorn's own settings), for
test_hub_workers.py. Routes as hub_workers_wsgi.py's.

Run: python hub_workers_asgi.py WORKERS (PORT from the environment).
"""

import contextlib
import os
import sys

import uvicorn
from last_call import hub
from last_call.asgi import lifespan
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@contextlib.asynccontextmanager
async def start_the_hub(_app):
    hub.start()  # after the lifespan told the runtime of the other workers
    yield


async def publish(request: Request) -> JSONResponse:
    body = await request.json()
    hub.publish(body["channel"], body["data"])
    return JSONResponse({"pid": os.getpid()})


async def token(request: Request) -> JSONResponse:
    return JSONResponse({"token": hub.subscribe_token(request.query_params["channel"], ttl=600)})


app = Starlette(
    routes=[Route("/publish", publish, methods=["POST"]), Route("/token", token)],
    lifespan=lifespan(start_the_hub),
)

if __name__ == "__main__":
    port = int(os.environ["PORT"])
    # uvicorn's supervisor binds the port before it starts the workers.
    print(f"serving on http://127.0.0.1:{port}", flush=True)
    uvicorn.run("hub_workers_asgi:app", host="127.0.0.1", port=port, workers=int(sys.argv[1]), log_level="info")
