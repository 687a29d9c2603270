"""The label store over real log segments: labels by entity, reading back, files, the CLI.

Predictions are served through ``create_app`` and the prediction log flushed, so every
label here is matched against segments the log itself wrote.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import HEART_CSV, make_registry
from loans_data import MODEL as LOANS
from loans_data import make_loans, write_project
from tabops.cli.main import app as cli
from tabops.config import Settings, get_settings
from tabops.database import create_database_engine
from tabops.errors import DataError, InvalidRequestError, ModelNotFoundError
from tabops.feature_store.offline import materialize
from tabops.feature_store.sql import open_feature_store
from tabops.monitoring.feedback import LabelItem
from tabops.monitoring.labels import LabelStore
from tabops.monitoring.segments import LogReader
from tabops.project import load_project
from tabops.registry import open_registry
from tabops.server.app import create_app
from tabops.training.register import train_project

HEART = "heart-failure"


@pytest.fixture(scope="module")
def loans_trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with the loans model trained and its features materialised."""
    home = tmp_path_factory.mktemp("loans-home")
    folder = write_project(tmp_path_factory.mktemp("loans") / "project", make_loans())
    project, _ = load_project(folder)
    train_project(project, folder, make_registry(home))
    store = open_feature_store(Settings(home=home))
    materialize(project, folder, home, store, build=True)
    store.engine.dispose()
    return home


def open_store(settings: Settings) -> Iterator[LabelStore]:
    engine = create_database_engine(settings.metadata_url)
    yield LabelStore(engine, open_registry(settings))
    engine.dispose()


@pytest.fixture
def heart(home: Path, database_url: str) -> Iterator[tuple[TestClient, LabelStore, LogReader]]:
    settings = Settings(home=home, job_workers=0, database={"url": database_url})
    with TestClient(create_app(settings)) as client:
        for store in open_store(settings):
            yield client, store, client.app.state.prediction_reader


def serve_heart(client: TestClient, rows: int) -> list[dict]:
    records = pd.read_csv(HEART_CSV).drop(columns=["DEATH_EVENT"]).head(rows).to_dict("records")
    answer = client.post(f"/v1/models/{HEART}/predict/batch", json={"records": records})
    assert answer.status_code == 200, answer.text
    client.app.state.prediction_log.flush()
    body = answer.json()
    return [{**prediction, "timestamp": body["timestamp"]} for prediction in body["predictions"]]


