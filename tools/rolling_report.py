"""The rolling harness's report page: one self-contained HTML file (inline
SVG from ``svg_chart.py``, inline CSS, no script, nothing fetched), drawn
from the runs' reports (``rolling.py``; each carries the time series
``rolling_timeline.py`` recorded). Per scenario and host:

* the open streams per pod over time with the runtime, each old pod's
  termination as a lane under it (SIGTERM, Draining, ClosingStreams,
  Stopping, the exit) and the SIGKILL line of the grace period; beside
  it the same chart for the baseline, its cut streams marked;
* the reconnect hints per 100 ms, from their pod's SIGTERM, against the
  ideal (uniform over the window the runtime spreads them in);
* the outcome table.

    python tools/rolling_report.py target/rolling.json [-o target/rolling.html]
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections import defaultdict
from html import escape
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import stream_log
from svg_chart import PALETTE, Chart, Lane

BIN = 0.1
PHASE_COLOURS = {
    "Draining": "#F0E442",
    "ClosingStreams": "#E69F00",
    "Stopping": "#CC79A7",
    "Stopped": "#999999",
}
NO_RUNTIME = "#c8c8c8"
SIGKILL = "#D00000"
CUT = "#D00000"
#: The hint's window by the kind of stream it was sent on.
HUB_KINDS = ("task", "subscriber")


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _slug(*parts: str) -> str:
    return "-".join("".join(c if c.isalnum() else "-" for c in p.lower()) for p in parts)


# --- what the charts show, from a run's timeline ------------------------------


def open_streams(timeline: dict) -> dict[str, list[tuple[float, float]]]:
    """Per pod, the streams the clients held open on it: (time, count)
    at every change, and at the end of the recording (a connection never
    closed counts to the end). A refused request (a status other than 200)
    was never a stream."""
    changes: dict[str, list[tuple[float, int]]] = defaultdict(list)
    end = timeline["end"]
    for pod, _kind, _client, opened, closed, ending, _hint in timeline["connections"]:
        if ending == stream_log.REFUSED:
            continue
        changes[pod].append((opened, 1))
        if closed is not None:  # else still open when the recording ended
            changes[pod].append((closed, -1))
    series = {}
    for pod, moves in changes.items():
        count, points = 0, []
        for at, move in sorted(moves, key=lambda m: (m[0], m[1])):
            count += move
            if points and points[-1][0] == at:
                points[-1] = (at, count)
            else:
                points.append((at, count))
        if points[-1][0] < end:
            points.append((end, count))
        series[pod] = points
    return series


def cuts(timeline: dict) -> list[tuple[str, float]]:
    """(pod, when) of every connection cut: closed with neither its final
    event nor a reconnect hint."""
    return [(c[0], c[4]) for c in timeline["connections"] if c[5] == stream_log.CUT and c[4] is not None]


def _count_at(points: list[tuple[float, float]], moment: float) -> float:
    """A step series' value just before `moment`."""
    value = 0.0
    for at, count in points:
        if at >= moment:
            break
        value = count
    return value


def hints(timeline: dict) -> list[dict]:
    """Every reconnect hint, from its pod's SIGTERM, with the client's next
    connection (its reconnect), when there was one."""
    sigterm = {p["name"]: p["sigterm"] for p in timeline["pods"]}
    by_client: dict[tuple[str, int], list[list]] = defaultdict(list)
    for c in timeline["connections"]:
        by_client[(c[1], c[2])].append(c)
    found = []
    for connections in by_client.values():
        connections.sort(key=lambda c: c[3])
        for n, (pod, kind, _client, _opened, _closed, _ending, hint) in enumerate(connections):
            if hint is None or sigterm.get(pod) is None:
                continue
            after = connections[n + 1][3] if n + 1 < len(connections) else None
            found.append(
                {
                    "pod": pod,
                    "kind": kind,
                    "at": hint - sigterm[pod],
                    "reopened": None if after is None else after - sigterm[pod],
                }
            )
    return found


def histogram(moments: list[float], end: float) -> list[int]:
    counts = [0] * max(1, int(end / BIN + 0.999))
    for at in moments:
        if 0 <= at < len(counts) * BIN:
            counts[int(at / BIN)] += 1
    return counts


