"""The task API: start a demo task, stream its progress over SSE, and this
pod's feed of every task event.

Bounded input: a body over the app's MAX_CONTENT_LENGTH is 413, a body not
sent as ``application/json`` 415, JSON that is not a task (or nested too
deep to parse) 400, all with a JSON ``{"error"}``. A task is refused with
503 + Retry-After while draining and when the executor is full.
"""

from __future__ import annotations

from dependency_injector.wiring import Provide, inject
from flask import Blueprint, jsonify, redirect, request, url_for
from last_call import hub
from last_call.flask import current_manager, sse_stream
from last_call.sse import StreamKind, last_event_id
from last_call.wsgi import track_stream
from werkzeug.exceptions import BadRequest

from ..services.container import Container
from ..services.task_service import InvalidOperationException, TaskService, hub_channel

#: Told to clients refused while draining or full: by then another pod is
#: ready, or a worker is free.
RETRY_AFTER_SECONDS = 2
MAX_STEPS = 1_000
MAX_STEP_SECONDS = 60.0
#: How long a hub subscription token stays valid (a reconnect within it,
#: to any pod, needs no new token).
STREAM_TOKEN_SECONDS = 3600.0

tasks_api = Blueprint("tasks", __name__, url_prefix="/api")


def _error(status: int, message: str):
    return jsonify({"error": message}), status


def _task_body() -> object:
    """The request's JSON; raises BadRequest for anything unparsable,
    including nesting deep enough to exhaust the parser's recursion."""
    try:
        return request.get_json(force=True)
    except RecursionError as error:
        raise BadRequest("the JSON is nested too deeply") from error


@tasks_api.post("/tasks")
@inject
def start_task(service: TaskService = Provide[Container.task_service]):
    if request.mimetype != "application/json":
        return _error(415, "the body must be sent as Content-Type: application/json")
    try:
        body = _task_body()
    except BadRequest:
        body = None
    if not isinstance(body, dict):
        return _error(400, "the body must be a JSON object: {\"steps\": int, \"step_seconds\": float}")
    steps, step_seconds = body.get("steps"), body.get("step_seconds")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        return _error(400, f"steps must be an integer from 1 to {MAX_STEPS}")
    number = isinstance(step_seconds, (int, float)) and not isinstance(step_seconds, bool)
    if not number or not 0 <= step_seconds <= MAX_STEP_SECONDS:
        return _error(400, f"step_seconds must be a number from 0 to {MAX_STEP_SECONDS}")
    try:
        task = service.start_task(steps, float(step_seconds))
    except InvalidOperationException as error:
        response = jsonify({"error": str(error)})
        response.status_code = 503
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    if service.hub_mode:
        # STREAMS=hub: the runtime's hub holds the stream, on its own port
        # (or under PUBLIC_STREAM_BASE_URL, for an ingress routing a path).
        stream_url = hub.subscribe_url(
            hub_channel(task.task_id), ttl=STREAM_TOKEN_SECONDS, base_url=service.stream_base_url
        )
    else:
        stream_url = url_for("tasks.stream_task", task_id=task.task_id)
    return jsonify({"task_id": task.task_id, "stream_url": stream_url}), 202


@tasks_api.get("/tasks/<task_id>/stream")
@sse_stream
@inject
def stream_task(task_id: str, service: TaskService = Provide[Container.task_service]):
    """Pod-bound: only this process has the task. Replays the events after
    ``Last-Event-ID``; a task still running at the streams' last moment (the
    end of the close notice) is cancelled and the stream ends with its
    ``task_failed`` (reason ``shutdown``), never a reconnect."""
    task = service.get_task(task_id)
    if task is None:
        return _error(404, f"no task {task_id}")
    after = last_event_id(request.environ)
    start = int(after) if after is not None and after.isdigit() else 0
    stream = track_stream(
        service.sse_events(task, after=start),
        current_manager(),
        request.environ,
        kind=StreamKind.POD_BOUND,
        # Called at the streams' last moment: the task's final event, unless
        # the stream already carried it (the cancel timer and the stream's
        # own moment fall together).
        final_event=lambda: service.final_event(task, stream.last_event_id),
    )
    return stream


@tasks_api.get("/events")
@inject
def stream_feed(service: TaskService = Provide[Container.task_service]):
    """Resumable: every task event of this pod; in ClosingStreams each
    stream is told to reconnect at its own moment of the close notice.

    STREAMS=hub: the hub holds the feed, as it holds the task streams (a
    reader held one of Waitress's threads for as long as it read: 8 readers
    with THREADS=8 left the API unanswered while the probes said all was
    well). The answer is a redirect to the hub's subscription of the feed
    channel, which ``EventSource`` follows, and which it opens again (here,
    for a fresh token) when it reconnects."""
    if service.hub_mode:
        response = redirect(service.feed_url(last_event_id(request.environ), STREAM_TOKEN_SECONDS), code=307)
        # The token in the URL is a credential: never stored on the way.
        response.headers["Cache-Control"] = "no-store"
        return response
    return _thread_feed(service)


@sse_stream(kind=StreamKind.RESUMABLE)
def _thread_feed(service: TaskService):
    """A reconnect starts afresh on whichever pod it reaches."""
    return service.feed_events()
