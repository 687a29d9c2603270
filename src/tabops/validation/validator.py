"""``FeatureValidator``: one feature spec's rules, for JSON records and for files."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tabops.errors import Problem
from tabops.schema import FeatureSpec, Role
from tabops.validation.cells import Found, check_series, file_gaps, notes_of
from tabops.validation.values import CHECKERS, text_value


@dataclass(frozen=True)
class RowProblem:
    """What is wrong with one cell of a file: its row (numbered from 1), column and problem."""

    row: int
    column: str
    problem: str

    def as_problem(self) -> Problem:
        """The problem with its place written ``row 5.age``, as reports and the API show it."""
        return Problem(f"row {self.row}.{self.column}", self.problem)


@dataclass(frozen=True)
class FrameCheck:
    """What ``check_frame`` found: which rows break a rule, and every problem and note.

    ``problems`` and ``notes`` hold ``(row position, column, check, message, value)``.
    """

    invalid: np.ndarray
    problems: list[Found] = field(default_factory=list)
    notes: list[Found] = field(default_factory=list)


class FeatureValidator:
    """The rules of one feature spec, for JSON records and for frames read from files."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self.features = spec.features
        self._names = {column.name for column in self.features}
        self._plan = [
            (column.name, column.nullable, CHECKERS.get(column.kind, text_value))
            for column in self.features
        ]

    def check_record(self, document: Any, where: str = "") -> tuple[dict[str, Any], list[Problem]]:
        """A JSON record's feature values (absent = None), or every problem with it.

        ``where`` prefixes field paths (``records[3]``).
        """
        if not isinstance(document, Mapping):
            return {}, [
                Problem(where or "body", f"expected an object, got {type(document).__name__}")
            ]
        prefix = f"{where}." if where else ""
        problems = []
        if len(document) > len(self._names) or not self._names.issuperset(document):
            problems = [
                Problem(f"{prefix}{key}", "unknown field")
                for key in document
                if key not in self._names
            ]
        record: dict[str, Any] = {}
        for name, nullable, checker in self._plan:
            value = document.get(name)
            if value is None:
                if not nullable:
                    absent = name not in document
                    problems.append(
                        Problem(f"{prefix}{name}", "field required" if absent else "is empty")
                    )
                record[name] = None
                continue
            value, problem = checker(value)
            if problem is not None:
                problems.append(Problem(f"{prefix}{name}", problem))
            record[name] = value
        return (record, []) if not problems else ({}, problems)

    def check_frame(
        self, frame: pd.DataFrame, *, require_target: bool = False, notes: bool = True
    ) -> FrameCheck:
        """Every row of a frame, column by column; columns it lacks are skipped.

        See ``missing_columns`` for those. ``notes`` False skips looking for values outside
        what training saw (file scoring does not need them).
        """
        invalid = np.zeros(len(frame), dtype=bool)
        problems: list[Found] = []
        noted: list[Found] = []
        columns = [
            c
            for c in self.spec.columns
            if c.role is Role.FEATURE or (require_target and c.role is Role.TARGET)
        ]
        for column in columns:
            if column.name not in frame.columns:
                continue
            series = frame[column.name]
            bad, found, numbers = check_series(column, series)
            invalid |= bad
            problems.extend(found)
            if notes:
                noted.extend(
                    notes_of(column, series, numbers, ~bad & ~file_gaps(series, blank_text=True))
                )
        problems.sort(key=lambda item: item[0])
        return FrameCheck(invalid, problems, noted)

    def missing_columns(self, frame: pd.DataFrame, *, require_target: bool = False) -> list[str]:
        """Feature columns (and the target, when required) the frame lacks, in spec order."""
        return [
            c.name
            for c in self.spec.columns
            if (c.role is Role.FEATURE or (require_target and c.role is Role.TARGET))
            and c.name not in frame.columns
        ]
