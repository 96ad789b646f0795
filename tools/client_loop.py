"""A population of the rolling harness's clients on an event loop of its
own, in a thread (``rolling.Clients``, ``handoff_clients.HandoffClients``),
and the connection pools its thousands of streams share.

The harness's main thread starts the pods, rolls them and waits on their
clocks; the clients run beside it from construction to ``stop()``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading

import httpx

#: Clients per shared connection pool: a single pool stalls with thousands
#: of streams waiting on it.
PER_TRANSPORT = 250


def new_transport(receive_buffer: int | None = None) -> httpx.AsyncHTTPTransport:
    """A connection pool for many clients (building one loads TLS
    certificates: ~30 ms of CPU each, too much to build one per client).
    `receive_buffer`: its sockets' SO_RCVBUF (a slow reader's small one)."""
    options = [(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)] if receive_buffer else None
    return httpx.AsyncHTTPTransport(
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=100),
        socket_options=options,
        trust_env=False,
    )


class ClientLoop:
    """Runs ``_run()`` on an event loop of its own (a daemon thread) from
    construction until it returns or ``stop()``: a subclass sets what
    ``_run`` reads, then calls ``super().__init__()``. The clients watch
    ``stop_event``; ``stop()`` closes the ``transports`` ``_run`` made."""

    def __init__(self) -> None:
        self.transports: list[httpx.AsyncHTTPTransport] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.stop_event = asyncio.Event()
        self.future = asyncio.run_coroutine_threadsafe(self._main(), self.loop)

    async def _main(self) -> None:
        # The event the clients wait on, made on the loop they run on.
        self.stop_event = asyncio.Event()
        await self._run()

    async def _run(self) -> None:
        raise NotImplementedError

    def _harness_error(self, error: Exception) -> None:
        """Where the clients' own failure is reported (never hidden)."""
        raise NotImplementedError

    def stop(self, timeout: float) -> None:
        """Tells the clients to stop and waits up to `timeout` for them;
        those still waiting on a stream then are cancelled. Closes the
        transports, then the loop and its thread."""
        self.loop.call_soon_threadsafe(self.stop_event.set)
        try:
            self.future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            # Streams with nothing to say for a while: dropped. Closing their
            # generators then is noise, not a finding (the loop's handler).
            self.loop.set_exception_handler(lambda _loop, _context: None)
            self.loop.call_soon_threadsafe(self.future.cancel)
            try:
                self.future.result(timeout=10)
            except (asyncio.CancelledError, concurrent.futures.CancelledError, concurrent.futures.TimeoutError):
                pass
        except Exception as error:  # noqa: BLE001 - reported, never hidden
            self._harness_error(error)
        try:
            for transport in self.transports:
                asyncio.run_coroutine_threadsafe(transport.aclose(), self.loop).result(timeout=10)
            asyncio.run_coroutine_threadsafe(self.loop.shutdown_asyncgens(), self.loop).result(timeout=10)
        except Exception:  # noqa: BLE001 - best effort at the end
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
