"""The default model behind POST /predict: recorded in the registry, changed only on request."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import SEED_REQUEST, make_registry
from tabops.cli.main import app as cli_app
from tabops.config import Settings, get_settings
from tabops.registry import ModelRegistry
from tabops.server.app import create_app

MODEL = "heart-failure"
OTHER = "heart-failure-copy"
LEGACY = Path(__file__).resolve().parent.parent / "data" / "registry-0.1.0" / "registry"


def register_copy(registry: ModelRegistry, source: str, name: str) -> int:
    """Register the files of ``source``'s production version under another name."""
    version = registry.get_version(source)
    files = {
        file: registry.read_file(source, version.version, file) for file in version.manifest.files
    }
    return registry.register(name, files, version.manifest).version


def serve(home: Path, **serving: object) -> TestClient:
    """The API over ``home``, re-reading the registry on every request (no alias cache)."""
    settings = Settings(home=home, serving={"alias_cache_seconds": 0, **serving})
    return TestClient(create_app(settings))


def predict_default(client: TestClient) -> dict:
    response = client.post(
        "/predict", content=SEED_REQUEST, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, home: Path) -> Iterator[Callable[..., object]]:
    """The ``tabops`` command pointed at the test's home."""
    monkeypatch.setenv("TABOPS_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "120")
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(cli_app, [str(arg) for arg in args])
    get_settings.cache_clear()


def test_predict_keeps_answering_with_the_first_model_after_another_is_registered(home, registry):
    with serve(home) as client:
        assert predict_default(client)["model"] == MODEL

        register_copy(registry, MODEL, OTHER)

        assert registry.list_models() == [MODEL, OTHER]
        assert predict_default(client)["model"] == MODEL
        assert client.get("/v1/health").json()["default_model"] == MODEL
        assert client.get("/readyz").json()["model"] == MODEL


def test_models_default_command_moves_predict_and_health_to_the_named_model(home, registry, cli):
    register_copy(registry, MODEL, OTHER)
    with serve(home) as client:
        assert predict_default(client)["model"] == MODEL

        result = cli("models", "default", OTHER)

        assert result.exit_code == 0, result.output
        assert f"default model -> {OTHER} (was {MODEL})" in " ".join(result.output.split())
        assert predict_default(client)["model"] == OTHER
        assert client.get("/v1/health").json()["default_model"] == OTHER


def test_the_serving_setting_overrides_the_recorded_default(home, registry):
    register_copy(registry, MODEL, OTHER)

    with serve(home, default_model=OTHER) as client:
        assert predict_default(client)["model"] == OTHER
        assert client.get("/v1/health").json()["default_model"] == OTHER
    assert registry.default_model() == MODEL


def test_a_registry_from_before_the_record_with_one_model_serves_it(tmp_path):
    home = tmp_path / "home"
    shutil.copytree(LEGACY / "legacy-lr", home / "registry" / "legacy-lr")

    with serve(home) as client:
        assert client.get("/v1/health").json()["default_model"] == "legacy-lr"


def test_a_registry_from_before_the_record_with_several_models_names_the_command(tmp_path):
    home = tmp_path / "home"
    shutil.copytree(LEGACY, home / "registry")

    with serve(home) as client:
        response = client.post("/predict", json={"x": 1})
        health = client.get("/v1/health").json()

    assert response.status_code == 404, response.text
    message = response.json()["error"]["message"]
    assert "legacy-hgb, legacy-lr" in message
    assert "tabops models default NAME" in message
    assert health["default_model"] is None


def test_a_registry_from_before_the_record_keeps_its_only_model_when_a_second_arrives(tmp_path):
    home = tmp_path / "home"
    shutil.copytree(LEGACY / "legacy-lr", home / "registry" / "legacy-lr")
    registry = make_registry(home)

    register_copy(registry, "legacy-lr", "newer")

    assert registry.default_model() == "legacy-lr"
