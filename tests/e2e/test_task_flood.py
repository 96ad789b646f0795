"""A flood of 5,000 task POSTs against each example server (25 times its
cap): memory stays bounded, the task cap answers 503 + Retry-After, and no
accepted task is lost. The bound is generous; `make bench` floods with
20,000 (benches/task_flood.py, the figures in BENCHMARKS.md: a few MiB)."""

from __future__ import annotations

from pathlib import Path

import httpx

POSTS = 5_000
CAP = 200
#: Growth of the server's RSS over the flood, at most.
RSS_GROWTH_BOUND_KIB = 64 * 1024


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_flood_of_posts_keeps_memory_bounded_and_the_cap_refuses(start_server):
    server = start_server({"MAX_TASKS": str(CAP), "TASK_KEEP_SECONDS": "600"})
    pid = server.process.pid
    before = peak = rss_kib(pid)
    codes: dict[int, int] = {}
    retry_after = set()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for index in range(POSTS):
            response = client.post("/api/tasks", json={"steps": 1, "step_seconds": 0})
            codes[response.status_code] = codes.get(response.status_code, 0) + 1
            if response.status_code == 503:
                retry_after.add(response.headers.get("retry-after"))
            if index % 1000 == 0:
                peak = max(peak, rss_kib(pid))
    peak = max(peak, rss_kib(pid))
    assert set(codes) <= {202, 503}, codes
    assert codes.get(202, 0) <= CAP, codes
    assert codes.get(503, 0) >= POSTS - CAP, codes
    assert None not in retry_after and retry_after, retry_after
    assert peak - before < RSS_GROWTH_BOUND_KIB, f"RSS grew {(peak - before) / 1024:.1f} MiB"
