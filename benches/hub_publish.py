"""The stream hub's publish cost from Python, per call, next to the cost
track_stream adds per SSE event (thread-per-stream's per-event price).

`hub.publish` is one ctypes call of five arguments, `gs_hub_send` (the GIL
is released during it): it serializes the event once, appends it to the
channel's history and queues it to every subscriber. Measured with 0 and 1
subscribers; per-call times from batches of 100 calls, median and p99 over
the batches, in wall-clock time and in the calling thread's CPU time (which
a machine shared with other work inflates less). Beside it, for scale: a
ctypes call with no argument, and `gs_hub_send` called bare with its
arguments already encoded.

Then the call to 1 subscriber beside the call to 10,000 (`--subscribers`,
opened by `target/release/examples/hub_load` in child processes, killed at
the end), in alternating rounds: single calls 10 ms apart (each finds the
hub's threads asleep, as a task publishing now and then does) and batches
of 100. A publish crosses to the hub's threads once whatever the number of
subscribers, so the two should cost alike (the call was 16 ms to 10,000
when it queued the event to each subscriber from the app's thread).
`make bench` runs it:
    .venv/bin/python benches/hub_publish.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Callable

os.environ.setdefault("GS_STREAM_SECRET", "bench: a secret of 32 bytes or more")
# Room for the 10,000 subscribers and the others (the default cap is 10,000).
os.environ.setdefault("GS_STREAM_MAX_CONNECTIONS", "20000")

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


HUB_LOAD = Path(__file__).resolve().parents[1] / "target" / "release" / "examples" / "hub_load"


def open_subscribers(channel: str, count: int) -> subprocess.Popen[bytes]:
    """`count` subscribers of `channel` in a child process that reads
    everything; returns once every one has its stream open."""
    url = hub.subscribe_url(channel, ttl=3600)
    child = subprocess.Popen([str(HUB_LOAD), "--url", url, "--streams", str(count)], stdout=subprocess.PIPE)
    assert child.stdout is not None
    child.stdout.readline()  # {"opened": N, ...}
    return child


def one_vs_many(many: int, rounds: int) -> list[tuple[str, tuple[list[float], list[float]]]]:
    """hub.publish to 1 subscriber and to `many`, alternating: single calls
    10 ms apart, and batches of 100."""
    before = GracefulShutdownManager().active_streams
    children = [open_subscribers("one", 1), open_subscribers("many", many)]
    try:
        deadline = time.monotonic() + 120
        while GracefulShutdownManager().active_streams < before + many + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        held = GracefulShutdownManager().active_streams - before
        single: dict[str, tuple[list[float], list[float]]] = {"one": ([], []), "many": ([], [])}
        batched: dict[str, tuple[list[float], list[float]]] = {"one": ([], []), "many": ([], [])}
        for _ in range(rounds):
            for channel in ("one", "many"):
                wall, cpu = single[channel]
                for _ in range(100):
                    time.sleep(0.01)
                    started, started_cpu = time.perf_counter_ns(), time.thread_time_ns()
                    hub.publish(channel, DATA, event="task_event")
                    cpu.append(float(time.thread_time_ns() - started_cpu))
                    wall.append(float(time.perf_counter_ns() - started))
                wall, cpu = batched[channel]
                for _ in range(10):
                    time.sleep(0.01)
                    started, started_cpu = time.perf_counter_ns(), time.thread_time_ns()
                    for _ in range(BATCH):
                        hub.publish(channel, DATA, event="task_event")
                    cpu.append((time.thread_time_ns() - started_cpu) / BATCH)
                    wall.append((time.perf_counter_ns() - started) / BATCH)
    finally:
        for child in children:
            child.kill()
            child.wait()
    n = f"{held - 1:,}"
    return [
        ("hub.publish, 1 subscriber, one call every 10 ms", (sorted(single["one"][0]), sorted(single["one"][1]))),
        (f"hub.publish, {n} subscribers, one call every 10 ms", (sorted(single["many"][0]), sorted(single["many"][1]))),
        ("hub.publish, 1 subscriber, batches", (sorted(batched["one"][0]), sorted(batched["one"][1]))),
        (f"hub.publish, {n} subscribers, batches", (sorted(batched["many"][0]), sorted(batched["many"][1]))),
    ]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
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
    load_before = os.getloadavg()[0]
    if args.subscribers:
        rows.extend(one_vs_many(args.subscribers, args.rounds))
    tracked = track_stream_per_event_ns()
    p = lambda s, q: s[min(len(s) - 1, int(len(s) * q))]  # noqa: E731
    print(
        f"\nper call, batches of {BATCH}, {BATCH * BATCHES:,} calls each (the rows to 1 and to many: "
        f"{args.rounds} rounds of 100 single calls and 10 batches each); load average {load_before:.2f} "
        f"before the rows to many, {os.getloadavg()[0]:.2f} after\n"
    )
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
