"""Probability calibration fitted on out-of-fold predictions, kept only when it helps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

CALIBRATION_EPSILON = 1e-6


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
        """Calibrated probabilities."""
        check_is_fitted(self, "mapping_")
        return self.mapping()(np.asarray(probability, dtype=float))

    def mapping(self) -> Callable[[np.ndarray], np.ndarray]:
        """The fitted mapping as a plain numpy function, for the serving path."""
        check_is_fitted(self, "mapping_")
        if self.method == "isotonic":
            # IsotonicRegression.predict with out_of_bounds="clip" is this interpolation.
            x = np.asarray(self.mapping_.X_thresholds_, dtype=float)
            y = np.asarray(self.mapping_.y_thresholds_, dtype=float)

            def isotonic(probability: np.ndarray) -> np.ndarray:
                mapped: np.ndarray = np.interp(probability, x, y)
                return mapped

            return isotonic
        slope = float(self.mapping_.coef_[0, 0])
        intercept = float(self.mapping_.intercept_[0])

        def sigmoid(probability: np.ndarray) -> np.ndarray:
            clipped = np.clip(probability, CALIBRATION_EPSILON, 1 - CALIBRATION_EPSILON)
            score = slope * np.log(clipped / (1 - clipped)) + intercept
            calibrated: np.ndarray = 1.0 / (1.0 + np.exp(-score))
            return calibrated

        return sigmoid


def _logit(probability: np.ndarray) -> np.ndarray:
    clipped = np.clip(probability, CALIBRATION_EPSILON, 1 - CALIBRATION_EPSILON)
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
