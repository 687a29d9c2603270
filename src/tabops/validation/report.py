"""The report of ``tabops validate``: failed checks and notes, a few examples each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from pydantic import BaseModel

from tabops.schema import FeatureSpec
from tabops.validation.cells import Found
from tabops.validation.validator import FeatureValidator

_EXAMPLES_PER_CHECK = 5
_MISSING = "column is missing"


class ValidationFailure(BaseModel):
    """One failed check on one column, with how many rows failed and a few examples."""

    column: str | None
    check: str
    failed_rows: int
    examples: list[Any]


class ValidationReport(BaseModel):
    """The outcome of ``validate_frame``: failures refuse the table, notes do not."""

    rows: int
    failures: list[ValidationFailure]
    notes: list[ValidationFailure] = []
    unknown_columns: list[str]

    @property
    def is_valid(self) -> bool:
        """True when every check passed (notes aside)."""
        return not self.failures


def validate_frame(
    frame: pd.DataFrame, spec: FeatureSpec, *, require_target: bool = False
) -> ValidationReport:
    """Check every feature column of ``frame`` against ``spec`` and collect all failures."""
    validator = FeatureValidator(spec)
    known = {column.name for column in spec.columns}
    unknown = [str(name) for name in frame.columns if name not in known]
    missing = validator.missing_columns(frame, require_target=require_target)
    found = validator.check_frame(frame, require_target=require_target)
    failures = [
        ValidationFailure(column=name, check=_MISSING, failed_rows=len(frame), examples=[])
        for name in missing
    ]
    failures += _summarise(found.problems)
    return ValidationReport(
        rows=len(frame), failures=failures, notes=_summarise(found.notes), unknown_columns=unknown
    )


def _summarise(items: Sequence[Found]) -> list[ValidationFailure]:
    groups: dict[tuple[str, str], list[Any]] = {}
    for _row, column, check, _message_text, value in items:
        groups.setdefault((column, check), []).append(value)
    return [
        ValidationFailure(
            column=column,
            check=check,
            failed_rows=len(values),
            examples=values[:_EXAMPLES_PER_CHECK],
        )
        for (column, check), values in groups.items()
    ]
