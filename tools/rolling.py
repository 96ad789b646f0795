"""The rolling-update harness: rolling updates where things go wrong, run
the way ``examples/kubernetes/deployment.yaml`` says, by the kubelet
stand-in (``kubelet.py``), behind HAProxy, against a baseline.

For every host in ``hosts.NAMES`` and every scenario (``SCENARIOS``), with
the runtime and beside it the baseline (``LAST_CALL_DISABLED=1``), it:

* starts HAProxy on 127.0.0.1, its health checks configured from the
  manifest's readiness probe (path, port, period, timeout, thresholds), L7
  retries of refused task starts (503) on another backend, and cookie
  stickiness so a task's stream reaches the pod that runs it, even while
  that pod drains (``option persist``);
* runs the pods as containers (``kubelet.Container``: PID 1 of a PID
  namespace, memory and pids cgroups, the liveness probe, preStop, SIGKILL at
  the grace period) with the manifest's ``GS_*`` environment;
* for the hub host (``hosts.HUB_HOSTS``), starts a redis-server of the
  run's own as its shared store (``GS_STREAM_STORE``) and gives HAProxy a
  streams frontend, a backend of every pod's hub port, which
  ``PUBLIC_STREAM_BASE_URL`` names: stream URLs go through the load
  balancer, as the manifest's do;
* runs the scenario's clients through HAProxy (asyncio, httpx);
* rolls the pods the way the Deployment's strategy says (maxSurge,
  maxUnavailable): a new pod, ready in HAProxy's eyes, then an old one
  deleted; the deletion reaches the load balancer ``ENDPOINT_LAG_SECONDS``
  later (HAProxy puts the pod in drain), while the pod terminates;
* reports streams completed, ended honestly (pod-bound ending), told to
  reconnect and cut, client-visible errors by kind, liveness restarts, OOM
  kills, SIGKILLs, exit codes, SIGTERM-to-exit against the grace period and
  the reconnects' spread and peak rate; the handoff scenario, on the hub
  host, holds each subscriber against the store's record of its channel
  (``handoff_clients.py``);
* records the time series of each run (``rolling_timeline.py``: every
  stream connection as the clients saw it, each pod's probe ``/metrics``,
  each old pod's termination) and draws them as the report page beside the
  tables (``rolling_report.py``), whose path it prints last.

    python tools/rolling.py --rounds 3                   # everything
    python tools/rolling.py --short                      # make test's run
    python tools/rolling.py --host rust --scenario sunny
    python tools/rolling.py --scenario handoff           # the hub host's hand-off
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import httpx
import httpx_sse

sys.path.insert(0, str(Path(__file__).resolve().parent))

import browser_clients
import handoff_clients
import hosts
import kubelet
import rolling_report
import rolling_timeline
import stream_log
from client_loop import PER_TRANSPORT, ClientLoop, new_transport
from redis_process import RedisProcess
from server_process import free_port
from store_record import StoreRecord

#: The time from a pod's deletion to the load balancer no longer sending it
#: new requests. In a cluster the endpoints controller updates the
#: EndpointSlice at once and kube-proxy (``--iptables-min-sync-period``,
#: 1 s by default) and ingress controllers follow within about a second;
#: 1 s is the common case, GS_DRAIN_DELAY_SECONDS (5 s) covers the slow one.
ENDPOINT_LAG_SECONDS = 1.0
SLOTS = 12
BACKEND = "pods"
#: The hub host's streams: HAProxy's second frontend (the Service's
#: ``streams`` port, the manifest's ``PUBLIC_STREAM_BASE_URL``) and its
#: backend of every pod's hub port.
HUB_BACKEND = "hub"


def ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


class HAProxy:
    """HAProxy in the foreground, its health checks from the readiness
    probe, driven through its admin socket to add and remove pods."""

    def __init__(self, workdir: Path, readiness: kubelet.Probe | None, hub: bool = False) -> None:
        self.port = free_port()
        self.socket_path = workdir / "admin.sock"
        config = workdir / "haproxy.cfg"
        servers = "\n".join(
            f"    server slot{n} 127.0.0.1:1 cookie slot{n} check disabled" for n in range(1, SLOTS + 1)
        )
        self.backends = [BACKEND, HUB_BACKEND] if hub else [BACKEND]
        self.streams_port = free_port() if hub else None
        if readiness is None:  # no readiness probe: traffic once the port is open
            checks = "    default-server inter 1s fall 1 rise 1"
        else:
            checks = (
                f"    option httpchk GET {readiness.path}\n"
                "    http-check expect status 200-399\n"
                f"    timeout check {ms(readiness.timeout)}\n"
                f"    default-server inter {ms(readiness.period)} fastinter {ms(readiness.period)} "
                f"downinter {ms(readiness.period)} fall {readiness.failure_threshold} rise {readiness.success_threshold}"
            )
        config.write_text(
            f"""global
    stats socket {self.socket_path} mode 600 level admin
    maxconn 8000

defaults
    mode http
    timeout connect 2s
    timeout client 300s
    timeout server 300s
    # Ingress-like client timeouts (ingress-nginx keeps idle client
    # connections 75 s); a request head may take a while to arrive from
    # thousands of clients that share this process's cores.
    timeout http-request 30s
    timeout http-keep-alive 75s
    # A refused task start (503 while draining) or a pod that is gone is
    # retried on another pod; the POST body is buffered to allow it.
    option http-buffer-request
    retries 3
    retry-on conn-failure empty-response 503
    option redispatch 1

frontend clients
    bind 127.0.0.1:{self.port}
    maxconn 8000
    # The browser clients' page, on the load balancer's own origin.
    http-request return status 200 content-type "text/html" file {browser_clients.PAGE} if {{ path {browser_clients.PAGE_PATH} }}
    default_backend {BACKEND}

