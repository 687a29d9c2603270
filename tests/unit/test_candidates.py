"""Candidate pipelines: every candidate and imbalance mode, resampling removal, preprocessing."""

from __future__ import annotations

from typing import Any, get_args

import numpy as np
import pandas as pd
import pytest
from imblearn.over_sampling import SMOTE
from imblearn.pipeline import Pipeline as ResamplingPipeline
from imblearn.under_sampling import RandomUnderSampler
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from tabops.errors import TrainingError
from tabops.model.encoder import FeatureEncoder
from tabops.project import CandidateName
from tabops.schema import FeatureSpec, infer_schema
from tabops.training.candidates import (
    BASE_CANDIDATES,
    SEARCH_SPACES,
    build_candidate,
    build_preprocessor,
    strip_resampling,
)

ROWS = 240
IMBALANCE = ("class_weight", "undersample", "smote", "none")
RESAMPLING = ("undersample", "smote")
TREES = 15  # instead of the forests' 300, to keep the fits fast


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """Two informative numbers (one with gaps), a noise integer, a category, 20% positives."""
    rng = np.random.default_rng(7)
    y = (rng.random(ROWS) < 0.2).astype(int)
    signal = rng.normal(size=ROWS) + 2.0 * y
    gappy = rng.normal(size=ROWS) + y
    gappy[rng.random(ROWS) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "signal": signal,
            "gappy": gappy,
            "count": rng.integers(0, 30, size=ROWS),
            "colour": rng.choice(["red", "green", "blue"], size=ROWS),
            "y": y,
        }
    )


@pytest.fixture(scope="module")
def spec(frame: pd.DataFrame) -> FeatureSpec:
    return infer_schema(frame, "y").spec


def features(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns="y")


def candidate(name: str, spec: FeatureSpec, imbalance: str, y: np.ndarray) -> Any:
    """A candidate with the first setting of its search space, forests shrunk to few trees."""
    members = None
    if name == "voting":
        members = [(member, SEARCH_SPACES[member][0]) for member in BASE_CANDIDATES]
    pipeline = build_candidate(
        name,
        SEARCH_SPACES[name][0],
        spec,
        imbalance=imbalance,
        seed=0,
        minority_rows=int(y.sum()),
        members=members,
    )
    trees = [key for key in pipeline.get_params() if key.endswith("n_estimators")]
    return pipeline.set_params(**dict.fromkeys(trees, TREES))


def test_search_spaces_cover_every_candidate_name():
    assert set(SEARCH_SPACES) == set(get_args(CandidateName))
    assert {*BASE_CANDIDATES, "voting"} <= set(SEARCH_SPACES)
    assert all(SEARCH_SPACES[name] for name in SEARCH_SPACES)


@pytest.mark.parametrize("imbalance", IMBALANCE)
@pytest.mark.parametrize("name", [*BASE_CANDIDATES, "voting"])
def test_every_candidate_builds_and_fits_for_every_imbalance_mode(frame, spec, name, imbalance):
    y = frame["y"].to_numpy()
    x = features(frame)

    model = candidate(name, spec, imbalance, y).fit(x, y)

    probability = model.predict_proba(x)
    assert probability.shape == (ROWS, 2)
    assert np.all((probability >= 0) & (probability <= 1))
    assert list(model.classes_) == [0, 1]
    # Every candidate learns something from the informative columns.
    assert probability[y == 1, 1].mean() > probability[y == 0, 1].mean()


@pytest.mark.parametrize("imbalance", RESAMPLING)
def test_resampling_modes_build_an_imblearn_pipeline_with_a_sampler_step(frame, spec, imbalance):
    model = candidate("hist_gradient_boosting", spec, imbalance, frame["y"].to_numpy())

    assert isinstance(model, ResamplingPipeline)
    assert [name for name, _step in model.steps] == ["encode", "prepare", "resample", "model"]
    sampler = model.named_steps["resample"]
    assert isinstance(sampler, RandomUnderSampler if imbalance == "undersample" else SMOTE)
    assert model.named_steps["model"].class_weight is None


@pytest.mark.parametrize("imbalance", ["class_weight", "none"])
def test_non_resampling_modes_build_a_plain_sklearn_pipeline(frame, spec, imbalance):
    model = candidate("logistic_regression", spec, imbalance, frame["y"].to_numpy())

    assert type(model) is Pipeline
    assert [name for name, _step in model.steps] == ["encode", "prepare", "model"]
    expected = "balanced" if imbalance == "class_weight" else None
    assert model.named_steps["model"].class_weight == expected


def test_smote_neighbours_are_capped_by_the_minority_rows(spec):
    model = build_candidate(
        "logistic_regression", {}, spec, imbalance="smote", seed=0, minority_rows=3
    )

    assert model.named_steps["resample"].k_neighbors == 2


@pytest.mark.parametrize("imbalance", RESAMPLING)
@pytest.mark.parametrize("name", ["logistic_regression", "hist_gradient_boosting", "voting"])
def test_strip_resampling_gives_a_plain_pipeline_with_identical_probabilities(
    frame, spec, name, imbalance
):
    y = frame["y"].to_numpy()
    x = features(frame)
    fitted = candidate(name, spec, imbalance, y).fit(x, y)

    stripped = strip_resampling(fitted)

    assert type(stripped) is Pipeline
    assert [step for step, _ in stripped.steps] == ["encode", "prepare", "model"]
    assert stripped.named_steps["prepare"] is fitted.named_steps["prepare"]
    assert stripped.named_steps["model"] is fitted.named_steps["model"]
    np.testing.assert_array_equal(stripped.predict_proba(x), fitted.predict_proba(x))


