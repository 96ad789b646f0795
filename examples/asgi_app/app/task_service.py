"""Demo tasks as asyncio tasks on the server's loop, publishing progress
events that SSE streams read; the same rules as the Flask app's service:

* ``start_task`` refuses while draining, when ``max_workers`` tasks run and
  when ``max_tasks`` are held (``TaskRefused``, answered 503 + Retry-After);
* finished tasks are forgotten after ``keep_finished_seconds``, but not while
  draining (a stream still being read must find its task);
* ``cancel_running`` (at the streams' last moment, the end of the close
  notice) ends every task still running with ``task_failed``, reason
  ``shutdown``;
* ``shutdown(seconds_left)``, a shutdown hook, stops the tasks still running.

Task ids are 128 random bits (``secrets``). Tasks are pod-bound: they live
in this process's memory.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

TASK_STARTED = "task_started"
PROGRESS_UPDATE = "progress_update"
TASK_COMPLETED = "task_completed"
TASK_FAILED = "task_failed"
FINAL_EVENTS = (TASK_COMPLETED, TASK_FAILED)


class TaskRefused(Exception):
    """The task cannot be started now (draining, or full)."""


def sse_text(event: dict, event_id: int) -> str:
    return f"id: {event_id}\nevent: task_event\ndata: {json.dumps(event)}\n\n"


@dataclass
class Task:
    task_id: str
    steps: int
    step_seconds: float
    history: list = field(default_factory=list)
    subscribers: list = field(default_factory=list)
    finished_at: float | None = None
    runner: asyncio.Task[None] | None = None

    def publish(self, event_type: str, data: dict) -> int:
        """Appends an event (its id is its position, from 1) and hands it to
        the subscribers; 0 if the task had already ended."""
        if self.finished_at is not None:
            return 0
        event = {"event_type": event_type, "task_id": self.task_id, "data": data}
        self.history.append(event)
        event_id = len(self.history)
        if event_type in FINAL_EVENTS:
            self.finished_at = time.monotonic()
        for subscriber in self.subscribers:
            subscriber.put_nowait((event_id, event))
        return event_id

    def final_text(self) -> str:
        """The task's final event as SSE text, "" while it runs."""
        if self.finished_at is None:
            return ""
        return sse_text(self.history[-1], len(self.history))


