"""The probe port through a flood (issue 27): 10,000 connections that never
send a request (one in ten sends the start of one), held at once, the
oldest replaced by a new one again and again (``--rounds`` times 10,000 in
all, enough to last the whole run), against the runtime's probe listener of
the test Waitress app (bindings/python/tests/apps/stream_app.py,
GS_PROBE_ADDR) in a child process; a kubelet-like probe (a new connection,
the whole request at once, a 2 s timeout) every 50 ms meanwhile. Prints
p50/p99/max, the failures by kind, how many probes ran while the flood was
still replacing connections, and the load average.

    python benches/probe_flood.py [--held 10000] [--probes 200] [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from flood import Flood, kubelet_probe  # noqa: E402
from server_process import ServerProcess  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--held", type=int, default=10_000)
    parser.add_argument("--probes", type=int, default=200)
    # Connections opened in all, in units of --held: enough that the flood
    # goes on replacing them for the whole run of probes.
    parser.add_argument("--rounds", type=float, default=15)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    apps = ROOT / "bindings" / "python" / "tests" / "apps"
    server = ServerProcess([sys.executable, str(apps / "stream_app.py")], {"GS_PROBE_ADDR": "127.0.0.1:0"}, cwd=apps)
    try:
        port = int(server.probe_url.rsplit(":", 1)[1])
        flood = Flood(port, args.held, rounds=args.rounds)
        took: list[float] = []
        failed = 0
        during = 0
        errors: dict[str, int] = {}
        try:
            for _ in range(args.probes):
                during += flood.reopening.is_set()
                started = time.monotonic()
                try:
                    assert kubelet_probe(port, "/healthz", 2.0) == 200
                    took.append(time.monotonic() - started)
                except (OSError, AssertionError) as error:
                    failed += 1
                    errors[type(error).__name__] = errors.get(type(error).__name__, 0) + 1
                time.sleep(0.05)
        finally:
            flood.close()
        took.sort()
        p99 = took[int(len(took) * 0.99) - 1] if took else float("nan")
        print(
            f"held {args.held}, opened {flood.opened} ({during} probes while they were being replaced): "
            f"{len(took)} answered, {failed} failed {errors or ''}; "
            f"p50 {statistics.median(took) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {took[-1] * 1000:.1f} ms; "
            f"load average {load:.2f} before, {os.getloadavg()[0]:.2f} after"
        )
    finally:
        server.close()


if __name__ == "__main__":
    main()
