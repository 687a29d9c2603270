"""Alert rules checked against what windows of predictions measured, and the checker of them.

``evaluate`` is pure: rules and observations in, one ``RuleCheck`` per rule and feature out.
``AlertChecker`` asks an observer for each model's observations, records the outcome in an
``AlertStore`` (which queues one delivery per change of state) and has the webhook sender
deliver what was queued.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from tabops.metrics import ALERT_FIRING
from tabops.monitoring_rules import DEFAULT_WINDOW, EVERY_FEATURE, AlertRule, MonitoringSection

if TYPE_CHECKING:
    from tabops.monitoring.alert_store import AlertStore
    from tabops.monitoring.webhooks import WebhookSender

logger = logging.getLogger("tabops.alerts")


@dataclass(frozen=True)
class Observation:
    """One metric measured over a window of a version's predictions.

    ``value`` is None when the metric could not be computed (no rows, one class only).
    ``feature`` is None for metrics of the whole model.
    """

    metric: str
    feature: str | None
    value: float | None
    rows: int
    labels: int = 0
    window: str = DEFAULT_WINDOW


@dataclass(frozen=True)
class RuleCheck:
    """A rule checked on one feature (or on the model): breached, clear, or not enough data.

    ``is_breached`` is None when the window held too few rows or labels, or no value: such
    a check leaves the alert's state as it was.
    """

    rule: AlertRule
    window: str
    feature: str | None
    value: float | None
    rows: int
    labels: int
    is_breached: bool | None
    reason: str | None = None

    @property
    def rule_key(self) -> str:
        """The checked rule's stable key."""
        return self.rule.key


def evaluate(
    rules: Sequence[AlertRule],
    observations: Iterable[Observation],
    default_window: str = DEFAULT_WINDOW,
) -> list[RuleCheck]:
    """Check every rule against the observations of its window.

    A rule on ``*`` gives one check per feature observed for its metric; a rule on one
    feature, or on the model, gives exactly one check, with ``is_breached`` None when
    nothing was observed for it.

    Args:
        rules: The rules, in any order.
        observations: What the windows measured (several windows may be mixed).
        default_window: The window of rules that name none.
    """
    found: dict[tuple[str, str], list[Observation]] = {}
    for observation in observations:
        found.setdefault((observation.metric, observation.window), []).append(observation)
    checks: list[RuleCheck] = []
    for rule in rules:
        window = rule.window if rule.window is not None else default_window
        candidates = found.get((rule.metric, window), [])
        if rule.feature == EVERY_FEATURE:
            features = sorted({item.feature for item in candidates if item.feature is not None})
            checks.extend(_check(rule, window, name, _find(candidates, name)) for name in features)
        else:
            checks.append(_check(rule, window, rule.feature, _find(candidates, rule.feature)))
    return checks


def _publish_states(model: str, version: int, checks: Iterable[RuleCheck]) -> None:
    """Set the firing gauge of each decided check (a check without data leaves it as it was)."""
    for check in checks:
        if check.is_breached is not None:
            gauge = ALERT_FIRING.labels(
                model=model, version=str(version), rule=check.rule_key, feature=check.feature or ""
            )
            gauge.set(1 if check.is_breached else 0)


def _find(observations: list[Observation], feature: str | None) -> Observation | None:
    return next((item for item in observations if item.feature == feature), None)


def _check(
    rule: AlertRule, window: str, feature: str | None, observation: Observation | None
) -> RuleCheck:
    """The check of one rule on one observation (or on its absence)."""
    if observation is None:
        return RuleCheck(rule, window, feature, None, 0, 0, None, "not observed")
    value, rows, labels = observation.value, observation.rows, observation.labels
    reason = None
    if rows < rule.required_rows:
        reason = f"{rows} rows, the rule needs {rule.required_rows}"
    elif labels < rule.required_labels:
        reason = f"{labels} labels, the rule needs {rule.required_labels}"
    elif value is None or not math.isfinite(value):
        reason = "no value"
    if reason is not None:
        return RuleCheck(rule, window, feature, value, rows, labels, None, reason)
    assert value is not None  # ruled out above
    return RuleCheck(rule, window, feature, value, rows, labels, rule.is_breached(value))