backend {BACKEND}
    # Streams are long-lived: new ones go to the pod holding the fewest.
    balance leastconn
    cookie GSBACKEND insert indirect nocache
    option persist
    # A resumable stream reconnects to any pod: never back to the draining
    # one its cookie names (a browser sends the cookie with its reconnect).
    ignore-persist if {{ path /api/events }}
    http-response set-header X-Pod %s
{checks}
{servers}
"""
            + (self._hub_config(checks) if hub else "")
        )
        self.process = subprocess.Popen(
            ["haproxy", "-f", str(config), "-db"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 10
        while not self.socket_path.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"haproxy did not start: {self.process.stderr.read() if self.process.stderr else ''}"
                )
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"
        #: Where browsers reach the hub (the hub host's PUBLIC_STREAM_BASE_URL).
        self.streams_url = f"http://127.0.0.1:{self.streams_port}" if hub else None

    def _hub_config(self, checks: str) -> str:
        """The streams' own origin, as the manifest's: the Service's
        ``streams`` port behind a load balancer (``streams.example.com``),
        another origin than the app's, which the hub allows with
        ``GS_STREAM_CORS_ORIGINS``. With the shared store every pod serves
        every channel: no stickiness, a subscription (and a reconnect, with
        its Last-Event-ID) goes to whichever ready pod holds the fewest. The
        same health checks as the app's: a pod leaves both at once."""
        servers = "\n".join(f"    server slot{n} 127.0.0.1:1 check disabled" for n in range(1, SLOTS + 1))
        return f"""
frontend streams
    bind 127.0.0.1:{self.streams_port}
    maxconn 8000
    default_backend {HUB_BACKEND}

backend {HUB_BACKEND}
    balance leastconn
    http-response set-header X-Pod %s
{checks}
{servers}
"""

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX) as admin:
            admin.settimeout(5)
            admin.connect(str(self.socket_path))
            admin.sendall(line.encode() + b"\n")
            chunks = []
            while True:
                chunk = admin.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def _stat(self, name: str, column: int, backend: str = BACKEND) -> str:
        for line in self.command("show stat").splitlines():
            cells = line.split(",")
            if len(cells) > column and cells[0] == backend and cells[1] == name:
                return cells[column]
        return ""

    def status(self, slot: int, backend: str = BACKEND) -> str:
        return self._stat(f"slot{slot}", 17, backend) or "?"

    def retries(self) -> int:
        """Requests HAProxy retried on another pod (``wretr``)."""
        return int(self._stat("BACKEND", 15) or 0)

    def enable(
        self, slot: int, port: int, check_port: int, hub_port: int | None = None, timeout: float = 60.0
    ) -> None:
        """The pod's ports (its hub's too, on the hub host), ready once
        HAProxy's health checks say UP."""
        self.repoint(slot, port, check_port, hub_port)
        for backend in self.backends:
            self.command(f"set server {backend}/slot{slot} state ready")
        deadline = time.monotonic() + timeout
        for backend in self.backends:
            while self.status(slot, backend) != "UP":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{backend}/slot{slot} never became UP (status {self.status(slot, backend)})")
                time.sleep(0.05)

    def repoint(self, slot: int, port: int, check_port: int, hub_port: int | None = None) -> None:
        """A (restarted) container's ports."""
        for backend, target in ((BACKEND, port), (HUB_BACKEND, hub_port)):
            if backend not in self.backends:
                continue
            if target is None:
                raise RuntimeError(f"slot{slot}: no {backend} port (the hub host announces its hub's)")
            self.command(f"set server {backend}/slot{slot} addr 127.0.0.1 port {target}")
            self.command(f"set server {backend}/slot{slot} check-port {check_port}")

    def drain(self, slot: int) -> None:
        """The pod left the endpoints: no new requests (a task's stream,
        sticky by its cookie, still reaches it)."""
        for backend in self.backends:
            self.command(f"set server {backend}/slot{slot} state drain")

    def disable(self, slot: int) -> None:
        for backend in self.backends:
            self.command(f"set server {backend}/slot{slot} state maint")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


# --- the clients -------------------------------------------------------------


@dataclass
class Tally:
    """What the clients saw. One event loop updates it: no lock."""

    tasks_started: int = 0
    completed: int = 0
    ended_honestly: int = 0  # a pod-bound ending: task_failed, reason shutdown
    told_to_reconnect: int = 0
    cut: int = 0
    starts_refused_then_retried: int = 0
    errors: Counter = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    reconnect_times: list[float] = field(default_factory=list)  # monotonic, feed reopenings
    reopened_on: Counter = field(default_factory=Counter)
    slow_reader_outcomes: Counter = field(default_factory=Counter)
    streams_opened: int = 0
    gaps: int = 0  # `gap` events: events the stream says it may have lost
    #: Every stream connection: when, on which pod, how it ended (the
    #: report page's charts).
    streams: stream_log.StreamLog = field(default_factory=stream_log.StreamLog)

    def error(self, kind: str, text: str) -> None:
        self.errors[kind] += 1
        if len(self.error_samples) < 10:
            self.error_samples.append(f"{kind}: {text}")


@dataclass(frozen=True)
class ClientMix:
    """One scenario's client population."""

    task_clients: int = 0
    steps: int = 6
    step_seconds: float = 0.5
    long_clients: int = 0  # tasks longer than the grace period
    feed_clients: int = 0
    slow_clients: int = 0
    browser_pages: int = 0  # headless Chromium pages, 2 feeds and 3 task streams each
    #: The handoff scenario (handoff_clients.py): tasks of these many 1 s
    #: steps, started through the load balancer before the rollout, and
    #: this many hub subscribers spread over them; the rollout begins
    #: `rollout_after` seconds after the tasks start.
    handoff_steps: tuple[int, ...] = ()
    handoff_subscribers: int = 0
    rollout_after: float = 0.0


async def _read_events(response: httpx.Response, delay: float = 0.0):
    async for sse in httpx_sse.EventSource(response).aiter_sse():
        yield sse
        if delay:
            await asyncio.sleep(delay)


def client_for(url: str, transport: httpx.AsyncHTTPTransport) -> httpx.AsyncClient:
    """A client with a cookie jar of its own over a shared transport
    (``client_loop.new_transport``). Never closed: that would close the
    shared transport; ``Clients`` closes it."""
    # Redirects followed, as EventSource does: the hub host's GET /api/events
    # answers one to the hub's subscription of its feed.
    return httpx.AsyncClient(
        base_url=url,
        timeout=httpx.Timeout(10, read=120),
        transport=transport,
        trust_env=False,
        follow_redirects=True,
    )


async def task_client(
    url: str,
    tally: Tally,
    stop: asyncio.Event,
    steps: int,
    step_seconds: float,
    transport: httpx.AsyncHTTPTransport,
    slow: bool = False,
) -> None:
    """Task after task until told to stop; each followed to its end. A
    reconnect hint is honoured once, as EventSource would, with Last-Event-ID."""
    while not stop.is_set():
        http = client_for(url, transport)
        response = None
        for _ in range(30):
            try:
                response = await http.post("/api/tasks", json={"steps": steps, "step_seconds": step_seconds})
            except httpx.HTTPError as error:
                tally.error(f"start {type(error).__name__}", str(error))
                response = None
                break
            if response.status_code != 503:
                break
            tally.starts_refused_then_retried += 1
            await asyncio.sleep(min(float(response.headers.get("Retry-After", "1")), 1.0))
        if response is None:
            await asyncio.sleep(0.2)
            continue
        if response.status_code != 202:
            tally.error(f"start HTTP {response.status_code}", response.text[:100])
            await asyncio.sleep(0.2)
            continue
        tally.tasks_started += 1
        outcome = await follow_task(http, response.json()["stream_url"], tally, stop, 0.6 if slow else 0.0)
        if slow:
            tally.slow_reader_outcomes[outcome] += 1


#: Reconnect hints a task stream honours at most. A pod-bound stream gets
#: none; on the hub host with its shared store every hub stream is handed
#: off at drain, and one may land on an old pod that drains later.
MAX_TASK_RECONNECTS = 8


async def follow_task(http: httpx.AsyncClient, stream_url: str, tally: Tally, stop: asyncio.Event, delay: float) -> str:
    last_id: str | None = None
    client = tally.streams.client()
    for attempt in range(MAX_TASK_RECONNECTS + 1):
        headers = {"Last-Event-ID": last_id} if last_id else {}
        told = False
        try:
            async with http.stream("GET", stream_url, headers=headers) as response:
                tally.streams_opened += 1
                with tally.streams.connection("task", client, response.headers.get("X-Pod")) as seen:
                    if response.status_code != 200:
                        seen.close(stream_log.REFUSED)
                        kind = (
                            "reconnect into a 404"
                            if attempt and response.status_code == 404
                            else f"stream HTTP {response.status_code}"
                        )
                        tally.error(kind, stream_url)
                        return kind
                    async for sse in _read_events(response, delay):
                        if stop.is_set():
                            seen.close(stream_log.END_OF_RUN)
                            return "dropped at the end of the run"  # on a surviving pod
                        if sse.id:
                            last_id = sse.id
                        if sse.event == "reconnect":
                            told = True
                            seen.hinted()
                            continue
                        if sse.event == "gap":
                            tally.gaps += 1
                            continue
                        if sse.event != "task_event":
                            continue
                        event = json.loads(sse.data)
                        if event.get("event_type") == "task_completed":
                            seen.close(stream_log.FINAL)
                            tally.completed += 1
                            return "completed"
                        if event.get("event_type") == "task_failed":
                            seen.close(stream_log.FINAL)
                            if event.get("data", {}).get("reason") == "shutdown":
                                tally.ended_honestly += 1
                                return "ended honestly"
                            tally.error("task_failed", sse.data[:100])
                            return "failed"
        except httpx.HTTPError as error:
            if not told:
                tally.cut += 1
                tally.error(f"stream {type(error).__name__}", str(error)[:100])
                return "cut"
        if not told:
            tally.cut += 1
            return "cut"
        tally.told_to_reconnect += 1
    tally.cut += 1
    return "cut"


async def feed_client(url: str, tally: Tally, stop: asyncio.Event, transport: httpx.AsyncHTTPTransport) -> None:
    """GET /api/events as EventSource does: after a reconnect hint (or an
    end) it reopens after ``retry:`` with its own Last-Event-ID."""
    last_id: str | None = None
    retry = 1.0
    http = client_for(url, transport)
    reopen = False
    client = tally.streams.client()
    while not stop.is_set():
        headers = {"Last-Event-ID": last_id} if last_id else {}
        told = False
        try:
            async with http.stream("GET", "/api/events", headers=headers) as response:
                tally.streams_opened += 1
                with tally.streams.connection("feed", client, response.headers.get("X-Pod")) as seen:
                    if reopen:
                        tally.reconnect_times.append(time.monotonic())
                        tally.reopened_on[response.headers.get("X-Pod", "?")] += 1
                    if response.status_code != 200:
                        seen.close(stream_log.REFUSED)
                        tally.error(f"feed HTTP {response.status_code}", response.headers.get("X-Pod", "?"))
                        await asyncio.sleep(retry)
                        continue
                    async for sse in _read_events(response):
                        if sse.id:
                            last_id = sse.id
                        if sse.retry:
                            retry = sse.retry / 1000
                        if sse.event == "reconnect":
                            told = True
                            seen.hinted()
                        if stop.is_set() and not told:
                            seen.close(stream_log.END_OF_RUN)
                            return  # on a surviving pod: dropped at the end of the run
        except httpx.HTTPError as error:
            if not told:
                tally.error(f"feed {type(error).__name__}", str(error)[:100])
        # Counted even once the run is stopping: the clients stop after every
        # old pod has exited, so a stream that ended was one of theirs.
        if told:
            tally.told_to_reconnect += 1
        else:
            tally.cut += 1
        if stop.is_set():
            return
        reopen = True
        await asyncio.sleep(retry)


class Clients(ClientLoop):
    """The scenario's clients on an event loop of their own (a thread).
    Stopped once every old pod has exited: the streams still open then are
    on the surviving pods, unaffected by the update, and are dropped
    uncounted."""

    def __init__(self, url: str, mix: ClientMix, grace_seconds: float) -> None:
        self.tally = Tally()
        self.mix = mix
        self.url = url
        self.grace = grace_seconds
        super().__init__()

    async def _run(self) -> None:
        mix, url, tally, stop = self.mix, self.url, self.tally, self.stop_event
        long_steps = int(self.grace * 1.5)  # 1 s steps, half as long again as the grace period
        shards = [
            new_transport()
            for _ in range(1 + (mix.task_clients + mix.long_clients + mix.feed_clients) // PER_TRANSPORT)
        ]
        # A small receive buffer and a reader slower than the stream.
        slow = new_transport(receive_buffer=4096)
        self.transports = [*shards, slow]
        counter = iter(range(1_000_000))

        def shared() -> httpx.AsyncHTTPTransport:
            return shards[next(counter) // PER_TRANSPORT]

        jobs = [task_client(url, tally, stop, mix.steps, mix.step_seconds, shared()) for _ in range(mix.task_clients)]
        jobs += [task_client(url, tally, stop, long_steps, 1.0, shared()) for _ in range(mix.long_clients)]
        jobs += [feed_client(url, tally, stop, shared()) for _ in range(mix.feed_clients)]
        jobs += [
            task_client(url, tally, stop, mix.steps, mix.step_seconds, slow, slow=True) for _ in range(mix.slow_clients)
        ]
        await asyncio.gather(*jobs)

    def _harness_error(self, error: Exception) -> None:
        self.tally.error("harness", f"{type(error).__name__}: {error}")


# --- the scenarios -----------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    mix: Callable[[str, kubelet.PodSpec], ClientMix]
    env: dict[str, str] = field(default_factory=dict)  # the scenario's overrides
    #: Exit codes this scenario expects with the runtime.
    expected_exit: int = 0
    #: The hung hook: the runtime must say so (the hook left running, or
    #: the watchdog's exit with status 70).
    hung_hook: bool = False
    #: How this version differs from the full scenario, for the report.
    note: str = ""
    #: The hosts it runs on (empty: every host).
    hosts: tuple[str, ...] = ()
    #: Whether it runs beside its baseline.
    baseline: bool = True
    #: Its own number of replicas (over the manifest's and --replicas).
    replicas: int | None = None
    #: Its own number of rounds (over --rounds): the handoff scenario's
    #: tasks run on the first pods only.
    rounds: int | None = None


def _handoff_mix(spec: kubelet.PodSpec, subscribers: int, browser_pages: int = 0) -> ClientMix:
    """16 tasks of 1 s steps, started 12 s before the rollout. Three in four
    last 26 to 38 s: beyond the drain delay and the hand-off's window
    (nudges from 5 to 10 s after SIGTERM, on the manifest's clock) on the
    old pod that runs them, and ending before the streams' last moment
    (21 s) or at it, depending on when their pod's SIGTERM comes; the
    fourth lasts twice the grace period and ends with task_failed
    (shutdown) at the streams' last moment."""
    beyond = int(2 * spec.grace_seconds)
    steps = tuple((26, 30, 34, beyond)[n % 4] + 4 * (n // 4 % 2) * (n % 4 != 3) for n in range(16))
    return ClientMix(
        handoff_steps=steps,
        handoff_subscribers=subscribers,
        rollout_after=12.0,
        browser_pages=browser_pages,
        steps=20,
        step_seconds=1.0,
    )


def _short_handoff_mix(spec: kubelet.PodSpec) -> ClientMix:
    """make test's clock (SHORT_ENV: nudges from 1 to 2.5 s after SIGTERM,
    the streams' last moment at 4.6 s): 8 tasks of 6 to 10 s and 2x the
    grace period, started 3 s before the rollout; 200 subscribers."""
    beyond = int(2 * spec.grace_seconds)
    return ClientMix(handoff_steps=(6, 8, 10, beyond) * 2, handoff_subscribers=200, rollout_after=3.0)


def _threads(spec: kubelet.PodSpec) -> int:
    return int(spec.env.get("THREADS", "16"))


def _saturating(host: str, spec: kubelet.PodSpec, many: int) -> int:
    """As many streams as the pods' threads on a host with a thread per
    stream; `many` on the others."""
    return _threads(spec) * spec.replicas if host in hosts.THREAD_PER_STREAM else many


def _feeds(host: str, spec: kubelet.PodSpec, threaded: int, other: int) -> int:
    """Feed clients beside 4 task clients: on a host with a thread per
    stream, at most what the pods' threads hold with 4 left for the tasks."""
    if host in hosts.THREAD_PER_STREAM:
        return min(threaded, _threads(spec) * spec.replicas - 4)
    return other


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "sunny",
            "8 task clients, 3 s tasks; browsers",
            lambda host, spec: ClientMix(task_clients=8, browser_pages=2),
        ),
        Scenario(
            "saturated",
            "resumable streams: as many as THREADS per pod on Waitress and gunicorn; 2,000 on Rust and uvicorn",
            lambda host, spec: ClientMix(feed_clients=_saturating(host, spec, 2000)),
        ),
        Scenario(
            "long-tasks",
            "a third of the task clients' tasks last 1.5x the grace period",
            lambda host, spec: ClientMix(task_clients=8, long_clients=4, browser_pages=1),
        ),
        Scenario(
            "resumable-feed",
            "clients on GET /api/events, beside task clients",
            lambda host, spec: ClientMix(task_clients=4, feed_clients=_feeds(host, spec, 40, 400), browser_pages=2),
        ),
        Scenario(
            "slow-readers",
            "4 KiB receive buffers, 0.6 s per event, beside normal clients",
            lambda host, spec: ClientMix(task_clients=4, slow_clients=8),
        ),
        Scenario(
            "hung-hook",
            "a shutdown hook that never returns (test-only switch)",
            lambda host, spec: ClientMix(task_clients=8),
            env={"SSE_TEST_HANG_SHUTDOWN_HOOK": "1"},
            hung_hook=True,
        ),
        Scenario(
            "handoff",
            "hub host, 3 replicas: 16 long tasks (26-38 s, a quarter 2x the grace period), 2,000 hub "
            "subscribers through the load balancer, handed off at drain and resumed from Redis; browsers",
            lambda host, spec: _handoff_mix(spec, subscribers=2000, browser_pages=2),
            hosts=hosts.HUB_HOSTS,
            # Without the runtime there is no hand-off to compare with: the
            # pods die at SIGTERM under their tasks (the other scenarios'
            # baselines show that damage already).
            baseline=False,
            replicas=3,
            rounds=1,
        ),
    )
}
SHORT = ("sunny", "saturated")
#: make test's handoff, on the hub host alone (tests/rolling).
SHORT_HANDOFF = "handoff"
#: make test's versions of them: 1,000 streams instead of 2,000 on the
#: hosts without a thread per stream (a pair of runs then fits the client
#: budget at once, within make test's time).
SHORT_SCENARIOS: dict[str, Scenario] = {
    "sunny": SCENARIOS["sunny"],
    "saturated": replace(
        SCENARIOS["saturated"],
        mix=lambda host, spec: ClientMix(feed_clients=_saturating(host, spec, 1000)),
        note="short run: 1,000 streams instead of 2,000 on the Rust, uvicorn and hub hosts",
    ),
    "handoff": replace(
        SCENARIOS["handoff"],
        what="hub host: 8 tasks, 200 hub subscribers through the load balancer, handed off at drain",
        mix=lambda host, spec: _short_handoff_mix(spec),
        replicas=None,
        note="short run: 2 replicas, 8 tasks of 6 to 16 s, 200 subscribers, no browsers",
    ),
}
#: make test's budget: one short saturated pair at once.
SHORT_CLIENT_BUDGET = 2000
#: make test's short run keeps the manifest's proportions on a shorter clock
#: (reported as overrides): the baselines' SIGKILL comes at 9 s, not 30 s.
#: The short tasks (3 s) still fit between SIGTERM and the close notice.
#: The exit watchdog has 2 s (a Python pod's own exit after Stopped took
#: more than 1 s on a loaded machine: status 70); 6 + 1 + 2 fit the grace.
SHORT_GRACE_SECONDS = 9.0
SHORT_ENV = {
    "GS_DRAIN_DELAY_SECONDS": "1",
    "GS_SHUTDOWN_TIMEOUT_SECONDS": "6",
    "GS_CLOSE_NOTICE_SECONDS": "1.5",
    "GS_HOOK_BUDGET_SECONDS": "1",
    "GS_EXIT_WATCHDOG_SECONDS": "2",
}


def short_spec(spec: kubelet.PodSpec) -> kubelet.PodSpec:
    """The manifest's pod on make test's clock, two replicas (two cores)."""
    return spec.override(replicas=2, grace_seconds=SHORT_GRACE_SECONDS, env=SHORT_ENV)


@dataclass
class Pod:
    slot: int
    container: kubelet.Container
    record: rolling_timeline.PodRecord


def run(
    host: str,
    scenario: Scenario,
    rounds: int,
    baseline: bool,
    spec: kubelet.PodSpec,
    profile: str = "release",
    browsers: bool = False,
) -> dict:
    """One scenario on one host, with the runtime or as the baseline."""
    rounds = scenario.rounds or rounds
    if shutil.which("haproxy") is None:
        raise RuntimeError("haproxy is not installed (make setup installs it)")
    command, cwd = hosts.command(host, profile=profile)
    if hosts.MANIFEST_OVERRIDES[host]:
        spec = spec.override(label=host, env=hosts.MANIFEST_OVERRIDES[host])
    if scenario.env:
        spec = spec.override(env=scenario.env)
    if scenario.replicas is not None and scenario.replicas != spec.replicas:
        spec = spec.override(label=scenario.name, replicas=scenario.replicas)
    extra = {"LAST_CALL_DISABLED": "1"} if baseline else {}
    mix = scenario.mix(host, spec)
    if browsers and mix.browser_pages and not browser_clients.available():
        raise RuntimeError("browser clients need chromium, chromedriver and selenium (make setup python)")
    hub = host in hosts.HUB_HOSTS
    # The hub host's shared store, as the manifest's pods share Redis: a
    # redis-server of this run's own (killed in the `finally` below, or
    # here if HAProxy does not start), with the settings docs/hub.md says
    # the hub needs (an eviction would drop a history silently).
    store = RedisProcess(extra=["--maxmemory", "256mb", "--maxmemory-policy", "noeviction"]) if hub else None
    workdir = Path(tempfile.mkdtemp(prefix="last-call-rolling-"))
    try:
        proxy = HAProxy(workdir, spec.readiness, hub=hub)
    except BaseException:
        if store is not None:
            store.close()
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    if store is not None:
        extra["GS_STREAM_STORE"] = store.url
        # Stream URLs through the load balancer, as the manifest's
        # (streams.example.com): HAProxy's streams frontend, every pod's hub.
        extra["PUBLIC_STREAM_BASE_URL"] = proxy.streams_url or ""
    if "GS_STREAM_CORS_ORIGINS" in spec.env:
        # The browser page is served on the load balancer's origin; the hub,
        # behind the load balancer's streams frontend (another port), is
        # another origin that must allow it, as the manifest's does.
        extra["GS_STREAM_CORS_ORIGINS"] = proxy.url
    free = list(range(1, SLOTS + 1))
    free_lock = threading.Lock()
    terminating: list[threading.Thread] = []
    endings: list[kubelet.Termination] = []
    pods: list[Pod] = []
    everything: list[kubelet.Container] = []
    probes_note: list[str] = []
    clients: Clients | None = None
    handoff: handoff_clients.HandoffClients | None = None
    handoff_report: dict | None = None
    exits: list[dict] = []
    pages: browser_clients.Browsers | None = None
    seen_by_browsers: browser_clients.BrowserReport | None = None
    sigterm_times: list[float] = []
    # The report page's time series (rolling_timeline.py): every pod's
    # life, read from its probe listener while it lives (not the baseline's:
    # it has none), beside the clients' record of each stream.
    records: list[rolling_timeline.PodRecord] = []
    probes = None if baseline or spec.readiness is None else spec.readiness.port
    sampler = rolling_timeline.PodSampler(records, probes)
    wall_offset = time.time() - time.monotonic()

    def check_port(container: kubelet.Container) -> int:
        port = spec.readiness.port if spec.readiness else "http"
        try:
            return container.port(port)
        except kubelet.ManifestError:
            # The baseline has no probe listener: its probes go to the app.
            if not probes_note:
                probes_note.append("probes on the http port (no probe listener without the runtime)")
            return container.process.port

    def start_pod() -> Pod:
        with free_lock:
            slot = free.pop(0)

        def restarted(container: kubelet.Container) -> None:
            proxy.repoint(slot, container.process.port, check_port(container), hub_port(container))

        created = time.monotonic()
        container = kubelet.Container(spec, command, cwd=cwd, extra_env=extra, on_restart=restarted)
        everything.append(container)
        with free_lock:
            uses = sum(1 for r in records if r.slot == f"slot{slot}")
            record = rolling_timeline.PodRecord(
                name=f"slot{slot}" + (f" ({uses + 1})" if uses else ""),
                slot=f"slot{slot}",
                container=container,
                created=created,
            )
            records.append(record)
        proxy.enable(slot, container.process.port, check_port(container), hub_port(container))
        record.ready = time.monotonic()
        return Pod(slot, container, record)

    def hub_port(container: kubelet.Container) -> int | None:
        return container.port("streams") if hub else None

    def delete_pod(pod: Pod) -> None:
        # The endpoints update reaches the balancer after the lag, while the
        # kubelet already runs preStop / SIGTERM.
        timer = threading.Timer(ENDPOINT_LAG_SECONDS, proxy.drain, args=(pod.slot,))
        timer.start()
        pod.record.terminating = True
        sigterm_times.append(time.monotonic())
        sigterm_wall = time.time()  # against the store's clock (its ids' ms)
        ending = pod.container.terminate()
        pod.record.termination = ending
        endings.append(ending)
        exits.append(
            {
                "pod": f"slot{pod.slot}",
                "sigterm_wall": sigterm_wall,
                "seconds_to_exit": ending.seconds_to_exit,
                "exit": ending.exit_code if ending.killed_by is None else ending.killed_by,
            }
        )
        timer.cancel()
        proxy.disable(pod.slot)
        with free_lock:
            pod.record.freed = time.monotonic()
            free.append(pod.slot)

    started = time.monotonic()
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=spec.replicas) as starting:
            pods = list(starting.map(lambda _: start_pod(), range(spec.replicas)))
        clients = Clients(proxy.url, mix, spec.grace_seconds)
        if mix.handoff_steps:
            handoff = handoff_clients.HandoffClients(proxy.url, list(mix.handoff_steps), mix.handoff_subscribers)
        if browsers and mix.browser_pages:
            pages = browser_clients.Browsers(
                proxy.url, mix.browser_pages, steps=mix.steps, step_seconds=mix.step_seconds
            )
        # Streams under way on every pod (thousands take a few seconds).
        time.sleep(1.0)
        wanted = mix.feed_clients + mix.task_clients // 2 + mix.handoff_subscribers

        def opened() -> int:
            return clients.tally.streams_opened + (handoff.opened() if handoff else 0)

        deadline = time.monotonic() + 60
        while opened() < wanted and time.monotonic() < deadline:
            time.sleep(0.1)
        opened_before_rollout = opened()
        warm_up_seconds = time.monotonic() - started
        if handoff is not None:
            # The tasks' lengths are counted from their start: the rollout
            # begins at a set moment of them.
            time.sleep(max(0.0, handoff.started_at + mix.rollout_after - time.monotonic()))
        for _ in range(rounds):
            old, new = list(pods), []
            while old:
                while len(new) + len(old) < spec.replicas + spec.max_surge and len(new) < spec.replicas:
                    new.append(start_pod())
                while old and len(new) + len(old) - 1 >= spec.replicas - spec.max_unavailable:
                    worker = threading.Thread(target=delete_pod, args=(old.pop(0),), daemon=True)
                    worker.start()
                    terminating.append(worker)
            pods = new
        for worker in terminating:
            worker.join(timeout=spec.grace_seconds + 30)
        time.sleep(2.0)  # the clients see the last pod's connections end
        if handoff is not None:
            # Every task ran on an old pod, all gone now: each subscriber has
            # its final event, or is still resuming it from the store.
            deadline = time.monotonic() + 15
            while handoff.finished() < handoff.opened() and time.monotonic() < deadline:
                time.sleep(0.1)
        if pages is not None:
            seen_by_browsers = pages.stop()
        clients_stopped = time.monotonic()
        clients.stop(timeout=5)
        ended = time.monotonic()
        sampler.stop()
        if handoff is not None:
            handoff.stop(timeout=5)
            ended = time.monotonic()
            assert store is not None
            record = StoreRecord(store.port)
            try:
                handoff_report = handoff_clients.report(handoff, record, {e["pod"]: e["sigterm_wall"] for e in exits})
                handoff_report["redis"] = {
                    key: record.info(section).get(key)
                    for section, key in (("memory", "used_memory_peak_human"), ("stats", "total_commands_processed"))
                }
            finally:
                record.close()
        retried = proxy.retries()
    finally:
        sampler.stop()
        if clients is not None and clients.thread.is_alive():
            clients.stop(timeout=10)
        if handoff is not None and handoff.thread.is_alive():
            handoff.stop(timeout=10)
        if pages is not None:
            pages.close()
        for container in everything:
            container.close()
        proxy.close()
        if store is not None:
            store.close()
        shutil.rmtree(workdir, ignore_errors=True)

    tally = clients.tally
    sigkills = [e for e in endings if e.killed_by == "SIGKILL (grace period)"]
    timeline = rolling_timeline.build(
        records,
        [tally.streams] + ([handoff.streams] if handoff is not None else []),
        begun=started,
        ended=ended,
        clients_stopped=clients_stopped,
        wall_offset=wall_offset,
        env={**spec.env, **extra},
        hub=hub,
    )
    peak, spread = reconnect_peak(tally.reconnect_times, sigterm_times)
    return {
        "host": host,
        "scenario": scenario.name,
        "runtime": "baseline" if baseline else "last-call",
        "rounds": rounds,
        "clients": mix.__dict__,
        "overrides": list(spec.overrides)
        + probes_note
        + [f"endpoint removal lag: {ENDPOINT_LAG_SECONDS} s"]
        + (["GS_STREAM_CORS_ORIGINS: the load balancer's origin"] if "GS_STREAM_CORS_ORIGINS" in extra else [])
        + (
            [
                (
                    f"{host}: GS_STREAM_STORE: the harness's redis-server (no persistence); "
                    "PUBLIC_STREAM_BASE_URL: the load balancer's streams frontend (every pod's hub port)"
                )
            ]
            if store is not None
            else []
        )
        + ([scenario.note] if scenario.note else []),
        "streams_before_rollout": f"{opened_before_rollout} of {wanted}",
        "gaps": tally.gaps,
        "handoff": handoff_report,
        "exits": exits,
        "warm_up_seconds": round(warm_up_seconds, 1),
        "tasks_started": tally.tasks_started,
        "completed": tally.completed,
        "ended_honestly": tally.ended_honestly,
        "told_to_reconnect": tally.told_to_reconnect,
        "cut": tally.cut,
        "starts_refused_then_retried": tally.starts_refused_then_retried,
        "retried_by_haproxy": retried,
        "errors": dict(tally.errors),
        "error_samples": tally.error_samples,
        "slow_readers": dict(tally.slow_reader_outcomes),
        "reopened_on": dict(tally.reopened_on),
        "liveness_restarts": sum(c.restarts for c in everything),
        "oom_kills": sum(c.oom_kills for c in everything),
        "sigkills": len(sigkills),
        "exit_codes": [e.exit_code if e.killed_by is None else e.killed_by for e in endings],
        "watchdog_lines": sum(e.watchdog_line for e in endings),
        "hooks_left_running": sum(e.hook_left_running for e in endings),
        "hung_hook": scenario.hung_hook,
        "max_seconds_to_exit": max((e.seconds_to_exit for e in endings), default=0.0),
        "grace_seconds": spec.grace_seconds,
        "reconnect_peak_per_second": peak,
        "reconnect_spread_seconds": spread,
        "expected_exit": scenario.expected_exit,
        "browsers": None
        if seen_by_browsers is None
        else {**seen_by_browsers.__dict__, "task_finals": dict(seen_by_browsers.task_finals)},
        "output_tails": [
            e.output_tail
            for e in endings
            if e.exit_code != scenario.expected_exit or e.watchdog_line or e.hook_left_running
        ][:2],
        "timeline": timeline,
    }


