"""The example servers' test-only hung-hook switch: off by default, refused
outside loopback (production configuration) and on a bad value, by name.
(The rolling harness's hung-hook scenario shows what it does when on.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

import hosts

SWITCH = "SSE_TEST_HANG_SHUTDOWN_HOOK"


@pytest.mark.parametrize("host", hosts.NAMES)
@pytest.mark.parametrize("address, value", [("0.0.0.0", "1"), ("127.0.0.1", "yes")])
def test_the_switch_is_refused_by_name(host, address, value):
    command, cwd = hosts.command(
        host, profile="release" if os.environ.get("GS_ROLLING_PROFILE") == "release" else "debug"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GS_")}
    env.update({"HOST": address, "PORT": "0", SWITCH: value})
    finished = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert finished.returncode == 2, finished.stdout + finished.stderr
    assert SWITCH in finished.stderr