def test_strip_resampling_returns_a_plain_pipeline_unchanged(frame, spec):
    y = frame["y"].to_numpy()
    fitted = candidate("logistic_regression", spec, "none", y).fit(features(frame), y)

    assert strip_resampling(fitted) is fitted


def test_strip_resampling_refuses_a_bare_estimator():
    with pytest.raises(TrainingError, match="unexpected model type"):
        strip_resampling(StandardScaler())


def test_voting_without_members_raises_training_error(spec):
    with pytest.raises(TrainingError, match="voting candidate needs other candidates"):
        build_candidate("voting", {}, spec, imbalance="none", seed=0, minority_rows=50)


def test_voting_scales_numbers_only_when_a_member_is_logistic_regression(spec):
    trees = build_candidate(
        "voting",
        {},
        spec,
        imbalance="none",
        seed=0,
        minority_rows=50,
        members=[("random_forest", {}), ("extra_trees", {})],
    )

    numeric = trees.named_steps["prepare"].transformers[0][1]
    assert numeric == "passthrough"


def test_unknown_candidate_raises_training_error(spec):
    with pytest.raises(TrainingError, match="unknown candidate 'svm'"):
        build_candidate("svm", {}, spec, imbalance="none", seed=0, minority_rows=50)


# preprocessing ---------------------------------------------------------------------------


def prepared(spec, x, *, scale):
    """The encoder and preprocessor of a candidate, fitted on x; returns (names, transform)."""
    encoder = FeatureEncoder.from_spec(spec)
    steps = Pipeline([("encode", encoder), ("prepare", build_preprocessor(encoder, scale=scale))])
    steps.fit(x)
    return list(steps.get_feature_names_out()), steps


def test_preprocessor_imputes_nullable_numbers_with_the_median_and_a_missing_indicator(frame, spec):
    x = features(frame)

    names, steps = prepared(spec, x, scale=False)

    assert "missing_gappy" in names
    out = steps.transform(x)
    gappy = out[:, names.index("gappy")]
    missing = x["gappy"].isna().to_numpy()
    assert not np.isnan(out).any()
    np.testing.assert_allclose(gappy[missing], np.nanmedian(x["gappy"]))
    np.testing.assert_array_equal(out[:, names.index("missing_gappy")], missing)


def test_imputation_is_learnt_on_the_rows_it_is_fitted_on(frame, spec):
    x = features(frame)
    first, second = x.iloc[: len(x) // 2], x.iloc[len(x) // 2 :]

    encoder = FeatureEncoder.from_spec(spec).fit(first)

    position = encoder.features.index("gappy")
    assert encoder.fill_[position] == pytest.approx(np.nanmedian(first["gappy"]))
    assert encoder.fill_[position] != pytest.approx(np.nanmedian(second["gappy"]))


def test_preprocessor_adds_no_missing_indicator_when_no_number_is_nullable(frame):
    complete = frame.drop(columns="gappy")
    spec = infer_schema(complete, "y").spec

    names, _steps = prepared(spec, features(complete), scale=True)

    assert not [name for name in names if name.startswith("missing_")]


def test_preprocessor_scales_numbers_only_when_asked(frame, spec):
    x = features(frame)

    names, scaled = prepared(spec, x, scale=True)
    _names, unscaled = prepared(spec, x, scale=False)

    column = names.index("signal")
    assert scaled.transform(x)[:, column].mean() == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_array_equal(unscaled.transform(x)[:, column], x["signal"].to_numpy())


def test_preprocessor_one_hot_encodes_categories_and_ignores_unknown_ones(frame, spec):
    x = features(frame)
    names, steps = prepared(spec, x, scale=False)
    encoder = steps.named_steps["prepare"].named_transformers_["categorical"]
    # Categories are coded by their index in the spec's sorted list: blue, green, red.
    colours = [names.index(f"colour_{code:.1f}") for code in range(3)]

    unseen = x.iloc[:3].assign(colour=["purple", "red", None])
    out = steps.transform(unseen)

    assert isinstance(encoder, OneHotEncoder)
    assert encoder.handle_unknown == "ignore"
    np.testing.assert_array_equal(out[0, colours], [0, 0, 0])
    np.testing.assert_array_equal(out[1, colours], [0, 0, 1])
    assert out[2, colours].sum() == 1  # a missing category is imputed with the most frequent


@pytest.mark.parametrize("count", [5, 40])  # few records go row by row, more column by column
def test_records_encode_exactly_as_the_frame_does(frame, spec, count):
    x = features(frame)
    encoder = FeatureEncoder.from_spec(spec).fit(x)
    sample = x.iloc[:count].assign(colour=["purple", *x["colour"].iloc[1:count]])
    records = [
        {k: (None if pd.isna(v) else v) for k, v in row.items()}
        for row in sample.to_dict(orient="records")
    ]
    del records[1]["gappy"]  # an absent value is a missing one

    np.testing.assert_array_equal(encoder.encode_records(records), encoder.transform(sample))
