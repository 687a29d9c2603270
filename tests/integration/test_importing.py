"""Importing models trained elsewhere: served, compiled, measured and refused as they should be.

Every import loads its model in a child process (seconds each), so the imports that several
tests read are made once per module.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from import_models import (
    CATEGORIES,
    NUMBERS,
    TARGET,
    gradient_boosting_pipeline,
    logistic_pipeline,
    numpy_logistic,
    read_kueski,
    save_joblib,
    save_pickle,
    split_kueski,
    three_class_model,
    with_car_letters,
    write_mlflow_folder,
)
from tabops.cli.main import app as cli
from tabops.config import Settings, get_settings
from tabops.errors import GateFailedError, ModelImportError
from tabops.model.files import CARD_FILE, ONNX_FILE, REFERENCE_STATS_FILE
from tabops.model.predictor import Predictor
from tabops.registry import LocalArtifactStore, ModelRegistry
from tabops.schema import Kind
from tabops.server.app import create_app
from tabops.training.importing import (
    ImportOptions,
    ImportOutcome,
    import_model,
    read_model_source,
)

pytestmark = pytest.mark.slow

TOLERANCE = 1e-9
LOGISTIC_COLUMNS = ["nb_previous_loans", "age", "flag_own_car"]
NAME = "kueski"
SMALL_SAMPLE = 2_000
RUN_ID = "4f1c2a7be5d64c0c9a3f2e1d0b9c8a7f"


@pytest.fixture(scope="module")
def kueski() -> tuple[pd.DataFrame, pd.DataFrame]:
    return split_kueski(read_kueski())


@pytest.fixture(scope="module")
def lettered(kueski) -> tuple[pd.DataFrame, pd.DataFrame]:
    train, sample = kueski
    return with_car_letters(train), with_car_letters(sample)


@pytest.fixture(scope="module")
def logistic(lettered):
    return logistic_pipeline(lettered[0])


@pytest.fixture(scope="module")
def small_sample(lettered, tmp_path_factory) -> Path:
    """Rows of the Y/N-flag table the logistic model never saw, as a CSV file."""
    folder = tmp_path_factory.mktemp("sample")
    return write_sample(lettered[1].head(SMALL_SAMPLE), folder / "sample.csv")


@pytest.fixture(scope="module")
def logistic_import(logistic, small_sample, tmp_path_factory):
    """The logistic pipeline imported from joblib with labels and a description."""
    folder = tmp_path_factory.mktemp("logistic")
    registry = tmp_registry(folder)
    options = ImportOptions(target=TARGET, description="from R&D")
    path = save_joblib(logistic, folder / "model.joblib")
    return registry, import_model(path, NAME, small_sample, registry, options)


@pytest.fixture(scope="module")
def mlflow_import(logistic, lettered, tmp_path_factory):
    """The logistic pipeline from an MLflow folder with a signature; no labels, and the
    first class (0, repaid) made the positive one."""
    folder = tmp_path_factory.mktemp("mlflow")
    inputs = [
        {"type": "long", "name": "nb_previous_loans"},
        {"type": "double", "name": "age"},
        {"type": "string", "name": "flag_own_car"},
    ]
    model = write_mlflow_folder(logistic, folder / "mlflow-model", inputs, run_id=RUN_ID)
    sample = lettered[1].head(SMALL_SAMPLE).drop(columns=[TARGET])
    sample_path = write_sample(sample, folder / "sample.csv")
    registry = tmp_registry(folder)
    options = ImportOptions(positive_class=0, class_names={"0": "repaid", "1": "defaulted"})
    return registry, model, import_model(model, NAME, sample_path, registry, options)


def tmp_registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(LocalArtifactStore(tmp_path / "registry"))


def write_sample(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def as_records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON would carry them: gaps as null, integers as integers."""
    return [
        {
            key: None if isinstance(value, float) and math.isnan(value) else value
            for key, value in row.items()
        }
        for row in frame.to_dict("records")
    ]


def served(predictor: Predictor, frame: pd.DataFrame) -> np.ndarray:
    records = as_records(frame[predictor.feature_names])
    return np.array([prediction.probability for prediction in predictor.predict_records(records)])


