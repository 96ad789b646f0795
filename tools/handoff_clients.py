"""The rolling harness's handoff scenario: long tasks on the hub host, each
followed by many subscribers through the load balancer, while the pods that
run them are rolled (``rolling.py``, scenario ``handoff``).

With a healthy shared store (the harness's redis-server), a draining pod
nudges its hub subscribers after the drain delay (``retry:``, its last
``id:``, ``event: reconnect``); each reconnects through HAProxy, as
EventSource does (after ``retry:``, with the hint's id as
``Last-Event-ID``), to whichever pod HAProxy picks, and resumes there from
Redis. The task itself keeps running on the old pod (it is the pod's
*work*), publishing through the store, until it ends or until the streams'
last moment, when it is cancelled and its ``task_failed`` (reason
``shutdown``) goes through the store.

Each subscriber records every event it received; ``report`` then holds
that against the channel's own record in the store (``StoreRecord.history``):

* **exactly once**: the ids it received are the channel's, in the store's
  order, each once (no duplicate, no hole, ids strictly increasing, one
  epoch), and the task's step numbers run 1, 2, ... with no gap;
* **its true ending**: the final event it received is the one the store
  closed the channel with (``task_completed``, or ``task_failed`` with
  reason ``shutdown``);
* ``gap`` events (none with a healthy store), connections cut without a
  hint, reconnect hints whose id was not the last event received.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import httpx_sse
import stream_log
from client_loop import PER_TRANSPORT, ClientLoop, new_transport
from store_record import StoredChannel, StoreRecord

#: A subscriber's connections at most (its first and its reconnects): a
#: stream nudged off every pod in turn needs one per old pod it lands on.
MAX_CONNECTIONS = 20
FINAL_TYPES = ("task_completed", "task_failed")


@dataclass
class Subscriber:
    """What one subscriber of a task's stream saw."""

    ids: list[str] = field(default_factory=list)
    events: list[tuple[str, int | None]] = field(default_factory=list)  # (event_type, step)
    events_after_handoff: int = 0  # received after its first reconnect hint
    final: str | None = None  # "task_completed", "task_failed (shutdown)", ...
    gaps: int = 0
    reconnects: int = 0  # hints honoured
    cuts: int = 0  # connections that ended with neither a hint nor the final event
    failed_connects: int = 0  # (re)connections refused, or that timed out before a response
    hint_mismatches: int = 0  # a hint's id was not the last event's
    connections: int = 0
    pods: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class HandoffTask:
    steps: int
    task_id: str = ""
    stream_url: str = ""
    started_on: str = ""  # the pod (HAProxy's server) that runs it
    start_error: str = ""
    subscribers: list[Subscriber] = field(default_factory=list)


def ending(data: dict) -> str:
    """A task event's ending label: its type, with the reason of a failure."""
    label = str(data.get("event_type"))
    reason = (data.get("data") or {}).get("reason")
    return f"{label} ({reason})" if label == "task_failed" and reason else label


