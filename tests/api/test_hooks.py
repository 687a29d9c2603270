"""The serving core's hooks hold on every predict route: the fast path is no back door.

A recording sink must see each prediction a client receives exactly once, whichever route
served it (fast path, FastAPI route, batch, records job, file job), and an ``authorize``
hook that refuses must be obeyed before anything is loaded or decoded.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from conftest import HEART_CSV, wait_for
from tabops.config import Settings
from tabops.errors import NotAuthorizedError
from tabops.server.app import create_app
from tabops.serving.context import RequestContext
from tabops.serving.hooks import Hooks, ServedPredictions

MODEL = "heart-failure"


class RecordingSink:
    """Keeps every group of decisions it is handed (from the event loop or job threads)."""

    def __init__(self) -> None:
        self.served: list[ServedPredictions] = []
        self._lock = threading.Lock()

    def record(self, served: ServedPredictions) -> None:
        with self._lock:
            self.served.append(served)

    def prediction_ids(self) -> list[str]:
        return [decision.prediction_id for group in self.served for decision in group.decisions]


@pytest.fixture
def heart() -> pd.DataFrame:
    return pd.read_csv(HEART_CSV).drop(columns=["DEATH_EVENT"])


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def recorded(home: Path, sink: RecordingSink) -> Iterator[TestClient]:
    app = create_app(Settings(home=home, job_workers=1), hooks=Hooks(sink=sink))
    with TestClient(app) as client:
        yield client


def records(heart: pd.DataFrame, start: int, count: int) -> list[dict]:
    return heart.iloc[start : start + count].to_dict("records")


def test_sink_sees_each_prediction_of_every_route_exactly_once(recorded, sink, heart):
    client = recorded
    answered: list[str] = []
    one = records(heart, 0, 1)[0]
    # The fast path: default model, named model, a version by number.
    for path in ("/predict", f"/v1/models/{MODEL}/predict", f"/v1/models/{MODEL}/predict"):
        answer = client.post(path, json=one)
        assert answer.status_code == 200, answer.text
        answered.append(answer.json()["prediction_id"])
    # A query string the fast path leaves to FastAPI's routing.
    routed = client.post(f"/v1/models/{MODEL}/predict?version=1&trace=1", json=one)
    assert routed.status_code == 200, routed.text
    answered.append(routed.json()["prediction_id"])
    # A record the typed decoder refuses (an integer written 75.0) but validation accepts.
    loose = {**one, "age": 75.0, "time": float(one["time"])}
    answer = client.post(f"/v1/models/{MODEL}/predict", json={"features": loose})
    assert answer.status_code == 200, answer.text
    answered.append(answer.json()["prediction_id"])
    # A batch, on the lean path and through full validation.
    for batch in (
        records(heart, 1, 5),
        [{**r, "time": float(r["time"])} for r in records(heart, 6, 3)],
    ):
        answer = client.post(f"/v1/models/{MODEL}/predict/batch", json={"records": batch})
        assert answer.status_code == 200, answer.text
        answered.extend(p["prediction_id"] for p in answer.json()["predictions"])
    # A refused request decides nothing.
    assert client.post("/predict", json={"age": "old"}).status_code == 422
    # A records job and a file job with one invalid row.
    job = client.post(f"/v1/models/{MODEL}/jobs", json={"records": records(heart, 10, 4)}).json()
    finished = wait_for(client, job["status_url"])
    assert finished["status"] == "succeeded", finished
    answered.extend(p["prediction_id"] for p in finished["result"]["predictions"])
    table = heart.iloc[20:26].copy()
    table["age"] = table["age"].astype(object)
    table.iloc[2, table.columns.get_loc("age")] = "unknown"
    upload = io.BytesIO(table.to_csv(index=False).encode())
    job = client.post(
        f"/v1/models/{MODEL}/jobs", files={"file": ("rows.csv", upload, "text/csv")}
    ).json()
    finished = wait_for(client, job["status_url"])
    assert finished["status"] == "succeeded", finished
    file_rows = (
        sum(len(group.decisions) for group in sink.served if group.context.route == "job") - 4
    )
    assert file_rows == 5  # six rows, one unscored

    seen = sink.prediction_ids()
    assert len(seen) == len(set(seen)) == len(answered) + file_rows
    assert set(answered) <= set(seen)
    routes = {group.context.route for group in sink.served}
    assert routes == {"predict", "predict_batch", "job"}
    for group in sink.served:
        assert group.predictor.name == MODEL
        assert len(group.features.to_records()) == len(group.decisions)


def test_sink_receives_the_features_each_decision_was_made_from(recorded, sink, heart):
    batch = records(heart, 30, 3)
    answer = recorded.post(f"/v1/models/{MODEL}/predict/batch", json={"records": batch})
    assert answer.status_code == 200
    [group] = sink.served
    assert group.features.to_records() == batch
    assert [d.probability for d in group.decisions] == [
        p["probability"] for p in answer.json()["predictions"]
    ]


def test_the_request_id_a_client_sends_reaches_the_sink_and_comes_back(recorded, sink, heart):
    answer = recorded.post(
        "/predict", json=records(heart, 0, 1)[0], headers={"X-Request-ID": "order-42"}
    )
    assert answer.headers["x-request-id"] == "order-42"
    assert sink.served[0].context.request_id == "order-42"
    assert sink.served[0].decisions[0].request_id == "order-42"
    unsafe = recorded.post(
        "/predict", json=records(heart, 0, 1)[0], headers={"X-Request-ID": "a b"}
    )
    # Not echoed (it is not a safe id): replaced by a fresh one, the one the sink sees.
    assert unsafe.headers["x-request-id"] == sink.served[1].context.request_id != "a b"


class Refusing:
    """An ``authorize`` hook that refuses one model and notes every question."""

    def __init__(self, refused: str) -> None:
        self.refused = refused
        self.asked: list[tuple[str, str, str]] = []

    def __call__(self, context: RequestContext, action: str, model: str) -> None:
        self.asked.append((context.route, action, model))
        if model == self.refused:
            raise NotAuthorizedError(f"this caller may not use {model}")


@pytest.fixture
def guarded(home: Path, sink: RecordingSink) -> Iterator[tuple[TestClient, Refusing]]:
    hook = Refusing(MODEL)
    app = create_app(Settings(home=home, job_workers=0), hooks=Hooks(authorize=hook, sink=sink))
    with TestClient(app) as client:
        yield client, hook


def test_a_refusing_authorize_hook_is_obeyed_by_the_fast_path(guarded, sink, heart):
    client, hook = guarded
    app = client.app
    one = records(heart, 0, 1)[0]
    scope = {"type": "http", "method": "POST", "path": "/predict", "query_string": b""}
    assert app.fast.match(scope) is not None  # this request is answered before routing

    answer = client.post("/predict", json=one)

    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "not_authorized"
    assert hook.asked == [("predict", "predict", MODEL)]
    assert sink.served == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (f"/v1/models/{MODEL}/predict", "one"),
        (f"/v1/models/{MODEL}/predict?version=1&trace=1", "one"),
        (f"/v1/models/{MODEL}/predict/batch", "batch"),
        (f"/v1/models/{MODEL}/jobs", "batch"),
    ],
)
def test_a_refusing_authorize_hook_is_obeyed_by_every_predict_route(
    guarded, sink, heart, path, body
):
    client, _hook = guarded
    one = records(heart, 0, 1)[0]
    answer = client.post(path, json=one if body == "one" else {"records": [one]})
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"]["code"] == "not_authorized"
    assert sink.served == []


def test_authorize_runs_before_the_body_is_read_or_the_model_looked_up(guarded):
    client, hook = guarded
    assert client.post("/predict", content=b"not json").status_code == 403
    hook.refused = "no-such-model"
    assert client.post("/v1/models/no-such-model/predict", json={}).status_code == 403


def infer_body(rows: list[dict]) -> dict:
    """The Open Inference Protocol's form: one [n, k] FP64 tensor of the features."""
    names = list(rows[0])
    data = [float(row[name]) for row in rows for name in names]
    tensor = {"name": "x", "datatype": "FP64", "shape": [len(rows), len(names)], "data": data}
    return {"inputs": [tensor]}


