"""Capacity of the Rust example server: runs examples/sse_load (which starts
the server, opens the streams, sends SIGTERM and measures) several times and
prints the medians and the spread.

    cargo build --release --features axum --example sse_server --example sse_load
    python3 benches/capacity.py [--runs 3] [--streams 10000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / "target" / "release" / "examples"
FIGURES = [
    ("server_rss_idle_kib", "server RSS, no stream", "KiB"),
    ("server_rss_loaded_kib", "server RSS, all streams open", "KiB"),
    ("bytes_per_stream", "memory per stream", "B"),
    ("open_all_seconds", "time to open every stream", "s"),
    ("last_task_end_to_exit_ms", "last task's end -> server exit", "ms"),
]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--streams", type=int, default=10_000)
    args = parser.parse_args()
    runs = []
    for _ in range(args.runs):
        output = subprocess.run(
            [str(RELEASE / "sse_load"), "--server", str(RELEASE / "sse_server"), "--streams", str(args.streams), "--tasks", "100"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if output.returncode != 0:
            print(output.stderr)
            return 1
        runs.append(json.loads(output.stdout.strip().splitlines()[-1]))
    print(f"capacity: {args.streams:,} concurrent SSE streams over loopback, {args.runs} runs\n")
    print("| figure | median | min | max |")
    print("|---|---|---|---|")
    for key, name, unit in FIGURES:
        values = sorted(run[key] for run in runs)
        print(f"| {name} | {statistics.median(values):g} {unit} | {values[0]:g} {unit} | {values[-1]:g} {unit} |")
    cut = [run["streams_cut"] for run in runs]
    codes = [run["server_exit_code"] for run in runs]
    print(f"\nstreams cut per run: {cut}; server exit codes: {codes}")
    return 0 if all(c == 0 for c in cut) and all(c == 0 for c in codes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