class HandoffClients(ClientLoop):
    """The tasks and their subscribers, on an event loop of their own (a
    thread). `app_url` is the load balancer's app frontend (task starts);
    the stream URLs the pods answer point at its streams frontend."""

    def __init__(self, app_url: str, steps: list[int], subscribers: int, step_seconds: float = 1.0) -> None:
        self.app_url = app_url
        self.tasks = [HandoffTask(steps=n) for n in steps]
        self.subscribers = subscribers
        self.step_seconds = step_seconds
        self.started_at = time.monotonic()
        #: Every subscriber connection (the report page's charts).
        self.streams = stream_log.StreamLog()
        super().__init__()

    def opened(self) -> int:
        """Subscribers with their first connection open."""
        return sum(1 for task in self.tasks for s in task.subscribers if s.connections)

    def finished(self) -> int:
        """Subscribers that received their task's final event."""
        return sum(1 for task in self.tasks for s in task.subscribers if s.final)

    async def _run(self) -> None:
        count = len(self.tasks)
        shards = [new_transport() for _ in range(1 + self.subscribers // PER_TRANSPORT)]
        self.transports = shards
        async with httpx.AsyncClient(base_url=self.app_url, timeout=10, transport=shards[0], trust_env=False) as api:
            await asyncio.gather(*(self._start(api, task) for task in self.tasks))
        jobs = []
        for n in range(self.subscribers):
            task = self.tasks[n % count]
            if not task.stream_url:
                continue
            subscriber = Subscriber()
            task.subscribers.append(subscriber)
            jobs.append(self._follow(task, subscriber, shards[n // PER_TRANSPORT]))
        await asyncio.gather(*jobs)

    async def _start(self, api: httpx.AsyncClient, task: HandoffTask) -> None:
        """POST /api/tasks through the load balancer (a full pod answers 503:
        retried, as HAProxy retries it on another pod first)."""
        for _ in range(30):
            try:
                response = await api.post("/api/tasks", json={"steps": task.steps, "step_seconds": self.step_seconds})
            except httpx.HTTPError as error:
                task.start_error = f"{type(error).__name__}: {error}"
                return
            if response.status_code == 202:
                body = response.json()
                task.task_id, task.stream_url = body["task_id"], body["stream_url"]
                task.started_on = response.headers.get("X-Pod", "?")
                return
            task.start_error = f"HTTP {response.status_code}: {response.text[:100]}"
            if response.status_code != 503:
                return
            await asyncio.sleep(0.5)

    async def _follow(self, task: HandoffTask, seen: Subscriber, transport: httpx.AsyncHTTPTransport) -> None:
        """One subscriber, as a browser's EventSource: from the first event
        to the final one, reconnecting after ``retry:`` with the last id it
        was given (a hint's ``id:``, else its last event's)."""
        http = httpx.AsyncClient(timeout=httpx.Timeout(10, read=60), transport=transport, trust_env=False)
        last_id: str | None = None
        retry = 1.0
        client = self.streams.client()
        while seen.connections + seen.failed_connects < MAX_CONNECTIONS and not self.stop_event.is_set():
            headers = {"Last-Event-ID": last_id} if last_id else {}
            told = False
            connected = False
            try:
                async with http.stream("GET", task.stream_url, headers=headers) as response:
                    connected = True
                    seen.connections += 1
                    seen.pods.append(response.headers.get("X-Pod", "?"))
                    with self.streams.connection("subscriber", client, response.headers.get("X-Pod")) as logged:
                        if response.status_code != 200:
                            logged.close(stream_log.REFUSED)
                            seen.errors.append(f"HTTP {response.status_code} from {seen.pods[-1]}")
                        else:
                            async for sse in httpx_sse.EventSource(response).aiter_sse():
                                if sse.retry:
                                    retry = sse.retry / 1000
                                if sse.event == "reconnect":
                                    told = True
                                    logged.hinted()
                                    seen.reconnects += 1
                                    if sse.id and sse.id != last_id:
                                        seen.hint_mismatches += 1
                                    last_id = sse.id or last_id
                                elif sse.event == "gap":
                                    seen.gaps += 1
                                elif sse.event == "task_event":
                                    data = json.loads(sse.data)
                                    seen.ids.append(sse.id)
                                    seen.events_after_handoff += seen.reconnects > 0
                                    last_id = sse.id
                                    step = (data.get("data") or {}).get("step")
                                    seen.events.append((str(data.get("event_type")), step))
                                    if data.get("event_type") in FINAL_TYPES:
                                        seen.final = ending(data)
                                        logged.close(stream_log.FINAL)
                                        return
                                elif sse.event not in ("", "message"):
                                    seen.errors.append(f"unexpected event {sse.event!r}: {sse.data[:80]}")
            except httpx.HTTPError as error:
                if not connected:
                    seen.failed_connects += 1
                    seen.errors.append(f"{type(error).__name__} before a response")
                elif not told:
                    seen.errors.append(f"{type(error).__name__} (from {seen.pods[-1]})")
            if connected and not told:
                seen.cuts += 1
            if self.stop_event.is_set():
                return
            await asyncio.sleep(retry)
        if not seen.final and not self.stop_event.is_set():
            seen.errors.append(f"gave up after {MAX_CONNECTIONS} connections")

    def _harness_error(self, error: Exception) -> None:
        for task in self.tasks:
            task.start_error = task.start_error or f"harness: {type(error).__name__}: {error}"


# --- what they saw, held against the store -----------------------------------


def _entry(sse_id: str) -> tuple[str, str]:
    """(epoch, "<ms>-<seq>") of a hub id ``<epoch>-<ms>-<seq>``."""
    epoch, _, entry = sse_id.partition("-")
    return epoch, entry


def _order(entry: str) -> tuple[int, int]:
    ms, _, seq = entry.partition("-")
    return int(ms or 0), int(seq or 0)


def check(seen: Subscriber, stored: StoredChannel, steps: int) -> dict:
    """One subscriber against its channel's record in the store."""
    store_ids = [event.id for event in stored.events if event.flag != "g"]
    pairs = [_entry(i) for i in seen.ids]
    entries = [entry for _, entry in pairs]
    duplicates = len(entries) - len(set(entries))
    holes = len(set(store_ids) - set(entries))
    foreign = len(set(entries) - set(store_ids))
    increasing = all(_order(a) < _order(b) for a, b in zip(entries, entries[1:]))
    progress = [step for kind, step in seen.events if kind == "progress_update"]
    kinds = [kind for kind, _ in seen.events]
    started_once = kinds[:1] == ["task_started"] and kinds.count("task_started") == 1
    contiguous = progress == list(range(1, len(progress) + 1))
    if seen.final == "task_completed":
        contiguous = contiguous and len(progress) == steps
    exactly_once = (
        entries == store_ids
        and duplicates == 0
        and increasing
        and len({epoch for epoch, _ in pairs}) <= 1
        and started_once
        and contiguous
    )
    true_ending = ending(json.loads(stored.final.data)) if stored.final and stored.final.data else None
    return {
        "exactly_once": exactly_once,
        "true_ending": seen.final is not None and seen.final == true_ending,
        "duplicates": duplicates,
        "holes": holes,
        "foreign": foreign,
        "steps_contiguous": contiguous and started_once,
    }


def report(clients: HandoffClients, store: StoreRecord, sigterms: dict[str, float]) -> dict:
    """Per task and in total: exactly once, true endings, gaps, reconnects.
    `sigterms`: each old pod's SIGTERM (wall clock, as the store's ids)."""
    tasks = []
    totals: Counter = Counter()
    for number, task in enumerate(clients.tasks, start=1):
        if not task.stream_url:
            tasks.append({"task": number, "steps": task.steps, "start_error": task.start_error})
            totals["tasks not started"] += 1
            continue
        stored = store.history(f"task-{task.task_id}")
        true_ending = ending(json.loads(stored.final.data)) if stored.final and stored.final.data else None
        checks = [check(s, stored, task.steps) for s in task.subscribers]
        ended_at = _order(stored.final.id)[0] / 1000 if stored.final else None
        sigterm = sigterms.get(task.started_on)
        row = {
            "task": number,
            "task_id": task.task_id[:8],
            "started_on": task.started_on,
            "steps": task.steps,
            "true_ending": true_ending or "none in the store",
            # When the store closed the channel, from its pod's SIGTERM.
            "ended_after_sigterm": round(ended_at - sigterm, 1) if ended_at and sigterm else None,
            "fewest_events_after_handoff": min(
                (s.events_after_handoff for s in task.subscribers if s.reconnects), default=0
            ),
            "subscribers": len(task.subscribers),
            "exactly_once": sum(c["exactly_once"] for c in checks),
            "with_true_ending": sum(c["true_ending"] for c in checks),
            "duplicates": sum(c["duplicates"] for c in checks),
            "holes": sum(c["holes"] for c in checks),
            "foreign_ids": sum(c["foreign"] for c in checks),
            "gaps": sum(s.gaps for s in task.subscribers),
            "gap_markers_in_store": sum(1 for e in stored.events if e.flag == "g"),
            "reconnects": sum(s.reconnects for s in task.subscribers),
            "handed_off": sum(1 for s in task.subscribers if s.reconnects),
            "cuts": sum(s.cuts for s in task.subscribers),
            "failed_connects": sum(s.failed_connects for s in task.subscribers),
            "hint_mismatches": sum(s.hint_mismatches for s in task.subscribers),
            "pods_serving": len({pod for s in task.subscribers for pod in s.pods}),
            "events_in_store": len(stored.events),
            "errors": Counter(e for s in task.subscribers for e in s.errors).most_common(3),
        }
        tasks.append(row)
        totals["tasks"] += 1
        totals[f"ending: {true_ending}"] += 1
        for key in (
            "subscribers",
            "exactly_once",
            "with_true_ending",
            "duplicates",
            "holes",
            "foreign_ids",
            "gaps",
            "gap_markers_in_store",
            "reconnects",
            "handed_off",
            "cuts",
            "failed_connects",
            "hint_mismatches",
        ):
            totals[key] += row[key]
        totals["subscriber errors"] += sum(len(s.errors) for s in task.subscribers)
    return {"tasks": tasks, "totals": dict(totals)}


def failures(handoff: dict) -> list[str]:
    """Why a handoff run fails (empty: it passes)."""
    totals = handoff["totals"]
    found = []
    if totals.get("tasks not started"):
        found.append(f"{totals['tasks not started']} tasks not started: {[t for t in handoff['tasks'] if 'start_error' in t]}")
    if not totals.get("tasks"):
        return found + ["no task ran"]
    subscribers = totals["subscribers"]
    for key, what in (("exactly_once", "saw every event exactly once"), ("with_true_ending", "saw the true ending")):
        if totals[key] != subscribers:
            found.append(f"{subscribers - totals[key]} of {subscribers} subscribers never {what}")
    for key in (
        "duplicates",
        "holes",
        "foreign_ids",
        "gaps",
        "cuts",
        "failed_connects",
        "hint_mismatches",
        "subscriber errors",
    ):
        if totals.get(key):
            found.append(f"{key}: {totals[key]}")
    if "ending: None" in totals:
        found.append(f"{totals['ending: None']} tasks with no final event in the store")
    if not totals["handed_off"]:
        found.append("no subscriber was handed off: the scenario proved nothing")
    if found:
        bad = [t for t in handoff["tasks"] if t.get("exactly_once") != t.get("subscribers") or t.get("errors")]
        found.append(f"tasks: {bad[:3]}")
    return found