def window_of(kind: str, windows: dict[str, list[float]]) -> str | None:
    """The window a hint on this kind of stream is drawn in: a hub stream's
    hand-off at drain (the hub host), a resumable stream's close notice."""
    if kind in HUB_KINDS and "hand-off at drain" in windows:
        return "hand-off at drain"
    return "close notice" if "close notice" in windows else None


# --- the charts -------------------------------------------------------------


def _pod_colours(timeline: dict) -> dict[str, str]:
    return {p["name"]: PALETTE[n % len(PALETTE)] for n, p in enumerate(timeline["pods"])}


def streams_chart(report: dict, x_range: tuple[float, float], y_top: float) -> str:
    """Open streams per pod, the pods' own count dashed, the SIGKILL line,
    cut streams marked, each old pod's termination as a lane."""
    timeline = report["timeline"]
    colours = _pod_colours(timeline)
    runtime = report["runtime"] == "last-call"
    title = (
        f"{report['host']}, {'with last-call' if runtime else 'baseline (LAST_CALL_DISABLED=1)'}: open streams per pod"
    )
    chart = Chart("open-streams", title, "seconds from the first SIGTERM", "open streams", x_range, (0, y_top))
    series = open_streams(timeline)
    for pod in timeline["pods"]:
        name = pod["name"]
        role = "old" if pod["sigterm"] is not None else "new"
        if name in series:
            chart.step(name, series[name], colours[name], legend=f"{name} ({role})")
        sampled = [(t, v) for t, v in pod["active_streams_sampled"]]
        if sampled:
            chart.line(f"{name}: gs_active_streams", sampled, colours[name], dash="2 3", legend=None)
    if any(p["active_streams_sampled"] for p in timeline["pods"]):
        chart.key("the pod's own count (gs_active_streams, sampled)", "#555", "dash")
    # Cuts on one pod within 100 ms of each other are one mark, at the
    # first, on the pod's count just before it.
    groups: list[list] = []
    for pod, at in sorted(cuts(timeline), key=lambda c: (c[0], c[1])):
        if groups and groups[-1][0] == pod and at - groups[-1][2] <= BIN:
            groups[-1][2] = at
            groups[-1][3] += 1
        else:
            groups.append([pod, at, at, 1])
    if groups:
        chart.markers(
            "cut streams",
            [
                (
                    first,
                    _count_at(series.get(pod, []), first),
                    f"{n} stream{'s' * (n > 1)} cut on {pod}, {first:.2f} to {last:.2f} s",
                )
                for pod, first, last, n in groups
            ],
            CUT,
            legend=f"cut streams ({sum(g[3] for g in groups)})",
        )
    old = [p for p in timeline["pods"] if p["sigterm"] is not None]
    for pod in old:
        chart.vline(
            pod["sigkill_at"],
            SIGKILL,
            f"{pod['name']}: SIGKILL at the grace period, {pod['sigkill_at']:.1f} s",
            css="sigkill",
        )
    if old:
        chart.key("SIGKILL at the grace period", SIGKILL, "dash")
    for pod in old:
        chart.lanes.append(_lane(pod, colours[pod["name"]], runtime))
    if timeline.get("clients_stopped") is not None:
        chart.vline(
            timeline["clients_stopped"], "#777", "the run stopped its clients (every old pod had exited)", css="stop"
        )
        chart.key("the run stops its clients", "#777", "dash")
    if runtime:
        for phase, colour in PHASE_COLOURS.items():
            chart.key(phase, colour, "bar")
    elif old:
        chart.key("after SIGTERM, no runtime", NO_RUNTIME, "bar")
    return chart.render()


