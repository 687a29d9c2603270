"""A live ``tabops serve`` speaks the Open Inference Protocol to the standard Triton client."""

from __future__ import annotations

import json
import shutil
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton

from conftest import HEART_CSV
from e2e.test_serve import request, serve

pytestmark = pytest.mark.slow

MODEL = "heart-failure"
FLAGS = {"anaemia", "diabetes", "high_blood_pressure", "sex", "smoking"}
NUMBERS = {"age", "platelets", "serum_creatinine"}


@pytest.fixture(scope="module")
def client(trained_home, tmp_path_factory):
    """One server for the module: its tests only read and predict."""
    folder = tmp_path_factory.mktemp("triton")
    home = shutil.copytree(trained_home, folder / "home")
    for base in serve(home, folder):
        client = triton.InferenceServerClient(urlparse(base).netloc)
        yield client, base
        client.close()


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return pd.read_csv(HEART_CSV).drop(columns=["DEATH_EVENT"]).iloc[5:17]


def v1_predictions(base: str, rows: pd.DataFrame) -> list[dict]:
    body = json.dumps({"records": rows.to_dict("records")})
    status, answer = request(f"{base}/v1/models/{MODEL}/predict/batch", body)
    assert status == 200, answer
    return list(answer["predictions"])


def feature_inputs(rows: pd.DataFrame, *, binary: bool) -> list[triton.InferInput]:
    inputs = []
    for name in rows.columns:
        if name in FLAGS:
            values, datatype = rows[name].to_numpy(dtype=bool), "BOOL"
        elif name in NUMBERS:
            values, datatype = rows[name].to_numpy(dtype=np.float64), "FP64"
        else:
            values, datatype = rows[name].to_numpy(dtype=np.int64), "INT64"
        tensor = triton.InferInput(name, [len(rows), 1], datatype)
        tensor.set_data_from_numpy(values.reshape(-1, 1), binary_data=binary)
        inputs.append(tensor)
    return inputs


def test_the_server_and_model_are_live_ready_and_described(client):
    triton_client, _base = client
    assert triton_client.is_server_live()
    assert triton_client.is_server_ready()
    assert triton_client.is_model_ready(MODEL)
    assert triton_client.is_model_ready(MODEL, "1")
    assert triton_client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    metadata = triton_client.get_model_metadata(MODEL)
    assert metadata["versions"] == ["1"]
    assert {tensor["name"] for tensor in metadata["outputs"]} == {
        "probability",
        "label",
        "class_name",
    }


@pytest.mark.parametrize("binary", [False, True])
def test_inference_per_feature_equals_v1(client, rows, binary):
    triton_client, base = client
    outputs = [
        triton.InferRequestedOutput(name, binary_data=binary)
        for name in ("probability", "label", "class_name")
    ]
    result = triton_client.infer(MODEL, feature_inputs(rows, binary=binary), outputs=outputs)
    expected = v1_predictions(base, rows)
    probabilities = result.as_numpy("probability").ravel()
    np.testing.assert_allclose(probabilities, [p["probability"] for p in expected], atol=1e-12)
    assert result.as_numpy("label").ravel().tolist() == [p["label"] for p in expected]
    names = [
        value.decode() if isinstance(value, bytes) else value
        for value in result.as_numpy("class_name").ravel().tolist()
    ]
    assert names == [p["class_name"] for p in expected]


def test_inference_with_one_binary_matrix_equals_v1(client, rows):
    triton_client, base = client
    matrix = triton.InferInput("x", list(rows.shape), "FP64")
    matrix.set_data_from_numpy(rows.to_numpy(dtype=np.float64), binary_data=True)
    result = triton_client.infer(MODEL, [matrix], model_version="production")
    expected = v1_predictions(base, rows)
    probabilities = result.as_numpy("probability").ravel()
    np.testing.assert_allclose(probabilities, [p["probability"] for p in expected], atol=1e-12)
    assert result.as_numpy("label").ravel().tolist() == [p["label"] for p in expected]
    assert result.get_response()["model_version"] == "1"


@pytest.mark.parametrize("binary", [False, True])
def test_one_row_per_feature_or_as_one_tensor_equals_v1(client, rows, binary):
    triton_client, base = client
    one = rows.iloc[[3]]
    [expected] = v1_predictions(base, one)
    matrix = triton.InferInput("x", [1, one.shape[1]], "FP64")
    matrix.set_data_from_numpy(one.to_numpy(dtype=np.float64), binary_data=binary)
    outputs = [
        triton.InferRequestedOutput(name, binary_data=binary) for name in ("probability", "label")
    ]
    for inputs in (feature_inputs(one, binary=binary), [matrix]):
        result = triton_client.infer(MODEL, inputs, outputs=outputs)
        [probability] = result.as_numpy("probability").ravel().tolist()
        assert probability == pytest.approx(expected["probability"], abs=1e-12)
        assert result.as_numpy("label").ravel().tolist() == [expected["label"]]


def test_a_bad_request_raises_the_servers_message(client, rows):
    triton_client, _base = client
    matrix = triton.InferInput("x", [len(rows), 3], "FP64")
    matrix.set_data_from_numpy(rows.iloc[:, :3].to_numpy(dtype=np.float64), binary_data=True)
    with pytest.raises(triton.InferenceServerException, match="12 features"):
        triton_client.infer(MODEL, [matrix])
