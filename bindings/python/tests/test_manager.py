"""The manager in this process: bad input, types, the phase, callbacks.

Nothing here starts the shutdown sequence in the test process (it cannot be
undone); the sequence is exercised in child processes. What the no-op
manager must do alike (the count below zero, negative and NaN timeouts) is
in test_behaviour.py, on both."""

from __future__ import annotations

import json
import logging
import math
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from last_call import (
    GracefulShutdownManager,
    NoActiveStreamError,
    NoopGracefulShutdownManager,
    Phase,
)
from last_call.noop import METRICS
from last_call.wsgi import track_stream
from server_process import eventually


@pytest.fixture
def manager():
    manager = GracefulShutdownManager()
    assert manager.active_streams == 0 and manager.phase == Phase.SERVING
    yield manager
    assert manager.active_streams == 0, "a test leaked a stream"
    manager.set_draining(False)


def test_the_manager_is_one_per_process():
    assert GracefulShutdownManager() is GracefulShutdownManager()


@pytest.mark.parametrize("timeout", ["1", b"1", [1], True])
def test_timeouts_of_the_wrong_type_are_type_errors(manager, timeout):
    with pytest.raises(TypeError):
        manager.wait_for_streams(timeout)


@pytest.mark.parametrize("value", [1, "yes", None])
def test_set_draining_takes_a_bool(manager, value):
    with pytest.raises(TypeError):
        manager.set_draining(value)


def test_wait_for_streams_times_out_then_wakes_on_the_last_end(manager):
    manager.increment_active_streams()
    assert manager.wait_for_streams(0.05) is False
    threading.Timer(0.1, manager.decrement_active_streams).start()
    assert manager.wait_for_streams(None) is True  # infinity: no limit
    assert manager.wait_for_streams(math.inf) is True


def test_a_wait_on_the_main_thread_stays_interruptible(manager):
    class Interrupted(Exception):
        pass

    def interrupt(signum, frame):
        raise Interrupted

    previous = signal.signal(signal.SIGUSR1, interrupt)
    manager.increment_active_streams()
    try:
        threading.Timer(0.2, lambda: signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)).start()
        started = time.monotonic()
        with pytest.raises(Interrupted):
            manager.wait_for_streams(None)
        assert time.monotonic() - started < 5
    finally:
        signal.signal(signal.SIGUSR1, previous)
        manager.decrement_active_streams()


def test_draining_by_hand_flips_and_returns(manager):
    manager.set_draining(True)
    assert manager.is_draining() and manager.phase == Phase.DRAINING
    manager.set_draining(False)
    assert not manager.is_draining() and manager.phase == Phase.SERVING


def test_phase_callbacks_see_each_change_and_exceptions_are_logged(manager, caplog):
    seen = []

    @manager.on_phase
    def record(old, new):
        seen.append((old, new))

    @manager.on_phase
    def broken(old, new):
        raise RuntimeError("a broken phase callback")

    try:
        with caplog.at_level(logging.ERROR, logger="last_call"):
            manager.set_draining(True)
            manager.set_draining(False)
            eventually(lambda: len(seen) == 2)
            eventually(lambda: "a broken phase callback" in caplog.text)
        assert seen == [(Phase.SERVING, Phase.DRAINING), (Phase.DRAINING, Phase.SERVING)]
    finally:
        assert manager.remove_phase_callback(record)
        assert manager.remove_phase_callback(broken)
    assert not manager.remove_phase_callback(record)
    manager.set_draining(True)
    manager.set_draining(False)
    time.sleep(0.1)
    assert len(seen) == 2, "a removed callback was called"


def test_a_stream_that_is_never_iterated_is_never_counted(manager):
    before = manager.streams_started_total
    stream = track_stream(iter(["a"]), manager)
    stream.close()
    del stream
    assert manager.active_streams == 0
    assert manager.streams_started_total == before


def test_track_stream_counts_from_first_item_to_close(manager):
    before = manager.streams_started_total
    stream = track_stream(iter(["a", "b"]), manager)
    assert manager.streams_started_total == before
    assert next(stream) == "a"
    assert manager.active_streams == 1
    stream.close()
    stream.close()
    assert manager.active_streams == 0
    assert manager.streams_started_total == before + 1
    assert list(stream) == []


