"""``tabops models import`` through Typer's CliRunner, against real model files and registries.

The models are fitted here on the heart-failure example and written as users write them:
``joblib.dump`` of a pipeline, and a pickle whose ``__reduce__`` runs a shell command.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from conftest import cli_output
from import_models import HEART_FEATURES, HEART_TARGET, Hostile, heart_frame, heart_pipeline
from tabops.config import Settings, get_settings
from tabops.server.app import create_app

MODEL = "outside-heart"
TOLERANCE = 1e-9


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A pipeline fitted on the example (``sex`` as words), its joblib file and its sample."""
    folder = tmp_path_factory.mktemp("fitted")
    frame = heart_frame()
    pipeline = heart_pipeline(frame)
    joblib.dump(pipeline, folder / "pipeline.joblib")
    frame.to_csv(folder / "sample.csv", index=False)
    return {"folder": folder, "frame": frame, "pipeline": pipeline}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty TABOPS_HOME the commands of this test use."""
    folder = tmp_path / "home"
    monkeypatch.setenv("TABOPS_HOME", str(folder))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    yield folder
    get_settings.cache_clear()


def import_args(fitted: dict[str, Any], model: str = "pipeline.joblib") -> list[object]:
    folder = fitted["folder"]
    return ["models", "import", folder / model, "--name", MODEL, "--sample", folder / "sample.csv"]


def registered(home: Path) -> list[Path]:
    return list((home / "registry").rglob("manifest.json"))


@pytest.mark.slow
def test_an_imported_pipeline_predicts_as_scikit_learn_from_the_cli_and_the_server(
    invoke, home, fitted, tmp_path
):
    result = invoke(*import_args(fitted), "--target", HEART_TARGET)

    assert result.exit_code == 0, result.output
    printed = cli_output(result)
    assert f"registered {MODEL}:1 (production)" in printed
    assert "sklearn.pipeline.Pipeline" in printed
    assert "runtime:" in printed
    assert "roc_auc" in printed
    assert f"POST /v1/models/{MODEL}/predict" in printed
    frame = fitted["frame"]
    expected = fitted["pipeline"].predict_proba(frame[HEART_FEATURES])[:, 1]
    scored_path = tmp_path / "scored.csv"
    scored = invoke(
        "predict", "-m", MODEL, "-i", fitted["folder"] / "sample.csv", "-o", scored_path
    )
    assert scored.exit_code == 0, scored.output
    from_cli = pd.read_csv(scored_path)["probability"].to_numpy()
    np.testing.assert_allclose(from_cli, expected, rtol=0, atol=TOLERANCE)
    with TestClient(create_app(Settings(home=home))) as client:
        records = frame[HEART_FEATURES].to_dict(orient="records")
        answer = client.post(f"/v1/models/{MODEL}/predict/batch", json={"records": records})
    assert answer.status_code == 200, answer.text
    from_server = [item["probability"] for item in answer.json()["predictions"]]
    np.testing.assert_allclose(from_server, expected, rtol=0, atol=TOLERANCE)


def test_a_hostile_pickle_is_refused_naming_its_globals_and_never_run(invoke, home, fitted):
    marker = fitted["folder"] / "marker"
    (fitted["folder"] / "hostile.pkl").write_bytes(pickle.dumps(Hostile(marker)))

    result = invoke(*import_args(fitted, "hostile.pkl"))

    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "system" in cli_output(result)  # posix.system, as os.system pickles
    assert "--trust-pickle" in cli_output(result)
    assert not marker.exists()
    assert registered(home) == []


@pytest.mark.slow
def test_trust_pickle_warns_on_stderr_and_keeps_json_on_stdout(invoke, home, fitted):
    result = invoke(*import_args(fitted), "--trust-pickle", "--json", "--promote", "staging")

    assert result.exit_code == 0, result.output
    warning = " ".join(result.stderr.split())
    assert "warning: --trust-pickle" in warning
    assert "runs whatever code the file holds" in warning
    document = json.loads(result.stdout)
    assert (document["name"], document["version"]) == (MODEL, 1)
    assert document["aliases"] == ["production", "staging"]
    assert document["runtime"] in ("onnxruntime", "scikit-learn")
    assert document["manifest"]["metrics"] == {}


@pytest.mark.slow
def test_a_failed_gate_exits_3_and_registers_nothing(invoke, home, fitted):
    result = invoke(*import_args(fitted), "--target", HEART_TARGET, "--gate", "roc_auc>=0.999")

    assert result.exit_code == 3, result.output
    assert "roc_auc" in cli_output(result)
    assert registered(home) == []


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--gate", "roc_auc is high", "is not like 'roc_auc>=0.8'"),
        ("--promote", "Prod!", "invalid alias"),
        ("--name", "Bad Name", "invalid model name"),
    ],
)
def test_an_invalid_option_exits_1_before_loading_anything(
    invoke, home, fitted, option, value, message
):
    result = invoke(*import_args(fitted), option, value)

    assert result.exit_code == 1, result.output
    assert message in cli_output(result)
    assert registered(home) == []
