"""The legacy-shaped Flask app: tasks started by POST, progress over SSE,
graceful shutdown from the last_call package."""

from __future__ import annotations

from flask import Flask
from last_call.flask import GracefulShutdown

from .api.health import create_health_api
from .api.tasks import tasks_api
from .services.container import Container


def create_app(container: Container | None = None) -> Flask:
    container = container if container is not None else Container()
    container.wire()  # the API modules' Provide[...] resolve from this container
    manager = container.shutdown_manager()
    # The task service's shutdown runs in Stopping, after the streams.
    manager.register_shutdown_hook("task-service", container.task_service().shutdown)
    app = Flask(__name__)
    app.extensions["container"] = container
    # The extension makes @sse_stream count on this app's manager; the
    # health routes come from the wired health module instead.
    app.config.setdefault("LAST_CALL_HEALTH_BLUEPRINT", False)
    GracefulShutdown(app, manager=manager)
    app.register_blueprint(tasks_api)
    app.register_blueprint(create_health_api())
    return app
