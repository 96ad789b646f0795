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
@pytest.mark.timeout(240)  # 2,000 streams on two cores
@pytest.mark.parametrize("scenario", rolling.SHORT)
@pytest.mark.parametrize("host", hosts.NAMES)
def test_with_the_runtime_a_rolling_update_cuts_nothing(host, scenario):
    graceful = rolling.run(host, rolling.SCENARIOS[scenario], 1, False, rolling.short_spec(kubelet.load()), PROFILE)
    print(rolling.table([graceful]))
    assert graceful["completed"] + graceful["told_to_reconnect"] > 0, graceful
    assert rolling.failures(graceful) == [], graceful
    assert graceful["exit_codes"] == [0, 0]


@needs_root
@pytest.mark.timeout(240)
@pytest.mark.parametrize("scenario", rolling.SHORT)
@pytest.mark.parametrize("host", hosts.NAMES)
def test_the_baseline_runs_to_sigkill(host, scenario):
    baseline = rolling.run(host, rolling.SCENARIOS[scenario], 1, True, rolling.short_spec(kubelet.load()), PROFILE)
    print(rolling.table([baseline]))
    # Without the runtime, PID 1 ignores SIGTERM: each old pod runs to the
    # grace period's SIGKILL, and the streams it still held are cut.
    assert baseline["sigkills"] == 2, baseline
    assert rolling.failures(baseline) == [], baseline
