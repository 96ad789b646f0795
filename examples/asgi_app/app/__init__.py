"""The example-server contract (docs/examples.md) on Starlette, under uvicorn, with last_call.asgi.

Bounded input: a body over ``max_body_bytes`` is 413, a body not sent as
``application/json`` 415, JSON that is not a task (or nested too deep to
parse) 400, all with a JSON ``{"error"}``. A task is refused with 503 +
Retry-After while draining and when full.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from last_call import Phase, ShutdownManager, StreamKind
from last_call.asgi import EventStreamResponse, lifespan
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from .task_service import TaskRefused, TaskService

logger = logging.getLogger("asgi_app")

#: Told to clients refused while draining or full.
RETRY_AFTER_SECONDS = 2
MAX_STEPS = 1_000
MAX_STEP_SECONDS = 60.0


class _TooLarge(Exception):
    pass


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused (``_TooLarge``) as soon as it passes
    ``limit`` bytes, without reading the rest."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _task_arguments(body: bytes) -> tuple | None:
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(parsed, dict):
        return None
    return parsed.get("steps"), parsed.get("step_seconds")


async def _encoded(content: AsyncIterator[str]) -> AsyncIterator[bytes]:
    async for text in content:
        yield text.encode()


def create_app(
    manager: ShutdownManager,
    service: TaskService,
    *,
    max_body_bytes: int,
    announce: str | None = None,
    runtime: bool = True,
) -> Starlette:
    """``runtime=False``: the baseline, what the same app is without
    last_call: plain uvicorn signal handling, and streams served by
    sse-starlette's own EventSourceResponse (its automatic drain on)."""
    drain_token = os.environ.get("GS_DRAIN_TOKEN") or None

    async def start_task(request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return _error(415, "the body must be sent as Content-Type: application/json")
        try:
            body = await _body(request, max_body_bytes)
        except _TooLarge:
            return _error(413, f"the body is larger than {max_body_bytes} bytes")
        arguments = _task_arguments(body)
        if arguments is None:
            return _error(400, 'the body must be a JSON object: {"steps": int, "step_seconds": float}')
        steps, step_seconds = arguments
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
            return _error(400, f"steps must be an integer from 1 to {MAX_STEPS}")
        number = isinstance(step_seconds, (int, float)) and not isinstance(step_seconds, bool)
        if not number or not 0 <= step_seconds <= MAX_STEP_SECONDS:
            return _error(400, f"step_seconds must be a number from 0 to {MAX_STEP_SECONDS}")
        try:
            task = service.start_task(steps, float(step_seconds))
        except TaskRefused as refused:
            return _error(503, str(refused), **{"Retry-After": str(RETRY_AFTER_SECONDS)})
        stream_url = f"/api/tasks/{task.task_id}/stream"
        return JSONResponse({"task_id": task.task_id, "stream_url": stream_url}, status_code=202)

    def event_stream(content: AsyncIterator[str], kind: StreamKind, final_event: Any = None) -> Any:
        if not runtime:
            # The baseline: the common stack without last_call, sse-starlette's
            # own response (bytes pass through it unchanged).
            return EventSourceResponse(_encoded(content), headers={"X-Accel-Buffering": "no"})
        return EventStreamResponse(content, kind=kind, final_event=final_event, manager=manager)

    async def stream_task(request: Request) -> Any:
        """Pod-bound: only this process has the task. A task still running
        at the streams' last moment (the end of the close notice) is
        cancelled and the stream ends with its ``task_failed`` (reason
        ``shutdown``), never a reconnect."""
        task = service.get_task(request.path_params["task_id"])
        if task is None:
            return _error(404, f"no task {request.path_params['task_id']}")
        after = (request.headers.get("last-event-id") or "").strip()
        start = int(after) if after.isdigit() else 0
        return event_stream(
            service.sse_events(task, after=start),
            StreamKind.POD_BOUND,
            lambda: service.cancel_for_shutdown(task),
        )

    async def stream_feed(_request: Request) -> Any:
        """Resumable: in ClosingStreams each is told to reconnect at its own
        moment of the close notice."""
        return event_stream(service.feed_events(), StreamKind.RESUMABLE)

    async def readyz(_request: Request) -> Response:
        report = manager.check_readiness()
        if report.ready:
            return PlainTextResponse("ok\n")
        if "phase" in report.failures:
            return PlainTextResponse("draining\n", status_code=503)
        return PlainTextResponse("not ready: " + ", ".join(sorted(report.failures)) + "\n", status_code=503)

    async def healthz(_request: Request) -> Response:
        return PlainTextResponse("alive\n")

    async def drain(request: Request) -> Response:
        if drain_token is None:
            return PlainTextResponse("the drain endpoint is disabled: set GS_DRAIN_TOKEN\n", status_code=403)
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), drain_token.encode()):
            challenge = {"WWW-Authenticate": 'Bearer realm="drain"'}
            return PlainTextResponse("unauthorized\n", status_code=401, headers=challenge)
        manager.set_draining(True)
        logger.warning("draining on request from %s", request.client.host if request.client else "?")
        return PlainTextResponse("draining\n")

    async def metrics(request: Request) -> Response:
        accept = request.headers.get("accept", "")
        if "application/json" in accept and "text/plain" not in accept:
            return Response(manager.metrics("json"), media_type="application/json")
        return Response(manager.metrics("prometheus"), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def json_error(_request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        return _error(error.status_code, error.detail)

    @contextlib.asynccontextmanager
    async def app_lifespan(_app: Starlette) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        service.bind(loop)

        def cancel_running_tasks(_old: Phase, new: Phase) -> None:
            # Tasks run on until the streams' last moment (streams_end, when
            # pod-bound streams get their final event): a task that ends
            # inside the close notice completes; one still running then
            # cannot finish and ends with task_failed (reason "shutdown").
            if new == Phase.CLOSING_STREAMS:
                end_in = manager.stream_end_in(StreamKind.POD_BOUND) or 0.0
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(loop.call_later, end_in, service.cancel_running)

        manager.on_phase(cancel_running_tasks)
        if announce:
            print(announce, flush=True)
        try:
            yield
        finally:
            manager.remove_phase_callback(cancel_running_tasks)

    routes = [
        Route("/api/tasks", start_task, methods=["POST"]),
        Route("/api/tasks/{task_id}/stream", stream_task, methods=["GET"]),
        Route("/api/events", stream_feed, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/drain", drain, methods=["POST"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: json_error},
        lifespan=lifespan(app_lifespan, manager=manager) if runtime else app_lifespan,
    )
