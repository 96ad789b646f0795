"""The demonstration's timeline as a picture (``demo_timeline.py``): per
scene, the events the stream received, counted over time, and one mark per
line of the printed timeline on its lane (the stream, the probes, the
process: the task start, SIGTERM, the refused task, the exit), each with
the printed line as its title, on the same axis: seconds from SIGTERM.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from svg_chart import Chart, Lane

LANES = ("stream", "probes", "process")
COLOURS = {"stream": "#0072B2", "probes": "#009E73", "process": "#000000"}
#: A mark that stands for something going wrong is drawn in red.
ALARM = "#D00000"


@dataclass
class Line:
    """One printed line of the timeline."""

    at: float  # seconds from SIGTERM (negative before it)
    lane: str  # one of LANES
    text: str  # as printed, without its time stamp
    short: str = ""  # the mark's label on the picture ("" for none)
    alarm: bool = False


@dataclass
class Scene:
    title: str
    lines: list[Line] = field(default_factory=list)


def _events_received(scene: Scene) -> list[tuple[float, float]]:
    """The stream's events counted as they arrived (a step series)."""
    points, count = [], 0
    for line in sorted((line for line in scene.lines if line.lane == "stream"), key=lambda line: line.at):
        if line.text.startswith("stream:"):
            count += 1
            points.append((line.at, float(count)))
    return points


def scene_chart(scene: Scene, width: int = 900) -> Chart:
    low = min(line.at for line in scene.lines)
    high = max(line.at for line in scene.lines)
    pad = (high - low) * 0.04 + 0.1
    received = _events_received(scene)
    chart = Chart(
        "demo-timeline",
        scene.title,
        "seconds from SIGTERM",
        "events received",
        (low - pad, high + pad),
        (0, max([v for _, v in received] + [1]) * 1.1),
        width=width,
        height=120,
    )
    if received:
        chart.step("events received on the stream", [*received, (high + pad, received[-1][1])], COLOURS["stream"])
    chart.vline(0.0, "#000", "SIGTERM", dash="3 2")
    chart.key("SIGTERM", "#000", "dash")
    for name in LANES:
        lane = Lane(name)
        for line in scene.lines:
            if line.lane == name:
                colour = ALARM if line.alarm else COLOURS[name]
                lane.marks.append((line.at, line.short, colour, f"{line.at:+.2f} s  {line.text}", "mark event"))
        chart.lanes.append(lane)
    return chart


def timeline_svg(scenes: list[Scene], width: int = 900) -> str:
    """One SVG document, the scenes one above the other."""
    parts, top = [], 0
    for scene in scenes:
        chart = scene_chart(scene, width)
        text = chart.render()
        parts.append(f'<g transform="translate(0,{top})">{text}</g>')
        top += chart.height
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{top}" viewBox="0 0 {width} {top}">\n'
        + "\n".join(parts)
        + "\n</svg>\n"
    )
