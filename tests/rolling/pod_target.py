"""A tiny server for the kubelet stand-in's tests, run as a container's
PID 1. It announces "serving on http://127.0.0.1:PORT" like the example
servers, and from the environment:

* FAIL_HEALTHZ: /healthz answers 500 this many times, then 200 (-1: always 500);
* ON_SIGTERM: "exit" exits 0 on SIGTERM; unset, no handler (PID 1 then
  ignores SIGTERM, as in a pod);
* ALLOCATE_MB: after start, holds this many MiB (to go over a memory limit).
"""

import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

failures_left = int(os.environ.get("FAIL_HEALTHZ", "0"))


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        global failures_left
        status = 200
        if self.path == "/healthz" and failures_left != 0:
            failures_left -= 1 if failures_left > 0 else 0
            status = 500
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


if os.environ.get("ON_SIGTERM") == "exit":
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "0"))), Handler)
print(f"serving on http://127.0.0.1:{server.server_address[1]}", flush=True)
held = []
for _ in range(int(os.environ.get("ALLOCATE_MB", "0"))):
    held.append(bytearray(1 << 20))  # touched: bytearray zero-fills
print(f"holding {len(held)} MiB", flush=True)
sys.stdout.flush()
server.serve_forever()
