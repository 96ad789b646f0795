"""The phases of the process, as in the README's phase table."""

from __future__ import annotations

import enum


class Phase(enum.IntEnum):
    """Where the process is in its life. Values match the C ABI's gs_phase
    and the ``gs_phase`` metric; phases only move forward (except DRAINING ->
    SERVING before the shutdown sequence starts)."""

    SERVING = 0
    DRAINING = 1
    CLOSING_STREAMS = 2
    STOPPING = 3
    STOPPED = 4

    @property
    def label(self) -> str:
        """Lower-case name, as in metrics and logs ("closing_streams")."""
        return self.name.lower()


class SecondSignal(enum.IntEnum):
    """What a second SIGTERM/SIGINT does once the sequence has started."""

    SIGINT_EXITS = 0
    IGNORE = 1
    EXIT = 2