class TaskService:
    def __init__(
        self,
        manager: Any,
        *,
        max_workers: int = 8,
        max_tasks: int = 500,
        keep_finished_seconds: float = 300.0,
        heartbeat_seconds: float = 1.0,
    ) -> None:
        self._manager = manager
        self._max_workers = max_workers
        self._max_tasks = max_tasks
        self._keep_finished = keep_finished_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self._tasks: dict = {}
        self._feed: list = []
        self._feed_ids = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the tasks run on (the lifespan's)."""
        self._loop = loop

    # ----- tasks -----

    def start_task(self, steps: int, step_seconds: float) -> Task:
        if self._manager.is_draining():
            raise TaskRefused("the server is draining; start the task on another instance")
        self.cleanup_completed_tasks()
        if self.running_tasks() >= self._max_workers:
            raise TaskRefused("every task worker is busy; retry later")
        if len(self._tasks) >= self._max_tasks:
            raise TaskRefused("too many tasks are held; retry later")
        task = Task(task_id=secrets.token_hex(16), steps=steps, step_seconds=step_seconds)
        self._tasks[task.task_id] = task
        task.runner = asyncio.ensure_future(self._run(task))
        return task

    def get_task(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    def _publish(self, task: Task, event_type: str, data: dict) -> None:
        event_id = task.publish(event_type, data)
        if event_id:
            self._feed_ids += 1
            for subscriber in self._feed:
                subscriber.put_nowait((self._feed_ids, task.history[event_id - 1]))

    async def _run(self, task: Task) -> None:
        self._publish(task, TASK_STARTED, {"steps": task.steps})
        for step in range(1, task.steps + 1):
            await asyncio.sleep(task.step_seconds)
            if task.finished_at is not None:
                return  # cancelled for shutdown
            percent = round(100 * step / task.steps)
            self._publish(task, PROGRESS_UPDATE, {"step": step, "steps": task.steps, "percent": percent})
        self._publish(task, TASK_COMPLETED, {"steps": task.steps})

    def cancel_for_shutdown(self, task: Task) -> str:
        """Ends ``task`` with ``task_failed``, reason ``shutdown`` (if still
        running); returns its final event as SSE text, whoever ended it."""
        reason = {"reason": "shutdown", "error": "the server shut down before the task finished"}
        self._publish(task, TASK_FAILED, reason)
        if task.runner is not None:
            task.runner.cancel()
        return task.final_text()

    def cancel_running(self) -> int:
        """At the streams' last moment: a task still running cannot finish,
        so each ends now, honestly. Returns how many did."""
        running = [t for t in self._tasks.values() if t.finished_at is None]
        for task in running:
            self.cancel_for_shutdown(task)
        return len(running)

    # ----- streaming -----

    async def sse_events(self, task: Task, after: int = 0) -> AsyncIterator[str]:
        """The task's events after id ``after`` (each with its ``id:``), with
        heartbeat comments while idle; ends after the final event."""
        subscriber: asyncio.Queue = asyncio.Queue()
        for index, event in enumerate(task.history[after:], start=after + 1):
            subscriber.put_nowait((index, event))
        task.subscribers.append(subscriber)
        try:
            async for text in self._relay(subscriber, until_final=True):
                yield text
        finally:
            task.subscribers.remove(subscriber)

    async def feed_events(self) -> AsyncIterator[str]:
        """Every task event of this pod from now on, with pod-wide ids and
        heartbeats; never ends by itself (ClosingStreams ends it)."""
        subscriber: asyncio.Queue = asyncio.Queue()
        self._feed.append(subscriber)
        try:
            async for text in self._relay(subscriber, until_final=False):
                yield text
        finally:
            self._feed.remove(subscriber)

    async def _relay(self, subscriber: asyncio.Queue, until_final: bool) -> AsyncIterator[str]:
        """A subscriber's queued (id, event) pairs as SSE text, a heartbeat
        comment when idle; with ``until_final``, ends after a final event."""
        while True:
            try:
                event_id, event = await asyncio.wait_for(subscriber.get(), self.heartbeat_seconds)
            except asyncio.TimeoutError:
                yield ": heartbeat\n\n"
                continue
            yield sse_text(event, event_id)
            if until_final and event["event_type"] in FINAL_EVENTS:
                return

    # ----- housekeeping -----

    def cleanup_completed_tasks(self) -> int:
        if self._manager.is_draining():
            return 0
        cutoff = time.monotonic() - self._keep_finished
        expired = [i for i, t in self._tasks.items() if t.finished_at is not None and t.finished_at < cutoff]
        for task_id in expired:
            del self._tasks[task_id]
        return len(expired)

    def running_tasks(self) -> int:
        return sum(1 for t in self._tasks.values() if t.finished_at is None)

    def shutdown(self, seconds_left: float) -> bool:
        """Shutdown hook (a thread of the runtime's): waits for the running
        tasks at most ``seconds_left``, then cancels the rest, on the loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return True
        future = asyncio.run_coroutine_threadsafe(self._finish(seconds_left), loop)
        try:
            return bool(future.result(seconds_left + 1.0))
        except Exception:  # noqa: BLE001 - the loop went away: nothing left to stop
            return True

    async def _finish(self, seconds_left: float) -> bool:
        runners = [t.runner for t in self._tasks.values() if t.runner is not None and not t.runner.done()]
        if not runners:
            return True
        _done, pending = await asyncio.wait(runners, timeout=max(seconds_left, 0.0))
        for runner in pending:
            runner.cancel()
        return not pending
