"""make test's short rolling run (tools/rolling.py --short): one round of
the sunny and saturated scenarios per host, run by the kubelet stand-in
from the manifest on a shorter clock (rolling.short_spec, reported as
overrides), each beside its baseline. `make rolling` runs
every scenario, three rounds."""

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
def test_a_rolling_update_cuts_nothing_and_the_baseline_shows_the_damage(scenario):
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
