"""Serve a WSGI app with gunicorn (gthread workers) through the whole
shutdown sequence. A gunicorn config module::

    gunicorn -c python:last_call.gunicorn -w 2 --threads 16 app:app

or, in an existing config file::

    from last_call.gunicorn import *  # the hooks and the derived settings

**One probe listener per pod, in the master.** The kubelet signals the
container's main process, gunicorn's master (the arbiter); the workers are
its children. The master runs the pod's runtime: it installs the runtime's
signal handling and starts the probe listener (``GS_PROBE_ADDR``) in
``when_ready``, before it forks any worker, and every forked worker closes
its copy of that socket (the runtime's fork handling), so exactly one
listener answers for the pod, from a native thread of a process that never
serves a request and never closes it before its own exit. Its state is the
pod's:

* **readiness**: 503 from the master's SIGTERM on (it is the master's phase),
  and 503 while no worker is running (a readiness check on the arbiter's
  worker table);
* **liveness**: the heartbeat is sent from the arbiter's loop, so a wedged
  master is restarted; a wedged worker is gunicorn's own business (its
  ``--timeout``, on a heartbeat the gthread worker sends from its loop,
  not from the threads that hold streams);
* **the sequence**: at its SIGTERM the master counts one hold (work, not
  a stream) per running worker and forwards SIGTERM to each; it reaches
  Stopping when the last worker has exited (or at the hook budget), so the
  probe says Draining until every worker is done;
* **the figures**: the master shares a region with its workers before it
  forks (``pre_fork`` gives each a slot, ``post_fork`` joins it,
  ``child_exit`` frees it), each worker adds its streams and work to its
  slot, and every ``/metrics`` of the pod (the probe port, each worker's
  app port) reports the sums: the pod's streams, never the master's holds.

**Settings the master reads for the pod.** Without ``--preload`` the master
never loads the app: it reads ``MASTER_SETTINGS`` in ``when_ready``, and a
worker whose app gives one of them another value fails to start, naming
it (``last_call.settings``). With ``--preload`` the app's settings are the
master's too, and ``graceful_timeout`` follows its timeout.

**Threads.** A gthread worker with ``--threads`` below
``GS_EXPECTED_STREAMS + 4`` (2 when it is unset) is refused at start, as the
sync worker is (see ``_check_threads``).

**The workers.** In ``post_worker_init`` each worker replaces gunicorn's
SIGTERM handling (which stops accepting at once) with the runtime's, so the
forwarded SIGTERM starts the worker's own sequence with the same ``GS_*``
durations: it keeps accepting, answers new tasks 503 + Retry-After, lets its
streams run to their end, ends the ones still open at ClosingStreams with
their kind's ending, runs the app's hooks, and only then (its last hook)
tells the gthread worker to stop. No respawn happens after the signal.

**Timeouts.** gunicorn's ``graceful_timeout`` only starts counting once a
worker or the master has reached Stopping (nothing tells gunicorn to stop
before), so it only has to cover the hooks: it defaults here to
``GS_SHUTDOWN_TIMEOUT_SECONDS``, and a value below
``GS_HOOK_BUDGET_SECONDS`` is refused at start. The worker class must be
gthread (``-k gthread``, or ``--threads`` > 1): a sync worker holds its only
thread for a stream's whole life and is killed by ``--timeout`` mid-stream;
other classes are refused too.

**The stream hub with several workers.** The app starts the hub in each
worker (from its factory, loaded in the worker; not at import with
``--preload``, which would start it in the master: refused in
``when_ready``). ``post_fork`` tells each worker's runtime how many workers
share the pod, so every worker's hub binds the one ``GS_STREAM_ADDR`` port
with ``SO_REUSEPORT`` and the kernel spreads subscribers over them; with a
shared store (``GS_STREAM_STORE=redis://...``) each follows every channel,
so a subscriber gets a task's events whichever worker runs the task. The
in-process store with ``-w`` > 1 is refused by name (docs/hub.md).

SIGINT (Ctrl-C) keeps gunicorn's quick shutdown. The master exits 0.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import queue
import signal
import socket
import sys
import threading
import time
import weakref
from typing import Any

from . import _exit, _native, settings
from ._limits import raise_open_file_limit
from .errors import GracefulShutdownError
from .manager import GracefulShutdownManager, default_manager
from .phase import Phase

__all__ = [
    "child_exit",
    "graceful_timeout",
    "on_exit",
    "on_starting",
    "post_fork",
    "post_worker_init",
    "pre_fork",
    "when_ready",
    "worker_class",
    "worker_exit",
]

logger = logging.getLogger("last_call.gunicorn")

PROBE_ADDR_ENV = "GS_PROBE_ADDR"

#: How long a process that is exiting waits for its runtime to reach
#: Stopped (its last hook returned): a hook thread still inside Python when
#: the interpreter finalizes would be ended by CPython mid-call.
EXIT_WAIT_SECONDS = 5.0

#: The only worker class whose streams neither block the worker's loop nor
#: starve its heartbeat.
worker_class = "gthread"


class GunicornConfigError(RuntimeError):
    """gunicorn's settings cannot keep streams alive (gunicorn prints a
    RuntimeError raised while starting and exits 1)."""


def _runtime_config() -> _native.Config:
    """The GS_* durations, parsed by the runtime (ConfigError names a
    malformed variable)."""
    config = _native.Config()
    _native.check(_native.library().gs_config_from_env(ctypes.byref(config)))
    # The defaults left unset are scaled to the timeout: resolve them to
    # the durations the sequence will use.
    _native.check(_native.library().gs_config_resolve(ctypes.byref(config)))
    return config


def _derived_graceful_timeout() -> int:
    # gunicorn wants whole seconds; an infinite timeout has no bound to give.
    try:
        seconds = float(_runtime_config().shutdown_timeout_seconds)
    except GracefulShutdownError:  # reported by on_starting, by name
        return 30
    return math.ceil(seconds) if math.isfinite(seconds) else 30


#: Counted by gunicorn from a worker's (or the master's) Stopping only.
graceful_timeout = _derived_graceful_timeout()


def on_starting(server: Any) -> None:
    """The master, before anything: refuse settings that cut streams."""
    # Inherited by every worker forked from here.
    raise_open_file_limit()
    from gunicorn.workers.gthread import ThreadWorker  # type: ignore[import-untyped]

    settings.report_unknown_environment()
    try:
        config = _runtime_config()
    except GracefulShutdownError as error:
        raise GunicornConfigError(f"last_call: {error}") from error
    chosen = server.cfg.worker_class
    if not (isinstance(chosen, type) and issubclass(chosen, ThreadWorker)):
        raise GunicornConfigError(
            f"last_call: worker class {server.cfg.worker_class_str!r} cannot keep SSE streams alive: "
            "a stream holds a sync worker's only thread (and its --timeout kills it mid-stream); "
            "use -k gthread (or --threads N > 1)"
        )
    _check_threads(server.cfg.threads)
    if math.isfinite(config.shutdown_timeout_seconds) and server.cfg.graceful_timeout == graceful_timeout:
        # Left to this module's default, derived when the config module was
        # imported: the app loaded since (--preload) may have given the
        # timeout another value.
        server.cfg.set("graceful_timeout", math.ceil(config.shutdown_timeout_seconds))
    if server.cfg.graceful_timeout < config.hook_budget_seconds:
        raise GunicornConfigError(
            f"last_call: graceful_timeout={server.cfg.graceful_timeout} is shorter than "
            f"GS_HOOK_BUDGET_SECONDS={config.hook_budget_seconds}: gunicorn would kill workers "
            "while their shutdown hooks run; leave graceful_timeout unset (it is derived from "
            "GS_SHUTDOWN_TIMEOUT_SECONDS) or raise it"
        )


#: Threads a gthread worker keeps free beside the streams it holds: for
#: the app's other requests (task starts, its own /readyz) while every
#: stream holds a thread.
THREAD_HEADROOM = 4
EXPECTED_STREAMS = "GS_EXPECTED_STREAMS"


def _check_threads(threads: int) -> None:
    """Refuses a gthread worker whose threads cannot hold its streams.

    A refusal, not a warning, as for the sync worker: gunicorn ``-w 2``
    without ``--threads`` runs one thread per worker, and there 1 to 3 of 5
    clients got "Server disconnected without sending a response", queued
    ones started 7 s late and the exit took 17 s; a warning scrolls by
    unread in a rollout, a worker that does not start is seen at once,
    and the fix is one flag. ``GS_EXPECTED_STREAMS`` (the streams one
    worker holds on its own threads; 0 when the stream hub holds them)
    sets the floor at that plus ``THREAD_HEADROOM``; unset, a worker needs
    at least 2 threads (a stream and anything else)."""
    text = settings.package_value(EXPECTED_STREAMS)
    if text is None:
        needed, why = 2, f"one stream holds a thread for its whole life, and {EXPECTED_STREAMS} is not set"
    else:
        expected = int(text)
        needed = expected + THREAD_HEADROOM if expected > 0 else 1
        why = (
            f"{EXPECTED_STREAMS}={expected} (from {settings.source_of(EXPECTED_STREAMS)}) streams hold a thread "
            f"each, with {THREAD_HEADROOM} to spare for the app's other requests"
        )
    if threads < needed:
        raise GunicornConfigError(
            f"last_call: a gthread worker with --threads {threads} cannot hold its streams: {why}; requests "
            f"would queue behind the streams and clients be cut. Give --threads {needed} or more (per worker; "
            f"-w multiplies it), and set {EXPECTED_STREAMS} to the streams one worker should hold "
            f"(0 when the stream hub holds them)"
        )


#: The settings gunicorn's master reads for the pod before any worker
#: loads the app (without --preload): an app's value for one of these that
#: differs fails the worker's start (``last_call.settings``); the drain
#: delay among them, since the master's sequence keeps the pod until its
#: own ends. The close notice and the hooks' budget shape only each
#: worker's own sequence, which it configures after loading the app: those
#: may be the app's.
MASTER_SETTINGS = (
    "GS_SHUTDOWN_TIMEOUT_SECONDS",
    "GS_DRAIN_DELAY_SECONDS",
    "GS_SECOND_SIGNAL",
    "GS_EXIT_WATCHDOG_SECONDS",
    "GS_EXIT_WATCHDOG_STATUS",
    "GS_PROBE_ADDR",
    "GS_DRAIN_TOKEN",
    "GS_HEARTBEAT_STALE_SECONDS",
    "GS_LISTEN_BACKLOG",
    # The master's own shutdown log: an app that turned it off in its
    # configuration turned it off in the workers only, silently.
    "GS_SHUTDOWN_LOG",
)
WORKER_SETTINGS = ("GS_CLOSE_NOTICE_SECONDS", "GS_HOOK_BUDGET_SECONDS")

#: Slots of the pod's figures (last_call's pod_figures): one per live
#: worker, far more than a pod runs.
POD_SLOTS = 1024


class _Master:
    """The pod's side of the runtime, in the arbiter. ``term`` and
    ``child_exit`` run on the arbiter's main thread (its signal queue);
    ``stop_hook`` on a runtime hook thread, which hands the stop to the main
    thread through the same queue."""

    def __init__(self, server: Any, manager: GracefulShutdownManager) -> None:
        self.server = server
        self.manager = manager
        self.held: set[int] = set()
        self.forwarded = False
        self.stop_requested = threading.Event()
        #: Free slots of the pod's figures (None: not shared).
        self.free_slots: list[int] | None = None
        # One count held from when_ready until the workers have been counted
        # and signalled (term, on the arbiter's loop): the native handler
        # starts the sequence at the signal itself, and with no drain delay
        # it would otherwise reach Stopping (and halt the arbiter, whose
        # graceful_timeout then kills workers still stopping) before the
        # arbiter's loop has counted a single worker. Work, not a stream:
        # the master holds no stream, and its figures are the workers'.
        manager.begin_work()
        self.holding_start = True

    def term(self) -> None:
        server = self.server
        if self.stop_requested.is_set():
            raise StopIteration  # gunicorn's own handle_term: halt()
        # Started already by the native handler; this covers a SIGTERM that
        # gunicorn queued before when_ready installed it.
        self.manager.begin_shutdown()
        if self.forwarded:
            server.log.info("last_call: SIGTERM again; the shutdown sequence is already running")
            return
        self.forwarded = True
        # No respawn and no scaling while the pod drains.
        server.manage_workers = lambda: None
        try:
            for pid in list(server.WORKERS):
                self.held.add(pid)
                self.manager.begin_work()
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    self._release(pid)
        finally:
            self._release_start_hold()
        server.log.info("last_call: draining; SIGTERM forwarded to workers %s", sorted(self.held))

    def _release_start_hold(self) -> None:
        if self.holding_start:
            self.holding_start = False
            self.manager.end_work()

    def _release(self, pid: int) -> None:
        if pid in self.held:
            self.held.discard(pid)
            self.manager.end_work()

    def take_slot(self) -> int | None:
        """A free slot of the pod's figures for the worker about to fork."""
        if not self.free_slots:
            return None
        return self.free_slots.pop()

    def child_exit(self, worker: Any) -> None:
        self._release(worker.pid)
        slot = getattr(worker, "last_call_slot", None)
        if isinstance(slot, int) and self.free_slots is not None:
            # The worker's streams ended with it; the slot is free again.
            _native.check(_native.library().gs_pod_figures_release(slot))
            self.free_slots.append(slot)

    def stop_hook(self, seconds_left: float) -> bool:
        self.stop_requested.set()
        self.server.signal(signal.SIGTERM, None)  # queued for the main loop
        # Not the whole share: a hook still waiting at its end is reported
        # as left running.
        deadline = time.monotonic() + max(seconds_left, 0.0) * 0.9
        while self.server.WORKERS and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self.server.WORKERS

    def workers_running(self) -> bool:
        return bool(self.server.WORKERS)


