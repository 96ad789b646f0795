"""The stream hub side by side with its peers, nchan (the nginx module, 1
and 2 worker processes) and Pushpin, both from Debian (`scripts/setup.sh
--bench` installs them), in one run: each server in turn, on 127.0.0.1, in
a child process of its own (its own process group) with a configuration
generated here in a temporary directory, killed when its turn ends (also on
an error). The order rotates from one round to the next, so that no server
always follows the same one.

The same client measures each: `target/release/examples/peers_client`
(see its documentation for what it measures and how). It publishes over
HTTP to all three: to nchan's publisher location, to Pushpin's publish API
(port 5561 and its offset), and to the hub through `examples/hub_peer`, the
hub beside a small one-thread app that publishes what it is posted (as an
app publishing from its request handlers would).

The servers, configured alike where they can be:

* **hub**: `GS_STREAM_THREADS` left at its default (the cores this process
  may use, at most 4), a history of 100 events (the default);
* **nchan** (`libnginx-mod-nchan`): `worker_processes` 1 or 2, an
  EventSource subscriber location and a publisher location, a buffer of 100
  messages kept 300 s, `keepalive_requests` unbounded (the publisher's
  connection is kept), the listen backlog of 1,024 (the hub's; nginx's
  default is 511), access log off;
* **Pushpin**: condure, pushpin-proxy and pushpin-handler, with the `test`
  route target, whose `/stream?channel=` answers a stream held on the
  channel from inside Pushpin (no origin server to ask: the most favourable
  set-up Pushpin has); the handler's rate limit (`message_rate`, 2,500
  deliveries per second by default) lifted and its queue
  (`message_hwm`) raised to 1,000,000, so that Pushpin is measured, not its
  protection; updates check off.

Prints a Markdown table: per server, the median over the rounds of each
measure, with the load average beside it; and the hub's ratio to the best
peer of the same round (the median over the rounds, with their range)
against the goals of issue 25. `--json PATH` keeps every round's raw
results. `make bench` runs:
    .venv/bin/python benches/peers.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "target" / "release" / "examples"
NCHAN_MODULE = Path("/usr/lib/nginx/modules/ngx_nchan_module.so")
SECRET = "peers bench: a secret of 32 bytes or more"


@dataclass
class Server:
    """A running server: how the client reaches it, and its processes."""

    name: str
    client_args: list[str]
    process: subprocess.Popen[bytes]

    def pids(self) -> list[int]:
        """Every process of its session (nginx's workers; Pushpin's
        services, each in a process group of its own)."""
        return session_pids(self.process.pid)


def session_pids(session: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == session:
            found.append(int(entry.name))
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ports_free(ports: list[int]) -> bool:
    for port in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {within} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Ends every process of the server's session (it was started in a new
    one): SIGTERM, then SIGKILL for what is left after 10 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in session_pids(process.pid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if process.poll() is not None and not session_pids(process.pid):
                return
            time.sleep(0.05)
    process.wait(timeout=10)


@contextmanager
def hub(directory: Path) -> Iterator[Server]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GS_")}
    env.update(
        GS_STREAM_ADDR="127.0.0.1:0",
        GS_STREAM_SECRET=SECRET,
        # Room for 10,000 subscribers and the rest under the open-file limit.
        GS_STREAM_MAX_CONNECTIONS="19000",
    )
    process = subprocess.Popen(
        [str(EXAMPLES / "hub_peer")], env=env, stdout=subprocess.PIPE, start_new_session=True, cwd=directory
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().decode().strip() for _ in range(2)]
        addresses = {line.split(" on http://")[0]: line.split(" on http://")[1] for line in lines if " on " in line}
        streams, publish = addresses["streams"], addresses["publish"]
        yield Server(
            "hub",
            [
                "--sub-url",
                f"http://{streams}/streams/{{channel}}?token={{token}}",
                "--token-url",
                f"http://{publish}/token/{{channel}}",
                "--publish",
                f"body:http://{publish}/pub/{{channel}}",
            ],
            process,
        )
    finally:
        stop(process)


NGINX_CONF = """\
load_module {module};
worker_processes {workers};
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
worker_rlimit_nofile 20000;
events {{
  worker_connections 16384;
}}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  keepalive_requests 100000000;
  server {{
    listen 127.0.0.1:{port} backlog=1024;
    location ~ ^/sub/(.+)$ {{
      nchan_subscriber eventsource;
      nchan_channel_id $1;
    }}
    location ~ ^/pub/(.+)$ {{
      nchan_publisher;
      nchan_channel_id $1;
      nchan_message_buffer_length 100;
      nchan_message_timeout 300s;
    }}
  }}
}}
"""


@contextmanager
def nchan(directory: Path, workers: int) -> Iterator[Server]:
    port = free_port()
    config = directory / "nginx.conf"
    config.write_text(NGINX_CONF.format(module=NCHAN_MODULE, workers=workers, dir=directory, port=port))
    process = subprocess.Popen(
        ["nginx", "-c", str(config), "-p", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port, process, "nginx")
        yield Server(
            f"nchan ({workers} worker{'s' if workers > 1 else ''})",
            [
                "--sub-url",
                f"http://127.0.0.1:{port}/sub/{{channel}}",
                "--publish",
                f"body:http://127.0.0.1:{port}/pub/{{channel}}",
            ],
            process,
        )
    finally:
        stop(process)


PUSHPIN_CONF = """\
[global]
include={{libdir}}/internal.conf
rundir={dir}/run
ipc_prefix=peers-
port_offset={offset}
stats_connection_ttl=120

