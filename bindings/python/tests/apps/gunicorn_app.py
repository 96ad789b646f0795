"""A small Flask app for the gunicorn tests, served by
``gunicorn -c python:last_call.gunicorn``: SSE streams of a given length
(resumable, or pod-bound with a final event), a task start refused while
draining, and the worker's pid in every answer so that a test can tell
the workers apart."""

import os
import time

from flask import Flask, jsonify, request
from last_call import GracefulShutdownManager, StreamKind
from last_call.flask import GracefulShutdown, sse_stream
from left_behind import install as leave_behind

manager = GracefulShutdownManager()
leave_behind(manager)  # LEFT_BEHIND: test_host_exit.py
app = Flask(__name__)
GracefulShutdown(app, manager=manager)


def ticks(count: int, interval: float):
    for sent in range(1, count + 1):
        time.sleep(interval)
        yield f"event: tick\ndata: {os.getpid()} {sent}\n\n"
    yield "event: done\ndata: end\n\n"


@app.get("/stream")
@sse_stream
def stream():
    return ticks(int(request.args.get("events", 3)), float(request.args.get("interval", 0.1)))


@app.get("/pod-bound")
@sse_stream(kind=StreamKind.POD_BOUND, final_event="event: task_failed\ndata: shutdown\n\n")
def pod_bound():
    return ticks(int(request.args.get("events", 3)), float(request.args.get("interval", 0.1)))


@app.post("/api/tasks")
def start_task():
    if manager.is_draining():
        return jsonify({"error": "draining"}), 503, {"Retry-After": "5"}
    return jsonify({"worker": os.getpid()}), 202


@app.get("/pid")
def pid():
    return jsonify({"worker": os.getpid()})