def test_the_noop_manager_has_the_same_interface():
    real = {name for name in dir(GracefulShutdownManager) if not name.startswith("_")}
    noop = {name for name in dir(NoopGracefulShutdownManager) if not name.startswith("_")}
    assert real <= noop
    fake = NoopGracefulShutdownManager()
    fake.increment_active_streams()
    assert fake.active_streams == 1
    assert fake.wait_for_streams(0.01) is False
    fake.decrement_active_streams()
    with pytest.raises(NoActiveStreamError):
        fake.decrement_active_streams()
    fake.set_draining(True)
    assert fake.is_draining()


def test_the_noop_metrics_table_is_the_runtime_s(graceful_shutdown):
    # The no-op manager renders its figures from noop.METRICS, the runtime
    # its own: names, types and help texts in one table, held to the
    # runtime's rendering here (and the JSON keys with them).
    rendered = graceful_shutdown.metrics()
    families = re.findall(r"^# HELP (\S+) (.*)\n# TYPE \1 (\S+)$", rendered, re.M)
    assert [(name, kind, help_text) for name, help_text, kind in families] == list(METRICS)
    noop = NoopGracefulShutdownManager()
    assert noop.metrics().splitlines()[0::3] == rendered.splitlines()[0::3]
    assert json.loads(noop.metrics("json")).keys() == json.loads(graceful_shutdown.metrics("json")).keys()


def run_python(code: str, env=None) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter (a process of its own: the runtime is
    process-wide), with `env` as its whole environment when given."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=None if env is None else {"PATH": "/usr/bin:/bin", **env},
    )


SEQUENCE_SCRIPT = r"""
import json, sys, threading
from last_call import GracefulShutdownManager, Phase, InvalidStateError
m = GracefulShutdownManager()
m.install_signal_handlers(
    drain_delay_seconds=0, shutdown_timeout_seconds=5, close_notice_seconds=1, exit_watchdog_seconds=0
)
try:
    m.install_signal_handlers()
    again = "installed twice"
except InvalidStateError as e:
    again = str(e)
phases, hooks = [], []
m.on_phase(lambda old, new: phases.append(new.label))
m.register_shutdown_hook("first", lambda left: hooks.append(("first", left)))
def failing(left):
    raise RuntimeError("hook failure is logged")
m.register_shutdown_hook("failing", failing)
m.register_shutdown_hook("last", lambda left: hooks.append(("last", left)) or True)
m.increment_active_streams()
m.begin_shutdown()
m.begin_shutdown()
try:
    m.set_draining(False)
    refused = None
except InvalidStateError as e:
    refused = str(e)
threading.Timer(0.2, m.decrement_active_streams).start()
assert m.wait_for_phase(Phase.STOPPED, 10)
import time; time.sleep(0.2)
print(json.dumps({"phases": phases, "hooks": hooks, "refused": refused, "again": again,
                  "metrics": json.loads(m.metrics("json"))}))
"""


def test_the_sequence_from_python_in_a_child_process():
    result = run_python(SEQUENCE_SCRIPT)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["phases"] == ["draining", "stopping", "stopped"]
    assert [name for name, _ in report["hooks"]] == ["first", "last"]
    # Each hook group gets an equal share of what is left when it starts: the
    # first about half, the last all that the first did not use.
    assert 0 < report["hooks"][0][1] <= report["hooks"][1][1]
    assert "sequence has started" in report["refused"]
    assert "already installed" in report["again"]
    assert "hook failure is logged" in result.stderr
    assert report["metrics"]["shutdown_duration_seconds"] > 0


def test_a_malformed_environment_variable_is_named():
    result = run_python(
        "import last_call as g; g.GracefulShutdownManager().install_signal_handlers()",
        {"GS_CLOSE_NOTICE_SECONDS": "soon"},
    )
    assert result.returncode != 0
    assert "ConfigError" in result.stderr
    assert "GS_CLOSE_NOTICE_SECONDS" in result.stderr
