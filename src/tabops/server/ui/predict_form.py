"""The predict page's form: one control per feature of a spec, and its answers read back.

Nothing here decides whether a value is acceptable. Form values arrive as text; they are
turned into what the JSON API takes (numbers, 0/1 flags, text, empty = missing) where that
is unambiguous, and left as text otherwise, so the validator behind the predict endpoint
names the problem exactly as it does for an API call.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tabops.errors import Problem
from tabops.model.reference_stats import NumericReference, ReferenceStats
from tabops.schema import ColumnSpec, FeatureSpec, Kind

FIELD_PREFIX = "feature:"
"""Form field names are the feature names behind this prefix: a feature may be called
``csrf`` or ``version`` without clashing with the form's own fields."""
_OVERRIDE_PREFIX = "overrides."
_TRUE = frozenset({"1", "true"})
_FALSE = frozenset({"0", "false"})

Control = Literal["number", "select", "text"]


@dataclass(frozen=True)
class FormField:
    """One feature as a labelled form control, with its current value and problem."""

    feature: str
    input_id: str
    control: Control
    kind: str
    value: str
    step: str | None = None
    options: tuple[tuple[str, str], ...] = ()
    hint: str | None = None
    is_optional: bool = False
    problem: str | None = None

    @property
    def field_name(self) -> str:
        """The name the control posts its value under."""
        return FIELD_PREFIX + self.feature


def range_hints(spec: FeatureSpec, stats: ReferenceStats | None) -> dict[str, str]:
    """Each number's training range, ``seen 40 - 95`` (an en dash): from the statistics or spec."""
    hints: dict[str, str] = {}
    for column in spec.features:
        if column.kind not in (Kind.NUMERIC, Kind.INTEGER):
            continue
        low, high = column.minimum, column.maximum
        described = stats.features.get(column.name) if stats is not None else None
        if isinstance(described, NumericReference) and described.minimum is not None:
            low, high = described.minimum, described.maximum
        if low is not None and high is not None:
            hints[column.name] = f"seen {format_number(low)} \N{EN DASH} {format_number(high)}"
    return hints


def build_fields(
    spec: FeatureSpec,
    values: Mapping[str, Any],
    *,
    hints: Mapping[str, str] | None = None,
    problems: Mapping[str, str] | None = None,
    overrides: bool = False,
) -> list[FormField]:
    """The form's controls, in feature order.

    Args:
        spec: The version's feature spec.
        values: What each control shows: a record's values (numbers, flags, text, None) or
            the text a user posted.
        hints: Text shown under a control (its training range).
        problems: The refusal of a field, shown beside it.
        overrides: Every control may be left empty (it then keeps the stored value).
    """
    hints = hints or {}
    problems = problems or {}
    fields = []
    for index, column in enumerate(spec.features):
        is_optional = overrides or column.nullable
        value = shown_value(values.get(column.name))
        control, step, options = _control(column, value, is_optional)
        fields.append(
            FormField(
                feature=column.name,
                input_id=f"feature-{index}",
                control=control,
                kind=str(column.kind),
                value=value,
                step=step,
                options=options,
                hint=hints.get(column.name),
                is_optional=is_optional,
                problem=problems.get(column.name),
            )
        )
    return fields


def _control(
    column: ColumnSpec, value: str, is_optional: bool
) -> tuple[Control, str | None, tuple[tuple[str, str], ...]]:
    """The control of one feature: its type, number step and select options."""
    if column.kind is Kind.INTEGER:
        return "number", "1", ()
    if column.kind is Kind.NUMERIC:
        return "number", "any", ()
    if column.kind is Kind.BOOLEAN:
        choices = [("0", "false"), ("1", "true")]
    elif column.kind is Kind.CATEGORICAL and column.categories:
        choices = [(category, category) for category in column.categories]
    else:
        return "text", None, ()
    known = {choice for choice, _text in choices}
    if value and value not in known:  # what the user sent stays visible, and refusable
        choices.append((value, value))
    if is_optional or not value:
        choices.insert(0, ("", "(missing)" if is_optional else "(choose)"))
    return "select", None, tuple(choices)


def shown_value(value: Any) -> str:
    """A record's value as a form control holds it (flags as 0/1, missing as empty)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return format_number(value) if math.isfinite(value) else str(value)
    return str(value)


def format_number(value: float) -> str:
    """A number as people read it: no trailing ``.0``, every digit that matters."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def record_from_form(
    spec: FeatureSpec, form: Mapping[str, str], *, overrides: bool = False
) -> dict[str, Any]:
    """The JSON record a posted form stands for.

    A feature the form lacks stays absent; an empty one is missing (None), or left out when
    ``overrides`` (the stored value then stands). Text that is not a number or a flag
    where one is expected is passed on as text, for the validator to refuse.
    """
    record: dict[str, Any] = {}
    for column in spec.features:
        raw = form.get(FIELD_PREFIX + column.name)
        if raw is None:
            continue
        text = raw.strip()
        if not text:
            if not overrides:
                record[column.name] = None
            continue
        record[column.name] = json_value(column, text)
    return record


def json_value(column: ColumnSpec, text: str) -> Any:
    """One non-empty form value as the JSON value the API takes for the column's kind."""
    if column.kind in (Kind.NUMERIC, Kind.INTEGER):
        return _number(text)
    if column.kind is Kind.BOOLEAN:
        lowered = text.lower()
        if lowered in _TRUE:
            return 1
        if lowered in _FALSE:
            return 0
    return text


def _number(text: str) -> Any:
    """An int or a float, or the text itself when it is neither (Python's ``1_000`` is not)."""
    if "_" in text:
        return text
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def problems_by_field(
    problems: Iterable[Problem], features: Iterable[str]
) -> tuple[dict[str, str], list[str]]:
    """The problems of named features (``age``, ``overrides.age``) by feature, and the rest.

    A feature with several problems shows them joined; the rest keep their field path.
    """
    names = set(features)
    by_field: dict[str, str] = {}
    rest: list[str] = []
    for problem in problems:
        field = problem.field.removeprefix(_OVERRIDE_PREFIX)
        if field in names:
            earlier = by_field.get(field)
            by_field[field] = (
                problem.problem if earlier is None else f"{earlier}; {problem.problem}"
            )
        else:
            rest.append(f"{problem.field}: {problem.problem}")
    return by_field, rest
