"""The task service's draining rules, with the injectable no-op manager."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.services.task_service import InvalidOperationException, TaskService
from last_call import NoopGracefulShutdownManager


@pytest.fixture
def manager():
    return NoopGracefulShutdownManager()


@pytest.fixture
def service(manager):
    service = TaskService(manager, max_workers=2, keep_finished_seconds=0.0, heartbeat_seconds=0.05)
    yield service
    service.shutdown(1.0)


def _events(service, task):
    return [json.loads(chunk.split("data: ", 1)[1]) for chunk in service.sse_events(task) if chunk.startswith("event:")]


def test_a_task_publishes_started_progress_and_completed(service):
    task = service.start_task(3, 0.01)
    kinds = [event["event_type"] for event in _events(service, task)]
    assert kinds == ["task_started", "progress_update", "progress_update", "progress_update", "task_completed"]


def test_start_task_refuses_while_draining(service, manager):
    manager.set_draining(True)
    with pytest.raises(InvalidOperationException):
        service.start_task(1, 0)
    manager.set_draining(False)
    assert service.start_task(1, 0).task_id


def test_cleanup_skips_while_draining(service, manager):
    task = service.start_task(1, 0)
    _events(service, task)
    manager.set_draining(True)
    assert service.cleanup_completed_tasks() == 0
    assert service.get_task(task.task_id) is task
    manager.set_draining(False)
    assert service.cleanup_completed_tasks() == 1
    assert service.get_task(task.task_id) is None


def test_shutdown_waits_for_running_tasks_within_its_time(service):
    task = service.start_task(5, 0.05)
    started = time.monotonic()
    assert service.shutdown(5.0) is True
    assert time.monotonic() - started < 5.0
    assert task.history[-1]["event_type"] == "task_completed"
    with pytest.raises(InvalidOperationException):
        service.start_task(1, 0)


def test_shutdown_stops_tasks_that_outlive_their_time(service):
    task = service.start_task(1000, 0.05)
    assert service.shutdown(0.1) is False
    deadline = time.monotonic() + 5
    while task.finished_at is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert task.history[-1]["event_type"] == "task_failed"


def test_a_late_subscriber_sees_every_event_from_the_first(service):
    task = service.start_task(2, 0)
    while task.finished_at is None:
        time.sleep(0.01)
    assert next(e["event_type"] for e in _events(service, task)) == "task_started"
