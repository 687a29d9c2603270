"""Honest splits: stratified, time-based (past -> future) or by entity, plus de-duplication."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split

from tabops.errors import TrainingError
from tabops.project import Project
from tabops.training.guards import parse_dates


@dataclass(frozen=True)
class RowSplit:
    """Row positions of the train, validation and test sets, and how they were chosen."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    description: str


def prepare_rows(frame: pd.DataFrame, project: Project) -> tuple[pd.DataFrame, list[str]]:
    """Drop unlabelled rows, exact duplicates and pseudo-replicates as the project asks.

    Returns:
        The rows to train on (index reset) and one note per change made.
    """
    notes = []
    labelled = frame[frame[project.target].notna()]
    if len(labelled) < len(frame):
        notes.append(f"dropped {len(frame) - len(labelled)} rows without a target value")
    settings = project.train
    if settings.drop_duplicate_rows:
        unique = labelled.drop_duplicates()
        if len(unique) < len(labelled):
            notes.append(f"dropped {len(labelled) - len(unique)} exact duplicate rows")
        labelled = unique
    if settings.dedupe == "keep_last" and project.entity is not None:
        ordered = labelled
        if project.timestamp is not None:
            ordered = labelled.assign(__time__=parse_times(labelled[project.timestamp]))
            # Undated rows sort first, so an entity's latest row is its latest dated one.
            ordered = ordered.sort_values("__time__", kind="stable", na_position="first")
            ordered = ordered.drop(columns="__time__")
        latest = ordered.drop_duplicates(subset=project.entity, keep="last").sort_index()
        notes.append(
            f"kept the latest of {len(labelled)} rows for each of {len(latest)} entities "
            f"({project.entity})"
        )
        labelled = latest
    return labelled.reset_index(drop=True), notes


def parse_times(series: pd.Series) -> pd.Series:
    """Naive UTC timestamps of a column; unreadable and out-of-range dates become NaT.

    Out of range means what the date guard reports (year 3021, 1850): such rows are left
    out of a time split rather than placed at its far end.
    """
    parsed = parse_dates(series)
    return parsed.values.where(~parsed.out_of_range)


def split_rows(frame: pd.DataFrame, y: np.ndarray, project: Project) -> RowSplit:
    """Split rows into train, validation and test by the project's strategy.

    Raises:
        TrainingError: a set would be empty or hold a single class.
    """
    settings = project.train
    if settings.split == "time":
        split = _time_split(frame, project)
    elif settings.split == "group":
        split = _group_split(frame, y, project)
    else:
        minority = int(min(y.sum(), len(y) - y.sum()))
        if minority < 3:
            raise TrainingError(
                f"only {minority} row(s) of the rarer class: too few for a train, "
                "validation and test set"
            )
        rest, test = train_test_split(
            np.arange(len(frame)),
            test_size=settings.test_size,
            stratify=y,
            random_state=settings.seed,
        )
        share = settings.validation_size / (1 - settings.test_size)
        train, validation = train_test_split(
            rest, test_size=share, stratify=y[rest], random_state=settings.seed
        )
        split = RowSplit(
            np.sort(train),
            np.sort(validation),
            np.sort(test),
            "stratified random split "
            f"({1 - settings.test_size - settings.validation_size:.0%} / "
            f"{settings.validation_size:.0%} / {settings.test_size:.0%})",
        )
    for name in ("train", "validation", "test"):
        rows = getattr(split, name)
        if len(np.unique(y[rows])) < 2:
            raise TrainingError(f"the {name} set holds a single class; {split.description}")
    return split


def _time_split(frame: pd.DataFrame, project: Project) -> RowSplit:
    assert project.timestamp is not None  # checked by the project model
    settings = project.train
    times = parse_times(frame[project.timestamp])
    known = np.flatnonzero(times.notna().to_numpy())
    if len(known) == 0:
        raise TrainingError(f"no value of {project.timestamp!r} could be read as a date")
    if settings.test_start is not None:
        start = pd.Timestamp(settings.test_start)
    else:
        start = _time_quantile(times.iloc[known], 1 - settings.test_size)
    values = times.to_numpy()
    test = known[values[known] >= start.to_datetime64()]
    past = known[values[known] < start.to_datetime64()]
    if len(past) == 0 or len(test) == 0:
        raise TrainingError(f"no rows on one side of {start.date()} in {project.timestamp!r}")
    share = settings.validation_size / (1 - settings.test_size)
    validation_start = _time_quantile(times.iloc[past], 1 - share)
    validation = past[values[past] >= validation_start.to_datetime64()]
    train = past[values[past] < validation_start.to_datetime64()]
    dropped = len(frame) - len(known)
    note = f"; {dropped} rows without a readable time left out" if dropped else ""
    return RowSplit(
        train,
        validation,
        test,
        f"time split on {project.timestamp}: train before {validation_start.date()}, "
        f"validation until {start.date()}, test from {start.date()}{note}",
    )


def _time_quantile(times: pd.Series, share: float) -> pd.Timestamp:
    ordered = times.sort_values(kind="stable")
    position = min(len(ordered) - 1, int(share * len(ordered)))
    return pd.Timestamp(ordered.iloc[position])


def _group_split(frame: pd.DataFrame, y: np.ndarray, project: Project) -> RowSplit:
    assert project.entity is not None  # checked by the project model
    settings = project.train
    groups = frame[project.entity].to_numpy()
    rows = np.arange(len(frame))
    rest, test = _one_group_fold(rows, y, groups, settings.test_size, settings.seed)
    share = settings.validation_size / (1 - settings.test_size)
    train_part, validation_part = _one_group_fold(
        np.arange(len(rest)), y[rest], groups[rest], share, settings.seed
    )
    return RowSplit(
        np.sort(rest[train_part]),
        np.sort(rest[validation_part]),
        np.sort(test),
        f"group split on {project.entity}: no entity in more than one set",
    )


def _one_group_fold(
    rows: np.ndarray, y: np.ndarray, groups: np.ndarray, share: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    folds = max(2, round(1 / share))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    keep, held = next(splitter.split(rows, y, groups))
    return rows[keep], rows[held]


def cv_splitter(
    project: Project, y: np.ndarray, folds: int | None = None
) -> StratifiedKFold | StratifiedGroupKFold:
    """Folds for cross-validation on training rows: grouped when rows share entities.

    ``folds`` overrides the project's ``train.cv_folds``.
    """
    folds = folds or project.train.cv_folds
    minority = int(min(y.sum(), len(y) - y.sum()))
    if minority < folds:
        raise TrainingError(
            f"only {minority} training rows of the rarer class: too few for {folds}-fold CV"
        )
    if project.train.split == "group":
        return StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=project.train.seed)
    return StratifiedKFold(n_splits=folds, shuffle=True, random_state=project.train.seed)
