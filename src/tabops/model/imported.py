"""The steps tabops puts around a model trained elsewhere, so it serves like its own.

An imported version stores ``Pipeline([("columns", FeatureColumns(...)), ("model", model)])``:
the first step hands the user's model its columns as it was fitted on them (a frame, or a
numpy array for a model fitted without feature names, which would otherwise warn on every
frame), and the second is the user's own estimator, wrapped in ``SwappedClasses`` when the
positive class is the first of its ``classes_`` (tabops reads the positive class second).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

COLUMNS_STEP = "columns"
MODEL_STEP = "model"


class FeatureColumns(TransformerMixin, BaseEstimator):  # type: ignore[misc]  # untyped base
    """The model's columns of a frame, in order, as the model was fitted on them.

    Gaps in text columns become NaN, as pandas reads them from a file (tabops' own frames
    hold None there). With ``as_array`` the columns come out as a numpy array.
    """

    def __init__(
        self,
        columns: Sequence[str] = (),
        text_columns: Sequence[str] = (),
        as_array: bool = False,
    ) -> None:
        self.columns = columns
        self.text_columns = text_columns
        self.as_array = as_array

    def fit(self, x: pd.DataFrame, y: Any = None) -> FeatureColumns:
        """Check that ``x`` holds every column; nothing else is learnt.

        Raises:
            ValueError: a column is missing, or a text column is not one of the columns.
        """
        missing = [name for name in self.columns if name not in x.columns]
        if missing:
            raise ValueError(f"columns missing from the frame: {', '.join(missing)}")
        unknown = sorted(set(self.text_columns) - set(self.columns))
        if unknown:
            raise ValueError(f"text columns that are not columns: {', '.join(unknown)}")
        self.columns_ = [str(name) for name in self.columns]
        self.text_columns_ = [str(name) for name in self.text_columns]
        return self

    def transform(self, x: pd.DataFrame) -> pd.DataFrame | np.ndarray:
        """The columns in order; an array when the model was fitted on one."""
        check_is_fitted(self, "columns_")
        frame = x[self.columns_]
        for name in self.text_columns_:
            values = frame[name]
            gaps = values.isna().to_numpy()
            if gaps.any():  # ``frame`` is a new frame (pandas copies on write)
                frame[name] = values.astype(object).where(~gaps, np.nan)
        if self.as_array:
            array: np.ndarray = frame.to_numpy()
            return array
        return frame


class SwappedClasses(ClassifierMixin, BaseEstimator):  # type: ignore[misc]  # untyped base
    """A fitted binary classifier with its two classes in the other order.

    Comes fitted (like ``CalibratedPipeline``): ``fit`` learns nothing.
    """

    def __init__(self, estimator: Any = None) -> None:
        self.estimator = estimator

    def fit(self, x: Any, y: Any = None) -> SwappedClasses:
        """Nothing to learn: the estimator is fitted already."""
        check_is_fitted(self.estimator)
        return self

    @property
    def classes_(self) -> np.ndarray:
        """The estimator's classes, reversed."""
        classes: np.ndarray = np.asarray(self.estimator.classes_)[::-1]
        return classes

    def predict_proba(self, x: Any) -> np.ndarray:
        """The estimator's probabilities, columns reversed to match ``classes_``."""
        probabilities: np.ndarray = self.estimator.predict_proba(x)[:, ::-1]
        return probabilities

    def predict(self, x: Any) -> np.ndarray:
        """The estimator's own labels."""
        labels: np.ndarray = self.estimator.predict(x)
        return labels

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self.estimator, "classes_")


def wrap_imported(
    estimator: Any,
    columns: Sequence[str],
    text_columns: Sequence[str],
    *,
    as_array: bool,
    positive_first: bool,
    sample: pd.DataFrame,
) -> Pipeline:
    """The stored form of a user's model: columns first, positive class second.

    Args:
        estimator: the user's fitted classifier or pipeline.
        columns: the feature columns it takes, in its order.
        text_columns: those of them holding categories (text).
        as_array: feed it a numpy array (it was fitted without feature names).
        positive_first: its ``classes_[0]`` is the positive class.
        sample: rows holding the columns, to fit the column step on.
    """
    model = SwappedClasses(estimator) if positive_first else estimator
    step = FeatureColumns(list(columns), list(text_columns), as_array).fit(sample)
    return Pipeline([(COLUMNS_STEP, step), (MODEL_STEP, model)])


def imported_parts(pipeline: Any) -> tuple[FeatureColumns, Any, bool] | None:
    """The column step, the user's estimator and whether its classes are swapped.

    None for a model that is not an imported one.
    """
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        return None
    step, model = pipeline.steps[0][1], pipeline.steps[1][1]
    if not isinstance(step, FeatureColumns):
        return None
    if isinstance(model, SwappedClasses):
        return step, model.estimator, True
    return step, model, False
