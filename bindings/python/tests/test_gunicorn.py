"""gunicorn with ``-c python:last_call.gunicorn``: a real master with two
gthread workers in a child process, a real SIGTERM to the master, SSE
clients and probes over 127.0.0.1."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from server_process import ServerProcess, child_pids, eventually
from sse_follow import follow

from .conftest import APPS, GUNICORN

SHUTDOWN = {
    "GS_PROBE_ADDR": "127.0.0.1:0",
    "GS_DRAIN_DELAY_SECONDS": "1",
    "GS_SHUTDOWN_TIMEOUT_SECONDS": "8",
    "GS_CLOSE_NOTICE_SECONDS": "2",
    "GS_HOOK_BUDGET_SECONDS": "1",
    "GS_EXIT_WATCHDOG_SECONDS": "2",
}


@pytest.fixture
def gunicorn_server():
    started: list[ServerProcess] = []

    def start(*options: str, env: dict[str, str] | None = None) -> ServerProcess:
        server = ServerProcess([*GUNICORN, *options, "gunicorn_app:app"], {**SHUTDOWN, **(env or {})}, cwd=APPS)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def test_two_gthread_workers_keep_their_streams_through_sigterm_and_exit_0(gunicorn_server):
    server = gunicorn_server("-w", "2", "--threads", "8")
    assert server.probe_url, server.lines
    master = server.process.pid
    eventually(lambda: len(child_pids(master)) == 2, timeout=10)
    resumable = follow(f"{server.url}/stream?events=200&interval=0.2")
    pod_bound = follow(f"{server.url}/pod-bound?events=200&interval=0.2")
    short: list[tuple[threading.Thread, dict[str, list[str]]]] = []

    def holders() -> set[str]:
        # Every stream is under way (one tick each); which worker sent it.
        streams = [*short, resumable, pod_bound]
        eventually(lambda: all(len(box.get("lines", [])) >= 2 for _, box in streams), timeout=10)
        return {re.search(r"data: (\d+) ", "\n".join(box["lines"])).group(1) for _, box in streams}

    # Short streams until both workers hold some (gunicorn does not balance).
    while len(short) < 4 or (len(holders()) < 2 and len(short) < 16):
        short.append(follow(f"{server.url}/stream?events=10&interval=0.2"))
    assert len(holders()) == 2, "both workers hold streams"
    sent = server.signal(signal.SIGTERM)

    with httpx.Client(base_url=server.probe_url, timeout=5) as probe:
        eventually(lambda: probe.get("/readyz").status_code == 503, timeout=2)
        refused = server.client.post("/api/tasks")
        assert refused.status_code == 503
        assert int(refused.headers["Retry-After"]) > 0
        # The pod's one probe listener answers throughout: not ready, alive.
        while server.process.poll() is None and time.monotonic() - sent < 15:
            try:
                ready, alive = probe.get("/readyz").status_code, probe.get("/healthz").status_code
            except httpx.TransportError:
                break  # the master has exited
            assert (ready, alive) == (503, 200)
            time.sleep(0.2)

    assert server.wait_exit(20) == 0
    assert time.monotonic() - sent < 8 + 2 + 1
    for thread, box in short:
        thread.join(5)
        assert "event: done" in box["lines"], box["lines"]
    resumable[0].join(5)
    assert "event: reconnect" in resumable[1]["lines"], resumable[1]["lines"]
    pod_bound[0].join(5)
    assert "event: task_failed" in pod_bound[1]["lines"], pod_bound[1]["lines"]
    assert "event: reconnect" not in pod_bound[1]["lines"]
    log = "\n".join(server.lines)
    assert log.count("Worker exiting") == 2, log
    # No worker aborted in its interpreter's exit (test_host_exit.py).
    for bad in ("WORKER TIMEOUT", "SIGKILL", "exited with code", "FATAL", "SIGABRT"):
        assert bad not in log, log


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if state == "0A" and int(local.split(":")[1], 16) == port:
            inodes.add(inode)
    return inodes


def _holders(pids: set[int], inodes: set[str]) -> set[int]:
    owners = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if any(target == f"socket:[{inode}]" for inode in inodes):
                owners.add(pid)
    return owners


def test_exactly_one_probe_listener_per_pod_held_by_the_master(gunicorn_server):
    server = gunicorn_server("-w", "3", "--threads", "4")
    master = server.process.pid
    eventually(lambda: len(child_pids(master)) == 3, timeout=10)
    workers = child_pids(master)
    # The workers are forked (each closed its copy of the probe socket at fork).
    assert server.client.get("/pid").status_code == 200
    probe_port = int(server.probe_url.rsplit(":", 1)[1])
    inodes = _listening_inodes(probe_port)
    assert len(inodes) == 1
    assert _holders({master, *workers}, inodes) == {master}
    # A worker that dies is replaced; the probe never moved.
    victim = sorted(workers)[0]
    os.kill(victim, signal.SIGKILL)
    eventually(lambda: victim not in child_pids(master) and len(child_pids(master)) == 3, timeout=10)
    with httpx.Client(base_url=server.probe_url, timeout=5) as probe:
        assert probe.get("/readyz").status_code == 200
        assert probe.get("/healthz").status_code == 200
    assert _holders({master, *child_pids(master)}, _listening_inodes(probe_port)) == {master}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["-k", "sync"], "cannot keep SSE streams alive"),
        (["--threads", "4", "--graceful-timeout", "0"], "graceful_timeout=0 is shorter than GS_HOOK_BUDGET_SECONDS"),
    ],
)
def test_settings_that_would_cut_streams_are_refused_at_start(options, message):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GS_")}
    done = subprocess.run(
        [*GUNICORN, *options, "gunicorn_app:app"], cwd=APPS, env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode != 0
    assert message in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"GS_DRAIN_DELAY_SECONDS": "soon"}, "GS_DRAIN_DELAY_SECONDS"),
        # Issue 22: well formed, but the close notice and the hooks' budget
        # (both set) overrun the timeout: refused where gunicorn starts.
        (
            {"GS_SHUTDOWN_TIMEOUT_SECONDS": "3", "GS_CLOSE_NOTICE_SECONDS": "2", "GS_HOOK_BUDGET_SECONDS": "2"},
            "GS_CLOSE_NOTICE_SECONDS",
        ),
    ],
    ids=["malformed", "does-not-fit"],
)
def test_a_bad_gs_configuration_is_refused_by_name(settings, named):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GS_")}, **settings}
    done = subprocess.run(
        [*GUNICORN, "gunicorn_app:app"], cwd=APPS, env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode != 0
    assert named in done.stderr, done.stderr


#: The rolling harness's settings, with the exit watchdog at 1 s after
#: Stopped: a worker that outlives its Stopped by that much is ended with
#: status 70 and says so.
PROMPT_EXIT = {
    "GS_DRAIN_DELAY_SECONDS": "1",
    "GS_SHUTDOWN_TIMEOUT_SECONDS": "6",
    "GS_CLOSE_NOTICE_SECONDS": "1.5",
    "GS_HOOK_BUDGET_SECONDS": "1",
    "GS_EXIT_WATCHDOG_SECONDS": "1",
}
NOT_PROMPT = ("exit watchdog", "left running", "overran", "exited with code", "WORKER TIMEOUT", "SIGKILL")


def _kept_alive_on_every_worker(server: ServerProcess, workers: int) -> list[httpx.Client]:
    """Clients that each hold one kept-alive connection, as a load
    balancer's connections to the pod, until every worker holds one."""
    clients: list[httpx.Client] = []
    seen: set[int] = set()
    while len(seen) < workers and len(clients) < 32:
        client = httpx.Client(base_url=server.url, timeout=5)
        clients.append(client)
        seen.add(client.get("/pid").json()["worker"])
    assert len(seen) == workers, f"kept-alive connections reach only workers {seen}"
    return clients


