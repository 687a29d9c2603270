"""The candidate classifiers, their search spaces, and class-imbalance handling.

LightGBM and XGBoost are optional (the ``boost`` extra): their library is imported only when
such a candidate is built. Both give the same model whatever the thread count, and both run
on one thread: their OpenMP pools spin against any other load, and on a busy 2-core machine a
1,000-row fit took 1 s on one thread and 34 s on two.

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

from tabops.errors import MissingExtraError, TrainingError
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
    # 300 trees, so slower learning rates than the libraries' defaults; row and column
    # subsampling as a third axis. The first setting is the plain one.
    "lightgbm": [
        {"learning_rate": rate, "num_leaves": leaves, "min_child_samples": child, **sampling}
        for rate in (0.05, 0.1)
        for leaves, child in ((31, 20), (15, 50), (63, 10))
        for sampling in ({}, {"subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8})
    ],
    "xgboost": [
        {"learning_rate": rate, "max_depth": depth, "min_child_weight": child, **sampling}
        for rate in (0.05, 0.1)
        for depth, child in ((6, 1.0), (3, 1.0), (8, 5.0))
        for sampling in ({}, {"subsample": 0.8, "colsample_bytree": 0.8})
    ],
    "voting": [{}],
}
# Voting averages scikit-learn members only: it must work without the optional libraries,
# and its exact ONNX graph (tabops.model.graphs.soft_voting_graph) knows only those.
BASE_CANDIDATES = ("logistic_regression", "random_forest", "extra_trees", "hist_gradient_boosting")
VOTING_MEMBERS = 3
LARGE_FIT_ROWS = 10_000
LARGE_FIT_ROUNDS = 500
TREES = 300
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


def build_estimator(
    name: str,
    params: dict[str, Any],
    *,
    weighted: bool,
    seed: int,
    negatives_per_positive: float = 1.0,
    fit_rows: int = 0,
    trees: int = TREES,
) -> Any:
    """One unfitted classifier (no preprocessing), classes weighted when ``weighted``.

    Args:
        name: candidate name.
        params: hyper-parameters of the classifier.
        weighted: weigh the classes inversely to their frequency.
        seed: random seed.
        negatives_per_positive: the class ratio of the training rows; XGBoost takes its
            class weight as this number (``scale_pos_weight``), not as ``"balanced"``.
        fit_rows: how many rows it will be fit on. Above ``LARGE_FIT_ROWS``, each forest
            tree grows on a bootstrap sample of that many rows and gradient boosting runs
            up to ``LARGE_FIT_ROUNDS`` rounds, stopped early on a held-out tenth of its rows.
        trees: trees per forest (fewer while comparing settings on a large table).

    Raises:
        MissingExtraError: LightGBM or XGBoost is asked for but not installed.
        TrainingError: the name is not a candidate.
    """
    weight = "balanced" if weighted else None
    if name == "logistic_regression":
        return LogisticRegression(max_iter=5_000, class_weight=weight, **params)
    large = fit_rows > LARGE_FIT_ROWS
    if name in _FORESTS:
        return _FORESTS[name](
            n_estimators=trees,
            class_weight="balanced_subsample" if weighted else None,
            n_jobs=-1,
            random_state=seed,
            # Extra trees draw no bootstrap unless asked; on large tables both kinds draw
            # one of bounded size, so a tree costs the same on 100,000 rows as on 10,000.
            **({"bootstrap": True, "max_samples": LARGE_FIT_ROWS} if large else {}),
            **params,
        )
    if name == "hist_gradient_boosting":
        # Small tables keep every row for the trees: a tenth held out would be too few to
        # stop on. Large ones stop once the held-out loss has not improved for 10 rounds.
        rounds = {"max_iter": LARGE_FIT_ROUNDS, "early_stopping": True} if large else {}
        return HistGradientBoostingClassifier(
            class_weight=weight, random_state=seed, **rounds, **params
        )
    if name == "lightgbm":
        try:
            from lightgbm import LGBMClassifier
        except ImportError as exc:
            raise MissingExtraError("lightgbm", "boost") from exc
        return LGBMClassifier(
            n_estimators=TREES,
            class_weight=weight,
            # Row-wise histograms with deterministic=True: the same trees on any thread count.
            deterministic=True,
            force_row_wise=True,
            n_jobs=1,
            random_state=seed,
            verbose=-1,
            **params,
        )
    if name == "xgboost":
        try:
            from xgboost import XGBClassifier
        except ImportError as exc:
            raise MissingExtraError("xgboost", "boost") from exc
        return XGBClassifier(
            n_estimators=TREES,
            scale_pos_weight=negatives_per_positive if weighted else 1.0,
            tree_method="hist",  # deterministic on CPU for a given seed, any thread count
            n_jobs=1,
            random_state=seed,
            **params,
        )
    raise TrainingError(f"unknown candidate {name!r}")


def build_candidate(
    name: str,
    params: dict[str, Any],
    spec: FeatureSpec,
    *,
    imbalance: str,
    seed: int,
    minority_rows: int,
    negatives_per_positive: float = 1.0,
    fit_rows: int = 0,
    trees: int = TREES,
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
        negatives_per_positive: the class ratio of that data (XGBoost's class weight).
        fit_rows: how many rows it will be fit on (see ``build_estimator``).
        trees: trees per forest, its members' included.
        members: for ``voting``, the candidates it averages.
    """
    weighted = imbalance == "class_weight"
    if name == "voting":
        if not members:
            raise TrainingError("the voting candidate needs other candidates to combine")
        model: Any = VotingClassifier(
            [
                (
                    member,
                    build_estimator(
                        member,
                        member_params,
                        weighted=weighted,
                        seed=seed,
                        fit_rows=fit_rows,
                        trees=trees,
                    ),
                )
                for member, member_params in members
            ],
            voting="soft",
            flatten_transform=False,
        )
        scale = any(member == "logistic_regression" for member, _ in members)
    else:
        model = build_estimator(
            name,
            params,
            weighted=weighted,
            seed=seed,
            negatives_per_positive=negatives_per_positive,
            fit_rows=fit_rows,
            trees=trees,
        )
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
