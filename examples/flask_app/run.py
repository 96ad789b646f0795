"""Serves the example app with Waitress through the last-call
sequence. HOST, PORT, THREADS, EXPECTED_STREAMS (the streams one pod should
carry; serve() warns when THREADS cannot hold them) and the GS_* settings
(GS_PROBE_ADDR starts the runtime's probe listener) come from the
environment.

LAST_CALL_DISABLED=1 serves it with plain ``waitress.serve`` and no
signal handling: the default SIGTERM behaviour (the process dies at once),
the baseline the rolling-update harness compares against.

    pip install ../../bindings/python -r requirements.txt
    python run.py
"""

import logging
import os
import sys

from app import create_app
from last_call.waitress import serve

logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
sys.stdout.reconfigure(line_buffering=True)

if __name__ == "__main__":
    app = create_app()
    manager = app.extensions["container"].shutdown_manager()
    manager.on_phase(lambda old, new: logging.getLogger("run").info("phase %s -> %s", old.label, new.label))
    threads = int(os.environ.get("THREADS", "16"))
    if os.environ.get("LAST_CALL_DISABLED") == "1":
        import waitress

        host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8080"))
        waitress.serve(app, host=host, port=port, threads=threads)
        sys.exit(0)
    expected = os.environ.get("EXPECTED_STREAMS")
    serve(
        app,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8080")),
        threads=threads,
        expected_streams=int(expected) if expected else None,
    )
    logging.getLogger("run").info("serve returned; exiting 0")