_master: _Master | None = None


def when_ready(server: Any) -> None:
    """The master, before the first fork: the runtime's signal handling,
    the pod's probe listener, the hold per worker and the stop hook."""
    global _master
    from . import hub

    if hub.address() is not None:
        # Started at import with --preload: the master's hub would hold
        # every subscriber, and no worker could publish to it.
        raise GunicornConfigError(
            "last_call: the stream hub was started in gunicorn's master (--preload imports the app "
            "there): start it in each worker instead (from the app factory, or a post_fork hook), "
            "where its publishes are"
        )
    manager = default_manager()
    # Read here for the pod, before any worker loads the app: an app's
    # value that differs fails the worker's start, naming it.
    settings.mark_read(MASTER_SETTINGS, settings.GUNICORN_MASTER)
    master = _Master(server, manager)
    _master = master
    # The pod's figures: every worker adds its streams to a slot of a
    # region shared from here, and every /metrics of the pod sums them.
    _native.check(_native.library().gs_pod_figures_share(POD_SLOTS))
    master.free_slots = list(range(POD_SLOTS - 1, -1, -1))
    # gunicorn's Python handlers are installed: the runtime's chains them,
    # so the arbiter still hears SIGTERM (handled by master.term).
    manager.install_signal_handlers(handle_sigint=False)
    server.handle_term = master.term
    addr = settings.address(PROBE_ADDR_ENV)
    if addr is not None:
        manager.start_probe_listener(addr)
    manager.add_readiness_check("gunicorn-workers", master.workers_running)
    murder_workers = server.murder_workers

    def murder_workers_and_beat() -> None:
        # Called once per arbiter loop turn (at least once a second).
        manager.heartbeat()
        murder_workers()

    server.murder_workers = murder_workers_and_beat
    halt = server.halt

    def halt_noting_status(reason: Any = None, exit_status: int = 0) -> None:
        # The status the master exits with, should it have to end the
        # process itself at exit (last_call._exit).
        _exit.note_exit_status(exit_status)
        halt(reason, exit_status)

    server.halt = halt_noting_status
    manager.register_shutdown_hook("gunicorn-master", master.stop_hook)
    for listener in server.LISTENERS:
        server.log.info("last_call: serving on %s", listener)


