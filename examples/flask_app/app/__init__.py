"""The legacy-shaped Flask app: tasks started by POST, progress over SSE,
graceful shutdown from the last_call package."""

from __future__ import annotations

import threading

from flask import Flask, jsonify
from last_call import Phase, StreamKind
from last_call.flask import GracefulShutdown
from werkzeug.exceptions import HTTPException

from .api.health import create_health_api
from .api.tasks import tasks_api
from .services.container import Container


def create_app(container: Container | None = None) -> Flask:
    container = container if container is not None else Container()
    container.wire()  # the API modules' Provide[...] resolve from this container
    manager = container.shutdown_manager()
    # The task service's shutdown runs in Stopping, after the streams.
    service = container.task_service()
    manager.register_shutdown_hook("task-service", service.shutdown)

    def cancel_running_tasks(_old: Phase, new: Phase) -> None:
        # Tasks run on until the streams' last moment (streams_end, when
        # pod-bound streams get their final event): a task that ends inside
        # the close notice completes; one still running then cannot finish
        # and ends with task_failed (reason "shutdown"). One timer thread,
        # once per process, at ClosingStreams.
        if new == Phase.CLOSING_STREAMS:
            end_in = manager.stream_end_in(StreamKind.POD_BOUND) or 0.0
            timer = threading.Timer(end_in, service.cancel_running)
            timer.daemon = True
            timer.start()

    manager.on_phase(cancel_running_tasks)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = container.config.max_body_bytes()

    @app.errorhandler(HTTPException)
    def json_error(error: HTTPException):
        # Every HTTP error (413 for a body over the limit, 404, 405) answers
        # JSON, as the contract says, not Werkzeug's HTML page.
        return jsonify({"error": error.description}), error.code

    app.extensions["container"] = container
    # The extension makes @sse_stream count on this app's manager; the
    # health routes come from the wired health module instead.
    app.config.setdefault("GS_HEALTH_BLUEPRINT", False)
    GracefulShutdown(app, manager=manager)
    app.register_blueprint(tasks_api)
    app.register_blueprint(create_health_api())
    return app
