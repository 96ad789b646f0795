"""Demo tasks on a thread pool, publishing progress events that SSE
streams read, with the rules of the other examples (docs/examples.md):
``start_task`` refuses while draining and when every worker is busy or
``max_tasks`` are held (503 + Retry-After); finished tasks are forgotten
after ``keep_finished_seconds``, but not while draining; at the streams'
last moment ``cancel_running`` ends every task still running with
``task_failed``, reason ``shutdown``; ``shutdown(seconds_left)`` (a
shutdown hook) stops the pool.

One service serves both hosts: a stream under gunicorn (WSGI) reads a
``queue.Queue`` on its own thread; one under uvicorn (Django's ASGI) an
``asyncio.Queue`` on the loop, which the task threads feed with
``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from last_call.django import current_manager
from last_call.wsgi import WAKE, wake_queue

logger = logging.getLogger(__name__)

TASK_STARTED = "task_started"
PROGRESS_UPDATE = "progress_update"
TASK_COMPLETED = "task_completed"
TASK_FAILED = "task_failed"
FINAL_EVENTS = (TASK_COMPLETED, TASK_FAILED)

Subscriber = Callable[[tuple], None]


class TaskRefused(Exception):
    """The task cannot be started now (draining, or full)."""


def sse_text(event: dict, event_id: int) -> str:
    return f"id: {event_id}\nevent: task_event\ndata: {json.dumps(event)}\n\n"


def _on_loop(loop: asyncio.AbstractEventLoop, into: asyncio.Queue) -> Subscriber:
    """A subscriber that hands each item to ``into`` on ``loop``."""

    def put(item: tuple) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed
            loop.call_soon_threadsafe(into.put_nowait, item)

    return put


@dataclass
class Task:
    task_id: str
    steps: int
    step_seconds: float
    finished_at: float | None = None
    history: list[dict] = field(default_factory=list)
    subscribers: list[Subscriber] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    wake: threading.Event = field(default_factory=threading.Event)

    def publish(self, event_type: str, data: dict) -> int:
        event = {"event_type": event_type, "task_id": self.task_id, "data": data}
        with self.lock:
            if self.finished_at is not None:
                return 0
            self.history.append(event)
            event_id = len(self.history)
            if event_type in FINAL_EVENTS:
                self.finished_at = time.monotonic()
            subscribers = list(self.subscribers)
        for subscriber in subscribers:
            subscriber((event_id, event))
        return event_id

    def subscribe(self, subscriber: Subscriber, after: int = 0) -> None:
        with self.lock:
            for index, event in enumerate(self.history[after:], start=after + 1):
                subscriber((index, event))
            self.subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self.lock:
            if subscriber in self.subscribers:
                self.subscribers.remove(subscriber)

    def final_text(self) -> str:
        with self.lock:
            if self.finished_at is None:
                return ""
            return sse_text(self.history[-1], len(self.history))


class TaskService:
    def __init__(
        self,
        manager: Any,
        *,
        max_workers: int,
        max_tasks: int,
        keep_finished_seconds: float,
        heartbeat_seconds: float,
    ) -> None:
        self._manager = manager
        self._max_workers = max_workers
        self._max_tasks = max_tasks
        self._keep_finished = keep_finished_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="task")
        self._tasks: dict[str, Task] = {}
        self._futures: list = []
        self._feed: list[Subscriber] = []
        self._feed_ids = 0
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    # ----- tasks -----

    def start_task(self, steps: int, step_seconds: float) -> Task:
        if self._manager.is_draining():
            raise TaskRefused("the server is draining; start the task on another instance")
        self.cleanup_completed_tasks()
        task = Task(task_id=secrets.token_hex(16), steps=steps, step_seconds=step_seconds)
        with self._lock:
            if self._stopped.is_set():
                raise TaskRefused("the task service has shut down")
            self._futures = [f for f in self._futures if not f.done()]
            if len(self._futures) >= self._max_workers:
                raise TaskRefused("every task worker is busy; retry later")
            if len(self._tasks) >= self._max_tasks:
                raise TaskRefused("too many tasks are held; retry later")
            self._tasks[task.task_id] = task
            try:
                self._futures.append(self._executor.submit(self._run, task))
            except RuntimeError:
                del self._tasks[task.task_id]
                raise TaskRefused("the task service has shut down") from None
        return task

    def get_task(self, task_id: str) -> Task | None:
        with self._lock:
            return self._tasks.get(task_id)

    def _publish(self, task: Task, event_type: str, data: dict) -> None:
        event_id = task.publish(event_type, data)
        if event_id:
            with self._lock:
                self._feed_ids += 1
                item = (self._feed_ids, task.history[event_id - 1])
                feed = list(self._feed)
            for subscriber in feed:
                subscriber(item)

    def _run(self, task: Task) -> None:
        # Work the pod's shutdown waits for beside its streams.
        with self._manager.work():
            self._publish(task, TASK_STARTED, {"steps": task.steps})
            for step in range(1, task.steps + 1):
                if task.wake.wait(task.step_seconds) or self._stopped.is_set() or task.finished_at is not None:
                    self.cancel_for_shutdown(task)
                    return
                percent = round(100 * step / task.steps)
                self._publish(task, PROGRESS_UPDATE, {"step": step, "steps": task.steps, "percent": percent})
            self._publish(task, TASK_COMPLETED, {"steps": task.steps})

    def cancel_for_shutdown(self, task: Task) -> str:
        """Ends ``task`` with ``task_failed``, reason ``shutdown`` (if still
        running); returns its final event as SSE text, whoever ended it."""
        task.wake.set()
        reason = {"reason": "shutdown", "error": "the server shut down before the task finished"}
        self._publish(task, TASK_FAILED, reason)
        return task.final_text()

    def cancel_running(self) -> int:
        with self._lock:
            running = [t for t in self._tasks.values() if t.finished_at is None]
        for task in running:
            self.cancel_for_shutdown(task)
        return len(running)

    # ----- streaming: gunicorn (a thread per stream) -----

    def sse_events(self, task: Task, after: int = 0) -> Iterator[str]:
        """The task's events after id ``after``, heartbeats while idle; ends
        after the final event. The stream wrapper wakes the wait at the
        stream's moment (``wake_queue``) and ends it with its final event."""
        subscriber: queue.Queue = wake_queue(queue.Queue())
        task.subscribe(subscriber.put, after)
        try:
            yield from self._relay(subscriber, until_final=True)
        finally:
            task.unsubscribe(subscriber.put)

    def feed_events(self) -> Iterator[str]:
        """Every task event of this process from now on; never ends by
        itself (ClosingStreams ends it with a reconnect)."""
        subscriber: queue.Queue = wake_queue(queue.Queue())
        with self._lock:
            self._feed.append(subscriber.put)
        try:
            yield from self._relay(subscriber, until_final=False)
        finally:
            with self._lock:
                self._feed.remove(subscriber.put)

    def _relay(self, subscriber: queue.Queue, until_final: bool) -> Iterator[Any]:
        while True:
            try:
                item = subscriber.get(timeout=self.heartbeat_seconds)
            except queue.Empty:
                yield ": heartbeat\n\n"
                continue
            if item is WAKE:
                yield item  # the wrapper sends the stream's ending instead
                continue
            event_id, event = item
            yield sse_text(event, event_id)
            if until_final and event["event_type"] in FINAL_EVENTS:
                return

    # ----- streaming: uvicorn (the loop) -----

    async def sse_events_async(self, task: Task, after: int = 0) -> AsyncIterator[str]:
        into: asyncio.Queue = asyncio.Queue()
        subscriber = _on_loop(asyncio.get_running_loop(), into)
        task.subscribe(subscriber, after)
        try:
            async for text in self._relay_async(into, until_final=True):
                yield text
        finally:
            task.unsubscribe(subscriber)

    async def feed_events_async(self) -> AsyncIterator[str]:
        into: asyncio.Queue = asyncio.Queue()
        subscriber = _on_loop(asyncio.get_running_loop(), into)
        with self._lock:
            self._feed.append(subscriber)
        try:
            async for text in self._relay_async(into, until_final=False):
                yield text
        finally:
            with self._lock:
                self._feed.remove(subscriber)

    async def _relay_async(self, into: asyncio.Queue, until_final: bool) -> AsyncIterator[str]:
        while True:
            try:
                event_id, event = await asyncio.wait_for(into.get(), self.heartbeat_seconds)
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
        with self._lock:
            expired = [i for i, t in self._tasks.items() if t.finished_at is not None and t.finished_at < cutoff]
            for task_id in expired:
                del self._tasks[task_id]
        return len(expired)

    def shutdown(self, seconds_left: float) -> bool:
        """Shutdown hook: stops accepting tasks and waits for the running
        ones at most ``seconds_left``; the rest are told to stop."""
        with self._lock:
            futures = list(self._futures)
        self._executor.shutdown(wait=False, cancel_futures=True)
        _done, not_done = wait(futures, timeout=max(seconds_left, 0.0))
        self._stopped.set()
        with self._lock:
            for task in self._tasks.values():
                task.wake.set()
        if not_done:
            logger.warning("%d task(s) still running at the deadline were stopped", len(not_done))
        return not not_done


_service: TaskService | None = None
_service_lock = threading.Lock()


def service() -> TaskService:
    """The process's task service (one per worker)."""
    global _service
    with _service_lock:
        if _service is None:
            from django.conf import settings

            example = settings.EXAMPLE
            _service = TaskService(
                current_manager(),
                max_workers=example.task_workers,
                max_tasks=example.max_tasks,
                keep_finished_seconds=example.keep_finished_seconds,
                heartbeat_seconds=example.heartbeat_seconds,
            )
        return _service
