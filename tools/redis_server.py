"""A redis-server of the rolling harness's own: the hub's shared store
(``GS_STREAM_STORE``) that the hub host's pods share in a run, as the
manifest's pods share the Redis of ``examples/kubernetes/redis.yaml``.

One per run, on a free port of 127.0.0.1, in a directory of its own, with
no persistence (``--save "" --appendonly no``: nothing outlives the run)
and the settings docs/hub.md says the hub needs (``maxmemory`` with
``maxmemory-policy noeviction``: an eviction would drop a history
silently). ``close()`` kills it; the harness calls it on every path.

It also reads back what the store holds of a channel (``history``), so
that the handoff scenario can hold what each client saw against the
channel's own record. That reads the store's layout
(``crates/store/src/keys.rs``: ``gs:{bNN}:c:<channel>``, a stream with the
fields ``e``, ``d`` and ``x``, and ``gs:{bNN}:m:<channel>``, a hash with
``closed``, ``fe`` and ``fd``); it finds a channel's bucket by ``SCAN``
rather than by repeating the bucket hash here.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis

#: Room for every channel of a run (a few hundred small histories) many
#: times over; a refused write would show as a degraded store, not a loss.
MAXMEMORY = "256mb"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class StoredEvent:
    """One entry of a channel's history in the store."""

    id: str  # the stream entry's id, "<ms>-<seq>" (an SSE id ends with it)
    event: str
    data: str
    flag: str  # "" an event, "g" a gap marker, "f" the final event


@dataclass(frozen=True)
class StoredChannel:
    epoch: str | None
    events: list[StoredEvent]
    final: StoredEvent | None  # the channel's final event (its metadata), if closed


class RedisServer:
    """A redis-server child process; ``url`` is its ``GS_STREAM_STORE``."""

    def __init__(self, attempts: int = 3) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed (make setup installs it)")
        self.directory = Path(tempfile.mkdtemp(prefix="last-call-redis-"))
        self.process: subprocess.Popen[bytes] | None = None
        last_error = ""
        # A free port may be taken between the probe and redis-server's bind
        # (other runs start servers at the same time): another one, then.
        for _ in range(attempts):
            self.port = _free_port()
            self.process = subprocess.Popen(
                [
                    "redis-server",
                    "--port", str(self.port),
                    "--bind", "127.0.0.1",
                    "--save", "",
                    "--appendonly", "no",
                    "--maxmemory", MAXMEMORY,
                    "--maxmemory-policy", "noeviction",
                    "--dir", str(self.directory),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
            if self._wait_ready(timeout=20):
                break
            last_error = self._stop()
        else:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise RuntimeError(f"redis-server did not start: {last_error[-500:]}")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.client = redis.Redis(host="127.0.0.1", port=self.port, db=0, decode_responses=True, socket_timeout=10)

    def _wait_ready(self, timeout: float) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1) as probe:
                    if probe.ping():
                        return True
            except redis.RedisError:
                time.sleep(0.02)
        return False

    def _stop(self) -> str:
        """Kills the server (bounded); returns its output."""
        if self.process is None:
            return ""
        if self.process.poll() is None:
            self.process.kill()
        try:
            output, _ = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            return ""
        return (output or b"").decode(errors="replace")

    def history(self, channel: str) -> StoredChannel:
        """What the store holds of `channel`: its history, in order, and its
        final event."""
        streams = list(self.client.scan_iter(match=f"gs:*:c:{channel}", count=1000))
        metas = list(self.client.scan_iter(match=f"gs:*:m:{channel}", count=1000))
        events = []
        for stream in streams[:1]:
            for entry_id, fields in self.client.xrange(stream):
                events.append(StoredEvent(entry_id, fields.get("e", ""), fields.get("d", ""), fields.get("x", "")))
        meta = self.client.hgetall(metas[0]) if metas else {}
        final = None
        if "closed" in meta:
            final = StoredEvent(meta["closed"], meta.get("fe", ""), meta.get("fd", ""), "f")
        return StoredChannel(epoch=meta.get("epoch"), events=events, final=final)

    def info(self, section: str) -> dict:
        return dict(self.client.info(section))

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # noqa: BLE001 - closing a client of a server about to go
            pass
        self._stop()
        shutil.rmtree(self.directory, ignore_errors=True)
