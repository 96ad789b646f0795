"""Demo tasks run on a thread pool, publishing progress events that SSE
streams read. Shaped like the legacy backend's TaskService, with its
draining rules:

* ``start_task`` refuses while draining (InvalidOperationException, which the
  API answers with 503 and Retry-After);
* ``cleanup_completed_tasks`` does nothing while draining (a stream that is
  still being read must find its task);
* ``shutdown(seconds_left)`` stops the executor and waits for running tasks
  within the time it is given; it is registered as a shutdown hook, so it
  runs in Stopping.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

TASK_STARTED = "task_started"
PROGRESS_UPDATE = "progress_update"
TASK_COMPLETED = "task_completed"
TASK_FAILED = "task_failed"
FINAL_EVENTS = (TASK_COMPLETED, TASK_FAILED)


class InvalidOperationException(Exception):
    """The operation is not allowed now (the pod is draining)."""


@dataclass
class Task:
    task_id: str
    steps: int
    step_seconds: float
    created_at: float = field(default_factory=time.monotonic)
    finished_at: float | None = None
    history: list[dict] = field(default_factory=list)
    subscribers: list[queue.Queue[dict]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def publish(self, event_type: str, data: dict) -> None:
        event = {"event_type": event_type, "task_id": self.task_id, "data": data}
        with self.lock:
            self.history.append(event)
            if event_type in FINAL_EVENTS:
                self.finished_at = time.monotonic()
            subscribers = list(self.subscribers)
        for subscriber in subscribers:
            subscriber.put(event)

    def subscribe(self) -> queue.Queue[dict]:
        """A queue that receives every event, from the first."""
        subscriber: queue.Queue[dict] = queue.Queue()
        with self.lock:
            for event in self.history:
                subscriber.put(event)
            self.subscribers.append(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: queue.Queue[dict]) -> None:
        with self.lock:
            if subscriber in self.subscribers:
                self.subscribers.remove(subscriber)


class TaskService:
    def __init__(
        self,
        shutdown_manager,
        *,
        max_workers: int = 8,
        keep_finished_seconds: float = 300.0,
        heartbeat_seconds: float = 1.0,
    ) -> None:
        self._manager = shutdown_manager
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="task")
        self._tasks: dict[str, Task] = {}
        self._futures = []
        self._lock = threading.Lock()
        self._keep_finished = keep_finished_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self._stopped = threading.Event()

    # ----- tasks -----

    def start_task(self, steps: int, step_seconds: float) -> Task:
        if self._manager.is_draining():
            raise InvalidOperationException("the server is draining; start the task on another instance")
        self.cleanup_completed_tasks()
        task = Task(task_id=uuid.uuid4().hex, steps=steps, step_seconds=step_seconds)
        with self._lock:
            if self._stopped.is_set():
                raise InvalidOperationException("the task service has shut down")
            self._tasks[task.task_id] = task
            self._futures.append(self._executor.submit(self._run, task))
        return task

    def get_task(self, task_id: str) -> Task | None:
        with self._lock:
            return self._tasks.get(task_id)

    def _run(self, task: Task) -> None:
        try:
            task.publish(TASK_STARTED, {"steps": task.steps})
            for step in range(1, task.steps + 1):
                if self._stopped.wait(task.step_seconds):
                    raise InterruptedError("the task service shut down before the task finished")
                percent = round(100 * step / task.steps)
                task.publish(PROGRESS_UPDATE, {"step": step, "steps": task.steps, "percent": percent})
            task.publish(TASK_COMPLETED, {"steps": task.steps})
        except Exception as error:  # noqa: BLE001 - every failure is reported to the stream
            logger.warning("task %s failed: %s", task.task_id, error)
            task.publish(TASK_FAILED, {"error": str(error)})

    # ----- streaming -----

    def sse_events(self, task: Task) -> Iterator[str]:
        """The task's events as SSE text, with heartbeat comments while idle;
        ends after the final event. Yields at least every heartbeat, so the
        stream wrapper can end it promptly in ClosingStreams."""
        subscriber = task.subscribe()
        try:
            while True:
                try:
                    event = subscriber.get(timeout=self.heartbeat_seconds)
                except queue.Empty:
                    yield ": heartbeat\n\n"
                    continue
                yield f"event: task_event\ndata: {json.dumps(event)}\n\n"
                if event["event_type"] in FINAL_EVENTS:
                    return
        finally:
            task.unsubscribe(subscriber)

    # ----- housekeeping -----

    def cleanup_completed_tasks(self) -> int:
        """Forgets tasks finished longer ago than keep_finished_seconds.
        Skipped while draining: streams still being read need their task."""
        if self._manager.is_draining():
            return 0
        cutoff = time.monotonic() - self._keep_finished
        with self._lock:
            expired = [t.task_id for t in self._tasks.values() if t.finished_at is not None and t.finished_at < cutoff]
            for task_id in expired:
                del self._tasks[task_id]
            self._futures = [f for f in self._futures if not f.done()]
        return len(expired)

    def running_tasks(self) -> int:
        with self._lock:
            return sum(1 for f in self._futures if not f.done())

    def shutdown(self, seconds_left: float) -> bool:
        """Stops accepting tasks and waits for the running ones, at most
        ``seconds_left``; then tells the rest to stop. True if all finished."""
        with self._lock:
            futures = list(self._futures)
        self._executor.shutdown(wait=False, cancel_futures=True)
        _done, not_done = wait(futures, timeout=max(seconds_left, 0.0))
        self._stopped.set()  # remaining tasks stop at their next step, as failed
        with self._lock:
            self._stopped.set()
        if not_done:
            logger.warning("%d task(s) still running at the deadline were stopped", len(not_done))
        return not not_done