def run_pair(
    host: str,
    scenario: Scenario,
    rounds: int,
    spec: kubelet.PodSpec,
    profile: str = "release",
    browsers: bool = False,
    baseline: bool = True,
    budget: _ClientBudget | None = None,
) -> list[dict]:
    """The scenario with the runtime and, at the same time, its baseline:
    two independent runs (HAProxy, pods and clients of their own) that
    spend most of their time waiting on the pods' clocks; one after the
    other when their clients do not fit in the budget together."""
    budget = budget or _ClientBudget(CLIENT_BUDGET)
    mix = scenario.mix(host, spec)
    weight = mix.task_clients + mix.long_clients + mix.feed_clients + mix.slow_clients + mix.handoff_subscribers

    def one(disabled: bool) -> dict:
        with budget.hold(weight):
            return run(host, scenario, rounds, disabled, spec, profile, browsers)

    baseline = baseline and scenario.baseline
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        runs = [pool.submit(one, disabled) for disabled in ((False, True) if baseline else (False,))]
        return [future.result() for future in runs]


def run_scenario(
    scenario: Scenario,
    chosen: list[str],
    rounds: int,
    spec: kubelet.PodSpec,
    profile: str = "release",
    browsers: bool = False,
    jobs: int = 2,
    client_budget: int = 0,
) -> list[dict]:
    """The scenario on each chosen host beside its baseline, up to `jobs`
    hosts at once while their clients fit in ``CLIENT_BUDGET`` (a heavier
    one runs alone); the reports in host order, each baseline after its
    host."""
    budget = _ClientBudget(client_budget or CLIENT_BUDGET)
    chosen = runs_on(scenario, chosen)

    def pair(host: str) -> list[dict]:
        return run_pair(host, scenario, rounds, spec, profile, browsers, budget=budget)

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        runs = [pool.submit(pair, host) for host in chosen]
        return [report for future in runs for report in future.result()]