def test_sink_sees_each_v2_prediction_once_on_the_fast_path_and_the_route(recorded, sink, heart):
    answered = 0
    for path, count in (
        (f"/v2/models/{MODEL}/infer", 1),
        (f"/v2/models/{MODEL}/versions/1/infer", 4),
        (f"/v2/models/{MODEL}/infer?trace=1", 3),  # left to FastAPI's routing
    ):
        answer = recorded.post(path, json=infer_body(records(heart, answered, count)))
        assert answer.status_code == 200, answer.text
        answered += count
    refused = infer_body(records(heart, 0, 1))
    refused["inputs"][0]["data"][0] = "old"
    assert recorded.post(f"/v2/models/{MODEL}/infer", json=refused).status_code == 400
    assert [group.context.route for group in sink.served] == ["infer"] * 3
    assert sum(len(group.decisions) for group in sink.served) == answered
    # The features each decision was made from, whether kept as rows or as the matrix sent.
    assert [group.features.to_records() for group in sink.served] == [
        records(heart, 0, 1),
        records(heart, 1, 4),
        records(heart, 5, 3),
    ]


def test_sink_sees_each_mlflow_prediction_once_on_the_fast_path_and_the_route(
    recorded, sink, heart
):
    app = recorded.app
    answered = 0
    for path, count, fast in (
        ("/invocations", 1, True),
        (f"/v1/models/{MODEL}/invocations", 4, True),
        (f"/v1/models/{MODEL}/invocations?predict_method=predict", 3, False),  # routed
    ):
        scope = {"type": "http", "method": "POST", "path": path.partition("?")[0]}
        scope["query_string"] = path.partition("?")[2].encode()
        assert (app.fast.match(scope) is not None) is fast
        body = {"dataframe_records": records(heart, answered, count)}
        answer = recorded.post(path, json=body)
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["predictions"]) == count
        answered += count
    refused = {"dataframe_records": [{**records(heart, 0, 1)[0], "age": "old"}]}
    assert recorded.post("/invocations", json=refused).status_code == 400
    assert [group.context.route for group in sink.served] == ["invocations"] * 3
    assert [group.features.to_records() for group in sink.served] == [
        records(heart, 0, 1),
        records(heart, 1, 4),
        records(heart, 5, 3),
    ]


@pytest.mark.parametrize(
    "path", [f"/v2/models/{MODEL}/infer", f"/v2/models/{MODEL}/versions/1/infer?trace=1"]
)
def test_a_refusing_authorize_hook_is_obeyed_by_v2_infer(guarded, sink, heart, path):
    client, hook = guarded
    answer = client.post(path, json=infer_body(records(heart, 0, 2)))
    assert answer.status_code == 403, answer.text
    assert MODEL in answer.json()["error"]
    assert hook.asked == [("infer", "predict", MODEL)]
    assert sink.served == []


@pytest.mark.parametrize(
    "path",
    [
        "/invocations",
        f"/v1/models/{MODEL}/invocations",
        f"/v1/models/{MODEL}/invocations?predict_method=predict_proba",
    ],
)
def test_a_refusing_authorize_hook_is_obeyed_by_mlflow_invocations(guarded, sink, heart, path):
    client, hook = guarded
    answer = client.post(path, json={"dataframe_records": records(heart, 0, 2)})
    assert answer.status_code == 403, answer.text
    assert answer.json()["error_code"] == "PERMISSION_DENIED"
    assert [(route, action) for route, action, _model in hook.asked] == [("invocations", "predict")]
    assert sink.served == []