def _lane(pod: dict, colour: str, runtime: bool) -> Lane:
    """An old pod's termination: its phases (the runtime's) or nothing
    (the baseline), from SIGTERM to its exit or SIGKILL."""
    lane = Lane(pod["name"])
    exit_at = pod["exit"]
    if runtime and pod["phases"]:
        phases = pod["phases"]
        for n, phase in enumerate(phases):
            end = phases[n + 1]["at"] if n + 1 < len(phases) else exit_at
            source = phase["source"]
            if phase.get("after") is not None:
                source += f": between {phase['after']:.2f} and {phase['at']:.2f} s"
            lane.segments.append(
                (
                    phase["at"],
                    end,
                    PHASE_COLOURS[phase["phase"]],
                    f"{pod['name']}: {phase['phase']} from {phase['at']:.2f} s ({source})",
                    "segment",
                )
            )
            lane.marks.append(
                (
                    phase["at"],
                    "",
                    "#333",
                    f"{phase['phase']} at {phase['at']:.2f} s ({source})",
                    f"mark phase {phase['phase']}",
                )
            )
        _unseen_stopping(lane, pod)
    else:
        lane.segments.append(
            (pod["sigterm"], exit_at, NO_RUNTIME, f"{pod['name']}: no runtime, SIGTERM's default", "segment")
        )
    lane.marks.append(
        (pod["sigterm"], "SIGTERM", colour, f"{pod['name']}: SIGTERM at {pod['sigterm']:.2f} s", "mark phase SIGTERM")
    )
    status = pod["exit_status"]
    killed = not isinstance(status, int)
    lane.marks.append(
        (
            exit_at,
            str(status) if killed else f"exit {status}",
            SIGKILL if killed else "#000",
            f"{pod['name']}: {'killed, ' + str(status) if killed else f'exit status {status}'} at {exit_at:.2f} s "
            f"({exit_at - pod['sigterm']:.2f} s after SIGTERM)",
            "mark phase exit",
        )
    )
    return lane


def _unseen_stopping(lane: Lane, pod: dict) -> None:
    """Stopping shorter than a sample: the phase before it is drawn to the
    last sample that showed it, then the unseen stretch up to the next
    thing known (the Stopped stamp, or the exit)."""
    phases = pod["phases"]
    names = [phase["phase"] for phase in phases]
    before = [run for run in pod.get("phase_samples", []) if run[0] < 3]
    if "Stopping" in names or not before or not phases:
        return
    stopped = names.index("Stopped") if "Stopped" in names else None
    until = phases[stopped]["at"] if stopped is not None else pod["exit"]
    # A sample is stamped when its answer arrived, a few ms after the pod
    # read its phase: the last one may come after the Stopped stamp.
    last = min(before[-1][2], until)
    index = (stopped if stopped is not None else len(phases)) - 1
    at, _, colour, title, css = lane.segments[index]
    if not at <= last:
        return
    lane.segments[index] = (at, last, colour, title, css)
    lane.segments.insert(
        index + 1,
        (
            last,
            until,
            PHASE_COLOURS["Stopping"],
            f"{pod['name']}: Stopping{'' if stopped is not None else ', then Stopped,'} between the last sample "
            f"before it ({last:.2f} s) and {until:.2f} s: shorter than a sample, seen by none",
            "segment unseen",
        ),
    )


