"""The candidate classifiers, their search spaces, and class-imbalance handling.

Resampling (random under-sampling, SMOTE) sits inside an imbalanced-learn pipeline, so it
only ever runs in ``fit`` on training rows; ``strip_resampling`` then removes it from the
fitted model, which is what gets stored and served.
"""

from __future__ import annotations

from typing import Any

from imblearn.over_sampling import SMOTE
from imblearn.pipeline import Pipeline as ResamplingPipeline
from imblearn.under_sampling import RandomUnderSampler
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    VotingClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from tabops.errors import TrainingError
from tabops.model.encoder import FeatureEncoder
from tabops.schema import FeatureSpec, Kind

SEARCH_SPACES: dict[str, list[dict[str, Any]]] = {
    "logistic_regression": [{"C": c} for c in (1.0, 0.1, 0.01, 10.0)],
    "random_forest": [
        {"min_samples_leaf": leaf, "max_features": features, "max_depth": depth}
        for leaf in (1, 3, 10)
        for features in ("sqrt", 0.5)
        for depth in (None, 12)
    ],
    "extra_trees": [
        {"min_samples_leaf": leaf, "max_features": features, "max_depth": depth}
        for leaf in (1, 3, 10)
        for features in ("sqrt", 0.7)
        for depth in (None, 12)
    ],
    "hist_gradient_boosting": [
        {"learning_rate": rate, "max_leaf_nodes": leaves, "l2_regularization": l2}
        for rate in (0.1, 0.05)
        for leaves in (15, 31, 7)
        for l2 in (0.0, 1.0)
    ],
    "voting": [{}],
}
BASE_CANDIDATES = ("logistic_regression", "random_forest", "extra_trees", "hist_gradient_boosting")
VOTING_MEMBERS = 3
_TREES = 300
_FORESTS: dict[str, Any] = {
    "random_forest": RandomForestClassifier,
    "extra_trees": ExtraTreesClassifier,
}


def build_preprocessor(encoder: FeatureEncoder, *, scale: bool) -> ColumnTransformer:
    """Optional scaling of numbers, one-hot categories, missing indicators as they are.

    It works on the encoder's output (gaps already filled with training statistics), by
    column position, so the same step runs on a matrix built without pandas.
    """
    transformers: list[tuple[str, Any, list[int]]] = []
    if encoder.numeric_positions:
        numbers: Any = StandardScaler() if scale else "passthrough"
        transformers.append(("numeric", numbers, encoder.numeric_positions))
    if encoder.categorical_positions:
        transformers.append(
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                encoder.categorical_positions,
            )
        )
    if encoder.indicator_positions:
        transformers.append(("missing", "passthrough", encoder.indicator_positions))
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)


def imputation_strategies(spec: FeatureSpec) -> dict[str, str]:
    """The imputation each feature gets (for reports)."""
    return {
        c.name: "most_frequent" if c.kind is Kind.CATEGORICAL else c.impute or "median"
        for c in spec.features
    }


def build_estimator(name: str, params: dict[str, Any], *, weighted: bool, seed: int) -> Any:
    """One unfitted classifier (no preprocessing), classes weighted when ``weighted``."""
    weight = "balanced" if weighted else None
    if name == "logistic_regression":
        return LogisticRegression(max_iter=5_000, class_weight=weight, **params)
    if name in _FORESTS:
        return _FORESTS[name](
            n_estimators=_TREES,
            class_weight="balanced_subsample" if weighted else None,
            n_jobs=-1,
            random_state=seed,
            **params,
        )
    if name == "hist_gradient_boosting":
        return HistGradientBoostingClassifier(class_weight=weight, random_state=seed, **params)
    raise TrainingError(f"unknown candidate {name!r}")


def build_candidate(
    name: str,
    params: dict[str, Any],
    spec: FeatureSpec,
    *,
    imbalance: str,
    seed: int,
    minority_rows: int,
    members: list[tuple[str, dict[str, Any]]] | None = None,
) -> Any:
    """A fresh pipeline: preprocessing, then resampling if asked, then the classifier.

    Args:
        name: candidate name; ``voting`` needs ``members`` (name, params) to combine.
        params: hyper-parameters of the classifier.
        spec: the feature spec.
        imbalance: ``class_weight``, ``undersample``, ``smote`` or ``none``.
        seed: random seed.
        minority_rows: rows of the rarer class in the data it will be fit on (caps SMOTE's k).
        members: for ``voting``, the candidates it averages.
    """
    weighted = imbalance == "class_weight"
    if name == "voting":
        if not members:
            raise TrainingError("the voting candidate needs other candidates to combine")
        model: Any = VotingClassifier(
            [
                (member, build_estimator(member, member_params, weighted=weighted, seed=seed))
                for member, member_params in members
            ],
            voting="soft",
            flatten_transform=False,
        )
        scale = any(member == "logistic_regression" for member, _ in members)
    else:
        model = build_estimator(name, params, weighted=weighted, seed=seed)
        scale = name == "logistic_regression"
    encode = FeatureEncoder.from_spec(spec)
    prepare = build_preprocessor(encode, scale=scale)
    if imbalance == "undersample":
        sampler: Any = RandomUnderSampler(random_state=seed)
    elif imbalance == "smote":
        neighbours = max(1, min(5, minority_rows - 1))
        sampler = SMOTE(random_state=seed, k_neighbors=neighbours)
    else:
        return Pipeline([("encode", encode), ("prepare", prepare), ("model", model)])
    return ResamplingPipeline(
        [("encode", encode), ("prepare", prepare), ("resample", sampler), ("model", model)]
    )


def strip_resampling(fitted: Any) -> Pipeline:
    """The fitted pipeline without its resampling step, which only acts during ``fit``."""
    if isinstance(fitted, ResamplingPipeline):
        return Pipeline([step for step in fitted.steps if step[0] != "resample"])
    if isinstance(fitted, Pipeline):
        return fitted
    raise TrainingError(f"unexpected model type {type(fitted).__name__}")
