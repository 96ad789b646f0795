"""The Flask extension: app.config, app.extensions, the manager of the app
serving the request, tuple returns, optional endpoints, readiness checks."""

from __future__ import annotations

import threading

import pytest
from flask import Flask
from last_call import ConfigError, GracefulShutdownManager, NoopGracefulShutdownManager, SecondSignal
from last_call.flask import EXTENSION_KEY, GracefulShutdown, current_manager, health_blueprint, sse_stream


def events(count: int = 3):
    for number in range(count):
        yield f"data: {number}\n\n"


def make_app(manager=None, **config) -> Flask:
    app = Flask(__name__)
    app.config.update(config)
    GracefulShutdown(app, manager=manager)

    @app.get("/stream")
    @sse_stream
    def stream():
        return events()

    @app.get("/tuple")
    @sse_stream
    def as_tuple():
        return events(), 201, {"X-Task": "7"}

    @app.get("/pair")
    @sse_stream
    def as_pair():
        return events(), 202

    @app.get("/typed")
    @sse_stream
    def typed():
        return events(), 200, {"Content-Type": "text/plain"}

    @app.get("/missing")
    @sse_stream
    def missing():
        return {"error": "no such task"}, 404

    return app


def test_init_app_reads_app_config_and_registers_itself(monkeypatch):
    monkeypatch.setenv("GS_DRAIN_TOKEN", "from-environment")
    noop = NoopGracefulShutdownManager()
    shutdown = GracefulShutdown(manager=noop)
    app = Flask(__name__)
    app.config.update(
        LAST_CALL_DRAIN_DELAY_SECONDS=2,
        LAST_CALL_SHUTDOWN_TIMEOUT_SECONDS="40",
        LAST_CALL_SECOND_SIGNAL="exit",
        LAST_CALL_DRAIN_TOKEN="from-config",
    )
    shutdown.init_app(app)
    state = app.extensions[EXTENSION_KEY]
    assert state.manager is noop
    assert state.shutdown_options == {"drain_delay": 2.0, "shutdown_timeout": 40.0, "second_signal": SecondSignal.EXIT}
    assert state.drain_token == "from-config"
    client = app.test_client()
    assert client.post("/drain", headers={"Authorization": "Bearer from-environment"}).status_code == 401
    assert client.post("/drain", headers={"Authorization": "Bearer from-config"}).status_code == 200
    assert noop.is_draining()


def test_the_drain_token_falls_back_to_the_environment(monkeypatch):
    monkeypatch.setenv("GS_DRAIN_TOKEN", "from-environment")
    app = make_app(NoopGracefulShutdownManager())
    assert app.extensions[EXTENSION_KEY].drain_token == "from-environment"
    assert app.extensions[EXTENSION_KEY].shutdown_options == {}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("LAST_CALL_SHUTDOWN_TIMEOUT_SECONDS", "abc"),
        ("LAST_CALL_DRAIN_DELAY_SECONDS", -1),
        ("LAST_CALL_CLOSE_NOTICE_SECONDS", float("nan")),
        ("LAST_CALL_SECOND_SIGNAL", "sometimes"),
        ("LAST_CALL_DRAIN_ENDPOINT", "no"),
        ("LAST_CALL_DRAIN_TOKEN", ""),
    ],
)
def test_a_malformed_setting_fails_at_init_app_naming_the_key(key, value):
    with pytest.raises(ConfigError, match=key):
        make_app(NoopGracefulShutdownManager(), **{key: value})


def test_durations_that_do_not_fit_fail_at_init_app_with_the_real_manager(monkeypatch):
    """Issue 22: validated where the host starts. Each value is well formed;
    together the close notice and the hooks' budget (both set) overrun the
    timeout: init_app refuses, naming them, instead of the first SIGTERM."""
    monkeypatch.setenv("GS_SHUTDOWN_TIMEOUT_SECONDS", "3")
    monkeypatch.setenv("GS_HOOK_BUDGET_SECONDS", "2")
    with pytest.raises(ConfigError, match="GS_CLOSE_NOTICE_SECONDS") as raised:
        make_app(GracefulShutdownManager(), LAST_CALL_CLOSE_NOTICE_SECONDS=2)
    assert "LAST_CALL_CLOSE_NOTICE_SECONDS" in str(raised.value)
    # The same values with a close notice that fits are accepted.
    make_app(GracefulShutdownManager(), LAST_CALL_CLOSE_NOTICE_SECONDS=1)


