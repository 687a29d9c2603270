"""MLflow's scoring protocol (/invocations, /ping, /health, /version) through the real app."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from conftest import HEART_CSV, bearer
from tabops import __version__
from tabops.config import Settings
from tabops.monitoring.segments import LogReader
from tabops.server.app import create_app
from tabops.server.codecs import mlflow_csv

MODEL = "heart-failure"
INVOCATIONS = f"/v1/models/{MODEL}/invocations"
MAX_ROWS = 50
JSON = "application/json"


@pytest.fixture(scope="module")
def heart() -> pd.DataFrame:
    return pd.read_csv(HEART_CSV).drop(columns=["DEATH_EVENT"]).iloc[:20]


@pytest.fixture(scope="module")
def api(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    home = tmp_path_factory.mktemp("mlflow") / "home"
    shutil.copytree(trained_home, home)
    settings = Settings(home=home, max_batch_rows=MAX_ROWS, monitoring={"enabled": False})
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def names(api: TestClient) -> list[str]:
    return list(api.app.state.deployment.get(MODEL).feature_names)


@pytest.fixture(scope="module")
def v1(api: TestClient, heart: pd.DataFrame) -> list[dict[str, Any]]:
    """The v1 batch route's predictions for the rows."""
    answer = api.post(f"/v1/models/{MODEL}/predict/batch", json={"records": records(heart)})
    assert answer.status_code == 200, answer.text
    return answer.json()["predictions"]


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dict("records")


def bodies(frame: pd.DataFrame, names: list[str]) -> dict[str, dict[str, Any]]:
    """The same rows in every JSON format the protocol accepts."""
    rows = [[record[name] for name in names] for record in records(frame)]
    return {
        "dataframe_split": {"dataframe_split": frame.to_dict("split")},
        # Columns in another order than the model's: typed in that order, then put in the model's.
        "dataframe_split_reordered": {"dataframe_split": frame[names[::-1]].to_dict("split")},
        "dataframe_records": {"dataframe_records": records(frame)},
        "instances_records": {"instances": records(frame)},
        "instances_rows": {"instances": rows},
        "inputs_columns": {"inputs": frame.to_dict("list")},
        "inputs_records": {"inputs": records(frame)},
        "inputs_rows": {"inputs": rows},
    }


