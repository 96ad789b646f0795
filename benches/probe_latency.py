"""Probe latency: the runtime's own probe listener (GS_PROBE_ADDR) against
the host's own /healthz route, side by side in the same run, on the test
Waitress app (bindings/python/tests/apps/stream_app.py) in a child process:

* idle: nothing else going on;
* saturated: THREADS=4 and 8 endless SSE streams (every Waitress thread
  holds a stream, four more wait in its queue);
* GIL held: a thread running long C-level computations (the interpreter
  cannot switch threads inside one).

Each probe is a new connection (as the kubelet makes them), with a 2 s
timeout (the manifest's). Prints p50/p99 and the timeouts, as the table in
BENCHMARKS.md.

    python benches/probe_latency.py [--probes 1000]
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from held_streams import hold_streams  # noqa: E402
from server_process import ServerProcess, eventually  # noqa: E402

APP = ROOT / "bindings" / "python" / "tests" / "apps" / "stream_app.py"
TIMEOUT = 2.0


def measure(url: str, count: int) -> tuple[list[float], int]:
    """Latencies (ms) of `count` GET /healthz, each on a new connection (as
    the kubelet probes), and how many timed out. http.client keeps the
    client's own cost out of the figure (an httpx client per probe costs
    ~50 ms of set-up)."""
    parsed = urlsplit(url)
    latencies, timeouts = [], 0
    for _ in range(count):
        started = time.perf_counter()
        connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=TIMEOUT)
        try:
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"{url}/healthz answered {response.status}")
            latencies.append((time.perf_counter() - started) * 1000)
        except TimeoutError:
            timeouts += 1
        finally:
            connection.close()
    return latencies, timeouts


def row(scenario: str, where: str, latencies: list[float], timeouts: int, count: int) -> str:
    if latencies:
        ordered = sorted(latencies)
        p50 = statistics.median(ordered)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        figures = f"{p50:.2f} ms | {p99:.2f} ms"
    else:
        figures = "— | —"
    return f"| {scenario} | {where} | {count} | {figures} | {timeouts} |"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--probes", type=int, default=1000)
    # The host's own route, where it cannot answer, costs a 2 s timeout
    # each: measure fewer there.
    parser.add_argument("--stuck-probes", type=int, default=20)
    args = parser.parse_args()
    rows = []
    for scenario in ("idle", "saturated", "GIL held"):
        env = {"GS_PROBE_ADDR": "127.0.0.1:0", "THREADS": "4" if scenario == "saturated" else "8"}
        server = ServerProcess([sys.executable, str(APP)], env, cwd=APP.parent)
        try:
            assert server.probe_url
            if scenario == "saturated":
                hold_streams(server.url, 8, timeout=120)
                eventually(
                    lambda: httpx.get(f"{server.probe_url}/metrics", headers={"accept": "application/json"}).json()[
                        "active_streams"
                    ]
                    >= 4
                )
            if scenario == "GIL held":
                server.client.get("/hog", params={"seconds": 600}).raise_for_status()
            probe = measure(server.probe_url, args.probes)
            host_count = args.stuck_probes if scenario == "saturated" else args.probes
            host = measure(server.url, host_count)
            rows.append(row(scenario, "runtime probe port", *probe, args.probes))
            rows.append(row(scenario, "host's own /healthz", *host, host_count))
        finally:
            server.close()
    print("| host | probed on | probes | p50 | p99 | timed out (2 s) |")
    print("|---|---|---|---|---|---|")
    for line in rows:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
