"""The example servers that answer the contract, and how to start each."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Tuple

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("flask", "rust", "asgi", "flask-gunicorn", "flask-hub", "django-gunicorn", "django-uvicorn")
#: Hosts whose baseline cuts the rolling harness's short (3 s) streams.
#: Plain gunicorn does not: it finishes in-flight requests for up to its
#: graceful_timeout (30 s) before a worker stops; it fails on streams
#: longer than that, and on readiness (docs/gunicorn.md).
BASELINE_CUTS_SHORT_STREAMS = ("flask", "rust", "asgi", "flask-hub")

#: The Flask example in hub mode, as the e2e tests and the rolling harness
#: run it: task streams held by the runtime's stream hub, 8 Waitress threads.
FLASK_HUB_ENV = (
    "STREAMS=hub",
    "GS_STREAM_ADDR=127.0.0.1:0",
    "GS_STREAM_SECRET=example-hub-secret-of-32-bytes-or-more",
    "THREADS=8",
)


#: Hosts that hold a thread for each stream (Waitress, gunicorn gthread):
#: the saturated scenario opens as many streams as threads. In hub mode
#: every stream is the hub's, the event feed's included (GET /api/events
#: answers a redirect to the hub), so flask-hub holds none.
THREAD_PER_STREAM = ("flask", "flask-gunicorn", "django-gunicorn")

#: Hosts that start the runtime's stream hub: the rolling harness runs them
#: as the manifest says, with a shared store (a redis-server of its own,
#: ``GS_STREAM_STORE``) and their stream URLs through the load balancer
#: (``PUBLIC_STREAM_BASE_URL``, a frontend of HAProxy's that routes to
#: every pod's hub port, as the Service's ``streams`` port does).
HUB_HOSTS = ("flask-hub",)

#: What each host sets over the manifest's container environment
#: (``examples/kubernetes/deployment.yaml`` describes the Flask app in hub
#: mode). The rolling harness reports them with its overrides.
# GS_STREAM_STORE is read by the hub alone, when it starts: the hosts that
# start no hub never read the manifest's value (here a random string, from
# the Secret's stand-in), so none is overridden; the hub host gets the
# harness's Redis (rolling.run).
MANIFEST_OVERRIDES = {
    # Thread per stream: threads for the streams a pod carries, plus the API's.
    "flask": {"STREAMS": "thread", "THREADS": "64"},
    "flask-gunicorn": {"STREAMS": "thread", "THREADS": "64"},
    "flask-hub": {},
    "rust": {},
    "asgi": {},
    "django-gunicorn": {"THREADS": "64"},
    "django-uvicorn": {},
}

def command(name: str, profile: str = "debug") -> Tuple[List[str], Path]:
    """(argv, working directory) of an example server. The Rust one is the
    binary cargo built for `profile` (`cargo build [--release] --example
    sse_server`)."""
    if name == "flask":
        return [sys.executable, "run.py"], ROOT / "examples" / "flask_app"
    if name == "flask-hub":
        # env(1) execs the interpreter: the same process, signals and all.
        return ["env", *FLASK_HUB_ENV, sys.executable, "run.py"], ROOT / "examples" / "flask_app"
    if name == "flask-gunicorn":
        # The Flask app under gunicorn (one gthread worker, last_call.gunicorn);
        # LAST_CALL_DISABLED=1: plain gunicorn.
        return [sys.executable, "serve_gunicorn.py"], ROOT / "examples" / "flask_app"
    if name == "asgi":
        # Starlette on uvicorn; LAST_CALL_DISABLED=1 is its baseline (plain
        # uvicorn signal handling), as for the others.
        return [sys.executable, "run.py"], ROOT / "examples" / "asgi_app"
    if name in ("django-gunicorn", "django-uvicorn"):
        # The Django example, served by gunicorn (WSGI, one gthread worker,
        # last_call.gunicorn) or uvicorn (Django's ASGI handler with
        # last_call's lifespan); LAST_CALL_DISABLED=1: plain gunicorn, or
        # Django's own ASGI handler.
        server = name.split("-", 1)[1]
        return ["env", f"SERVER={server}", sys.executable, "run.py"], ROOT / "examples" / "django_app"
    if name == "rust":
        binary = ROOT / "target" / profile / "examples" / "sse_server"
        if not binary.exists():
            raise FileNotFoundError(
                f"{binary} is missing: cargo build --features axum --example sse_server"
                + (" --release" if profile == "release" else "")
            )
        return [str(binary)], ROOT
    raise ValueError(f"unknown host {name!r}; one of {NAMES}")
