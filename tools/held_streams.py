"""Endless SSE streams held open in daemon threads, to keep a host's worker
threads busy (the test Waitress app's ``/stream?events=0``): the saturated
host beside which the probe-port tests (bindings/python/tests/test_probes.py)
and benches/probe_latency.py hold the runtime's probe listener."""

from __future__ import annotations

import threading

import httpx


def hold_streams(url: str, count: int, timeout: float = 60.0) -> list[threading.Thread]:
    """`count` endless streams of the app at `url`, each read in a daemon
    thread until the server ends it or goes away (they end with it)."""

    def hold() -> None:
        try:
            with httpx.stream("GET", f"{url}/stream?events=0&interval=0.2", timeout=timeout) as response:
                for _ in response.iter_raw():
                    pass
        except httpx.HTTPError:
            pass

    threads = [threading.Thread(target=hold, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads
