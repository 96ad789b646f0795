"""``lifespan()``, the Starlette/FastAPI lifespan that installs the
runtime's handling *after* uvicorn installed its own, starts the probe
listener and a heartbeat from the loop, and stops uvicorn in Stopping."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from .. import settings as settings_
from .._limits import raise_open_file_limit
from ..interface import ShutdownManager
from ..manager import GracefulShutdownManager, validate_environment
from ..phase import Phase
from ..workers import set_worker_processes
from . import _signals
from ._relay import manager_or_default
from ._uvicorn import UvicornStopper, uvicorn_server
from ._waits import wait_for_phase

logger = logging.getLogger("last_call.asgi")

PROBE_ADDR_ENV = "GS_PROBE_ADDR"
#: How often the loop sends the liveness heartbeat.
HEARTBEAT_INTERVAL = 1.0
#: How long the lifespan's end waits for the hooks registered after it.
_STOPPED_WAIT_SECONDS = 10.0

Lifespan = Callable[[Any], contextlib.AbstractAsyncContextManager[Any]]


def lifespan(
    app_lifespan: Lifespan | None = None,
    *,
    manager: ShutdownManager | None = None,
    install_signal_handlers: bool = True,
    **settings: Any,
) -> Lifespan:
    """A Starlette/FastAPI ``lifespan=`` that runs the app under the
    runtime's sequence (wrapping ``app_lifespan``, if given).

    ``settings`` are settings by keyword (``shutdown_timeout_seconds=6``
    for ``GS_SHUTDOWN_TIMEOUT_SECONDS``, ``probe_addr=`` for
    ``GS_PROBE_ADDR``; docs/configuration.md), over the environment; an
    unknown keyword is a TypeError naming the closest.

    At startup, on uvicorn's main thread, uvicorn's SIGTERM/SIGINT handlers
    are already installed (``Server.capture_signals``). They are replaced by
    a handler that only logs, and the runtime's handling is installed over
    it (``manager.install_signal_handlers()``), so the first SIGTERM starts
    the sequence while uvicorn keeps serving. A shutdown hook sets uvicorn's
    ``should_exit`` in Stopping; uvicorn's own shutdown then runs (streams
    are done by then). Because uvicorn never saw the signal, it has none to
    re-raise after its shutdown, and the process exits 0.

    ``probe_addr`` (unset: none) starts the runtime's probe listener, and a
    task on the loop sends the liveness heartbeat once a second: a wedged
    loop goes stale on ``/healthz``.

    Under ``uvicorn --workers N`` each worker runs this lifespan: it tells
    the runtime so (``last_call.workers``), and every worker's probe
    listener and hub then share the pod's one port each (``SO_REUSEPORT``);
    the hub then needs a shared store (``GS_STREAM_STORE=redis://...``).

    The settings are handed to the runtime and checked here, when the app
    is built (ConfigError naming the setting), not at the first SIGTERM.
    """
    if "shutdown" in settings:
        raise TypeError(
            "lifespan() no longer takes shutdown={...}: give each setting as a keyword of its own "
            "(shutdown_timeout_seconds=, drain_delay_seconds=, ...; docs/configuration.md)"
        )
    given = settings_.from_keywords(settings, "lifespan()")
    settings_.report_unknown_environment()
    if manager is None or isinstance(manager, GracefulShutdownManager):
        settings_.take(given, native=True)
        validate_environment()

    @contextlib.asynccontextmanager
    async def run(app: Any) -> AsyncIterator[Any]:
        raise_open_file_limit()
        runtime = manager_or_default(manager)
        loop = asyncio.get_running_loop()
        previous = signal.getsignal(signal.SIGTERM)
        stopper = UvicornStopper(loop, uvicorn_server(previous), previous)
        workers = _uvicorn_workers(stopper.server)
        if workers > 1 and isinstance(runtime, GracefulShutdownManager):
            # uvicorn --workers N: each worker's listeners share the pod's
            # ports (last_call.workers), before the probe listener and the
            # app's hub start.
            set_worker_processes(workers)
        address = given[PROBE_ADDR_ENV].text if PROBE_ADDR_ENV in given else settings_.address(PROBE_ADDR_ENV)
        if address is not None:
            runtime.start_probe_listener(address)
        # Registered before the signal handling, so that a SIGTERM held
        # during the take-over finds the hook that stops uvicorn (with no
        # drain delay the sequence may reach Stopping before the next line).
        hook = runtime.register_shutdown_hook("uvicorn", stopper)
        on_main_thread = threading.current_thread() is threading.main_thread()
        if install_signal_handlers and on_main_thread:
            if stopper.server is None:
                logger.warning("last_call: no uvicorn server found behind SIGTERM; Stopping calls its handler")
            _signals.take_over(runtime)
        elif install_signal_handlers:
            logger.warning("last_call: the lifespan runs off the main thread and installs no signal handlers")
        beat = asyncio.ensure_future(_heartbeat(runtime))
        try:
            if app_lifespan is None:
                yield None
            else:
                async with app_lifespan(app) as state:
                    yield state
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            stopper.lifespan_ended.set()
            runtime.remove_shutdown_hook(hook)  # no-op once it has run
            if runtime.phase >= Phase.STOPPING:
                # Hooks registered after ours finish before the process ends.
                await wait_for_phase(Phase.STOPPED, _STOPPED_WAIT_SECONDS, manager=runtime)

    return run


def _uvicorn_workers(server: Any) -> int:
    """The worker processes uvicorn runs (``--workers``), 1 if unknown."""
    workers = getattr(getattr(server, "config", None), "workers", None)
    return workers if isinstance(workers, int) and workers > 1 else 1


async def _heartbeat(runtime: ShutdownManager) -> None:
    while True:
        runtime.heartbeat()
        await asyncio.sleep(HEARTBEAT_INTERVAL)