def reconnect_chart(report: dict) -> str | None:
    """The reconnect hints per 100 ms from their pod's SIGTERM, per window,
    against the ideal; the clients' reconnections beside them. None when
    no stream was told to reconnect."""
    timeline = report["timeline"]
    found = hints(timeline)
    if not found:
        return None
    windows = timeline["windows"]
    old = [p for p in timeline["pods"] if p["sigterm"] is not None]
    end = max([p["exit"] - p["sigterm"] for p in old] + [h["reopened"] or h["at"] for h in found]) + 0.3
    groups: dict[str, list[dict]] = defaultdict(list)
    for hint in found:
        groups[window_of(hint["kind"], windows) or "hints"].append(hint)
    counts = {name: histogram([h["at"] for h in group], end) for name, group in groups.items()}
    reopened = histogram([h["reopened"] for h in found if h["reopened"] is not None], end)
    stacked = [sum(c[n] for c in counts.values()) for n in range(len(reopened))]
    y_top = max(stacked + reopened + [1])
    ideal = {}
    for name, group in groups.items():
        if name in windows:
            a, b = windows[name]
            ideal[name] = len(group) * BIN / max(b - a, BIN)
            y_top = max(y_top, ideal[name])
    chart = Chart(
        "reconnects",
        f"{report['host']}, with last-call: reconnect hints per 100 ms ({len(found)} from {len(old)} old pods)",
        "seconds from the pod's SIGTERM",
        "per 100 ms",
        (0, end),
        (0, y_top * 1.1),
        height=180,
    )
    colours = {"close notice": "#0072B2", "hand-off at drain": "#009E73", "hints": "#56B4E9"}
    base = [0] * len(reopened)
    for name, values in counts.items():
        chart.bars(
            f"hints ({name})",
            [(n * BIN, (n + 1) * BIN, v, base[n]) for n, v in enumerate(values)],
            colours[name],
            legend=f"reconnect hints received ({name}): {len(groups[name])}",
        )
        base = [b + v for b, v in zip(base, values)]
        if name in windows:
            a, b = windows[name]
            chart.band(a, b, colours[name], f"the {name}: {a:.2f} to {b:.2f} s after SIGTERM")
            chart.line(
                f"ideal ({name})",
                [(a, ideal[name]), (b, ideal[name])],
                "#000",
                dash="5 3",
                legend=f"ideal: uniform over the {name}, {a:g}-{b:g} s ({ideal[name]:.1f} per 100 ms)",
            )
    chart.step(
        "reconnections",
        [(n * BIN, v) for n, v in enumerate(reopened)] + [(len(reopened) * BIN, reopened[-1] if reopened else 0)],
        "#D55E00",
        legend="the clients' reconnections (after retry:)",
    )
    return chart.render()


# --- the tables ---------------------------------------------------------------


def _exits(report: dict) -> str:
    pods = [p for p in report["timeline"]["pods"] if p["sigterm"] is not None]
    return "<br>".join(
        f"{_e(p['name'])}: {p['exit'] - p['sigterm']:.1f} s, "
        + (f"exit {p['exit_status']}" if isinstance(p["exit_status"], int) else f"<b>{_e(p['exit_status'])}</b>")
        for p in pods
    )


def _hint_figures(report: dict) -> str:
    found = hints(report["timeline"])
    if not found:
        return "-"
    windows = report["timeline"]["windows"]
    parts = []
    for name in sorted({window_of(h["kind"], windows) or "hints" for h in found}):
        group = [h for h in found if (window_of(h["kind"], windows) or "hints") == name]
        busiest = max(histogram([h["at"] for h in group], max(h["at"] for h in group) + BIN))
        text = f"{len(group)} ({name}), busiest 100 ms: {busiest}"
        if name in windows:
            a, b = windows[name]
            inside = sum(1 for h in group if a - BIN <= h["at"] <= b + BIN)
            text += f", ideal {len(group) * BIN / max(b - a, BIN):.1f}; {inside} within {a:g}-{b:g} s (±0.1)"
        parts.append(text)
    return "<br>".join(parts)


OUTCOME_ROWS: list[tuple[str, Callable[[dict], object]]] = [
    ("streams open before the rollout", lambda r: r["streams_before_rollout"]),
    (
        "streams completed / ended honestly / told to reconnect",
        lambda r: f"{r['completed']} / {r['ended_honestly']} / {r['told_to_reconnect']}",
    ),
    ("<b>cut</b>", lambda r: f"<b>{r['cut']}</b>"),
    ("client-visible errors", lambda r: ", ".join(f"{_e(k)}: {v}" for k, v in sorted(r["errors"].items())) or "0"),
    ("liveness restarts", lambda r: r["liveness_restarts"]),
    ("OOM kills", lambda r: r["oom_kills"]),
    ("SIGKILLs", lambda r: r["sigkills"]),
    ("old pods: SIGTERM &rarr; exit", _exits),
    ("grace period", lambda r: f"{r['grace_seconds']:g} s"),
    ("reconnect hints", _hint_figures),
]


