"""Capacity of the stream hub in the Flask example's own process
(STREAMS=hub, THREADS=8), beside the same app serving each stream on a
Waitress thread at the largest count its pool allows (THREADS=8: 6 streams,
2 threads left for the API).

For each: the app's RSS with no stream, then with N streams open on one
task (examples/hub_load opens them and reports the time to open them all);
a SIGTERM while they are open; every stream must end with its ending
(task_failed, reason shutdown, at ClosingStreams: the task is pod-bound),
none cut, and the app exits 0. `make bench` runs it:
    cargo build --release --example hub_load
    .venv/bin/python benches/hub_capacity.py --streams 10000
"""

from __future__ import annotations

import argparse
import json
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from server_process import ServerProcess  # noqa: E402

LOAD = ROOT / "target" / "release" / "examples" / "hub_load"
TIMINGS = {
    "GS_DRAIN_DELAY_SECONDS": "1",
    "GS_SHUTDOWN_TIMEOUT_SECONDS": "20",
    "GS_CLOSE_NOTICE_SECONDS": "5",
    "GS_HOOK_BUDGET_SECONDS": "2",
    "GS_EXIT_WATCHDOG_SECONDS": "5",
}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def run(mode: str, streams: int) -> dict:
    env = {"THREADS": "8", **TIMINGS}
    if mode == "hub":
        env.update({"STREAMS": "hub", "GS_STREAM_ADDR": "127.0.0.1:0", "GS_STREAM_SECRET": "bench: a secret of 32 bytes or more"})
    server = ServerProcess([sys.executable, "run.py"], env, cwd=ROOT / "examples" / "flask_app")
    try:
        before = rss_kib(server.process.pid)
        task = server.client.post("/api/tasks", json={"steps": 200, "step_seconds": 0.5}).json()
        url = task["stream_url"]
        if url.startswith("/"):
            url = server.url + url
        load = subprocess.Popen(
            [str(LOAD), "--url", url, "--streams", str(streams), "--connect-parallel", "256"],
            stdout=subprocess.PIPE,
            text=True,
        )
        opened = json.loads(load.stdout.readline())
        time.sleep(1.0)  # events flowing to every stream
        during = rss_kib(server.process.pid)
        server.signal(signal.SIGTERM)
        ended = json.loads(load.stdout.readline())
        load.wait(timeout=60)
        code = server.wait_exit(60)
    finally:
        server.close()
    return {
        "mode": mode,
        "streams": streams,
        "opened": opened["opened"],
        "open_seconds": opened["open_seconds"],
        "rss_before_mib": before / 1024,
        "rss_open_mib": during / 1024,
        "kib_per_stream": (during - before) / max(opened["opened"], 1),
        "events_min": ended["events_min"],
        "cut": ended["cut"],
        "errors": ended["errors"],
        "exit": code,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--thread-streams", type=int, default=6)
    args = parser.parse_args()
    if not LOAD.exists():
        print(f"{LOAD} is missing: cargo build --release --example hub_load", file=sys.stderr)
        return 2
    # Every stream is a descriptor on each side; children inherit this.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    rows = [run("hub", args.streams), run("thread", args.thread_streams)]
    print(
        "\n| Flask app (THREADS=8) | streams open | time to open | RSS no stream -> open"
        " | per stream | events each (min) | cut by SIGTERM | exit |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        name = "hub (STREAMS=hub)" if r["mode"] == "hub" else "thread per stream"
        print(
            f"| {name} | {r['opened']:,} of {r['streams']:,} | {r['open_seconds']:.2f} s | "
            f"{r['rss_before_mib']:.1f} -> {r['rss_open_mib']:.1f} MiB | {r['kib_per_stream']:.1f} KiB | "
            f"{r['events_min']} | {r['cut']} (errors {r['errors']}) | {r['exit']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
