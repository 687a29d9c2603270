"""Leak guards beyond one column's own ROC AUC: near-copies, a dominant feature, what to drop.

``check_data_quality`` grades each feature by how well it alone separates the classes;
this module finds features that repeat another one, measures whether one feature carries
most of what a model learns, and turns ``train.leak_action`` into the columns training
leaves out, recorded as excluded in the project's feature spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from tabops.errors import TrainingError
from tabops.project import Project
from tabops.schema import ColumnSpec, FeatureSpec, Kind, Role
from tabops.training.candidates import build_candidate
from tabops.training.guards import GuardFinding

NEAR_COPY_CORRELATION = 0.999
NEAR_COPY_OVERLAP = 50
DOMINANT_MIN_DROP = 0.01
_COPY_KINDS = (Kind.NUMERIC, Kind.INTEGER, Kind.BOOLEAN, Kind.CATEGORICAL)
_REFITTED_FEATURES = 2
_PROBE_PARAMS: dict[str, Any] = {"max_iter": 50, "early_stopping": False}


@dataclass(frozen=True)
class _Copy:
    """Two spec positions whose columns agree, and how."""

    first: int
    second: int
    shared: int
    correlation: float
    is_equal: bool


def find_near_copies(frame: pd.DataFrame, spec: FeatureSpec, target: str) -> list[GuardFinding]:
    """Features equal to another wherever both have a value, or correlated at |r| >= 0.999.

    Of each group of copies the one with the fewest missing values is kept (ties: the one
    listed first); every other one is reported, to be left out of training.

    Args:
        frame: the raw training rows.
        spec: the project's feature spec.
        target: the target column, never compared.

    Returns:
        One ``near_copy`` warning per column to leave out, in spec order.
    """
    columns = [
        column
        for column in spec.features
        if column.kind in _COPY_KINDS and column.name != target and column.name in frame.columns
    ]
    if len(columns) < 2 or frame.empty:
        return []
    overlap = min(NEAR_COPY_OVERLAP, len(frame))
    numbers = [i for i, column in enumerate(columns) if _is_number(frame[column.name], column)]
    texts = [i for i in range(len(columns)) if i not in numbers]
    copies = [
        *_numeric_copies(frame, [columns[i].name for i in numbers], numbers, overlap),
        *_text_copies(frame, [columns[i].name for i in texts], texts, overlap),
    ]
    partners: dict[int, list[tuple[int, _Copy]]] = {}
    for copy in copies:
        partners.setdefault(copy.first, []).append((copy.second, copy))
        partners.setdefault(copy.second, []).append((copy.first, copy))
    missing = [int(frame[column.name].isna().sum()) for column in columns]
    kept: set[int] = set()
    dropped: dict[int, tuple[int, _Copy]] = {}
    for position in sorted(partners, key=lambda i: (missing[i], i)):
        if position in dropped:
            continue
        kept.add(position)
        for other, copy in partners[position]:
            if other not in kept and other not in dropped:
                dropped[other] = (position, copy)
    return [
        _copy_finding(columns[position].name, columns[twin].name, copy)
        for position, (twin, copy) in sorted(dropped.items())
    ]


def _is_number(series: pd.Series, column: ColumnSpec) -> bool:
    is_number = pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)
    return column.kind is not Kind.CATEGORICAL and is_number


def _numeric_copies(
    frame: pd.DataFrame, names: list[str], positions: list[int], overlap: int
) -> list[_Copy]:
    """Pairs correlated at |r| >= NEAR_COPY_CORRELATION on the rows both have, by matrix sums."""
    if len(names) < 2:
        return []
    values = np.column_stack(
        [frame[name].astype("Float64").to_numpy(dtype="float64", na_value=np.nan) for name in names]
    )
    present = np.isfinite(values)
    counts = np.maximum(present.sum(axis=0), 1)
    centred = np.where(present, values - np.where(present, values, 0.0).sum(axis=0) / counts, 0.0)
    spread = np.sqrt((centred**2).sum(axis=0) / counts)
    # Pearson's r ignores shift and scale; standardised values keep the sums below of order
    # one per row, so float64 resolves r near 1 even for columns in the millions.
    z = centred / np.where(spread > 0, spread, 1.0)
    mask = present.astype("float64")
    # Thin products (n x k by k): one BLAS thread is ample, and several threads spinning on a
    # busy two-core machine made one product take seconds instead of milliseconds.
    with threadpool_limits(limits=1, user_api="blas"):
        shared = mask.T @ mask
        sums = z.T @ mask  # [i, j]: the sum of column i over the rows where j is present too
        squares = (z * z).T @ mask
        products = z.T @ z
    covariance = shared * products - sums * sums.T
    variance = shared * squares - sums**2
    scale = np.sqrt(np.clip(variance * variance.T, 0.0, None))
    correlation = np.divide(
        covariance, scale, out=np.zeros_like(covariance), where=scale > 1e-12 * shared**2
    )
    copies = []
    for i, j in zip(*np.nonzero(np.abs(correlation) >= NEAR_COPY_CORRELATION), strict=True):
        if i >= j or shared[i, j] < overlap:
            continue
        both = present[:, i] & present[:, j]
        first, second = values[both, i], values[both, j]
        if np.unique(first).size < 2:
            continue
        copies.append(
            _Copy(
                positions[i],
                positions[j],
                int(both.sum()),
                float(correlation[i, j]),
                bool(np.array_equal(first, second)),
            )
        )
    return copies


def _text_copies(
    frame: pd.DataFrame, names: list[str], positions: list[int], overlap: int
) -> list[_Copy]:
    """Pairs equal as strings on the rows both have, compared as codes of one shared book."""
    if len(names) < 2:
        return []
    texts = {name: frame[name].dropna().astype(str) for name in names}
    book = pd.Index(sorted(set().union(*(text.unique() for text in texts.values()))))
    codes = np.full((len(frame), len(names)), -1, dtype=np.int64)
    for k, name in enumerate(names):
        codes[frame[name].notna().to_numpy(), k] = book.get_indexer(texts[name])
    present = codes >= 0
    copies = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            both = present[:, i] & present[:, j]
            shared = int(both.sum())
            if shared < overlap:
                continue
            first = codes[both, i]
            if np.array_equal(first, codes[both, j]) and np.unique(first).size >= 2:
                copies.append(_Copy(positions[i], positions[j], shared, 1.0, True))
    return copies


def _copy_finding(name: str, twin: str, copy: _Copy) -> GuardFinding:
    if copy.is_equal:
        how, value = f"equal on {copy.shared} shared rows", 1.0
    else:
        how = f"correlation {copy.correlation:.4f} on {copy.shared} shared rows"
        value = copy.correlation
    return GuardFinding(
        guard="near_copy",
        severity="warning",
        column=name,
        message=(
            f"column {name!r} is a near copy of {twin!r}: {how}; "
            f"it is left out of training and {twin!r} kept"
        ),
        value=value,
    )


def find_dominant_feature(
    x: pd.DataFrame,
    y: np.ndarray,
    spec: FeatureSpec,
    seed: int,
    folds: int = 3,
    max_rows: int = 5_000,
) -> GuardFinding | None:
    """A feature whose removal costs a quick model more ROC AUC than all others' together.

    A small gradient-boosting model (50 trees, no early stopping) is cross-validated on a
    stratified sample of the rows, and each feature's drop in out-of-fold ROC AUC once
    shuffled ranks the features. Refitting without every feature would take a model per
    feature and fold (tens of seconds), so only the top-ranked features are refitted without
    (drop-column importance); the others keep their shuffled drop, which is rarely below
    the refitted one, so the comparison leans towards silence.

    Args:
        x: the feature frame of the training rows, as ``coerce_frame`` returns it.
        y: the 0/1 target, aligned with ``x``.
        spec: the feature spec the model is trained with.
        seed: seeds the sample, the folds, the shuffles and the model.
        folds: cross-validation folds.
        max_rows: rows sampled, stratified by class, when there are more.

    Returns:
        A ``dominant_feature`` warning, or None when no feature dominates by at least
        ``DOMINANT_MIN_DROP`` or the data are too small to tell.
    """
    names = spec.feature_names
    labels = np.asarray(y).astype(int)
    if len(names) < 2 or len(labels) != len(x):
        return None
    rows = _stratified_sample(labels, max_rows, seed)
    x, labels = x.iloc[rows], labels[rows]
    if np.bincount(labels, minlength=2).min() < folds:
        return None
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, labels))
    # Small fits run fastest on one thread; OpenMP threads spinning against other work on a
    # busy two-core machine made this take tens of seconds instead of a few.
    with threadpool_limits(limits=1):
        measured = _dominance(x, labels, spec, splits, seed)
    if measured is None:
        return None
    top, drop, rest = measured
    return GuardFinding(
        guard="dominant_feature",
        severity="warning",
        column=top,
        message=(
            f"column {top!r} carries most of what a quick model learns: without it the "
            f"cross-validated ROC AUC falls by {drop:.3f}, more than without each of the "
            f"other {len(names) - 1} columns in all ({rest:.3f}); check it is known before "
            "the outcome"
        ),
        value=drop,
    )


def _dominance(
    x: pd.DataFrame,
    labels: np.ndarray,
    spec: FeatureSpec,
    splits: list[tuple[np.ndarray, np.ndarray]],
    seed: int,
) -> tuple[str, float, float] | None:
    """The dominant feature, its drop and the others' drops summed; None if none dominates."""
    names = spec.feature_names
    base, drops = _permutation_drops(x, labels, spec, splits, seed)
    order = np.argsort(-drops, kind="stable")
    # Refitting without a feature rarely costs more than shuffling it: the top feature can
    # then only dominate if its shuffled drop beats the features that are not refitted.
    shuffled_only = float(np.clip(drops[order[_REFITTED_FEATURES:]], 0.0, None).sum())
    if drops[order[0]] < DOMINANT_MIN_DROP or drops[order[0]] <= shuffled_only:
        return None
    refitted: list[int] = []
    for k in order[:_REFITTED_FEATURES]:
        if drops[k] < DOMINANT_MIN_DROP:
            break
        without = FeatureSpec(columns=[c for c in spec.columns if c.name != names[k]])
        drops[k] = base - _cross_validated_auc(x, labels, without, splits, seed)
        refitted.append(int(k))
        top = max(refitted, key=lambda i: drops[i])
        rest = float(np.clip(np.delete(drops, top), 0.0, None).sum())
        if drops[top] >= DOMINANT_MIN_DROP and drops[top] > rest:
            return names[top], float(drops[top]), rest  # refits would only lower the rest
    return None


