"""pytest plugin, loaded by itself through the ``pytest11`` entry point.

Before and after each test, the process-wide runtime goes back to a clean
state (``last_call.testing.reset``): Serving, no streams, no sequence
running, the callbacks, hooks and readiness checks the test registered
removed. So tests of code that calls ``set_draining``, ``handle_sigterm`` or
``begin_shutdown`` can run in one process, in any order.

The ``graceful_shutdown`` fixture gives a test the (clean) process-wide
manager explicitly.

Disable with ``-p no:last_call``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import testing
from .manager import GracefulShutdownManager


@pytest.fixture(autouse=True)
def _last_call_clean_runtime() -> Iterator[None]:
    testing.reset()
    yield
    testing.reset()


@pytest.fixture
def graceful_shutdown() -> GracefulShutdownManager:
    """The process-wide manager, in a clean state."""
    manager = GracefulShutdownManager()
    testing.reset()
    return manager
