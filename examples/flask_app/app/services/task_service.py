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

STREAMS=hub: every stream is the runtime's hub's, the feed included: each
task publishes to a channel of its own, and every event of the feed goes to
the hub channel ``feed`` (resumable), so that no reader of either holds one
of the host's threads.

Tasks are pod-bound (they live in this process): their ids are 128 random
bits (``secrets``), at most ``max_tasks`` are held and finished ones are
forgotten after ``keep_finished_seconds``; a task is accepted only when a
worker is free (``ExecutorFullException`` otherwise, answered 503), so an
accepted task always runs; at the streams' last moment (streams_end, the
end of the close notice) ``cancel_running`` ends every task still running
with ``task_failed``, reason ``shutdown``.
"""

from __future__ import annotations

import json
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from urllib.parse import urlencode

from last_call import hub
from last_call.errors import GracefulShutdownError, InvalidArgumentError
from last_call.sse import StreamKind
from last_call.wsgi import WAKE, wake_queue

logger = logging.getLogger(__name__)

TASK_STARTED = "task_started"
PROGRESS_UPDATE = "progress_update"
TASK_COMPLETED = "task_completed"
TASK_FAILED = "task_failed"
FINAL_EVENTS = (TASK_COMPLETED, TASK_FAILED)


class InvalidOperationException(Exception):
    """The operation is not allowed now (the pod is draining)."""


class ExecutorFullException(InvalidOperationException):
    """Every worker is busy, or the cap on held tasks is reached."""


def sse_text(event: dict, event_id: int) -> str:
    return f"id: {event_id}\nevent: task_event\ndata: {json.dumps(event)}\n\n"


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

    cancelled: bool = False
    #: Set when the task is cancelled or the service stops: wakes the
    #: worker from its step at once, so that the task's work (which the
    #: pod's shutdown waits for) ends with its final event, not a step
    #: later (a step may last up to a minute).
    wake: threading.Event = field(default_factory=threading.Event)
    #: Called with each event and its id, in order, under the task's lock
    #: (hub mode: the event goes to the task's hub channel).
    on_published: Callable[[int, dict], None] | None = None

    def publish(self, event_type: str, data: dict) -> int:
        """Appends an event (its SSE id is its position, from 1); returns the
        id, or 0 if the task had already ended."""
        event = {"event_type": event_type, "task_id": self.task_id, "data": data}
        with self.lock:
            if self.finished_at is not None:
                return 0
            self.history.append(event)
            event_id = len(self.history)
            if event_type in FINAL_EVENTS:
                self.finished_at = time.monotonic()
            if self.on_published is not None:
                self.on_published(event_id, event)
            subscribers = list(self.subscribers)
        for subscriber in subscribers:
            subscriber.put((event_id, event))
        return event_id

    def subscribe(self, after: int = 0) -> queue.Queue[tuple[int, dict]]:
        """A queue that receives every event after id ``after``."""
        subscriber: queue.Queue[tuple[int, dict]] = queue.Queue()
        with self.lock:
            for index, event in enumerate(self.history[after:], start=after + 1):
                subscriber.put((index, event))
            self.subscribers.append(subscriber)
        return subscriber

    def cancel_for_shutdown(self) -> str:
        """Ends the task now with ``task_failed``, reason ``shutdown`` (once;
        the worker stops at its next step). Returns that event as SSE text,
        or "" if the task had already ended."""
        self.cancelled = True
        self.wake.set()
        event_id = self.publish(TASK_FAILED, shutdown_event(self.task_id)["data"])
        return sse_text(self.history[event_id - 1], event_id) if event_id else ""

    def unsubscribe(self, subscriber: queue.Queue) -> None:
        with self.lock:
            if subscriber in self.subscribers:
                self.subscribers.remove(subscriber)


#: The hub channel of the event feed (STREAMS=hub). With a shared store
#: every pod publishes to it: a reader follows every pod's task events and
#: resumes, with its Last-Event-ID, on whichever pod it reaches.
FEED_CHANNEL = "feed"


def hub_channel(task_id: str) -> str:
    """The hub channel of a task (STREAMS=hub)."""
    return f"task-{task_id}"


def shutdown_event(task_id: str) -> dict:
    return {
        "event_type": TASK_FAILED,
        "task_id": task_id,
        "data": {"reason": "shutdown", "error": "the server shut down before the task finished"},
    }


def _to_hub(task_id: str) -> Callable[[int, dict], None]:
    """Publishes a task's events to its hub channel with the task's own
    ids; the final one closes the channel."""
    channel = hub_channel(task_id)

    def publish(event_id: int, event: dict) -> None:
        data = json.dumps(event)
        try:
            if event["event_type"] in FINAL_EVENTS:
                hub.close(channel, ("task_event", data))
            else:
                hub.publish(channel, data, event="task_event", id=str(event_id), kind=StreamKind.POD_BOUND)
        except InvalidArgumentError:
            # The hub closed the channel first (ClosingStreams): its
            # subscribers already have the task's task_failed.
            pass

    return publish


class TaskService:
    def __init__(
        self,
        shutdown_manager,
        *,
        max_workers: int = 8,
        keep_finished_seconds: float = 300.0,
        heartbeat_seconds: float = 1.0,
        max_tasks: int = 500,
        streams: str = "thread",
        stream_base_url: str = "",
    ) -> None:
        #: Where browsers reach the hub (PUBLIC_STREAM_BASE_URL); None: the
        #: hub's own address.
        self.stream_base_url = stream_base_url or None
        #: STREAMS=hub: task events go to the runtime's stream hub, which
        #: holds the subscribers' connections.
        self.hub_mode = streams == "hub"
        self._manager = shutdown_manager
        self._max_workers = max_workers
        self._max_tasks = max_tasks
        self._feed: list[queue.Queue[tuple[int, dict]]] = []
        self._feed_ids = 0
        #: The feed's ids on the hub's in-process store: this process's own
        #: (``<boot>-<n>``), so that a reader's id from another pod is never
        #: taken for one of this pod's (it gets ``gap`` there, and the
        #: feed's recent history). A shared store gives its own ids.
        self._feed_boot = secrets.token_hex(4)
        #: Feed events the hub refused (its publish queue full, or its
        #: channel cap reached): told once in the log, counted here.
        self.feed_events_dropped = 0
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
        task = Task(task_id=secrets.token_hex(16), steps=steps, step_seconds=step_seconds)
        with self._lock:
            if self._stopped.is_set():
                raise InvalidOperationException("the task service has shut down")
            self._futures = [f for f in self._futures if not f.done()]
            if len(self._futures) >= self._max_workers:
                raise ExecutorFullException("every task worker is busy; retry later")
            if len(self._tasks) >= self._max_tasks:
                raise ExecutorFullException("too many tasks are held; retry later")
            if self.hub_mode:
                # The channel first, as one step with the task: a channel
                # the hub refuses (GS_STREAM_MAX_CHANNELS) refuses the task
                # (503, Retry-After), and nothing is left in the table (a
                # task added first leaked for ever, until every new one was
                # refused). At the streams' last moment the hub ends the
                # channel's streams with this (pod-bound), even if the task
                # itself is cancelled a moment later.
                try:
                    hub.set_final_event(
                        hub_channel(task.task_id), "task_event", json.dumps(shutdown_event(task.task_id))
                    )
                except GracefulShutdownError as error:
                    raise ExecutorFullException(
                        f"the stream hub cannot hold another channel ({error}); retry later"
                    ) from error
                task.on_published = _to_hub(task.task_id)
            self._tasks[task.task_id] = task
            try:
                self._futures.append(self._executor.submit(self._run, task))
            except RuntimeError:
                # The executor has shut down meanwhile: nothing is kept.
                del self._tasks[task.task_id]
                raise InvalidOperationException("the task service has shut down") from None
        return task

    def get_task(self, task_id: str) -> Task | None:
        with self._lock:
            return self._tasks.get(task_id)

    def _publish(self, task: Task, event_type: str, data: dict) -> None:
        event_id = task.publish(event_type, data)
        if event_id:
            self._to_feed(task.history[event_id - 1])

    def _to_feed(self, event: dict) -> None:
        with self._lock:
            self._feed_ids += 1
            item = (self._feed_ids, event)
            feed = list(self._feed)
            if self.hub_mode:
                # Under the lock: the feed's events reach the hub in the
                # order of their ids.
                self._feed_to_hub(event, self._feed_ids)
        for subscriber in feed:
            subscriber.put(item)

    def _feed_to_hub(self, event: dict, event_id: int) -> None:
        try:
            hub.publish(
                FEED_CHANNEL,
                json.dumps(event),
                event="task_event",
                id=f"{self._feed_boot}-{event_id}",
                kind=StreamKind.RESUMABLE,
            )
        except GracefulShutdownError as error:
            # The hub is full (its publish queue, its channels) or stopping:
            # the task and its own channel go on; the feed's readers miss
            # this one (with a shared store the hub marks the gap).
            self.feed_events_dropped += 1
            if self.feed_events_dropped == 1:
                logger.warning("the stream hub refused an event of the feed: %s", error)

    def feed_url(self, last_event_id: str | None, ttl: float) -> str:
        """STREAMS=hub: where a reader of the feed subscribes (a token valid
        for ``ttl``), with the reader's ``last_event_id`` in the query for a
        client that drops the header on a redirect (the header, when it
        arrives, wins at the hub)."""
        url = hub.subscribe_url(FEED_CHANNEL, ttl=ttl, base_url=self.stream_base_url)
        if last_event_id:
            url += "&" + urlencode({"last_event_id": last_event_id})
        return url

    def _run(self, task: Task) -> None:
        # Work the pod waits for beside its streams: once its streams are
        # handed off to another pod (STREAMS=hub with a shared store), the
        # task still runs and publishes here, and the pod must not exit under
        # it. It is cancelled at the streams' last moment (create_app).
        with self._manager.work():
            self._run_counted(task)

    def _run_counted(self, task: Task) -> None:
        try:
            self._publish(task, TASK_STARTED, {"steps": task.steps})
            for step in range(1, task.steps + 1):
                if task.wake.wait(task.step_seconds) or self._stopped.is_set() or task.cancelled:
                    self.cancel_for_shutdown(task)
                    return
                percent = round(100 * step / task.steps)
                self._publish(task, PROGRESS_UPDATE, {"step": step, "steps": task.steps, "percent": percent})
            self._publish(task, TASK_COMPLETED, {"steps": task.steps})
        except Exception as error:  # noqa: BLE001 - every failure is reported to the stream
            logger.warning("task %s failed: %s", task.task_id, error)
            self._publish(task, TASK_FAILED, {"error": str(error)})

    def cancel_for_shutdown(self, task: Task) -> str:
        """Ends ``task`` with ``task_failed``, reason ``shutdown``; returns
        that event's SSE text ("" if it had already ended)."""
        text = task.cancel_for_shutdown()
        if text:
            self._to_feed(task.history[-1])
        return text

    def final_event(self, task: Task, sent_id: str | None) -> str:
        """A pod-bound task stream's last words at the streams' last moment:
        the task is cancelled if it still runs, and the stream gets the
        task's final event, whoever ended the task (the cancel timer may
        have, a moment before), unless it already carried it (``sent_id``,
        the last id the stream sent)."""
        self.cancel_for_shutdown(task)
        with task.lock:
            final_id = len(task.history)
            event = task.history[-1] if task.history else None
        if event is None or event["event_type"] not in FINAL_EVENTS or sent_id == str(final_id):
            return ""
        return sse_text(event, final_id)

    def cancel_running(self) -> int:
        """At the streams' last moment: a task still running cannot finish,
        so each is ended now, honestly. Returns how many were."""
        with self._lock:
            tasks = [t for t in self._tasks.values() if t.finished_at is None]
        return sum(1 for task in tasks if self.cancel_for_shutdown(task))

    # ----- streaming -----

    def sse_events(self, task: Task, after: int = 0) -> Iterator[str]:
        """The task's events after id ``after`` as SSE text (each with its
        ``id:``), with heartbeat comments while idle; ends after the final
        event. The stream wrapper wakes its wait at the stream's moment
        (``wake_queue``: a ``WAKE`` in the queue, yielded as it is) and ends
        it with the task's final event."""
        subscriber = wake_queue(task.subscribe(after))
        try:
            while True:
                try:
                    item = subscriber.get(timeout=self.heartbeat_seconds)
                except queue.Empty:
                    yield ": heartbeat\n\n"
                    continue
                if item is WAKE:
                    yield item
                    continue
                event_id, event = item
                yield sse_text(event, event_id)
                if event["event_type"] in FINAL_EVENTS:
                    return
        finally:
            task.unsubscribe(subscriber)

    def feed_events(self) -> Iterator[str]:
        """Every task event of this pod from now on, with pod-wide ids and
        heartbeats; never ends by itself: the stream wrapper wakes it at the
        stream's own moment of the close notice (``wake_queue``) and ends it
        with a reconnect."""
        subscriber: queue.Queue = wake_queue(queue.Queue())
        with self._lock:
            self._feed.append(subscriber)
        try:
            while True:
                try:
                    item = subscriber.get(timeout=self.heartbeat_seconds)
                except queue.Empty:
                    yield ": heartbeat\n\n"
                    continue
                if item is WAKE:
                    yield item
                    continue
                event_id, event = item
                yield sse_text(event, event_id)
        finally:
            with self._lock:
                self._feed.remove(subscriber)

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
        with self._lock:
            self._stopped.set()  # remaining tasks stop now, as failed
            running = list(self._tasks.values())
        for task in running:
            task.wake.set()
        if not_done:
            logger.warning("%d task(s) still running at the deadline were stopped", len(not_done))
        return not not_done
