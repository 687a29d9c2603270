"""Feature definitions as written in ``tabops.yaml``: row features and entity-window aggregates.

```yaml
features:
  view: loans                 # the online store's name for these features (default: project)
  windows:                    # over the same entity's rows strictly before each row's time
    - {name: nb_previous_loans, function: count}
    - {name: avg_amount_loans_previous, function: mean, column: loan_amount}
    - {name: amount_max_30d, function: max, column: loan_amount, window: 30d}
  rows:                       # from columns of the same row (or features defined before)
    - {name: age, kind: years_between, start: birthday, end: loan_date, whole: true}
    - {name: years_on_the_job, kind: years_between, start: job_start_date, end: loan_date,
       min: 0, max: 80, impute: median}
    - {name: flag_own_car, kind: flag, column: flag_own_car, true_values: ["Y"]}
```
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Imputation = Literal["median", "mean", "zero", "most_frequent"]
WindowFunction = Literal["count", "sum", "mean", "min", "max", "first", "last"]
_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,99}$"
_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(w|d|h|min|m|s)\s*$", re.IGNORECASE)
_SECONDS = {"w": 604_800, "d": 86_400, "h": 3_600, "min": 60, "m": 60, "s": 1}


def parse_window(text: str) -> pd.Timedelta:
    """A window such as ``30d``, ``12h``, ``2w``, ``90m`` or ``45s`` as a duration.

    Raises:
        ValueError: the text is not a number followed by one of those units.
    """
    match = _WINDOW.match(text)
    if match is None:
        raise ValueError(f"window {text!r} is not a duration such as 30d, 12h or 2w")
    return pd.Timedelta(float(match.group(1)) * _SECONDS[match.group(2).lower()], unit="s")


class _Feature(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME, description="The feature's column name.")
    impute: Imputation = Field(
        default="median",
        description="How the model fills a missing value (learnt on training rows).",
    )

    def inputs(self) -> list[str]:
        """The columns this feature is computed from."""
        raise NotImplementedError


class WindowFeature(_Feature):
    """An aggregate of the entity's earlier rows (strictly before this row's time)."""

    function: WindowFunction
    column: str | None = Field(default=None, description="Aggregated column (not for count).")
    window: str | None = Field(
        default=None, description="Only rows this recent, e.g. 30d or 12h; all history if unset."
    )

    @field_validator("window")
    @classmethod
    def _check_window(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if parse_window(value) <= pd.Timedelta(0):
            raise ValueError(f"window {value!r} must be positive")
        return value

    @model_validator(mode="after")
    def _check_column(self) -> WindowFeature:
        if self.function != "count" and self.column is None:
            raise ValueError(f"{self.function} needs a column")
        return self

    @property
    def span(self) -> pd.Timedelta | None:
        """The window as a duration, None for all history."""
        return parse_window(self.window) if self.window else None

    def inputs(self) -> list[str]:
        """The aggregated column, if any."""
        return [self.column] if self.column else []


class TimeBetween(_Feature):
    """Time from ``start`` to ``end`` in years or days; outside [min, max] it is missing.

    A job start in year 3021 gives a negative time on the job: with ``min: 0`` it becomes a
    missing value (then imputed) instead of a wild number.
    """

    kind: Literal["years_between", "days_between"]
    start: str
    end: str
    whole: bool = Field(default=False, description="Round down to whole years or days.")
    min: float | None = None
    max: float | None = None

    def inputs(self) -> list[str]:
        """Both dates."""
        return [self.start, self.end]


class Ratio(_Feature):
    """``numerator / denominator``; missing when the denominator is zero or missing."""

    kind: Literal["ratio"]
    numerator: str
    denominator: str

    def inputs(self) -> list[str]:
        """Both operands."""
        return [self.numerator, self.denominator]


class Difference(_Feature):
    """``left - right``, e.g. a metric minus its previous value."""

    kind: Literal["difference"]
    left: str
    right: str

    def inputs(self) -> list[str]:
        """Both operands."""
        return [self.left, self.right]


def _default_truths() -> list[str | int | float | bool]:
    return ["Y", "y", "yes", "Yes", "true", "True", 1, True]


class Flag(_Feature):
    """1 when the column holds one of ``true_values``, 0 otherwise, missing stays missing."""

    kind: Literal["flag"]
    column: str
    true_values: list[str | int | float | bool] = Field(default_factory=_default_truths)

    def inputs(self) -> list[str]:
        """The flagged column."""
        return [self.column]


class IsMissing(_Feature):
    """1 when the column is missing in this row, else 0."""

    kind: Literal["is_missing"]
    column: str

    def inputs(self) -> list[str]:
        """The checked column."""
        return [self.column]


RowFeature = Annotated[
    TimeBetween | Ratio | Difference | Flag | IsMissing, Field(discriminator="kind")
]


class FeatureDefinitions(BaseModel):
    """Every derived feature of a project, computed by one implementation everywhere."""

    model_config = ConfigDict(extra="forbid")

    view: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
        description="Name of these features in the online store (default: the project's name).",
    )
    windows: list[WindowFeature] = Field(default_factory=list)
    rows: list[RowFeature] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_names(self) -> FeatureDefinitions:
        names = [feature.name for feature in self.all]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"feature names defined twice: {', '.join(repeated)}")
        derived = set(names)
        for position, feature in enumerate(self.all):
            # a row feature may replace the raw column it reads (flag_own_car from Y/N)
            own = feature.name if not isinstance(feature, WindowFeature) else None
            earlier = names[:position]
            later = [c for c in feature.inputs() if c in derived and c not in earlier and c != own]
            if later:
                raise ValueError(f"{feature.name} reads {later[0]!r}, which is defined after it")
        return self

    @property
    def all(self) -> list[WindowFeature | TimeBetween | Ratio | Difference | Flag | IsMissing]:
        """Window features first, then row features: the order they are computed in."""
        return [*self.windows, *self.rows]

    @property
    def names(self) -> list[str]:
        """Names of every derived feature, in computing order."""
        return [feature.name for feature in self.all]

    def raw_inputs(self) -> list[str]:
        """Columns of the raw table the definitions read (derived features excluded)."""
        defined: set[str] = set()
        seen: list[str] = []
        for feature in self.all:
            for column in feature.inputs():
                if column not in defined and column not in seen:
                    seen.append(column)
            defined.add(feature.name)
        return seen

    def fingerprint(self) -> str:
        """A short hash of the definitions: equal definitions, equal fingerprint."""
        document = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(document.encode()).hexdigest()[:16]

    def describe(self) -> list[dict[str, Any]]:
        """The definitions as plain dicts (for manifests)."""
        return [feature.model_dump(mode="json", exclude_defaults=False) for feature in self.all]
