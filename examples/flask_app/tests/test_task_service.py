"""The task service's draining rules, with the injectable no-op manager."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.services.task_service import ExecutorFullException, InvalidOperationException, TaskService
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
    return [json.loads(chunk.split("data: ", 1)[1]) for chunk in service.sse_events(task) if chunk.startswith("id:")]


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


def test_a_full_executor_refuses_and_every_accepted_task_runs(service):
    # Two workers: a third task is refused, never queued to be dropped later.
    first, second = service.start_task(1000, 0.05), service.start_task(1000, 0.05)
    with pytest.raises(ExecutorFullException):
        service.start_task(1, 0)
    assert service.cancel_running() == 2
    for task in (first, second):
        assert task.history[-1]["event_type"] == "task_failed"
        assert task.history[-1]["data"]["reason"] == "shutdown"


def test_events_carry_ids_and_replay_after_one(service):
    task = service.start_task(3, 0)
    chunks = [c for c in service.sse_events(task) if c.startswith("id:")]
    assert [c.split("\n", 1)[0] for c in chunks] == [f"id: {n}" for n in range(1, 6)]
    replayed = [c for c in service.sse_events(task, after=3) if c.startswith("id:")]
    assert replayed == chunks[3:]


def test_cancel_for_shutdown_publishes_once(service):
    task = service.start_task(1000, 0.05)
    text = service.cancel_for_shutdown(task)
    assert '"reason": "shutdown"' in text and text.startswith("id: ")
    assert service.cancel_for_shutdown(task) == ""
    assert [e["event_type"] for e in task.history].count("task_failed") == 1


def test_a_cancelled_task_ends_its_work_with_its_final_event_not_a_step_later(service, manager):
    # The pod's shutdown waits for a task's work: once the task is
    # cancelled (its final event published), the work ends at once, not
    # at the end of its step (30 s here).
    task = service.start_task(3, 30.0)
    deadline = time.monotonic() + 5
    while manager.active_work != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert manager.active_work == 1
    service.cancel_for_shutdown(task)
    deadline = time.monotonic() + 5
    while manager.active_work != 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert manager.active_work == 0
    assert [e["event_type"] for e in task.history] == ["task_started", "task_failed"]


def test_shutdown_wakes_a_task_in_its_step(manager):
    service = TaskService(manager, max_workers=1, keep_finished_seconds=0.0, heartbeat_seconds=0.05)
    task = service.start_task(3, 30.0)
    began = time.monotonic()
    assert service.shutdown(0.1) is False
    deadline = time.monotonic() + 5
    while manager.active_work != 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert manager.active_work == 0, "the task slept on through its 30 s step"
    assert time.monotonic() - began < 5
    assert task.history[-1]["event_type"] == "task_failed"
