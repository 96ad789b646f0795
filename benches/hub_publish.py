"""The stream hub's publish cost from Python, per call, next to the cost
track_stream adds per SSE event (thread-per-stream's per-event price).

`hub.publish` is one ctypes call of five arguments, `gs_hub_send` (the GIL
is released during it): it serializes the event once, appends it to the
channel's history and queues it to every subscriber. Measured with 0 and 1
subscribers (a subscriber costs a queue push); per-call times from batches
of 100 calls, median and p99 over the batches, in wall-clock time and in the
calling thread's CPU time (which a machine shared with other work inflates
less). Beside it, for scale: a ctypes call with no argument, and
`gs_hub_send` called bare with its arguments already encoded. `make bench`
runs it:
    .venv/bin/python benches/hub_publish.py
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
import urllib.request
from typing import Callable

os.environ.setdefault("GS_STREAM_SECRET", "bench: a secret of 32 bytes or more")

from last_call import GracefulShutdownManager, _native, hub
from last_call.wsgi import track_stream

BATCH = 100
BATCHES = 5_000
EVENTS = 200_000
DATA = '{"event_type": "progress_update", "data": {"step": 1, "steps": 10, "percent": 10}}'


def per_call_ns(call: Callable[[], object]) -> tuple[list[float], list[float]]:
    """Sorted per-call wall-clock and thread CPU times, from batches."""
    wall, cpu = [], []
    for _ in range(BATCH * 100):  # warm: the history full, the caches hot
        call()
    for _ in range(BATCHES):
        started, started_cpu = time.perf_counter_ns(), time.thread_time_ns()
        for _ in range(BATCH):
            call()
        cpu.append((time.thread_time_ns() - started_cpu) / BATCH)
        wall.append((time.perf_counter_ns() - started) / BATCH)
    return sorted(wall), sorted(cpu)


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
    library = _native.library()
    data = DATA.encode()
    send = library.gs_hub_send
    rows = [
        ("ctypes call, no argument", per_call_ns(library.gs_active_streams)),
        ("gs_hub_send bare, encoded", per_call_ns(lambda: send(b"bare", 0, b"task_event", data, None))),
        ("hub.publish, 0 subscribers", per_call_ns(lambda: hub.publish("nobody", DATA, event="task_event"))),
    ]
    stop = threading.Event()
    reader = threading.Thread(target=drain, args=(hub.subscribe_url("one", ttl=600), stop), daemon=True)
    reader.start()
    while GracefulShutdownManager().active_streams < 1:
        time.sleep(0.01)
    rows.append(
        ("hub.publish, 1 subscriber (reading)", per_call_ns(lambda: hub.publish("one", DATA, event="task_event")))
    )
    stop.set()
    tracked = track_stream_per_event_ns()
    p = lambda s, q: s[min(len(s) - 1, int(len(s) * q))]  # noqa: E731
    print(f"\nper call, batches of {BATCH}, {BATCH * BATCHES:,} calls each; load average {os.getloadavg()[0]:.2f}\n")
    print("| call | median (wall) | p99 (wall) | median (CPU) | p99 (CPU) |")
    print("|---|---|---|---|---|")
    for name, (wall, cpu) in rows:
        print(
            f"| {name} | {p(wall, 0.5) / 1000:.2f} µs | {p(wall, 0.99) / 1000:.2f} µs "
            f"| {p(cpu, 0.5) / 1000:.2f} µs | {p(cpu, 0.99) / 1000:.2f} µs |"
        )
    print(f"\ntrack_stream's cost per SSE event (thread-per-stream): {tracked:.0f} ns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