def _stratified_sample(labels: np.ndarray, max_rows: int, seed: int) -> np.ndarray:
    rows = np.arange(len(labels))
    if len(rows) <= max_rows:
        return rows
    rng = np.random.default_rng(seed)
    chosen = []
    for label in (0, 1):
        members = rows[labels == label]
        size = max(1, round(max_rows * len(members) / len(rows)))
        chosen.append(rng.choice(members, size=min(size, len(members)), replace=False))
    return np.sort(np.concatenate(chosen))


def _probe(spec: FeatureSpec, labels: np.ndarray, seed: int) -> Any:
    minority = int(min(labels.sum(), len(labels) - labels.sum()))
    return build_candidate(
        "hist_gradient_boosting",
        _PROBE_PARAMS,
        spec,
        imbalance="none",
        seed=seed,
        minority_rows=minority,
    )


def _cross_validated_auc(
    x: pd.DataFrame,
    labels: np.ndarray,
    spec: FeatureSpec,
    splits: list[tuple[np.ndarray, np.ndarray]],
    seed: int,
) -> float:
    scores = []
    for train, valid in splits:
        model = _probe(spec, labels[train], seed).fit(x.iloc[train], labels[train])
        scores.append(roc_auc_score(labels[valid], model.predict_proba(x.iloc[valid])[:, 1]))
    return float(np.mean(scores))


