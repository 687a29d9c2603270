"""The Open Inference Protocol V2 over the ASGI app: metadata, inference, binary data, access."""

from __future__ import annotations

import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from conftest import HEART_CSV, HEART_FEATURES, bearer
from tabops.config import Settings
from tabops.monitoring.segments import LogReader
from tabops.server.app import create_app

MODEL = "heart-failure"
INFER = f"/v2/models/{MODEL}/infer"
FEATURES = HEART_FEATURES
DATATYPES = {"age": "FP64", "platelets": "FP64", "serum_creatinine": "FP64"}
FLAGS = {"anaemia", "diabetes", "high_blood_pressure", "sex", "smoking"}


@pytest.fixture(scope="module")
def client(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app for the tests that change nothing, over a copy of the trained home."""
    home = shutil.copytree(trained_home, tmp_path_factory.mktemp("v2") / "home")
    with TestClient(create_app(Settings(home=home))) as shared:
        yield shared


@pytest.fixture(scope="module")
def heart() -> pd.DataFrame:
    return pd.read_csv(HEART_CSV).drop(columns=["DEATH_EVENT"])


def records(heart: pd.DataFrame, start: int = 0, count: int = 5) -> list[dict[str, Any]]:
    return heart.iloc[start : start + count].to_dict("records")


def datatype(name: str) -> str:
    return "BOOL" if name in FLAGS else DATATYPES.get(name, "INT64")


def per_feature(rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """One tensor per feature, shape [n, 1], in each feature's own datatype."""
    inputs = []
    for name in FEATURES:
        values = [bool(row[name]) if name in FLAGS else row[name] for row in rows]
        inputs.append(
            {"name": name, "datatype": datatype(name), "shape": [len(rows), 1], "data": values}
        )
    return {"inputs": inputs, **extra}


def matrix_of(rows: list[dict[str, Any]]) -> np.ndarray:
    return np.array([[float(row[name]) for name in FEATURES] for row in rows])


def v1_batch(client: TestClient, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answer = client.post(f"/v1/models/{MODEL}/predict/batch", json={"records": rows})
    assert answer.status_code == 200, answer.text
    predictions: list[dict[str, Any]] = answer.json()["predictions"]
    return predictions


def outputs_of(document: dict[str, Any]) -> dict[str, list[Any]]:
    return {output["name"]: output["data"] for output in document["outputs"]}


def assert_same_as_v1(outputs: dict[str, list[Any]], expected: list[dict[str, Any]]) -> None:
    assert len(outputs["probability"]) == len(expected)
    for probability, label, v1 in zip(
        outputs["probability"], outputs["label"], expected, strict=True
    ):
        assert abs(probability - v1["probability"]) <= 1e-12
        assert label == v1["label"]


def v2_error(answer: Any, status: int) -> str:
    assert answer.status_code == status, answer.text
    message: str = answer.json()["error"]
    assert isinstance(message, str)
    return message


def split_binary(answer: Any) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The JSON header of a binary answer, and each binary output's bytes by name."""
    length = int(answer.headers["inference-header-content-length"])
    header = orjson.loads(answer.content[:length])
    data, offset = {}, length
    for output in header["outputs"]:
        size = output.get("parameters", {}).get("binary_data_size")
        if size is not None:
            data[output["name"]] = answer.content[offset : offset + size]
            offset += size
    assert offset == len(answer.content)
    return header, data


def binary_request(header: dict[str, Any], tail: bytes) -> tuple[bytes, dict[str, str]]:
    json_part = orjson.dumps(header)
    headers = {
        "Inference-Header-Content-Length": str(len(json_part)),
        "Content-Type": "application/octet-stream",
    }
    return json_part + tail, headers


def test_server_metadata_and_health_answer_as_the_protocol_says(client):
    metadata = client.get("/v2").json()
    assert metadata["name"] == "tabops"
    assert metadata["extensions"] == ["binary_tensor_data"]
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}


def test_model_metadata_lists_one_input_per_feature_in_its_datatype(client):
    metadata = client.get(f"/v2/models/{MODEL}").json()
    assert metadata["name"] == MODEL
    assert metadata["versions"] == ["1"]
    assert metadata["platform"] == "tabops-sklearn"
    assert [(i["name"], i["datatype"], i["shape"]) for i in metadata["inputs"]] == [
        (name, datatype(name), [-1, 1]) for name in FEATURES
    ]
    assert [(o["name"], o["datatype"]) for o in metadata["outputs"]] == [
        ("probability", "FP64"),
        ("label", "INT64"),
        ("class_name", "BYTES"),
    ]


@pytest.mark.parametrize("version", ["1", "production"])
def test_a_version_is_named_by_number_or_alias_in_every_path(client, heart, version):
    base = f"/v2/models/{MODEL}/versions/{version}"
    assert client.get(base).json()["versions"] == ["1"]
    assert client.get(f"{base}/ready").json() == {"name": MODEL, "ready": True}
    answer = client.post(f"{base}/infer", json=per_feature(records(heart, 0, 2)))
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == "1"


@pytest.mark.parametrize(
    "path",
    [
        "/v2/models/no-such-model",
        "/v2/models/no-such-model/ready",
        f"/v2/models/{MODEL}/versions/9",
        f"/v2/models/{MODEL}/versions/nightly/ready",
    ],
)
def test_an_unknown_model_or_version_is_404_in_the_protocol_shape(client, path):
    assert v2_error(client.get(path), 404)


def test_unknown_model_infer_is_404_naming_it(client, heart):
    answer = client.post("/v2/models/no-such-model/infer", json=per_feature(records(heart)))
    assert "no-such-model" in v2_error(answer, 404)


def test_infer_with_one_tensor_per_feature_equals_v1_predictions(client, heart):
    rows = records(heart, 10, 7)
    answer = client.post(INFER, json=per_feature(rows))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    document = answer.json()
    assert document["model_name"] == MODEL
    assert document["model_version"] == "1"
    assert [o["name"] for o in document["outputs"]] == ["probability", "label"]
    assert document["outputs"][0]["shape"] == [7, 1]
    assert_same_as_v1(outputs_of(document), v1_batch(client, rows))


def test_infer_of_one_record_equals_v1_predict(client, heart):
    [row] = records(heart, 3, 1)
    expected = client.post(f"/v1/models/{MODEL}/predict", json=row).json()
    body = per_feature([row])
    for tensor in body["inputs"]:
        tensor["shape"] = [1]
    answer = client.post(INFER, json=body)
    assert answer.status_code == 200, answer.text
    assert_same_as_v1(outputs_of(answer.json()), [expected])


def test_the_pd_content_type_is_the_tensor_per_feature_form(client, heart):
    rows = records(heart, 20, 3)
    answer = client.post(INFER, json=per_feature(rows, parameters={"content_type": "pd"}))
    assert answer.status_code == 200, answer.text
    assert_same_as_v1(outputs_of(answer.json()), v1_batch(client, rows))


@pytest.mark.parametrize("kind", ["FP64", "FP32"])
def test_infer_with_one_matrix_tensor_equals_v1_predictions(client, heart, kind):
    rows = records(heart, 30, 6)
    matrix = matrix_of(rows)
    body = {"inputs": [{"name": "x", "datatype": kind, "shape": [6, 12], "data": matrix.tolist()}]}
    answer = client.post(INFER, json=body)
    assert answer.status_code == 200, answer.text
    if kind == "FP64":
        assert_same_as_v1(outputs_of(answer.json()), v1_batch(client, rows))


def test_binary_matrix_in_and_binary_outputs_out_equal_v1(client, heart):
    rows = records(heart, 40, 25)
    tail = matrix_of(rows).astype("<f8").tobytes()
    header = {
        "inputs": [
            {
                "name": "x",
                "datatype": "FP64",
                "shape": [25, 12],
                "parameters": {"binary_data_size": len(tail)},
            }
        ],
        "outputs": [
            {"name": "probability", "parameters": {"binary_data": True}},
            {"name": "label", "parameters": {"binary_data": True}},
            {"name": "class_name", "parameters": {"binary_data": True}},
        ],
    }
    content, headers = binary_request(header, tail)
    answer = client.post(INFER, content=content, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/octet-stream"
    document, data = split_binary(answer)
    probabilities = np.frombuffer(data["probability"], dtype="<f8").tolist()
    labels = np.frombuffer(data["label"], dtype="<i8").tolist()
    expected = v1_batch(client, rows)
    assert_same_as_v1({"probability": probabilities, "label": labels}, expected)
    names, offset, raw = [], 0, data["class_name"]
    while offset < len(raw):
        (length,) = struct.unpack_from("<I", raw, offset)
        names.append(raw[offset + 4 : offset + 4 + length].decode())
        offset += 4 + length
    assert names == [p["class_name"] for p in expected]
    assert document["outputs"][2]["shape"] == [25, 1]


def one_row_binary(row: dict[str, Any], **request: Any) -> tuple[bytes, dict[str, str]]:
    tail = matrix_of([row]).astype("<f8").tobytes()
    item = {"name": "x", "datatype": "FP64", "shape": [1, 12]}
    return binary_request(
        {"inputs": [item | {"parameters": {"binary_data_size": 96}}], **request}, tail
    )


def test_one_row_as_one_tensor_equals_v1_predict_in_json_and_in_binary(client, heart):
    [row] = records(heart, 33, 1)
    expected = client.post(f"/v1/models/{MODEL}/predict", json=row).json()
    values = matrix_of([row]).ravel().tolist()
    for datatype in ("FP64", "FP32"):
        item = {"name": "x", "datatype": datatype, "shape": [1, 12], "data": values}
        answer = client.post(INFER, json={"inputs": [item]})
        assert answer.status_code == 200, answer.text
        assert_same_as_v1(outputs_of(answer.json()), [expected])
    content, headers = one_row_binary(row, id="same", parameters={"binary_data_output": True})
    answer = client.post(INFER, content=content, headers=headers)
    assert answer.status_code == 200, answer.text
    _document, data = split_binary(answer)
    [probability] = np.frombuffer(data["probability"], dtype="<f8").tolist()
    [label] = np.frombuffer(data["label"], dtype="<i8").tolist()
    assert_same_as_v1({"probability": [probability], "label": [label]}, [expected])
    # The same bytes as when the outputs are named one by one.
    named = [
        {"name": name, "parameters": {"binary_data": True}} for name in ("probability", "label")
    ]
    content, headers = one_row_binary(row, id="same", outputs=named)
    asked = client.post(INFER, content=content, headers=headers)
    assert (
        asked.headers["inference-header-content-length"]
        == answer.headers["inference-header-content-length"]
    )
    assert asked.content == answer.content


@pytest.mark.parametrize(
    ("position", "value", "problem"),
    [
        (11, 4.5, "inputs.x[0, 11] (time): "),
        (1, 2.0, "inputs.x[0, 1] (anaemia): "),
        (0, float("nan"), "inputs.x[0, 0] (age): is empty"),
    ],
)
def test_one_row_tensor_with_a_value_its_feature_refuses_is_400_naming_the_cell(
    client, heart, position, value, problem
):
    [row] = records(heart, 0, 1)
    matrix = matrix_of([row])
    matrix[0, position] = value
    item = {"name": "x", "datatype": "FP64", "shape": [1, 12]}
    tail = matrix.astype("<f8").tobytes()
    content, headers = binary_request(
        {"inputs": [item | {"parameters": {"binary_data_size": 96}}]}, tail
    )
    assert problem in v2_error(client.post(INFER, content=content, headers=headers), 400)
    if not np.isnan(value):
        json_body = {"inputs": [item | {"data": matrix.ravel().tolist()}]}
        assert problem in v2_error(client.post(INFER, json=json_body), 400)


def test_binary_tensors_per_feature_mix_with_json_ones(client, heart):
    rows = records(heart, 50, 4)
    body = per_feature(rows)
    tail = b""
    for tensor in body["inputs"]:
        if tensor["datatype"] in ("INT64", "BOOL"):
            dtype = "<i8" if tensor["datatype"] == "INT64" else "?"
            raw = np.asarray(tensor.pop("data"), dtype=dtype).tobytes()
            tensor["parameters"] = {"binary_data_size": len(raw)}
            tail += raw
    body["parameters"] = {"binary_data_output": True}
    content, headers = binary_request(body, tail)
    answer = client.post(INFER, content=content, headers=headers)
    assert answer.status_code == 200, answer.text
    _document, data = split_binary(answer)
    probabilities = np.frombuffer(data["probability"], dtype="<f8").tolist()
    labels = np.frombuffer(data["label"], dtype="<i8").tolist()
    assert_same_as_v1({"probability": probabilities, "label": labels}, v1_batch(client, rows))


def test_outputs_asked_for_are_the_outputs_answered(client, heart):
    rows = records(heart, 60, 3)
    body = per_feature(rows, outputs=[{"name": "class_name"}, {"name": "probability"}])
    document = client.post(INFER, json=body).json()
    assert [o["name"] for o in document["outputs"]] == ["class_name", "probability"]
    expected = v1_batch(client, rows)
    assert outputs_of(document)["class_name"] == [p["class_name"] for p in expected]


def test_one_row_with_the_default_outputs_is_answered_as_when_they_are_named(client, heart):
    row = records(heart, 64, 1)
    named = [{"name": "probability"}, {"name": "label"}]
    default = client.post(INFER, json=per_feature(row, id="same"))
    asked = client.post(INFER, json=per_feature(row, id="same", outputs=named))
    assert default.status_code == asked.status_code == 200
    assert default.json() == asked.json()
    assert default.content == asked.content


def test_the_answer_echoes_the_request_id_or_the_requests_own(client, heart):
    answer = client.post(INFER, json=per_feature(records(heart), id="order-7"))
    assert answer.json()["id"] == "order-7"
    answer = client.post(INFER, json=per_feature(records(heart)), headers={"X-Request-ID": "r-9"})
    assert answer.json()["id"] == "r-9" == answer.headers["x-request-id"]


def test_infer_is_answered_by_the_fast_path_and_by_the_routes_alike(client, heart):
    app = client.app
    for path in (INFER, f"/v2/models/{MODEL}/versions/1/infer"):
        scope = {"type": "http", "method": "POST", "path": path, "query_string": b""}
        assert app.fast.match(scope) is not None
    body = per_feature(records(heart, 70, 3))
    fast = client.post(INFER, json=body).json()
    routed = client.post(f"{INFER}?trace=1", json=body).json()
    assert outputs_of(fast) == outputs_of(routed)


def test_v2_predictions_are_written_to_the_prediction_log(home, heart):
    rows = records(heart, 80, 7)
    with TestClient(create_app(Settings(home=home))) as client:
        matrix = {"name": "x", "datatype": "FP64", "shape": [3, 12]}
        matrix["data"] = matrix_of(rows[3:6]).ravel().tolist()
        assert client.post(INFER, json=per_feature(rows[:3])).status_code == 200
        assert client.post(INFER, json={"inputs": [matrix]}).status_code == 200
        content, headers = one_row_binary(rows[6])
        assert client.post(INFER, content=content, headers=headers).status_code == 200
    batches = LogReader(home / "predictions").batches(MODEL)
    logged = pd.concat([batch.to_pandas() for batch in batches], ignore_index=True)
    assert len(logged) == 7
    assert set(logged["route"]) == {"infer"}
    # Every feature of every row, whether the route kept them as rows or as the matrix sent.
    seen = sorted(sorted((k, float(v)) for k, v in f.items()) for f in logged["features"])
    assert seen == sorted(sorted((k, float(v)) for k, v in row.items()) for row in rows)


def test_too_many_rows_is_413_naming_the_tensor(home, heart):
    settings = Settings(home=home, serving={"max_batch_rows": 4})
    with TestClient(create_app(settings)) as client:
        answer = client.post(INFER, json=per_feature(records(heart, 0, 5)))
        assert "inputs.age" in v2_error(answer, 413)


def _with(body: dict[str, Any], name: str, **changes: Any) -> dict[str, Any]:
    for tensor in body["inputs"]:
        if tensor["name"] == name:
            tensor.update(changes)
    return body


HOSTILE = {
    "wrong datatype": (
        lambda b: _with(b, "age", datatype="BYTES"),
        "inputs.age: datatype BYTES does not fit a numeric feature; send FP64",
    ),
    "unknown datatype": (lambda b: _with(b, "age", datatype="FLOAT"), "inputs.age.datatype"),
    "datatype an object": (lambda b: _with(b, "age", datatype={"a": 1}), "inputs.age.datatype"),
    "datatype a list": (lambda b: _with(b, "age", datatype=["FP64"]), "inputs.age.datatype"),
    "shape mismatch": (lambda b: _with(b, "time", shape=[2, 1]), "inputs.time"),
    "data length": (lambda b: _with(b, "time", data=[1, 2]), "inputs.time.data"),
    "text in numbers": (lambda b: _with(b, "age", data=[60, "old", 50]), "inputs.age[1]"),
    "flag out of range": (lambda b: _with(b, "sex", datatype="INT64", data=[0, 2, 1]), "sex[1]"),
    "fraction in an integer": (lambda b: _with(b, "time", data=[4, 5.5, 6]), "inputs.time[1]"),
    "unknown tensor": (
        lambda b: {"inputs": [*b["inputs"], {**b["inputs"][0], "name": "height"}]},
        "inputs.height",
    ),
    "missing feature": (lambda b: {"inputs": b["inputs"][1:]}, "inputs.age"),
    "no inputs": (lambda b: {"inputs": []}, "inputs"),
    "unknown output": (lambda b: {**b, "outputs": [{"name": "score"}]}, "outputs[0].name"),
    "matrix with too few columns": (
        lambda b: {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 3], "data": [1] * 3}]},
        "inputs.x",
    ),
    "not an object": (lambda b: [1, 2], "body"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_request_is_400_naming_what_is_wrong(client, heart, case):
    change, named = HOSTILE[case]
    body = change(per_feature(records(heart, 0, 3)))
    answer = client.post(INFER, content=orjson.dumps(body))
    assert named in v2_error(answer, 400)


def test_malformed_json_and_an_empty_body_are_400(client):
    assert "body" in v2_error(client.post(INFER, content=b"{nope"), 400)
    assert "body" in v2_error(client.post(INFER, content=b""), 400)


BINARY_CASES = {
    "size beyond the data": (10_000, None, "inputs.x"),
    "size not a multiple": (17, None, "inputs.x"),
    "size not a number": ("many", None, "inputs.x"),
    "huge header length": (96, str(10**12), "Inference-Header-Content-Length"),
    "header length not a number": (96, "-5", "Inference-Header-Content-Length"),
}


@pytest.mark.parametrize("case", list(BINARY_CASES))
def test_binary_sizes_that_do_not_add_up_are_400_naming_the_tensor(client, heart, case):
    size, length, named = BINARY_CASES[case]
    tail = matrix_of(records(heart, 0, 1)).astype("<f8").tobytes()  # 96 bytes
    header = {
        "inputs": [
            {"name": "x", "datatype": "FP64", "shape": [1, 12]}
            | {"parameters": {"binary_data_size": size}}
        ]
    }
    content, headers = binary_request(header, tail)
    if length is not None:
        headers["Inference-Header-Content-Length"] = length
    assert named in v2_error(client.post(INFER, content=content, headers=headers), 400)


def test_binary_data_left_over_is_400(client, heart):
    tail = matrix_of(records(heart, 0, 1)).astype("<f8").tobytes()
    header = {
        "inputs": [
            {
                "name": "x",
                "datatype": "FP64",
                "shape": [1, 12],
                "parameters": {"binary_data_size": len(tail)},
            }
        ]
    }
    content, headers = binary_request(header, tail + b"\0" * 8)
    assert "inputs" in v2_error(client.post(INFER, content=content, headers=headers), 400)


def test_nan_in_a_binary_tensor_of_a_required_feature_is_400_naming_the_cell(client, heart):
    matrix = matrix_of(records(heart, 0, 2))
    matrix[1, 0] = np.nan
    tail = matrix.astype("<f8").tobytes()
    header = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [2, 12]}]}
    header["inputs"][0]["parameters"] = {"binary_data_size": len(tail)}
    content, headers = binary_request(header, tail)
    message = v2_error(client.post(INFER, content=content, headers=headers), 400)
    assert "inputs.x[1, 0] (age): is empty" in message


