"""Readiness checks: named, bounded in time, consulted by ``/readyz``.

A check is a callable that returns truthy when its dependency is fine. Each
one runs on a worker thread and counts as failed if it raises, returns
falsy, or has not answered within its timeout, so a hung database can never
hang the probe. Checks run only while the process is Serving: a draining
process is not ready whatever they say.

One registry per manager (the process-wide one for the real manager), so
that every route that answers readiness, the blueprint's ``/readyz`` today,
reads the same list.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from ._arguments import checked_seconds
from .errors import ArgumentTypeError, InvalidArgumentError

logger = logging.getLogger("last_call")

ReadinessCheck = Callable[[], object]

#: A check that has not answered within this many seconds has failed.
DEFAULT_CHECK_TIMEOUT = 1.0


@dataclass(frozen=True)
class ReadinessReport:
    """The outcome of one round of checks."""

    ready: bool
    #: check name -> why it failed ("timed out", "returned False", the exception)
    failures: dict[str, str] = field(default_factory=dict)


class ReadinessChecks:
    """The named checks of one manager."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checks: dict[str, tuple[ReadinessCheck, float]] = {}
        # The last run of each check; one still running is not started
        # again, so a hung check holds one thread, not one per probe.
        self._running: dict[str, concurrent.futures.Future[object]] = {}

    def add(self, name: str, check: ReadinessCheck, *, timeout: float = DEFAULT_CHECK_TIMEOUT) -> None:
        """Adds (or replaces) the check called ``name``."""
        if not isinstance(name, str) or not name:
            raise ArgumentTypeError("a readiness check needs a non-empty str name")
        if not callable(check):
            raise ArgumentTypeError("a readiness check must be callable")
        limit = checked_seconds(timeout)
        if limit == float("inf"):
            raise InvalidArgumentError("a readiness check needs a finite timeout")
        with self._lock:
            self._checks[name] = (check, limit)

    def remove(self, name: str) -> bool:
        with self._lock:
            self._running.pop(name, None)
            return self._checks.pop(name, None) is not None

    def names(self) -> list[str]:
        with self._lock:
            return list(self._checks)

    def clear(self) -> None:
        with self._lock:
            self._checks.clear()
            self._running.clear()

    def run(self) -> ReadinessReport:
        """Runs every check concurrently, each bounded by its timeout."""
        started = time.monotonic()
        failures: dict[str, str] = {}
        futures: dict[str, tuple[concurrent.futures.Future[object], float]] = {}
        with self._lock:
            for name, (check, limit) in self._checks.items():
                previous = self._running.get(name)
                if previous is not None and not previous.done():
                    failures[name] = "its previous run has not returned yet"
                    continue
                future = _start(check)
                self._running[name] = future
                futures[name] = (future, limit)
        for name, (future, limit) in futures.items():
            left = max(0.0, started + limit - time.monotonic())
            try:
                result = future.result(timeout=left)
            except concurrent.futures.TimeoutError:
                failures[name] = f"timed out after {limit:g} s"
            except Exception as error:  # noqa: BLE001 - a failing check is reported, not raised
                failures[name] = f"{type(error).__name__}: {error}"
            else:
                if not result:
                    failures[name] = f"returned {result!r}"
        for name, why in failures.items():
            logger.warning("last_call: readiness check %r failed: %s", name, why)
        return ReadinessReport(ready=not failures, failures=failures)


def _start(check: ReadinessCheck) -> concurrent.futures.Future[object]:
    """Runs ``check`` on a daemon thread of its own (a check that never
    returns must not keep the process alive at exit)."""
    future: concurrent.futures.Future[object] = concurrent.futures.Future()

    def run() -> None:
        try:
            future.set_result(check())
        except BaseException as error:  # noqa: BLE001 - handed to the waiter
            future.set_exception(error)

    threading.Thread(target=run, name="last-call-readiness", daemon=True).start()
    return future