def test_a_malformed_gs_variable_fails_at_init_app(monkeypatch):
    monkeypatch.setenv("GS_DRAIN_DELAY_SECONDS", "soon")
    with pytest.raises(ConfigError, match="GS_DRAIN_DELAY_SECONDS"):
        make_app(GracefulShutdownManager())


def test_without_a_manager_the_extension_uses_the_process_wide_one():
    app = make_app()
    assert app.extensions[EXTENSION_KEY].manager is GracefulShutdownManager()


def test_two_apps_in_one_process_each_count_their_own_streams():
    first, second = NoopGracefulShutdownManager(), NoopGracefulShutdownManager()
    apps = make_app(first), make_app(second)
    with apps[0].test_request_context():
        assert current_manager() is first
    # The test client starts iterating the body (counted) to get the headers.
    responses = [apps[0].test_client().get("/stream")]
    assert (first.active_streams, second.active_streams) == (1, 0)
    responses.append(apps[1].test_client().get("/stream"))
    assert (first.active_streams, second.active_streams) == (1, 1)
    for response in responses:
        response.close()
    assert (first.active_streams, second.active_streams) == (0, 0)
    assert (first.streams_started_total, second.streams_started_total) == (1, 1)
    second.set_draining(True)
    assert apps[0].test_client().get("/readyz").status_code == 200
    assert apps[1].test_client().get("/readyz").status_code == 503


@pytest.mark.parametrize(("path", "status"), [("/tuple", 201), ("/pair", 202), ("/stream", 200)])
def test_tuple_returning_views_are_counted_streams(path, status):
    noop = NoopGracefulShutdownManager()
    client = make_app(noop).test_client()
    response = client.get(path, buffered=False)
    assert response.status_code == status
    assert response.mimetype == "text/event-stream"
    assert response.headers["X-Accel-Buffering"] == "no"
    assert response.headers["Cache-Control"] == "no-cache"
    if path == "/tuple":
        assert response.headers["X-Task"] == "7"
    body = iter(response.response)
    assert next(body) == b"data: 0\n\n"
    assert noop.active_streams == 1
    assert b"".join(body) == b"data: 1\n\ndata: 2\n\n"
    response.close()
    assert noop.active_streams == 0 and noop.streams_finished_total == 1


def test_an_explicit_content_type_is_kept_and_errors_pass_through():
    noop = NoopGracefulShutdownManager()
    client = make_app(noop).test_client()
    typed = client.get("/typed")
    assert typed.mimetype == "text/plain"
    assert noop.streams_started_total == 1
    missing = client.get("/missing")
    assert missing.status_code == 404 and missing.json == {"error": "no such task"}
    assert noop.streams_started_total == 1


def test_the_decorator_resolves_the_manager_at_request_time():
    # Decorated before any app or manager exists (as at import time).
    @sse_stream
    def view():
        return events(1)

    for manager in (NoopGracefulShutdownManager(), NoopGracefulShutdownManager()):
        app = Flask(__name__)
        GracefulShutdown(app, manager=manager)
        app.add_url_rule("/s", view_func=view)
        app.test_client().get("/s").close()
        assert manager.streams_started_total == 1


def test_the_blueprint_can_leave_out_drain_and_metrics():
    noop = NoopGracefulShutdownManager()
    app = make_app(noop, LAST_CALL_DRAIN_ENDPOINT=False, LAST_CALL_METRICS_ENDPOINT=False)
    client = app.test_client()
    assert client.post("/drain").status_code == 404
    assert client.get("/metrics").status_code == 404
    assert client.get("/readyz").status_code == 200
    other = Flask(__name__)
    other.register_blueprint(health_blueprint(noop, drain=False, url_prefix="/ops"))
    assert other.test_client().post("/ops/drain").status_code == 404
    assert "gs_active_streams" in other.test_client().get("/ops/metrics").text


def test_readiness_checks_feed_readyz():
    noop = NoopGracefulShutdownManager()
    database_up = threading.Event()
    app = Flask(__name__)
    GracefulShutdown(app, manager=noop, readiness_checks={"database": database_up.is_set})
    client = app.test_client()
    not_ready = client.get("/readyz")
    assert (not_ready.status_code, not_ready.text.strip()) == (503, "not ready: database")
    database_up.set()
    assert client.get("/readyz").status_code == 200
    noop.add_readiness_check("cache", lambda: 1 / 0)
    assert client.get("/readyz").text.strip() == "not ready: cache"
    noop.remove_readiness_check("cache")
    noop.set_draining(True)
    draining = client.get("/readyz")
    assert (draining.status_code, draining.text.strip()) == (503, "draining")