@pytest.mark.parametrize(("streams", "silent"), [(0, 0), (4, 0), (4, 4)])
def test_workers_exit_promptly_after_stopped_with_kept_alive_connections_open(gunicorn_server, streams, silent):
    """``silent``: connections that send nothing, opened at ClosingStreams
    (a client that never sends holds a gunicorn thread for 5 s)."""
    server = gunicorn_server("-w", "2", "--threads", "16", env=PROMPT_EXIT)
    eventually(lambda: len(child_pids(server.process.pid)) == 2, timeout=10)
    eventually(lambda: sum("last_call: worker" in line for line in _read_so_far(server)) == 2, timeout=10)
    kept_alive = _kept_alive_on_every_worker(server, 2)
    # As a balancer's, the connections carry requests until the streams
    # have their endings, and are idle (but not yet past gunicorn's
    # keep-alive timeout, 2 s) when the workers stop.
    stop_pinging = threading.Event()
    pingers = [threading.Thread(target=_ping, args=(client, stop_pinging), daemon=True) for client in kept_alive]
    for pinger in pingers:
        pinger.start()
    followers = [follow(f"{server.url}/stream?events=200&interval=0.2") for _ in range(streams)]
    followers += [follow(f"{server.url}/pod-bound?events=200&interval=0.2") for _ in range(streams)]
    eventually(lambda: all(len(box.get("lines", [])) >= 2 for _, box in followers), timeout=10)
    quiet: list[socket.socket] = []
    try:
        if not followers:
            stop_pinging.set()
        server.signal(signal.SIGTERM)
        if silent:
            eventually(lambda: any("event: task_failed" in box.get("lines", []) for _, box in followers), timeout=15)
            quiet += [socket.create_connection(("127.0.0.1", server.port)) for _ in range(silent)]
        eventually(lambda: all(not thread.is_alive() for thread, _ in followers), timeout=15)
        stop_pinging.set()
        status = server.wait_exit(20)
    finally:
        for connection in quiet:
            connection.close()
        stop_pinging.set()
        for pinger in pingers:
            pinger.join(5)
        for client in kept_alive:
            client.close()
    log = "\n".join(server.lines)
    assert status == 0, log
    for bad in NOT_PROMPT:
        assert bad not in log, log
    assert log.count("Worker exiting") == 2, log
    for thread, box in followers:
        thread.join(5)
        assert {"event: reconnect", "event: task_failed"} & set(box["lines"]), box["lines"]


