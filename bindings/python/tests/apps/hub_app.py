"""A small Flask app served by last_call.waitress.serve that publishes to
the runtime's stream hub, for the hub's tests: the app holds no stream
itself; the tests subscribe on the hub's port.

Run: python hub_app.py  (HOST, PORT, GS_* from the environment; needs
GS_STREAM_ADDR and GS_STREAM_SECRET).
"""

import logging
import os
import sys
import threading

from flask import Flask, jsonify, request
from last_call import GracefulShutdownManager, hub
from last_call.sse import StreamKind
from last_call.waitress import serve

logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(name)s: %(message)s")
sys.stdout.reconfigure(line_buffering=True)

manager = GracefulShutdownManager()
hub.start()
app = Flask(__name__)


@app.post("/publish")
def publish():
    body = request.get_json()
    given = body.get("ids") or [None] * len(body["data"])
    ids = [
        hub.publish(
            body["channel"],
            data.encode() if body.get("as_bytes") else data,
            event=body.get("event", "message"),
            id=given_id,
            kind=StreamKind(body.get("kind", "resumable")),
        )
        for data, given_id in zip(body["data"], given)
    ]
    return jsonify(ids=ids)


@app.post("/publish-from-threads")
def publish_from_threads():
    """`threads` threads each publish `each` events to one channel at once."""
    body = request.get_json()

    def work(worker: int) -> None:
        for n in range(body["each"]):
            hub.publish(body["channel"], f"{worker}:{n}")

    workers = [threading.Thread(target=work, args=(w,)) for w in range(body["threads"])]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    return jsonify(ok=True)


@app.post("/final")
def final():
    body = request.get_json()
    hub.set_final_event(body["channel"], body["event"], body["data"])
    return jsonify(ok=True)


@app.post("/close")
def close():
    body = request.get_json()
    final_event = tuple(body["final"]) if body.get("final") else None
    return jsonify(known=hub.close(body["channel"], final_event))


@app.get("/url")
def url():
    return jsonify(url=hub.subscribe_url(request.args["channel"], ttl=float(request.args.get("ttl", 60))))


@app.get("/counts")
def counts():
    return jsonify(active=manager.active_streams, slow=hub.slow_clients_disconnected())


if __name__ == "__main__":
    serve(
        app,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "0")),
        threads=int(os.environ.get("THREADS", "4")),
    )
