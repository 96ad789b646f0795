"""The task API (docs/examples.md): start a demo task, stream its progress
(pod-bound), and this process's feed of every task event (resumable).

Bounded input: a body over MAX_BODY_BYTES is 413, one not sent as
``application/json`` 415, JSON that is not a task (or nested too deep to
parse) 400, all with a JSON ``{"error"}``; a task is refused with 503 +
Retry-After while draining and when full. Under uvicorn (Django's ASGI
handler) the streams are asynchronous, under gunicorn (WSGI) a thread's:
``last_call.django.EventStreamResponse`` counts and ends either.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from last_call.django import EventStreamResponse
from last_call.sse import StreamKind

from .service import TaskRefused, service

#: Told to clients refused while draining or full.
RETRY_AFTER_SECONDS = 2
MAX_STEPS = 1_000
MAX_STEP_SECONDS = 60.0


def _error(status: int, message: str, **headers: str) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    for name, value in headers.items():
        response[name] = value
    return response


def _body(request: HttpRequest, limit: int) -> bytes | None:
    """The request body, or None as soon as it passes ``limit`` bytes."""
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.isdigit() and int(declared) > limit:
        return None
    data = request.read(limit + 1)
    return None if len(data) > limit else data


@csrf_exempt
@require_POST
def start_task(request: HttpRequest) -> HttpResponse:
    if request.content_type != "application/json":
        return _error(415, "the body must be sent as Content-Type: application/json")
    limit = settings.EXAMPLE.max_body_bytes
    body = _body(request, limit)
    if body is None:
        return _error(413, f"the body is larger than {limit} bytes")
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        parsed = None
    if not isinstance(parsed, dict):
        return _error(400, 'the body must be a JSON object: {"steps": int, "step_seconds": float}')
    steps, step_seconds = parsed.get("steps"), parsed.get("step_seconds")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        return _error(400, f"steps must be an integer from 1 to {MAX_STEPS}")
    number = isinstance(step_seconds, (int, float)) and not isinstance(step_seconds, bool)
    if not number or not 0 <= step_seconds <= MAX_STEP_SECONDS:
        return _error(400, f"step_seconds must be a number from 0 to {MAX_STEP_SECONDS}")
    try:
        task = service().start_task(steps, float(step_seconds))
    except TaskRefused as refused:
        return _error(503, str(refused), **{"Retry-After": str(RETRY_AFTER_SECONDS)})
    stream_url = f"/api/tasks/{task.task_id}/stream"
    return JsonResponse({"task_id": task.task_id, "stream_url": stream_url}, status=202)


@require_GET
def stream_task(request: HttpRequest, task_id: str) -> HttpResponse:
    """Pod-bound: only this process has the task. Replays the events after
    ``Last-Event-ID``; a task still running at the streams' last moment is
    cancelled and the stream ends with its ``task_failed`` (reason
    ``shutdown``), never a reconnect."""
    tasks = service()
    task = tasks.get_task(task_id)
    if task is None:
        return _error(404, f"no task {task_id}")
    after = (request.headers.get("Last-Event-ID") or "").strip()
    start = int(after) if after.isdigit() else 0
    events = tasks.sse_events_async(task, start) if isinstance(request, ASGIRequest) else tasks.sse_events(task, start)
    return EventStreamResponse(
        events, kind=StreamKind.POD_BOUND, final_event=lambda: tasks.cancel_for_shutdown(task)
    )


@require_GET
def stream_feed(request: HttpRequest) -> HttpResponse:
    """Resumable: in ClosingStreams each is told to reconnect at its own
    moment of the close notice."""
    tasks = service()
    events = tasks.feed_events_async() if isinstance(request, ASGIRequest) else tasks.feed_events()
    return EventStreamResponse(events, kind=StreamKind.RESUMABLE)
