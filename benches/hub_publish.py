"""The stream hub's publish cost from Python, per call, next to the cost
track_stream adds per SSE event (thread-per-stream's per-event price).

`hub.publish` is one ctypes call (the GIL is released during it): it
serializes the event once, appends it to the channel's history and queues it
to every subscriber. Measured with 0 and 1 subscribers (a subscriber costs a
queue push); per-call times from batches of 100 calls, median and p99 over
the batches. `make bench` runs it:
    .venv/bin/python benches/hub_publish.py
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
import urllib.request

os.environ.setdefault("GS_STREAM_SECRET", "bench secret")

from last_call import GracefulShutdownManager, hub
from last_call.wsgi import track_stream

BATCH = 100
BATCHES = 5_000
EVENTS = 200_000
DATA = '{"event_type": "progress_update", "data": {"step": 1, "steps": 10, "percent": 10}}'


def publish_per_call_ns(channel: str) -> list[float]:
    publish = hub.publish
    samples = []
    for _ in range(BATCHES):
        started = time.perf_counter_ns()
        for _ in range(BATCH):
            publish(channel, DATA, event="task_event")
        samples.append((time.perf_counter_ns() - started) / BATCH)
    return sorted(samples)


def track_stream_per_event_ns() -> float:
    manager = GracefulShutdownManager()
    environ = {"waitress.client_disconnected": lambda: False}
    runs = []
    for _ in range(5):
        plain_started = time.perf_counter_ns()
        for _ in iter(range(EVENTS)):
            pass
        plain = time.perf_counter_ns() - plain_started
        stream = track_stream(iter(range(EVENTS)), manager, environ)
        started = time.perf_counter_ns()
        for _ in stream:
            pass
        stream.close()
        runs.append((time.perf_counter_ns() - started - plain) / EVENTS)
    return statistics.median(runs)


def drain(url: str, stop: threading.Event) -> None:
    """A subscriber that reads everything (so its queue never fills)."""
    with urllib.request.urlopen(url, timeout=60) as response:
        while not stop.is_set() and response.read(65536):
            pass


def main() -> int:
    hub.start("127.0.0.1:0")
    none = publish_per_call_ns("nobody")
    stop = threading.Event()
    reader = threading.Thread(target=drain, args=(hub.subscribe_url("one", ttl=600), stop), daemon=True)
    reader.start()
    while GracefulShutdownManager().active_streams < 1:
        time.sleep(0.01)
    one = publish_per_call_ns("one")
    stop.set()
    tracked = track_stream_per_event_ns()
    p = lambda s, q: s[min(len(s) - 1, int(len(s) * q))]  # noqa: E731
    print("\nhub.publish from Python, per call (batches of 100)\n")
    print("| subscribers | calls | median | p99 |")
    print("|---|---|---|---|")
    for name, samples in (("0", none), ("1 (reading)", one)):
        print(f"| {name} | {BATCH * BATCHES:,} | {p(samples, 0.5) / 1000:.2f} µs | {p(samples, 0.99) / 1000:.2f} µs |")
    print(f"\ntrack_stream's cost per SSE event (thread-per-stream): {tracked:.0f} ns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
