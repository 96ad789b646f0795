"""A Flask app whose settings come from all three places, for
test_host_settings.py: ``app.config`` from ``APP_CONFIG`` (JSON), the
keywords of ``serve()`` from ``SERVE_KEYWORDS`` (JSON), and the
environment. One app, several hosts:

* ``python settings_app.py waitress``: ``last_call.waitress.serve``;
* ``python settings_app.py wsgiref``: the standard library's plain WSGI
  server, with nothing installing the runtime's SIGTERM handling;
* ``python settings_app.py wsgiref-installed``: the same server, with
  ``manager.install_signal_handlers()`` and a hook that stops it, as
  docs/configuration.md says a plain WSGI server needs;
* ``gunicorn -c python:last_call.gunicorn settings_app:app``.
"""

import json
import logging
import os
import sys
import time

from flask import Flask, jsonify, request
from last_call import GracefulShutdownManager, Phase
from last_call.flask import GracefulShutdown, sse_stream

logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(name)s: %(message)s")
sys.stdout.reconfigure(line_buffering=True)

manager = GracefulShutdownManager()
app = Flask(__name__)
app.config.update(json.loads(os.environ.get("APP_CONFIG", "{}")))
GracefulShutdown(app, manager=manager)


@app.get("/stream")
@sse_stream
def stream():
    def ticks(count: int, interval: float):
        for sent in range(1, count + 1):
            time.sleep(interval)
            yield f"event: tick\ndata: {os.getpid()} {sent}\n\n"
        yield "event: done\ndata: end\n\n"

    return ticks(int(request.args.get("events", 3)), float(request.args.get("interval", 0.1)))


@app.get("/pid")
def pid():
    return jsonify({"worker": os.getpid()})


def main(mode: str) -> None:
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "0"))
    if mode == "waitress":
        from last_call.waitress import serve

        serve(app, host=host, port=port, threads=8, **json.loads(os.environ.get("SERVE_KEYWORDS", "{}")))
        return
    from wsgiref.simple_server import make_server

    server = make_server(host, port, app)
    if mode == "wsgiref-installed":
        manager.register_shutdown_hook("wsgiref", lambda _left: server.shutdown() or True)
        manager.install_signal_handlers()
    print(f"serving on http://{host}:{server.server_port}", flush=True)
    server.serve_forever()
    manager.wait_for_phase(Phase.STOPPED, timeout=10)
    print("stopped", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
