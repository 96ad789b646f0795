"""The rolling-update harness: prove that a rolling update cuts zero streams
and fails zero requests, behind a real load balancer, against a baseline.

For a host kind (the Flask/Waitress or the Rust example server) it:

* starts HAProxy on 127.0.0.1 in front of two backends, with active health
  checks on /readyz every 250 ms (the part an ingress plays), L7 retries of
  refused task starts (503) on another backend, and cookie stickiness so a
  task's SSE stream reaches the backend that runs it, even while that
  backend drains (``option persist``);
* runs clients continuously through HAProxy: each starts a task, follows its
  SSE stream to ``task_completed``, and starts the next; a 503 with
  Retry-After is retried after that delay, a ``reconnect`` event is honoured
  as EventSource does (the stream is not counted as cut);
* rolls the backends the way a Deployment with ``maxSurge: 1,
  maxUnavailable: 0`` does: start a new backend, wait until HAProxy sees it
  ready, SIGTERM an old one, wait for it to exit (SIGKILL at the grace
  period, as the kubelet would), repeat; a round replaces every backend;
* counts streams completed, streams cut (ended without ``task_completed``,
  ``task_failed`` or ``reconnect``), task starts refused then retried,
  client-visible HTTP errors, the old backends' exit codes and their time
  from SIGTERM to exit;
* runs the same rounds with the runtime disabled in the backends
  (``LAST_CALL_DISABLED=1``: default SIGTERM behaviour).

    python tools/rolling.py --host flask --rounds 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Dict, List, Optional

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hosts  # noqa: E402
from contract_client import follow_stream, start_task  # noqa: E402
from server_process import ServerProcess  # noqa: E402

SLOTS = 6
#: The backends' shutdown timings and the pod's grace period (SIGKILL).
BACKEND_ENV = {
    "GS_DRAIN_DELAY_SECONDS": "1",
    "GS_SHUTDOWN_TIMEOUT_SECONDS": "10",
    "GS_CLOSE_NOTICE_SECONDS": "3",
    "GS_EXIT_WATCHDOG_SECONDS": "1",
    "SSE_HEARTBEAT_SECONDS": "1",
    "THREADS": "24",
}
GRACE_PERIOD_SECONDS = 12.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class HAProxy:
    """HAProxy in the foreground with our config, driven through its admin
    socket (the runtime API) to add and remove backends."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.socket_path = workdir / "admin.sock"
        config = workdir / "haproxy.cfg"
        servers = "\n".join(
            f"    server slot{n} 127.0.0.1:1 cookie slot{n} check disabled" for n in range(1, SLOTS + 1)
        )
        config.write_text(
            f"""global
    stats socket {self.socket_path} mode 600 level admin
    maxconn 4096

defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout http-request 10s
    # A refused task start (503 while draining) or a backend that is gone is
    # retried on another backend; the POST body is buffered to allow it.
    option http-buffer-request
    retries 3
    retry-on conn-failure empty-response 503
    option redispatch 1

frontend clients
    bind 127.0.0.1:{self.port}
    default_backend example_servers

backend example_servers
    balance roundrobin
    # A task's stream must reach the backend that runs the task, also while
    # that backend drains (it is DOWN for new work but still serving).
    cookie GSBACKEND insert indirect nocache
    option persist
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 250ms fastinter 250ms downinter 250ms fall 1 rise 1
{servers}
"""
        )
        self.process = subprocess.Popen(
            ["haproxy", "-f", str(config), "-db"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 10
        while not self.socket_path.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"haproxy did not start: {self.process.stderr.read()}")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

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

    def status(self, slot: int) -> str:
        """The slot's status as HAProxy's stats report it (UP, DOWN, MAINT…)."""
        for line in self.command("show stat").splitlines():
            fields = line.split(",")
            if len(fields) > 17 and fields[0] == "example_servers" and fields[1] == f"slot{slot}":
                return fields[17]
        return "?"

    def retries(self) -> int:
        """Requests HAProxy retried on another backend (its `wretr` count):
        mostly task starts refused by a backend that was already draining
        but not yet seen DOWN by the health check."""
        for line in self.command("show stat").splitlines():
            fields = line.split(",")
            if len(fields) > 16 and fields[0] == "example_servers" and fields[1] == "BACKEND":
                return int(fields[15] or 0)
        return 0

    def enable(self, slot: int, port: int, timeout: float = 15.0) -> None:
        self.command(f"set server example_servers/slot{slot} addr 127.0.0.1 port {port}")
        self.command(f"set server example_servers/slot{slot} state ready")
        deadline = time.monotonic() + timeout
        while self.status(slot) != "UP":
            if time.monotonic() > deadline:
                raise RuntimeError(f"slot{slot} never became UP (status {self.status(slot)})")
            time.sleep(0.05)

    def disable(self, slot: int) -> None:
        self.command(f"set server example_servers/slot{slot} state maint")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()


@dataclass
class Counts:
    tasks_started: int = 0
    streams_completed: int = 0
    streams_failed: int = 0
    streams_reconnected: int = 0
    streams_cut: int = 0
    starts_refused_then_retried: int = 0
    http_errors: int = 0
    error_samples: List[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **changes: int) -> None:
        with self.lock:
            for name, value in changes.items():
                setattr(self, name, getattr(self, name) + value)

    def error(self, text: str) -> None:
        with self.lock:
            self.http_errors += 1
            if len(self.error_samples) < 10:
                self.error_samples.append(text)


def client(url: str, counts: Counts, stop: threading.Event, steps: int, step_seconds: float) -> None:
    """Task after task until told to stop; finishes the task it is on."""
    while not stop.is_set():
        # A fresh client per task: no cookie on the start (any backend),
        # then the cookie HAProxy set routes the stream to the task's backend.
        with httpx.Client(base_url=url, timeout=60) as http:
            response = None
            for _ in range(20):
                try:
                    response = start_task(http, steps, step_seconds)
                except httpx.HTTPError as error:
                    counts.error(f"start: {type(error).__name__}: {error}")
                    response = None
                    break
                if response.status_code != 503:
                    break
                counts.add(starts_refused_then_retried=1)
                time.sleep(min(float(response.headers.get("Retry-After", "1")), 1.0))
            if response is None:
                continue
            if response.status_code != 202:
                counts.error(f"start: HTTP {response.status_code} {response.text[:100]}")
                continue
            counts.add(tasks_started=1)
            result = follow_stream(http, response.json()["stream_url"])
            if result.completed:
                counts.add(streams_completed=1)
            elif "task_failed" in result.event_types:
                counts.add(streams_failed=1)
            elif result.reconnect is not None:
                counts.add(streams_reconnected=1)
            else:
                counts.add(streams_cut=1)
                if result.error:
                    counts.error(f"stream: {result.error}")


@dataclass
class Replacement:
    round: int
    exit_code: Optional[int]
    seconds_to_exit: float
    killed: bool


def run(
    host: str,
    rounds: int,
    clients: int = 8,
    baseline: bool = False,
    steps: int = 6,
    step_seconds: float = 0.5,
    profile: str = "release",
) -> dict:
    """One run of the harness; returns its report."""
    if shutil.which("haproxy") is None:
        raise RuntimeError("haproxy is not installed (make setup installs it)")
    command, cwd = hosts.command(host, profile=profile)
    env = dict(BACKEND_ENV)
    if baseline:
        env["LAST_CALL_DISABLED"] = "1"
    workdir = Path(tempfile.mkdtemp(prefix="gs-rolling-"))
    proxy = HAProxy(workdir)
    backends: Dict[int, ServerProcess] = {}
    free_slots = list(range(1, SLOTS + 1))
    counts = Counts()
    replacements: List[Replacement] = []
    stop = threading.Event()
    workers: List[threading.Thread] = []

    def start_backend() -> int:
        slot = free_slots.pop(0)
        backend = ServerProcess(command, env, cwd=cwd)
        backends[slot] = backend
        proxy.enable(slot, backend.port)
        return slot

    try:
        for _ in range(2):
            start_backend()
        workers = [
            threading.Thread(target=client, args=(proxy.url, counts, stop, steps, step_seconds), daemon=True)
            for _ in range(clients)
        ]
        for worker in workers:
            worker.start()
        time.sleep(steps * step_seconds / 2)  # streams under way on both backends

        for round_number in range(1, rounds + 1):
            for old_slot in list(backends):
                start_backend()  # maxSurge 1: the new one first, ready
                old = backends.pop(old_slot)
                signalled = old.signal(signal.SIGTERM)
                killed = False
                try:
                    code = old.process.wait(timeout=GRACE_PERIOD_SECONDS)
                except subprocess.TimeoutExpired:
                    old.process.kill()  # the kubelet's SIGKILL
                    code = old.process.wait(timeout=10)
                    killed = True
                replacements.append(
                    Replacement(round_number, code, round(time.monotonic() - signalled, 3), killed)
                )
                proxy.disable(old_slot)
                free_slots.append(old_slot)
                old.close()
        stop.set()
        for worker in workers:
            worker.join(timeout=steps * step_seconds + 30)
        proxy_retries = proxy.retries()
    finally:
        stop.set()
        for backend in backends.values():
            backend.close()
        proxy.close()
        shutil.rmtree(workdir, ignore_errors=True)

    report = {
        "host": host,
        "runtime": "disabled (baseline)" if baseline else "last-call",
        "rounds": rounds,
        "clients": clients,
        "task_seconds": steps * step_seconds,
        **{f.name: getattr(counts, f.name) for f in fields(counts) if f.name != "lock"},
        "retried_by_haproxy": proxy_retries,
        "old_backends": [asdict(r) for r in replacements],
        "exit_codes": [r.exit_code for r in replacements],
        "max_seconds_to_exit": max((r.seconds_to_exit for r in replacements), default=0.0),
    }
    return report


def table(reports: List[dict]) -> str:
    rows = [
        ("streams completed", "streams_completed"),
        ("streams cut", "streams_cut"),
        ("streams told to reconnect", "streams_reconnected"),
        ("tasks failed", "streams_failed"),
        ("task starts refused, retried by the client", "starts_refused_then_retried"),
        ("requests retried by HAProxy", "retried_by_haproxy"),
        ("client-visible HTTP errors", "http_errors"),
        ("old backends' exit codes", "exit_codes"),
        ("SIGTERM -> exit, slowest (s)", "max_seconds_to_exit"),
    ]
    header = "| | " + " | ".join(f"{r['host']}, {r['runtime']}" for r in reports) + " |"
    lines = [header, "|---" * (len(reports) + 1) + "|"]
    for name, key in rows:
        lines.append(f"| {name} | " + " | ".join(str(r[key]) for r in reports) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", choices=hosts.NAMES, action="append", help="repeatable; default: both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--json", type=Path, help="also write the reports here")
    args = parser.parse_args()
    reports = []
    for host in args.host or list(hosts.NAMES):
        for baseline in (False, True):
            print(f"rolling: {host}, {'baseline' if baseline else 'last-call'}, {args.rounds} round(s)...", flush=True)
            reports.append(run(host, args.rounds, args.clients, baseline))
    print()
    print(table(reports))
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2))
    ok = True
    for report in reports:
        graceful = report["runtime"] == "last-call"
        if graceful and (report["streams_cut"] or report["http_errors"] or any(report["exit_codes"])):
            print(f"FAILED: {report['host']} with the runtime cut streams or failed requests: {report['error_samples']}")
            ok = False
        if not graceful and report["streams_cut"] == 0:
            print(f"FAILED: the {report['host']} baseline cut nothing, so this run proves nothing")
            ok = False
    print("\nverdict: " + ("zero streams cut and zero client-visible errors with the runtime" if ok else "NOT proven"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
