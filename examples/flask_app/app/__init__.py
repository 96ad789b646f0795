"""The legacy-shaped Flask app: tasks started by POST, progress over SSE,
graceful shutdown from the last_call package."""

from __future__ import annotations

from flask import Flask

from .api.health import create_health_api
from .api.tasks import tasks_api
from .services.container import Container, create_container


def create_app(container: Container = None) -> Flask:
    container = container if container is not None else create_container()
    app = Flask(__name__)
    app.extensions["container"] = container
    app.register_blueprint(tasks_api)
    app.register_blueprint(create_health_api(container.shutdown_manager))
    return app
