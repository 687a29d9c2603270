"""Data-quality guards run before training: leaks, impossible dates, duplicates, missing data."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel

from tabops.schema import FeatureSpec, Kind, Role

# One feature that alone separates the classes this well is most likely recorded after the
# outcome; above the lower level it is strong enough that its timing deserves a look.
PROBABLE_LEAK_AUC = 0.95
SUSPECT_LEAK_AUC = 0.85
MOSTLY_MISSING_SHARE = 0.5
EARLIEST_DATE = pd.Timestamp("1900-01-01")
LATEST_DATE = pd.Timestamp("2100-12-31")

# Only values shaped like a calendar date count: pandas' mixed mode also reads "1st" or "5"
# as dates, and a time of day alone would become today's date.
_DATE_SHAPE = re.compile(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}")
# Years pandas cannot hold even at microsecond resolution (five digits and more).
_ISO_YEAR = re.compile(r"^\s*(\d{4,})-(?:0?[1-9]|1[0-2])-(?:0?[1-9]|[12]\d|3[01])\b")
_LEAK_KINDS = (Kind.NUMERIC, Kind.INTEGER, Kind.BOOLEAN, Kind.CATEGORICAL)

GuardName = Literal[
    "excluded_column",
    "target_in_features",
    "probable_leak",
    "strong_feature",
    "near_copy",
    "dominant_feature",
    "date_out_of_range",
    "duplicate_rows",
    "duplicate_entities",
    "mostly_missing",
]


class GuardFinding(BaseModel):
    """One thing a guard found in the training data, worded for the CLI and the model card."""

    guard: GuardName
    severity: Literal["info", "warning", "error"]
    column: str | None = None
    message: str
    value: float | None = None


@dataclass(frozen=True)
class DateParseResult:
    """A column of dates parsed without overflow, aligned with the input's index.

    Attributes:
        values: ``datetime64[ns]``; NaT where missing, unparseable or beyond pandas' range.
        years: the year of every value read as a date, beyond pandas' range too; NaN otherwise.
        out_of_range: read as a date but outside ``EARLIEST_DATE``..``LATEST_DATE`` or
            beyond pandas' nanosecond range.
    """

    values: pd.Series
    years: pd.Series
    out_of_range: pd.Series


def check_data_quality(
    frame: pd.DataFrame, spec: FeatureSpec, target: str, y: np.ndarray, entity: str | None = None
) -> list[GuardFinding]:
    """Run every guard on the training rows; a finding of severity "error" should stop training.

    Args:
        frame: the raw training-table rows to look at (only training rows, so the leak
            check never sees validation or test labels).
        spec: the feature spec of the project.
        target: name of the target column.
        y: the 0/1 target, aligned by position with the rows of ``frame``.
        entity: the column naming each row's entity, if the project has one.

    Returns:
        The findings, grouped by guard in a fixed order.

    Raises:
        ValueError: ``y`` and ``frame`` differ in length.
    """
    labels = np.asarray(y)
    if len(labels) != len(frame):
        raise ValueError(f"y has {len(labels)} values but the frame has {len(frame)} rows")
    return [
        *_excluded_columns(spec),
        *_target_in_features(spec, target),
        *_probable_leaks(frame, spec, target, labels == 1),
        *_dates_out_of_range(frame, spec),
        *_duplicate_rows(frame),
        *_duplicate_entities(frame, entity),
        *_mostly_missing(frame, spec),
    ]


def parse_dates(series: pd.Series) -> DateParseResult:
    """Parse a column of dates without overflow; far-future values are flagged, not lost.

    ISO strings (``3021-09-18``), US-style strings (``1/1/15``) and datetime columns are read;
    timezone-aware values are converted to naive UTC.

    Args:
        series: the raw column.

    Returns:
        The parsed values, the year of each, and which ones lie out of range.
    """
    index = series.index
    parsed = np.full(len(series), np.datetime64("NaT"), dtype="datetime64[us]")
    years = np.full(len(series), np.nan)
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        parsed = series.dt.tz_convert(None).to_numpy(dtype="datetime64[us]")
    elif pd.api.types.is_datetime64_any_dtype(series):
        parsed = series.to_numpy(dtype="datetime64[us]")
    elif not pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        present = series.notna().to_numpy()
        strings = series[present].astype(str).str.strip().reset_index(drop=True)
        shaped = strings.str.contains(_DATE_SHAPE).to_numpy(dtype=bool)
        positions = np.flatnonzero(present)[shaped]
        candidates = strings[shaped].reset_index(drop=True)
        parsed[positions] = _parse_strings(candidates)
        # What even microseconds cannot hold keeps its year, so it is counted, not dropped.
        unread = np.isnat(parsed[positions])
        found = candidates[unread].str.extract(_ISO_YEAR, expand=False)
        years[positions[unread]] = found.astype("float64").to_numpy()
    known = ~np.isnat(parsed)
    years[known] = parsed[known].astype("datetime64[Y]").astype("int64") + 1970
    dates = pd.Series(parsed, index=index)
    in_pandas_range = dates.notna() & (dates >= pd.Timestamp.min) & (dates <= pd.Timestamp.max)
    in_window = (dates >= EARLIEST_DATE) & (dates < LATEST_DATE + pd.Timedelta(days=1))
    year_series = pd.Series(years, index=index)
    out_of_range = year_series.notna() & ~(in_pandas_range & in_window)
    values = dates.where(in_pandas_range).astype("datetime64[ns]")
    return DateParseResult(values=values, years=year_series, out_of_range=out_of_range)


def _parse_strings(strings: pd.Series) -> np.ndarray:
    # ISO first (fast and unambiguous), then pandas' per-value mixed mode for the rest.
    # utc=True keeps mixed offsets from raising; microseconds hold years up to 294,000.
    parsed = pd.to_datetime(strings, errors="coerce", format="ISO8601", utc=True)
    rest = strings[parsed.isna()]
    if len(rest):
        parsed[rest.index] = pd.to_datetime(rest, errors="coerce", format="mixed", utc=True)
    return parsed.dt.tz_convert(None).to_numpy(dtype="datetime64[us]")


def _excluded_columns(spec: FeatureSpec) -> list[GuardFinding]:
    findings = []
    for column in spec.columns:
        if column.role is not Role.EXCLUDED:
            continue
        reason = column.reason or "no reason given"
        findings.append(
            GuardFinding(
                guard="excluded_column",
                severity="warning" if "id-like" in reason else "info",
                column=column.name,
                message=f"column {column.name!r} is not used as a feature: {reason}",
            )
        )
    return findings


def _target_in_features(spec: FeatureSpec, target: str) -> list[GuardFinding]:
    if target not in spec.feature_names:
        return []
    message = f"the target {target!r} is listed as a feature; set its role to 'target'"
    return [
        GuardFinding(guard="target_in_features", severity="error", column=target, message=message)
    ]


def _probable_leaks(
    frame: pd.DataFrame, spec: FeatureSpec, target: str, positive: np.ndarray
) -> list[GuardFinding]:
    columns = [
        column
        for column in spec.features
        if column.kind in _LEAK_KINDS and column.name != target and column.name in frame.columns
    ]
    if not columns or positive.all() or not positive.any():
        return []
    scores = pd.DataFrame(
        {column.name: _leak_score(frame[column.name], column.kind, positive) for column in columns}
    )
    # Mann-Whitney form of the ROC AUC, for all columns at once: average ranks handle ties.
    ranks = scores.rank(method="average", na_option="keep").to_numpy()
    valid = ~np.isnan(ranks)
    positives = (valid & positive[:, None]).sum(axis=0)
    negatives = valid.sum(axis=0) - positives
    rank_sums = np.where(valid & positive[:, None], ranks, 0.0).sum(axis=0)
    pairs = (positives * negatives).astype("float64")
    auc = np.divide(
        rank_sums - positives * (positives + 1) / 2.0,
        pairs,
        out=np.full(len(columns), np.nan),
        where=pairs > 0,
    )
    strength = np.maximum(auc, 1.0 - auc)
    return [
        _leak_finding(str(name), float(value))
        for name, value in zip(scores.columns, strength, strict=True)
        if value > SUSPECT_LEAK_AUC
    ]


def _leak_finding(name: str, strength: float) -> GuardFinding:
    separates = f"column {name!r} alone separates the classes with ROC AUC {strength:.3f}"
    if strength > PROBABLE_LEAK_AUC:
        return GuardFinding(
            guard="probable_leak",
            severity="warning",
            column=name,
            message=(
                f"{separates}; check that it is known before the outcome, or exclude it "
                "(train.leak_action: exclude)"
            ),
            value=strength,
        )
    return GuardFinding(
        guard="strong_feature",
        severity="info",
        column=name,
        message=f"{separates}; check it is known before the outcome",
        value=strength,
    )


def _leak_score(series: pd.Series, kind: Kind, positive: np.ndarray) -> np.ndarray:
    is_number = pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)
    if kind is not Kind.CATEGORICAL and is_number:
        return series.astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
    # Categories (and booleans stored as text) score by their positive rate on these same
    # rows: optimistic, which suits a flag. Missing is a category of its own here.
    codes, _uniques = pd.factorize(series, use_na_sentinel=False)
    counts = np.bincount(codes)
    rates = np.bincount(codes, weights=positive.astype("float64")) / counts
    return np.asarray(rates[codes], dtype="float64")


def _dates_out_of_range(frame: pd.DataFrame, spec: FeatureSpec) -> list[GuardFinding]:
    names = [c.name for c in spec.columns if c.kind is Kind.DATETIME and c.name in frame.columns]
    spec_names = {column.name for column in spec.columns}
    names += [
        str(name)
        for name in frame.columns
        if name not in spec_names and pd.api.types.is_datetime64_any_dtype(frame[name])
    ]
    findings = []
    for name in names:
        result = parse_dates(frame[name])
        count = int(result.out_of_range.sum())
        if not count:
            continue
        years = result.years[result.out_of_range]
        latest, earliest = int(years.max()), int(years.min())
        extreme = (
            f"latest year {latest}" if latest > LATEST_DATE.year else f"earliest year {earliest}"
        )
        values = "value" if count == 1 else "values"
        verb = "lies" if count == 1 else "lie"
        findings.append(
            GuardFinding(
                guard="date_out_of_range",
                severity="warning",
                column=name,
                message=(
                    f"{count} {values} of {name} {verb} outside "
                    f"{EARLIEST_DATE.year}\N{EN DASH}{LATEST_DATE.year} ({extreme}); "
                    "they are treated as missing"
                ),
                value=float(count),
            )
        )
    return findings


def _duplicate_rows(frame: pd.DataFrame) -> list[GuardFinding]:
    count = int(frame.duplicated(keep="first").sum())
    if not count:
        return []
    message = (
        f"{count} of {len(frame)} rows are exact copies of an earlier row; "
        "set train.drop_duplicate_rows: true unless the repeats are real events"
    )
    return [GuardFinding(guard="duplicate_rows", severity="warning", message=message, value=count)]


def _duplicate_entities(frame: pd.DataFrame, entity: str | None) -> list[GuardFinding]:
    if entity is None or entity not in frame.columns or frame.empty:
        return []
    counts = frame[entity].value_counts(dropna=True)
    repeated = int((counts > 1).sum())
    if not repeated:
        return []
    share = float((counts.sum() - len(counts)) / len(frame))
    message = (
        f"{repeated} {entity} values have more than one row ({share:.1%} of rows are repeats); "
        "set train.dedupe: keep_last or train.split: group so one entity cannot sit on both "
        "sides of a split"
    )
    return [
        GuardFinding(
            guard="duplicate_entities",
            severity="warning",
            column=entity,
            message=message,
            value=share,
        )
    ]


def _mostly_missing(frame: pd.DataFrame, spec: FeatureSpec) -> list[GuardFinding]:
    if frame.empty:
        return []
    findings = []
    for name in spec.feature_names:
        if name not in frame.columns:
            continue
        share = float(frame[name].isna().mean())
        if share > MOSTLY_MISSING_SHARE:
            findings.append(
                GuardFinding(
                    guard="mostly_missing",
                    severity="info",
                    column=name,
                    message=f"column {name!r} is missing in {share:.0%} of rows; it is imputed",
                    value=share,
                )
            )
    return findings
