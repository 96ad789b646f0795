"""make test's short rolling run (tools/rolling.py --short): one round of
the sunny and saturated scenarios per host, run by the kubelet stand-in
from the manifest on a shorter clock (rolling.short_spec, reported as
overrides), each beside its baseline. `make rolling` runs
every scenario, ROLLING_ROUNDS rounds (default 1). Each test then draws its runs' report page
and checks it in headless Chromium (conftest.py), with a screenshot in
target/rolling-short/."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

import hosts
import kubelet
import rolling

PROFILE = os.environ.get("GS_ROLLING_PROFILE", "debug")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root (unshare --pid, cgroups)")


@needs_root
@pytest.mark.timeout(300)  # thousands of streams on two cores
@pytest.mark.parametrize("scenario", rolling.SHORT)
def test_a_rolling_update_cuts_nothing_and_the_baseline_shows_the_damage(scenario, check_report_page):
    spec = rolling.short_spec(kubelet.load())
    reports = rolling.run_scenario(
        rolling.SHORT_SCENARIOS[scenario],
        list(hosts.NAMES),
        1,
        spec,
        PROFILE,
        client_budget=rolling.SHORT_CLIENT_BUDGET,
    )
    print(rolling.table(reports))
    graceful = [r for r in reports if r["runtime"] == "last-call"]
    baselines = [r for r in reports if r["runtime"] == "baseline"]
    assert [r["host"] for r in graceful] == list(hosts.NAMES)
    for report in graceful:
        assert report["completed"] + report["told_to_reconnect"] > 0, report
        assert rolling.failures(report) == [], report
        assert report["exit_codes"] == [0, 0], report
    if scenario == "saturated":
        # Without the runtime, endless resumable streams are never told to
        # go: they are cut at the exit, or the pod runs to the grace
        # period's SIGKILL (a PID 1 with no SIGTERM handler ignores SIGTERM).
        for report in baselines:
            assert rolling.shows_damage(report), report
    check_report_page(reports, scenario)


@needs_root
@pytest.mark.timeout(120)
def test_hub_streams_are_handed_off_through_the_load_balancer_and_resumed_from_the_store_exactly_once(
    check_report_page,
):
    """The handoff scenario on make test's clock (about 15 s): the hub host
    with a redis-server of its own and its stream URLs through HAProxy;
    every subscriber of a task running on a draining pod is nudged,
    reconnects to another pod and gets every event once, with the ending
    the store closed the channel with. No baseline: without the runtime
    there is no hand-off."""
    spec = rolling.short_spec(kubelet.load())
    scenario = rolling.SHORT_SCENARIOS[rolling.SHORT_HANDOFF]
    reports = rolling.run_scenario(scenario, list(hosts.NAMES), 1, spec, PROFILE)
    print(rolling.table(reports))
    assert [(r["host"], r["runtime"]) for r in reports] == [(h, "last-call") for h in hosts.HUB_HOSTS]
    for report in reports:
        assert rolling.failures(report) == [], report
        totals = report["handoff"]["totals"]
        assert totals["subscribers"] == 200, totals
        assert totals["exactly_once"] == totals["with_true_ending"] == 200, totals
        assert totals["gaps"] == 0 and totals["handed_off"] > 0, totals
        assert report["exit_codes"] == [0, 0], report
    check_report_page(reports, rolling.SHORT_HANDOFF)
