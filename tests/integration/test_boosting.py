"""LightGBM and XGBoost candidates: trained, stored with skops, compiled to ONNX, served.

They come with the 'boost' extra, which the 'dev' extra includes, so these tests run in CI.
Every run trains a real project on a seeded synthetic table.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from tabops.config import Settings
from tabops.model.compiled import COMPILE_TOLERANCE
from tabops.model.files import ONNX_FILE, dump_model, load_model
from tabops.model.predictor import Predictor
from tabops.project import Project, TrainSettings
from tabops.registry import LocalArtifactStore, ModelRegistry
from tabops.schema import FeatureSpec, coerce_frame, infer_schema
from tabops.training.candidates import SEARCH_SPACES, build_candidate
from tabops.training.register import TrainOutcome, train_project

pytest.importorskip("lightgbm", reason="the 'boost' extra (part of 'dev') is not installed")
pytest.importorskip("xgboost", reason="the 'boost' extra (part of 'dev') is not installed")
pytest.importorskip("onnxmltools", reason="the 'boost' extra (part of 'dev') is not installed")

BOOSTERS = ["lightgbm", "xgboost"]
ROWS = 1_000
FAST: dict[str, Any] = {
    "cv_folds": 3,
    "search_settings": 2,
    "time_budget_s": 600,
    "bootstrap_resamples": 100,
}


def table(seed: int = 0) -> pd.DataFrame:
    """Two informative numbers (one wide-ranged, one with gaps), noise, a category; 25% y."""
    rng = np.random.default_rng(seed)
    y = (rng.random(ROWS) < 0.25).astype(int)
    gappy = rng.normal(size=ROWS) + 0.8 * y
    gappy[rng.random(ROWS) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "signal": rng.normal(size=ROWS) + 1.2 * y,
            "amount": np.round(rng.lognormal(8 + 0.5 * y, 1.5, size=ROWS), 2),
            "gappy": gappy,
            "noise": rng.normal(size=ROWS),
            "colour": rng.choice(["red", "green", "blue"], size=ROWS),
            "y": y,
        }
    )


def make_project(frame: pd.DataFrame, candidate: str) -> Project:
    return Project(
        name=f"demo-{candidate}",
        data="table.csv",
        target="y",
        positive_class=1,
        class_names={"0": "no", "1": "yes"},
        schema_=infer_schema(frame, "y").spec,
        train=TrainSettings(**FAST, candidates=[candidate]),
    )


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return table()


@pytest.fixture(scope="module")
def spec(frame: pd.DataFrame) -> FeatureSpec:
    return infer_schema(frame, "y").spec


@pytest.fixture(scope="module", params=BOOSTERS)
def trained(
    request: pytest.FixtureRequest, frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, TrainOutcome, ModelRegistry]:
    """One project per booster trained into its own registry (once per module)."""
    candidate = request.param
    folder = tmp_path_factory.mktemp(f"project-{candidate}")
    frame.to_csv(folder / "table.csv", index=False)
    registry = ModelRegistry(
        LocalArtifactStore(Settings(home=tmp_path_factory.mktemp("home")).registry_path)
    )
    outcome = train_project(make_project(frame, candidate), folder, registry)
    return candidate, outcome, registry


def fitted(name: str, frame: pd.DataFrame, spec: FeatureSpec, **model: Any) -> Any:
    """A candidate pipeline with its last (subsampled) setting, fit on the whole table."""
    pipeline = build_candidate(
        name,
        SEARCH_SPACES[name][-1],
        spec,
        imbalance="class_weight",
        seed=3,
        minority_rows=int(frame["y"].sum()),
        negatives_per_positive=float((frame["y"] == 0).sum() / frame["y"].sum()),
    )
    pipeline.set_params(**{f"model__{key}": value for key, value in model.items()})
    return pipeline.fit(coerce_frame(frame, spec), frame["y"].to_numpy())


def test_trained_booster_is_the_chosen_candidate_and_records_its_library(trained):
    candidate, outcome, _registry = trained
    manifest = outcome.version.manifest

    assert outcome.result.candidate.name == candidate
    assert outcome.result.candidate.settings_tried == 2
    # xgboost is installed as the xgboost-cpu distribution on Linux.
    libraries = {"lightgbm": {"lightgbm"}, "xgboost": {"xgboost", "xgboost-cpu"}}[candidate]
    assert libraries & set(manifest.library_versions)
    assert "onnxmltools" in manifest.library_versions


def test_trained_booster_compiles_to_an_exact_enough_onnx_graph(trained):
    _candidate, outcome, _registry = trained
    compiled = outcome.version.manifest.compiled

    assert compiled is not None
    assert compiled.status == "compiled", compiled.reason
    # onnxmltools' trees (float32), their sigmoid and any calibration in float64.
    assert compiled.converter == "tabops-boosting"
    assert compiled.precision == "double"
    assert compiled.max_abs_difference is not None
    assert compiled.max_abs_difference <= COMPILE_TOLERANCE
    assert ONNX_FILE in outcome.version.manifest.files


def test_registered_booster_loads_and_scores_like_the_trained_model(trained, frame):
    _candidate, outcome, registry = trained
    features = frame.drop(columns="y")
    x = coerce_frame(features, outcome.version.manifest.feature_spec)
    expected = outcome.result.model.predict_proba(x)[:, 1]

    predictor = Predictor.load(registry, outcome.version.name)

    assert predictor.runtime == "onnxruntime"
    # The skops file gives back the very same model, bit for bit ...
    np.testing.assert_array_equal(predictor.pipeline.predict_proba(x)[:, 1], expected)
    # ... and the ONNX graph the predictor serves with agrees within the compile tolerance.
    served = predictor.score_frame(features)
    np.testing.assert_allclose(served, expected, rtol=0, atol=COMPILE_TOLERANCE)
    records = features.head(20).astype(object).where(features.head(20).notna(), None)
    predictions = predictor.predict_records(records.to_dict("records"))
    observed = [prediction.probability for prediction in predictions]
    np.testing.assert_allclose(observed, expected[:20], rtol=0, atol=COMPILE_TOLERANCE)


@pytest.mark.parametrize("name", BOOSTERS)
def test_booster_pipeline_round_trips_through_skops(name, frame, spec):
    pipeline = fitted(name, frame, spec)
    x = coerce_frame(frame, spec)

    loaded = load_model(dump_model(pipeline))

    np.testing.assert_array_equal(loaded.predict_proba(x), pipeline.predict_proba(x))


@pytest.mark.parametrize("name", BOOSTERS)
def test_booster_probabilities_do_not_depend_on_the_thread_count(name, frame, spec):
    x = coerce_frame(frame, spec)

    one = fitted(name, frame, spec, n_jobs=1).predict_proba(x)
    with threadpool_limits(limits=2):
        two = fitted(name, frame, spec, n_jobs=2).predict_proba(x)

    np.testing.assert_array_equal(one, two)


def test_xgboost_weighs_positives_by_the_class_ratio_only_with_class_weight(spec):
    def model(imbalance: str) -> Any:
        pipeline = build_candidate(
            "xgboost",
            {},
            spec,
            imbalance=imbalance,
            seed=0,
            minority_rows=100,
            negatives_per_positive=3.0,
        )
        return pipeline.named_steps["model"]

    assert model("class_weight").scale_pos_weight == 3.0
    assert model("none").scale_pos_weight == 1.0
    assert model("smote").scale_pos_weight == 1.0


@pytest.mark.parametrize("name", BOOSTERS)
def test_booster_search_space_starts_with_the_plain_setting(name):
    space = SEARCH_SPACES[name]

    assert 8 <= len(space) <= 12
    assert "subsample" not in space[0]
    assert space[0]["learning_rate"] == 0.05
    assert len({tuple(sorted(setting.items())) for setting in space}) == len(space)


# A fresh interpreter: tabops imported without the boosting libraries, which are then made
# unimportable, as without the 'boost' extra.
PROBE = """
import json, sys
import tabops.model.compiled, tabops.model.predictor, tabops.server.app, tabops.training.register
from tabops.errors import MissingExtraError
from tabops.training.candidates import build_estimator
report = {"imported": sorted({name.split(".")[0] for name in sys.modules} & set(LIBRARIES))}
for library in LIBRARIES:
    sys.modules[library] = None
for name in ("lightgbm", "xgboost"):
    try:
        build_estimator(name, {}, weighted=False, seed=0)
    except MissingExtraError as error:
        report[name] = str(error)
print(json.dumps(report))
""".replace("LIBRARIES", repr(["lightgbm", "xgboost", "onnxmltools"]))


def test_tabops_imports_no_booster_and_names_the_extra_when_one_is_missing():
    completed = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    report = json.loads(completed.stdout)

    assert report["imported"] == []
    for name in BOOSTERS:
        assert "pip install 'tabops[boost]'" in report[name]
