"""SIGTERM and Ctrl-C against the app under last_call.waitress.serve,
in a child process, with real SSE clients over loopback."""

from __future__ import annotations

import threading
import time
from signal import SIGINT, SIGTERM

import httpx
import httpx_sse
from server_process import eventually


def _read_stream(url: str, path: str, into: list, done: threading.Event) -> None:
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            with httpx_sse.connect_sse(client, "GET", path) as source:
                for event in source.iter_sse():
                    into.append((time.monotonic(), event))
    except httpx.HTTPError as error:
        into.append((time.monotonic(), error))
    finally:
        done.set()


def _stream_in_background(server, path):
    events, done = [], threading.Event()
    threading.Thread(target=_read_stream, args=(server.url, path, events, done), daemon=True).start()
    eventually(lambda: len(events) >= 1)
    return events, done


def test_sigterm_keeps_an_open_stream_to_its_natural_end_and_exits_zero(start_app):
    server = start_app({"GS_DRAIN_DELAY_SECONDS": "0.5", "GS_SHUTDOWN_TIMEOUT_SECONDS": "20"})
    events, done = _stream_in_background(server, "/stream?events=15&interval=0.1")
    sent = server.signal(SIGTERM)

    # Readiness flips within a probe period; liveness stays up; the server
    # still answers (endpoint removal is asynchronous).
    eventually(lambda: server.client.get("/readyz").status_code == 503, timeout=2)
    ready = server.client.get("/readyz")
    assert ready.text.strip() == "draining"
    assert server.client.get("/healthz").status_code == 200

    assert done.wait(20), "the stream did not finish"
    received = [event for _, event in events]
    assert all(isinstance(event, httpx_sse.ServerSentEvent) for event in received), received
    assert [e.data for e in received if e.event == "tick"] == [str(n) for n in range(1, 16)]
    assert received[-1].event == "done"
    assert not any(e.event == "reconnect" for e in received)

    assert server.wait_exit(20) == 0
    exited = time.monotonic()
    assert exited - sent < 20, "the process outlived its shutdown timeout"
    server.wait_for_log("phase draining -> stopping")
    server.wait_for_log("serve returned; exiting 0")


def test_a_stream_that_never_ends_gets_the_reconnect_event_before_the_deadline(start_app):
    server = start_app(
        {
            "GS_DRAIN_DELAY_SECONDS": "0",
            "GS_SHUTDOWN_TIMEOUT_SECONDS": "3",
            "GS_CLOSE_NOTICE_SECONDS": "1.5",
            "GS_HOOK_BUDGET_SECONDS": "0.5",
        }
    )
    events, done = _stream_in_background(server, "/stream?events=0&interval=0.1")
    sent = server.signal(SIGTERM)
    assert done.wait(10), "the stream was not ended"
    reconnects = [(at, e) for at, e in events if isinstance(e, httpx_sse.ServerSentEvent) and e.event == "reconnect"]
    assert len(reconnects) == 1, events[-3:]
    at, reconnect = reconnects[0]
    assert reconnect.retry == 1000
    assert 1.0 <= at - sent < 3.0, f"reconnect came {at - sent:.2f} s after SIGTERM"
    assert server.wait_exit(15) == 0
    assert time.monotonic() - sent < 3.0 + 5.0
    server.wait_for_log("phase draining -> closing_streams")


def test_new_streams_are_still_served_during_the_drain_delay(start_app):
    server = start_app({"GS_DRAIN_DELAY_SECONDS": "2"})
    server.signal(SIGTERM)
    eventually(lambda: server.client.get("/readyz").status_code == 503, timeout=2)
    with httpx_sse.connect_sse(server.client, "GET", "/stream?events=2&interval=0.05") as source:
        assert [e.event for e in source.iter_sse()] == ["tick", "tick", "done"]
    assert server.wait_exit(20) == 0


def test_the_first_ctrl_c_drains_gracefully(start_app):
    server = start_app({"GS_DRAIN_DELAY_SECONDS": "0.3"})
    events, done = _stream_in_background(server, "/stream?events=6&interval=0.1")
    server.signal(SIGINT)
    server.wait_for_log("Ctrl-C: shutting down gracefully")
    assert done.wait(15)
    assert events[-1][1].event == "done"
    assert server.wait_exit(20) == 0
    assert not any("KeyboardInterrupt" in line for line in server.lines)


def test_a_second_ctrl_c_exits_at_once(start_app):
    server = start_app({"GS_DRAIN_DELAY_SECONDS": "20"})
    server.signal(SIGINT)
    server.wait_for_log("phase serving -> draining")
    sent = server.signal(SIGINT)
    assert server.wait_exit(10) == 130
    assert time.monotonic() - sent < 5


def test_a_stream_ending_right_before_stopping_keeps_its_last_bytes(start_app):
    """Waitress uncounts a stream (close()) before it writes the terminating
    chunk; with no drain delay Stopping follows at once, and the stopper must
    not close the connection under that last write. The app's slow
    call_on_close widens the window that is otherwise a race."""
    for _ in range(2):
        server = start_app({"GS_DRAIN_DELAY_SECONDS": "0"})
        events, done = _stream_in_background(server, "/stream-slow-finish")
        server.signal(SIGTERM)
        assert done.wait(15)
        received = [event for _, event in events]
        assert all(isinstance(event, httpx_sse.ServerSentEvent) for event in received), received[-1]
        assert received[-1].event == "done"
        assert server.wait_exit(15) == 0
        server.close()
