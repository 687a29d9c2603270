"""Full validation of the records a route decoded, with ``tabops.validation``'s rules."""

from __future__ import annotations

from typing import Any

from tabops.errors import Problem
from tabops.model.predictor import Predictor


def validate_record(
    predictor: Predictor, document: Any, prefix: str = ""
) -> tuple[dict[str, Any], list[Problem]]:
    """One JSON record's feature values (absent = None), or every problem with it."""
    return predictor.validator.check_record(document, prefix)
