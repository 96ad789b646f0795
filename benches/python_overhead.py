"""Python overhead: what the ctypes binding costs per stream and per event.

* a begin+end pair through GracefulShutdownManager (ctypes) next to a
  pure-Python manager built on threading.Condition (what the legacy app
  would write by hand);
* the track_stream wrapper's cost per SSE event (it checks the phase and
  the client's connection before each event).

Medians over repeats, with the spread. `make bench` runs it:
    .venv/bin/python benches/python_overhead.py
"""

from __future__ import annotations

import statistics
import threading
import timeit

from last_call import GracefulShutdownManager
from last_call.wsgi import track_stream

REPEATS = 15
PAIRS = 200_000
EVENTS = 200_000


class PurePythonManager:
    """The legacy-style manager: a count under a Condition."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._active = 0

    def increment_active_streams(self) -> None:
        with self._condition:
            self._active += 1

    def decrement_active_streams(self) -> None:
        with self._condition:
            if self._active == 0:
                raise ValueError("no active stream")
            self._active -= 1
            if self._active == 0:
                self._condition.notify_all()


def per_call_ns(statement, number: int) -> list:
    times = timeit.repeat(statement, number=number, repeat=REPEATS)
    return [t / number * 1e9 for t in times]


def show(name: str, samples: list) -> float:
    median = statistics.median(samples)
    print(f"| {name} | {REPEATS} x {PAIRS:,} | {median:.0f} ns | {min(samples):.0f}–{max(samples):.0f} ns |")
    return median


def pair(manager):
    increment, decrement = manager.increment_active_streams, manager.decrement_active_streams

    def run():
        increment()
        decrement()

    return run


def events_through(wrap: bool):
    manager = GracefulShutdownManager()
    environ = {"waitress.client_disconnected": lambda: False}

    def run():
        source = iter(range(EVENTS))
        stream = track_stream(source, manager, environ) if wrap else source
        for _ in stream:
            pass
        if wrap:
            stream.close()

    return run


def main() -> None:
    print("python: begin+end pair\n")
    print("| implementation | runs | median per pair | spread |")
    print("|---|---|---|---|")
    native = show("GracefulShutdownManager (ctypes -> Rust)", per_call_ns(pair(GracefulShutdownManager()), PAIRS))
    pure = show("pure Python (threading.Condition)", per_call_ns(pair(PurePythonManager()), PAIRS))
    print(f"\nratio: ctypes / pure Python = {native / pure:.2f}\n")

    print("python: track_stream, per SSE event\n")
    print("| iteration | runs | median per event | spread |")
    print("|---|---|---|---|")
    plain = statistics.median(per_call_ns(events_through(False), 1))
    wrapped_samples = per_call_ns(events_through(True), 1)
    plain_samples = per_call_ns(events_through(False), 1)
    plain = statistics.median(plain_samples) / EVENTS
    wrapped = statistics.median(wrapped_samples) / EVENTS
    print(f"| plain generator | {REPEATS} x {EVENTS:,} | {plain:.0f} ns | {min(plain_samples) / EVENTS:.0f}–{max(plain_samples) / EVENTS:.0f} ns |")
    print(f"| through track_stream | {REPEATS} x {EVENTS:,} | {wrapped:.0f} ns | {min(wrapped_samples) / EVENTS:.0f}–{max(wrapped_samples) / EVENTS:.0f} ns |")
    print(f"\noverhead of track_stream: {wrapped - plain:.0f} ns per event")


if __name__ == "__main__":
    main()