def runs_on(scenario: Scenario, chosen: list[str]) -> list[str]:
    """The chosen hosts the scenario runs on (the handoff scenario: the hub
    host only)."""
    return [host for host in chosen if not scenario.hosts or host in scenario.hosts]


#: The most client streams the harness runs at once (all of them in this
#: process, on one core's worth of Python): above it, runs wait their turn.
CLIENT_BUDGET = 1000


class _ClientBudget:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_use = 0
        self.changed = threading.Condition()

    @contextlib.contextmanager
    def hold(self, weight: int):
        with self.changed:
            self.changed.wait_for(lambda: self.in_use == 0 or self.in_use + weight <= self.capacity)
            self.in_use += weight
        try:
            yield
        finally:
            with self.changed:
                self.in_use -= weight
                self.changed.notify_all()


def reconnect_peak(times: list[float], sigterms: list[float]) -> tuple[int, float]:
    """The most reopenings in any one second, and the widest time span of
    the reopenings after one SIGTERM (before the next)."""
    if not times:
        return 0, 0.0
    times = sorted(times)
    peak, low = 0, 0
    for high, moment in enumerate(times):
        while moment - times[low] >= 1.0:
            low += 1
        peak = max(peak, high - low + 1)
    spread = 0.0
    marks = [*sorted(sigterms), float("inf")]
    for begin, end in zip(marks, marks[1:]):
        window = [t for t in times if begin <= t < end]
        if window:
            spread = max(spread, window[-1] - window[0])
    return peak, round(spread, 2)


