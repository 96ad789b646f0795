"""last_call.asgi and last_call.sse_starlette: real uvicorn in a child
process, real SIGTERM, SSE clients and probes over 127.0.0.1; and the
awaitable waits in this process's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import textwrap
import threading
import time

import httpx
import pytest
from last_call import ConfigError, GracefulShutdownManager, Phase
from last_call.asgi import (
    CountStreams,
    EventStreamResponse,
    lifespan,
    wait_for_phase,
    wait_for_shutdown,
    wait_for_streams,
)
from server_process import ServerProcess, eventually
from sse_follow import follow

from .conftest import ROOT

SHUTDOWN = {
    "GS_PROBE_ADDR": "127.0.0.1:0",
    "GS_DRAIN_DELAY_SECONDS": "0.5",
    "GS_SHUTDOWN_TIMEOUT_SECONDS": "6",
    "GS_CLOSE_NOTICE_SECONDS": "2",
    "GS_HOOK_BUDGET_SECONDS": "1",
    "GS_EXIT_WATCHDOG_SECONDS": "2",
}


@pytest.fixture
def uvicorn_app(start_app):
    def start(env: dict[str, str] | None = None) -> ServerProcess:
        return start_app({**SHUTDOWN, **(env or {})}, script="asgi_app.py")

    return start


def _metrics(server: ServerProcess) -> dict:
    return server.client.get("/metrics").json()


# ----- uvicorn + the lifespan helper -------------------------------------------------


def test_uvicorn_keeps_streams_through_sigterm_probes_answer_throughout_and_it_exits_0(uvicorn_app):
    server = uvicorn_app()
    assert server.probe_url, server.lines
    short = follow(f"{server.url}/ticks?events=5&interval=0.2")
    resumable = follow(f"{server.url}/ticks?events=500&interval=0.2")
    pod_bound = follow(f"{server.url}/pod-bound?events=500&interval=0.2")
    eventually(lambda: _metrics(server)["active_streams"] == 3, timeout=10)

    answers: list[tuple[int, int]] = []
    refused: list[str] = []

    def probe() -> None:
        # Every probe answer from the signal to the exit: readiness 503,
        # liveness 200; afterwards the port is closed.
        with httpx.Client(base_url=server.probe_url, timeout=5) as client:
            while server.process.poll() is None:
                try:
                    answers.append((client.get("/readyz").status_code, client.get("/healthz").status_code))
                except httpx.TransportError as error:
                    refused.append(type(error).__name__)
                time.sleep(0.05)

    sent = server.signal(15)
    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    code = server.wait_exit(20)
    exited = time.monotonic()
    prober.join(10)
    assert code == 0, "\n".join(server.lines)
    assert "uvicorn returned" in server.lines
    # The probes answered the whole time (refusals only once the process was going).
    assert len(answers) >= 20, answers
    assert set(answers) == {(503, 200)}, answers
    assert len(refused) <= 1, refused
    for thread, _ in (short, resumable, pod_bound):
        thread.join(10)
    # The short stream ended by itself, during Draining.
    assert short[1]["lines"][-2:] == ["data: done", ""], short[1]["lines"]
    # The long resumable one: reconnect with its last id, at its moment of
    # the notice (ClosingStreams at 6 - 1 - 2 = 3 s).
    lines = resumable[1]["lines"]
    assert "event: reconnect" in lines, lines
    last_tick = [line for line in lines if line.startswith("id: ")][-2]
    assert lines[lines.index("event: reconnect") - 1] == last_tick
    at = next(t for t, line in zip(resumable[1]["times"], resumable[1]["lines"]) if line == "event: reconnect") - sent
    assert 3.0 - 0.2 <= at < 6.0, at
    # The pod-bound one: the host's final event at the streams' last moment
    # (the hooks at 5 s, less the margin min(2/4, 1) s: 4.5 s), no reconnect.
    lines = pod_bound[1]["lines"]
    assert "event: final" in lines and "event: reconnect" not in lines, lines
    at = next(t for t, line in zip(pod_bound[1]["times"], pod_bound[1]["lines"]) if line == "event: final") - sent
    assert 4.5 - 0.2 <= at < 4.5 + 0.5, at
    assert exited - sent < 6.0 + 2.0


# ----- counting exactly once ------------------------------------------------------------


def test_a_stream_whose_client_disconnects_is_uncounted_once(uvicorn_app):
    server = uvicorn_app()
    for path in ("/ticks", "/plain", "/sse"):
        before = _metrics(server)
        url = f"{server.url}{path}?events=1000&interval=0.1"
        with httpx.Client(timeout=10) as client, client.stream("GET", url) as response:
            lines = response.iter_lines()
            next(lines)
            assert _metrics(server)["active_streams"] == 1, path
        # The client is gone; the server notices at its next write at the latest.
        eventually(lambda: _metrics(server)["active_streams"] == 0, timeout=5)
        after = _metrics(server)
        assert after["streams_started_total"] - before["streams_started_total"] == 1, path
        assert after["streams_finished_total"] - before["streams_finished_total"] == 1, path
    # Uncounting twice would have raised NoActiveStreamError in the app.
    assert not any("NoActiveStreamError" in line for line in server.lines), server.lines


def test_a_stream_whose_generator_raises_is_uncounted_once(uvicorn_app):
    server = uvicorn_app()
    with httpx.Client(timeout=10) as client:
        with pytest.raises(httpx.HTTPError), client.stream("GET", f"{server.url}/raises") as response:
            list(response.iter_lines())
    eventually(lambda: _metrics(server)["active_streams"] == 0, timeout=5)
    figures = _metrics(server)
    assert (figures["streams_started_total"], figures["streams_finished_total"]) == (1, 1)
    server.wait_for_log("the generator failed", timeout=5)


def test_a_head_request_is_never_counted(uvicorn_app):
    server = uvicorn_app()
    assert server.client.head("/ticks").status_code == 200
    assert _metrics(server)["streams_started_total"] == 0


# ----- the sse-starlette adapter ----------------------------------------------------------


def test_sse_starlette_alone_cuts_the_stream_at_sigterm_and_uvicorn_exits_143(uvicorn_app):
    # The failures the adapter and the lifespan exist for: sse-starlette's
    # own drain cuts the stream, and uvicorn re-raises SIGTERM.
    server = uvicorn_app({"LAST_CALL_DISABLED": "1"})
    thread, box = follow(f"{server.url}/sse?events=500&interval=0.2")
    eventually(lambda: len(box.get("lines", [])) >= 2, timeout=10)
    sent = server.signal(15)
    thread.join(20)
    ended = box["times"][-1] - sent
    assert ended < 2.0, ended
    assert "event: reconnect" not in box["lines"]
    assert server.wait_exit(20) == -15


def test_the_sse_starlette_adapter_keeps_the_stream_and_ends_it_with_our_reconnect(uvicorn_app):
    server = uvicorn_app()
    thread, box = follow(f"{server.url}/sse?events=500&interval=0.2")
    eventually(lambda: len(box.get("lines", [])) >= 2, timeout=10)
    sent = server.signal(15)
    thread.join(20)
    lines = box["lines"]
    assert "event: reconnect" in lines, lines
    at = next(t for t, line in zip(box["times"], box["lines"]) if line == "event: reconnect") - sent
    # Not cut by sse-starlette's drain (0 to 0.5 s): it ran into ClosingStreams (3 s).
    assert 3.0 - 0.2 <= at < 6.0, at
    ids = [line for line in lines if line.startswith("id: ")]
    assert ids[-1] == ids[-2], ids[-3:]  # the reconnect carries the last id
    # sse-starlette's cooperative signal was set at that moment too.
    server.wait_for_log("sse generator closed; shutdown_event set: True", timeout=5)
    assert server.wait_exit(20) == 0


# ----- the awaitable waits --------------------------------------------------------------------


def test_cancelling_an_awaitable_wait_lets_asyncio_run_return():
    # In a child process: a hang is then a bounded failure, not a stuck test.
    program = textwrap.dedent(
        """
        import asyncio
        from last_call.asgi import wait_for_shutdown, wait_for_streams, wait_for_phase
        from last_call import GracefulShutdownManager, Phase

        async def main():
            manager = GracefulShutdownManager()
            manager.increment_active_streams()
            for wait in (wait_for_shutdown(), wait_for_streams(), wait_for_phase(Phase.STOPPED)):
                task = asyncio.ensure_future(wait)
                await asyncio.sleep(0.1)
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
            assert await wait_for_shutdown(timeout=0.05) is False
            return "returned"

        print(asyncio.run(main()), flush=True)
        """
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "returned"


def test_a_sigterm_while_the_lifespan_takes_over_from_uvicorn_starts_the_sequence_and_exits_0():
    """Issue 27, the start-up window under uvicorn: a SIGTERM between the
    lifespan's replacing uvicorn's handler and the runtime's handling being
    installed reached the handler that only logs, and was lost: the server
    served on ("SIGTERM received; shutting down gracefully", then nothing;
    1 of 40 SIGTERMs sent 0-30 ms after "Waiting for application
    startup"). Here the SIGTERM is sent from inside that moment every time
    (the manager's install sends it to the process first), with no drain
    delay and no stream, so that the sequence reaches Stopping at once:
    real uvicorn, real signal, the process must exit 0."""
    program = textwrap.dedent(
        """
        import os, signal, socket
        import uvicorn
        from starlette.applications import Starlette
        from last_call import GracefulShutdownManager
        from last_call.asgi import lifespan

        class SignalledWhileInstalling(GracefulShutdownManager):
            def install_signal_handlers(self, **options):
                os.kill(os.getpid(), signal.SIGTERM)
                super().install_signal_handlers(**options)

        manager = SignalledWhileInstalling()
        app = Starlette(lifespan=lifespan(manager=manager))
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(app, lifespan="on", log_level="info")
        uvicorn.Server(config).run(sockets=[sock])
        print("uvicorn returned", flush=True)
        """
    )
    env = {
        **os.environ,
        "GS_DRAIN_DELAY_SECONDS": "0",
        "GS_SHUTDOWN_TIMEOUT_SECONDS": "5",
        "GS_EXIT_WATCHDOG_SECONDS": "2",
    }
    env.pop("GS_PROBE_ADDR", None)
    try:
        done = subprocess.run(
            [sys.executable, "-c", program], capture_output=True, text=True, timeout=30, cwd=ROOT, env=env
        )
    except subprocess.TimeoutExpired as hung:
        raise AssertionError(f"the SIGTERM was lost: still serving after 30 s\n{hung.stdout}\n{hung.stderr}") from None
    assert done.returncode == 0, done.stdout + done.stderr
    assert "uvicorn returned" in done.stdout, done.stdout + done.stderr


def test_an_app_callback_that_blocks_the_delivery_does_not_starve_wait_for_phase(
    graceful_shutdown: GracefulShutdownManager,
):
    # Callbacks are delivered one at a time: while the app's blocks, the
    # wait's own callback is not called. The wait still sees the phase.
    release = threading.Event()

    def blocks(_old: Phase, _new: Phase) -> None:
        release.wait(30)

    graceful_shutdown.on_phase(blocks)

    async def scenario() -> bool:
        waiting = asyncio.ensure_future(wait_for_phase(Phase.DRAINING, timeout=10))
        await asyncio.sleep(0.1)
        graceful_shutdown.set_draining(True)
        return await waiting

    try:
        began = time.monotonic()
        assert asyncio.run(scenario()) is True
        assert time.monotonic() - began < 5
    finally:
        release.set()


def test_the_waits_wake_on_the_phase_and_the_count(graceful_shutdown: GracefulShutdownManager):
    async def scenario() -> tuple[bool, bool, bool]:
        graceful_shutdown.increment_active_streams()
        shutdown = asyncio.ensure_future(wait_for_shutdown(timeout=10))
        streams = asyncio.ensure_future(wait_for_streams(timeout=10))
        await asyncio.sleep(0.1)
        assert not shutdown.done() and not streams.done()
        graceful_shutdown.set_draining(True)
        graceful_shutdown.decrement_active_streams()
        return await shutdown, await streams, await wait_for_phase(Phase.DRAINING, 0)

    assert asyncio.run(scenario()) == (True, True, True)


def test_the_example_refuses_a_malformed_gs_variable_at_start_with_status_2():
    env = {k: v for k, v in os.environ.items() if not k.startswith("GS_")}
    env.update({"HOST": "127.0.0.1", "PORT": "0", "GS_DRAIN_DELAY_SECONDS": "soon"})
    example = ROOT / "examples" / "asgi_app"
    done = subprocess.run([sys.executable, "run.py"], cwd=example, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "GS_DRAIN_DELAY_SECONDS" in done.stderr


def test_a_cancelled_stream_is_uncounted_once(graceful_shutdown: GracefulShutdownManager):
    # As uvicorn cancels a response past its timeout_graceful_shutdown: the
    # ASGI call itself is cancelled mid-stream (EventStreamResponse, and a
    # StreamingResponse-like app counted by CountStreams).
    async def ticks():
        while True:
            yield "data: tick\n\n"
            await asyncio.sleep(0.01)

    async def streaming_app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        while True:
            await send({"type": "http.response.body", "body": b"data: tick\n\n", "more_body": True})
            await asyncio.sleep(0.01)

    async def scenario(app) -> list[int]:
        sent: list[dict] = []
        never = asyncio.Event()

        async def receive() -> dict:
            await never.wait()  # the client stays
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        call = asyncio.ensure_future(app({"type": "http", "method": "GET"}, receive, send))
        await asyncio.sleep(0.1)
        during = graceful_shutdown.active_streams
        call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await call
        assert len(sent) > 3
        return [during, graceful_shutdown.active_streams]

    for app in (EventStreamResponse(ticks()), CountStreams(streaming_app)):
        before = graceful_shutdown.streams_finished_total
        assert asyncio.run(scenario(app)) == [1, 0]
        assert graceful_shutdown.streams_finished_total - before == 1


def test_lifespan_validates_the_gs_configuration_when_the_app_is_built(monkeypatch):
    """Issue 22: the ASGI entry point refuses a configuration that cannot
    run when it is created, naming it, not at the first SIGTERM."""
    monkeypatch.setenv("GS_SHUTDOWN_TIMEOUT_SECONDS", "3")
    monkeypatch.setenv("GS_CLOSE_NOTICE_SECONDS", "2")
    monkeypatch.setenv("GS_HOOK_BUDGET_SECONDS", "2")
    with pytest.raises(ConfigError, match="GS_CLOSE_NOTICE_SECONDS"):
        lifespan()
    monkeypatch.setenv("GS_HOOK_BUDGET_SECONDS", "1")
    assert callable(lifespan())
