"""The report page of make test's short rolling runs (tools/rolling_report.py),
written from the runs' own reports and opened in headless Chromium: it
renders without a console error and fetches nothing; every chart has its
axes and a series with data the browser drew; the marks say what the run
recorded (each old pod's SIGTERM, phases and exit; the baselines' cut
streams; the reconnect hints where streams were told to reconnect). A
screenshot of each page goes to target/rolling-short/ for a person to look
at."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import headless_page  # noqa: E402
import rolling  # noqa: E402
import rolling_report  # noqa: E402
import stream_log  # noqa: E402

PAGES = ROOT / "target" / "rolling-short"


def _check_page(reports: list[dict], name: str) -> Path:
    what = {r["scenario"]: rolling.SHORT_SCENARIOS[r["scenario"]].what for r in reports}
    page = rolling_report.write(reports, PAGES / f"{name}.html", rolling.failures, what)
    html = page.read_text()
    # Self-contained: no script, no stylesheet or image, nothing that names
    # an address to load (the text may quote the pods' addresses).
    assert "<script" not in html and "<link" not in html and "<img" not in html
    assert re.findall(r"(?:src|href)\s*=\s*[\"']?(?!#)[^\s\"'>]+|url\(", html) == []
    assert headless_page.available(), "headless Chromium is missing (make setup, make python)"
    browser = headless_page.Page(page)
    try:
        assert browser.console_errors() == []
        assert browser.fetched() == []
        charts = browser.charts()
        assert [problem for chart in charts for problem in chart.problems()] == []
        for report in reports:
            _check_runs_charts(report, [c for c in charts if c.title.startswith(f"{report['host']},")])
        browser.screenshot(page.with_suffix(".png"))
    finally:
        browser.close()
    assert page.with_suffix(".png").stat().st_size > 10_000
    return page


def _check_runs_charts(report: dict, charts: list[headless_page.Chart]) -> None:
    """One run's charts hold what the run recorded."""
    runtime = report["runtime"] == "last-call"
    timeline = report["timeline"]
    label = "with last-call" if runtime else "baseline"
    streams = [c for c in charts if c.kind == "open-streams" and label in c.title]
    assert len(streams) == 1, [c.title for c in charts]
    chart = streams[0]
    pods = {series["name"] for series in chart.series if series["points"] > 0}
    assert {p["name"] for p in timeline["pods"] if any(c[0] == p["name"] for c in timeline["connections"])} <= pods
    old = [p for p in timeline["pods"] if p["sigterm"] is not None]
    assert len(chart.lanes) == len(old) == len(report["exit_codes"]) > 0, chart.lanes
    for lane in chart.lanes:
        marks = " ".join(lane["marks"])
        assert "phase SIGTERM" in marks and "phase exit" in marks, lane
        if runtime:
            # The runtime's stamp of the signal; Stopping as a sample saw
            # it, or the unseen stretch before the exit said to be so.
            assert "phase Draining" in marks, lane
            assert "phase Stopping" in marks or "segment unseen" in lane["segments"], lane
    cut = [c for c in timeline["connections"] if c[5] == stream_log.CUT]
    marked = [s for s in chart.series if s["name"] == "cut streams"]
    assert len(cut) <= report["cut"]
    if cut:
        assert marked and marked[0]["points"] > 0, chart.series
    else:
        assert not marked
    told = [c for c in timeline["connections"] if c[6] is not None]
    spread = [c for c in charts if c.kind == "reconnects"]
    if runtime and told:
        assert len(spread) == 1 and any(s["points"] > 0 for s in spread[0].series), spread
    else:
        assert not spread or not runtime


@pytest.fixture
def check_report_page() -> Callable[[list[dict], str], Path]:
    """check_report_page(reports, name): the page of these runs, written to
    target/rolling-short/NAME.html, checked in headless Chromium, with its
    screenshot beside it (NAME.png)."""
    return _check_page
