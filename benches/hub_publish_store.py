"""A publish call from Python with the shared store on Redis
(``GS_STREAM_STORE=redis://...``), beside the memory store (issue 24's goal:
within 1.5x of it).

Each store is measured in a child process of its own (a process starts one
hub): ``hub.publish`` of a typical task event, with 0 subscribers and with 1
subscriber reading, per-call times from batches of 100 calls (median and p99
over the batches, wall clock and the calling thread's CPU time), as
``benches/hub_publish.py`` measures. The calls are paced at ``--rate`` per
second (a batch, then a sleep): with Redis a publish only queues the event
for the hub's writer, and an unpaced loop would outrun Redis and measure the
full queue's refusal (``HUB_BUSY``, counted) rather than the call. Both stores
get the same pacing. A third row times single calls about a millisecond
apart: a publish that finds the hub's thread idle, as a task publishing
now and then does (with Redis, the call wakes the writer). The
redis-server (no persistence, a free port of 127.0.0.1) is started here and killed when this script ends, also on an
error. ``make bench`` runs it:
    .venv/bin/python benches/hub_publish_store.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from redis_process import RedisProcess

BATCH = 100
DATA = '{"event_type": "progress_update", "data": {"step": 1, "steps": 10, "percent": 10}}'


def child(rate: int, batches: int) -> int:
    """Measures in this process, with the store of GS_STREAM_STORE."""
    os.environ.setdefault("GS_STREAM_SECRET", "bench: a secret of 32 bytes or more")
    from last_call import GracefulShutdownManager, hub
    from last_call.errors import InvalidStateError

    hub.start("127.0.0.1:0")
    busy = 0

    def publish(channel: str) -> None:
        nonlocal busy
        try:
            hub.publish(channel, DATA, event="task_event")
        except InvalidStateError:
            busy += 1

    def per_call_ns(channel: str) -> tuple[list[float], list[float]]:
        wall, cpu = [], []
        pause = BATCH / rate
        for _ in range(BATCH * 20):  # warm
            publish(channel)
        time.sleep(0.2)
        for _ in range(batches):
            started, started_cpu = time.perf_counter_ns(), time.thread_time_ns()
            for _ in range(BATCH):
                publish(channel)
            cpu.append((time.thread_time_ns() - started_cpu) / BATCH)
            elapsed = (time.perf_counter_ns() - started) / 1e9
            wall.append(elapsed * 1e9 / BATCH)
            time.sleep(max(0.0, pause - elapsed))
        return sorted(wall), sorted(cpu)

    def single_calls_ns(channel: str, calls: int) -> tuple[list[float], list[float]]:
        """Each call timed alone, one about every millisecond: a publish
        that finds the hub's thread asleep (it must be woken)."""
        wall, cpu = [], []
        for _ in range(calls):
            time.sleep(0.001)
            started, started_cpu = time.perf_counter_ns(), time.thread_time_ns()
            publish(channel)
            cpu.append(float(time.thread_time_ns() - started_cpu))
            wall.append(float(time.perf_counter_ns() - started))
        return sorted(wall), sorted(cpu)

    rows: dict[str, object] = {}
    load = os.getloadavg()[0]
    rows["0 subscribers"] = per_call_ns("nobody")
    rows["0 subscribers, one call a ms"] = single_calls_ns("nobody", 3_000)
    stop = threading.Event()

    def drain(url: str) -> None:
        with urllib.request.urlopen(url, timeout=60) as response:
            while not stop.is_set() and response.read(65536):
                pass

    reader = threading.Thread(target=drain, args=(hub.subscribe_url("one", ttl=600),), daemon=True)
    reader.start()
    deadline = time.monotonic() + 20
    while GracefulShutdownManager().active_streams < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    rows["1 subscriber (reading)"] = per_call_ns("one")
    # A channel somebody reads: the memory store wakes the hub's thread
    # for it too, as the shared store's writer is woken for every call.
    rows["1 subscriber, one call a ms"] = single_calls_ns("one", 3_000)
    stop.set()
    print(json.dumps({"rows": rows, "busy": busy, "load": load}))
    return 0


def measure(store: str, rate: int, batches: int) -> dict[str, object]:
    env = dict(os.environ, GS_STREAM_STORE=store)
    command = [sys.executable, __file__, "--child", "--rate", str(rate), "--batches", str(batches)]
    done = subprocess.run(command, env=env, capture_output=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{store}: {done.stderr.decode()}")
    result: dict[str, object] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--rate", type=int, default=20_000)
    parser.add_argument("--batches", type=int, default=1_000)
    args = parser.parse_args()
    if args.child:
        return child(args.rate, args.batches)
    try:
        redis = RedisProcess()
    except RuntimeError as error:
        print(f"hub_publish_store: {error}", file=sys.stderr)
        return 2
    port = redis.port
    try:
        results = {
            "memory:": measure("memory:", args.rate, args.batches),
            f"redis://127.0.0.1:{port}/0": measure(f"redis://127.0.0.1:{port}/0", args.rate, args.batches),
        }
    finally:
        redis.close()
    p = lambda s, q: s[min(len(s) - 1, int(len(s) * q))]  # noqa: E731
    print(
        f"\nhub.publish per call, batches of {BATCH} paced at {args.rate:,}/s, {BATCH * args.batches:,} calls per row\n"
    )
    print("| store | subscribers | median (wall) | p99 (wall) | median (CPU) | p99 (CPU) | refused (HUB_BUSY) | load |")
    print("|---|---|---|---|---|---|---|---|")
    medians: dict[tuple[str, str], tuple[float, float]] = {}
    for store, result in results.items():
        rows = result["rows"]
        assert isinstance(rows, dict)
        name = "memory" if store.startswith("memory") else "redis"
        for row, (wall, cpu) in rows.items():
            medians[(name, row)] = (p(wall, 0.5), p(cpu, 0.5))
            print(
                f"| {name} | {row} | {p(wall, 0.5) / 1000:.2f} µs | {p(wall, 0.99) / 1000:.2f} µs "
                f"| {p(cpu, 0.5) / 1000:.2f} µs | {p(cpu, 0.99) / 1000:.2f} µs | {result['busy']} "
                f"| {result['load']:.2f} |"
            )
    for row in (
        "0 subscribers",
        "0 subscribers, one call a ms",
        "1 subscriber (reading)",
        "1 subscriber, one call a ms",
    ):
        (redis_wall, redis_cpu), (memory_wall, memory_cpu) = medians[("redis", row)], medians[("memory", row)]
        print(
            f"\nredis / memory, {row}: median wall {redis_wall / memory_wall:.2f}x, "
            f"median CPU {redis_cpu / memory_cpu:.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
