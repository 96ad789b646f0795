"""The legacy app's health-endpoint tests: only the import line changed,
and /drain now needs the bearer token (see the README's migration notes)."""

import pytest
from flask import Flask
from last_call import GracefulShutdownManager
from last_call.flask import health_blueprint

TOKEN = "test-token"


@pytest.fixture
def client():
    manager = GracefulShutdownManager()
    app = Flask(__name__)
    app.register_blueprint(health_blueprint(manager, drain_token=TOKEN))
    return app.test_client()


def test_readyz_200_then_503(client):
    assert client.get("/readyz").status_code == 200
    GracefulShutdownManager().set_draining(True)
    assert client.get("/readyz").status_code == 503


def test_healthz_always_200(client):
    assert client.get("/healthz").status_code == 200
    GracefulShutdownManager().set_draining(True)
    assert client.get("/healthz").status_code == 200


def test_drain_drains(client):
    response = client.post("/drain", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert GracefulShutdownManager().is_draining() is True
    assert client.get("/readyz").status_code == 503
