"""A page of ours (the rolling report, the demo's picture) opened in
headless Chromium (Debian's ``chromium`` and ``chromium-driver``, driven by
selenium), read back as a reader sees it: the console's errors, what the
page fetched, each chart's axes and series as rendered, and a screenshot.

    python tools/headless_page.py PAGE PNG [--element ID] [--width 1500]

checks the page (no console error, nothing fetched, every chart with its
axes and a series with data) and writes the screenshot: of the whole page,
or of the element with that id (``make report-screenshot``).
"""

from __future__ import annotations

import argparse
import base64
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Each chart as the browser laid it out (``svg_chart.py``'s classes).
CHARTS_JS = """
const box = (e) => { if (!e) return null; const b = e.getBBox(); return {width: b.width, height: b.height}; };
return Array.from(document.querySelectorAll('svg.chart')).map((svg) => ({
  kind: svg.dataset.chart,
  title: svg.getAttribute('aria-label'),
  x_domain: box(svg.querySelector('.x-axis .domain')),
  y_domain: box(svg.querySelector('.y-axis .domain')),
  x_ticks: Array.from(svg.querySelectorAll('.x-axis .tick text')).map((t) => t.textContent),
  y_ticks: Array.from(svg.querySelectorAll('.y-axis .tick text')).map((t) => t.textContent),
  x_title: (svg.querySelector('.x-axis .axis-title') || {}).textContent,
  y_title: (svg.querySelector('.y-axis .axis-title') || {}).textContent,
  series: Array.from(svg.querySelectorAll('.series')).map((s) => ({
    name: s.dataset.series, points: Number(s.dataset.points), drawn: box(s),
  })),
  lanes: Array.from(svg.querySelectorAll('.lane')).map((l) => ({
    name: l.dataset.lane,
    marks: Array.from(l.querySelectorAll('.mark')).map((m) => m.getAttribute('class')),
    segments: Array.from(l.querySelectorAll('rect')).map((r) => r.getAttribute('class')),
  })),
}));
"""


@dataclass
class Chart:
    kind: str
    title: str
    x_domain: dict | None
    y_domain: dict | None
    x_ticks: list[str]
    y_ticks: list[str]
    x_title: str | None
    y_title: str | None
    series: list[dict]
    lanes: list[dict]

    def problems(self) -> list[str]:
        """What a reader would miss: an axis, its ticks or title, a series
        with data that the browser drew."""
        found = []
        for axis, domain, ticks, title in (
            ("x", self.x_domain, self.x_ticks, self.x_title),
            ("y", self.y_domain, self.y_ticks, self.y_title),
        ):
            if not domain or domain["width"] + domain["height"] <= 0:
                found.append(f"no {axis} axis drawn")
            if len(ticks) < 2:
                found.append(f"{axis} axis with {len(ticks)} ticks")
            if not title:
                found.append(f"{axis} axis without a title")
        drawn = [
            s for s in self.series if s["points"] > 0 and s["drawn"] and s["drawn"]["width"] + s["drawn"]["height"] > 0
        ]
        if not drawn:
            found.append("no series with data drawn")
        return [f"{self.title}: {problem}" for problem in found]


def available() -> bool:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return False
    return shutil.which("chromedriver") is not None and shutil.which("chromium") is not None


class Page:
    """One page in a headless Chromium of its own; close() ends it."""

    def __init__(self, path: Path, width: int = 1500, height: int = 1000) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or "chromium"
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-proxy-server"):
            options.add_argument(flag)
        options.add_argument(f"--window-size={width},{height}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
        try:
            self.driver.get(path.resolve().as_uri())
        except Exception:
            self.close()
            raise

    def console_errors(self) -> list[str]:
        return [entry["message"] for entry in self.driver.get_log("browser") if entry["level"] == "SEVERE"]

    def fetched(self) -> list[str]:
        """Everything the page loaded besides itself (nothing, for a
        self-contained page)."""
        return list(self.driver.execute_script("return performance.getEntriesByType('resource').map((e) => e.name);"))

    def charts(self) -> list[Chart]:
        return [Chart(**chart) for chart in self.driver.execute_script(CHARTS_JS)]

    def run(self, script: str) -> Any:
        return self.driver.execute_script(script)

    def screenshot(self, png: Path, element: str | None = None) -> Path:
        """The page at its full height, or one element whole (taller than
        the window as it may be), as a PNG."""
        png.parent.mkdir(parents=True, exist_ok=True)
        if element:
            box = self.driver.execute_script(
                "const b = document.getElementById(arguments[0]).getBoundingClientRect();"
                "return {x: b.left + window.scrollX, y: b.top + window.scrollY, width: b.width, height: b.height};",
                element,
            )
        else:
            size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
            box = {"x": 0, "y": 0, "width": size["width"], "height": size["height"]}
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": {**box, "scale": 1}},
        )
        png.write_bytes(base64.b64decode(shot["data"]))
        return png

    def close(self) -> None:
        self.driver.quit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("page", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--element", help="the id of the element to capture (default: the whole page)")
    parser.add_argument("--width", type=int, default=1500)
    args = parser.parse_args()
    page = Page(args.page, width=args.width)
    try:
        problems = page.console_errors() + [f"fetched {url}" for url in page.fetched()]
        charts = page.charts()
        problems += [problem for chart in charts for problem in chart.problems()]
        if not charts:
            problems.append("no chart on the page")
        if problems:
            print("\n".join(f"{args.page}: {problem}" for problem in problems), file=sys.stderr)
            return 1
        print(f"{len(charts)} charts checked; screenshot: {page.screenshot(args.png, args.element).resolve()}")
        return 0
    finally:
        page.close()


if __name__ == "__main__":
    sys.exit(main())
