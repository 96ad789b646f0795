"""A Starlette app whose settings are keywords of ``lifespan()`` (from
``LIFESPAN_KEYWORDS``, JSON) over the environment, served by uvicorn, for
test_host_settings.py.

Run: python settings_asgi.py  (PORT from the environment; 0: a free one)
"""

import contextlib
import json
import os
import socket

import uvicorn
from last_call.asgi import lifespan
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def pid(_request):
    return JSONResponse({"worker": os.getpid()})


sock = socket.socket()


@contextlib.asynccontextmanager
async def announce(_app):
    # After the probe listener has started (and announced itself).
    print(f"serving on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    yield


app = Starlette(
    routes=[Route("/pid", pid)],
    lifespan=lifespan(announce, **json.loads(os.environ.get("LIFESPAN_KEYWORDS", "{}"))),
)

if __name__ == "__main__":
    sock.bind((os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "0"))))
    sock.listen(128)
    uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="info")).run(sockets=[sock])
