"""The prediction log through the real app: every route logs each answered prediction once,
``GET /v1/predictions/{id}`` finds it, and shutting down writes what was buffered.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from conftest import HEART_CSV, make_registry, wait_for
from loans_data import MODEL as LOANS_MODEL
from loans_data import make_loans, write_project
from tabops.config import Settings
from tabops.database import create_database_engine
from tabops.feature_store.offline import materialize
from tabops.feature_store.sql import open_feature_store
from tabops.monitoring.segments import LogReader
from tabops.project import load_project
from tabops.security.keys import KeyStore
from tabops.server.app import create_app
from tabops.training.register import train_project

MODEL = "heart-failure"


@pytest.fixture
def heart() -> pd.DataFrame:
    return pd.read_csv(HEART_CSV).drop(columns=["DEATH_EVENT"])


@pytest.fixture
def api(home: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(home=home, job_workers=1))) as client:
        yield client


def logged(home: Path, model: str = MODEL) -> pd.DataFrame:
    """Every logged row of ``model``, features as ``features.<name>`` columns."""
    batches = LogReader(home / "predictions").batches(model)
    frame = pd.concat([batch.to_pandas() for batch in batches], ignore_index=True)
    features = pd.json_normalize(frame.pop("features").tolist()).add_prefix("features.")
    return pd.concat([frame, features], axis=1)


def test_every_route_logs_each_answered_prediction_exactly_once(api, home, heart):
    rows = heart.to_dict("records")
    answered: dict[str, str] = {}  # prediction id -> route
    fast = api.post("/predict", json=rows[0], headers={"X-Request-ID": "order-7"})
    named = api.post(f"/v1/models/{MODEL}/predict", json={"features": rows[1]})
    routed = api.post(f"/v1/models/{MODEL}/predict?version=1&trace=1", json=rows[2])
    for answer in (fast, named, routed):
        assert answer.status_code == 200, answer.text
        answered[answer.json()["prediction_id"]] = "predict"
    for batch in (rows[3:8], [{**r, "time": float(r["time"])} for r in rows[8:11]]):
        answer = api.post(f"/v1/models/{MODEL}/predict/batch", json={"records": batch})
        assert answer.status_code == 200, answer.text
        answered |= {p["prediction_id"]: "predict_batch" for p in answer.json()["predictions"]}
    assert api.post("/predict", json={"age": "old"}).status_code == 422  # decides nothing
    job = api.post(f"/v1/models/{MODEL}/jobs", json={"records": rows[20:24]}).json()
    finished = wait_for(api, job["status_url"])
    answered |= {p["prediction_id"]: "job" for p in finished["result"]["predictions"]}
    table = heart.iloc[30:36].copy()
    table["age"] = table["age"].astype(object)
    table.iloc[2, table.columns.get_loc("age")] = "unknown"
    upload = io.BytesIO(table.to_csv(index=False).encode())
    file_job = api.post(
        f"/v1/models/{MODEL}/jobs", files={"file": ("rows.csv", upload, "text/csv")}
    ).json()
    assert wait_for(api, file_job["status_url"])["status"] == "succeeded"
    api.app.state.prediction_log.flush()

    frame = logged(home)
    assert frame["prediction_id"].is_unique
    by_id = frame.set_index("prediction_id")
    assert set(answered) <= set(by_id.index)
    assert dict(by_id.loc[list(answered), "route"]) == answered
    file_rows = by_id[(by_id["route"] == "job") & (by_id["request_id"] == file_job["job_id"])]
    assert len(file_rows) == 5  # six rows, one not scored
    assert len(frame) == len(answered) + 5
    assert by_id.loc[fast.json()["prediction_id"], "request_id"] == "order-7"
    assert (
        by_id.loc[[p for p, r in answered.items() if r == "job"], "request_id"] == job["job_id"]
    ).all()
    first = by_id.loc[fast.json()["prediction_id"]]
    assert first["probability"] == fast.json()["probability"]
    assert first["label"] == str(fast.json()["label"])
    assert first["threshold"] == fast.json()["threshold"]
    assert first["features.serum_creatinine"] == rows[0]["serum_creatinine"]
    assert first["features.sex"] == bool(rows[0]["sex"])
    assert first["latency_ms"] > 0
    assert frame["key_id"].isna().all()  # no keys: anonymous callers
    assert frame["entity_id"].isna().all()
    assert frame["timestamp"].dt.tz is not None
    assert (frame["version"] == 1).all()


def test_a_logged_prediction_is_found_by_id_after_the_flush(api, heart):
    answer = api.post(f"/v1/models/{MODEL}/predict", json=heart.iloc[0].to_dict()).json()
    url = f"/v1/predictions/{answer['prediction_id']}"
    before = api.get(url)
    assert before.status_code == 404
    assert before.json()["error"]["code"] == "prediction_not_found"
    api.app.state.prediction_log.flush()

    found = api.get(url)
    assert found.status_code == 200, found.text
    body = found.json()
    assert body["prediction_id"] == answer["prediction_id"]
    assert (body["model"], body["version"]) == (MODEL, 1)
    assert body["probability"] == answer["probability"]
    assert body["timestamp"] == answer["timestamp"]
    assert body["route"] == "predict"
    assert body["features"]["age"] == heart.iloc[0]["age"]


@pytest.mark.parametrize("bad", ["xyz", "0" * 31, "0" * 33, "g" * 32, "A" * 32])
def test_a_malformed_prediction_id_is_a_422_naming_it(api, bad):
    answer = api.get(f"/v1/predictions/{bad}")
    assert answer.status_code == 422
    assert answer.json()["error"]["details"][0]["field"] == "prediction_id"


def test_a_key_limited_to_another_model_cannot_see_the_prediction(home, heart):
    keys = KeyStore(create_database_engine(Settings(home=home).metadata_url))
    admin_key, admin = keys.create("ops", "admin")
    _other, other = keys.create("partner", "read", models=["another-model"])
    _reader, reader = keys.create("reader", "read", models=[MODEL])
    keys.engine.dispose()
    app = create_app(Settings(home=home))
    app.state.policy.refresh_seconds = 0
    with TestClient(app) as api:
        answer = api.post(
            "/predict", json=heart.iloc[0].to_dict(), headers={"X-API-Key": admin}
        ).json()
        app.state.prediction_log.flush()
        url = f"/v1/predictions/{answer['prediction_id']}"
        refused = api.get(url, headers={"X-API-Key": other})
        assert refused.status_code == 404
        assert refused.json()["error"]["code"] == "prediction_not_found"
        assert api.get(url).status_code == 401
        found = api.get(url, headers={"X-API-Key": reader})
        assert found.status_code == 200, found.text
        assert found.json()["key_id"] == admin_key.id


def test_shutting_down_writes_every_buffered_prediction(home, heart):
    with TestClient(create_app(Settings(home=home, monitoring={"flush_seconds": 3600}))) as api:
        batch = heart.iloc[:4].to_dict("records")
        answer = api.post(f"/v1/models/{MODEL}/predict/batch", json={"records": batch})
        ids = {p["prediction_id"] for p in answer.json()["predictions"]}
        assert LogReader(home / "predictions").locate(MODEL, ids) == {}
    assert set(LogReader(home / "predictions").locate(MODEL, ids)) == ids


def test_a_disabled_log_logs_nothing(home, heart):
    with TestClient(create_app(Settings(home=home, monitoring={"enabled": False}))) as api:
        assert api.app.state.prediction_log is None
        assert api.post("/predict", json=heart.iloc[0].to_dict()).status_code == 200
    assert not (home / "predictions").exists()


@pytest.fixture(scope="module")
def loans_trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("loans-home")
    folder = write_project(tmp_path_factory.mktemp("loans") / "project", make_loans())
    project, _ = load_project(folder)
    train_project(project, folder, make_registry(home))
    store = open_feature_store(Settings(home=home))
    materialize(project, folder, home, store, build=True)
    store.engine.dispose()
    return home


@pytest.mark.slow
def test_a_prediction_by_entity_is_logged_with_its_entity_id(loans_trained, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(loans_trained, home)
    with TestClient(create_app(Settings(home=home, job_workers=0))) as api:
        path = f"/v1/models/{LOANS_MODEL}/entities/1003/prediction"
        fast = api.get(path)
        routed = api.post(path, json={"overrides": {}})
        assert fast.status_code == routed.status_code == 200, fast.text
        api.app.state.prediction_log.flush()
    frame = logged(home, LOANS_MODEL).set_index("prediction_id")
    ids = [fast.json()["prediction_id"], routed.json()["prediction_id"]]
    assert sorted(frame.index) == sorted(ids)
    assert set(frame["entity_id"]) == {"1003"}
    assert set(frame["route"]) == {"entity"}
