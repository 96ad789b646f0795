"""A child process for the smoke suite: a Flask app with the package's
health blueprint, served on 127.0.0.1 (an ephemeral port, printed on
stdout), with the signal handlers installed. It serves until the runtime
reaches Stopped after SIGTERM, then exits 0."""

from __future__ import annotations

import sys
import threading

from flask import Flask
from last_call import GracefulShutdownManager, Phase
from last_call.flask import health_blueprint
from werkzeug.serving import make_server

manager = GracefulShutdownManager()
# A drain delay long enough for the parent to see readiness flip while the
# server still answers.
manager.install_signal_handlers(
    drain_delay_seconds=2, shutdown_timeout_seconds=20, close_notice_seconds=1
)

app = Flask(__name__)
app.register_blueprint(health_blueprint(manager, drain_token=None))
server = make_server("127.0.0.1", 0, app, threaded=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
print(f"port {server.server_port}", flush=True)

if not manager.wait_for_phase(Phase.STOPPED, timeout=60):
    sys.exit(f"stuck in {manager.phase.label}")
server.shutdown()
print("stopped", flush=True)
