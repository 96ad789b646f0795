"""One behavioural suite, run against the real manager (in this process,
returned to a clean state by the package's pytest plugin) and against the
no-op one: what app unit tests see must be the same."""

from __future__ import annotations

import inspect
import math
import threading
import time

import pytest
from last_call import (
    GracefulShutdownManager,
    InvalidStateError,
    NoActiveStreamError,
    NoopGracefulShutdownManager,
    Phase,
    ReentrantCallError,
    ShutdownManager,
)
from prometheus_client.parser import text_string_to_metric_families
from server_process import eventually


@pytest.fixture(params=["real", "noop"])
def manager(request, monkeypatch) -> ShutdownManager:
    # A sequence started here runs without a drain delay, so that it
    # reaches Stopped within the test (the real runtime reads these when
    # the sequence starts).
    monkeypatch.setenv("GS_DRAIN_DELAY_SECONDS", "0")
    monkeypatch.setenv("GS_SHUTDOWN_TIMEOUT_SECONDS", "5")
    monkeypatch.setenv("GS_CLOSE_NOTICE_SECONDS", "1")
    # Never let the exit watchdog end the test process.
    monkeypatch.setenv("GS_EXIT_WATCHDOG_SECONDS", "0")
    if request.param == "real":
        return request.getfixturevalue("graceful_shutdown")
    return NoopGracefulShutdownManager()


def test_both_have_every_member_of_the_protocol(manager):
    # Statically, without reading handle_sigterm (reading it sets up the
    # real manager for signals); mypy checks the signatures.
    members = {name for name in vars(ShutdownManager) if not name.startswith("_")}
    assert members >= {"wait_for_shutdown", "handle_sigterm", "add_readiness_check"}
    for name in members:
        inspect.getattr_static(manager, name)


def test_a_clean_state_to_start_from(manager):
    assert manager.phase is Phase.SERVING
    assert not manager.is_draining()
    assert manager.active_streams == 0


def test_counting_and_the_error_below_zero(manager):
    started = manager.streams_started_total
    manager.increment_active_streams()
    manager.increment_active_streams()
    assert manager.active_streams == 2
    manager.decrement_active_streams()
    manager.decrement_active_streams()
    with pytest.raises(NoActiveStreamError) as caught:
        manager.decrement_active_streams()
    assert isinstance(caught.value, ValueError)
    assert manager.active_streams == 0
    # The count never wrapped: it counts on from zero, and refuses again.
    manager.increment_active_streams()
    manager.decrement_active_streams()
    with pytest.raises(ValueError):
        manager.decrement_active_streams()
    assert manager.active_streams == 0
    assert manager.streams_started_total == started + 3


@pytest.mark.parametrize("timeout", [-1, -0.001, math.nan, -math.inf])
def test_bad_timeouts_are_value_errors(manager, timeout):
    with pytest.raises(ValueError):
        manager.wait_for_streams(timeout)
    with pytest.raises(ValueError):
        manager.wait_for_phase(Phase.STOPPED, timeout)


def test_waits_honour_their_timeout_and_wake_on_the_condition(manager):
    manager.increment_active_streams()
    started = time.monotonic()
    assert manager.wait_for_streams(0.2) is False
    assert time.monotonic() - started >= 0.15
    assert manager.wait_for_phase(Phase.DRAINING, 0.05) is False
    threading.Timer(0.1, manager.decrement_active_streams).start()
    assert manager.wait_for_streams(10) is True


def test_draining_toggles_and_wait_for_shutdown_sees_it(manager):
    assert manager.wait_for_shutdown(0.05) is False
    threading.Timer(0.1, manager.set_draining, (True,)).start()
    assert manager.wait_for_shutdown(10) is True
    assert manager.phase is Phase.DRAINING
    manager.set_draining(False)
    assert manager.phase is Phase.SERVING