[runner]
services=condure,pushpin-proxy,pushpin-handler
http_port=127.0.0.1:{port}
logdir={dir}/log
log_level=1
client_buffer_size=8192
client_maxconn=20000

[proxy]
routesfile=routes
debug=false
auto_cross_origin=false
sig_iss=pushpin
sig_key=peers-bench
updates_check=off

[handler]
push_in_spec=tcp://127.0.0.1:5560
push_in_sub_specs=tcp://127.0.0.1:5562
push_in_sub_connect=false
push_in_http_addr=127.0.0.1
push_in_http_port=5561
push_in_http_max_headers_size=10000
push_in_http_max_body_size=1000000
stats_spec=ipc://{{rundir}}/{{ipc_prefix}}stats
command_spec=tcp://127.0.0.1:5563
message_rate=0
message_hwm=1000000
message_wait=5000
id_cache_ttl=60
connection_subscription_max=20
subscription_linger=60
stats_subscription_ttl=60
stats_report_interval=10
stats_format=tnetstring
"""


@contextmanager
def pushpin(directory: Path) -> Iterator[Server]:
    port = free_port()
    # Its ZeroMQ and publish ports are 5560-5563 plus an offset: one with
    # all four free.
    for _ in range(100):
        offset = free_port() % 20000 + 10000
        if ports_free([5560 + offset + n for n in range(4)]):
            break
    else:
        raise RuntimeError("no free ports for Pushpin's offset")
    (directory / "run").mkdir()
    (directory / "log").mkdir()
    (directory / "routes").write_text("* test\n")
    config = directory / "pushpin.conf"
    config.write_text(PUSHPIN_CONF.format(dir=directory, offset=offset, port=port))
    process = subprocess.Popen(
        ["pushpin", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=directory,
    )
    try:
        wait_for_port(port, process, "pushpin (condure)")
        wait_for_port(5561 + offset, process, "pushpin (handler)")
        yield Server(
            "Pushpin",
            [
                "--sub-url",
                f"http://127.0.0.1:{port}/stream?channel={{channel}}",
                "--publish",
                f"grip:http://127.0.0.1:{5561 + offset}/publish/",
            ],
            process,
        )
    finally:
        stop(process)


SERVERS: dict[str, Callable[[Path], AbstractContextManager[Server]]] = {
    "hub": hub,
    "nchan (1 worker)": lambda d: nchan(d, 1),
    "nchan (2 workers)": lambda d: nchan(d, 2),
    "Pushpin": pushpin,
}


def measure(name: str, args: argparse.Namespace) -> dict[str, object]:
    directory = Path(tempfile.mkdtemp(prefix="peers-"))
    directory.chmod(0o755)  # nginx's workers run as another user when started as root
    try:
        with SERVERS[name](directory) as server:
            time.sleep(1)
            command = [
                str(EXAMPLES / "peers_client"),
                *server.client_args,
                "--server-pids",
                ",".join(str(pid) for pid in server.pids()),
                "--subscribers",
                str(args.subscribers),
                "--fanout-events",
                str(args.fanout_events),
                "--seconds",
                str(args.seconds),
                "--threads",
                str(args.client_threads),
            ]
            print(f"peers: {name} ...", file=sys.stderr, flush=True)
            done = subprocess.run(command, stdout=subprocess.PIPE, timeout=900, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"{name}: the client exited with {done.returncode}")
            result: dict[str, object] = json.loads(done.stdout.decode().strip().splitlines()[-1])
            return result
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def get(result: dict[str, object], *path: str) -> float:
    value: object = result
    for key in path:
        assert isinstance(value, dict)
        value = value[key]
    assert isinstance(value, (int, float))
    return float(value)


# (label, path to the figure, unit, lower is better)
ROWS: list[tuple[str, tuple[str, ...], str, bool]] = [
    ("memory per idle subscriber at 10,000", ("memory", "kib_per_subscriber"), "KiB", True),
    ("fan-out to 5,000, publish -> last receipt p50", ("fanout_5000", "publish_to_last_receipt_ms", "p50"), "ms", True),
    ("fan-out to 5,000, p99", ("fanout_5000", "publish_to_last_receipt_ms", "p99"), "ms", True),
    ("fan-out to 10,000, p50", ("fanout_10000", "publish_to_last_receipt_ms", "p50"), "ms", True),
    ("fan-out to 10,000, p99", ("fanout_10000", "publish_to_last_receipt_ms", "p99"), "ms", True),
    ("server CPU per delivery, fan-out to 10,000", ("fanout_10000", "server_cpu_us_per_delivery"), "µs", True),
    (
        "closed loop, 1,000 subscribers on 10 channels: delivered/s",
        ("closed_loop", "delivered_per_second"),
        "/s",
        False,
    ),
    ("open loop, as fast as answered: delivered/s", ("open_loop", "delivered_per_second"), "/s", False),
    ("open loop: subscribers lost (of 1,000)", ("open_loop", "lost"), "", True),
    ("10,000 subscriptions set up, 64 at once: per second", ("setup_64", "per_second"), "/s", False),
    ("10,000 subscriptions set up, 256 at once: per second", ("setup_256", "per_second"), "/s", False),
]

# Where each row's load average and the client's cores come from.
LOAD_OF = {
    "memory": ("memory", "load"),
    "fanout_5000": ("fanout_5000", "usage", "load"),
    "fanout_10000": ("fanout_10000", "usage", "load"),
    "closed_loop": ("closed_loop", "usage", "load"),
    "open_loop": ("open_loop", "usage", "load"),
    "setup_64": ("setup_64", "usage", "load"),
    "setup_256": ("setup_256", "usage", "load"),
}

# The goals of issue 25, as the hub's ratio to the best peer of the round.
GOALS: dict[str, tuple[str, float]] = {
    "memory per idle subscriber at 10,000": ("<=", 0.3),
    "fan-out to 5,000, publish -> last receipt p50": ("<=", 0.8),
    "fan-out to 5,000, p99": ("<=", 0.8),
    "fan-out to 10,000, p50": ("<=", 0.8),
    "fan-out to 10,000, p99": ("<=", 0.8),
    "open loop, as fast as answered: delivered/s": (">=", 1.0),
    "10,000 subscriptions set up, 64 at once: per second": (">=", 1.0),
    "10,000 subscriptions set up, 256 at once: per second": (">=", 1.0),
}


def number(value: float, unit: str) -> str:
    if unit == "/s":
        return f"{value / 1000:,.1f}k"
    if unit in ("ms", "µs") and value < 10:
        return f"{value:.2f}"
    if unit == "KiB":
        return f"{value:.2f}"
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def report(rounds: list[dict[str, dict[str, object]]]) -> None:
    names = list(SERVERS)
    peers = [n for n in names if n != "hub"]
    print(f"\n{len(rounds)} round(s); medians over the rounds; (load average when each measure started)\n")
    print("| measure | " + " | ".join(names) + " | hub / best peer (range) | goal | met |")
    print("|---|" + "---|" * len(names) + "---|---|---|")
    for label, path, unit, lower in ROWS:
        cells = []
        for name in names:
            values = [get(r[name], *path) for r in rounds]
            loads = [get(r[name], *LOAD_OF[path[0]]) for r in rounds]
            cells.append(f"{number(statistics.median(values), unit)} {unit} ({statistics.median(loads):.1f})".strip())
        ratios = []
        for r in rounds:
            peer_values = [get(r[p], *path) for p in peers]
            best = min(peer_values) if lower else max(peer_values)
            hub_value = get(r["hub"], *path)
            ratios.append(hub_value / best if best else float("inf") if hub_value else 1.0)
        ratio = f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
        goal = GOALS.get(label)
        if goal is None:
            if label.startswith("open loop: subscribers lost"):
                lost = [get(r["hub"], *path) for r in rounds]
                print(f"| {label} | " + " | ".join(cells) + f" | — | 0 | {'yes' if max(lost) == 0 else 'no'} |")
            else:
                print(f"| {label} | " + " | ".join(cells) + f" | {ratio} | — | — |")
            continue
        sense, bound = goal
        median = statistics.median(ratios)
        met = median <= bound if sense == "<=" else median >= bound
        print(f"| {label} | " + " | ".join(cells) + f" | {ratio} | {sense} {bound}x | {'yes' if met else 'no'} |")
    for name in names:
        died = sum(1 for r in rounds if not r[name].get("server_alive", True))
        if died:
            print(f"\n{name}: a server process had exited by the end of {died} of {len(rounds)} round(s).")
    print("\nThe client's share (cores it used / cores the server used), median over the rounds:\n")
    print("| measure | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for key in ("fanout_10000", "closed_loop", "open_loop", "setup_256"):
        cells = []
        for name in names:
            client = statistics.median(get(r[name], key, "usage", "client_cores") for r in rounds)
            server = statistics.median(get(r[name], key, "usage", "server_cores") for r in rounds)
            cells.append(f"{client:.2f} / {server:.2f}")
        print(f"| {key} | " + " | ".join(cells) + " |")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--fanout-events", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--client-threads", type=int, default=2)
    parser.add_argument("--only", action="append", choices=list(SERVERS), help="measure only these servers")
    parser.add_argument("--json", type=Path, help="write every round's raw results here")
    args = parser.parse_args()
    missing = [tool for tool in ("nginx", "pushpin") if shutil.which(tool) is None]
    if missing or not NCHAN_MODULE.exists():
        print(f"peers: missing {missing or [str(NCHAN_MODULE)]}: run ./scripts/setup.sh --bench", file=sys.stderr)
        return 2
    for example in ("peers_client", "hub_peer"):
        if not (EXAMPLES / example).exists():
            print(f"peers: build it first: cargo build --release --example {example}", file=sys.stderr)
            return 2
    names = args.only or list(SERVERS)
    rounds: list[dict[str, dict[str, object]]] = []
    for n in range(args.rounds):
        order = names[n % len(names) :] + names[: n % len(names)]
        results = {}
        for name in order:
            results[name] = measure(name, args)
            print(f"peers: round {n + 1}, {name}: {json.dumps(results[name])}", file=sys.stderr, flush=True)
        rounds.append(results)
    if args.json:
        args.json.write_text(json.dumps(rounds, indent=1))
    if set(names) == set(SERVERS):
        report(rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