@dataclass(frozen=True)
class AlertEvent:
    """An alert that fired or resolved, and the id of the delivery that announces it."""

    event: Literal["firing", "resolved"]
    model: str
    version: int
    rule: str
    metric: str
    feature: str | None
    value: float | None
    above: float | None
    below: float | None
    window: str
    at: datetime
    fired_at: datetime
    delivery_id: str

    @property
    def threshold(self) -> float | None:
        """The bound the value crossed (firing), or the nearest one it is back within."""
        bounds = [bound for bound in (self.above, self.below) if bound is not None]
        value = self.value
        if value is None or len(bounds) < 2:
            return bounds[0] if bounds else None
        return min(bounds, key=lambda bound: abs(bound - value))

    @property
    def summary(self) -> str:
        """One plain sentence about the event, for people (no links, no markup)."""
        subject = self.metric + (f" of {self.feature}" if self.feature is not None else "")
        value = "unknown" if self.value is None else f"{self.value:.4g}"
        condition = " or ".join(
            f"{word} {bound:g}"
            for word, bound in (("above", self.above), ("below", self.below))
            if bound is not None
        )
        verb = "is" if self.event == "firing" else "is back at"
        state = "firing" if self.event == "firing" else "resolved"
        return (
            f"{self.model} version {self.version}: {subject} {verb} {value} over {self.window} "
            f"(alert {self.rule!r} on {condition}: {state})"
        )

    @classmethod
    def of(
        cls, check: RuleCheck, model: str, version: int, at: datetime, fired_at: datetime
    ) -> AlertEvent:
        """The event a check makes when it changes its alert's state, with a new delivery id."""
        return cls(
            event="firing" if check.is_breached else "resolved",
            model=model,
            version=version,
            rule=check.rule_key,
            metric=check.rule.metric,
            feature=check.feature,
            value=check.value,
            above=check.rule.above,
            below=check.rule.below,
            window=check.window,
            at=at,
            fired_at=fired_at,
            delivery_id=uuid.uuid4().hex,
        )

    def payload(self) -> dict[str, Any]:
        """What the webhook posts, as JSON values."""
        return {
            "event": self.event,
            "delivery_id": self.delivery_id,
            "model": self.model,
            "version": self.version,
            "rule": self.rule,
            "metric": self.metric,
            "feature": self.feature,
            "value": self.value,
            "threshold": self.threshold,
            "above": self.above,
            "below": self.below,
            "window": self.window,
            "fired_at": self.fired_at.isoformat(),
            "resolved_at": self.at.isoformat() if self.event == "resolved" else None,
            "summary": self.summary,
        }


Observer = Callable[[str, Collection[str]], Sequence[tuple[int, Sequence[Observation]]]]
"""(model, windows) -> for each version to check, its observations over those windows."""


class AlertChecker:
    """Checks models' alert rules, records changes of state and sends what they queue.

    Safe to run in several processes at once: the store lets one of them record each change
    (and so queue its delivery), and a delivery is claimed before it is sent.
    """

    def __init__(
        self,
        store: AlertStore,
        sender: WebhookSender | None,
        observe: Observer,
        rules_of: Callable[[str], MonitoringSection],
    ) -> None:
        """Check with ``observe``'s measurements and ``rules_of``' rules.

        Args:
            store: Where states and deliveries are kept.
            sender: Sends queued deliveries; None records them as ``logged`` only.
            observe: For a model and the windows its rules need, each version to check
                with its observations.
            rules_of: A model's monitoring section (its production version's, say).
        """
        self.store = store
        self.sender = sender
        self.observe = observe
        self.rules_of = rules_of

    def check(self, model: str, now: datetime | None = None) -> list[AlertEvent]:
        """Check one model's rules; the alerts that fired or resolved, each sent once."""
        section = self.rules_of(model)
        if not section.alerts:
            return []
        events: list[AlertEvent] = []
        for version, observations in self.observe(model, section.windows()):
            checks = evaluate(section.alerts, observations, section.window)
            events += self.store.apply(
                model, version, checks, now=now, is_sent=self.sender is not None
            )
            _publish_states(model, version, checks)
        for event in events:
            level = logging.WARNING if event.event == "firing" else logging.INFO
            logger.log(level, "alert %s: %s", event.event, event.summary)
        if events and self.sender is not None:
            self.sender.deliver_pending(self.store, now)
        return events

    def check_all(self, models: Iterable[str], now: datetime | None = None) -> list[AlertEvent]:
        """Check each model in turn; one model's failure is logged and the others go on.

        Any error is caught, not only tabops' own: one model's unreadable log must not
        silence the alerts of every other model.
        """
        events: list[AlertEvent] = []
        for model in models:
            try:
                events += self.check(model, now)
            except Exception:
                logger.exception("alerts of model %s not checked", model)
        return events
