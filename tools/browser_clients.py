"""Real browsers among the rolling harness's clients: headless Chromium
(Debian's ``chromium`` and ``chromium-driver``) driven by selenium, each
showing ``browser_page.html``, which HAProxy serves on the load balancer's
own origin. The page runs EventSources through the load balancer: resumable
ones on ``GET /api/events`` (the browser reconnects by itself after
``retry:``, with ``Last-Event-ID``) and pod-bound task streams (closed by the
page at their final event). Everything the page sees is read back.

A browser opens at most 6 HTTP/1.1 connections to one host, so a page holds
at most 5 streams (2 feeds, 3 tasks) and keeps one connection for the task
starts; more streams means more pages (browsers).
"""

from __future__ import annotations

import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

PAGE = Path(__file__).resolve().parent / "browser_page.html"
PAGE_PATH = "/_browser_clients"
#: Consecutive error events on one EventSource with nothing in between:
#: the browser is retrying a stream that will not come back.
RETRY_LOOP_ERRORS = 3


def available() -> bool:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return False
    return shutil.which("chromedriver") is not None and shutil.which("chromium") is not None


@dataclass
class BrowserReport:
    pages: int = 0
    error_events: int = 0
    retry_loops: int = 0
    feed_reopened: int = 0
    feed_continued: int = 0  # reopened and received events again
    task_finals: Counter = field(default_factory=Counter)
    task_error_before_final: int = 0
    #: Task streams that ended with the task's final event and saw it once,
    #: after task_started once and every step once, in order (across
    #: reconnects: on the hub host a stream is handed off to another pod).
    task_exactly_once: int = 0
    task_reconnected: int = 0  # task streams told to reconnect (hand-off)
    task_gaps: int = 0  # `gap` events on task streams (events may be missing)
    samples: list[str] = field(default_factory=list)


class Browsers:
    """`pages` headless Chromium pages on the load balancer at `url`."""

    def __init__(self, url: str, pages: int, feeds: int = 2, tasks: int = 3, steps: int = 6, step_seconds: float = 0.5):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.drivers = []
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or "chromium"
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-proxy-server"):
            options.add_argument(flag)
        try:
            for _ in range(pages):
                driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
                self.drivers.append(driver)
                driver.get(f"{url}{PAGE_PATH}?feeds={feeds}&tasks={tasks}&steps={steps}&step_seconds={step_seconds}")
        except Exception:
            self.close()
            raise

    def stop(self) -> BrowserReport:
        """Reads what every page saw, then closes the browsers."""
        report = BrowserReport(pages=len(self.drivers))
        try:
            for page, driver in enumerate(self.drivers):
                seen = driver.execute_script("window.stopAll(); return window.seen;")
                summarise(seen, report, f"page{page}")
        finally:
            self.close()
        return report

    def close(self) -> None:
        for driver in self.drivers:
            try:
                driver.quit()
            except Exception:  # noqa: BLE001 - a browser already gone
                pass
        self.drivers = []


def _exactly_once(events: list[dict]) -> bool:
    """A task's events as one stream saw them: task_started once, steps 1,
    2, ... each once, the final event once and last."""
    kinds = [e["type"] for e in events]
    steps = [e.get("step") for e in events if e["type"] == "progress_update"]
    finals = [k for k in kinds if k in ("task_completed", "task_failed")]
    return (
        kinds[:1] == ["task_started"]
        and kinds.count("task_started") == 1
        and steps == list(range(1, len(steps) + 1))
        and len(finals) == 1
        and kinds[-1] == finals[0]
    )


def summarise(seen: list[dict], report: BrowserReport, page: str) -> None:
    by_name: dict[str, list[dict]] = defaultdict(list)
    by_task: dict[str, list[dict]] = defaultdict(list)
    for record in seen:
        by_name[record["name"]].append(record)
        if record["kind"] == "task" and record["what"] == "event" and record.get("task"):
            by_task[record["task"]].append(record)
    for task, events in by_task.items():
        if any(e["type"] in ("task_completed", "task_failed") for e in events):
            if _exactly_once(events):
                report.task_exactly_once += 1
            elif len(report.samples) < 5:
                report.samples.append(f"{page}/{task[:8]}: {[(e['type'], e.get('step')) for e in events]}")
    for name, records in by_name.items():
        errors_in_a_row = 0
        opened = 0
        reopened_at = None
        waiting_final = False
        told = False  # a reconnect hint: the error that follows is the reconnection
        for record in records:
            what = record["what"]
            if what == "gap":
                report.task_gaps += 1
                continue
            if what == "reconnect" and record["kind"] == "task":
                told = True
                if waiting_final:
                    report.task_reconnected += 1
                continue
            if what == "error" and told and record.get("state") == 0:
                told = False  # EventSource.CONNECTING: reconnecting, as told
                report.error_events += 1
                continue
            if what == "error":
                report.error_events += 1
                errors_in_a_row += 1
                if errors_in_a_row == RETRY_LOOP_ERRORS:
                    report.retry_loops += 1
                    if len(report.samples) < 5:
                        report.samples.append(f"{page}/{name}: retrying")
                if record["kind"] == "task" and waiting_final:
                    report.task_error_before_final += 1
                    waiting_final = False
                continue
            errors_in_a_row = 0
            if what == "open":
                opened += 1
                waiting_final = record["kind"] == "task"
                if record["kind"] == "feed" and opened > 1:
                    report.feed_reopened += 1
                    reopened_at = len(report.samples)
            elif what == "event" and record["kind"] == "feed" and reopened_at is not None:
                report.feed_continued += 1
                reopened_at = None
            elif what == "final":
                waiting_final = False
                label = record["type"] + (f" ({record['reason']})" if record.get("reason") else "")
                report.task_finals[label] += 1
