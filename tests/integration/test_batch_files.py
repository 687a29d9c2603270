"""File scoring in chunks: same answers as one pass, bad rows listed, nothing partial."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tabops.errors import DataError, InvalidInputError
from tabops.model.predictor import Predictor
from tabops.scoring.driver import errors_path
from tabops.scoring.local import count_rows, score_file

MODEL = "heart-failure"


@pytest.fixture
def predictor(registry) -> Predictor:
    return Predictor.load(registry, MODEL)


@pytest.fixture
def heart(predictor) -> pd.DataFrame:
    examples = predictor.examples
    rng = np.random.default_rng(0)
    frame = examples.sample(n=500, replace=True, random_state=0).reset_index(drop=True)
    frame["age"] = frame["age"] + rng.normal(0, 5, size=len(frame)).round(1)
    frame.insert(0, "patient", [f"p{i}" for i in range(len(frame))])
    return frame


@pytest.mark.parametrize(
    ("suffix", "out_suffix"), [(".csv", ".csv"), (".parquet", ".parquet"), (".csv", ".parquet")]
)
def test_scoring_in_small_chunks_equals_scoring_the_whole_table_row_for_row(
    predictor, heart, tmp_path, suffix, out_suffix
):
    source = tmp_path / f"in{suffix}"
    heart.to_csv(source, index=False) if suffix == ".csv" else heart.to_parquet(source)
    seen: list[int] = []

    result = score_file(
        predictor, source, tmp_path / f"out{out_suffix}", chunk_rows=37, progress=seen.append
    )

    out = tmp_path / f"out{out_suffix}"
    scored = pd.read_csv(out) if out_suffix == ".csv" else pd.read_parquet(out)
    expected = predictor.score_frame(heart)
    assert result.rows == len(heart) == len(scored)
    assert list(scored.columns) == [*heart.columns, "probability", "label", "class_name"]
    assert scored["patient"].tolist() == heart["patient"].tolist()
    np.testing.assert_allclose(scored["probability"], expected, rtol=0, atol=1e-12)
    assert result.positives == int((expected >= predictor.threshold).sum())
    assert seen == [min(n, len(heart)) for n in range(37, len(heart) + 37, 37)]
    assert result.errors is None
    assert not errors_path(out).exists()


def test_bad_rows_are_kept_unscored_and_listed_in_a_side_file(predictor, heart, tmp_path):
    bad = heart.astype({"time": object, "age": float})
    bad.loc[3, "time"] = "soon"
    bad.loc[40, "age"] = np.nan
    bad.loc[41, "time"] = "inf"
    source = tmp_path / "in.csv"
    bad.to_csv(source, index=False)

    result = score_file(predictor, source, tmp_path / "out.csv", chunk_rows=16)

    scored = pd.read_csv(tmp_path / "out.csv")
    assert result.invalid_rows == 3
    assert sorted(np.flatnonzero(scored["probability"].isna())) == [3, 40, 41]
    assert scored.loc[[3, 40, 41], "class_name"].isna().all()
    assert scored["probability"].notna().sum() == len(heart) - 3
    errors = pd.read_csv(result.errors)
    assert errors.to_dict(orient="records") == [
        {"row": 4, "field": "time", "problem": "'soon' is not a number"},
        {"row": 41, "field": "age", "problem": "is empty"},
        {"row": 42, "field": "time", "problem": "inf is not a number"},
    ]


def test_a_missing_column_fails_before_anything_is_written(predictor, heart, tmp_path):
    source = tmp_path / "in.parquet"
    heart.drop(columns=["age"]).to_parquet(source)
    out = tmp_path / "out.parquet"

    with pytest.raises(InvalidInputError, match="missing columns: age"):
        score_file(predictor, source, out, chunk_rows=50)

    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["in.parquet"]


def test_an_earlier_output_survives_a_failed_run(predictor, heart, tmp_path):
    out = tmp_path / "out.csv"
    out.write_text("earlier\n")
    source = tmp_path / "in.csv"
    heart.drop(columns=["time"]).to_csv(source, index=False)

    with pytest.raises(InvalidInputError):
        score_file(predictor, source, out)

    assert out.read_text() == "earlier\n"


def test_an_empty_or_missing_input_is_a_data_error(predictor, heart, tmp_path):
    empty = tmp_path / "empty.csv"
    heart.head(0).to_csv(empty, index=False)

    with pytest.raises(DataError, match="holds no rows"):
        score_file(predictor, empty, tmp_path / "out.csv")
    with pytest.raises(DataError, match="no data file"):
        score_file(predictor, tmp_path / "absent.csv", tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


def test_parquet_row_count_is_known_before_reading(heart, tmp_path):
    source = tmp_path / "in.parquet"
    heart.to_parquet(source)

    assert count_rows(source) == len(heart)
    assert count_rows(tmp_path / "in.csv") is None


def test_a_raw_file_is_scored_with_the_project_renames(tmp_path):
    # The project renames a column of the shipped data (as device-failure does); the raw
    # file, as shipped, must score, keeping its own column names in the output.
    from conftest import HEART_CSV, copy_fast_example, make_registry
    from tabops.project import PROJECT_FILE, load_project
    from tabops.training.register import train_project

    folder = copy_fast_example(tmp_path / "project")
    raw = pd.read_csv(HEART_CSV).rename(columns={"age": "AGE_YEARS"})
    raw.to_csv(folder / "heart_failure_clinical_records_dataset.csv", index=False)
    text = (folder / PROJECT_FILE).read_text()
    (folder / PROJECT_FILE).write_text(text + "rename:\n  AGE_YEARS: age\n")
    project, _ = load_project(folder)
    registry = make_registry(tmp_path / "home")
    train_project(project, folder, registry)
    predictor = Predictor.load(registry, MODEL)
    raw = raw.drop(columns=["DEATH_EVENT"]).head(40)
    raw["AGE_YEARS"] = raw["AGE_YEARS"].astype(object)
    raw.loc[3, "AGE_YEARS"] = "old"
    source, scored = tmp_path / "raw.csv", tmp_path / "scored.csv"
    raw.to_csv(source, index=False)

    result = score_file(predictor, source, scored)

    output = pd.read_csv(scored)
    assert "AGE_YEARS" in output.columns
    assert "age" not in output.columns
    assert result.rows == 40
    assert result.invalid_rows == 1
    assert pd.read_csv(errors_path(scored)).to_dict("records") == [
        {"row": 4, "field": "AGE_YEARS", "problem": "'old' is not a number"}
    ]
    renamed = raw.drop(index=3).rename(columns={"AGE_YEARS": "age"}).astype({"age": float})
    assert output["probability"].drop(index=3).tolist() == predictor.score_frame(renamed).tolist()
