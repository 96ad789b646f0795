"""The reconnect spread on each example host, in one run: N resumable
``/api/events`` streams, a real SIGTERM, and the arrival of each stream's
``event: reconnect`` at the client, as a histogram of 100 ms buckets over
the nudge window beside the ideal (uniform over the window).

    python benches/reconnect_spread.py [--streams 200] [--profile release]
        [--host flask ...] [--markdown target/reconnect_spread.md]

The clients are one asyncio loop of raw HTTP/1.1 connections (no thread per
client, so the client adds no bunching of its own); an arrival is stamped
when the chunk holding ``event: reconnect`` is read.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import random
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import hosts  # noqa: E402
from server_process import ServerProcess, eventually  # noqa: E402

#: Timeout 8 s, hooks' budget 2 s, close notice 4 s (every example
#: registers a shutdown hook): ClosingStreams 2 s after the signal, the
#: streams' last moment (the last nudge) at 8 - 2 - min(4/4, 1) = 5 s.
TIMINGS = {
    "GS_DRAIN_DELAY_SECONDS": "0.5",
    "GS_SHUTDOWN_TIMEOUT_SECONDS": "8",
    "GS_CLOSE_NOTICE_SECONDS": "4",
    "GS_HOOK_BUDGET_SECONDS": "2",
    "GS_EXIT_WATCHDOG_SECONDS": "2",
    # Production's heartbeat: the nudges must not ride on it.
    "SSE_HEARTBEAT_SECONDS": "1",
}
WINDOW = (2.0, 5.0)
BUCKET = 0.1


@dataclass
class Spread:
    host: str
    streams: int
    arrivals: list[float] = field(default_factory=list)
    missing: int = 0
    exit_code: int | None = None

    def buckets(self) -> list[int]:
        start, end = WINDOW
        counts = [0] * round((end - start) / BUCKET)
        for at in self.arrivals:
            index = min(max(int((at - start) / BUCKET), 0), len(counts) - 1)
            counts[index] += 1
        return counts

    @property
    def mean(self) -> float:
        return len(self.arrivals) / len(self.buckets()) if self.arrivals else 0.0


def _command(host: str, profile: str, streams: int) -> tuple[list[str], Path, dict[str, str]]:
    command, cwd = hosts.command(host, profile)
    # A thread per stream on the thread-per-stream hosts; flask-hub keeps
    # its 8 (hosts.FLASK_HUB_ENV): its feed is the hub's.
    threads = str(streams + 20)
    return command, cwd, {**TIMINGS, "THREADS": threads}


async def _open(port: int, target: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """GET ``target``, following a redirect (flask-hub answers the feed
    with one to the hub, as EventSource follows it); the reader, the writer
    and what was read past the head of a 307."""
    for _ in range(2):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        await writer.drain()
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await reader.read(65536)
            if not chunk:
                break
            head += chunk
        if not head.startswith(b"HTTP/1.1 307"):
            return reader, writer, head
        location = next(
            line.split(b":", 1)[1].strip().decode()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"location:")
        )
        writer.close()
        # http://127.0.0.1:PORT/streams/feed?token=...
        address, _, path = location.removeprefix("http://").partition("/")
        port, target = int(address.rsplit(":", 1)[1]), "/" + path
    raise RuntimeError("redirected twice")


async def _follow(port: int, opened: asyncio.Event, counter: list[int], streams: int) -> float | None:
    """One resumable stream: the moment its reconnect event arrived."""
    reader, writer, seen = await _open(port, "/api/events")
    try:
        counted = False
        at = time.monotonic()
        while True:
            if not counted and b"200" in seen:
                counted = True
                counter[0] += 1
                if counter[0] == streams:
                    opened.set()
            if b"event: reconnect" in seen:
                return at
            chunk = await reader.read(65536)
            if not chunk:
                return None
            at = time.monotonic()
            seen = (seen + chunk)[-4096:]
    finally:
        writer.close()


async def _run_clients(server: ServerProcess, streams: int) -> tuple[list[float | None], float]:
    opened = asyncio.Event()
    counter = [0]
    followers = [asyncio.ensure_future(_follow(server.port, opened, counter, streams)) for _ in range(streams)]
    await asyncio.wait_for(opened.wait(), 60)
    loop = asyncio.get_running_loop()

    def all_counted() -> bool:
        metrics = server.client.get("/metrics", headers={"Accept": "application/json"}).json()
        return metrics["active_streams"] >= streams

    await loop.run_in_executor(None, lambda: eventually(all_counted, timeout=30))
    sent = server.signal(signal.SIGTERM)
    results = await asyncio.wait_for(asyncio.gather(*followers, return_exceptions=True), 30)
    return [r if isinstance(r, float) else None for r in results], sent


def measure(host: str, streams: int, profile: str) -> Spread:
    command, cwd, env = _command(host, profile, streams)
    server = ServerProcess(command, env, cwd=cwd)
    spread = Spread(host, streams)
    try:
        arrivals, sent = asyncio.run(_run_clients(server, streams))
        spread.arrivals = sorted(at - sent for at in arrivals if at is not None)
        spread.missing = sum(1 for at in arrivals if at is None)
        spread.exit_code = server.wait_exit(30)
    finally:
        server.close()
    return spread


def uniform_busiest(streams: int, runs: int = 2000) -> tuple[float, int]:
    """The busiest bucket of a truly uniform draw of ``streams`` moments
    over the window (the runtime's own draw, without any host): median and
    99th percentile over ``runs`` simulated draws. A host's figure within
    these is as good as the draw itself."""
    start, end = WINDOW
    size = round((end - start) / BUCKET)
    rng = random.Random(22)
    busiest = []
    for _ in range(runs):
        counts = [0] * size
        for _ in range(streams):
            counts[min(int(rng.random() * size), size - 1)] += 1
        busiest.append(max(counts))
    busiest.sort()
    return statistics.median(busiest), busiest[int(0.99 * (runs - 1))]


def _bar(count: int, scale: float) -> str:
    return "#" * round(count * scale)


def report(spreads: list[Spread], streams: int) -> str:
    start, end = WINDOW
    ideal = streams / round((end - start) / BUCKET)
    median, p99 = uniform_busiest(streams)
    lines = [
        f"{streams} resumable streams per host; nudge window {start:.1f}-{end:.1f} s after SIGTERM, "
        f"{round((end - start) / BUCKET)} buckets of 100 ms; ideal (uniform) {ideal:.1f} per bucket. "
        f"A truly uniform random draw of {streams} moments has a busiest bucket of {median:g} "
        f"(median of 2,000 simulated draws; 99th percentile {p99}), max/mean {median / ideal:.2f}.",
        "",
        "| host | reconnects | first | last | busiest bucket | mean | max/mean | empty buckets | exit |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for spread in spreads:
        counts = spread.buckets()
        if spread.arrivals:
            lines.append(
                f"| {spread.host} | {len(spread.arrivals)} of {spread.streams} | {spread.arrivals[0]:.3f} s "
                f"| {spread.arrivals[-1]:.3f} s | {max(counts)} | {spread.mean:.1f} "
                f"| {max(counts) / spread.mean:.2f} | {counts.count(0)} | {spread.exit_code} |"
            )
        else:
            lines.append(f"| {spread.host} | 0 of {spread.streams} | - | - | - | - | - | - | {spread.exit_code} |")
    lines += ["", "Per 100 ms bucket (count, then the ideal):", "", "```text"]
    header = "bucket (s)  ideal  " + "  ".join(f"{s.host:>14}" for s in spreads)
    lines.append(header)
    columns = [s.buckets() for s in spreads]
    for index in range(round((end - start) / BUCKET)):
        left = start + index * BUCKET
        row = f"{left:4.1f}-{left + BUCKET:3.1f}   {ideal:5.1f}  " + "  ".join(
            f"{column[index]:>3} {_bar(column[index], 0.5):<10}" for column in columns
        )
        lines.append(row.rstrip())
    lines.append("```")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--profile", default="release")
    parser.add_argument("--host", choices=hosts.NAMES, action="append")
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    spreads = []
    for host in args.host or hosts.NAMES:
        spread = measure(host, args.streams, args.profile)
        counts = spread.buckets()
        print(
            f"{host}: {len(spread.arrivals)} of {spread.streams} reconnects, busiest bucket {max(counts)}, "
            f"mean {spread.mean:.1f}, exit {spread.exit_code}",
            flush=True,
        )
        spreads.append(spread)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = f"Recorded {stamp}.\n\n" + report(spreads, args.streams)
    print(text)
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
