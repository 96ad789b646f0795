"""What the rolling harness's clients saw of each stream connection, for the
report page's charts (``rolling_report.py``): when it opened, on which pod
(the ``X-Pod`` header HAProxy sets to the server that answered), when it
closed and how, and when a reconnect hint arrived on it.

Counted on the client side, on purpose: the baseline has no probe
listener and no runtime to ask, so the one measure that means the same
with and without the runtime is what the clients held open. Times are
``time.monotonic()`` when the client saw the thing happen (an event loop
busy with thousands of streams may see it a little late).

One ``StreamLog`` per client population; each is written from the one
event loop that runs those clients (no lock) and read once they stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

#: How a connection ended, as the report names it.
FINAL = "final"  # its task's final event (task_completed, or task_failed with reason shutdown)
HINT = "hint"  # told to reconnect (event: reconnect), then closed by the pod
CUT = "cut"  # closed, or broken, with neither
REFUSED = "refused"  # answered with a status other than 200
END_OF_RUN = "end of run"  # still open on a surviving pod when the run stopped its clients


@dataclass
class Connection:
    """One stream connection: a task's stream, a feed, a hub subscription."""

    kind: str  # "task", "feed", "subscriber"
    client: int  # the client that opened it: its next connection is its reconnect
    pod: str  # HAProxy's server name ("slot3"), "?" when it said none
    opened: float
    closed: float | None = None
    ending: str | None = None
    hint_at: float | None = None

    def hinted(self) -> None:
        if self.hint_at is None:
            self.hint_at = time.monotonic()

    def close(self, ending: str) -> None:
        """The first ending counts (an exception after a hint is the pod
        closing the connection it told to go)."""
        if self.closed is None:
            self.closed = time.monotonic()
            self.ending = ending


class StreamLog:
    def __init__(self) -> None:
        self.connections: list[Connection] = []
        self._clients = 0

    def client(self) -> int:
        """A new client's number."""
        self._clients += 1
        return self._clients

    @contextlib.contextmanager
    def connection(self, kind: str, client: int, pod: str | None) -> Iterator[Connection]:
        """A connection, opened now, for the time of a ``with`` body that
        reads it. The body closes it where it knows how it ended (FINAL,
        REFUSED, END_OF_RUN when the run stops); else it ended as the clients
        count it: told to reconnect if a hint came (HINT), else CUT.
        Cancelled (the run's end cancelled a client still waiting):
        END_OF_RUN."""
        connection = Connection(kind=kind, client=client, pod=pod or "?", opened=time.monotonic())
        self.connections.append(connection)
        try:
            yield connection
        except asyncio.CancelledError:
            connection.close(END_OF_RUN)
            raise
        finally:
            connection.close(HINT if connection.hint_at is not None else CUT)
