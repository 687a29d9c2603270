"""Small fitted models of the kinds users bring from elsewhere, and the ways they save them.

Every builder returns ``(model, X, y)``: the fitted estimator and the frame and target it was
fitted on (200 rows, seeded), so a test can write ``X`` as a sample file. Builders are cached:
treat what they return as read-only. ``dump_model`` writes a model the way users do
(``pickle.dump`` at a protocol, ``joblib.dump`` plain or compressed, ``skops.io.dump``).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import skops.io
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

ROWS = 200
Fitted = tuple[BaseEstimator, pd.DataFrame, pd.Series]

DUMP_WAYS = ("pickle-2", "pickle-4", "pickle-5", "joblib", "joblib-zlib")
"""How users save a model: ``pickle.dump`` at protocols 2, 4, 5, ``joblib.dump`` plain and
with ``compress=3`` (zlib). ``dump_model`` also takes ``joblib-gzip``, ``joblib-bz2``,
``joblib-xz``, ``joblib-lzma``, ``pickle-0`` and ``skops``."""


def sample_frame(rows: int = ROWS, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Two numeric columns (one with gaps), one text column, and a learnable 0/1 target."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.normal(50, 12, rows).round(1),
            "income": rng.uniform(1, 5, rows).round(3),
            "region": rng.choice(["north", "south", "east"], rows),
        }
    )
    frame.loc[::17, "age"] = np.nan
    score = frame["income"] + (frame["region"] == "south") + rng.normal(0, 0.5, rows)
    target = pd.Series((score > 3).astype(int), name="target")
    return frame, target


def _numeric() -> tuple[pd.DataFrame, pd.Series]:
    frame, target = sample_frame()
    return frame[["age", "income"]].fillna(50.0), target


@cache
def fitted_logistic() -> Fitted:
    x, y = _numeric()
    return LogisticRegression().fit(x, y), x, y


@cache
def fitted_column_pipeline() -> Fitted:
    """ColumnTransformer(OneHotEncoder, SimpleImputer + StandardScaler) + GradientBoosting."""
    x, y = sample_frame()
    columns = ColumnTransformer(
        [
            ("text", OneHotEncoder(handle_unknown="ignore"), ["region"]),
            ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), ["age", "income"]),
        ]
    )
    model = Pipeline([("columns", columns), ("boost", GradientBoostingClassifier(n_estimators=5))])
    return model.fit(x, y), x, y


@cache
def fitted_random_forest() -> Fitted:
    x, y = _numeric()
    forest = RandomForestClassifier(n_estimators=3, random_state=np.random.RandomState(0))
    return forest.fit(x, y), x, y


@cache
def fitted_hist_gradient_boosting() -> Fitted:
    x, y = sample_frame()
    model = HistGradientBoostingClassifier(max_iter=5, random_state=0)
    return model.fit(x[["age", "income"]], y), x[["age", "income"]], y


@cache
def fitted_log1p_pipeline() -> Fitted:
    x, y = _numeric()
    model = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression())
    return model.fit(x, y), x, y


@cache
def fitted_calibrated() -> Fitted:
    x, y = _numeric()
    return CalibratedClassifierCV(LogisticRegression(), cv=3).fit(x, y), x, y


@cache
def fitted_xgboost() -> Fitted:
    from xgboost import XGBClassifier

    x, y = _numeric()
    return XGBClassifier(n_estimators=3, max_depth=2, n_jobs=1).fit(x, y), x, y


@cache
def fitted_lightgbm() -> Fitted:
    from lightgbm import LGBMClassifier

    x, y = _numeric()
    model = LGBMClassifier(n_estimators=3, num_leaves=4, verbose=-1, n_jobs=1)
    return model.fit(x, y), x, y


FITTED_MODELS: dict[str, Callable[[], Fitted]] = {
    "logistic": fitted_logistic,
    "column_pipeline": fitted_column_pipeline,
    "random_forest": fitted_random_forest,
    "hist_gradient_boosting": fitted_hist_gradient_boosting,
    "log1p_pipeline": fitted_log1p_pipeline,
    "calibrated": fitted_calibrated,
    "xgboost": fitted_xgboost,
    "lightgbm": fitted_lightgbm,
}
"""Every builder by name, for parametrised tests."""

_JOBLIB_COMPRESSION: dict[str, Any] = {
    "joblib": 0,
    "joblib-zlib": 3,
    "joblib-gzip": ("gzip", 3),
    "joblib-bz2": ("bz2", 3),
    "joblib-xz": ("xz", 3),
    "joblib-lzma": ("lzma", 3),
}


def dump_model(model: Any, path: Path, way: str) -> Path:
    """Write ``model`` to ``path`` the way named (see ``DUMP_WAYS``); return ``path``."""
    if way.startswith("pickle-"):
        path.write_bytes(pickle.dumps(model, protocol=int(way.removeprefix("pickle-"))))
    elif way in _JOBLIB_COMPRESSION:
        joblib.dump(model, path, compress=_JOBLIB_COMPRESSION[way])
    elif way == "skops":
        skops.io.dump(model, path)
    else:
        raise ValueError(f"unknown way to save a model: {way}")
    return path
