"""Loading a trained version with its integrity checks, and predicting with it."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabops.errors import (
    ArtifactIntegrityError,
    InvalidInputError,
    ModelNotFoundError,
    VersionNotFoundError,
)
from tabops.model.predictor import Predictor
from tabops.registry import ModelRegistry

MODEL = "heart-failure"


@pytest.fixture
def version_dir(home: Path) -> Path:
    return home / "registry" / MODEL / "versions" / "1"


@pytest.fixture
def predictor(registry: ModelRegistry) -> Predictor:
    return Predictor.load(registry, MODEL)


def rewrite_manifest_hash(version_dir: Path, file: str) -> None:
    path = version_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["files"][file] = hashlib.sha256((version_dir / file).read_bytes()).hexdigest()
    path.write_text(json.dumps(manifest, indent=2))


def test_predictor_load_verifies_and_loads_the_production_version(registry):
    predictor = Predictor.load(registry, MODEL)

    assert predictor.name == MODEL
    assert predictor.version.version == 1
    assert predictor.threshold == registry.get_version(MODEL, 1).manifest.threshold
    assert predictor.negative == (0, "survived")
    assert predictor.positive == (1, "dead")
    assert len(predictor.spec.features) == 12


@pytest.mark.parametrize("ref", [1, "1", "production", None])
def test_predictor_load_accepts_number_alias_or_default(registry, ref):
    assert Predictor.load(registry, MODEL, ref).version.version == 1


def test_predictor_golden_rows_reproduce_the_training_probabilities(registry, predictor):
    golden = pd.read_parquet(io.BytesIO(registry.read_file(MODEL, 1, "golden.parquet")))

    probabilities = predictor.score_frame(golden.drop(columns=["__probability__"]))

    np.testing.assert_allclose(probabilities, golden["__probability__"], atol=1e-6)
    predictor.check_golden(golden)


def test_predictor_load_unknown_model_or_version_raises_not_found(registry):
    with pytest.raises(ModelNotFoundError):
        Predictor.load(registry, "no-such-model")
    with pytest.raises(VersionNotFoundError):
        Predictor.load(registry, MODEL, 7)
    with pytest.raises(VersionNotFoundError):
        Predictor.load(registry, MODEL, "staging")


def test_predictor_load_tampered_model_bytes_raises_sha_mismatch(registry, version_dir):
    model = version_dir / "model.skops"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))

    with pytest.raises(ArtifactIntegrityError, match=r"model\.skops does not match its sha256"):
        Predictor.load(registry, MODEL)


def test_predictor_load_tampered_golden_rows_with_matching_hash_raises(registry, version_dir):
    path = version_dir / "golden.parquet"
    golden = pd.read_parquet(path)
    golden["__probability__"] = 1.0 - golden["__probability__"]
    golden.to_parquet(path, index=False)
    rewrite_manifest_hash(version_dir, "golden.parquet")

    with pytest.raises(ArtifactIntegrityError, match="golden rows"):
        Predictor.load(registry, MODEL)


def test_predictor_load_slightly_drifted_golden_rows_raise(registry, version_dir):
    path = version_dir / "golden.parquet"
    golden = pd.read_parquet(path)
    golden.loc[0, "__probability__"] += 1e-4
    golden.to_parquet(path, index=False)
    rewrite_manifest_hash(version_dir, "golden.parquet")

    with pytest.raises(ArtifactIntegrityError, match="golden rows"):
        Predictor.load(registry, MODEL)


@pytest.mark.parametrize("file", ["model.skops", "golden.parquet", "reference.parquet"])
def test_predictor_load_with_a_file_removed_raises_integrity_error(registry, version_dir, file):
    (version_dir / file).unlink()

    with pytest.raises(ArtifactIntegrityError, match=f"{file} is missing"):
        Predictor.load(registry, MODEL)


def test_predict_records_labels_follow_the_threshold(predictor, heart_frame):
    # The file is ordered by follow-up time: early rows are mostly deaths, late ones survivals.
    rows = pd.concat([heart_frame.head(20), heart_frame.tail(20)])
    records = rows.drop(columns=["DEATH_EVENT"]).to_dict(orient="records")

    predictions = predictor.predict_records(records)

    assert len(predictions) == 40
    expected = predictor.score_frame(rows)
    np.testing.assert_allclose([p.probability for p in predictions], expected)
    for prediction in predictions:
        assert 0.0 <= prediction.probability <= 1.0
        is_positive = prediction.probability >= predictor.threshold
        assert prediction.label == (1 if is_positive else 0)
        assert prediction.class_name == ("dead" if is_positive else "survived")
    assert {p.label for p in predictions} == {0, 1}


def test_predict_records_ignores_extra_keys_and_imputes_absent_ones(predictor, heart_frame):
    record = heart_frame.drop(columns=["DEATH_EVENT"]).iloc[0].to_dict()
    noisy = {**record, "patient_id": 17, "ward": "B"}
    partial = {key: value for key, value in record.items() if key != "platelets"}

    [plain, with_extra, without_platelets] = predictor.predict_records([record, noisy, partial])

    assert with_extra == plain
    assert 0.0 <= without_platelets.probability <= 1.0


def test_decide_at_exactly_the_threshold_is_positive(predictor):
    assert predictor.decide(predictor.threshold).label == 1
    assert predictor.decide(np.nextafter(predictor.threshold, 0)).label == 0


def test_example_is_a_real_record_with_integer_kinds_as_ints(predictor):
    record = predictor.example()

    assert list(record) == predictor.spec.feature_names
    assert isinstance(record["sex"], int)
    assert isinstance(record["time"], int)
    assert predictor.predict_records([record])[0].class_name in ("dead", "survived")


def test_check_frame_accepts_the_training_table(predictor, heart_frame):
    predictor.check_frame(heart_frame)


def test_check_frame_missing_column_raises_invalid_input_naming_it(predictor, heart_frame):
    with pytest.raises(InvalidInputError, match="missing columns: age, time") as caught:
        predictor.check_frame(heart_frame.drop(columns=["age", "time"]))

    assert [problem.field for problem in caught.value.problems] == ["age", "time"]


def test_check_frame_non_number_cell_raises_naming_row_and_column(predictor, heart_frame):
    frame = heart_frame.copy()
    frame["age"] = frame["age"].astype(object)
    frame.loc[2, "age"] = "old"

    with pytest.raises(InvalidInputError) as caught:
        predictor.check_frame(frame)

    [problem] = caught.value.problems
    assert problem.field == "row 3.age"
    assert "'old'" in problem.problem
    assert "not a number" in problem.problem


def test_check_frame_counts_rows_from_first_row(predictor, heart_frame):
    frame = heart_frame.copy()
    frame["time"] = frame["time"].astype(float)
    frame.loc[0, "time"] = np.inf
    frame.loc[5, "time"] = np.nan

    with pytest.raises(InvalidInputError) as caught:
        predictor.check_frame(frame, first_row=2)

    problems = {(p.field, p.problem) for p in caught.value.problems}
    assert ("row 7.time", "is empty") in problems
    assert any(field == "row 2.time" and "not a number" in text for field, text in problems)
