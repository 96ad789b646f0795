"""A flood of a listener and the kubelet's probe through it (issue 27):
connections that never finish a request, held and re-opened as they are
dropped, and a probe that opens a new connection and sends the whole
request at once, as the kubelet does. Used by the probe-port tests
(bindings/python/tests/test_probes.py) and benches/probe_flood.py."""

from __future__ import annotations

import threading


class Flood:
    """``held`` connections to ``port`` that never send a request (one in
    ten sends the start of one), the oldest replaced by a new one again and
    again as an attacker re-opens what is dropped; bounded in all."""

    def __init__(self, port: int, held: int, rounds: float = 3) -> None:
        import collections
        import socket

        self._stop = threading.Event()
        self._filled = threading.Event()
        self.opened = 0
        #: Set while connections are still being opened and replaced (after
        #: ``held * rounds`` of them, the last ``held`` are only held).
        self.reopening = threading.Event()
        self.reopening.set()

        def run() -> None:
            open_ = collections.deque()
            for n in range(int(held * rounds)):
                if self._stop.is_set():
                    break
                if len(open_) >= held:
                    open_.popleft().close()
                    self._filled.set()
                try:
                    sock = socket.create_connection(("127.0.0.1", port), timeout=2)
                    if n % 10 == 0:
                        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                except OSError:
                    continue
                self.opened += 1
                open_.append(sock)
            self._filled.set()
            self.reopening.clear()
            self._stop.wait(60)
            for sock in open_:
                sock.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert self._filled.wait(60), "the flood never filled"

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def kubelet_probe(port: int, path: str, within: float) -> int:
    """What the kubelet does: a new connection, the whole request at once;
    the status read within ``within`` seconds (an OSError otherwise)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=within) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: kubelet\r\nConnection: close\r\n\r\n".encode())
        head = b""
        while len(head) < 12:
            chunk = sock.recv(64)
            if not chunk:
                raise ConnectionError(f"closed after {head!r}")
            head += chunk
    return int(head[9:12])
