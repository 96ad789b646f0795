"""Issue 22: a WSGI stream is ended at its own moment of ClosingStreams even
while its generator is blocked, because the wrapper wakes the generator's
wait (``wake_queue``, ``on_wake``, ``track_stream(wake=...)``) from one
scheduler thread per process. Against the real runtime in this process (the
plugin resets it around each test); the generators here wait far longer
(60 s) than any test, so only the wake can end them in time."""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from collections.abc import Iterator

import pytest
from last_call import GracefulShutdownManager, _scheduler
from last_call.sse import StreamKind
from last_call.wsgi import WAKE, on_wake, track_stream, wake_queue
from server_process import eventually

from .conftest import Served

#: Far longer than any wait in these tests: a stream that ends in time was woken.
LONG_WAIT = 60.0


@pytest.fixture
def manager(manager_with_env) -> GracefulShutdownManager:
    # No hook, so no hooks' budget: ClosingStreams 0.5 s after the start,
    # nudges until 1.25 s (margin: a quarter of the notice).
    return manager_with_env(
        {
            "GS_DRAIN_DELAY_SECONDS": "0",
            "GS_SHUTDOWN_TIMEOUT_SECONDS": "1.5",
            "GS_CLOSE_NOTICE_SECONDS": "1",
            "GS_EXIT_WATCHDOG_SECONDS": "0",
        }
    )


def queue_feed(started: threading.Event) -> Iterator[object]:
    """A subscriber as the examples write it: one event, then a wait on its
    queue with a heartbeat far away; a WAKE from the queue is yielded."""
    subscriber: queue.Queue[object] = wake_queue(queue.Queue())
    yield "id: 7\nevent: tick\ndata: 7\n\n"
    started.set()
    while True:
        try:
            item = subscriber.get(timeout=LONG_WAIT)
        except queue.Empty:
            yield ": heartbeat\n\n"
            continue
        yield item


def event_feed(started: threading.Event, with_on_wake: bool, woken: threading.Event | None = None) -> Iterator[str]:
    """A generator that waits on a threading.Event, not a queue: the event's
    set is its waker if it registers it (`with_on_wake`), if its host gives
    it to ``track_stream(wake=)`` (`woken`), or not at all."""
    woken = woken if woken is not None else threading.Event()
    if with_on_wake:
        assert on_wake(woken.set)
    yield "id: 1\ndata: 1\n\n"
    started.set()
    while True:
        woken.wait(LONG_WAIT)
        woken.clear()
        yield ": awake\n\n"


def test_a_stream_blocked_in_its_queue_reconnects_at_its_own_moment(manager):
    started = threading.Event()
    served = Served(track_stream(queue_feed(started), manager))
    assert started.wait(5)
    manager.begin_shutdown()
    assert served.done.wait(10), "the blocked stream was never woken"
    assert served.ended_at is not None
    assert served.chunks[-1] != WAKE and all(chunk is not WAKE for chunk in served.chunks)
    last = served.chunks[-1]
    assert isinstance(last, bytes) and b"event: reconnect" in last and b"id: 7\n" in last
    # It ended at the moment drawn for it, not at a heartbeat (60 s away).
    drawn = served.stream._end_at  # type: ignore[attr-defined]
    assert drawn is not None
    assert abs(served.ended_at - drawn) < 0.5, (served.ended_at, drawn)
    assert manager.active_streams == 0


@pytest.mark.parametrize("how", ["on_wake", "track_stream(wake=)"])
def test_a_generator_waiting_on_an_event_is_woken_by_its_waker(manager, how):
    started = threading.Event()
    if how == "on_wake":
        stream = track_stream(event_feed(started, with_on_wake=True), manager)
    else:
        woken = threading.Event()
        stream = track_stream(event_feed(started, with_on_wake=False, woken=woken), manager, wake=woken.set)
    served = Served(stream)
    assert started.wait(5)
    manager.begin_shutdown()
    assert served.done.wait(10), "the blocked stream was never woken"
    assert "event: reconnect" in served.text()


def test_without_a_waker_a_blocked_stream_waits_for_its_next_yield(manager):
    """The contrast: the same generator without on_wake is still blocked
    after every nudge moment has passed (it would end at its heartbeat)."""
    started, heartbeat = threading.Event(), threading.Event()
    served = Served(track_stream(event_feed(started, with_on_wake=False, woken=heartbeat), manager))
    assert started.wait(5)
    manager.begin_shutdown()
    stream = served.stream
    eventually(lambda: stream._end_at is not None)  # type: ignore[attr-defined]
    # Well past its moment, it is still blocked.
    assert not served.done.wait(max(stream._end_at - time.monotonic(), 0.0) + 0.5)  # type: ignore[attr-defined]
    assert "reconnect" not in served.text()
    heartbeat.set()  # its heartbeat: the wrapper gets a word in only now
    assert served.done.wait(10)
    assert served.text().endswith("data: {\"reason\": \"server shutting down\", \"retry_ms\": 1000}\n\n")


