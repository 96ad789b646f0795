"""``with_lifespan(app)``: the runtime's lifespan for an ASGI app that does
not speak the lifespan protocol itself (Django's ASGI handler raises on
it, and uvicorn then runs with none: SIGTERM stops it at once)."""

from __future__ import annotations

from typing import Any

from ._lifespan import Lifespan, lifespan
from ._types import ASGIApp, Receive, Scope, Send


def with_lifespan(app: ASGIApp, app_lifespan: Lifespan | None = None, **settings: Any) -> ASGIApp:
    """``app``, with the ``lifespan`` scope answered by
    ``last_call.asgi.lifespan(app_lifespan, **settings)`` (``app_lifespan``:
    the app's own start and end, run inside the runtime's) and every other
    scope passed on. Startup fails (``lifespan.startup.failed``, naming the
    error) as the lifespan does: uvicorn then exits with status 3."""
    run = lifespan(app_lifespan, **settings)

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "lifespan":
            await app(scope, receive, send)
            return
        await receive()  # lifespan.startup
        context = run(app)
        try:
            await context.__aenter__()
        except BaseException as error:  # noqa: BLE001 - reported to the server, as the protocol says
            await send({"type": "lifespan.startup.failed", "message": f"{type(error).__name__}: {error}"})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        try:
            await context.__aexit__(None, None, None)
        except BaseException as error:  # noqa: BLE001 - as above
            await send({"type": "lifespan.shutdown.failed", "message": f"{type(error).__name__}: {error}"})
            return
        await send({"type": "lifespan.shutdown.complete"})

    return wrapped
