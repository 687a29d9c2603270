"""GET /healthz, /readyz and /v1/health, through the real app."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tabops.config import Settings
from tabops.server.app import create_app

MODEL = "heart-failure"


@pytest.fixture
def empty_client(tmp_path):
    """The API over a home whose registry holds no model."""
    with TestClient(create_app(Settings(home=tmp_path))) as test_client:
        yield test_client


def test_healthz_returns_200_when_process_is_up(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_returns_200_when_registry_is_empty(empty_client):
    response = empty_client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_returns_200_naming_served_version_when_model_is_loaded(client):
    response = client.get("/readyz")

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "model": MODEL, "version": 1}


def test_readyz_returns_503_with_reason_when_registry_is_empty(empty_client):
    response = empty_client.get("/readyz")

    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "not ready"
    assert isinstance(body["reason"], str)
    assert body["reason"]


def test_health_reports_uptime_memory_and_loaded_model_version(client):
    response = client.get("/v1/health")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert body["tabops_version"]
    assert body["uptime_seconds"] >= 0
    assert isinstance(body["memory_rss_bytes"], int)
    assert body["memory_rss_bytes"] > 0
    assert body["default_model"] == MODEL
    [model] = body["models"]
    assert model["name"] == MODEL
    assert model["version"] == 1
    assert model["status"] == "loaded"


def test_health_uptime_grows_between_calls(client):
    first = client.get("/v1/health").json()["uptime_seconds"]
    second = client.get("/v1/health").json()["uptime_seconds"]

    assert second >= first


def test_health_reports_degraded_with_no_models_when_registry_is_empty(empty_client):
    response = empty_client.get("/v1/health")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "degraded"
    assert body["models"] == []
    assert body["default_model"] is None
    assert body["memory_rss_bytes"] > 0


def test_predict_returns_404_in_error_shape_when_registry_is_empty(empty_client):
    response = empty_client.post("/predict", json={"age": 20})

    assert response.status_code == 404, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["message"]
