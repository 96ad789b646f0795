"""A client of the example-server HTTP contract (docs/examples.md): start a
task, follow its SSE stream. Used by the end-to-end tests, the demo and the
rolling-update harness, against either example server."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import httpx
import httpx_sse

FINAL_EVENT_TYPES = ("task_completed", "task_failed")


@dataclass
class StreamResult:
    """What one SSE stream delivered, with arrival times (time.monotonic)."""

    events: List[dict] = field(default_factory=list)  # {"at", "event", "data", "retry", "id"}
    error: Optional[str] = None
    ended_at: Optional[float] = None

    @property
    def task_events(self) -> List[dict]:
        return [json.loads(e["data"]) for e in self.events if e["event"] == "task_event"]

    @property
    def event_types(self) -> List[str]:
        return [e["event_type"] for e in self.task_events]

    @property
    def completed(self) -> bool:
        return "task_completed" in self.event_types

    @property
    def reconnect(self) -> Optional[dict]:
        return next((e for e in self.events if e["event"] == "reconnect"), None)

    @property
    def cut(self) -> bool:
        """Ended without its final event and without being told to reconnect."""
        return not self.completed and "task_failed" not in self.event_types and self.reconnect is None


def start_task(client: httpx.Client, steps: int, step_seconds: float) -> httpx.Response:
    return client.post("/api/tasks", json={"steps": steps, "step_seconds": step_seconds})


def follow_stream(
    client: httpx.Client,
    stream_url: str,
    on_event: Optional[Callable[[dict], None]] = None,
) -> StreamResult:
    """Reads the stream to its end (or a transport error) and returns it."""
    result = StreamResult()
    try:
        with httpx_sse.connect_sse(client, "GET", stream_url) as source:
            source.response.raise_for_status()
            for sse in source.iter_sse():
                event = {"at": time.monotonic(), "event": sse.event, "data": sse.data, "retry": sse.retry, "id": sse.id}
                result.events.append(event)
                if on_event is not None:
                    on_event(event)
    except httpx.HTTPError as error:
        result.error = f"{type(error).__name__}: {error}"
    result.ended_at = time.monotonic()
    return result