# --- the report --------------------------------------------------------------

ROWS = [
    ("streams open before the rollout / wanted", lambda r: r["streams_before_rollout"]),
    ("streams completed", lambda r: r["completed"]),
    ("ended honestly (pod-bound ending)", lambda r: r["ended_honestly"]),
    ("told to reconnect", lambda r: r["told_to_reconnect"]),
    ("**cut**", lambda r: r["cut"]),
    ("`gap` events", lambda r: r["gaps"]),
    ("browser error events / retry loops", lambda r: browser_row(r, "errors")),
    ("browser task streams: endings / error before the end", lambda r: browser_row(r, "tasks")),
    ("browser task streams: exactly once / reconnected / `gap` events", lambda r: browser_row(r, "exact")),
    ("browser feeds: reopened / continued", lambda r: browser_row(r, "feeds")),
    ("client-visible errors", lambda r: ", ".join(f"{k}: {v}" for k, v in sorted(r["errors"].items())) or "0"),
    (
        "task starts refused then retried (client / HAProxy)",
        lambda r: f"{r['starts_refused_then_retried']} / {r['retried_by_haproxy']}",
    ),
    ("liveness restarts", lambda r: r["liveness_restarts"]),
    ("OOM kills", lambda r: r["oom_kills"]),
    ("SIGKILLs", lambda r: r["sigkills"]),
    ("exit codes", lambda r: " ".join(str(c) for c in r["exit_codes"])),
    ("hung hook left running / watchdog exits", lambda r: f"{r['hooks_left_running']} / {r['watchdog_lines']}"),
    ("SIGTERM -> exit, slowest / grace (s)", lambda r: f"{r['max_seconds_to_exit']} / {r['grace_seconds']:g}"),
    (
        "reconnect peak (/s) / spread (s)",
        lambda r: f"{r['reconnect_peak_per_second']} / {r['reconnect_spread_seconds']}",
    ),
    ("slow readers", lambda r: ", ".join(f"{k}: {v}" for k, v in sorted(r["slow_readers"].items())) or "-"),
]


def browser_row(report: dict, which: str) -> str:
    seen = report.get("browsers")
    if not seen:
        return "-"
    if which == "errors":
        return f"{seen['error_events']} / {seen['retry_loops']}"
    if which == "tasks":
        endings = ", ".join(f"{k}: {v}" for k, v in sorted(seen["task_finals"].items())) or "none"
        return f"{endings} / {seen['task_error_before_final']}"
    if which == "exact":
        return (
            f"{seen['task_exactly_once']} of {sum(seen['task_finals'].values())} / {seen['task_reconnected']}"
            f" / {seen.get('task_gaps', 0)}"
        )
    return f"{seen['feed_reopened']} / {seen['feed_continued']}"


def _total(report: dict, key: str) -> int:
    return int(report["handoff"]["totals"].get(key, 0))


#: The handoff scenario's rows (handoff_clients.report).
HANDOFF_ROWS = [
    ("subscribers open before the rollout / wanted", lambda r: r["streams_before_rollout"]),
    (
        "tasks: ended task_completed / task_failed (shutdown), as the store closed them",
        lambda r: f"{_total(r, 'ending: task_completed')} / {_total(r, 'ending: task_failed (shutdown)')}",
    ),
    (
        "**subscribers that saw every event exactly once** (against the store)",
        lambda r: f"{_total(r, 'exactly_once')} of {_total(r, 'subscribers')}",
    ),
    (
        "**subscribers that saw their task's true ending**",
        lambda r: f"{_total(r, 'with_true_ending')} of {_total(r, 'subscribers')}",
    ),
    ("duplicates / holes", lambda r: f"{_total(r, 'duplicates')} / {_total(r, 'holes')}"),
    ("**`gap` events**", lambda r: _total(r, "gaps")),
    (
        "subscribers handed off / reconnect hints honoured",
        lambda r: f"{_total(r, 'handed_off')} / {_total(r, 'reconnects')}",
    ),
    ("**cut** (ended with no hint and no final event)", lambda r: _total(r, "cuts")),
    ("(re)connections that failed before a response", lambda r: _total(r, "failed_connects")),
    ("subscriber errors", lambda r: _total(r, "subscriber errors")),
    ("browser error events / retry loops", lambda r: browser_row(r, "errors")),
    ("browser task streams: endings / error before the end", lambda r: browser_row(r, "tasks")),
    ("browser task streams: exactly once / reconnected / `gap` events", lambda r: browser_row(r, "exact")),
    ("liveness restarts / OOM kills / SIGKILLs", lambda r: f"{r['liveness_restarts']} / {r['oom_kills']} / {r['sigkills']}"),
    (
        "old pods: SIGTERM -> exit (s), exit status",
        lambda r: ", ".join(f"{e['pod']} {e['seconds_to_exit']:.1f} s ({e['exit']})" for e in r["exits"]),
    ),
    ("grace period (s)", lambda r: f"{r['grace_seconds']:g}"),
    (
        "Redis: commands / peak memory",
        lambda r: f"{r['handoff']['redis']['total_commands_processed']} / {r['handoff']['redis']['used_memory_peak_human']}",
    ),
]


def task_table(report: dict) -> str:
    """The handoff scenario's per-task table."""
    lines = [
        "| task | pod | steps | true ending | ended, s after its pod's SIGTERM | exactly once | true ending seen "
        "| handed off | reconnects | events after the hand-off, fewest | gaps | cut |",
        "|---" * 12 + "|",
    ]
    for t in report["handoff"]["tasks"]:
        if "start_error" in t:
            lines.append(f"| {t['task']} | - | {t['steps']} | not started: {t['start_error']} |" + " - |" * 8)
            continue
        after = "-" if t["ended_after_sigterm"] is None else f"{t['ended_after_sigterm']:.1f}"
        lines.append(
            f"| {t['task']} | {t['started_on']} | {t['steps']} | {t['true_ending']} | {after} | "
            f"{t['exactly_once']}/{t['subscribers']} | {t['with_true_ending']}/{t['subscribers']} | "
            f"{t['handed_off']} | {t['reconnects']} | {t['fewest_events_after_handoff']} | {t['gaps']} | {t['cuts']} |"
        )
    return "\n".join(lines)


