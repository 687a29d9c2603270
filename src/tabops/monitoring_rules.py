"""The ``monitoring`` section of a project file: drift thresholds, the default window, alert rules.

It sits below ``project`` (which reads it) and is copied into each version's manifest, so a
version is watched by the rules it was trained with. Evaluating the rules is
``tabops.monitoring.alerts``' job; this module only says what a valid rule is.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DRIFT_METRICS = (
    "psi",
    "ks",
    "wasserstein",
    "jensen_shannon",
    "chi2_pvalue",
    "unseen_share",
    "null_rate_change",
)
"""Metrics measured per feature: each rule on them names a feature, or ``*`` for all."""
SCORE_METRICS = ("score_psi",)
PERFORMANCE_METRICS = (
    "roc_auc",
    "pr_auc",
    "precision",
    "recall",
    "f1",
    "brier",
    "calibration_error",
)
"""Metrics that need labels; ``min_labels`` applies to them alone."""
ESTIMATED_METRICS = tuple(f"estimated_{name}" for name in PERFORMANCE_METRICS)
TRAFFIC_METRICS = ("rows",)
ALERT_METRICS = (
    DRIFT_METRICS + SCORE_METRICS + PERFORMANCE_METRICS + ESTIMATED_METRICS + TRAFFIC_METRICS
)

MetricKind = Literal["drift", "score", "performance", "estimate", "traffic"]
_KINDS: dict[str, MetricKind] = {
    **dict.fromkeys(DRIFT_METRICS, "drift"),
    **dict.fromkeys(SCORE_METRICS, "score"),
    **dict.fromkeys(PERFORMANCE_METRICS, "performance"),
    **dict.fromkeys(ESTIMATED_METRICS, "estimate"),
    **dict.fromkeys(TRAFFIC_METRICS, "traffic"),
}
EVERY_FEATURE = "*"
DEFAULT_WINDOW = "1d"
# Below these counts a statistic is mostly noise: a rule waits rather than fire on it.
DEFAULT_MIN_ROWS = 100
DEFAULT_MIN_LABELS = 100
MAX_KEY_CHARS = 120

MAX_WINDOW_ROWS = 10_000_000

_WINDOW = re.compile(r"([1-9][0-9]{0,5})([smhdw])")
_ROWS = re.compile(r"[0-9]{1,9}")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_MAX_WINDOW = timedelta(days=366)
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def parse_window(text: str) -> timedelta:
    """The length of a window written as a count and a unit: ``30m``, ``1h``, ``7d``, ``2w``.

    Raises:
        ValueError: the text is not such a window, or is longer than a year.
    """
    match = _WINDOW.fullmatch(text)
    if match is None:
        raise ValueError(
            f"window {text!r} is neither a time such as '1h' or '7d' (units s, m, h, d, w) "
            "nor a count of the latest predictions such as '5000'"
        )
    length = timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    if length > _MAX_WINDOW:
        raise ValueError(f"window {text!r} is longer than a year")
    return length


def window_rows(text: str) -> int | None:
    """The count of a window of the latest predictions (``5000``); None for a time window.

    Raises:
        ValueError: a count below 1 or above ``MAX_WINDOW_ROWS``.
    """
    if _ROWS.fullmatch(text) is None:
        return None
    rows = int(text)
    if not 1 <= rows <= MAX_WINDOW_ROWS:
        raise ValueError(f"window {text!r}: a count of predictions from 1 to {MAX_WINDOW_ROWS}")
    return rows


def _check_window(value: str | None) -> str | None:
    """A window is a time (``1d``) or a count of the latest predictions (``5000``)."""
    if value is not None and window_rows(value) is None:
        parse_window(value)
    return value


class AlertRule(BaseModel):
    """One alert: a metric, optionally of a feature, crossing a bound over a window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, pattern=_NAME)
    metric: str
    feature: str | None = Field(
        default=None, min_length=1, max_length=200, description="A feature, or '*' for each."
    )
    above: float | None = Field(default=None, allow_inf_nan=False)
    below: float | None = Field(default=None, allow_inf_nan=False)
    min_labels: int | None = Field(default=None, ge=1, description="Performance metrics only.")
    min_rows: int | None = Field(default=None, ge=1)
    window: str | None = Field(default=None, description="Default: the section's window.")

    @field_validator("metric")
    @classmethod
    def _check_metric(cls, value: str) -> str:
        if value not in _KINDS:
            raise ValueError(f"unknown metric {value!r}; choose from {', '.join(ALERT_METRICS)}")
        return value

    _check_window = field_validator("window")(_check_window)

    @model_validator(mode="after")
    def _check_fields(self) -> AlertRule:
        if self.above is None and self.below is None:
            raise ValueError("a rule needs 'above', 'below' or both")
        if self.kind == "drift" and self.feature is None:
            raise ValueError(f"metric {self.metric!r} is per feature: name one, or '*' for each")
        if self.kind != "drift" and self.feature is not None:
            raise ValueError(f"metric {self.metric!r} is not per feature: remove 'feature'")
        if self.min_labels is not None and self.kind != "performance":
            raise ValueError(f"min_labels is for performance metrics, not {self.metric!r}")
        if self.min_rows is not None and self.kind == "traffic":
            raise ValueError("min_rows does not apply to metric 'rows' (its value is the count)")
        return self

    @property
    def kind(self) -> MetricKind:
        """What the metric measures: drift, score drift, performance, an estimate or traffic."""
        return _KINDS[self.metric]

    @property
    def key(self) -> str:
        """The rule's stable identity: its name, else a text made of its fields.

        The derived key reads like the rule (``psi[*]>0.2``, ``rows<10@1h``); one too long
        for the database (a long feature name) becomes the metric and a digest.
        """
        if self.name is not None:
            return self.name
        text = self.metric + (f"[{self.feature}]" if self.feature is not None else "")
        text += f">{self.above:g}" if self.above is not None else ""
        text += f"<{self.below:g}" if self.below is not None else ""
        text += f"@{self.window}" if self.window is not None else ""
        if len(text) <= MAX_KEY_CHARS:
            return text
        return f"{self.metric}#{hashlib.sha256(text.encode()).hexdigest()[:16]}"

    @property
    def required_rows(self) -> int:
        """Rows a window needs before the rule is checked on it."""
        if self.min_rows is not None:
            return self.min_rows
        return 0 if self.kind in ("traffic", "performance") else DEFAULT_MIN_ROWS

    @property
    def required_labels(self) -> int:
        """Labelled rows a window needs before the rule is checked (performance rules only)."""
        if self.kind != "performance":
            return 0
        return self.min_labels if self.min_labels is not None else DEFAULT_MIN_LABELS

    def is_breached(self, value: float) -> bool:
        """Whether ``value`` lies beyond one of the rule's bounds."""
        return (self.above is not None and value > self.above) or (
            self.below is not None and value < self.below
        )


