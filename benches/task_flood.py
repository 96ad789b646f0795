"""A flood of task POSTs against each example server: the peak RSS and how
many were accepted (202) or refused by the cap (503 + Retry-After).

    python benches/task_flood.py [--posts 20000] [--profile release]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import hosts  # noqa: E402
from server_process import ServerProcess  # noqa: E402


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def flood(host: str, posts: int, profile: str) -> None:
    command, cwd = hosts.command(host, profile)
    server = ServerProcess(command, {}, cwd=cwd)
    try:
        before = rss_kib(server.process.pid)
        peak = before
        codes: dict[int, int] = {}
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for index in range(posts):
                code = client.post("/api/tasks", json={"steps": 1, "step_seconds": 0}).status_code
                codes[code] = codes.get(code, 0) + 1
                if index % 500 == 0:
                    peak = max(peak, rss_kib(server.process.pid))
        peak = max(peak, rss_kib(server.process.pid))
        print(f"{host}: {posts} POSTs: {codes}; RSS {before / 1024:.1f} MiB -> peak {peak / 1024:.1f} MiB")
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=20_000)
    parser.add_argument("--profile", default="release")
    parser.add_argument("--host", choices=hosts.NAMES, action="append")
    args = parser.parse_args()
    for host in args.host or hosts.NAMES:
        flood(host, args.posts, args.profile)


if __name__ == "__main__":
    main()