def test_phase_callbacks_are_called_in_order_and_removed_once_each(manager):
    seen: list[tuple[Phase, Phase]] = []

    def record(old: Phase, new: Phase) -> None:
        seen.append((old, new))

    manager.on_phase(record)
    manager.on_phase(record)  # twice: called twice, removed twice
    manager.set_draining(True)
    manager.set_draining(False)
    eventually(lambda: len(seen) == 4)
    assert seen == [(Phase.SERVING, Phase.DRAINING)] * 2 + [(Phase.DRAINING, Phase.SERVING)] * 2
    assert manager.remove_phase_callback(record) is True
    assert manager.remove_phase_callback(record) is True
    assert manager.remove_phase_callback(record) is False
    manager.set_draining(True)
    time.sleep(0.1)
    assert len(seen) == 4, "a removed callback was called"


def test_a_hook_is_not_a_phase_callback(manager):
    ran = []
    hook = manager.register_shutdown_hook("hook", ran.append)
    assert manager.remove_phase_callback(hook) is False
    assert manager.remove_shutdown_hook(hook) is True
    assert manager.remove_shutdown_hook(hook) is False
    manager.begin_shutdown()
    assert manager.wait_for_phase(Phase.STOPPED, 10)
    assert ran == [], "a removed hook ran"


def test_the_sequence_runs_hooks_in_order_then_stops(manager):
    ran: list[str] = []
    phases: list[Phase] = []
    manager.on_phase(lambda old, new: phases.append(new))
    manager.register_shutdown_hook("first", lambda left: ran.append("first"))
    manager.register_shutdown_hook("second", lambda left: ran.append("second") or True)
    manager.increment_active_streams()
    manager.begin_shutdown()
    assert manager.is_draining()
    assert manager.wait_for_shutdown(0) is True
    with pytest.raises(InvalidStateError):
        manager.set_draining(False)
    assert manager.wait_for_phase(Phase.STOPPING, 0.2) is False, "a stream is still open"
    manager.decrement_active_streams()
    assert manager.wait_for_phase(Phase.STOPPED, 10)
    eventually(lambda: phases[-1:] == [Phase.STOPPED])
    assert ran == ["first", "second"]
    assert phases == [Phase.DRAINING, Phase.STOPPING, Phase.STOPPED]


def test_handle_sigterm_starts_the_sequence(manager):
    manager.handle_sigterm(15, None)
    assert manager.is_draining()
    assert manager.wait_for_phase(Phase.STOPPED, 10)


def test_a_blocking_wait_inside_a_callback_is_refused(manager):
    outcome: list[BaseException] = []

    def waits(old: Phase, new: Phase) -> None:
        try:
            manager.wait_for_streams(1)
        except BaseException as error:  # noqa: BLE001 - recorded for the assertion
            outcome.append(error)

    manager.on_phase(waits)
    manager.set_draining(True)
    eventually(lambda: outcome)
    assert isinstance(outcome[0], ReentrantCallError)


def test_readiness_checks_decide_while_serving_and_are_bounded(manager):
    assert manager.check_readiness().ready
    manager.add_readiness_check("fine", lambda: True)
    manager.add_readiness_check("down", lambda: False)
    release = threading.Event()
    manager.add_readiness_check("hung", release.wait, timeout=0.2)
    try:
        started = time.monotonic()
        report = manager.check_readiness()
        assert time.monotonic() - started < 5
        assert not report.ready
        assert set(report.failures) == {"down", "hung"}
        assert "timed out" in report.failures["hung"]
    finally:
        release.set()
    assert manager.remove_readiness_check("down") and manager.remove_readiness_check("hung")
    assert manager.check_readiness().ready
    manager.set_draining(True)
    assert not manager.check_readiness().ready


def test_metrics_have_the_same_families(manager):
    reference = GracefulShutdownManager().metrics()
    manager.increment_active_streams()
    try:
        families = {f.name: f for f in text_string_to_metric_families(manager.metrics())}
        expected = {f.name: f.type for f in text_string_to_metric_families(reference)}
        assert {name: f.type for name, f in families.items()} == expected
        assert families["gs_active_streams"].samples[0].value == 1
        import json

        assert json.loads(manager.metrics("json"))["active_streams"] == 1
    finally:
        manager.decrement_active_streams()