def outcome_table(reports: list[dict]) -> str:
    head = "".join(f"<th>{_e('with last-call' if r['runtime'] == 'last-call' else 'baseline')}</th>" for r in reports)
    rows = [
        f"<tr><th>{name}</th>" + "".join(f"<td>{value(r)}</td>" for r in reports) + "</tr>"
        for name, value in OUTCOME_ROWS
    ]
    handoff = [r for r in reports if r.get("handoff")]
    for r in handoff:
        totals = r["handoff"]["totals"]
        rows.append(
            f"<tr><th>hub subscribers: every event exactly once / true ending</th><td>"
            f"{totals.get('exactly_once', 0)} / {totals.get('with_true_ending', 0)} "
            f"of {totals.get('subscribers', 0)}</td></tr>"
        )
    return f'<table class="outcome"><tr><th></th>{head}</tr>{"".join(rows)}</table>'


def marks_table(report: dict) -> str:
    """Every old pod's marks, with where each time comes from."""
    rows = []
    for pod in report["timeline"]["pods"]:
        if pod["sigterm"] is None:
            continue
        cells = [f"SIGTERM {pod['sigterm']:.2f} s (the kubelet stand-in)"]
        for phase in pod["phases"]:
            where = phase["source"] + (f", after {phase['after']:.2f} s" if phase.get("after") is not None else "")
            cells.append(f"{phase['phase']} {phase['at']:.2f} s ({_e(where)})")
        cells.append(f"exit {pod['exit']:.2f} s ({_e(pod['exit_status'])})")
        cells.append(f"SIGKILL due {pod['sigkill_at']:.2f} s")
        rows.append(f"<tr><th>{_e(pod['name'])}</th><td>{'; '.join(cells)}</td></tr>")
    return f'<table class="marks">{"".join(rows)}</table>' if rows else ""


