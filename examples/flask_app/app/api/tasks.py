"""The task API: start a demo task, stream its progress over SSE."""

from __future__ import annotations

from dependency_injector.wiring import Provide, inject
from flask import Blueprint, jsonify, request, url_for
from last_call.flask import sse_stream

from ..services.container import Container
from ..services.task_service import InvalidOperationException, TaskService

#: Told to clients refused while draining: by then another pod is ready.
RETRY_AFTER_SECONDS = 2
MAX_STEPS = 10_000
MAX_STEP_SECONDS = 60.0

tasks_api = Blueprint("tasks", __name__, url_prefix="/api/tasks")


def _bad_request(message: str):
    return jsonify({"error": message}), 400


@tasks_api.post("")
@inject
def start_task(service: TaskService = Provide[Container.task_service]):
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _bad_request("the body must be a JSON object: {\"steps\": int, \"step_seconds\": float}")
    steps, step_seconds = body.get("steps"), body.get("step_seconds")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        return _bad_request(f"steps must be an integer from 1 to {MAX_STEPS}")
    number = isinstance(step_seconds, (int, float)) and not isinstance(step_seconds, bool)
    if not number or not 0 <= step_seconds <= MAX_STEP_SECONDS:
        return _bad_request(f"step_seconds must be a number from 0 to {MAX_STEP_SECONDS}")
    try:
        task = service.start_task(steps, float(step_seconds))
    except InvalidOperationException as error:
        response = jsonify({"error": str(error)})
        response.status_code = 503
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    stream_url = url_for("tasks.stream_task", task_id=task.task_id)
    return jsonify({"task_id": task.task_id, "stream_url": stream_url}), 202


@tasks_api.get("/<task_id>/stream")
@sse_stream
@inject
def stream_task(task_id: str, service: TaskService = Provide[Container.task_service]):
    task = service.get_task(task_id)
    if task is None:
        return jsonify({"error": f"no task {task_id}"}), 404
    return service.sse_events(task)
