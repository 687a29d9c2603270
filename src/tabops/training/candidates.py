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
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from tabops.errors import TrainingError
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


def build_preprocessor(spec: FeatureSpec, *, scale: bool) -> ColumnTransformer:
    """Per-column imputation learned on training rows, optional scaling, one-hot categories.

    Numbers are imputed with the median (robust to the heavy tails these tables have),
    categories with the most frequent value; a missing-value indicator keeps the fact that
    a value was missing, instead of pretending it was typical.
    """
    numeric = [c.name for c in spec.features if c.kind is not Kind.CATEGORICAL]
    categorical = [c.name for c in spec.features if c.kind is Kind.CATEGORICAL]
    nullable = {c.name for c in spec.features if c.nullable}
    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric:
        steps: list[tuple[str, Any]] = [
            (
                "impute",
                SimpleImputer(
                    strategy="median", add_indicator=any(name in nullable for name in numeric)
                ),
            )
        ]
        if scale:
            steps.append(("scale", StandardScaler()))
        transformers.append(("numeric", Pipeline(steps), numeric))
    if categorical:
        encode = Pipeline(
            [
                ("impute", SimpleImputer(strategy="most_frequent")),
                ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]
        )
        transformers.append(("categorical", encode, categorical))
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)


def imputation_strategies(spec: FeatureSpec) -> dict[str, str]:
    """The imputation each feature gets (for reports)."""
    return {
        c.name: "most_frequent" if c.kind is Kind.CATEGORICAL else "median" for c in spec.features
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
        )
        scale = any(member == "logistic_regression" for member, _ in members)
    else:
        model = build_estimator(name, params, weighted=weighted, seed=seed)
        scale = name == "logistic_regression"
    prepare = build_preprocessor(spec, scale=scale)
    if imbalance == "undersample":
        sampler: Any = RandomUnderSampler(random_state=seed)
    elif imbalance == "smote":
        neighbours = max(1, min(5, minority_rows - 1))
        sampler = SMOTE(random_state=seed, k_neighbors=neighbours)
    else:
        return Pipeline([("prepare", prepare), ("model", model)])
    return ResamplingPipeline([("prepare", prepare), ("resample", sampler), ("model", model)])


def strip_resampling(fitted: Any) -> Pipeline:
    """The fitted pipeline without its resampling step, which only acts during ``fit``."""
    if isinstance(fitted, ResamplingPipeline):
        return Pipeline(
            [("prepare", fitted.named_steps["prepare"]), ("model", fitted.named_steps["model"])]
        )
    if isinstance(fitted, Pipeline):
        return fitted
    raise TrainingError(f"unexpected model type {type(fitted).__name__}")
