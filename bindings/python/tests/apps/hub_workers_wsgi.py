"""A Flask app for gunicorn ``-w 2`` whose every worker holds a stream hub
on the pod's one hub port (``last_call.gunicorn``'s ``post_fork`` says how
many workers share it), for test_hub_workers.py.

* ``POST /publish`` ``{"channel", "data"}``: published by this worker;
  answers the worker's pid;
* ``GET /token?channel=``: a subscription token.
"""

import os

from flask import Flask, jsonify, request
from last_call import hub

# Loaded in each worker (no --preload): the hub is the worker's.
hub.start()
app = Flask(__name__)


@app.post("/publish")
def publish():
    body = request.get_json()
    hub.publish(body["channel"], body["data"])
    return jsonify(pid=os.getpid())


@app.get("/token")
def token():
    return jsonify(token=hub.subscribe_token(request.args["channel"], ttl=600))
