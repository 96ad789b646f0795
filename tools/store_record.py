"""What the hub's shared store holds of a channel, read back from Redis:
the rolling harness's handoff scenario holds what each client saw against
it (``handoff_clients.py``).

This reads the store's layout (``crates/store/src/keys.rs``:
``gs:{bNN}:c:<channel>``, a stream with the fields ``e``, ``d`` and ``x``,
and ``gs:{bNN}:m:<channel>``, a hash with ``epoch``, ``closed``, ``fe`` and
``fd``); it finds a channel's bucket by ``SCAN`` rather than by repeating
the bucket hash here. The server itself is ``redis_process.RedisProcess``.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis


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


class StoreRecord:
    """A client of the Redis at `port` that reads channels back."""

    def __init__(self, port: int) -> None:
        self.client = redis.Redis(host="127.0.0.1", port=port, db=0, decode_responses=True, socket_timeout=10)

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
        self.client.close()
