"""The runtime's own probe listener in a real Waitress child process
(GS_PROBE_ADDR), against the host's own routes: a saturated thread pool, a
thread that holds the GIL, a wedged Waitress loop, SIGTERM with the host's
listener closed, readiness checks, /drain and bad addresses.

Bounds are generous (the machines are shared); the latency figures live in
benches/probe_latency.py and BENCHMARKS.md.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx
import pytest
from flood import Flood, kubelet_probe
from held_streams import hold_streams
from server_process import eventually

from .conftest import APPS

#: Far under the manifest's probe timeout (2 s), far over a probe's cost.
PROBE_BOUND = 1.5


def with_probes(start_app, env: dict[str, str] | None = None):
    server = start_app({"GS_PROBE_ADDR": "127.0.0.1:0", **(env or {})})
    assert server.probe_url, server.lines
    return server, httpx.Client(base_url=server.probe_url, timeout=10.0)


def timed(probe: httpx.Client, path: str) -> tuple[int, float]:
    started = time.monotonic()
    status = probe.get(path).status_code
    return status, time.monotonic() - started


def test_probes_answer_at_once_while_every_waitress_thread_holds_a_stream(start_app):
    server, probe = with_probes(start_app, {"THREADS": "4"})
    hold_streams(server.url, 8)
    # Four streams hold the four threads; four more wait in Waitress's queue.
    eventually(lambda: probe.get("/metrics", headers={"accept": "application/json"}).json()["active_streams"] >= 4)
    # The host's own /healthz waits behind the streams for a free thread...
    with pytest.raises(httpx.TimeoutException):
        httpx.get(f"{server.url}/healthz", timeout=1.0)
    # ...the runtime's does not.
    for path in ["/healthz", "/readyz"] * 50:
        status, took = timed(probe, path)
        assert status == 200
        assert took < PROBE_BOUND, f"{path} took {took:.3f} s"


def test_probes_answer_while_a_python_thread_holds_the_gil(start_app):
    server, probe = with_probes(start_app)
    server.client.get("/hog", params={"seconds": 6}).raise_for_status()
    for path in ["/healthz", "/readyz"] * 50:
        status, took = timed(probe, path)
        assert status == 200
        assert took < PROBE_BOUND, f"{path} took {took:.3f} s"


def test_liveness_follows_the_heartbeat_from_waitress_s_loop(start_app):
    server, probe = with_probes(start_app, {"GS_HEARTBEAT_STALE_SECONDS": "1.5"})
    # The pump beats once a second through the loop: alive.
    eventually(lambda: probe.get("/healthz").status_code == 200)
    time.sleep(2.5)
    assert probe.get("/healthz").text == "alive\n"
    # Wedge the loop: no more heartbeats, so not alive...
    server.client.get("/wedge-loop", params={"seconds": 5}).raise_for_status()
    eventually(lambda: probe.get("/healthz").status_code == 503, timeout=10)
    assert probe.get("/healthz").text.startswith("stale: no heartbeat for")
    # ...until the loop runs again.
    eventually(lambda: probe.get("/healthz").status_code == 200, timeout=15)


def test_after_sigterm_probes_answer_until_exit_with_the_host_listener_closed(start_app):
    server, probe = with_probes(
        start_app,
        {
            "GS_DRAIN_DELAY_SECONDS": "0.5",
            "GS_SHUTDOWN_TIMEOUT_SECONDS": "5",
            "GS_CLOSE_NOTICE_SECONDS": "1",
            "GS_HOOK_BUDGET_SECONDS": "1",
            "LINGER_AFTER_SERVE_SECONDS": "2",
        },
    )
    server.signal(signal.SIGTERM)
    # The signal is taken on its own time: a probe sent at once may come
    # first on a loaded machine (200 once in a fresh-clone run).
    eventually(lambda: probe.get("/readyz").status_code == 503, timeout=5)
    assert probe.get("/readyz").text == "draining\n"
    server.wait_for_log("serve returned")
    # The host's own listener is closed now; the runtime's still answers.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/healthz", timeout=2)
    assert probe.get("/readyz").status_code == 503
    assert probe.get("/healthz").status_code == 200
    metrics = probe.get("/metrics", headers={"accept": "application/json"}).json()
    assert metrics["phase_name"] == "stopped"
    assert server.wait_exit(20) == 0
    with pytest.raises(httpx.ConnectError):
        probe.get("/healthz")


@pytest.mark.parametrize(("readiness", "expected"), [("fail", "not ready: database"), ("hang", "database (timed out")])
def test_python_readiness_checks_feed_the_native_readyz(start_app, readiness, expected):
    _, probe = with_probes(start_app, {"READINESS": readiness})
    started = time.monotonic()
    response = probe.get("/readyz")
    assert response.status_code == 503
    assert expected in response.text
    assert time.monotonic() - started < 5


def test_drain_on_the_probe_port_needs_the_token(start_app):
    server, probe = with_probes(start_app, {"GS_DRAIN_TOKEN": "t0ken"})
    assert probe.post("/drain").status_code == 401
    assert probe.post("/drain", headers={"authorization": "Bearer nope"}).status_code == 401
    assert probe.get("/readyz").status_code == 200
    assert probe.post("/drain", headers={"authorization": "Bearer t0ken"}).status_code == 200
    assert probe.get("/readyz").status_code == 503
    assert server.client.get("/readyz").status_code == 503


def test_drain_without_a_token_is_forbidden(start_app):
    _, probe = with_probes(start_app)
    assert probe.post("/drain", headers={"authorization": "Bearer x"}).status_code == 403
    assert probe.get("/readyz").status_code == 200


@pytest.mark.parametrize("addr", ["nonsense", "127.0.0.1:99999", "in-use"])
def test_a_bad_probe_address_stops_the_start_naming_the_variable(addr):
    taken = None
    if addr == "in-use":
        import socket

        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        addr = f"127.0.0.1:{taken.getsockname()[1]}"
    try:
        result = subprocess.run(
            [sys.executable, str(APPS / "stream_app.py")],
            env={"PATH": "/usr/bin:/bin", "PORT": "0", "GS_PROBE_ADDR": addr},
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        if taken is not None:
            taken.close()
    assert result.returncode != 0
    assert "GS_PROBE_ADDR" in result.stderr


def test_the_kubelet_is_answered_through_a_flood_of_idle_connections(start_app):
    server, _ = with_probes(start_app)
    port = int(server.probe_url.rsplit(":", 1)[1])
    # Ten times the probe port's cap, re-opened as they are dropped: each
    # probe is answered at its first try (the 256-connection cap and a 5 s
    # header timeout locked the kubelet out).
    flood = Flood(port, 2500)
    try:
        for n in range(10):
            assert kubelet_probe(port, "/healthz", 3.0) == 200, f"probe {n}"
    finally:
        flood.close()
    assert flood.opened >= 2500


def test_a_python_host_raises_its_open_file_limit_and_says_so(start_app):
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 512:
        pytest.skip("the hard open-file limit leaves nothing to raise")
    # The child inherits a low soft limit, as a container's 1,024 would be.
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        server = start_app()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    limits = open(f"/proc/{server.process.pid}/limits").read()
    line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
    child_soft = line.split()[3]
    assert child_soft != "256", line
    assert any("raised the open-file limit from 256" in seen for seen in server.lines), server.lines


def test_readiness_reports_a_pool_taken_for_too_long_while_liveness_stays_200(start_app):
    # In hub mode the app's own API was starved (every thread taken) while
    # /readyz answered 200 and the pod stayed in rotation.
    server, probe = with_probes(start_app, {"THREADS": "2", "NOT_READY_WHEN_SATURATED": "1"})
    assert probe.get("/readyz").status_code == 200
    streams = []
    for _ in range(2):
        client = httpx.Client(timeout=30)
        request = client.build_request("GET", f"{server.url}/stream?events=0&interval=0.2")
        streams.append((client, client.send(request, stream=True)))
    try:
        eventually(lambda: probe.get("/readyz").status_code == 503, timeout=15)
        assert "waitress-threads" in probe.get("/readyz").text
        assert probe.get("/healthz").status_code == 200
    finally:
        for client, response in streams:
            response.close()
            client.close()
    # A thread free again: ready again.
    eventually(lambda: probe.get("/readyz").status_code == 200, timeout=15)