def _ping(client: httpx.Client, stop: threading.Event) -> None:
    while not stop.wait(0.3):
        try:
            client.get("/pid", timeout=1)
        except httpx.TransportError:
            pass  # the worker has stopped; a new connection waits in the backlog


def _read_so_far(server: ServerProcess) -> list[str]:
    try:
        server.wait_for_log(r"^NEVER MATCHES$", timeout=0.05)
    except AssertionError:
        pass  # only to read what has been written so far
    return server.lines


NO_DRAIN_DELAY = {
    "GS_DRAIN_DELAY_SECONDS": "0",
    "GS_SHUTDOWN_TIMEOUT_SECONDS": "4",
    "GS_CLOSE_NOTICE_SECONDS": "1",
    "GS_HOOK_BUDGET_SECONDS": "1",
    "GS_EXIT_WATCHDOG_SECONDS": "2",
}


@pytest.mark.parametrize("run", range(3))
def test_with_no_drain_delay_the_master_counts_its_workers_before_its_sequence_can_stop(gunicorn_server, run):
    # The native handler starts the master's sequence at the signal; its
    # arbiter loop counts and signals the workers a moment later. Were the
    # sequence to reach Stopping first, the master would halt, and
    # gunicorn's graceful_timeout (1 s here) kill workers still streaming.
    server = gunicorn_server("-w", "2", "--threads", "4", "--graceful-timeout", "1", env=NO_DRAIN_DELAY)
    eventually(lambda: sum("last_call: worker" in line for line in _read_so_far(server)) == 2, timeout=10)
    workers = child_pids(server.process.pid)
    followers = [follow(f"{server.url}/stream?events=8&interval=0.2") for _ in range(4)]
    eventually(lambda: all(len(box.get("lines", [])) >= 2 for _, box in followers), timeout=10)
    server.signal(signal.SIGTERM)
    status = server.wait_exit(20)
    log = "\n".join(server.lines)
    assert status == 0, log
    forwarded = re.search(r"SIGTERM forwarded to workers \[([\d, ]*)\]", log)
    assert forwarded is not None, log
    assert {int(pid) for pid in forwarded.group(1).split(", ")} == workers, log
    for bad in NOT_PROMPT:
        assert bad not in log, log
    assert log.count("Worker exiting") == 2, log
    for thread, box in followers:
        thread.join(5)
        assert "event: done" in box["lines"], box["lines"]