class MonitoringSection(BaseModel):
    """How a project's versions are watched; thresholds left unset come from the settings."""

    model_config = ConfigDict(extra="forbid")

    psi_warn: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    psi_alert: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    window: str = Field(default=DEFAULT_WINDOW, description="The window rules are checked on.")
    alerts: list[AlertRule] = Field(default_factory=list, max_length=200)

    _check_window = field_validator("window")(_check_window)

    @model_validator(mode="after")
    def _check_section(self) -> MonitoringSection:
        if (
            self.psi_warn is not None
            and self.psi_alert is not None
            and self.psi_warn > self.psi_alert
        ):
            raise ValueError("psi_warn must not be above psi_alert")
        seen: set[str] = set()
        for rule in self.alerts:
            if rule.key in seen:
                raise ValueError(f"two alert rules have the key {rule.key!r}: name one of them")
            seen.add(rule.key)
        return self

    @classmethod
    def from_manifest(cls, document: dict[str, Any] | None) -> MonitoringSection:
        """The section a manifest stored; the defaults for a version stored without one."""
        return cls() if document is None else cls.model_validate(document)

    def window_of(self, rule: AlertRule) -> str:
        """The window ``rule`` is checked on: its own, else the section's."""
        return rule.window if rule.window is not None else self.window

    def windows(self) -> set[str]:
        """Every window some rule is checked on (what an observer must measure)."""
        return {self.window_of(rule) for rule in self.alerts}

    def unknown_features(self, features: list[str]) -> list[str]:
        """Features rules name that are not in ``features`` (``*`` names them all)."""
        known = {*features, EVERY_FEATURE}
        return [rule.feature for rule in self.alerts if rule.feature and rule.feature not in known]
