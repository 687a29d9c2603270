"""Every entry point gives the same verdict on the same record.

Hypothesis draws records of a model with a nullable number, an integer, a flag and a
nullable category, from values that mean the same thing in JSON and in a CSV file (no text
that reads as a number, no empty text). Each record goes to the one validator, the typed
decoder in front of it, ``POST .../predict`` and ``.../predict/batch``, ``tabops validate``'s
``validate_frame`` and file scoring, and all must agree on which records are valid and, for
an invalid one, which fields are wrong.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make_registry
from tabops.config import Settings
from tabops.model.predictor import Predictor
from tabops.project import PROJECT_FILE, Project, TrainSettings, load_project, save_project
from tabops.schema import infer_schema
from tabops.scoring.driver import errors_path
from tabops.scoring.local import score_file
from tabops.server.app import create_app
from tabops.training.register import train_project
from tabops.validation import FeatureValidator, validate_frame

MODEL = "mixed"
FEATURES = ["amount", "visits", "member", "region"]


def training_table(rows: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    amount = rng.normal(100, 30, rows)
    amount[rng.random(rows) < 0.1] = np.nan
    region = rng.choice(["north", "south", "east"], rows).astype(object)
    region[rng.random(rows) < 0.1] = None
    visits = rng.integers(0, 20, rows)
    member = rng.integers(0, 2, rows)
    logit = 0.02 * np.nan_to_num(amount - 100) + 0.1 * (visits - 10) + member
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {"amount": amount, "visits": visits, "member": member, "region": region, "y": y}
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with the mixed-kinds model trained once."""
    folder = tmp_path_factory.mktemp("mixed") / "project"
    folder.mkdir()
    frame = training_table()
    frame.to_csv(folder / "table.csv", index=False)
    project = Project(
        name=MODEL,
        data="table.csv",
        target="y",
        positive_class=1,
        class_names={"0": "stayed", "1": "left"},
        schema_=infer_schema(frame, "y").spec,
        train=TrainSettings(
            cv_folds=3,
            search_settings=2,
            bootstrap_resamples=50,
            candidates=["logistic_regression"],
        ),
    )
    save_project(project, folder / PROJECT_FILE)
    home = tmp_path_factory.mktemp("home")
    loaded, _ = load_project(folder)
    train_project(loaded, folder, make_registry(home))
    return home