@dataclass
class BoostingImport:
    model: Any
    home: Path
    registry: ModelRegistry
    sample: Path
    expected: np.ndarray
    outcome: ImportOutcome


@pytest.fixture(scope="module")
def boosting_import(kueski, tmp_path_factory) -> BoostingImport:
    """THE case: a gradient boosting pipeline from joblib, a 10,000-row labelled sample."""
    train, sample = kueski
    folder = tmp_path_factory.mktemp("boosting")
    model = gradient_boosting_pipeline(train)
    path = save_joblib(model, folder / "model.joblib")
    sample_path = write_sample(sample, folder / "sample.csv")
    home = folder / "home"
    registry = ModelRegistry(LocalArtifactStore(Settings(home=home).registry_path))
    options = ImportOptions(target=TARGET, gates={"roc_auc": ">= 0.5"})
    started = time.perf_counter()
    outcome = import_model(path, NAME, sample_path, registry, options)
    print(f"\nimported with a {len(sample)}-row sample in {time.perf_counter() - started:.2f} s")
    expected = model.predict_proba(pd.read_csv(sample_path)[NUMBERS + CATEGORIES])[:, 1]
    return BoostingImport(model, home, registry, sample_path, expected, outcome)


def test_imported_gradient_boosting_pipeline_serves_its_own_probabilities(boosting_import):
    registry, outcome = boosting_import.registry, boosting_import.outcome
    as_read = pd.read_csv(boosting_import.sample)

    predictor = Predictor.load(registry, NAME)

    expected = boosting_import.expected
    assert np.max(np.abs(served(predictor, as_read) - expected)) <= TOLERANCE
    assert np.max(np.abs(predictor.score_frame(as_read) - expected)) <= TOLERANCE
    manifest = outcome.version.manifest
    assert outcome.version.ref == f"{NAME}:1"
    assert registry.aliases(NAME) == {"production": 1}
    assert manifest.source is not None
    assert manifest.source["imported"] is True
    assert manifest.source["format"] == "joblib"
    assert manifest.feature_spec.feature_names == NUMBERS + CATEGORIES
    assert any("id" in note for note in outcome.notes)
    assert manifest.golden.tolerance == TOLERANCE
    compiled = manifest.compiled
    assert compiled is not None
    assert compiled.runtime == outcome.compiled == predictor.runtime
    if compiled.status != "compiled":
        assert compiled.reason


def test_imported_version_serves_its_own_probabilities_over_http(boosting_import):
    as_read = pd.read_csv(boosting_import.sample)

    with TestClient(create_app(Settings(home=boosting_import.home))) as client:
        response = client.post(
            f"/v1/models/{NAME}/predict/batch",
            json={"records": as_records(as_read[NUMBERS + CATEGORIES])},
        )
        record = client.get(f"/v1/models/{NAME}/example").json()["record"]
        single = client.post(f"/v1/models/{NAME}/predict", json=record)

    assert response.status_code == 200, response.text[:500]
    over_http = np.array([item["probability"] for item in response.json()["predictions"]])
    assert np.max(np.abs(over_http - boosting_import.expected)) <= TOLERANCE
    assert set(record) == set(NUMBERS + CATEGORIES)
    assert single.status_code == 200, single.text
    own = boosting_import.model.predict_proba(pd.DataFrame([record]))[0, 1]
    assert abs(single.json()["probability"] - own) <= TOLERANCE


def test_imported_version_scores_a_file_with_tabops_predict(boosting_import, tmp_path, monkeypatch):
    output = tmp_path / "scored.csv"
    monkeypatch.setenv("TABOPS_HOME", str(boosting_import.home))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            cli, ["predict", "-m", NAME, "-i", str(boosting_import.sample), "-o", str(output)]
        )
    finally:
        get_settings.cache_clear()

    assert result.exit_code == 0, result.output
    scored = pd.read_csv(output)
    assert np.max(np.abs(scored["probability"].to_numpy() - boosting_import.expected)) <= TOLERANCE