def test_a_sigterm_while_a_worker_boots_reaches_it(gunicorn_server):
    # Between its fork and gunicorn's signal handling, a worker still has
    # the master's handler, which queues the signal for an arbiter loop
    # that never runs in the worker: the forwarded SIGTERM would be lost,
    # the worker would serve on, and the master, once its sequence gave up
    # on it, halt and let graceful_timeout kill it.
    # A deadline long enough that reaching the worker is told apart from
    # the master giving up on it even on a loaded machine.
    env = {
        **NO_DRAIN_DELAY,
        "GS_SHUTDOWN_TIMEOUT_SECONDS": "10",
        "GS_DRAIN_DELAY_SECONDS": "0.2",
        "POST_FORK_SECONDS": "1",
    }
    server = ServerProcess(
        [
            *GUNICORN[:3],
            *("-c", "python:slow_boot_config", "--bind", "127.0.0.1:0", "-w", "1", "--threads", "4"),
            "gunicorn_app:app",
        ],
        env,
        cwd=APPS,
    )
    try:
        server.wait_for_log(r"Booting worker", timeout=10)
        sent = server.signal(signal.SIGTERM)
        status = server.wait_exit(20)
        took = time.monotonic() - sent
    finally:
        server.close()
    log = "\n".join(server.lines)
    assert status == 0, log
    for bad in NOT_PROMPT:
        assert bad not in log, log
    assert "last_call: worker" in log and "Worker exiting" in log, log
    # Well before the master's own sequence would have given up on it.
    assert took < float(env["GS_SHUTDOWN_TIMEOUT_SECONDS"]) - 2, (took, log)


class _Held:
    """One SSE stream held open by a client of its own, until closed."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(timeout=30)
        self._context = self.client.stream("GET", url)
        response = self._context.__enter__()
        self._lines = response.iter_lines()
        first = next(line for line in self._lines if line.startswith("data: "))
        #: The worker that serves it.
        self.worker = int(first.split()[1])

    def close(self) -> None:
        try:
            self._context.__exit__(None, None, None)
        except httpx.HTTPError:
            pass  # cut by its worker's death
        self.client.close()


def _pod(url: str) -> dict:
    return httpx.get(f"{url}/metrics", headers={"Accept": "application/json"}, timeout=10).json()


def test_every_metrics_of_the_pod_counts_the_streams_open_across_both_workers(gunicorn_server):
    """Issue 29: the master's probe port showed gs_active_streams 1 with no
    stream open (its own hold), and each worker's /metrics only its own
    streams. Now both ports report the pod's streams, the sum over the
    workers, and never the master's hold."""
    server = gunicorn_server("-w", "2", "--threads", "8")
    master = server.process.pid
    eventually(lambda: _pod(server.probe_url)["pod_workers"] == 2, timeout=15)
    idle = _pod(server.probe_url)
    assert (idle["active_streams"], idle["active_work"]) == (0, 0), idle
    assert "gs_active_streams 0\n" in httpx.get(f"{server.probe_url}/metrics", timeout=10).text
    held: list[_Held] = []
    try:
        # New connections until both workers hold streams.
        while len({h.worker for h in held}) < 2 or len(held) < 6:
            assert len(held) < 40, "the kernel never gave the second worker a connection"
            held.append(_Held(f"{server.url}/stream?events=500&interval=0.2"))
        for port in (server.probe_url, server.url):
            eventually(lambda port=port: _pod(port)["active_streams"] == len(held), timeout=10)
        text = httpx.get(f"{server.probe_url}/metrics", timeout=10).text
        assert f"gs_active_streams {len(held)}\n" in text, text
        for stream in held[:2]:
            stream.close()
        eventually(lambda: _pod(server.probe_url)["active_streams"] == len(held) - 2, timeout=10)
        figures = _pod(server.probe_url)
        assert figures["streams_started_total"] >= len(held)
        assert figures["streams_finished_total"] >= 2
        # A worker killed mid-stream: its streams ended with it.
        victim = next(h.worker for h in held[2:])
        left = sum(1 for h in held[2:] if h.worker != victim)
        os.kill(victim, signal.SIGKILL)
        eventually(lambda: victim not in child_pids(master), timeout=10)
        eventually(lambda: _pod(server.probe_url)["active_streams"] == left, timeout=10)
        started = figures["streams_started_total"]
        assert _pod(server.probe_url)["streams_started_total"] == started
    finally:
        for stream in held:
            stream.close()
    eventually(lambda: _pod(server.probe_url)["active_streams"] == 0, timeout=10)
