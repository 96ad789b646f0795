"""The probe port through a flood (issue 27): 10,000 connections that never
send a request (one in ten sends the start of one), held and re-opened as
the server closes them, against the runtime's probe listener of the test
Waitress app (bindings/python/tests/apps/stream_app.py, GS_PROBE_ADDR) in a
child process; a kubelet-like probe (a new connection, the whole request
at once, a 2 s timeout) every 50 ms meanwhile. Prints p50/p99/max and the
failures.

    python benches/probe_flood.py [--held 10000] [--probes 200]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "bindings" / "python" / "tests"))

from server_process import ServerProcess  # noqa: E402
from test_probes import _Flood, kubelet_probe  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--held", type=int, default=10_000)
    parser.add_argument("--probes", type=int, default=200)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    apps = ROOT / "bindings" / "python" / "tests" / "apps"
    server = ServerProcess([sys.executable, str(apps / "stream_app.py")], {"GS_PROBE_ADDR": "127.0.0.1:0"}, cwd=apps)
    try:
        port = int(server.probe_url.rsplit(":", 1)[1])
        flood = _Flood(port, args.held, rounds=1.5)
        took: list[float] = []
        failed = 0
        try:
            for _ in range(args.probes):
                started = time.monotonic()
                try:
                    assert kubelet_probe(port, "/healthz", 2.0) == 200
                    took.append(time.monotonic() - started)
                except (OSError, AssertionError):
                    failed += 1
                time.sleep(0.05)
        finally:
            flood.close()
        took.sort()
        p99 = took[int(len(took) * 0.99) - 1] if took else float("nan")
        print(
            f"held {args.held}, opened {flood.opened}: {len(took)} answered, {failed} failed; "
            f"p50 {statistics.median(took) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {took[-1] * 1000:.1f} ms"
        )
    finally:
        server.close()


if __name__ == "__main__":
    main()