def mlflow_error(answer: Any, status: int, code: str) -> str:
    """Assert MLflow's error shape with ``status`` and ``code``; return its message."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error_code", "message"}
    assert body["error_code"] == code
    return str(body["message"])


@pytest.mark.parametrize(
    "form",
    [
        "dataframe_split",
        "dataframe_split_reordered",
        "dataframe_records",
        "instances_records",
        "instances_rows",
        "inputs_columns",
        "inputs_records",
        "inputs_rows",
    ],
)
def test_every_json_format_answers_what_v1_answers(api, heart, names, v1, form):
    body = bodies(heart, names)[form]
    labels = api.post(INVOCATIONS, json=body)
    assert labels.status_code == 200, labels.text
    assert labels.json() == {"predictions": [item["label"] for item in v1]}
    probabilities = api.post(
        INVOCATIONS, json={**body, "params": {"predict_method": "predict_proba"}}
    )
    assert probabilities.status_code == 200, probabilities.text
    found = probabilities.json()["predictions"]
    assert found == pytest.approx([item["probability"] for item in v1], abs=1e-12)


def test_a_csv_body_answers_what_v1_answers(api, heart, v1):
    csv = heart.sample(frac=1.0, axis=1, random_state=0).to_csv(index=False)  # any column order
    headers = {"content-type": "text/csv; charset=utf-8"}
    answer = api.post(f"{INVOCATIONS}?predict_method=predict_proba", content=csv, headers=headers)
    assert answer.status_code == 200, answer.text
    found = answer.json()["predictions"]
    assert found == pytest.approx([item["probability"] for item in v1], abs=1e-12)
    labels = api.post(INVOCATIONS, content=csv, headers=headers).json()["predictions"]
    assert labels == [item["label"] for item in v1]


def test_the_decision_method_answers_the_v1_decision_per_row(api, heart, v1):
    answer = api.post(
        f"{INVOCATIONS}?predict_method=decision", json={"dataframe_records": records(heart)}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == MODEL
    assert body["version"] == 1
    threshold = body["threshold"]
    for item, expected in zip(body["predictions"], v1, strict=True):
        assert set(item) == {"prediction_id", "label", "class_name", "probability"}
        assert item["label"] == expected["label"]
        assert item["class_name"] == expected["class_name"]
        assert item["label"] == (1 if item["probability"] >= threshold else 0)
    ids = [item["prediction_id"] for item in body["predictions"]]
    assert len(set(ids)) == len(ids)


def test_the_default_model_and_an_alias_answer_as_the_named_version(api, heart, v1):
    body = {"dataframe_records": records(heart), "params": {"predict_method": "predict_proba"}}
    expected = pytest.approx([item["probability"] for item in v1], abs=1e-12)
    for path in ("/invocations", f"{INVOCATIONS}?version=production", f"{INVOCATIONS}?version=1"):
        answer = api.post(path, json=body)
        assert answer.status_code == 200, (path, answer.text)
        assert answer.json()["predictions"] == expected
    missing = api.post(f"{INVOCATIONS}?version=7", json=body)
    assert "7" in mlflow_error(missing, 404, "RESOURCE_DOES_NOT_EXIST")
    unknown = api.post("/v1/models/nope/invocations", json=body)
    assert "nope" in mlflow_error(unknown, 404, "RESOURCE_DOES_NOT_EXIST")


def test_ping_health_and_version_answer_as_mlflow_does(api):
    for path in ("/ping", "/health"):
        answer = api.get(path)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"] == MODEL
    version = api.get("/version")
    assert version.status_code == 200
    assert version.text == __version__
    assert version.headers["content-type"].startswith("text/plain")


def test_ping_is_503_when_no_default_model_can_be_served(tmp_path):
    with TestClient(create_app(Settings(home=tmp_path / "empty"))) as client:
        for path in ("/ping", "/health"):
            answer = client.get(path)
            assert answer.status_code == 503, answer.text
            assert answer.json()["status"] == "not ready"


def test_the_query_and_params_may_not_ask_for_different_methods(api, heart):
    body = {"dataframe_records": records(heart)[:1], "params": {"predict_method": "predict"}}
    same = api.post(f"{INVOCATIONS}?predict_method=predict", json=body)
    assert same.status_code == 200, same.text
    differ = api.post(f"{INVOCATIONS}?predict_method=predict_proba", json=body)
    assert "params.predict_method" in mlflow_error(differ, 400, "BAD_REQUEST")


def hostile_cases() -> list[tuple[str, Any, str, int, str]]:
    """(case, body, content type, status, what the message must name)."""
    heart = pd.read_csv(HEART_CSV).drop(columns=["DEATH_EVENT"])
    row, names = records(heart)[0], list(heart.columns)
    values = [row[name] for name in names]
    kind = JSON
    return [
        ("no format key", {"records": [row]}, kind, 400, "records"),
        ("two format keys", {"instances": [row], "inputs": [row]}, kind, 400, "instances, inputs"),
        (
            "wrong type",
            {"dataframe_records": [{**row, "age": "old"}]},
            kind,
            400,
            "dataframe_records[0].age",
        ),
        (
            "ragged row",
            {"dataframe_split": {"columns": names, "data": [values, values[:-1]]}},
            kind,
            400,
            "dataframe_split.data[1]",
        ),
        ("ragged instance", {"instances": [[*values, 1]]}, kind, 400, "instances[0]"),
        ("ragged columns", {"inputs": {"age": [1, 2], "sex": [1]}}, kind, 400, "inputs"),
        (
            "unknown column",
            {"instances": [{**row, "height": 180}]},
            kind,
            400,
            "instances[0].height",
        ),
        (
            "missing column",
            {"dataframe_records": [{k: v for k, v in row.items() if k != "age"}]},
            kind,
            400,
            "dataframe_records[0].age",
        ),
        ("not a list", {"dataframe_records": {"age": 1}}, kind, 400, "dataframe_records"),
        ("a scalar row", {"instances": [5]}, kind, 400, "instances[0]"),
        (
            "split without columns",
            {"dataframe_split": {"data": [values]}},
            kind,
            400,
            "dataframe_split.columns",
        ),
        ("empty", {"dataframe_records": []}, kind, 400, "dataframe_records"),
        (
            "unknown param",
            {"inputs": [row], "params": {"temperature": 1}},
            kind,
            400,
            "params.temperature",
        ),
        (
            "unknown method",
            {"inputs": [row], "params": {"predict_method": "explain"}},
            kind,
            400,
            "params.predict_method",
        ),
        ("not an object", [row], kind, 400, "body"),
        ("not JSON", b"{dataframe_records:", kind, 400, "JSON"),
        ("empty body", b"", kind, 400, "body"),
        ("huge batch", {"instances": [row] * (MAX_ROWS + 1)}, kind, 413, "instances"),
        ("bad CSV", b"age,sex\n1,2,3,4\n", "text/csv", 400, "body"),
        (
            "CSV bad cell",
            "\n".join([",".join(names), ",".join(["x"] * len(names))]).encode(),
            "text/csv",
            400,
            "row 1.age",
        ),
        ("CSV unknown column", b"height\n180\n", "text/csv", 400, "height"),
        ("CSV header only", ",".join(names).encode(), "text/csv", 400, "body"),
        ("CSV not UTF-8", b"age\n\xff\xfe\n", "text/csv", 400, "body"),
        ("wrong content type", b"age=1", "application/x-www-form-urlencoded", 415, "text/csv"),
        (
            "MLflow 1.x format",
            {"columns": names, "data": [values]},
            "application/json; format=pandas-split",
            415,
            "format",
        ),
        ("latin-1", {"inputs": [row]}, "application/json; charset=latin-1", 415, "UTF-8"),
    ]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "named"),
    [case[1:] for case in hostile_cases()],
    ids=[case[0] for case in hostile_cases()],
)
def test_hostile_inputs_are_4xx_naming_the_problem(api, body, content_type, status, named):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = api.post(INVOCATIONS, content=content, headers={"content-type": content_type})
    assert answer.status_code == status, answer.text
    found = answer.json()
    assert set(found) == {"error_code", "message"}
    assert named in found["message"]


def test_a_body_without_content_type_is_415(api):
    answer = api.post(INVOCATIONS, content=b'{"inputs": []}')
    assert "application/json" in mlflow_error(answer, 415, "BAD_REQUEST")


def test_invocations_are_logged_once_each_under_their_route(home, heart):
    with TestClient(create_app(Settings(home=home))) as client:
        answer = client.post(
            "/invocations?predict_method=decision",
            json={"dataframe_split": heart.iloc[:5].to_dict("split")},
        )
        csv = heart.iloc[5:8].to_csv(index=False)
        scored = client.post(
            f"{INVOCATIONS}?predict_method=decision",
            content=csv,
            headers={"content-type": "text/csv"},
        )
        refused = client.post(INVOCATIONS, json={"inputs": [{"age": "old"}]})
        assert refused.status_code == 400  # decides nothing, so logs nothing
    answered = [p["prediction_id"] for p in answer.json()["predictions"]]
    answered += [p["prediction_id"] for p in scored.json()["predictions"]]
    frame = pd.concat(batch.to_pandas() for batch in LogReader(home / "predictions").batches(MODEL))
    assert sorted(frame["prediction_id"]) == sorted(answered)
    assert set(frame["route"]) == {"invocations"}


def test_keys_guard_invocations_and_version_but_not_ping(keyed, heart):
    client, keys = keyed
    keys.create("admin", "admin")
    _read, read = keys.create("reader", "read")
    _predict, predict = keys.create("scorer", "predict")
    body = {"dataframe_records": records(heart)[:2]}
    for path in ("/invocations", INVOCATIONS):
        mlflow_error(client.post(path, json=body), 401, "UNAUTHENTICATED")
        mlflow_error(client.post(path, json=body, headers=bearer(read)), 403, "PERMISSION_DENIED")
        assert client.post(path, json=body, headers=bearer(predict)).status_code == 200
    mlflow_error(client.get("/version"), 401, "UNAUTHENTICATED")
    assert client.get("/version", headers=bearer(read)).text == __version__
    assert client.get("/ping").status_code == 200
    assert client.get("/health").status_code == 200


def test_invocations_share_the_rate_limit_of_v1_predict(keyed, heart):
    client, keys = keyed
    _key, token = keys.create("slow", "predict", rate_per_second=0.01)
    record = records(heart)[0]
    # The key's one request of its burst spent on /v1, /invocations is over the same rate.
    assert client.post("/predict", json=record, headers=bearer(token)).status_code == 200
    limited = client.post("/invocations", json={"inputs": [record]}, headers=bearer(token))
    assert "slow" in mlflow_error(limited, 429, "REQUEST_LIMIT_EXCEEDED")
    assert int(limited.headers["retry-after"]) >= 90


def test_the_openapi_document_declares_every_answer_in_mlflows_shape(api):
    document = api.get("/openapi.json").json()
    paths = document["paths"]
    for path in ("/invocations", "/v1/models/{name}/invocations"):
        operation = paths[path]["post"]
        assert operation["tags"] == ["mlflow"]
        assert set(operation["requestBody"]["content"]) == {JSON, "text/csv"}
        responses = operation["responses"]
        assert {"200", "400", "401", "403", "404", "413", "415", "429", "503", "507"} <= set(
            responses
        )
        for status, response in responses.items():
            if status != "200":
                schema = response["content"][JSON]["schema"]
                assert schema["required"] == ["error_code", "message"], (path, status)
    for path in ("/ping", "/health"):
        operation = paths[path]["get"]
        assert operation["security"] == []
        assert "401" not in operation["responses"]
        assert "503" in operation["responses"]
    assert "text/plain" in paths["/version"]["get"]["responses"]["200"]["content"]


def heart_spellings(heart: pd.DataFrame) -> dict[str, str]:
    """The same rows of the example as CSV, written the ways clients write them, or broken."""
    rows = heart.iloc[:4]
    flags = ["anaemia", "diabetes", "high_blood_pressure", "sex", "smoking"]
    words = rows.assign(**{name: rows[name].map({0: "false", 1: "True"}) for name in flags})
    spaced = rows.astype(str).map(lambda cell: f" {cell}")
    plain = rows.to_csv(index=False)
    header, first, *rest = plain.splitlines()
    cells = first.split(",")
    at = {name: position for position, name in enumerate(header.split(","))}

    def first_row_with(name: str, cell: str) -> str:
        changed = [cell if position == at[name] else value for position, value in enumerate(cells)]
        return "\n".join([header, ",".join(changed), *rest]) + "\n"

    return {
        "plain": plain,
        "other column order": rows[rows.columns[::-1]].to_csv(index=False),
        "CRLF and every cell quoted": rows.to_csv(index=False, lineterminator="\r\n", quoting=1),
        "every number a float": rows.astype(float).to_csv(index=False),
        "flags as words": words.to_csv(index=False),
        "spaces before numbers": spaced.to_csv(index=False),
        "an exponent": first_row_with("platelets", "2.65e5"),
        "a gap": first_row_with("age", ""),
        "NaN": first_row_with("age", "NaN"),
        "a flag of 2": first_row_with("sex", "2"),
        "a flag as yes": first_row_with("sex", "yes"),
        "a fraction for a whole number": first_row_with("time", "4.5"),
        "underscores": first_row_with("platelets", "265_000"),
        "infinity": first_row_with("age", "inf"),
        "text for a number": first_row_with("age", "old"),
        "an extra column": plain.replace(header, header + ",height", 1),
        "a blank line": plain + "\n",
    }


@pytest.fixture
def pandas_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every CSV body read by pandas and the file rules, however small."""
    monkeypatch.setattr(mlflow_csv, "SMALL_CSV_BYTES", -1)


