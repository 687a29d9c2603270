"""Probability calibration fitted on out-of-fold predictions, kept only when it helps."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

_EPSILON = 1e-6


class ProbabilityCalibrator(BaseEstimator):  # type: ignore[misc]  # sklearn ships no types
    """Maps raw positive-class probabilities to calibrated ones (sigmoid or isotonic)."""

    def __init__(self, method: Literal["sigmoid", "isotonic"] = "sigmoid") -> None:
        self.method = method

    def fit(self, probability: np.ndarray, y: np.ndarray) -> ProbabilityCalibrator:
        """Learn the mapping from probabilities (not used to train the model) and labels."""
        probability = np.asarray(probability, dtype=float)
        if self.method == "isotonic":
            self.mapping_: Any = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
                probability, y
            )
        elif self.method == "sigmoid":
            self.mapping_ = LogisticRegression(C=1e6).fit(_logit(probability), y)
        else:
            raise ValueError(f"unknown calibration method {self.method!r}")
        return self

    def transform(self, probability: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (plain numpy: it sits on the serving path)."""
        check_is_fitted(self, "mapping_")
        probability = np.asarray(probability, dtype=float)
        if self.method == "isotonic":
            # IsotonicRegression.predict with out_of_bounds="clip" is this interpolation.
            mapped: np.ndarray = np.interp(
                probability, self.mapping_.X_thresholds_, self.mapping_.y_thresholds_
            )
            return mapped
        slope = float(self.mapping_.coef_[0, 0])
        intercept = float(self.mapping_.intercept_[0])
        calibrated: np.ndarray = 1.0 / (
            1.0 + np.exp(-(slope * _logit(probability)[:, 0] + intercept))
        )
        return calibrated


def _logit(probability: np.ndarray) -> np.ndarray:
    clipped = np.clip(probability, _EPSILON, 1 - _EPSILON)
    logits: np.ndarray = np.log(clipped / (1 - clipped))
    return logits.reshape(-1, 1)


class CalibratedPipeline(ClassifierMixin, BaseEstimator):  # type: ignore[misc]  # untyped base
    """A fitted pipeline followed by a fitted calibrator of its probabilities.

    Both parts come fitted (like scikit-learn's ``FrozenEstimator``): the calibrator was
    learnt on out-of-fold predictions of the training rows, so no row is used twice.
    """

    def __init__(self, pipeline: Any, calibrator: ProbabilityCalibrator) -> None:
        self.pipeline = pipeline
        self.calibrator = calibrator

    def fit(self, x: Any, y: Any) -> CalibratedPipeline:
        """Nothing to learn: both parts are fitted already."""
        check_is_fitted(self.calibrator, "mapping_")
        return self

    @property
    def classes_(self) -> np.ndarray:
        """The classes of the wrapped pipeline."""
        classes: np.ndarray = self.pipeline.classes_
        return classes

    def predict_proba(self, x: Any) -> np.ndarray:
        """Calibrated class probabilities, columns in ``classes_`` order."""
        positive = self.calibrator.transform(self.pipeline.predict_proba(x)[:, 1])
        probabilities: np.ndarray = np.column_stack([1 - positive, positive])
        return probabilities

    def predict(self, x: Any) -> np.ndarray:
        """The class with the larger calibrated probability."""
        labels: np.ndarray = self.classes_[(self.predict_proba(x)[:, 1] >= 0.5).astype(int)]
        return labels
