"""Work the shutdown waits for beside the streams (``manager.work()``):
counted apart from the streams, on both managers, and waited for by the
real sequence in a child process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from last_call import GracefulShutdownManager, NoActiveStreamError, NoopGracefulShutdownManager, Phase


@pytest.fixture(params=["native", "noop"])
def manager(request):
    manager = GracefulShutdownManager() if request.param == "native" else NoopGracefulShutdownManager()
    assert manager.active_work == 0
    yield manager
    assert manager.active_work == 0, "a test leaked work"


def test_work_is_counted_apart_from_streams(manager):
    with manager.work():
        manager.increment_active_streams()
        assert (manager.active_work, manager.active_streams) == (1, 1)
        manager.decrement_active_streams()
        assert (manager.active_work, manager.active_streams) == (1, 0)
    assert manager.active_work == 0
    assert "gs_active_work 0" in manager.metrics()


def test_work_that_raises_is_still_ended(manager):
    with pytest.raises(RuntimeError), manager.work():
        assert manager.active_work == 1
        raise RuntimeError("the task failed")
    assert manager.active_work == 0


def test_an_end_without_a_begin_is_refused_and_never_wraps(manager):
    with pytest.raises(NoActiveStreamError):
        manager.end_work()
    assert manager.active_work == 0


def test_the_simulated_sequence_waits_for_work():
    manager = NoopGracefulShutdownManager()
    manager.begin_work()
    manager.begin_shutdown()
    assert manager.phase == Phase.DRAINING
    manager.end_work()
    assert manager.phase == Phase.STOPPED


CHILD = textwrap.dedent(
    """
    import threading, time
    from last_call import GracefulShutdownManager, Phase
    manager = GracefulShutdownManager()
    manager.install_signal_handlers(drain_delay_seconds=0, shutdown_timeout_seconds=20, close_notice_seconds=5)
    with manager.work():
        manager.begin_shutdown()
        # No stream is open: without the work the pod would stop at once.
        assert not manager.wait_for_phase(Phase.STOPPING, 0.5), manager.phase
        print("held", manager.phase.label, flush=True)
    assert manager.wait_for_phase(Phase.STOPPED, 10)
    print("stopped", flush=True)
    """
)


def test_the_real_sequence_waits_for_work_with_no_stream_open():
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["held", "draining", "stopped"]
