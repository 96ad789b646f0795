"""POST /drain with and without the bearer token, against a real server."""

from __future__ import annotations


def test_drain_requires_the_right_bearer_token(start_app):
    server = start_app({"GS_DRAIN_TOKEN": "s3cret", "GS_DRAIN_DELAY_SECONDS": "1"})
    client = server.client
    assert client.post("/drain").status_code == 401
    wrong = client.post("/drain", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"].startswith("Bearer")
    assert client.post("/drain", headers={"Authorization": "Basic s3cret"}).status_code == 401
    assert client.get("/readyz").status_code == 200, "a refused drain must not drain"

    right = client.post("/drain", headers={"Authorization": "Bearer s3cret"})
    assert right.status_code == 200
    ready = client.get("/readyz")
    assert (ready.status_code, ready.text.strip()) == (503, "draining")
    assert client.get("/healthz").status_code == 200
    assert client.get("/healthz").text.strip() == "alive"
    # Draining by hand is not the shutdown sequence: the process keeps running.
    assert server.process.poll() is None


def test_drain_answers_405_to_get(start_app):
    server = start_app({"GS_DRAIN_TOKEN": "s3cret"})
    assert server.client.get("/drain").status_code == 405
    assert server.client.get("/readyz").status_code == 200


def test_drain_without_a_configured_token_never_drains(start_app):
    server = start_app({})
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Bearer anything"}):
        assert server.client.post("/drain", headers=headers).status_code == 403
    assert server.client.get("/readyz").status_code == 200


def test_metrics_in_both_formats(app_server):
    text = app_server.client.get("/metrics")
    assert text.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE gs_active_streams gauge" in text.text
    assert "gs_streams_started_total" in text.text
    as_json = app_server.client.get("/metrics", headers={"Accept": "application/json"})
    assert as_json.headers["content-type"] == "application/json"
    figures = as_json.json()
    assert figures["phase_name"] == "serving"
    assert figures["active_streams"] == 0