def table(reports: list[dict]) -> str:
    header = "| | " + " | ".join(f"{r['host']}, {r['runtime']}" for r in reports) + " |"
    lines = [header, "|---" * (len(reports) + 1) + "|"]
    handoff = [r for r in reports if r.get("handoff")]
    for name, value in HANDOFF_ROWS if handoff else ROWS:
        lines.append(f"| {name} | " + " | ".join(str(value(r)) for r in reports) + " |")
    notes = sorted({note for r in reports for note in r["overrides"]})
    text = "\n".join(lines) + ("\n\nOverrides: " + "; ".join(notes) if notes else "")
    for report in handoff:
        text += f"\n\nPer task ({report['host']}: the pod that ran it, its subscribers):\n\n" + task_table(report)
    return text


def shows_damage(report: dict) -> bool:
    """A baseline's damage: streams cut, or pods that ran to SIGKILL."""
    return bool(report["cut"] or report["sigkills"] or report["errors"])


def markdown(reports: list[dict]) -> str:
    """One table per scenario, in the order run, as BENCHMARKS.md has them."""
    names = list(dict.fromkeys(r["scenario"] for r in reports))
    return "\n".join(
        f"### {name}: {SCENARIOS[name].what}\n\n{table([r for r in reports if r['scenario'] == name])}\n"
        for name in names
    )


def failures(report: dict) -> list[str]:
    """Why a report with the runtime fails (empty: it passes). A baseline
    never fails: it shows what happens without the runtime, damage or not
    (plain gunicorn and uvicorn finish short requests by themselves)."""
    if report["runtime"] != "last-call":
        return []
    found = []
    for key in ("cut", "gaps", "liveness_restarts", "oom_kills", "sigkills"):
        if report[key]:
            found.append(f"{key}: {report[key]}")
    if report.get("handoff"):
        found += handoff_clients.failures(report["handoff"])
    if report["errors"]:
        found.append(f"client-visible errors: {report['errors']} {report['error_samples'][:3]}")
    seen = report.get("browsers")
    if seen and (seen["retry_loops"] or seen["task_error_before_final"]):
        found.append(
            f"browsers: {seen['retry_loops']} retry loops, {seen['task_error_before_final']} task streams "
            f"with an error before their end {seen['samples']}"
        )
    if seen and seen.get("task_gaps"):
        found.append(f"browsers: {seen['task_gaps']} gap events on task streams")
    if seen and seen["task_exactly_once"] != sum(seen["task_finals"].values()):
        found.append(f"browsers: task streams that did not see every step once {seen['samples']}")
    allowed = (report["expected_exit"], 70) if report["hung_hook"] else (report["expected_exit"],)
    wrong = [c for c in report["exit_codes"] if c not in allowed]
    if wrong:
        found.append(f"exit codes {wrong} (expected {allowed}); output: {report['output_tails'][:1]}")
    if not report["hung_hook"] and (report["watchdog_lines"] or report["hooks_left_running"]):
        found.append(
            f"{report['watchdog_lines']} exit watchdog lines, {report['hooks_left_running']} hooks left running "
            f"with no hung hook: {report['output_tails'][:1]}"
        )
    said = report["watchdog_lines"] + report["hooks_left_running"]
    if report["hung_hook"] and said < len(report["exit_codes"]):
        found.append("a hung hook the runtime said nothing about (no 'left running', no watchdog line)")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", choices=hosts.NAMES, action="append", help="repeatable; default: every host")
    parser.add_argument("--scenario", choices=list(SCENARIOS), action="append", help="repeatable; default: all")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--short", action="store_true", help="make test's run: one round, sunny and saturated, a short handoff"
    )
    parser.add_argument("--replicas", type=int, help="override the manifest's replicas (reported)")
    parser.add_argument("--profile", default="release")
    parser.add_argument("--no-browsers", action="store_true", help="no headless Chromium clients")
    parser.add_argument("--json", type=Path, help="also write the reports here")
    parser.add_argument("--markdown", type=Path, help="also write the tables here (BENCHMARKS.md's)")
    parser.add_argument(
        "--html", type=Path, help="the report page (rolling_report.py); default: beside --markdown, as .html"
    )
    parser.add_argument(
        "--jobs", type=int, default=2, help="hosts run at once, each with its baseline beside it (default 2)"
    )
    args = parser.parse_args()
    spec = kubelet.load()
    if args.short:
        spec = short_spec(spec)
    if args.replicas is not None:
        spec = spec.override(replicas=args.replicas)
    names = args.scenario or ([*SHORT, SHORT_HANDOFF] if args.short else list(SCENARIOS))
    rounds = 1 if args.short else args.rounds
    reports: list[dict] = []
    ok = True
    for name in names:
        scenario = SHORT_SCENARIOS[name] if args.short else SCENARIOS[name]
        chosen = runs_on(scenario, args.host or list(hosts.NAMES))
        if not chosen:
            print(f"rolling: {name} runs on {', '.join(scenario.hosts)} only: skipped", flush=True)
            continue
        began = time.monotonic()
        print(
            f"rolling: {name}, {', '.join(chosen)}, "
            + ("each beside its baseline, " if scenario.baseline else "")
            + f"{scenario.rounds or rounds} round(s)...",
            flush=True,
        )
        browsers = not args.no_browsers and not args.short
        budget = SHORT_CLIENT_BUDGET if args.short else CLIENT_BUDGET
        pair = run_scenario(scenario, chosen, rounds, spec, args.profile, browsers, args.jobs, budget)
        print(f"\n### {name}: {scenario.what}\n\n{table(pair)}\n", flush=True)
        print(f"({name}: {time.monotonic() - began:.0f} s)", flush=True)
        for report in pair:
            if report["runtime"] == "baseline" and not shows_damage(report):
                print(f"note: {name}, {report['host']}: the baseline shows no damage in this scenario", flush=True)
            for reason in failures(report):
                ok = False
                print(f"FAILED: {name}, {report['host']}, {report['runtime']}: {reason}", flush=True)
        reports += pair
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2, default=str))
    if args.markdown:
        args.markdown.write_text(markdown(reports))
    page = args.html or (args.markdown.with_suffix(".html") if args.markdown else None)
    if page is not None and reports:
        described = SHORT_SCENARIOS if args.short else SCENARIOS
        page = rolling_report.write(reports, page, failures, {name: described[name].what for name in names})
    print(
        "verdict: "
        + (
            "proven: no cut stream, no unexplained error, no restart, OOM kill or SIGKILL with the runtime"
            if ok
            else "NOT proven"
        )
    )
    if page is not None and reports:
        print(f"report page: {page}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
