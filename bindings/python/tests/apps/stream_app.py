"""A small Flask app served by last_call.waitress.serve, for the
tests: SSE streams of several shapes, each with its known pitfall.

Run: python stream_app.py  (HOST, PORT, GS_* from the environment; PORT=0
picks a free port, printed in the "serving on" log line).
"""

import logging
import os
import sys
import threading
import time

from flask import Flask, Response, request
from last_call import GracefulShutdownManager
from last_call.flask import health_blueprint, sse_stream
from last_call.waitress import serve
from left_behind import install as leave_behind

logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(name)s: %(message)s")
# Line-buffered, so the test reads each log line as it is written.
sys.stdout.reconfigure(line_buffering=True)

manager = GracefulShutdownManager()
leave_behind(manager)  # LEFT_BEHIND: test_host_exit.py
app = Flask(__name__)
app.register_blueprint(health_blueprint(manager))


def events(count: int, interval: float, fail_after: int = -1):
    """`count` events `interval` apart (count 0: forever), with heartbeat
    comments while idle; raises after `fail_after` events if >= 0."""
    sent = 0
    while count == 0 or sent < count:
        if sent == fail_after:
            raise RuntimeError("the generator failed mid-stream")
        time.sleep(interval)
        sent += 1
        yield f"event: tick\ndata: {sent}\n\n"
    yield "event: done\ndata: end\n\n"


@app.route("/stream", methods=["GET", "HEAD"])
@sse_stream
def stream():
    return events(int(request.args.get("events", 3)), float(request.args.get("interval", 0.1)))


@app.get("/stream-slow-finish")
def stream_slow_finish():
    """A stream whose response does more work after the body is closed (a
    call_on_close callback): Waitress writes the terminating chunk only
    after it, well after the stream was uncounted."""
    response = sse_stream(lambda: events(3, 0.05))()
    response.call_on_close(lambda: time.sleep(0.3))
    return response


@app.get("/raising-stream")
@sse_stream
def raising_stream():
    return events(5, 0.05, fail_after=1)


@app.get("/after-request-raises")
@sse_stream
def after_request_raises():
    return events(3, 0.05)


@app.after_request
def fail_for_one_path(response):
    if request.path == "/after-request-raises":
        raise RuntimeError("after_request failed after the view returned its stream")
    return response


@app.get("/not-a-stream")
@sse_stream
def not_a_stream():
    return Response("plain", mimetype="text/plain")


@app.get("/counts")
def counts():
    return {
        "active": manager.active_streams,
        "started": manager.streams_started_total,
        "finished": manager.streams_finished_total,
    }


@app.get("/hog")
def hog():
    """Holds the GIL for `seconds` from a background thread: a tight loop of
    long C-level computations (the interpreter cannot switch threads inside
    one)."""

    def burn(until: float) -> None:
        while time.monotonic() < until:
            sum(range(3_000_000))

    seconds = float(request.args.get("seconds", 3))
    threading.Thread(target=burn, args=(time.monotonic() + seconds,), daemon=True).start()
    return {"hogging": seconds}


@app.get("/wedge-loop")
def wedge_loop():
    """Blocks Waitress's main loop for `seconds` (a thunk run by the loop
    that sleeps): the loop the heartbeat comes from stops."""
    seconds = float(request.args.get("seconds", 3))
    # The request's channel knows its server, and the server its trigger.
    channel = request.environ["waitress.client_disconnected"].__self__
    channel.server.trigger.pull_trigger(lambda: time.sleep(seconds))
    return {"wedged": seconds}


if os.environ.get("READINESS") == "fail":
    manager.add_readiness_check("database", lambda: False)
elif os.environ.get("READINESS") == "hang":
    manager.add_readiness_check("database", lambda: time.sleep(60), timeout=0.3)


@manager.on_phase
def log_phase(old, new):
    logging.getLogger("stream_app").info("phase %s -> %s", old.label, new.label)


if __name__ == "__main__":
    serve(
        app,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "0")),
        threads=int(os.environ.get("THREADS", "8")),
        not_ready_when_saturated=float(os.environ["NOT_READY_WHEN_SATURATED"])
        if "NOT_READY_WHEN_SATURATED" in os.environ
        else None,
    )
    logging.getLogger("stream_app").info("serve returned; exiting 0")
    # A host with a slow teardown: its own listener is closed by now.
    time.sleep(float(os.environ.get("LINGER_AFTER_SERVE_SECONDS", "0")))
