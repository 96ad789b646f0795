"""One round of the rolling-update harness (tools/rolling.py) per host, as
`make test` runs it; `make rolling` runs three."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

import hosts  # noqa: E402
import rolling  # noqa: E402


def _graceful(host: str) -> None:
    graceful = rolling.run(host, rounds=1, profile="debug")
    assert graceful["streams_completed"] > 0
    assert graceful["streams_cut"] == 0, graceful
    assert graceful["http_errors"] == 0, graceful["error_samples"]
    assert graceful["exit_codes"] == [0, 0], graceful["old_backends"]


@pytest.mark.parametrize("host", [name for name in hosts.NAMES if name not in hosts.BASELINE_CUTS_SHORT_STREAMS])
def test_a_rolling_update_cuts_no_stream(host):
    _graceful(host)


@pytest.mark.parametrize("host", hosts.BASELINE_CUTS_SHORT_STREAMS)
def test_a_rolling_update_cuts_no_stream_and_the_baseline_does(host):
    _graceful(host)

    baseline = rolling.run(host, rounds=1, baseline=True, profile="debug")
    assert baseline["streams_cut"] > 0, "the baseline must show the cuts the runtime prevents"
    assert all(code != 0 for code in baseline["exit_codes"]), baseline["old_backends"]
