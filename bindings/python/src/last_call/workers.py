"""Worker processes that share one pod's ports: gunicorn ``-w N``,
uvicorn ``--workers N``.

Each worker runs its own probe listener and stream hub, bound with
``SO_REUSEPORT`` so that the kernel spreads the pod's connections over the
workers; with a shared store (``GS_STREAM_STORE=redis://...``) every
worker's hub follows every channel, so a subscriber held by one worker gets
the events any other publishes. ``last_call.gunicorn`` (in ``post_fork``)
and ``last_call.asgi.lifespan`` (from uvicorn's ``workers``) call
:func:`set_worker_processes` for you; call it yourself in another pre-fork
host, in each worker, before its listeners start.

With more than one worker the in-process store and port 0 are refused by
name when a listener starts (each worker would hold its own channels, or
listen on a port of its own). docs/hub.md says why this topology.
"""

from __future__ import annotations

from . import _native
from .errors import ArgumentTypeError
from .status import Status, error_for

__all__ = ["set_worker_processes"]


def set_worker_processes(workers: int) -> None:
    """Says that this process is one of ``workers`` worker processes of one
    pod (1: a process of its own, the default). ``InvalidArgumentError``
    below 1 (or beyond 2**32 - 1); ``TypeError`` for a non-integer."""
    if isinstance(workers, bool) or not isinstance(workers, int):
        raise ArgumentTypeError(f"workers must be an int, not {type(workers).__name__}")
    if not 1 <= workers <= 0xFFFF_FFFF:
        raise error_for(Status.INVALID_ARGUMENT, f"workers must be at least 1 (and fit 32 bits), not {workers}")
    _native.check(_native.library().gs_set_worker_processes(workers))