# --- the page -------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222;max-width:1460px}
h1{font-size:22px;margin:0 0 6px} h2{font-size:18px;margin:34px 0 4px;border-bottom:1px solid #ccc}
h3{font-size:15px;margin:18px 0 6px} p,li{font-size:13px;line-height:1.45} .what{color:#555;font-size:13px;margin:0}
.pair{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start} figure{margin:0}
table{border-collapse:collapse;font-size:12px;margin:8px 0}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
table.outcome th:first-child{width:300px} .pass{color:#007a33;font-weight:600} .fail{color:#b00000;font-weight:600}
details{font-size:12px;margin:4px 0 10px} code{font-size:12px} .run{border-top:1px dashed #ddd;padding-top:4px}
nav li{font-size:13px}
"""


INTRO = """<p>Each chart is one run: the pods of a Deployment rolled the way
<code>examples/kubernetes/deployment.yaml</code> says, by the kubelet stand-in, behind HAProxy, the same clients
with the runtime (left) and without it (right, the baseline). <b>Open streams per pod</b> are the clients' own
record of every stream connection (when it opened, on the pod HAProxy named, when and how it ended): the same
measure for both runs. The dotted lines, with the runtime only, are the pods' own count,
<code>gs_active_streams</code> read from the probe listener every 100 ms (a terminating pod's every 20 ms). Under
each chart, one lane per old pod: SIGTERM, the runtime's phases and the exit, or the SIGKILL. Draining and Stopped
are the runtime's own stamps (<code>gs_shutdown_started_timestamp_seconds</code>,
<code>gs_shutdown_duration_seconds</code>); ClosingStreams and Stopping are placed at the first sample of
<code>gs_phase</code> that showed them; a Stopping shorter than a sample is drawn faint, between the samples that
bound it. The red dashed line is the SIGKILL due at the grace period. A red cross is a cut stream (closed with
neither its final event nor a reconnect hint), with how many were cut there. <b>Reconnect hints</b> are counted
where the clients received them, from the SIGTERM of the pod that sent them, per 100 ms; the ideal is the same
number spread evenly over the window the runtime draws them in (its formula in docs/how-it-works.md, from the pods'
settings). The browser pages' streams (headless Chromium, in the full run) are not in the charts.</p>"""


def verdict(reports: list[dict], failures: Callable[[dict], list[str]] | None) -> str:
    if failures is None:
        return ""
    found = [f"{r['runtime']}: {reason}" for r in reports for reason in failures(r)]
    if found:
        return '<p class="fail">NOT proven: ' + "; ".join(_e(f) for f in found) + "</p>"
    return '<p class="pass">with last-call: no stream cut, no client error, no restart, OOM kill or SIGKILL</p>'


def pair_section(scenario: str, host: str, reports: list[dict], failures: Callable[[dict], list[str]] | None) -> str:
    timelines = [r["timeline"] for r in reports]
    # From the first stream opened (the pods take a while to start) to the
    # end of the recording, the same for the runs side by side.
    first = [c[3] for t in timelines for c in t["connections"]]
    x_range = (min(first, default=min(t["start"] for t in timelines)) - 0.5, max(t["end"] for t in timelines))
    y_top = max([max((v for _, v in s), default=0) for t in timelines for s in open_streams(t).values()] + [1])
    y_top = max([y_top] + [v for t in timelines for p in t["pods"] for _, v in p["active_streams_sampled"]])
    figures = "".join(f"<figure>{streams_chart(r, x_range, y_top * 1.08)}</figure>" for r in reports)
    graceful = [r for r in reports if r["runtime"] == "last-call"]
    spread = [chart for r in graceful if (chart := reconnect_chart(r))]
    no_hints = (
        "<p class='what'>No stream was told to reconnect with last-call in this run: its streams ended by themselves "
        "or, pod-bound, with their final event.</p>"
        if graceful and not spread
        else ""
    )
    details = "".join(
        f"<details><summary>{_e(r['runtime'])}: every mark, and the overrides</summary>{marks_table(r)}"
        f"<p>{_e('; '.join(r['overrides']))}</p></details>"
        for r in reports
    )
    return (
        f'<article class="run" id="{_slug(scenario, host)}"><h3>{_e(host)}</h3>{verdict(reports, failures)}'
        f'<div class="pair">{figures}</div>'
        f'<div class="pair">{"".join(f"<figure>{c}</figure>" for c in spread)}{outcome_table(reports)}</div>'
        f"{no_hints}{details}</article>"
    )


def render(
    reports: list[dict], failures: Callable[[dict], list[str]] | None = None, what: dict[str, str] | None = None
) -> str:
    """The page. `failures`: rolling.failures (each run with the runtime
    gets a verdict); `what`: each scenario's description."""
    scenarios = list(dict.fromkeys(r["scenario"] for r in reports))
    sections = []
    for scenario in scenarios:
        runs = [r for r in reports if r["scenario"] == scenario]
        hosts = list(dict.fromkeys(r["host"] for r in runs))
        body = "".join(pair_section(scenario, h, [r for r in runs if r["host"] == h], failures) for h in hosts)
        sections.append(
            f'<section id="{_slug(scenario)}"><h2>{_e(scenario)}</h2>'
            f'<p class="what">{_e((what or {}).get(scenario, ""))}</p>{body}</section>'
        )
    nav = "".join(
        f'<li><a href="#{_slug(s)}">{_e(s)}</a>: '
        + ", ".join(
            f'<a href="#{_slug(s, h)}">{_e(h)}</a>'
            for h in dict.fromkeys(r["host"] for r in reports if r["scenario"] == s)
        )
        + "</li>"
        for s in scenarios
    )
    made = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>last-call: rolling updates, with and without</title>
<style>{CSS}</style></head><body>
<h1>Rolling updates behind HAProxy, with last-call and without</h1>
<p class="what">Written by <code>tools/rolling.py</code> ({made}); the tables are in the markdown beside this page.</p>
{INTRO}
<nav><ul>{nav}</ul></nav>
{"".join(sections)}
</body></html>
"""


def write(
    reports: list[dict],
    path: Path,
    failures: Callable[[dict], list[str]] | None = None,
    what: dict[str, str] | None = None,
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(reports, failures, what))
    return path.resolve()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reports", type=Path, help="the JSON tools/rolling.py --json wrote")
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    reports = [r for r in json.loads(args.reports.read_text()) if r.get("timeline")]
    if not reports:
        print(f"{args.reports}: no run with a timeline (written before the report page existed?)", file=sys.stderr)
        return 1
    import rolling  # here: rolling imports this module

    described = {name: scenario.what for name, scenario in rolling.SCENARIOS.items()}
    print(f"report: {write(reports, args.output or args.reports.with_suffix('.html'), rolling.failures, described)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
