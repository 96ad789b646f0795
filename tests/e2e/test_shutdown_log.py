"""The shutdown log on every example server (Flask on Waitress, Flask in
hub mode, Flask under gunicorn, Starlette on uvicorn, the Rust server),
each with its default logging: a resumable event feed and a pod-bound
task stream open, a real SIGTERM, and the runtime's lines on the
server's stderr saying what became of each."""

from __future__ import annotations

import re
import signal
import threading

import httpx
from contract_client import follow_stream, start_task
from server_process import eventually

LINE = re.compile(r"^last-call: shutdown \(pid (\d+)\) (.*)$")
SHUTDOWN = {
    "GS_DRAIN_DELAY_SECONDS": "0.5",
    "GS_SHUTDOWN_TIMEOUT_SECONDS": "5",
    "GS_CLOSE_NOTICE_SECONDS": "2",
    "GS_HOOK_BUDGET_SECONDS": "1",
    "SSE_HEARTBEAT_SECONDS": "0.2",
}


def _follow_in_background(url: str, path: str):
    box: dict = {}

    def run():
        # In hub mode the feed answers a redirect to the hub's channel.
        with httpx.Client(base_url=url, timeout=30, follow_redirects=True) as client:
            box["result"] = follow_stream(client, path)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def test_the_shutdown_log_says_what_became_of_a_feed_and_a_task_stream(start_server):
    server = start_server(SHUTDOWN)
    task = start_task(server.client, steps=100, step_seconds=0.5).json()
    streams = [
        _follow_in_background(server.url, "/api/events"),
        _follow_in_background(server.url, task["stream_url"]),
    ]
    eventually(
        lambda: server.client.get("/metrics", headers={"Accept": "application/json"}).json()["active_streams"] == 2,
        timeout=20,
    )
    server.signal(signal.SIGTERM)
    for thread, _ in streams:
        thread.join(30)
    assert server.wait_exit(30) == 0, "\n".join(server.lines)
    feed, task_stream = (box["result"] for _, box in streams)
    assert feed.reconnect is not None, feed.events
    assert task_stream.task_events[-1]["event_type"] == "task_failed", task_stream.events

    by_pid: dict[int, list[str]] = {}
    for line in server.lines:
        found = LINE.match(line)
        if found:
            by_pid.setdefault(int(found.group(1)), []).append(found.group(2))
    # The process that held the two streams (under gunicorn, its worker;
    # the master writes its own run beside it).
    runs = [lines for lines in by_pid.values() if "2 streams open at the start" in lines[-1]]
    assert len(runs) == 1, server.lines
    assert len(runs[0]) == 4, server.lines  # began, closing, stopping, done
    began, closing, stopping, done = runs[0]
    # (The Flask example counts its running task as work beside the stream.)
    assert re.match(r"began on (SIGTERM|begin_shutdown): 2 streams (and 1 piece of work )?open", began), began
    assert "drain delay 0.5 s, deadline in 5.0 s (streams asked to close from 2.0 s, hooks from 4.0 s)" in began
    assert re.match(r"closing streams at [\d.]+ s: 2 streams still open; ", closing), closing
    assert re.match(r"stopping at [\d.]+ s: 0 streams open; ", stopping), stopping
    counts = re.search(
        r"(\d+) ended on their own, (\d+) nudged to reconnect, (\d+) given their final event, "
        r"(\d+) left open when the deadline came; hooks: .+",
        done,
    )
    assert counts, done
    own, nudged, final, left = (int(n) for n in counts.groups())
    # The feed was nudged. The task's stream ended with its task_failed:
    # given as its final event at its moment, unless the task's own
    # cancellation (at the same moment) ended it a moment before.
    assert (nudged, left, own + final) == (1, 0, 1), done