def child_exit(server: Any, worker: Any) -> None:  # noqa: ARG001 - gunicorn's signature
    """The master, when a worker has exited: its hold ends."""
    if _master is not None:
        _master.child_exit(worker)


#: How long a stopping worker keeps a kept-alive connection open for a
#: request already on its way (gunicorn's own ``STOP_KEEPALIVE_LINGER`` is
#: 2 s); at most a quarter of the stop hook's share.
STOP_LINGER_SECONDS = 0.1


class _WorkerStop:
    """The worker's last shutdown hook: gunicorn's own stop of the gthread
    worker, run inside the hook and finished within its share, so that the
    runtime reaches Stopped only when the worker's loop has returned and the
    process exits at once after it (the exit watchdog counts from Stopped).

    Left to itself, gunicorn (27) keeps each kept-alive connection open for
    ``STOP_KEEPALIVE_LINGER`` (2 s) after the stop, to answer a request
    already on its way with ``Connection: close``; a load balancer keeps
    its connections to the pod alive, so the worker outlived Stopped by 2 s
    and the exit watchdog ended it with status 70. Here the linger is cut
    to ``STOP_LINGER_SECONDS``: by this point the pod has answered /readyz
    503 for the whole sequence, so no balancer should still be sending, and
    a request already in a socket still gets its answer.

    A connection on which the client has sent nothing holds a worker thread
    for gunicorn's data timeout (5 s), then waits in the loop for up to its
    keep-alive timeout, and the stopping loop waits for it: one silent
    client opened just before the hooks kept the worker (and so the pod)
    past the exit watchdog. After the linger, the stop shuts such
    connections down (no request can be lost on them), which wakes their
    thread or the loop, and gunicorn closes them as it closes any
    connection its client ended."""

    def __init__(self, worker: Any) -> None:
        self.worker = worker
        self.loop_returned = threading.Event()
        self.lock = threading.Lock()
        self.connections: weakref.WeakSet[Any] = weakref.WeakSet()
        enqueue = getattr(worker, "enqueue_req", None)
        if enqueue is not None:

            def enqueue_noting(conn: Any) -> None:
                # Every connection the worker serves passes here (accepted,
                # or back from the loop), on the worker's main thread.
                with self.lock:
                    self.connections.add(conn)
                enqueue(conn)

            worker.enqueue_req = enqueue_noting
        run = worker.run

        def run_then_note() -> None:
            # gunicorn calls self.run() right after post_worker_init; an
            # instance attribute shadows the class's method.
            try:
                run()
            finally:
                self.loop_returned.set()

        worker.run = run_then_note

    def stop(self, seconds_left: float) -> bool:
        from gunicorn.workers import gthread  # type: ignore[import-untyped]

        # gunicorn 27 has it; a gthread worker without it has no stop linger.
        linger = getattr(gthread, "STOP_KEEPALIVE_LINGER", None)
        if isinstance(linger, (int, float)):
            # A module global read when the loop stops; this process is
            # this worker alone.
            gthread.STOP_KEEPALIVE_LINGER = min(float(linger), STOP_LINGER_SECONDS, max(seconds_left, 0.0) / 4)
        # handle_exit wakes the gthread worker's loop (its method queue): it
        # stops accepting, finishes its in-flight requests and returns.
        self.worker.handle_exit(signal.SIGTERM, None)
        # Not the whole share: a hook still waiting at its end is reported
        # as left running.
        deadline = time.monotonic() + max(seconds_left, 0.0) * 0.9
        if self.loop_returned.wait(min(STOP_LINGER_SECONDS, max(seconds_left, 0.0) / 4)):
            return True
        self._shut_silent_connections()
        return self.loop_returned.wait(max(deadline - time.monotonic(), 0.0))

    def _shut_silent_connections(self) -> None:
        with self.lock:
            connections = list(self.connections)
        for conn in connections:
            if getattr(conn, "initialized", True) or getattr(conn, "data_ready", True):
                continue  # a request has begun on it: it is answered
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # closed meanwhile