def _permutation_drops(
    x: pd.DataFrame,
    labels: np.ndarray,
    spec: FeatureSpec,
    splits: list[tuple[np.ndarray, np.ndarray]],
    seed: int,
) -> tuple[float, np.ndarray]:
    """The mean out-of-fold ROC AUC, and each feature's mean drop once shuffled."""
    rng = np.random.default_rng(seed)
    scores, drops = [], np.zeros(len(spec.feature_names))
    for train, valid in splits:
        model = _probe(spec, labels[train], seed).fit(x.iloc[train], labels[train])
        truth = labels[valid]
        # Shuffled after encoding (a value and its missing flag together), so the frame is
        # encoded once per fold rather than once per feature.
        encoder, rest = model.named_steps["encode"], model[1:]
        encoded = encoder.transform(x.iloc[valid])
        score = roc_auc_score(truth, rest.predict_proba(encoded)[:, 1])
        scores.append(score)
        flags = {name: len(encoder.features) + i for i, name in enumerate(encoder.nullable)}
        for k, name in enumerate(encoder.features):
            positions = [k, flags[name]] if name in flags else [k]
            shuffled = encoded.copy()
            shuffled[:, positions] = encoded[rng.permutation(len(valid))][:, positions]
            drops[k] += score - roc_auc_score(truth, rest.predict_proba(shuffled)[:, 1])
    return float(np.mean(scores)), drops / len(splits)


