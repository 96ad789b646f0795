"""track_stream's endings in ClosingStreams, by the stream's kind, against
the real runtime in this process (the plugin resets it around each test):
a resumable stream gets retry:, its last id: and event: reconnect at its
drawn moment; a pod-bound one gets the host's final event at the streams'
last moment and is never told to reconnect."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from last_call import GracefulShutdownManager, Phase
from last_call.sse import StreamKind
from last_call.wsgi import track_stream
from server_process import eventually

from .conftest import Served


@pytest.fixture
def manager(manager_with_env) -> GracefulShutdownManager:
    # No hook is registered, so no hooks' budget (issue 22): ClosingStreams
    # 2 s after the start; the nudge window, and the streams' last moment,
    # end 0.25 s before the deadline (margin: close notice / 4), at 2.75 s.
    return manager_with_env(
        {
            "GS_DRAIN_DELAY_SECONDS": "0",
            "GS_SHUTDOWN_TIMEOUT_SECONDS": "3",
            "GS_CLOSE_NOTICE_SECONDS": "1",
            "GS_HOOK_BUDGET_SECONDS": "1.5",
            "GS_EXIT_WATCHDOG_SECONDS": "0",
        }
    )


def ticks() -> Iterator[str]:
    """An endless stream of events with ids, every 20 ms."""
    number = 0
    while True:
        number += 1
        time.sleep(0.02)
        yield f"id: {number}\nevent: tick\ndata: {number}\n\n"


def text(chunk: object) -> str:
    return chunk.decode() if isinstance(chunk, bytes) else str(chunk)


def test_a_resumable_stream_is_told_to_reconnect_after_its_last_id(manager):
    stream = track_stream(ticks(), manager, kind=StreamKind.RESUMABLE)
    served = Served(stream)
    time.sleep(0.2)
    manager.begin_shutdown()
    assert served.done.wait(10), "the stream was not ended"
    last = text(served.chunks[-1])
    assert "event: reconnect" in last and last.startswith("retry: ")
    ids = [line for chunk in served.chunks[:-1] for line in text(chunk).splitlines() if line.startswith("id: ")]
    assert f"{ids[-1]}\n" in last, (ids[-1], last)
    assert manager.phase >= Phase.CLOSING_STREAMS
    # It ended inside the nudge window, before the hooks' budget began.
    assert manager.phase < Phase.STOPPING or manager.active_streams == 0
    assert manager.active_streams == 0


def test_a_pod_bound_stream_gets_the_final_event_and_no_reconnect(manager):
    final = 'event: task_failed\ndata: {"reason": "shutdown"}\n\n'
    stream = track_stream(ticks(), manager, kind=StreamKind.POD_BOUND, final_event=final)
    served = Served(stream)
    time.sleep(0.1)
    manager.begin_shutdown()
    began = time.monotonic()
    assert manager.wait_for_phase(Phase.CLOSING_STREAMS, 10)
    assert served.done.wait(10)
    # At the streams' last moment (2.75 s), not when the notice began (2 s).
    assert 2.75 - 0.2 <= time.monotonic() - began < 2.75 + 1.0
    assert text(served.chunks[-1]) == final
    assert not any("reconnect" in text(chunk) for chunk in served.chunks)
    assert manager.active_streams == 0


def test_a_pod_bound_stream_without_a_final_event_just_ends(manager):
    stream = track_stream(ticks(), manager, kind=StreamKind.POD_BOUND)
    served = Served(stream)
    manager.begin_shutdown()
    assert served.done.wait(10)
    assert not any("reconnect" in text(chunk) for chunk in served.chunks)
    assert manager.active_streams == 0


def test_streams_that_end_by_themselves_get_no_ending(manager):
    stream = track_stream(iter(["id: 1\ndata: a\n\n", "id: 2\ndata: b\n\n"]), manager)
    assert [text(chunk) for chunk in stream] == ["id: 1\ndata: a\n\n", "id: 2\ndata: b\n\n"]
    stream.close()
    assert stream.last_event_id == "2"
    assert manager.active_streams == 0


def test_a_pod_bound_stream_never_sends_its_final_event_twice(manager):
    """The task ended on its own a moment before the streams' last moment
    and its final event (id 3) was the stream's last: the host's
    final_event, which returns that same event, adds nothing."""
    final = "id: 3\nevent: task_event\ndata: done\n\n"
    released = threading.Event()

    def task_events() -> Iterator[str]:
        yield "id: 1\ndata: a\n\n"
        yield "id: 2\ndata: b\n\n"
        yield final
        released.wait(10)  # a wait that outlasts the stream's moment
        yield ": heartbeat\n\n"  # the wrapper's word comes here

    stream = track_stream(task_events(), manager, kind=StreamKind.POD_BOUND, final_event=lambda: final)
    served = Served(stream)
    manager.begin_shutdown()
    assert manager.wait_for_phase(Phase.CLOSING_STREAMS, 10)
    eventually(lambda: stream._end_at is not None and time.monotonic() > stream._end_at + 0.1)  # type: ignore[attr-defined]
    released.set()
    assert served.done.wait(10)
    assert [text(chunk) for chunk in served.chunks].count(final) == 1, served.chunks
