"""``last_call.gunicorn`` with a worker that takes ``POST_FORK_SECONDS``
between its fork and gunicorn's signal handling (its ``post_fork``), so a
test can send SIGTERM in that window."""

import os
import time

from last_call import gunicorn as last_call_gunicorn
from last_call.gunicorn import *  # noqa: F403 - the config module, extended


def post_fork(server, worker):  # gunicorn's signature
    time.sleep(float(os.environ.get("POST_FORK_SECONDS", "0")))
    # A config that defines a hook of its own calls last_call's.
    last_call_gunicorn.post_fork(server, worker)