def apply_leak_action(
    findings: list[GuardFinding], action: Literal["warn", "exclude", "fail"]
) -> dict[str, str]:
    """The columns to leave out of training, each with the reason to record.

    Near copies are always left out; probable leaks only when ``action`` is ``exclude``.

    Raises:
        TrainingError: ``action`` is ``fail`` and some feature is a probable leak.
    """
    leaks = [f for f in findings if f.guard == "probable_leak" and f.column is not None]
    if action == "fail" and leaks:
        named = ", ".join(f"{f.column!r} (ROC AUC {f.value or 0.0:.3f})" for f in leaks)
        raise TrainingError(
            f"train.leak_action is 'fail' and these columns alone separate the classes: "
            f"{named}; check they are known before the outcome, then exclude them in the "
            "schema or set train.leak_action: exclude"
        )
    removed: dict[str, str] = {}
    for finding in findings:
        if finding.column is None or finding.column in removed:
            continue
        if finding.guard == "near_copy":
            # The message opens "column 'b' is a near copy of 'a': how; ...".
            opening = finding.message.split("; ")[0]
            removed[finding.column] = opening.removeprefix(f"column {finding.column!r} is a ")
        elif finding.guard == "probable_leak" and action == "exclude":
            auc = finding.value or 0.0
            removed[finding.column] = (
                f"probable leak: alone separates the classes with ROC AUC {auc:.3f}"
            )
    return removed


def exclude_columns(project: Project, reasons: Mapping[str, str]) -> Project:
    """A copy of the project whose feature spec excludes these columns, with their reasons.

    Raises:
        TrainingError: no feature would be left.
    """
    if not reasons:
        return project
    columns = [
        column.model_copy(update={"role": Role.EXCLUDED, "reason": reasons[column.name]})
        if column.name in reasons and column.role is Role.FEATURE
        else column.model_copy()
        for column in project.schema_.columns
    ]
    spec = FeatureSpec(columns=columns)
    if not spec.features:
        names = ", ".join(repr(name) for name in reasons)
        raise TrainingError(f"no feature is left once {names} are left out of training")
    return project.model_copy(update={"schema_": spec})
