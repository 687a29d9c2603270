"""A short profile of the training table for the model card: columns and class balance."""

from __future__ import annotations

from typing import Any

import pandas as pd

from tabops.schema import FeatureSpec, Kind

_CATEGORIES_SHOWN = 5


def profile_columns(frame: pd.DataFrame, spec: FeatureSpec) -> list[dict[str, Any]]:
    """One row per spec column: role, kind, share missing and a short summary of values."""
    rows = []
    for column in spec.columns:
        if column.name not in frame.columns:
            continue
        series = frame[column.name]
        rows.append(
            {
                "name": column.name,
                "role": column.role.value,
                "kind": column.kind.value,
                "missing_share": float(series.isna().mean()) if len(series) else 0.0,
                "summary": column.reason or _summarise(series, column.kind),
            }
        )
    return rows


def _summarise(series: pd.Series, kind: Kind) -> str:
    values = series.dropna()
    if values.empty:
        return "no values"
    if kind in (Kind.NUMERIC, Kind.INTEGER):
        numbers = pd.to_numeric(values, errors="coerce")
        return f"{numbers.min():g} to {numbers.max():g}, median {numbers.median():g}"
    if kind is Kind.BOOLEAN:
        return f"{pd.to_numeric(values, errors='coerce').mean():.1%} true"
    counts = values.astype(str).value_counts()
    shown = ", ".join(str(value) for value in counts.index[:_CATEGORIES_SHOWN])
    more = f" and {len(counts) - _CATEGORIES_SHOWN} more" if len(counts) > _CATEGORIES_SHOWN else ""
    return f"{len(counts)} values: {shown}{more}"
