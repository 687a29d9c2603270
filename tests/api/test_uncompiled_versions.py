"""Versions without an encoder or a graph (registered by earlier releases) still serve."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sklearn.pipeline import Pipeline

from conftest import SEED_REQUEST
from tabops.config import Settings
from tabops.model.calibration import CalibratedPipeline
from tabops.model.files import GOLDEN_FILE, MODEL_FILE, REFERENCE_FILE, dump_model, load_model
from tabops.model.manifest import Manifest
from tabops.model.predictor import Predictor
from tabops.server.app import create_app


@pytest.fixture
def legacy_home(home, registry):
    """The trained home plus version 2: the same model, its encoder hidden inside a step."""
    current = registry.get_version("heart-failure", 1)
    model = load_model(registry.read_file("heart-failure", 1, MODEL_FILE))
    inner = model.pipeline if isinstance(model, CalibratedPipeline) else model
    encode, prepare, classifier = (step for _name, step in inner.steps)
    hidden = Pipeline(
        [("steps", Pipeline([("encode", encode), ("prepare", prepare)])), ("model", classifier)]
    )
    legacy = CalibratedPipeline(hidden, model.calibrator) if inner is not model else hidden
    files = {
        MODEL_FILE: dump_model(legacy),
        GOLDEN_FILE: registry.read_file("heart-failure", 1, GOLDEN_FILE),
        REFERENCE_FILE: registry.read_file("heart-failure", 1, REFERENCE_FILE),
    }
    manifest = {
        k: v
        for k, v in current.manifest.document().items()
        if k not in {"compiled", "files", "name", "version", "created"}
    }
    registry.register("heart-failure", files, Manifest.model_validate(manifest))
    registry.set_alias("heart-failure", "production", 2)
    return home


def test_a_version_without_an_encoder_is_served_by_scikit_learn_with_the_reason(
    legacy_home, registry
):
    legacy = Predictor.load(registry, "heart-failure", 2)
    compiled = Predictor.load(registry, "heart-failure", 1)

    assert legacy.runtime == "scikit-learn"
    assert legacy.runtime_detail == "registered before models were compiled"
    assert legacy.lean is None
    assert compiled.runtime == "onnxruntime"
    record = json.loads(SEED_REQUEST)["features"]
    assert legacy.predict_record(record).probability == pytest.approx(
        compiled.predict_record(record).probability, abs=1e-5
    )


def test_the_api_answers_single_and_batch_requests_for_a_version_without_an_encoder(
    legacy_home,
):
    with TestClient(create_app(Settings(home=legacy_home))) as client:
        record = json.loads(SEED_REQUEST)["features"]
        one = client.post("/v1/models/heart-failure/predict", json=record)
        first = client.post("/v1/models/heart-failure/predict?version=1", json=record)
        batch = client.post(
            "/v1/models/heart-failure/predict/batch", json={"records": [record, record]}
        )
        bad = client.post("/v1/models/heart-failure/predict", json={**record, "age": "old"})
        health = client.get("/v1/health").json()

    assert one.status_code == 200, one.text
    assert one.json()["version"] == 2
    assert one.json()["probability"] == pytest.approx(first.json()["probability"], abs=1e-5)
    assert batch.status_code == 200, batch.text
    assert [p["probability"] for p in batch.json()["predictions"]] == [
        one.json()["probability"]
    ] * 2
    assert bad.status_code == 422
    assert [d["field"] for d in bad.json()["error"]["details"]] == ["age"]
    served = {m["name"]: m for m in health["models"]}["heart-failure"]
    assert served["runtime"] == "scikit-learn"
    assert served["detail"] == "registered before models were compiled"