def test_a_pod_bound_stream_blocked_in_its_queue_gets_its_final_event(manager):
    started = threading.Event()
    stream = track_stream(
        queue_feed(started), manager, kind=StreamKind.POD_BOUND, final_event="event: gone\ndata: {}\n\n"
    )
    served = Served(stream)
    assert started.wait(5)
    manager.begin_shutdown()
    assert served.done.wait(10), "the blocked stream was never woken"
    assert served.text().endswith("event: gone\ndata: {}\n\n")
    assert "reconnect" not in served.text()


def test_a_waker_registered_after_the_moment_is_called_at_once(manager):
    """A generator that reaches its wait only after its moment passed (it
    was busy) still ends: on_wake calls the waker at once."""
    manager.begin_shutdown()
    assert manager.wait_for_phase(3, timeout=5)  # ClosingStreams
    time.sleep(1.0)  # every moment of the window has passed

    def late() -> Iterator[object]:
        subscriber: queue.Queue[object] = queue.Queue()
        yield "data: first\n\n"
        time.sleep(0.1)
        wake_queue(subscriber)
        yield subscriber.get(timeout=LONG_WAIT)

    served = Served(track_stream(late(), manager))
    assert served.done.wait(10)
    assert "event: reconnect" in served.text()


def test_many_streams_share_one_scheduler_thread(manager):
    servings = []
    for _ in range(40):
        started = threading.Event()
        servings.append((Served(track_stream(queue_feed(started), manager)), started))
    for _, started in servings:
        assert started.wait(5)
    manager.begin_shutdown()
    for served, _ in servings:
        assert served.done.wait(10), "a blocked stream was never woken"
    wakers = [thread for thread in threading.enumerate() if thread.name == "last_call-wake"]
    assert len(wakers) == 1, wakers
    ends = sorted(served.ended_at for served, _ in servings if served.ended_at is not None)
    assert ends[-1] - ends[0] > 0.3, "the streams ended together, not each at its own moment"


def test_outside_a_served_stream_on_wake_registers_nothing():
    assert on_wake(lambda: None) is False


def test_a_forked_child_does_not_inherit_the_scheduler_thread():
    """The parent's scheduler thread is gone in a child; the child's first
    use starts its own, which calls back at the moment asked for."""
    fired = threading.Event()
    _scheduler.call_at(time.monotonic(), fired.set)
    assert fired.wait(5)
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return to pytest
        status = 1
        try:
            in_child = threading.Event()
            _scheduler.call_at(time.monotonic() + 0.05, in_child.set)
            status = 0 if in_child.wait(5) else 3
            os.write(writer, b"fired" if status == 0 else b"silent")
        finally:
            os._exit(status)
    os.close(writer)
    try:
        deadline = time.monotonic() + 20
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            assert time.monotonic() < deadline, "the child hung"
            time.sleep(0.02)
        assert os.read(reader, 16) == b"fired"
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        os.close(reader)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        else:
            os.waitpid(pid, 0)


def test_a_waker_that_raises_is_logged_and_the_other_streams_still_end(manager, caplog):
    """Hostile host code: one stream's waker raises on the scheduler
    thread. It is logged; the scheduler lives on and wakes the others."""
    started_bad, started_good = threading.Event(), threading.Event()

    def bad_feed() -> Iterator[object]:
        subscriber: queue.Queue[object] = queue.Queue()

        def explode() -> None:
            raise RuntimeError("a waker that raises")

        on_wake(explode)
        yield "data: bad\n\n"
        started_bad.set()
        try:
            yield subscriber.get(timeout=3.0)
        except queue.Empty:
            yield ": heartbeat\n\n"  # never woken: it ends at its heartbeat

    bad = Served(track_stream(bad_feed(), manager))
    goods = [Served(track_stream(queue_feed(started_good), manager)) for _ in range(5)]
    assert started_bad.wait(5) and started_good.wait(5)
    with caplog.at_level("ERROR", logger="last_call"):
        manager.begin_shutdown()
        for served in goods:
            assert served.done.wait(10), "the scheduler died with the raising waker"
        assert bad.done.wait(10)
    assert "event: reconnect" in bad.text()
    assert any("waker raised" in record.getMessage() for record in caplog.records), caplog.records
    for served in goods:
        assert "event: reconnect" in served.text()


def test_a_stream_dropped_without_close_is_still_uncounted_when_collected(manager):
    """A server that drops an iterated body without close(): neither the
    runtime's phase callback nor the scheduler keeps the stream alive, so
    its __del__ uncounts it, before and after its moment was drawn."""
    import gc

    for shutting_down in (False, True):
        stream = track_stream(iter(["data: 1\n\n", "data: 2\n\n"]), manager)
        assert next(stream) == "data: 1\n\n"
        if shutting_down:
            manager.begin_shutdown()
            assert manager.wait_for_phase(3, timeout=5)  # ClosingStreams: its moment is drawn
            assert stream._end_at is not None  # type: ignore[attr-defined]
        assert manager.active_streams == 1
        del stream
        gc.collect()
        assert manager.active_streams == 0
