"""One thread per process that calls functions at given moments.

The WSGI stream wrapper needs each stream woken at its own moment of the
close notice, whatever the stream's thread is blocked on. A timer thread
per stream would cost a thread per stream (hundreds on a busy pod); polling
would wake every stream on a common beat, which is exactly the bunching the
reconnect spread exists to avoid. So one scheduler thread holds a heap of
moments and sleeps on a condition until the earliest: no wake-up but the
ones asked for, and an earlier moment scheduled later wakes it at once.

The thread is started on first use. A forked child never inherits it (a
thread does not survive ``fork``): ``os.register_at_fork`` drops the
parent's scheduler in the child, whose first use starts its own.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from typing import Callable

logger = logging.getLogger("last_call")

__all__ = ["Scheduled", "call_at"]


class Scheduled:
    """A call waiting for its moment; ``cancel()`` drops it (a no-op once
    it has run)."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        # Left in the heap and skipped when it comes up: removing it would
        # cost O(n) under the lock for no gain.
        self.cancelled = True


class _Scheduler:
    def __init__(self) -> None:
        self._condition = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Scheduled]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def call_at(self, when: float, callback: Callable[[], object]) -> Scheduled:
        entry = Scheduled(when, callback)
        with self._condition:
            heapq.heappush(self._heap, (when, next(self._order), entry))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="last_call-wake", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is entry:
                # The new earliest moment: the thread sleeps until a later one.
                self._condition.notify()
        return entry

    def _run(self) -> None:
        while True:
            with self._condition:
                while True:
                    if not self._heap:
                        self._condition.wait()
                        continue
                    when, _, entry = self._heap[0]
                    left = when - time.monotonic()
                    if left > 0:
                        self._condition.wait(left)
                        continue
                    heapq.heappop(self._heap)
                    if not entry.cancelled:
                        break
            # Outside the lock: a callback may schedule another call.
            entry.cancelled = True
            try:
                entry.callback()
            except Exception:  # one stream's waker must not stop the others'
                logger.exception("last_call: a stream's waker raised")


_scheduler: _Scheduler | None = None
_scheduler_lock = threading.Lock()


def call_at(when: float, callback: Callable[[], object]) -> Scheduled:
    """Calls ``callback()`` on the scheduler thread at ``when``
    (``time.monotonic()``), or at once if that has passed."""
    global _scheduler
    with _scheduler_lock:
        if _scheduler is None:
            _scheduler = _Scheduler()
        scheduler = _scheduler
    return scheduler.call_at(when, callback)


def _forget_in_child() -> None:
    # The parent's thread does not exist here, and its lock may have been
    # held by it at the fork: start afresh, on first use.
    global _scheduler, _scheduler_lock
    _scheduler = None
    _scheduler_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)