def test_import_with_target_records_metrics_gates_and_a_card(boosting_import):
    registry, outcome = boosting_import.registry, boosting_import.outcome

    manifest = outcome.version.manifest
    assert 0.5 <= manifest.metrics["roc_auc"] <= 1.0
    low, high = manifest.intervals["roc_auc"]
    assert low <= manifest.metrics["roc_auc"] <= high
    assert sum(manifest.confusion.values()) == len(boosting_import.expected)
    assert manifest.gates == [
        {
            "gate": "roc_auc >= 0.5",
            "metric": "roc_auc",
            "observed": manifest.metrics["roc_auc"],
            "passed": True,
        }
    ]
    assert manifest.threshold == 0.5
    assert manifest.candidate == "imported"
    assert REFERENCE_STATS_FILE in manifest.files
    card = registry.read_file(NAME, 1, CARD_FILE).decode()
    assert "imported GradientBoostingClassifier" not in card  # the pipeline is what was saved
    assert "imported Pipeline" in card
    assert "roc_auc &gt;= 0.5" in card


def test_logistic_pipeline_is_served_by_an_onnx_graph_within_tolerance(
    logistic_import, logistic, small_sample
):
    registry, outcome = logistic_import

    compiled = outcome.version.manifest.compiled
    assert outcome.compiled == "onnxruntime"
    assert compiled is not None
    assert compiled.status == "compiled"
    assert compiled.max_abs_difference is not None
    assert compiled.max_abs_difference <= TOLERANCE
    assert ONNX_FILE in outcome.version.manifest.files
    predictor = Predictor.load(registry, NAME)
    assert predictor.runtime == "onnxruntime"
    # What another process (a Dask worker) rebuilds from the shipped files serves the same.
    rebuilt = Predictor.from_files(predictor.version, predictor.read_files())
    assert rebuilt.runtime == "onnxruntime"
    as_read = pd.read_csv(small_sample)
    expected = logistic.predict_proba(as_read[LOGISTIC_COLUMNS])[:, 1]
    assert np.max(np.abs(served(predictor, as_read) - expected)) <= TOLERANCE
    assert np.max(np.abs(predictor.score_frame(as_read) - expected)) <= TOLERANCE
    assert np.max(np.abs(rebuilt.score_frame(as_read) - expected)) <= TOLERANCE
    # A category the sample never showed is the model's own encoder's to read.
    unseen = {"nb_previous_loans": 3, "age": 40, "flag_own_car": "unknown"}
    own = logistic.predict_proba(pd.DataFrame([unseen]))[0, 1]
    assert abs(predictor.predict_record(unseen).probability - own) <= TOLERANCE


def test_description_is_recorded_in_the_manifest(logistic_import):
    _registry, outcome = logistic_import

    assert outcome.version.manifest.document()["description"] == "from R&D"


def test_failing_gate_registers_nothing(tmp_path, logistic, small_sample):
    path = save_joblib(logistic, tmp_path / "model.joblib")
    registry = tmp_registry(tmp_path)
    options = ImportOptions(target=TARGET, gates={"roc_auc": ">= 0.99"})

    with pytest.raises(GateFailedError) as caught:
        import_model(path, NAME, small_sample, registry, options)

    assert [problem.field for problem in caught.value.problems] == ["roc_auc"]
    assert registry.list_models() == []


def test_mlflow_folder_imports_with_its_signature_and_run_id(mlflow_import, logistic, lettered):
    registry, folder, outcome = mlflow_import

    source = read_model_source(folder)
    assert source.file.name == "model.pkl"
    assert source.serialization == "cloudpickle"
    assert [column.name for column in source.inputs or ()] == LOGISTIC_COLUMNS
    assert outcome.source["mlflow_run_id"] == RUN_ID
    assert outcome.source["format"] == "pickle"
    spec = outcome.version.manifest.feature_spec
    assert [spec.column(name).kind for name in LOGISTIC_COLUMNS] == [
        Kind.INTEGER,
        Kind.NUMERIC,
        Kind.CATEGORICAL,
    ]
    predictor = Predictor.load(registry, NAME)
    rows = lettered[1].head(300)
    expected = logistic.predict_proba(rows[LOGISTIC_COLUMNS])[:, 0]
    assert np.max(np.abs(served(predictor, rows) - expected)) <= TOLERANCE