def _sigterm_queued_for_the_arbiter() -> bool:
    """Whether a SIGTERM reached this worker between its fork and gunicorn's
    signal handling (``init_signals``). Until then the worker has the
    master's handler, which only queues the signal for the arbiter's loop,
    and that loop never runs in a worker: the worker's copy of the queue is
    the one trace of it. A SIGTERM already queued in the master at the fork
    is there too; the master forwards that one to this worker anyway."""
    if _master is None:
        return False
    queued = getattr(_master.server, "SIG_QUEUE", None)
    if isinstance(queued, list):  # older gunicorn
        return signal.SIGTERM in queued
    seen: list[object] = []
    # A SimpleQueue (gunicorn 27): this copy is read by nobody else.
    while queued is not None and len(seen) < 1000:
        try:
            seen.append(queued.get_nowait())
        except queue.Empty:
            break
    return signal.SIGTERM in seen


def pre_fork(server: Any, worker: Any) -> None:  # noqa: ARG001 - gunicorn's signature
    """The master, before each fork: the slot of the pod's figures the
    worker will add its streams to."""
    if _master is not None:
        worker.last_call_slot = _master.take_slot()
        if worker.last_call_slot is None:
            logger.warning("last_call: no slot of the pod's figures is free; this worker's streams are not in them")