def answers(client: TestClient, path: str, bodies: dict[str, str]) -> dict[str, tuple[int, Any]]:
    headers = {"content-type": "text/csv"}
    found = {}
    for name, body in bodies.items():
        answer = client.post(f"{path}?predict_method=predict_proba", content=body, headers=headers)
        found[name] = (answer.status_code, answer.json())
    return found


def assert_same_answers(fast: dict[str, Any], slow: dict[str, Any]) -> None:
    for name, (status, document) in fast.items():
        assert slow[name][0] == status, name
        if status == 200:
            expected = pytest.approx(slow[name][1]["predictions"], abs=1e-12)
            assert document["predictions"] == expected, name
        else:
            assert slow[name][1] == document, name


def test_a_small_csv_answers_as_pandas_reads_it_however_it_is_written(api, heart, request):
    spellings = heart_spellings(heart)
    fast = answers(api, INVOCATIONS, spellings)
    request.getfixturevalue("pandas_only")
    slow = answers(api, INVOCATIONS, spellings)
    assert_same_answers(fast, slow)
    assert {name for name, (status, _) in fast.items() if status == 200} == {
        "plain",
        "other column order",
        "CRLF and every cell quoted",
        "every number a float",
        "flags as words",
        "spaces before numbers",
        "an exponent",
        "a blank line",
    }


def test_a_small_csv_with_categories_and_gaps_answers_as_pandas_reads_it(colours, request):
    rows = [
        "amount,colour,gap",
        "41.5,red,",  # a gap where the feature may have one
        "60,mauve,0.25",  # a category never seen in training
        '52.25,"blue",-1.5',
        "10,007,1",  # a category pandas reads as the number 7
        "10,true,1",
        "10,,1",
        "12.5,a b,NA",
    ]
    bodies = {row: f"{rows[0]}\n{row}\n" for row in rows[1:]}
    bodies["all"] = "\n".join(rows[:4]) + "\n"
    path = "/v1/models/colours/invocations"
    fast = answers(colours, path, bodies)
    request.getfixturevalue("pandas_only")
    slow = answers(colours, path, bodies)
    assert_same_answers(fast, slow)
    assert fast["60,mauve,0.25"][0] == fast["all"][0] == 200
