"""Building a new project file from a table: name, classes and the inferred feature spec."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from tabops.errors import DataError
from tabops.project import Project
from tabops.schema import Role, infer_schema, python_value


def default_model_name(data: Path) -> str:
    """A registry-safe model name from a file name (``Heart Failure.csv`` -> ``heart-failure``)."""
    stem = data.name.split(".")[0]
    name = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")
    return (name or "model")[:63]


def choose_positive_class(target: pd.Series, requested: str | None) -> object:
    """The positive class: as requested, else 1 / True when present, else the rarer class.

    Raises:
        DataError: the requested value is not one of the target's classes.
    """
    classes = [python_value(value) for value in target.dropna().unique()]
    if requested is not None:
        for value in classes:
            if str(value) == requested:
                return value
        raise DataError(
            f"--positive {requested!r} is not a class of the target; classes: {classes}"
        )
    for value in classes:
        if str(value) in ("1", "True", "true"):
            return value
    counts = target.value_counts()
    return python_value(counts.index[-1])


def build_project(
    frame: pd.DataFrame,
    data: Path,
    output: Path,
    target: str,
    name: str | None,
    positive: str | None,
    class_names: tuple[str, ...] | None,
    *,
    entity: str | None = None,
    timestamp: str | None = None,
) -> tuple[Project, list[str]]:
    """A project for ``frame`` whose data path is relative to the project file's folder.

    Raises:
        DataError: the target, entity or timestamp column is missing or unusable.
    """
    inference = infer_schema(frame, target)
    for role, column_name in (("entity key", entity), ("timestamp", timestamp)):
        if column_name is None:
            continue
        try:
            column = inference.spec.column(column_name)
        except KeyError:
            raise DataError(f"{role} column {column_name!r} is not in the data") from None
        if column.role is Role.FEATURE:
            column.role = Role.EXCLUDED
            inference.warnings.append(f"column {column_name!r} excluded: the {role}")
        column.reason = f"the {role} of each row"
    positive_value = choose_positive_class(frame[target], positive)
    negative_value = next(
        python_value(value)
        for value in frame[target].dropna().unique()
        if str(value) != str(positive_value)
    )
    negative_name, positive_name = class_names or (str(negative_value), str(positive_value))
    folder = output.resolve().parent
    relative = os.path.relpath(data.resolve(), folder)
    project = Project(
        name=name or default_model_name(data),
        data=relative,
        target=target,
        positive_class=positive_value,
        class_names={str(negative_value): negative_name, str(positive_value): positive_name},
        schema_=inference.spec,
        entity=entity,
        timestamp=timestamp,
    )
    return project, inference.warnings
