"""What the report page draws, from made-up records (tools/rolling_report.py,
tools/rolling_timeline.py): open streams counted from the connections, the
reconnect hints from their own pod's SIGTERM, the windows by the runtime's
formula, every cut marked. A page that drew what was not recorded would
lie in a picture; these hold each figure to its records."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

import kubelet
import rolling
import rolling_report
import rolling_timeline
import stream_log as log


def _timeline(connections: list[list], pods: list[dict] | None = None, end: float = 10.0) -> dict:
    return {
        "start": -2.0,
        "end": end,
        "clients_stopped": end - 1,
        "pods": pods
        or [
            _pod("slot1", sigterm=0.0, exit_at=5.0),
            _pod("slot2", sigterm=None, exit_at=None),
        ],
        "connections": connections,
        "windows": {"close notice": [3.5, 4.625]},
    }


def _pod(name: str, sigterm: float | None, exit_at: float | None, status: object = 0) -> dict:
    return {
        "name": name,
        "slot": name,
        "created": -3.0,
        "ready": -2.5,
        "sigterm": sigterm,
        "exit": exit_at,
        "exit_status": status if sigterm is not None else None,
        "sigkill_at": 8.0 if sigterm is not None else None,
        "phases": [],
        "phase_samples": [],
        "active_streams_sampled": [],
    }


def test_open_streams_count_every_connection_from_open_to_close():
    timeline = _timeline(
        [
            ["slot1", "feed", 1, -1.0, 4.0, log.HINT, 3.9],
            ["slot1", "feed", 2, -0.5, None, log.END_OF_RUN, None],  # still open: to the end
            ["slot1", "task", 3, 1.0, 1.0, log.REFUSED, None],  # a 503: never a stream
            ["slot2", "feed", 1, 5.0, 9.0, log.END_OF_RUN, None],
        ]
    )
    series = rolling_report.open_streams(timeline)
    assert series["slot1"] == [(-1.0, 1), (-0.5, 2), (4.0, 1), (10.0, 1)]
    assert series["slot2"] == [(5.0, 1), (9.0, 0), (10.0, 0)]


def test_hints_are_timed_from_their_own_pods_sigterm_with_the_clients_next_connection():
    pods = [_pod("slot1", 0.0, 5.0), _pod("slot2", 2.0, 7.0), _pod("slot3", None, None)]
    timeline = _timeline(
        [
            ["slot1", "feed", 1, -1.0, 4.0, log.HINT, 3.75],
            ["slot3", "feed", 1, 5.0, None, log.END_OF_RUN, None],  # its reconnection
            ["slot2", "feed", 2, -1.0, 6.5, log.HINT, 6.25],
            ["slot1", "task", 3, 0.5, 2.0, log.FINAL, None],
        ],
        pods,
    )
    found = sorted(rolling_report.hints(timeline), key=lambda h: h["pod"])
    assert found == [
        {"pod": "slot1", "kind": "feed", "at": 3.75, "reopened": 5.0},
        {"pod": "slot2", "kind": "feed", "at": 4.25, "reopened": None},
    ]
    assert rolling_report.histogram([h["at"] for h in found], 5.0)[37] == 1


def test_the_windows_are_the_runtimes_timeline_on_the_manifests_and_the_short_clock():
    """docs/how-it-works.md and the manifest: ClosingStreams at 17 s, the
    streams' last moment at 21 s; the hub hands off from the drain delay's
    end for as long as the close notice. make test's clock: 3.5 to
    4.625 s, and 1 to 2.5 s (tools/rolling.py's SHORT_ENV)."""
    spec = kubelet.load()
    assert rolling_timeline.windows(spec.env, hub=True) == {
        "close notice": [17.0, 21.0],
        "hand-off at drain": [5.0, 10.0],
    }
    short = rolling.short_spec(spec)
    assert rolling_timeline.windows(short.env, hub=False) == {"close notice": [3.5, 4.625]}
    assert rolling_timeline.windows(short.env, hub=True)["hand-off at drain"] == [1.0, 2.5]
    assert rolling_timeline.windows({"GS_SHUTDOWN_TIMEOUT_SECONDS": "6"}, hub=False) == {}


def test_every_cut_is_marked_on_its_pod_and_the_lanes_say_how_each_old_pod_ended():
    pods = [_pod("slot1", 0.0, 8.0, "SIGKILL (grace period)"), _pod("slot2", None, None)]
    connections = [["slot1", "feed", n, -1.0, 8.0 + n * 0.03, log.CUT, None] for n in range(5)]
    connections += [["slot1", "feed", 9, -1.0, 9.5, log.CUT, None], ["slot2", "feed", 10, 1.0, None, None, None]]
    report = {"host": "rust", "runtime": "baseline", "timeline": _timeline(connections, pods)}
    svg = rolling_report.streams_chart(report, (-2.0, 10.0), 10.0)
    crosses = re.findall(r"<title>(\d+) streams? cut on slot1", svg)
    assert sorted(int(n) for n in crosses) == [1, 5]  # a burst of 5, then 1 more second later
    assert 'data-series="cut streams" data-points="2"' in svg
    assert "SIGKILL (grace period)" in svg and "phase SIGTERM" in svg and "phase exit" in svg
