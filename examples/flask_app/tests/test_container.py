"""The app's dependency-injector container: the manager is a singleton
provider, the task service and the API modules get it injected, and a test
overrides it with the no-op manager through the container."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from dependency_injector import providers

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import create_app
from app.services.container import Container
from last_call import GracefulShutdownManager, NoopGracefulShutdownManager, Phase


@pytest.fixture
def container():
    container = Container()
    yield container
    container.task_service().shutdown(1.0)
    container.unwire()


def test_the_manager_is_a_singleton_shared_with_the_task_service(container):
    assert container.shutdown_manager() is container.shutdown_manager() is GracefulShutdownManager()
    assert container.task_service()._manager is container.shutdown_manager()


def test_overriding_the_manager_with_the_noop_one(container):
    noop = NoopGracefulShutdownManager()
    with container.shutdown_manager.override(providers.Object(noop)):
        app = create_app(container)
        client = app.test_client()
        created = client.post("/api/tasks", json={"steps": 2, "step_seconds": 0.01})
        assert created.status_code == 202
        stream = client.get(created.json["stream_url"])
        assert stream.mimetype == "text/event-stream"
        assert b"task_completed" in stream.data
        assert noop.streams_started_total == 1 and noop.active_streams == 0

        noop.set_draining(True)
        assert client.get("/readyz").status_code == 503  # the injected health module
        refused = client.post("/api/tasks", json={"steps": 1, "step_seconds": 0})
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "2"
        # The task service's shutdown is a hook of the injected manager.
        noop.begin_shutdown()
        assert noop.wait_for_phase(Phase.STOPPED, 5)
        assert container.task_service()._stopped.is_set(), "the task service's shutdown hook did not run"
