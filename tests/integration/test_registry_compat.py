"""Versions registered by tabops 0.1.0 keep loading and answer bit for bit as they did."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from tabops.config import Settings
from tabops.model.predictor import Predictor
from tabops.registry import LocalArtifactStore, ModelRegistry
from tabops.server.app import create_app

OLD = Path(__file__).resolve().parent.parent / "data" / "registry-0.1.0"
EXPECTED = json.loads((OLD / "expected.json").read_text())
MODELS = sorted(EXPECTED)


@pytest.fixture
def old_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    shutil.copytree(OLD / "registry", home / "registry")
    return home


@pytest.mark.parametrize("name", MODELS)
def test_old_version_scores_records_and_frames_exactly_as_before(old_home: Path, name: str):
    expected = EXPECTED[name]
    registry = ModelRegistry(LocalArtifactStore(old_home / "registry"))
    predictor = Predictor.load(registry, name)
    assert predictor.runtime == expected["runtime"]
    predictions = predictor.predict_records(expected["records"])
    assert [p.probability for p in predictions] == expected["probabilities"]
    assert [p.label for p in predictions] == expected["labels"]
    assert [p.class_name for p in predictions] == expected["class_names"]
    frame = pd.DataFrame.from_records(expected["records"])
    assert predictor.score_frame(frame).tolist() == expected["frame_probabilities"]


@pytest.mark.parametrize("name", MODELS)
def test_old_version_answers_over_http_exactly_as_before(old_home: Path, name: str):
    expected = EXPECTED[name]
    with TestClient(create_app(Settings(home=old_home, job_workers=0))) as client:
        batch = client.post(
            f"/v1/models/{name}/predict/batch", json={"records": expected["records"]}
        )
        assert batch.status_code == 200, batch.text
        answer = batch.json()
        assert answer["version"] == expected["version"]
        assert [p["probability"] for p in answer["predictions"]] == expected["probabilities"]
        assert [p["label"] for p in answer["predictions"]] == expected["labels"]
        for record, probability in list(
            zip(expected["records"], expected["probabilities"], strict=True)
        )[:5]:
            one = client.post(f"/v1/models/{name}/predict", json=record)
            assert one.status_code == 200, one.text
            assert one.json()["probability"] == probability
