"""The legacy backend's run.py shape, for the tests: Python's signal.signal
with the manager's handle_sigterm, Waitress in a daemon thread, and the main
thread in wait_for_shutdown.

MODE=legacy (the default): the legacy file unchanged but for its import
line: plain ``waitress.serve``, then ``wait_for_streams`` and exit.
MODE=serve: the few lines that make it fully graceful: Waitress through
``last_call.waitress.serve`` (its stop hook), and the main thread waits for
Stopped.
SPOIL=NAME=VALUE: sets that environment variable once the handler is
installed (a configuration that went bad after start-up, changed from code).
"""

import logging
import os
import signal
import sys
import threading
import time

import waitress
from flask import Flask
from last_call import GracefulShutdownManager, Phase
from last_call.flask import health_blueprint, sse_stream
from last_call.waitress import serve

logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(name)s: %(message)s")
sys.stdout.reconfigure(line_buffering=True)

manager = GracefulShutdownManager()
app = Flask(__name__)
app.register_blueprint(health_blueprint(manager))


@app.get("/stream")
@sse_stream
def stream():
    def events():
        for number in range(int(os.environ.get("EVENTS", "10"))):
            time.sleep(0.2)
            yield f"data: {number}\n\n"

    return events()


def main() -> None:
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8080"))
    signal.signal(signal.SIGTERM, manager.handle_sigterm)
    spoil = os.environ.get("SPOIL")
    if spoil:
        name, _, value = spoil.partition("=")
        os.environ[name] = value
    if os.environ.get("MODE", "legacy") == "legacy":
        target = lambda: waitress.serve(app, host=host, port=port, threads=8)  # noqa: E731
    else:
        target = lambda: serve(app, host=host, port=port, threads=8)  # noqa: E731
    threading.Thread(target=target, daemon=True).start()
    manager.wait_for_shutdown()
    print("shutdown requested", flush=True)
    if os.environ.get("MODE", "legacy") == "legacy":
        finished = manager.wait_for_streams(timeout=20)
        print(f"streams finished: {finished}", flush=True)
    else:
        manager.wait_for_phase(Phase.STOPPED, timeout=30)
        print("stopped", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
