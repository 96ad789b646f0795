"""`make demo` (tools/demo_timeline.py) as a reader gets it: the printed
timeline, and its picture, an SVG that is valid XML with one mark per
printed line, each titled with that line and its time from the signal."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SVG = "{http://www.w3.org/2000/svg}"
#: A timeline line: "    +0.53 s  text", or "     1.23 s (before the signal)  text".
STAMPED = re.compile(r"^ +(?:(?P<signed>[+-]\d+\.\d\d) s|\d+\.\d\d s \(before the signal\))  (?P<text>.+)$")


@pytest.mark.timeout(180)
def test_the_demo_draws_one_mark_per_line_of_its_timeline(tmp_path):
    picture = tmp_path / "timeline.svg"
    finished = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "demo_timeline.py"), "--host", "flask", "--svg", str(picture)],
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert f"the timeline as a picture: {picture.resolve()}" in finished.stdout
    printed = [found for line in finished.stdout.splitlines() if (found := STAMPED.match(line))]
    assert len(printed) >= 20, finished.stdout  # two scenes: task, stream events, probes, signal, exit

    root = ElementTree.fromstring(picture.read_text())  # valid XML, or this raises
    assert root.tag == f"{SVG}svg"
    marks = [
        mark.find(f"{SVG}title").text or ""
        for mark in root.iter(f"{SVG}g")
        if "mark" in (mark.get("class") or "").split()
    ]
    # Each mark's title: "+0.53 s  the printed text".
    titled = [re.match(r"^([+-]\d+\.\d\d) s  (.+)$", title) for title in marks]
    assert all(titled), marks
    assert Counter(m.group(2) for m in titled) == Counter(p.group("text") for p in printed), (marks, finished.stdout)
    # After the signal the printed time is the picture's time too.
    after = Counter((p.group("signed"), p.group("text")) for p in printed if p.group("signed"))
    assert after and after <= Counter((m.group(1), m.group(2)) for m in titled), (after, marks)
    # Both scenes, each a chart with its time axis and the stream's events.
    charts = [svg for svg in root.iter(f"{SVG}svg") if svg.get("class") == "chart"]
    assert len(charts) == 2
    for chart in charts:
        series = [s for s in chart.iter(f"{SVG}path") if s.get("class") == "series"]
        assert series and int(series[0].get("data-points")) > 0
        axes = [g.get("class") for g in chart.iter(f"{SVG}g") if "axis" in (g.get("class") or "")]
        assert "axis x-axis" in axes and "axis y-axis" in axes