@pytest.mark.slow  # trains the loans model once
def test_labels_by_entity_judge_the_latest_prediction_before_the_event(loans_trained, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(loans_trained, home)
    settings = Settings(home=home, job_workers=0)  # the online store is in its database
    with TestClient(create_app(settings)) as client:
        answers = []
        for entity in ("1001", "1001", "1002"):
            answer = client.get(f"/v1/models/{LOANS}/entities/{entity}/prediction")
            assert answer.status_code == 200, answer.text
            answers.append(answer.json())
        client.app.state.prediction_log.flush()
        reader = client.app.state.prediction_reader
        first, second, other = (datetime.fromisoformat(a["timestamp"]) for a in answers)
        items = [
            LabelItem(1, entity_id="1001", event_time=first),  # at the first prediction
            LabelItem("good", entity_id="1001", event_time=second + timedelta(days=29)),
            LabelItem(0, entity_id="1002", event_time=other.replace(tzinfo=None)),  # naive: UTC
            LabelItem(1, entity_id="1001", event_time=first - timedelta(seconds=1)),  # before
            LabelItem(1, entity_id="1002", event_time=other + timedelta(days=31)),  # too late
            LabelItem(1, entity_id="9999", event_time=other),
        ]
        for store in open_store(settings):
            report = store.add(LOANS, items, reader)
            assert (report.accepted, report.unknown_count) == (3, 3)
            assert report.unknown_ids[-1].startswith("9999@")
            found = store.labeled(LOANS)
    ids = {answer["prediction_id"]: answer["probability"] for answer in answers}
    assert len(ids) == 3
    assert sorted(found.probability) == pytest.approx(sorted(ids.values()))
    assert found.outcome.tolist().count(True) == 1


def test_labeled_reads_back_by_version_and_time(heart):
    client, store, reader = heart
    predictions = serve_heart(client, 30)
    items = [
        LabelItem(i % 3 == 0, prediction_id=p["prediction_id"]) for i, p in enumerate(predictions)
    ]
    report = store.add(HEART, items, reader, source="test")
    assert (report.accepted, report.invalid_count) == (30, 0)
    everything = store.labeled(HEART)
    assert len(everything) == 30
    assert everything.outcome.sum() == 10
    assert everything.predicted_positive.tolist() == [
        p["probability"] >= everything.threshold[0] for p in predictions
    ]
    assert everything.predicted_at.dtype == np.dtype("datetime64[us]")
    moment = datetime.fromisoformat(predictions[0]["timestamp"])
    assert len(store.labeled(HEART, version=1, since=moment)) == 30
    assert len(store.labeled(HEART, until=moment)) == 0
    assert len(store.labeled(HEART, version=2)) == 0
    assert len(store.labeled(HEART, since=moment + timedelta(seconds=1))) == 0


def test_without_strict_valid_labels_are_stored_and_invalid_ones_reported(heart):
    client, store, reader = heart
    ids = [p["prediction_id"] for p in serve_heart(client, 3)]
    items = [
        LabelItem(1, prediction_id=ids[0]),
        LabelItem("unsure", prediction_id=ids[1]),
        LabelItem(None, prediction_id=ids[2]),
        LabelItem(1, entity_id="3"),
        LabelItem(1),
    ]
    report = store.add(HEART, items, reader)
    assert report.accepted == 1
    assert report.invalid_count == 4
    assert [p.field for p in report.problems] == [
        "labels[3].event_time",
        "labels[4]",
        "labels[1].label",
        "labels[2].label",
    ]
    assert len(store.labeled(HEART)) == 1
    with pytest.raises(InvalidRequestError):
        store.add(HEART, items, reader, strict=True)
    with pytest.raises(ModelNotFoundError):
        store.add("no-such-model", items, reader)


def test_a_file_is_stored_chunk_by_chunk_with_rows_named_across_chunks(heart, tmp_path):
    client, store, reader = heart
    ids = [p["prediction_id"] for p in serve_heart(client, 7)]
    labels = ["1", "0", "1", "maybe", "0", "1", "survived"]
    path = tmp_path / "labels.parquet"
    pq.write_table(pa.table({"prediction_id": [*ids, ids[0]], "label": [*labels, "dead"]}), path)
    report = store.add_file(HEART, path, reader, chunk_rows=3)
    assert report.accepted == 7
    assert report.replaced == 1  # ids[0] again, in a later chunk
    assert [p.field for p in report.problems] == ["rows[3].label"]
    assert len(store.labeled(HEART)) == 6
    broken = tmp_path / "broken.csv"
    broken.write_text("prediction_id,outcome\n" + ids[0] + ",1\n")
    with pytest.raises(DataError, match="label"):
        store.add_file(HEART, broken, reader)
    with pytest.raises(DataError, match=r"\.csv or \.parquet"):
        store.add_file(HEART, tmp_path / "labels.txt", reader)


def test_the_cli_stores_a_file_and_exits_1_on_invalid_rows(home, tmp_path, monkeypatch):
    monkeypatch.setenv("TABOPS_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "120")
    get_settings.cache_clear()
    try:
        with TestClient(create_app(Settings(home=home, job_workers=0))) as client:
            ids = [p["prediction_id"] for p in serve_heart(client, 3)]
        good = tmp_path / "good.csv"
        good.write_text("prediction_id,label\n" + "\n".join(f"{i},1" for i in ids) + "\n")
        runner = CliRunner()
        result = runner.invoke(cli, ["monitor", "labels", str(good), "--model", HEART])
        assert result.exit_code == 0, result.output
        assert "accepted" in result.output
        bad = tmp_path / "bad.csv"
        bad.write_text(f"prediction_id,label\n{ids[0]},0\n{ids[1]},perhaps\n{'a' * 32},1\n")
        result = runner.invoke(cli, ["monitor", "labels", str(bad), "--model", HEART])
        assert result.exit_code == 1, result.output
        assert "rows[1].label" in result.output
        assert "a" * 32 in result.output
        result = runner.invoke(cli, ["monitor", "labels", str(bad), "--model", "nope"])
        assert result.exit_code == 1
        assert "not found" in result.output
    finally:
        get_settings.cache_clear()
    for store in open_store(Settings(home=home)):
        assert store.labeled(HEART).outcome.tolist().count(True) == 2