@pytest.fixture(scope="module")
def client(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    home = tmp_path_factory.mktemp("served") / "home"
    shutil.copytree(trained, home)
    with TestClient(create_app(Settings(home=home, job_workers=0))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def predictor(trained: Path) -> Predictor:
    return Predictor.load(make_registry(trained), MODEL)


def test_the_mixed_model_has_one_feature_of_each_kind(predictor):
    kinds = {c.name: (c.kind.value, c.nullable) for c in predictor.spec.features}
    assert kinds == {
        "amount": ("numeric", True),
        "visits": ("integer", False),
        "member": ("boolean", False),
        "region": ("categorical", True),
    }


def json_bytes(document: Any) -> bytes:
    """JSON as a client writes it (the standard library: integers of any size)."""
    return json.dumps(document).encode()


def is_exact(value: Any) -> bool:
    """Whether a number is small enough for a float to hold it exactly (or not a number)."""
    return not isinstance(value, int | float) or abs(value) <= 2**53


ABSENT = object()
text = st.sampled_from(["soon", "north", "south", "purple", "n/a?", "x1"])
numbers = st.one_of(
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from([2**63, -(2**63) - 1, 10**20, 1e300]),
)
VALUES = {
    "amount": st.one_of(numbers, text, st.booleans(), st.none(), st.just(ABSENT)),
    "visits": st.one_of(numbers, st.integers(0, 30).map(float), text, st.booleans(), st.none()),
    "member": st.one_of(
        st.sampled_from([0, 1, 0.0, 1.0, True, False, 2, -1, 0.5]), text, st.none()
    ),
    "region": st.one_of(text, st.none(), st.just(ABSENT)),
}
records = st.fixed_dictionaries(VALUES).map(
    lambda drawn: {key: value for key, value in drawn.items() if value is not ABSENT}
)


def api_verdict(client: TestClient, record: dict[str, Any]) -> set[str]:
    """The fields the single-record API refuses (empty when it answers 200)."""
    answer = client.post(f"/v1/models/{MODEL}/predict", content=json_bytes(record))
    if answer.status_code == 200:
        return set()
    assert answer.status_code == 422, answer.text
    return {detail["field"] for detail in answer.json()["error"]["details"]}


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(records, min_size=1, max_size=6))
def test_every_entry_point_gives_the_same_verdict(client, predictor, tmp_path, batch):
    validator = FeatureValidator(predictor.spec)
    verdicts = [{p.field for p in validator.check_record(record)[1]} for record in batch]
    valid = [not fields for fields in verdicts]

    # The typed decoder never accepts what the validator refuses, and takes every valid
    # record of these common forms (integers as 3.0, flags as 0.0) on the fast path, but
    # for integers beyond 2**53, which a float cannot tell from their neighbours.
    lean = predictor.lean
    assert lean is not None
    body = json_bytes({"records": batch})
    rows = lean.decode_batch(body)
    encoded = lean.encode(rows) if rows is not None else None
    exact = [is_exact(record.get("visits")) for record in batch]
    assert encoded is None or all(valid), (batch, verdicts)
    assert encoded is not None or not (all(valid) and all(exact)), (batch, verdicts)
    for record, ok, small in zip(batch, valid, exact, strict=True):
        decoded = lean.decode_one(json_bytes(record))
        assert decoded is None or ok, (record, verdicts)
        assert decoded is not None or not (ok and small), (record, verdicts)

    # The API, one record at a time and as a batch.
    assert [api_verdict(client, record) for record in batch] == verdicts
    answer = client.post(f"/v1/models/{MODEL}/predict/batch", content=body)
    if all(valid):
        assert answer.status_code == 200, answer.text
    else:
        assert answer.status_code == 422, answer.text
        refused = {d["field"] for d in answer.json()["error"]["details"]}
        expected = {f"records[{i}].{f}" for i, fields in enumerate(verdicts) for f in fields}
        assert refused == expected

    # Files: tabops validate and file scoring read the same records from a CSV.
    source = tmp_path / "records.csv"
    pd.DataFrame.from_records(batch, columns=FEATURES).to_csv(source, index=False)
    frame = pd.read_csv(source)
    report = validate_frame(frame, predictor.spec)
    assert report.is_valid == all(valid)
    found = validator.check_frame(frame)
    assert (~found.invalid).tolist() == valid
    file_fields = [set() for _ in batch]
    for row, column, *_rest in found.problems:
        file_fields[row].add(column)
    assert file_fields == verdicts
    scored = tmp_path / "scored.csv"
    result = score_file(predictor, source, scored)
    assert result.invalid_rows == valid.count(False)
    if result.invalid_rows:
        side = pd.read_csv(errors_path(scored))
        assert sorted(set(side["row"])) == [i + 1 for i, ok in enumerate(valid) if not ok]


def test_a_batch_written_by_to_dict_after_a_gap_stays_on_the_fast_path(predictor):
    """Once a column has held a gap, pandas writes its integers as 3.0: still lean."""
    frame = training_table(50).drop(columns=["y"])
    frame["visits"] = frame["visits"].astype(float)
    frame["member"] = frame["member"].astype(float)
    body = json.dumps(
        {"records": frame.astype(object).where(frame.notna(), None).to_dict("records")}
    ).encode()
    lean = predictor.lean
    assert lean is not None
    rows = lean.decode_batch(body)
    assert rows is not None
    assert lean.encode(rows) is not None
