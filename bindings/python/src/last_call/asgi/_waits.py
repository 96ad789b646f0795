"""Awaitable waits (``wait_for_phase``, ``wait_for_shutdown``,
``wait_for_streams``) that never block a thread: a phase callback hands the
change to the loop with ``loop.call_soon_threadsafe``, so cancelling the
wait (``asyncio.wait_for``, a task's ``cancel()``) leaves nothing behind
and ``asyncio.run`` can return. ``await asyncio.to_thread(manager.wait_...)``
would leave a thread parked in the native wait that no cancellation
reaches."""

from __future__ import annotations

import asyncio
import contextlib

from .._arguments import checked_seconds
from .._arguments import phase as _phase
from ..interface import ShutdownManager
from ..phase import Phase
from ._relay import call_soon, manager_or_default

#: How often ``wait_for_streams`` looks at the count: streams end on any
#: thread (WSGI threads, the native hub), and the runtime calls back on
#: phase changes only, so the count itself is polled, on the loop.
STREAMS_POLL_SECONDS = 0.02
#: ``wait_for_phase`` is woken by a phase callback at once, and also
#: re-reads the phase this often: callbacks are delivered one at a time, so
#: an app's callback that blocks would otherwise starve the wait (and the
#: lifespan's end, which waits for Stopped, until the exit watchdog).
PHASE_RECHECK_SECONDS = 0.25


async def wait_for_phase(
    phase: Phase | int, timeout: float | None = None, *, manager: ShutdownManager | None = None
) -> bool:
    """True once the phase is at least ``phase``; False when ``timeout``
    seconds (None: no limit) pass first. Cancellable: nothing is left
    waiting on another thread."""
    runtime = manager_or_default(manager)
    target = _phase(phase)
    limit = checked_seconds(timeout)
    loop = asyncio.get_running_loop()
    reached = asyncio.Event()

    def on_phase(_old: Phase, new: Phase) -> None:
        if new >= target:
            call_soon(loop, reached.set)

    # Registered before the phase is read, so no change falls in between.
    runtime.on_phase(on_phase)
    try:
        deadline = loop.time() + limit
        while runtime.phase < target:
            left = deadline - loop.time()
            if left <= 0:
                return False
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(reached.wait(), min(left, PHASE_RECHECK_SECONDS))
        return True
    finally:
        runtime.remove_phase_callback(on_phase)


async def wait_for_shutdown(timeout: float | None = None, *, manager: ShutdownManager | None = None) -> bool:
    """True once draining has begun (a signal, ``begin_shutdown``,
    ``set_draining(True)``); False after ``timeout`` seconds. Cancellable."""
    return await wait_for_phase(Phase.DRAINING, timeout, manager=manager)


async def wait_for_streams(timeout: float | None = None, *, manager: ShutdownManager | None = None) -> bool:
    """True once no stream is active; False after ``timeout`` seconds.
    Looks at the count every ``STREAMS_POLL_SECONDS`` on the loop (no thread
    is blocked); cancellable."""
    runtime = manager_or_default(manager)
    limit = checked_seconds(timeout)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while runtime.active_streams > 0:
        left = deadline - loop.time()
        if left <= 0:
            return False
        await asyncio.sleep(min(STREAMS_POLL_SECONDS, left))
    return True