def test_keys_guard_metadata_and_infer_but_not_health(keyed, heart):
    client, keys = keyed
    _read, read = keys.create("reader", "read")
    _predict, predict = keys.create("scorer", "predict")
    body = per_feature(records(heart, 0, 2))
    assert "key" in v2_error(client.post(INFER, json=body), 401).lower()
    assert v2_error(client.post(INFER, json=body, headers=bearer(read)), 403)
    assert client.post(INFER, json=body, headers=bearer(predict)).status_code == 200
    assert v2_error(client.get(f"/v2/models/{MODEL}"), 401)
    assert client.get(f"/v2/models/{MODEL}", headers=bearer(read)).status_code == 200
    assert client.get("/v2", headers=bearer(read)).status_code == 200
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200


def test_infer_shares_the_rate_limit_of_v1_predict(keyed, heart):
    client, keys = keyed
    _key, token = keys.create("slow", "predict", rate_per_second=0.01)
    [record] = records(heart, 0, 1)
    # The key's one request of its burst spent on /v1, V2 is over the same rate.
    assert client.post("/predict", json=record, headers=bearer(token)).status_code == 200
    limited = client.post(INFER, json=per_feature([record]), headers=bearer(token))
    assert "slow" in v2_error(limited, 429)
    assert int(limited.headers["retry-after"]) >= 90