def post_fork(server: Any, worker: Any) -> None:
    """Each worker, right after the fork, before its app is loaded: with
    several workers, the hub the app starts in each shares the pod's one
    hub port (``last_call.workers``; the in-process store and port 0 are
    then refused by name); its streams are added to its slot of the pod's
    figures; and the settings of its own sequence may be the app's."""
    from .workers import set_worker_processes

    set_worker_processes(max(1, int(server.num_workers)))
    slot = getattr(worker, "last_call_slot", None)
    if isinstance(slot, int):
        _native.check(_native.library().gs_pod_figures_join(slot))
    settings.forget(WORKER_SETTINGS)


def post_worker_init(worker: Any) -> None:
    """Each worker, after its app is loaded: the runtime's SIGTERM handling
    instead of gunicorn's, and the worker's stop as its last hook."""
    manager = default_manager()
    # A Python handler, not the runtime's native one: the worker inherited
    # the master's native handler table through fork, and gunicorn's
    # init_signals has since replaced the OS-level handler, which a second
    # native install would not restore. The gthread worker's main thread
    # sits in a poll that the signal wakes (gunicorn sets the wakeup fd), so
    # the handler runs at once. Reading handle_sigterm validates the GS_*
    # settings and arms the exit watchdog.
    signal.signal(signal.SIGTERM, manager.handle_sigterm)
    # The master's worker-table check came through fork; in a worker it
    # would always fail (its arbiter copy has no workers) and make the
    # app's own /readyz answer 503.
    manager.remove_readiness_check("gunicorn-workers")
    # Likewise the master's stop hook: in a worker it would wait on the
    # arbiter copy's workers for its whole share, and leave less to the
    # worker's own hooks.
    if _master is not None:
        manager.remove_shutdown_hook(_master.stop_hook)

    stopper = _WorkerStop(worker)
    manager.register_shutdown_hook("gunicorn-worker", stopper.stop)
    if _sigterm_queued_for_the_arbiter():
        # The master's SIGTERM came while this worker booted: start now.
        manager.handle_sigterm(signal.SIGTERM, None)
    worker.log.info("last_call: worker %s ready; SIGTERM starts its shutdown sequence", os.getpid())


def _let_hooks_return(manager: GracefulShutdownManager) -> None:
    if manager.phase is not Phase.SERVING:
        manager.wait_for_phase(Phase.STOPPED, timeout=EXIT_WAIT_SECONDS)


def worker_exit(server: Any, worker: Any) -> None:  # noqa: ARG001 - gunicorn's signature
    """Each worker, before its interpreter exits: its stop hook has
    returned into the runtime (see EXIT_WAIT_SECONDS), and the status it
    exits with is noted. gunicorn calls this from the ``finally`` of the
    worker's life, while its ``sys.exit(status)`` is on its way out."""
    leaving = sys.exc_info()[1]
    if isinstance(leaving, SystemExit):
        _exit.note_exit_status(leaving.code)
    elif leaving is not None:
        _exit.note_exit_status(1)
    _let_hooks_return(default_manager())


def on_exit(server: Any) -> None:  # noqa: ARG001 - gunicorn's signature
    """The master, before it exits 0: likewise for its stop hook."""
    _let_hooks_return(default_manager())
