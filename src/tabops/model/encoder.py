"""The first step of every model: records or frames to one float64 matrix, gaps filled.

``FeatureEncoder`` turns the spec's features into numbers in spec order (a category becomes
its index in the spec's list; a category never seen becomes -1, which the one-hot step maps
to all zeros), fills missing values with statistics learnt in ``fit`` (the median of a number,
the most frequent category), and appends a 0/1 column per nullable feature saying whether
the value was missing. Training and serving run this same code: the whole-frame path
(``transform``) for training and files, and the per-record path (``encode_records``) for
requests, which never builds a DataFrame.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from tabops.schema import FeatureSpec, Kind

UNKNOWN_CATEGORY = -1.0
_ROW_BY_ROW = 32  # up to this many records, a Python loop beats numpy's per-column calls


def _fill_value(present: np.ndarray, strategy: str) -> float:
    if strategy == "mean":
        return float(np.mean(present))
    if strategy == "zero":
        return 0.0
    if strategy == "most_frequent":
        values, counts = np.unique(present, return_counts=True)
        return float(values[np.argmax(counts)])
    return float(np.median(present))


class FeatureEncoder(TransformerMixin, BaseEstimator):  # type: ignore[misc]  # untyped base
    """Spec-ordered float64 features, missing values filled, missing indicators appended.

    Args:
        features: feature names, in the order the model takes them.
        categories: for each categorical feature, its known categories (codes are indexes).
        nullable: the features that may be missing; each gets an indicator column.
        imputation: per numeric feature, ``median`` (the default), ``mean``, ``zero`` or
            ``most_frequent``; categories always take their most frequent value.
    """

    def __init__(
        self,
        features: Sequence[str] = (),
        categories: Mapping[str, Sequence[str]] | None = None,
        nullable: Sequence[str] = (),
        imputation: Mapping[str, str] | None = None,
    ) -> None:
        self.features = features
        self.categories = categories
        self.nullable = nullable
        self.imputation = imputation

    @classmethod
    def from_spec(cls, spec: FeatureSpec) -> FeatureEncoder:
        """An unfitted encoder for the spec's features."""
        return cls(
            features=list(spec.feature_names),
            categories={
                c.name: list(c.categories or [])
                for c in spec.features
                if c.kind is Kind.CATEGORICAL
            },
            nullable=[c.name for c in spec.features if c.nullable],
            imputation={c.name: c.impute for c in spec.features if c.impute} or None,
        )

    @property
    def categorical_positions(self) -> list[int]:
        """Output columns holding category codes."""
        categories = self.categories or {}
        return [i for i, name in enumerate(self.features) if name in categories]

    @property
    def numeric_positions(self) -> list[int]:
        """Output columns holding numbers."""
        categories = self.categories or {}
        return [i for i, name in enumerate(self.features) if name not in categories]

    @property
    def indicator_positions(self) -> list[int]:
        """Output columns holding missing-value indicators (after the features)."""
        return list(range(len(self.features), len(self.features) + len(self.nullable)))

    def fit(self, x: pd.DataFrame, y: Any = None) -> FeatureEncoder:
        """Learn each feature's fill value from these (training) rows only."""
        raw = self._raw(x)
        fill = np.zeros(len(self.features))
        categorical = set(self.categorical_positions)
        strategies = self.imputation or {}
        for position, name in enumerate(self.features):
            column = raw[:, position]
            present = column[~np.isnan(column)]
            if position in categorical:
                present = present[present != UNKNOWN_CATEGORY]
                if len(present):
                    values, counts = np.unique(present, return_counts=True)
                    fill[position] = values[np.argmax(counts)]
                else:
                    fill[position] = UNKNOWN_CATEGORY
            elif len(present):
                fill[position] = _fill_value(present, strategies.get(name, "median"))
        self.fill_ = fill
        self._prepare()
        return self

    def transform(self, x: pd.DataFrame) -> np.ndarray:
        """The encoded matrix of a frame holding the feature columns."""
        check_is_fitted(self, "fill_")
        raw = self._raw(x)
        missing = np.isnan(raw)
        filled = np.where(missing, self.fill_, raw)
        index = {name: i for i, name in enumerate(self.features)}
        indicators = missing[:, [index[name] for name in self.nullable]].astype(np.float64)
        return np.hstack([filled, indicators])

    def encode_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The encoded matrix of validated records (an absent or null value is missing)."""
        check_is_fitted(self, "fill_")
        if not hasattr(self, "_plan"):
            self._prepare()
        out = np.empty((len(records), len(self._plan) + len(self._indicators)), dtype=np.float64)
        if len(records) <= _ROW_BY_ROW:
            self._encode_rows(records, out)
            return out
        missing: dict[str, np.ndarray] = {}
        for position, (name, codes, fill) in enumerate(self._plan):
            values: list[Any] = [record.get(name) for record in records]
            if codes is not None:
                values = [math.nan if v is None else codes.get(v, UNKNOWN_CATEGORY) for v in values]
            column = np.array(values, dtype=np.float64)  # None becomes NaN
            gaps = np.isnan(column)
            column[gaps] = fill
            out[:, position] = column
            missing[name] = gaps
        for position, name in self._indicators:
            out[:, position] = missing[name]
        return out

    def _encode_rows(self, records: Sequence[Mapping[str, Any]], out: np.ndarray) -> None:
        """Row by row: for a few records, cheaper than numpy's per-column calls."""
        for row, record in enumerate(records):
            values = out[row]
            for position, (name, codes, fill) in enumerate(self._plan):
                value = record.get(name)
                if value is None:
                    values[position] = fill
                elif codes is None:
                    values[position] = value
                else:
                    values[position] = codes.get(value, UNKNOWN_CATEGORY)
            for position, name in self._indicators:
                values[position] = 1.0 if record.get(name) is None else 0.0

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Feature names, then ``missing_<name>`` per indicator."""
        names = [*self.features, *(f"missing_{name}" for name in self.nullable)]
        return np.asarray(names, dtype=object)

    def _prepare(self) -> None:
        categories = self.categories or {}
        plan: list[tuple[str, dict[str, float] | None, float]] = []
        for position, name in enumerate(self.features):
            codes = None
            if name in categories:
                codes = {str(value): float(code) for code, value in enumerate(categories[name])}
            plan.append((name, codes, float(self.fill_[position])))
        self._plan = plan
        start = len(self.features)
        self._indicators = [(start + i, name) for i, name in enumerate(self.nullable)]

    def _raw(self, x: pd.DataFrame) -> np.ndarray:
        """Numbers and category codes, NaN where missing (nothing filled yet)."""
        categories = self.categories or {}
        raw = np.empty((len(x), len(self.features)), dtype=np.float64)
        for position, name in enumerate(self.features):
            series = x[name]
            if name in categories:
                text = series.astype(object).where(series.notna(), None).map(_text)
                index = pd.Index(list(categories[name]), dtype=object)
                codes = index.get_indexer(pd.Index(text, dtype=object)).astype(np.float64)
                codes[series.isna().to_numpy()] = np.nan
                raw[:, position] = codes
            else:
                raw[:, position] = pd.to_numeric(series, errors="coerce").astype("float64")
        return raw

    def __getstate__(self) -> dict[str, Any]:
        # The lookup plan is rebuilt from the fitted fill values; it is not stored.
        state: dict[str, Any] = super().__getstate__()
        state.pop("_plan", None)
        state.pop("_indicators", None)
        return state


def _text(value: Any) -> Any:
    return None if value is None else str(value)
