"""POST /v1/models/{name}/feedback: labels of served, logged predictions, by id or file."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from conftest import HEART_CSV
from tabops.config import Settings
from tabops.database import create_database_engine
from tabops.monitoring.labels import LabelStore
from tabops.registry import open_registry
from tabops.security.keys import KeyStore
from tabops.server.app import create_app

MODEL = "heart-failure"
URL = f"/v1/models/{MODEL}/feedback"
UNKNOWN_ID = "f" * 32


@pytest.fixture
def settings(home: Path, database_url: str) -> Settings:
    return Settings(home=home, job_workers=0, database={"url": database_url})


@pytest.fixture
def served(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def predict(client: TestClient, rows: int = 12) -> list[dict]:
    """Serve ``rows`` heart records as a batch and flush the log; the answered predictions."""
    records = pd.read_csv(HEART_CSV).drop(columns=["DEATH_EVENT"]).head(rows).to_dict("records")
    answer = client.post(f"/v1/models/{MODEL}/predict/batch", json={"records": records})
    assert answer.status_code == 200, answer.text
    client.app.state.prediction_log.flush()
    return answer.json()["predictions"]


def stored(settings: Settings):
    engine = create_database_engine(settings.metadata_url)
    try:
        return LabelStore(engine, open_registry(settings)).labeled(MODEL)
    finally:
        engine.dispose()


def test_labels_by_id_are_stored_and_unknown_ids_reported(served, settings):
    predictions = predict(served)
    labels = [
        {"prediction_id": p["prediction_id"], "label": index % 2}
        for index, p in enumerate(predictions[:6])
    ]
    labels.append({"prediction_id": UNKNOWN_ID, "label": 1})
    answer = served.post(URL, json={"labels": labels})
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["accepted"] == 6
    assert report["replaced"] == 0
    assert report["unknown_ids"] == [UNKNOWN_ID]
    assert report["unknown_count"] == 1
    assert report["invalid_count"] == 0
    found = stored(settings)
    assert len(found) == 6
    assert sorted(found.probability) == pytest.approx(
        sorted(p["probability"] for p in predictions[:6])
    )
    assert found.outcome.sum() == 3
    assert set(found.version) == {1}


def test_a_repeated_id_keeps_its_last_label(served, settings):
    first = predict(served, 1)[0]["prediction_id"]
    labels = [{"prediction_id": first, "label": 0}, {"prediction_id": first, "label": 1}]
    report = served.post(URL, json={"labels": labels}).json()
    assert (report["accepted"], report["replaced"]) == (2, 1)
    assert stored(settings).outcome.tolist() == [True]
    again = served.post(URL, json={"labels": [{"prediction_id": first, "label": "0"}]})
    assert again.json()["replaced"] == 1
    assert stored(settings).outcome.tolist() == [False]


def test_a_label_may_name_its_class(served, settings):
    ids = [p["prediction_id"] for p in predict(served, 4)]
    labels = [
        {"prediction_id": ids[0], "label": "dead"},
        {"prediction_id": ids[1], "label": "survived"},
        {"prediction_id": ids[2], "label": 1.0},
        {"prediction_id": ids[3].upper(), "label": True},
    ]
    answer = served.post(URL, json={"labels": labels})
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 4
    assert stored(settings).outcome.sum() == 3


def test_an_invalid_label_is_refused_naming_its_field_and_nothing_is_stored(served, settings):
    ids = [p["prediction_id"] for p in predict(served, 3)]
    labels = [
        {"prediction_id": ids[0], "label": 1},
        {"prediction_id": ids[1], "label": "maybe"},
        {"prediction_id": ids[2], "label": 7},
    ]
    answer = served.post(URL, json={"labels": labels})
    assert answer.status_code == 422, answer.text
    fields = [d["field"] for d in answer.json()["error"]["details"]]
    assert fields == ["labels[1].label", "labels[2].label"]
    assert len(stored(settings)) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"labels": [{"prediction_id": UNKNOWN_ID}]}, "labels[0].label"),
        ({"labels": [{"label": 1}]}, "labels[0]"),
        ({"labels": [{"entity_id": "7", "label": 1}]}, "labels[0]"),
        ({"labels": [{"prediction_id": UNKNOWN_ID, "label": [1]}]}, "labels[0].label"),
        ({"labels": [{"prediction_id": UNKNOWN_ID, "label": 1, "extra": 2}]}, "labels[0].extra"),
        ({"labels": [{"prediction_id": "xyz", "label": 1}]}, "labels[0].prediction_id"),
        ({"labels": []}, "labels"),
        ({"rows": []}, "labels"),
    ],
)
def test_a_malformed_label_is_refused_naming_the_field(client, body, field):
    answer = client.post(URL, json=body)
    assert answer.status_code == 422, answer.text
    assert field in [d["field"] for d in answer.json()["error"]["details"]]


def test_more_labels_than_a_request_takes_are_refused(client):
    labels = [{"prediction_id": UNKNOWN_ID, "label": 1}] * 100_001
    answer = client.post(URL, json={"labels": labels})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["details"][0]["field"] == "labels"


def test_bodies_that_are_no_labels_get_clear_errors(client):
    assert client.post(URL, content=b"").json()["error"]["code"] == "empty_body"
    answer = client.post(URL, content=b"{", headers={"content-type": "application/json"})
    assert answer.status_code == 400
    answer = client.post(URL, content=b"x", headers={"content-type": "text/plain"})
    assert answer.status_code == 415
    answer = client.post(
        "/v1/models/no-such-model/feedback", json={"labels": [{"prediction_id": UNKNOWN_ID}]}
    )
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "model_not_found"


def test_a_csv_upload_labels_predictions(served, settings):
    ids = [p["prediction_id"] for p in predict(served, 4)]
    table = pd.DataFrame({"prediction_id": [*ids, UNKNOWN_ID], "label": [1, 0, 1, 1, 0]})
    raw = served.post(URL, content=table.to_csv(index=False), headers={"content-type": "text/csv"})
    assert raw.status_code == 200, raw.text
    assert (raw.json()["accepted"], raw.json()["unknown_count"]) == (4, 1)
    form = served.post(
        URL, files={"file": ("labels.csv", io.BytesIO(table.to_csv(index=False).encode()))}
    )
    assert form.status_code == 200, form.text
    assert form.json()["replaced"] == 4
    assert stored(settings).outcome.sum() == 3


def test_an_upload_may_exceed_the_json_body_limit_as_job_uploads_do(home):
    """Label files are uploads: spooled to disk within max_upload_bytes, not max_body_bytes."""
    settings = Settings(home=home, job_workers=0, security={"max_body_bytes": 3_000})
    with TestClient(create_app(settings)) as client:
        ids = [p["prediction_id"] for _ in range(10) for p in predict(client, 10)]
        table = pd.DataFrame({"prediction_id": ids, "label": [i % 2 for i in range(100)]})
        body = table.to_csv(index=False)
        assert len(body) > 3_000
        csv = client.post(URL, content=body, headers={"content-type": "text/csv"})
        assert csv.status_code == 200, csv.text
        assert csv.json()["accepted"] == 100
        as_json = client.post(URL, json={"labels": table.to_dict("records")})
        assert as_json.status_code == 413


def test_a_parquet_upload_with_an_invalid_row_is_refused_naming_the_row(served, settings):
    ids = [p["prediction_id"] for p in predict(served, 3)]
    buffer = io.BytesIO()
    pq.write_table(pa.table({"prediction_id": ids, "label": ["1", "alive", "0"]}), buffer)
    answer = served.post(
        URL,
        content=buffer.getvalue(),
        headers={"content-type": "application/vnd.apache.parquet"},
    )
    assert answer.status_code == 422, answer.text
    assert [d["field"] for d in answer.json()["error"]["details"]] == ["rows[1].label"]
    assert len(stored(settings)) == 0


def test_an_upload_missing_the_label_column_names_it(client):
    body = f"prediction_id\n{UNKNOWN_ID}\n"
    answer = client.post(URL, content=body, headers={"content-type": "text/csv"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["details"][0]["field"] == "label"


def test_a_key_without_the_predict_scope_is_refused(home):
    keys = KeyStore(create_database_engine(Settings(home=home).metadata_url))
    read_token = keys.create("reader", "read")[1]
    other_token = keys.create("other", "predict", models=["another-model"])[1]
    predict_token = keys.create("labeler", "predict", models=[MODEL])[1]
    keys.engine.dispose()
    body = {"labels": [{"prediction_id": UNKNOWN_ID, "label": 1}]}
    with TestClient(create_app(Settings(home=home, job_workers=0))) as client:
        for token, status in ((read_token, 403), (other_token, 403), (predict_token, 200)):
            answer = client.post(URL, json=body, headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == status, answer.text
        assert client.post(URL, json=body).status_code == 401


def test_labeled_predictions_feed_performance(served, settings):
    predictions = predict(served, 40)
    rng = np.random.default_rng(1)
    labels = [
        {"prediction_id": p["prediction_id"], "label": int(rng.uniform() < p["probability"])}
        for p in predictions
    ]
    assert served.post(URL, json={"labels": labels}).status_code == 200
    from tabops.monitoring.performance import performance

    found = stored(settings)
    result = performance(found.probability, found.outcome, float(found.threshold[0]))
    assert result["rows"] == 40
    assert result["positives"] == sum(label["label"] for label in labels)


@pytest.mark.parametrize(
    ("body", "media", "field"),
    [
        (b"", "text/csv", "file"),
        (b"prediction_id,label\n", "text/csv", None),
        (b"\xff\xfe\x00garbage", "application/vnd.apache.parquet", "file"),
        (b"entity_id,event_time,label\n7,yesterday,1\n", "text/csv", "rows[0].event_time"),
        (b"entity_id,label\n7,1\n", "text/csv", "prediction_id"),
    ],
)
def test_a_hostile_upload_gets_a_clear_answer(client, body, media, field):
    answer = client.post(URL, content=body, headers={"content-type": media})
    if field is None:  # a header and no rows: nothing to store
        assert answer.status_code == 200, answer.text
        assert answer.json()["accepted"] == 0
        return
    assert answer.status_code == 422, answer.text
    assert field in [d["field"] for d in answer.json()["error"]["details"]]