COLOUR_ROWS = [
    {"amount": 41.5, "colour": "red", "gap": None},
    {"amount": 60.0, "colour": "mauve", "gap": 0.25},  # a category never seen in training
    {"amount": 52.25, "colour": "blue", "gap": -1.5},
]


def test_categories_as_bytes_and_gaps_as_null_equal_v1_predictions(colours):
    expected = colours.post("/v1/models/colours/predict/batch", json={"records": COLOUR_ROWS})
    assert expected.status_code == 200, expected.text
    inputs = [
        {"name": name, "datatype": kind, "shape": [3, 1], "data": [r[name] for r in COLOUR_ROWS]}
        for name, kind in (("amount", "FP64"), ("colour", "BYTES"), ("gap", "FP64"))
    ]
    answer = colours.post("/v2/models/colours/infer", json={"inputs": inputs})
    assert answer.status_code == 200, answer.text
    assert_same_as_v1(outputs_of(answer.json()), expected.json()["predictions"])
    # The same rows with the category as binary BYTES and the gap as NaN in binary FP64.
    packed = b"".join(
        struct.pack("<I", len(r["colour"])) + r["colour"].encode() for r in COLOUR_ROWS
    )
    gaps = np.array([np.nan if r["gap"] is None else r["gap"] for r in COLOUR_ROWS], "<f8")
    inputs[1] = {"name": "colour", "datatype": "BYTES", "shape": [3]}
    inputs[1]["parameters"] = {"binary_data_size": len(packed)}
    inputs[2] = {"name": "gap", "datatype": "FP64", "shape": [3], "parameters": {}}
    inputs[2]["parameters"]["binary_data_size"] = gaps.nbytes
    content, headers = binary_request({"inputs": inputs}, packed + gaps.tobytes())
    binary = colours.post("/v2/models/colours/infer", content=content, headers=headers)
    assert binary.status_code == 200, binary.text
    assert_same_as_v1(outputs_of(binary.json()), expected.json()["predictions"])


