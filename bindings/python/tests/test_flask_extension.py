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


def texts(app: Flask) -> dict[str, str]:
    return {name: given.text for name, given in app.extensions[EXTENSION_KEY].settings.items()}


def test_init_app_reads_app_config_and_registers_itself(monkeypatch):
    monkeypatch.setenv("GS_DRAIN_TOKEN", "from-environment")
    noop = NoopGracefulShutdownManager()
    shutdown = GracefulShutdown(manager=noop)
    app = Flask(__name__)
    app.config.update(
        GS_DRAIN_DELAY_SECONDS=2,
        GS_SHUTDOWN_TIMEOUT_SECONDS="40",
        GS_SECOND_SIGNAL=SecondSignal.EXIT,
        GS_DRAIN_TOKEN="from-config",
    )
    shutdown.init_app(app)
    state = app.extensions[EXTENSION_KEY]
    assert state.manager is noop
    assert texts(app) == {
        "GS_DRAIN_DELAY_SECONDS": "2",
        "GS_SHUTDOWN_TIMEOUT_SECONDS": "40",
        "GS_SECOND_SIGNAL": "exit",
        "GS_DRAIN_TOKEN": "from-config",
    }
    assert state.drain_token == "from-config"
    client = app.test_client()
    assert client.post("/drain", headers={"Authorization": "Bearer from-environment"}).status_code == 401
    assert client.post("/drain", headers={"Authorization": "Bearer from-config"}).status_code == 200
    assert noop.is_draining()


def test_a_keyword_wins_over_app_config_which_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("GS_DRAIN_TOKEN", "from-environment")
    monkeypatch.setenv("GS_CLOSE_NOTICE_SECONDS", "4")
    app = Flask(__name__)
    app.config.update(GS_DRAIN_TOKEN="from-config", GS_SHUTDOWN_TIMEOUT_SECONDS=30)
    GracefulShutdown(app, manager=NoopGracefulShutdownManager(), drain_token="from-keyword")
    assert app.extensions[EXTENSION_KEY].drain_token == "from-keyword"
    assert texts(app) == {"GS_DRAIN_TOKEN": "from-keyword", "GS_SHUTDOWN_TIMEOUT_SECONDS": "30"}


def test_the_drain_token_falls_back_to_the_environment(monkeypatch):
    monkeypatch.setenv("GS_DRAIN_TOKEN", "from-environment")
    app = make_app(NoopGracefulShutdownManager())
    assert app.extensions[EXTENSION_KEY].drain_token == "from-environment"
    assert texts(app) == {}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("GS_SHUTDOWN_TIMEOUT_SECONDS", "abc"),
        ("GS_DRAIN_DELAY_SECONDS", -1),
        ("GS_CLOSE_NOTICE_SECONDS", float("nan")),
        ("GS_CLOSE_NOTICE_SECONDS", True),
        ("GS_SECOND_SIGNAL", "sometimes"),
        ("GS_DRAIN_ENDPOINT", "maybe"),
        ("GS_DRAIN_TOKEN", ""),
        ("GS_EXIT_WATCHDOG_STATUS", 0),
        ("GS_STREAM_QUEUE_EVENTS", 2.5),
    ],
)
def test_a_malformed_setting_fails_at_init_app_naming_the_key(key, value):
    with pytest.raises(ConfigError, match=key):
        make_app(NoopGracefulShutdownManager(), **{key: value})


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("LAST_CALL_SHUTDOWN_TIMEOUT_SECONDS", "GS_SHUTDOWN_TIMEOUT_SECONDS"),
        ("LAST_CALL_DRAIN_TOKEN", "GS_DRAIN_TOKEN"),
        ("LAST_CALL_HEALTH_BLUEPRINT", "GS_HEALTH_BLUEPRINT"),
        ("LAST_CALL_HOOK_BUDGET_SECONDS", "GS_HOOK_BUDGET_SECONDS"),
    ],
)
def test_a_last_call_key_is_refused_naming_its_new_name(old, new):
    """The names before one name per setting (issue 29): never silently
    ignored, as they were under gunicorn."""
    with pytest.raises(ConfigError) as raised:
        make_app(NoopGracefulShutdownManager(), **{old: 6})
    assert old in str(raised.value) and new in str(raised.value), raised.value


def test_an_unknown_gs_key_is_reported_once_with_the_closest_name(caplog):
    caplog.set_level("WARNING", logger="last_call")
    make_app(NoopGracefulShutdownManager(), GS_SHUTDOWN_TIMEOUT=6)
    make_app(NoopGracefulShutdownManager(), GS_SHUTDOWN_TIMEOUT=6)
    reports = [r.getMessage() for r in caplog.records if "GS_SHUTDOWN_TIMEOUT'" in r.getMessage()]
    assert len(reports) == 1, reports
    assert "did you mean GS_SHUTDOWN_TIMEOUT_SECONDS?" in reports[0]


def test_an_unknown_keyword_is_a_type_error_naming_the_closest():
    with pytest.raises(TypeError, match="shutdown_timeout_seconds"):
        GracefulShutdown(manager=NoopGracefulShutdownManager(), shutdown_timeout=6)


def test_durations_that_do_not_fit_fail_at_init_app_with_the_real_manager(monkeypatch):
    """Issue 22: validated where the host starts. Each value is well formed;
    together the close notice and the hooks' budget (both set) overrun the
    timeout: init_app refuses, naming them, instead of the first SIGTERM."""
    monkeypatch.setenv("GS_SHUTDOWN_TIMEOUT_SECONDS", "3")
    monkeypatch.setenv("GS_HOOK_BUDGET_SECONDS", "2")
    with pytest.raises(ConfigError, match="GS_CLOSE_NOTICE_SECONDS") as raised:
        make_app(GracefulShutdownManager(), GS_CLOSE_NOTICE_SECONDS=2)
    assert "app.config['GS_CLOSE_NOTICE_SECONDS']" in str(raised.value)
    # The same values with a close notice that fits are accepted.
    make_app(GracefulShutdownManager(), GS_CLOSE_NOTICE_SECONDS=1)


def test_the_real_manager_hands_the_app_settings_to_the_runtime(monkeypatch):
    monkeypatch.setenv("GS_SHUTDOWN_TIMEOUT_SECONDS", "25")
    make_app(GracefulShutdownManager(), GS_SHUTDOWN_TIMEOUT_SECONDS=7, GS_DRAIN_DELAY_SECONDS=0.5)
    from last_call.gunicorn import _runtime_config

    config = _runtime_config()  # gs_config_from_env: what the runtime reads now
    assert (config.shutdown_timeout_seconds, config.drain_delay_seconds) == (7.0, 0.5)


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
    app = make_app(noop, GS_DRAIN_ENDPOINT=False, GS_METRICS_ENDPOINT="false")
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