def test_first_class_made_positive_is_served_as_the_positive_probability(mlflow_import, lettered):
    registry, _folder, outcome = mlflow_import

    classes = outcome.version.manifest.classes
    assert (classes.positive.value, classes.positive.display_name) == (0, "repaid")
    assert (classes.negative.value, classes.negative.display_name) == (1, "defaulted")
    predictor = Predictor.load(registry, NAME)
    record = as_records(lettered[1][LOGISTIC_COLUMNS].head(1))[0]
    prediction = predictor.predict_record(record)
    assert (prediction.label == 0) == (prediction.probability >= 0.5)
    assert prediction.probability > 0.5  # most clients repay


def test_import_without_target_has_no_metrics_but_a_card_saying_so(mlflow_import):
    registry, _folder, outcome = mlflow_import

    assert outcome.version.manifest.metrics == {}
    assert outcome.version.manifest.target is None
    card = registry.read_file(NAME, 1, CARD_FILE).decode()
    assert "without a target column" in card


def test_classifier_fitted_on_numpy_imports_and_serves_frames_without_warnings(tmp_path, kueski):
    train, sample = kueski
    columns = ["nb_previous_loans", "age"]
    model = numpy_logistic(train, columns)
    path = save_pickle(model, tmp_path / "model.pkl")
    sample_path = write_sample(sample[[*columns, TARGET]].head(SMALL_SAMPLE), tmp_path / "s.csv")
    registry = tmp_registry(tmp_path)

    outcome = import_model(path, NAME, sample_path, registry, ImportOptions(target=TARGET))

    assert outcome.version.manifest.feature_spec.feature_names == columns
    assert any("no column names" in note for note in outcome.notes)
    assert outcome.compiled == "onnxruntime"  # its columns joined into one matrix in the graph
    predictor = Predictor.load(registry, NAME)
    as_read = pd.read_csv(sample_path)
    expected = model.predict_proba(as_read[columns].to_numpy())[:, 1]
    assert np.max(np.abs(predictor.score_frame(as_read) - expected)) <= TOLERANCE
    assert np.max(np.abs(served(predictor, as_read.head(300)) - expected[:300])) <= TOLERANCE


def test_mlflow_folder_naming_a_file_outside_itself_is_refused(tmp_path, logistic):
    folder = write_mlflow_folder(logistic, tmp_path / "mlflow-model", None)
    save_joblib(logistic, tmp_path / "elsewhere.pkl")
    mlmodel = folder / "MLmodel"
    mlmodel.write_text(mlmodel.read_text().replace("model.pkl", "../elsewhere.pkl"))

    with pytest.raises(ModelImportError, match="outside the model folder"):
        read_model_source(folder)


def test_sample_missing_a_model_column_is_refused_naming_it(tmp_path, logistic, small_sample):
    path = save_joblib(logistic, tmp_path / "model.joblib")
    sample_path = write_sample(pd.read_csv(small_sample).drop(columns=["age"]), tmp_path / "s.csv")

    with pytest.raises(ModelImportError, match="age") as caught:
        import_model(path, NAME, sample_path, tmp_registry(tmp_path))

    assert [problem.field for problem in caught.value.problems] == ["age"]


def test_three_class_model_is_refused(tmp_path):
    path = save_joblib(three_class_model(), tmp_path / "model.joblib")
    frame = pd.DataFrame({"a": [0.1, 0.2, 0.3], "b": [1.0, 2.0, 3.0]})
    sample_path = write_sample(frame, tmp_path / "sample.csv")

    with pytest.raises(ModelImportError, match="3 classes") as caught:
        import_model(path, NAME, sample_path, tmp_registry(tmp_path))

    assert caught.value.problems


def test_model_refusing_the_sample_is_refused_with_its_own_message(
    tmp_path, logistic, small_sample
):
    path = save_joblib(logistic, tmp_path / "model.joblib")
    gapped = pd.read_csv(small_sample).head(200)
    gapped["age"] = gapped["age"].where(gapped.index % 7 != 0)
    sample_path = write_sample(gapped, tmp_path / "sample.csv")

    with pytest.raises(ModelImportError, match=r"refuses the sample.*NaN") as caught:
        import_model(path, NAME, sample_path, tmp_registry(tmp_path))

    assert [problem.field for problem in caught.value.problems] == ["sample"]