def test_one_row_with_a_category_equals_v1_and_a_matrix_is_refused(colours):
    [row] = COLOUR_ROWS[:1]
    expected = colours.post("/v1/models/colours/predict", json=row).json()
    inputs = [
        {"name": name, "datatype": kind, "shape": [1], "data": [row[name]]}
        for name, kind in (("amount", "FP64"), ("colour", "BYTES"), ("gap", "FP64"))
    ]
    answer = colours.post("/v2/models/colours/infer", json={"inputs": inputs})
    assert_same_as_v1(outputs_of(answer.json()), [expected])
    metadata = colours.get("/v2/models/colours").json()
    assert [i["datatype"] for i in metadata["inputs"]] == ["FP64", "BYTES", "FP64"]
    matrix = {"name": "x", "datatype": "FP64", "shape": [1, 3], "data": [1.0, 2.0, 3.0]}
    refused = colours.post("/v2/models/colours/infer", json={"inputs": [matrix]})
    assert "numbers only" in v2_error(refused, 400)
    wrong = [{**inputs[0]}, {**inputs[1], "data": [7]}, inputs[2]]
    assert "inputs.colour[0]: 7 is not text" in v2_error(
        colours.post("/v2/models/colours/infer", json={"inputs": wrong}), 400
    )


@pytest.mark.parametrize("query", ["", "?trace=1"])  # the fast path, and the routes
def test_binary_data_full_of_brackets_is_not_taken_for_deep_json(client, query):
    tail = b"[" * 8 * 12 * 10  # ten rows of 1.1e132: no whole number fits in 64 bits
    header = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [10, 12]}]}
    header["inputs"][0]["parameters"] = {"binary_data_size": len(tail)}
    content, headers = binary_request(header, tail)
    message = v2_error(client.post(INFER + query, content=content, headers=headers), 400)
    assert "inputs.x[0, 2] (creatinine_phosphokinase): " in message
    assert "beyond the 64-bit integer range" in message


def test_an_unknown_v2_route_is_404_in_the_protocol_shape(client):
    assert v2_error(client.post(f"/v2/models/{MODEL}/predict", json={}), 404)
